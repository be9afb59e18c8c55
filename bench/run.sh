#!/usr/bin/env bash
# Benchmark seed: a 40-task sequential chain of trivial shell tasks on an
# ephemeral standalone. Prints total time and per-hop latency (upstream end →
# downstream start, from the task instance timestamps). Figures, not asserts.
#   bench/run.sh [N_TASKS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_build_deps
n=${1:-40}
runs=${2:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo build --release -q -p orca
bin=${CARGO_TARGET_DIR:-target}/release/orca
python3 bench/gen_chain.py "$n" > "$tmp/chain.yaml"
for i in $(seq 1 "$runs"); do
  start=$(date +%s.%N)
  "$bin" run "$tmp/chain.yaml" --json > "$tmp/run$i.json" 2>/dev/null
  end=$(date +%s.%N)
  python3 bench/hops.py "$tmp/run$i.json" "$start" "$end" "chain-$n run $i"
done
