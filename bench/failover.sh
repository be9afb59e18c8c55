#!/usr/bin/env bash
# Leader failover time on a throwaway local cluster: etcd + a fresh PostgreSQL
# database + 3 masters + 2 workers + the API, all on free loopback ports with
# short leases. Runs a sequential chain, SIGKILLs the leader once a third of
# it is done, and prints (figures, not asserts):
#   - kill → another master's /health says "leader";
#   - kill → first task start after the kill (the new leader's first
#     dispatch: the task whose upstream ended after the kill), from the task
#     instance timestamps of `orca run --json`;
#   - the normal hop latency (upstream end → downstream start) for contrast.
#
#   bench/failover.sh [N_TASKS] [TASK_SECONDS]
#
# Env: ORCA_BIN (skip the build), ORCA_TEST_POSTGRES_URL or ORCA_PG_URL (a
# PostgreSQL superuser URL; otherwise scripts/lib.sh starts a local one),
# ORCA_BENCH_LEASE_TTL (3s), ORCA_BENCH_KEEPALIVE (500ms),
# ORCA_BENCH_FENCE_MARGIN (1s), ORCA_BENCH_KEEP=1 (keep the temp dir).
# Does not touch scripts/cluster.sh's fixed ports or its `orca_cluster`
# database, so it can run next to a developer's cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

n=${1:-30}
task_s=${2:-0.3}
ttl=${ORCA_BENCH_LEASE_TTL:-3s}
keepalive=${ORCA_BENCH_KEEPALIVE:-500ms}
margin=${ORCA_BENCH_FENCE_MARGIN:-1s}

command -v curl >/dev/null || apt_install curl
ensure_etcd
server=${ORCA_TEST_POSTGRES_URL:-${ORCA_PG_URL:-}}
if [ -z "$server" ]; then ensure_postgres; server=$ORCA_PG_URL; fi
if [ -n "${ORCA_BIN:-}" ]; then
  bin=$ORCA_BIN
else
  ensure_build_deps
  cargo build --release -q -p orca
  bin=${CARGO_TARGET_DIR:-target}/release/orca
fi

tmp=$(mktemp -d -t orca-failover-XXXXXX)
db="orca_failover_$$"
base=${server%%\?*}
base=${base%/*}
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  psql "$server" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  if [ "${ORCA_BENCH_KEEP:-0}" = 1 ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start() { # name, command...
  local name=$1; shift
  "$@" >"$tmp/$name.log" 2>&1 &
  pids+=("$!")
}
wait_http() { # url, what
  for _ in $(seq 1 300); do
    if curl -fsS "$1" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  log "$2 did not come up; see $tmp/$2.log"; ORCA_BENCH_KEEP=1; return 1
}
now() { date +%s.%N; }

psql "$server" -qc "CREATE DATABASE $db" >/dev/null
etcd_port=$(free_port); peer_port=$(free_port)
start etcd etcd --name bench --data-dir "$tmp/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "bench=http://127.0.0.1:$peer_port"
wait_http "http://127.0.0.1:$etcd_port/health" etcd

export ORCA_STORE__URL="$base/$db"
export ORCA_REGISTRY__ENDPOINTS="http://127.0.0.1:$etcd_port"
export ORCA_REGISTRY__LEASE_TTL=$ttl ORCA_REGISTRY__KEEPALIVE_INTERVAL=$keepalive \
  ORCA_REGISTRY__FENCE_MARGIN=$margin ORCA_MASTER__WORKER_LOSS_GRACE=1s
master_http=()
for i in 1 2 3; do
  p=$(free_port); h=$(free_port); master_http+=("$h")
  start "master$i" "$bin" master --set "master.id=master-$i" \
    --set "master.listen=127.0.0.1:$p" --set master.advertise_host=127.0.0.1 \
    --set "master.http_listen=127.0.0.1:$h"
done
worker_http=()
for i in 1 2; do
  p=$(free_port); h=$(free_port); worker_http+=("$h")
  start "worker$i" "$bin" worker --set "worker.id=worker-$i" \
    --set "worker.listen=127.0.0.1:$p" --set worker.advertise_host=127.0.0.1 \
    --set "worker.http_listen=127.0.0.1:$h" --set "worker.data_dir=$tmp/worker$i"
done
api_port=$(free_port)
start api "$bin" api --set "api.listen=127.0.0.1:$api_port" --credentials-dir "$tmp"
for i in 1 2 3; do wait_http "http://127.0.0.1:${master_http[$((i - 1))]}/health" "master$i"; done
for i in 1 2; do wait_http "http://127.0.0.1:${worker_http[$((i - 1))]}/health" "worker$i"; done
wait_http "http://127.0.0.1:$api_port/health" api
for _ in $(seq 1 100); do [ -s "$tmp/cli.json" ] && break; sleep 0.1; done

leader() { # index (1-based) of the master whose /health says leader, skipping $1
  local i
  for i in 1 2 3; do
    [ "$i" = "${1:-0}" ] && continue
    if [ "$(curl -fsS -m 1 "http://127.0.0.1:${master_http[$((i - 1))]}/health" 2>/dev/null)" = leader ]; then
      echo "$i"; return 0
    fi
  done
  return 1
}

# A chain of N tasks of TASK_SECONDS; each appends to $tmp/done when it ends.
{
  printf 'workflow:\n  name: failover-chain\ntasks:\n'
  for i in $(seq 0 $((n - 1))); do
    printf '  - name: t%03d\n    task_type: Shell\n    command: "sleep %s; echo t%03d >> %s/done"\n' \
      "$i" "$task_s" "$i" "$tmp"
    [ "$i" -gt 0 ] && printf '    deps: [t%03d]\n' $((i - 1))
  done
} >"$tmp/chain.yaml"
touch "$tmp/done"
ORCA_DATA_DIR=$tmp "$bin" run "$tmp/chain.yaml" --server "http://127.0.0.1:$api_port" --json \
  >"$tmp/run.json" 2>"$tmp/run.log" &
run_pid=$!

for _ in $(seq 1 600); do [ "$(wc -l <"$tmp/done")" -ge $((n / 3)) ] && break; sleep 0.05; done
old=$(leader) || { log "no leader"; exit 1; }
kill_at=$(now)
{ kill -9 "${pids[$old]}"; wait "${pids[$old]}"; } 2>/dev/null || true  # pids: etcd, master1..3, ...
new=""
for _ in $(seq 1 600); do new=$(leader "$old") && break; sleep 0.02; done
leader_at=$(now)
log "killed master$old; master$new leads"
if ! timeout 300 tail --pid="$run_pid" -f /dev/null; then log "run did not finish"; exit 1; fi
wait "$run_pid" || true

python3 - "$tmp/run.json" "$kill_at" "$leader_at" "$old" "$new" <<'EOF'
import json, sys
from datetime import datetime

def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()

run = json.load(open(sys.argv[1]))
kill, leader_at, old, new = float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
tasks = sorted((t for t in run["tasks"] if t["state"] == "SUCCESS"), key=lambda t: t["task_name"])
hops, after = [], []
for a, b in zip(tasks, tasks[1:]):
    gap = ts(b["start_time"]) - ts(a["end_time"])
    (after if ts(a["end_time"]) > kill and not after else hops).append((a, b, gap))
print(f"run {run['instance']['id']}: {run['instance']['state']}, {len(tasks)} tasks, "
      f"{sum(t['failover'] for t in run['tasks'])} failover attempts")
print(f"leader master{old} SIGKILLed; master{new} leads after {leader_at - kill:.2f}s (health poll)")
if after:
    a, b, gap = after[0]
    print(f"first task start after the kill: {b['task_name']} at +{ts(b['start_time']) - kill:.2f}s "
          f"({a['task_name']} ended at +{ts(a['end_time']) - kill:.2f}s; hop {gap * 1000:.0f}ms)")
gaps = sorted(g for _, _, g in hops)
if gaps:
    print(f"normal hops: p50 {gaps[len(gaps) // 2] * 1000:.1f}ms, max {gaps[-1] * 1000:.1f}ms over {len(gaps)}")
# The same figures as one JSON line, for bench/compare.sh.
print(json.dumps({
    "workload": "W6", "system": "orca", "state": run["instance"]["state"], "tasks": len(tasks),
    "kill_to_leader_s": leader_at - kill,
    "kill_to_first_start_s": ts(after[0][1]["start_time"]) - kill if after else None,
    "normal_hop_p50_ms": gaps[len(gaps) // 2] * 1000 if gaps else None,
}))
EOF
