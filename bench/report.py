#!/usr/bin/env python3
"""Render bench/RESULTS.md from the JSON lines bench/compare.sh collected in
bench/results/ (one file per system and round). Every figure in the output
comes from those files; nothing is typed by hand.

  python3 bench/report.py [--results bench/results] [--orca target/release/orca] > bench/RESULTS.md
"""
import argparse
import glob
import json
import os
import platform
import re
import statistics
import subprocess
from collections import defaultdict

SYSTEMS = ["orca", "airflow", "prefect"]
PEERS = ["airflow", "prefect"]
NAMES = {"orca": "Orca", "airflow": "Airflow", "prefect": "Prefect", "floor": "floor"}

# (workload, key, label, unit, lower_is_better); Orca's W1S/W5S are W1/W5
# with `python_process: per_run`, set against the peers' W1/W5 (PEER_OF).
COMPARED = [
    ("W1", "span_s_median", "W1 40 sequential Python tasks, fib(10): span", "s", True),
    ("W1S", "span_s_median", "W1 with `python_process: per_run` (Orca's tasks share warm processes): span",
     "s", True),
    ("W2", "span_s_median", "W2 10 sequential Python tasks, fib(33): span", "s", True),
    ("W3", "span_s_median", "W3 fan-out/fan-in 1 → 100 → 1 shell tasks: span", "s", True),
    ("W4", "tasks_per_s", "W4 100 runs × 10 shell tasks at once: throughput", "tasks/s", False),
    ("W4", "trigger_to_first_start_p50_ms", "W4 trigger → first task start, p50", "ms", True),
    ("W4", "trigger_to_first_start_p99_ms", "W4 trigger → first task start, p99", "ms", True),
    ("W5", "hop_p50_ms", "W5 hop (upstream end → downstream start) over W1, p50", "ms", True),
    ("W5", "hop_p99_ms", "W5 hop over W1, p99", "ms", True),
    ("W5S", "hop_p50_ms", "W5 hop over W1 with `python_process: per_run`, p50", "ms", True),
]
PEER_OF = {"W1S": "W1", "W5S": "W5"}
ORCA_ONLY = [
    ("W6", "kill_to_leader_s", "W6 leader SIGKILL → a standby's /health says leader", "s"),
    ("W6", "kill_to_first_start_s", "W6 leader SIGKILL → first task start after it", "s"),
    ("W6", "normal_hop_p50_ms", "W6 normal hop in that cluster, p50", "ms"),
    ("W7", "standalone_start_ms", "W7 `orca standalone` spawn → /health 200 (fresh data dir)", "ms"),
    ("W7", "standalone_rss_mib", "W7 `orca standalone` idle RSS", "MiB"),
    ("W7", "master_first_start_ms", "W7 `orca master` first start (migrates a new DB)", "ms"),
    ("W7", "master_start_ms", "W7 `orca master` spawn → /health 200", "ms"),
    ("W7", "master_rss_mib", "W7 `orca master` idle RSS", "MiB"),
    ("W7", "worker_start_ms", "W7 `orca worker` spawn → /health 200", "ms"),
    ("W7", "worker_rss_mib", "W7 `orca worker` idle RSS", "MiB"),
    ("W7", "api_start_ms", "W7 `orca api` spawn → /health 200", "ms"),
    ("W7", "api_rss_mib", "W7 `orca api` idle RSS", "MiB"),
]
FLOOR = [
    ("fork_exec_true_ms", "spawn `/bin/true` + wait: posix_spawn = vfork + exec, as Rust's Command (median of 1000)", "ms"),
    ("python_start_ms", "`python -c pass`, the interpreter Orca's Python tasks start (median of 30)", "ms"),
    ("python3_path_start_ms", "`python3 -c pass` through PATH as found (median of 10)", "ms"),
    ("python_fork_exit_ms", "fork a warm Python interpreter, child exits at once, until reaped (median of 200)", "ms"),
    ("python_fork_cpu_ms", "CPU of parent + child per such fork (page tables, copy-on-write, teardown)", "ms"),
    ("grpc_rtt_ms", "loopback unary gRPC round trip, Python grpcio (median of 1000)", "ms"),
    ("sqlite_commit_ms", "one INSERT + COMMIT, SQLite WAL, synchronous=FULL (median of 200)", "ms"),
    ("pg_commit_ms", "one INSERT + COMMIT, PostgreSQL, synchronous_commit=on (median of 200)", "ms"),
]

# Issue 5's targets for Orca: (workload, key, op, bound, text), Orca's own
# median against a bound; or ("ratio", workload, key, peer, min_ratio, text),
# how many times better Orca's median is than the peer's (lower is better).
# Rendered as met / missed.
TARGETS = [
    ("ratio", "W1", "span_s_median", "airflow", 50, "W1 ≥ 50× faster than Airflow end to end"),
    ("ratio", "W1", "span_s_median", "prefect", 1,
     "W1 faster than Prefect end to end, a fresh process per task (Orca's default)"),
    ("ratio", "W1S", "span_s_median", "prefect", 1,
     "W1 faster than Prefect end to end, the run's tasks sharing warm processes (`python_process: per_run`)"),
    ("W5", "hop_p50_ms", "<=", 5, "W5 hop p50 < 5 ms on standalone"),
    ("W5", "hop_p99_ms", "<=", 20, "W5 hop p99 < 20 ms on standalone"),
    ("W4", "tasks_per_s", ">=", 500, "W4 ≥ 500 trivial shell tasks/s on this 2-core machine"),
    ("W6", "kill_to_first_start_s", "<=", 5, "W6 leader failover < 5 s (SIGKILL → first task start)"),
    ("W7", "master_rss_mib", "<=", 50, "W7 idle RSS of a master < 50 MB"),
]

# Why a target is missed, from profiling (shown only when it is missed).
WHY = {
    "W1 faster than Prefect end to end, a fresh process per task (Orca's default)": (
        "Prefect runs W1's tasks as plain function calls in the flow's own thread: no process, no log "
        "file, no durable record between two tasks. Orca runs every task as its own process, forked from "
        "a warm interpreter by the worker's Python fork server (own process group, log file, exit code on "
        "disk), and makes every state change durable before it acts on it. On this machine forking a warm "
        "interpreter whose child exits at once already takes {fork_ms} ms and {fork_cpu_ms} ms of CPU "
        "(the floor table): page tables copied, the pages the child writes copied, its copy torn down. "
        "{tasks} such forks alone take {forks_ms} ms of Prefect's {prefect_ms} ms, which leaves "
        "{left_ms} ms per hop for reporting the end, committing it, dispatching the next task and "
        "preparing it, while the fork's CPU competes for the machine's 2 cores; Orca's hop is {hop_ms} ms "
        "(W5). "
        "In standalone the report and the dispatch are in-process "
        "calls; the fork server keeps a spare child forked and warmed up ahead, which takes its task "
        "unparsed and tells its end before its exit. What remains of a hop is the commit, the attempt "
        "dir (dispatch record and script, made before the dispatch is accepted) and the hand-over, each "
        "a fraction of a millisecond; on 2 cores they also compete with the next spare's fork and the "
        "last task's exit. `ORCA_LOG=orca_master=debug` logs each commit's duration. "
        "A workflow that does not need a fresh process per task says `python_process: per_run`: its "
        "tasks then share warm processes, as Prefect's share its interpreter (W1S: {w1s_s} s)."),
    "W1 faster than Prefect end to end, the run's tasks sharing warm processes (`python_process: per_run`)": (
        "With no fork per task, what is left of a task is the hop (W5S p50 {hop_s_ms} ms): the report, "
        "one durable SQLite commit ({commit_ms} ms on this machine's floor), the dispatch, the attempt "
        "dir and the hand-over; Prefect records nothing durable between two tasks."),
    "W4 ≥ 500 trivial shell tasks/s on this 2-core machine": (
        "Each task is one bash process (the wrapper, which sources the script in a subshell and writes "
        "its exit code) and 7 files (attempt dir, dispatch record, script, log, pid record, exit code, "
        "terminal record). `perf record -a` during W4 puts the largest share of the machine's CPU in bash "
        "start-up (exec, dynamic loading, page faults), then Orca's own runtime (master, worker, API, "
        "SQLite). On the shared disk, ext4 inode allocation after many deletions (no journal: it scans "
        "recently deleted inodes) costs file-creating workloads up to half their speed, hence the fresh "
        "scratch filesystem (see above); the figure still moves with the disk's state."),
}


def why(text, f, data):
    """WHY[text] with the measured figures it names filled in ("?" when
    this run lacks them)."""
    fig = lambda v: "?" if v is None else f"{v:.2f}"  # noqa: E731
    fork = f.get("python_fork_exit_ms")
    prefect = med(data, "prefect", "W1", "span_s_median")
    prefect_ms = prefect * 1000 if prefect is not None else None
    forks = 40 * fork if fork is not None else None
    left = (prefect_ms - forks) / 39 if forks is not None and prefect_ms is not None else None
    return WHY[text].format(
        fork_ms=fig(fork),
        fork_cpu_ms=fig(f.get("python_fork_cpu_ms")),
        tasks=40,
        forks_ms=fig(forks),
        prefect_ms=fig(prefect_ms),
        left_ms=fig(left),
        hop_ms=fig(med(data, "orca", "W5", "hop_p50_ms")),
        w1s_s=fmt(med(data, "orca", "W1S", "span_s_median")),
        hop_s_ms=fig(med(data, "orca", "W5S", "hop_p50_ms")),
        commit_ms=fig(f.get("sqlite_commit_ms")),
    )


def sh(*argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:
        return ""


def load(results):
    data = defaultdict(lambda: defaultdict(list))  # (system, workload) -> key -> [values per round]
    meta, rounds = {}, []
    last = {}  # (system, workload) -> its last line, for the strings in it
    for path in sorted(glob.glob(os.path.join(results, "*.jsonl"))):
        for line in open(path):
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            system = r.get("system") or "orca"  # bench/workloads.py's lines carry no system
            w = r["workload"]
            if w == "meta":
                meta[system] = r
            elif w == "round":
                rounds.append(r)
            else:
                last[(system, w)] = r
                for k, v in r.items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("runs",):
                        data[(system, w)][k].append(v)
                    elif k == "all_success":
                        data[(system, w)][k].append(v)
    meta["floor"] = last.get(("floor", "floor"), {})
    return data, meta, rounds


def fmt(v, unit=""):
    if v is None:
        return "–"
    a = abs(v)
    s = f"{v:.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 1 else f"{v:.3f}"
    return s


def cell(vals, unit):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "–"
    m = statistics.median(vals)
    if len(vals) == 1:
        return f"{fmt(m)} (1 run)"
    return f"{fmt(m)} [{fmt(min(vals))}–{fmt(max(vals))}]"


def med(data, system, w, k):
    vals = [v for v in data.get((system, w), {}).get(k, []) if v is not None]
    return statistics.median(vals) if vals else None


def ratio(orca, peer, lower_better):
    if orca in (None, 0) or peer in (None, 0):
        return "–"
    r = peer / orca if lower_better else orca / peer
    return f"**{r:.1f}×** better" if r >= 1 else f"{1 / r:.1f}× worse"


def machine():
    cpu = re.search(r"Model name:\s*(.+)", sh("lscpu"))
    mem = re.search(r"MemTotal:\s*(\d+)", open("/proc/meminfo").read())
    return [
        ("CPU", cpu.group(1) if cpu else platform.processor()),
        ("cores (online)", str(os.cpu_count())),
        ("RAM", f"{int(mem.group(1)) / 1024 / 1024:.1f} GiB" if mem else "?"),
        ("kernel", platform.release()),
        ("OS", sh("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME")),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default="bench/results")
    ap.add_argument("--orca", default="target/release/orca")
    args = ap.parse_args()
    data, meta, rounds = load(args.results)
    n_rounds = {s: len({r["round"] for r in rounds if r["system"] == s}) for s in SYSTEMS + ["floor"]}
    out = []
    p = out.append
    p("# Benchmark results: Orca side by side with Airflow and Prefect")
    p("")
    p("Generated by `bench/compare.sh` (rendered by `bench/report.py` from the raw JSON lines in "
      "`bench/results/`); do not edit by hand, run the command again.")
    p("")
    if os.environ.get("ORCA_BENCH_NOTE"):
        p(f"> **{os.environ['ORCA_BENCH_NOTE']}**")
        p("")
    loads = [float(r["loadavg_before"].split()[0]) for r in rounds if r.get("loadavg_before")]
    dev = min((n for n in n_rounds.values() if n), default=0) < 3
    # compare.sh waits before each step until at most one task is runnable
    # (`settled`); older rounds only have the load average.
    unsettled = [r for r in rounds if r.get("settled") is False
                 or ("settled" not in r and r.get("loadavg_before")
                     and float(r["loadavg_before"].split()[0]) > 1.5 * (os.cpu_count() or 1))]
    if dev or unsettled:
        p("> **Development run.** " + ("Fewer than 3 rounds: ranges are not meaningful. " if dev else "")
          + (f"{len(unsettled)} of {len(rounds)} steps started on a busy machine (1-minute load average "
             f"before the steps: {min(loads):.1f}–{max(loads):.1f} on {os.cpu_count()} cores; this box is "
             "shared), so figures are inflated and noisy. " if unsettled and loads else "")
          + "Rerun `bench/compare.sh` (default 3 rounds) on a quiet machine for figures to quote.")
        p("")
    elif loads:
        p(f"Every step started on a quiet machine (at most one runnable task; the 1-minute load average, "
          f"which still carries the previous step, was {min(loads):.1f}–{max(loads):.1f}).")
        p("")
    p("Rounds per system: " + ", ".join(f"{NAMES[s]} {n}" for s, n in n_rounds.items() if n)
      + (f"; first step {min(r['at'] for r in rounds)}, last step {max(r['at'] for r in rounds)}" if rounds else "")
      + ". Each cell is the median over rounds, [min–max] after it.")
    p("")
    fs = defaultdict(set)
    for r in rounds:
        fs[r.get("fs") or "not recorded"].add(NAMES.get(r["system"], r["system"]))
    if fs:
        p("Working directories (TMPDIR: Orca's data dirs, Airflow's task logs, Prefect's home; "
          "the peers' PostgreSQL stays on the shared disk): "
          + "; ".join(f"{k}: {', '.join(sorted(v))}" for k, v in sorted(fs.items())) + ".")
        p("")

    p("## Machine")
    p("")
    p("| | |")
    p("|---|---|")
    for k, v in machine():
        p(f"| {k} | {v} |")
    p("")

    p("## Versions")
    p("")
    rev = sh("git", "rev-parse", "--short", "HEAD")
    # The run's own output (results, this file) is not a change to Orca.
    changed = [line for line in sh("git", "status", "--porcelain", "--untracked-files=no").splitlines()
               if not line.split(maxsplit=1)[-1].startswith(("bench/results/", "bench/RESULTS.md"))]
    dirty = " (+ uncommitted changes in the work tree)" if changed else ""
    p("| | |")
    p("|---|---|")
    built = ""
    if os.path.exists(args.orca):
        import datetime
        built = ", binary built " + datetime.datetime.utcfromtimestamp(os.path.getmtime(args.orca)).strftime("%Y-%m-%d %H:%M UTC")
    p(f"| Orca | {sh(args.orca, '--version') or '?'}, git {rev}{dirty}{built} |")
    for s in PEERS:
        if s in meta:
            p(f"| {NAMES[s]} | {meta[s].get('version')} (Python {meta[s].get('python')}) |")
    pg = meta.get("airflow", {}).get("postgres") or sh("psql", "-V")
    p(f"| PostgreSQL | {pg} |")
    p(f"| Python (host) | {platform.python_version()} |")
    etcd = sh("etcd", "--version").splitlines()
    p(f"| etcd (W6, W7) | {etcd[0] if etcd else '?'} |")
    p("")

    p("## Configuration")
    p("")
    p("- **Orca**: W1–W3 each `orca run FILE --json` (an ephemeral `orca standalone`: SQLite, in-process "
      "registry, one embedded worker with its default 8 slots); W4 one `orca standalone` and 100 "
      "`POST /workflows/default/w4-chain/runs` from 32 threads. Python tasks are forked from a warm "
      "interpreter (the worker's Python fork server, `worker.python_fork`, on by default), a fresh "
      "process per task; W1S is W1's file with `python_process: per_run` in its `workflow:` section "
      "(the run's tasks share warm processes). "
      f"`ORCA_PYTHON` (`{meta['floor'].get('python_start_interpreter', 'python3 resolved past any pyenv shim')}`; "
      f"`python3` on PATH here is `{meta['floor'].get('python3_path', '?')}`). "
      "W6: `bench/failover.sh` (etcd, PostgreSQL, 3 masters, 2 workers, API; lease TTL 3 s). W7: `bench/startup.py`.")
    if "airflow" in meta:
        a = meta["airflow"]
        p("- **Airflow**: metadata in PostgreSQL (database `airflow_bench`), `airflow scheduler` with the "
          "LocalExecutor; DAGs use PythonOperator (fib in the callable) for W1/W2 and BashOperator `true` "
          "for W3/W4; runs triggered with the library call behind `airflow dags trigger` from one process; "
          "figures from `task_instance.start_date/end_date`. Settings (environment `AIRFLOW__SECTION__KEY`), "
          "chosen for latency:")
        p("")
        p("  | setting | value |")
        p("  |---|---|")
        for k, v in a.get("config", {}).items():
            p(f"  | `{k}` | `{v}` |")
        p(f"  | default_pool slots (set in the DB) | `{a.get('default_pool_slots')}` |")
        p("")
    if "prefect" in meta:
        pr = meta["prefect"]
        p("- **Prefect**: a local `prefect server start`, its database fresh each round (`database` below: "
          "PostgreSQL by default, as Prefect recommends beyond light use; with SQLite the server answered "
          "W4's burst of run creations with 503s). W1–W3: "
          "the flow is called in the harness process (Prefect's local execution); W1/W2 tasks are plain "
          "task calls in the flow's thread, W3's 100 tasks `.submit()`ted to the default "
          "ThreadPoolTaskRunner — threads, not processes, unlike Orca and Airflow. W4: the chain is served "
          "by `flow.serve` (each flow run a new Python process, as a worker runs it), 100 runs created at "
          "once through the API. Figures from the task runs' `start_time/end_time`. Settings:")
        p("")
        p("  | setting | value |")
        p("  |---|---|")
        for k, v in pr.get("config", {}).items():
            p(f"  | `{k}` | `{v}` |")
        p("")
    p("Definitions (the same for every system): **span** = first task start → last task end of a run; "
      "**hop** = upstream task end → downstream task start (W1's chain); **throughput** = tasks ÷ "
      "(last task end − first trigger); **trigger → first start** = per run, the run's first task start "
      "minus the client's clock just before its trigger call. All from the timestamps each system records.")
    p("")

    p("## Orca vs peers")
    p("")
    p("Ratio: how many times better Orca's median is than the peer's (peer ÷ Orca for times, "
      "Orca ÷ peer for throughput).")
    p("")
    p("| figure | unit | " + " | ".join(NAMES[s] for s in SYSTEMS) + " | " +
      " | ".join(f"Orca vs {NAMES[s]}" for s in PEERS) + " |")
    p("|---|---|" + "---|" * (len(SYSTEMS) + len(PEERS)))
    for w, k, label, unit, lower in COMPARED:
        pw = lambda s: w if s == "orca" else PEER_OF.get(w, w)  # noqa: E731
        cells = [cell(data.get((s, pw(s)), {}).get(k, []), unit) for s in SYSTEMS]
        ratios = [ratio(med(data, "orca", w, k), med(data, s, pw(s), k), lower) for s in PEERS]
        p(f"| {label} | {unit} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    p("")
    p("Mind the models: Orca and Airflow run every task as its own process (Orca forks Python tasks "
      "from a warm interpreter and runs one bash per shell task; Airflow's LocalExecutor forks per task), "
      "except Orca's W1S, whose tasks share warm processes (still apart from the worker, each task with "
      "its own log and exit code, its cwd, environment and `__main__` reset); "
      "Prefect's W1–W3 tasks are function calls (W1, W2) or threads (W3) inside the flow's one process, "
      "and only its W4 starts a process per flow run.")
    p("")
    fails = [f"{NAMES[s]} {w}" for (s, w), d in data.items() if False in d.get("all_success", [])]
    if fails:
        p(f"Not every task succeeded in: {', '.join(fails)}.")
        p("")

    p("## Orca only: failover (W6), start-up and idle memory (W7)")
    p("")
    p("| figure | unit | Orca |")
    p("|---|---|---|")
    for w, k, label, unit in ORCA_ONLY:
        p(f"| {label} | {unit} | {cell(data.get(('orca', w), {}).get(k, []), unit)} |")
    p("")

    fl = data.get(("floor", "floor"), {})
    p("## The floor on this machine")
    p("")
    p("| floor | unit | value |")
    p("|---|---|---|")
    for k, label, unit in FLOOR:
        p(f"| {label} | {unit} | {cell(fl.get(k, []), unit)} |")
    p("")
    f = {k: (statistics.median(v) if v else None) for k, v in fl.items()}
    o = lambda w, k: med(data, "orca", w, k)  # noqa: E731
    rows = []
    if f.get("sqlite_commit_ms") is not None:
        # A hop: the worker reports the end, the leader commits it and
        # dispatches the successor, the worker starts it. In standalone the
        # two calls are in-process (no RPC), so the floor is the commit.
        # (The task's start is stamped by the worker when it starts the task.)
        hop_floor = f["sqlite_commit_ms"]
        for k, label in (("hop_p50_ms", "W5 hop p50"), ("hop_p99_ms", "W5 hop p99")):
            if o("W5", k) is not None:
                rows.append((label, o("W5", k), "1 SQLite commit (calls in-process)", hop_floor))
        if o("W1", "span_s_median") is not None and f.get("python_fork_exit_ms") is not None:
            rows.append(("W1 per task (span ÷ 40)", o("W1", "span_s_median") * 1000 / 40,
                         "1 warm Python fork + exit + 1 hop floor", f["python_fork_exit_ms"] + hop_floor))
        if o("W1S", "span_s_median") is not None:
            rows.append(("W1S per task (span ÷ 40, `per_run`)", o("W1S", "span_s_median") * 1000 / 40,
                         "1 hop floor (no fork)", hop_floor))
        if o("W3", "span_s_median") is not None:
            rows.append(("W3 span", o("W3", "span_s_median") * 1000,
                         "3 levels of (hop floor) + 102 fork/exec ÷ cores",
                         3 * hop_floor + 102 * (f.get("fork_exec_true_ms") or 0) / (os.cpu_count() or 1)))
    if o("W4", "tasks_per_s") and f.get("fork_exec_true_ms") is not None:
        rows.append(("W4 time per task (1 ÷ throughput)", 1000 / o("W4", "tasks_per_s"),
                     "1 fork/exec ÷ cores + 1 SQLite commit ÷ cores",
                     (f["fork_exec_true_ms"] + f.get("sqlite_commit_ms", 0)) / (os.cpu_count() or 1)))
    if o("W7", "standalone_start_ms") is not None and f.get("fork_exec_true_ms") is not None:
        rows.append(("W7 standalone start", o("W7", "standalone_start_ms"), "1 fork/exec + 1 SQLite commit",
                     f["fork_exec_true_ms"] + (f.get("sqlite_commit_ms") or 0)))
    if rows:
        p("### Orca above the floor")
        p("")
        p("A rough lower bound for each figure, built from the floor's medians. Standalone's "
          "master and worker call each other in-process, so a hop's floor is one commit. "
          "It errs low for W3 and W4, which it treats as perfectly parallel over the cores, "
          "ignoring the worker's 8 slots.")
        p("")
        p("| Orca figure | Orca (ms) | floor built from | floor (ms) | above floor |")
        p("|---|---|---|---|---|")
        for label, v, how, fv in rows:
            p(f"| {label} | {fmt(v)} | {how} | {fmt(fv)} | {'+' if v >= fv else '−'}{fmt(abs(v - fv))} ms ({v / fv:.1f}×) |")
        p("")

    p("## Targets")
    p("")
    if not TARGETS:
        p("No numeric targets are recorded in `bench/report.py` (`TARGETS`) yet, so none is judged met or missed.")
    else:
        missed = []
        p("| target | Orca (median) | |")
        p("|---|---|---|")
        for t in TARGETS:
            if t[0] == "ratio":
                _, w, k, peer, bound, text = t
                v, pv = o(w, k), med(data, peer, PEER_OF.get(w, w), k)
                r = pv / v if v and pv else None
                shown = f"{fmt(v)} vs {fmt(pv)} ({r:.1f}×)" if r is not None else "–"
                ok = r is not None and r >= bound
            else:
                w, k, op, bound, text = t
                v = o(w, k)
                shown = fmt(v)
                ok = v is not None and (v <= bound if op == "<=" else v >= bound)
            p(f"| {text} | {shown} | {'met' if ok else '**missed**'} |")
            if not ok and text in WHY:
                missed.append((text, why(text, f, data)))
    p("")
    for text, reason in missed:
        p(f"**Missed: {text}.** {reason}")
        p("")
    p("## How to run")
    p("")
    p("```")
    p("bench/compare.sh [--runs N] [--only orca,floor,airflow,prefect] [--skip-install] [--no-build] [--no-scratch]")
    p("```")
    p("")
    p("First use installs Airflow and Prefect into venvs under `~/.cache/orca-bench/` (a few minutes). "
      "Raw per-round JSON lines: `bench/results/SYSTEM-ROUND.jsonl`; a step's log: `bench/results/.SYSTEM-ROUND.log`.")
    print("\n".join(out))


if __name__ == "__main__":
    main()
