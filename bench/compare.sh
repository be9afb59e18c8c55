#!/usr/bin/env bash
# Orca side by side with its peers (issue 5), and bench/RESULTS.md from it.
#
#   bench/compare.sh [--runs N] [--only orca,floor,airflow,prefect] [--skip-install] [--no-build] [--no-scratch]
#
# Builds the release binary, then N rounds; each round runs, one after the
# other, each selected system once:
#   orca     bench/workloads.py (W1-W5), bench/failover.sh (W6, needs etcd and
#            PostgreSQL) and bench/startup.py (W7)
#   floor    bench/floor.py (fork/exec, python start, gRPC RTT, commits)
#   airflow  bench/peers/airflow_bench.py (venv, PostgreSQL, LocalExecutor)
#   prefect  bench/peers/prefect_bench.py (venv, local server)
# Rounds interleave the systems so that a change of load on this shared box
# is spread over all of them. As root, every step runs with TMPDIR on a
# freshly made ext4 filesystem (a loop-mounted image under
# ~/.cache/orca-bench): the working dirs of Orca (data dirs), Airflow (task
# logs) and Prefect (home) then start from the same clean state instead of
# the shared disk's, whose inode allocation after many deletions (ext4
# without a journal scans recently deleted inodes) costs file-creating
# workloads up to half their speed. `--no-scratch` uses the shared disk. Every JSON line goes to bench/results/SYSTEM-ROUND.jsonl
# (those of the selected systems are replaced; the others' are kept), then
# bench/report.py renders bench/RESULTS.md from all of bench/results/.
#
# Env: ORCA_BIN (skip the build), ORCA_PYTHON (the interpreter of Orca's
# Python tasks; default: python3 resolved to its real binary, past any pyenv
# shim), ORCA_BENCH_NICE (niceness of every run, default 0),
# ORCA_BENCH_NOTE (a line printed at the top of RESULTS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

runs=3
only=orca,floor,airflow,prefect
skip=()
build=1
scratch=1
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --runs=*) runs=${1#*=}; shift ;;
    --only) only=$2; shift 2 ;;
    --only=*) only=${1#*=}; shift ;;
    --skip-install) skip=(--skip-install); shift ;;
    --no-build) build=0; shift ;;
    --no-scratch) scratch=0; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
want() { [[ ",$only," == *",$1,"* ]]; }
for s in ${only//,/ }; do
  case $s in orca|floor|airflow|prefect) ;; *) echo "--only: unknown system $s" >&2; exit 2 ;; esac
done

nice_=(nice -n "${ORCA_BENCH_NICE:-0}")
out=bench/results
mkdir -p "$out"

if [ -n "${ORCA_BIN:-}" ]; then
  bin=$ORCA_BIN
else
  bin=${CARGO_TARGET_DIR:-target}/release/orca
  if [ "$build" = 1 ] && want orca; then
    ensure_build_deps
    log "cargo build --release -p orca"
    cargo build --release -q -p orca
  fi
fi
if want orca; then
  [ -x "$bin" ] || { log "no Orca binary at $bin"; exit 1; }
  command -v etcd >/dev/null || ensure_etcd
fi
command -v psql >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q online || ensure_postgres
# Orca's Python tasks start this interpreter; a pyenv shim on PATH is a shell
# script that costs ~100 ms per start, which is not Orca's cost.
export ORCA_PYTHON=${ORCA_PYTHON:-$(python3 -c 'import sys; print(sys.executable)')}
export ORCA_BENCH_PATH_PYTHON=$(command -v python3)

for s in ${only//,/ }; do rm -f "$out/$s"-*.jsonl; done

# A fresh ext4 scratch filesystem for the next step (see the header).
scratch_img=$HOME/.cache/orca-bench/scratch.img
scratch_dir=/tmp/orca-bench-scratch
fs_desc="shared disk ($(df -T /tmp | awk 'NR == 2 {print $2}'))"
if [ "$scratch" = 1 ] && { [ "$(id -u)" != 0 ] || ! command -v mkfs.ext4 >/dev/null; }; then
  log "not root or no mkfs.ext4: working dirs stay on the shared disk"
  scratch=0
fi
fresh_scratch() {
  [ "$scratch" = 1 ] || return 0
  mountpoint -q "$scratch_dir" && umount "$scratch_dir"
  mkdir -p "$scratch_dir" "$(dirname "$scratch_img")"
  rm -f "$scratch_img"
  truncate -s 6G "$scratch_img"
  # Inode tables and journal written now, not by a background thread
  # (ext4lazyinit) during the step.
  mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$scratch_img"
  mount -o loop "$scratch_img" "$scratch_dir"
  chmod 1777 "$scratch_dir"
  export TMPDIR=$scratch_dir ORCA_BENCH_SCRATCH=1
  fs_desc="fresh ext4 scratch (loop, 6 GiB, made before this step)"
}
cleanup_scratch() {
  if [ "$scratch" = 1 ] && mountpoint -q "$scratch_dir"; then umount "$scratch_dir" || true; fi
  rm -f "$scratch_img"
}
trap cleanup_scratch EXIT

# Waits (at most 3 min) until the machine is quiet: at most one runnable
# task in three samples 0.5 s apart. A peer's last workload leaves a burst
# of exiting processes behind (load average 10+ for a minute or two), which
# would otherwise land on the next step. Prints "true" when it settled.
settle() {
  local quiet=0 i
  for i in $(seq 1 360); do
    local r; r=$(awk '{split($4, a, "/"); print a[1] - 1}' /proc/loadavg)
    if [ "$r" -le 1 ]; then quiet=$((quiet + 1)); else quiet=0; fi
    [ "$quiet" -ge 3 ] && { echo true; return; }
    sleep 0.5
  done
  echo false
}

json_lines() { grep '^{' || true; }
step() { # system round what timeout command...
  local sys=$1 round=$2 what=$3 limit=$4; shift 4
  local file="$out/$sys-$round.jsonl" err="$out/.$sys-$round.log"
  log "round $round/$runs: $sys $what"
  fresh_scratch
  local settled; settled=$(settle)
  printf '{"workload": "round", "system": "%s", "round": %s, "what": "%s", "loadavg_before": "%s", "settled": %s, "at": "%s", "fs": "%s"}\n' \
    "$sys" "$round" "$what" "$(cut -d' ' -f1-3 /proc/loadavg)" "$settled" "$(date -u +%FT%TZ)" "$fs_desc" >>"$file"
  if ! timeout --kill-after=30 "$limit" "${nice_[@]}" "$@" 2>>"$err" | tee -a "$err" | json_lines >>"$file"; then
    log "$sys $what failed or timed out (round $round); last lines of $err:"
    tail -n 15 "$err" >&2
    return 1
  fi
}

failed=()
for round in $(seq 1 "$runs"); do
  if want orca; then
    step orca "$round" W1-W5 1800 python3 bench/workloads.py --orca "$bin" --runs 1 || failed+=("orca W1-W5 #$round")
    step orca "$round" W6 600 env ORCA_BIN="$bin" bench/failover.sh || failed+=("orca W6 #$round")
    step orca "$round" W7 300 python3 bench/startup.py --orca "$bin" || failed+=("orca W7 #$round")
  fi
  if want floor; then
    step floor "$round" floor 900 python3 bench/floor.py "${skip[@]}" || failed+=("floor #$round")
  fi
  if want airflow; then
    step airflow "$round" W1-W5 5400 python3 bench/peers/airflow_bench.py --runs 1 "${skip[@]}" || failed+=("airflow #$round")
  fi
  if want prefect; then
    step prefect "$round" W1-W5 3600 python3 bench/peers/prefect_bench.py --runs 1 "${skip[@]}" || failed+=("prefect #$round")
  fi
done

python3 bench/report.py --results "$out" --orca "$bin" >bench/RESULTS.md
log "wrote bench/RESULTS.md (raw figures in $out/)"
if [ ${#failed[@]} -gt 0 ]; then
  log "failed: ${failed[*]}"
  exit 1
fi
