#!/usr/bin/env bash
# A local Orca cluster on loopback, for people and for tests:
#   etcd + PostgreSQL + 3 masters + 3 workers + the API server.
#
#   scripts/cluster.sh up      # build, start everything, wait until healthy
#   scripts/cluster.sh status  # who runs, who leads
#   scripts/cluster.sh down    # stop everything (PostgreSQL keeps running)
#
# State lives in $ORCA_CLUSTER_DIR (default .orca-cluster/): logs, pids, worker
# data, and cli.json (API URL + token), so that
#   ORCA_DATA_DIR=.orca-cluster orca run wf.yaml --server http://127.0.0.1:8080
# works. Ports: etcd 23790, masters 5701-5703 (http 9101-9103), workers
# 5711-5713 (http 9111-9113), API 8080 (override with ORCA_CLUSTER_API_PORT).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

dir=${ORCA_CLUSTER_DIR:-.orca-cluster}
api_port=${ORCA_CLUSTER_API_PORT:-8080}
etcd_port=23790
db=orca_cluster

bin() {
  if [ -n "${ORCA_BIN:-}" ]; then echo "$ORCA_BIN"; return; fi
  ensure_build_deps
  cargo build --release -q -p orca >&2
  echo "${CARGO_TARGET_DIR:-target}/release/orca"
}

start() { # name, command...
  local name=$1; shift
  nohup "$@" >"$dir/logs/$name.log" 2>&1 &
  echo "$! $name" >>"$dir/pids"
}

wait_http() { # url, what
  for _ in $(seq 1 150); do
    if curl -fsS "$1" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  log "$2 did not come up; see $dir/logs/"; return 1
}

up() {
  if [ -f "$dir/pids" ]; then log "already up (or stale): run '$0 down' first"; exit 1; fi
  command -v curl >/dev/null || apt_install curl
  ensure_etcd
  ensure_postgres
  local orca; orca=$(bin)
  mkdir -p "$dir/logs"
  as_root su postgres -c "psql -p $ORCA_PG_PORT -qtAc \"SELECT 1 FROM pg_database WHERE datname='$db'\"" | grep -q 1 \
    || as_root su postgres -c "psql -p $ORCA_PG_PORT -qc 'CREATE DATABASE $db'" >/dev/null
  export ORCA_STORE__URL="postgres://postgres:postgres@127.0.0.1:$ORCA_PG_PORT/$db"
  export ORCA_REGISTRY__ENDPOINTS="http://127.0.0.1:$etcd_port"

  start etcd etcd --name orca-local --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$((etcd_port + 10))" --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_port + 10))" \
    --initial-cluster "orca-local=http://127.0.0.1:$((etcd_port + 10))"
  wait_http "http://127.0.0.1:$etcd_port/health" etcd

  for i in 1 2 3; do
    start "master$i" "$orca" master --set "master.id=master-$i" \
      --set "master.listen=127.0.0.1:$((5700 + i))" --set master.advertise_host=127.0.0.1 \
      --set "master.http_listen=127.0.0.1:$((9100 + i))"
  done
  for i in 1 2 3; do
    start "worker$i" "$orca" worker --set "worker.id=worker-$i" \
      --set "worker.listen=127.0.0.1:$((5710 + i))" --set worker.advertise_host=127.0.0.1 \
      --set "worker.http_listen=127.0.0.1:$((9110 + i))" --set "worker.data_dir=$dir/worker$i"
  done
  start api "$orca" api --set "api.listen=127.0.0.1:$api_port" --credentials-dir "$dir"
  for i in 1 2 3; do wait_http "http://127.0.0.1:$((9100 + i))/health" "master$i"; done
  for i in 1 2 3; do wait_http "http://127.0.0.1:$((9110 + i))/health" "worker$i"; done
  wait_http "http://127.0.0.1:$api_port/health" api
  status
  log "up. Try: ORCA_DATA_DIR=$dir $orca run examples/quickstart.yaml --server http://127.0.0.1:$api_port"
}

status() {
  [ -f "$dir/pids" ] || { log "not running"; return 0; }
  while read -r pid name; do
    local state=down role=""
    if kill -0 "$pid" 2>/dev/null; then state=up; fi
    case $name in
      master*) role=$(curl -fsS "http://127.0.0.1:$((9100 + ${name#master}))/health" 2>/dev/null || true) ;;
    esac
    printf '%-8s pid %-7s %-4s %s\n' "$name" "$pid" "$state" "$role"
  done <"$dir/pids"
}

down() {
  [ -f "$dir/pids" ] || { log "not running"; return 0; }
  # API and masters first, then workers (they kill their tasks), etcd last.
  for pattern in api master worker etcd; do
    while read -r pid name; do
      case $name in $pattern*) kill "$pid" 2>/dev/null || true ;; esac
    done <"$dir/pids"
    while read -r pid name; do
      case $name in
        $pattern*) for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
                   kill -9 "$pid" 2>/dev/null || true ;;
      esac
    done <"$dir/pids"
  done
  rm -f "$dir/pids"
  log "down (data kept in $dir; PostgreSQL database $db kept)"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
