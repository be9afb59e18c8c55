# Shared helpers of Orca's scripts: `source scripts/lib.sh`.
log() { printf '\033[1m[%s]\033[0m %s\n' "$(basename "$0")" "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
_apt_updated=0
apt_install() {
  if [ "$_apt_updated" = 0 ]; then
    log "apt-get update"
    as_root apt-get update -qq
    _apt_updated=1
  fi
  log "installing $* (Debian packages)"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}
# What building Orca needs beyond the Rust toolchain: protoc, for the
# etcd-client crate's build script.
ensure_build_deps() {
  if ! command -v protoc >/dev/null 2>&1 && [ -z "${PROTOC:-}" ]; then
    apt_install protobuf-compiler
  fi
}
# Debian's etcd server, for cluster mode and its tests.
ensure_etcd() {
  if ! command -v etcd >/dev/null 2>&1; then
    apt_install etcd-server
  fi
}
# A running local PostgreSQL (installed and started when missing); sets
# ORCA_PG_URL to its superuser URL (password "postgres", loopback only).
ensure_postgres() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
    apt_install postgresql
  fi
  local pgver port
  pgver=$(ls /usr/lib/postgresql | sort -V | tail -n1)
  if ! pg_lsclusters -h 2>/dev/null | grep -q "^$pgver main"; then
    log "creating PostgreSQL $pgver cluster"
    as_root pg_createcluster "$pgver" main >/dev/null
  fi
  if ! pg_lsclusters -h | awk -v v="$pgver" '$1==v && $2=="main" {print $4}' | grep -q online; then
    log "starting PostgreSQL $pgver"
    as_root pg_ctlcluster "$pgver" main start
  fi
  port=$(pg_lsclusters -h | awk -v v="$pgver" '$1==v && $2=="main" {print $3}')
  for _ in $(seq 1 60); do
    if as_root su postgres -c "psql -p $port -qtAc 'select 1'" >/dev/null 2>&1; then break; fi
    sleep 0.5
  done
  as_root su postgres -c "psql -p $port -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
  ORCA_PG_PORT=$port
  ORCA_PG_URL="postgres://postgres:postgres@127.0.0.1:$port/postgres"
  export ORCA_PG_PORT ORCA_PG_URL
  log "PostgreSQL ready at 127.0.0.1:$port"
}
