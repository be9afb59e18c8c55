#!/usr/bin/env bash
# Runs Orca's whole test suite on a fresh machine: installs and starts what the
# tests need (PostgreSQL, Python packages, cargo-nextest) when missing, then
# `cargo nextest run --workspace`. Extra arguments go to nextest.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m[test.sh]\033[0m %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    log "apt-get update"
    as_root apt-get update -qq
    apt_updated=1
  fi
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# --- PostgreSQL -------------------------------------------------------------
if [ -z "${ORCA_TEST_POSTGRES_URL:-}" ]; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
    apt_install postgresql
  fi
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
  export ORCA_TEST_POSTGRES_URL="postgres://postgres:postgres@127.0.0.1:$port/postgres"
  log "PostgreSQL ready at 127.0.0.1:$port"
fi

# --- Python packages used by examples and task tests -------------------------
PY=${ORCA_PYTHON:-python3}
if ! "$PY" -c 'import sklearn' >/dev/null 2>&1; then
  log "installing Python packages (scikit-learn)"
  "$PY" -m pip install -q scikit-learn
fi

# --- cargo-nextest ------------------------------------------------------------
if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

log "cargo nextest run --workspace"
exec cargo nextest run --workspace --no-fail-fast "$@"
