#!/usr/bin/env python3
"""Orca's side of the benchmark workloads (issue 5), on this machine.

  W1  40 sequential lightweight Python tasks (fib(10) each)
  W2  10 sequential long Python tasks (fib(33) each)
  W3  fan-out/fan-in: 1 -> 100 parallel trivial shell tasks -> 1
  W4  throughput: 100 runs of a 10-task chain triggered at once
  W5  per-hop latency (upstream end -> downstream start) over W1
  W1S, W5S  W1 and W5 with `python_process: per_run` (the run's tasks share
      warm processes instead of a fresh one each: Prefect's model)

Every figure comes from the task instance timestamps Orca records (worker
clock, microseconds). Prints one JSON line per workload, then a table.
Figures are printed, never asserted.

  python3 bench/workloads.py --orca target/release/orca [--runs 3] [--only W1,W4]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def chain_yaml(name, n, task, header=""):
    lines = [f"workflow:\n  name: {name}\n{header}tasks:"]
    for i in range(n):
        lines.append(f"  - name: t{i:03d}\n    task_type: {task['type']}")
        key = "definition" if task["type"] == "Python" else "command"
        lines.append(f"    {key}: {json.dumps(task['code'])}")
        if i:
            lines.append(f"    deps: [t{i - 1:03d}]")
    return "\n".join(lines) + "\n"


def fanout_yaml(width):
    lines = ["workflow:\n  name: w3-fanout\ntasks:", "  - {name: start, task_type: Shell, command: 'true'}"]
    for i in range(width):
        lines.append(f"  - {{name: p{i:03d}, task_type: Shell, deps: [start], command: 'true'}}")
    deps = ", ".join(f"p{i:03d}" for i in range(width))
    lines.append(f"  - {{name: end, task_type: Shell, deps: [{deps}], command: 'true'}}")
    return "\n".join(lines) + "\n"


FIB = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\nprint(fib({n}))\n"


def run_file(orca, yaml_text, tmp):
    path = os.path.join(tmp, "wf.yaml")
    with open(path, "w") as f:
        f.write(yaml_text)
    t0 = time.time()
    out = subprocess.run([orca, "run", path, "--json"], capture_output=True, text=True)
    wall = time.time() - t0
    if out.returncode != 0:
        sys.exit(f"orca run failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout), wall


def span(tasks):
    starts = [ts(t["start_time"]) for t in tasks if t.get("start_time")]
    ends = [ts(t["end_time"]) for t in tasks if t.get("end_time")]
    return max(ends) - min(starts)


def hops(tasks):
    ok = sorted((t for t in tasks if t["state"] == "SUCCESS"), key=lambda t: t["task_name"])
    return [(ts(b["start_time"]) - ts(a["end_time"])) * 1000 for a, b in zip(ok, ok[1:])]


def w4(orca, tmp, runs=100, width=10):
    data = os.path.join(tmp, "w4-data")
    port = 18700 + os.getpid() % 1000
    proc = subprocess.Popen(
        [orca, "standalone", "--data-dir", data, "--http", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        creds = os.path.join(data, "cli.json")
        deadline = time.time() + 60
        while not os.path.exists(creds):
            if time.time() > deadline or proc.poll() is not None:
                sys.exit("standalone did not start")
            time.sleep(0.05)
        token = json.load(open(creds))["token"]
        base = f"http://127.0.0.1:{port}/api/v1"

        def call(method, path, body=None):
            req = urllib.request.Request(
                base + path,
                method=method,
                data=None if body is None else json.dumps(body).encode(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.load(r)

        yaml_path = os.path.join(tmp, "w4.yaml")
        with open(yaml_path, "w") as f:
            f.write(chain_yaml("w4-chain", width, {"type": "Shell", "code": "true"}))
        env = dict(os.environ, ORCA_DATA_DIR=data)
        subprocess.run([orca, "apply", "-f", yaml_path, "--server", f"http://127.0.0.1:{port}"],
                       env=env, check=True, capture_output=True)
        t0 = time.time()
        with ThreadPoolExecutor(32) as pool:
            trig = list(pool.map(lambda _: (time.time(), call("POST", "/workflows/default/w4-chain/runs", {})), range(runs)))
        ids = []
        for at, t in trig:
            while True:
                c = call("GET", f"/commands/{t['command_id']}")
                if c.get("workflow_instance_id"):
                    ids.append((at, c["workflow_instance_id"]))
                    break
                time.sleep(0.01)
        # Poll lightly (one list call every 200 ms): the bench must not
        # steal the CPU it measures.
        wanted = {i for _, i in ids}
        while True:
            listed = call("GET", f"/runs?limit={min(len(ids) * 2, 1000)}")
            if isinstance(listed, dict):  # a page: {"items": [...], "next_cursor": ...}
                listed = listed["items"]
            done = {r["id"] for r in listed if r["state"] in ("SUCCESS", "FAILURE", "STOP")}
            if wanted <= done:
                break
            time.sleep(0.2)
        details = [(at, call("GET", f"/runs/{i}")) for at, i in ids]
        tasks = [t for _, d in details for t in d["tasks"]]
        end = max(ts(t["end_time"]) for t in tasks)
        first_start = [min(ts(t["start_time"]) for t in d["tasks"]) - at for at, d in details]
        ok = all(d["instance"]["state"] == "SUCCESS" for _, d in details)
        return {
            "tasks": len(tasks),
            "all_success": ok,
            "tasks_per_s": len(tasks) / (end - t0),
            "trigger_to_first_start_p50_ms": pct(first_start, 50) * 1000,
            "trigger_to_first_start_p99_ms": pct(first_start, 99) * 1000,
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--orca", default="target/release/orca")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="W1,W1S,W2,W3,W4",
                    help="comma-separated workloads (W5 comes with W1, W5S with W1S)")
    args = ap.parse_args()
    only = set(args.only.upper().split(","))
    results = []
    with tempfile.TemporaryDirectory(prefix="orca-bench-") as tmp:
        plans = [
            ("W1", chain_yaml("w1", 40, {"type": "Python", "code": FIB.format(n=10)})),
            # W1 again, its tasks sharing warm processes (Prefect's model).
            ("W1S", chain_yaml("w1s", 40, {"type": "Python", "code": FIB.format(n=10)},
                               "  python_process: per_run\n")),
            ("W2", chain_yaml("w2", 10, {"type": "Python", "code": FIB.format(n=33)})),
            ("W3", fanout_yaml(100)),
        ]
        for name, yaml_text in plans:
            if name not in only:
                continue
            spans, walls, hop_all = [], [], []
            for _ in range(args.runs):
                run, wall = run_file(args.orca, yaml_text, tmp)
                assert run["instance"]["state"] == "SUCCESS", run["instance"]
                spans.append(span(run["tasks"]))
                walls.append(wall)
                if name in ("W1", "W1S"):
                    hop_all.extend(hops(run["tasks"]))
            r = {"workload": name, "runs": args.runs, "span_s_median": statistics.median(spans),
                 "span_s_min": min(spans), "span_s_max": max(spans), "wall_s_median": statistics.median(walls)}
            results.append(r)
            if name in ("W1", "W1S"):
                results.append({"workload": name.replace("W1", "W5"), "hops": len(hop_all),
                                "hop_p50_ms": pct(hop_all, 50),
                                "hop_p99_ms": pct(hop_all, 99), "hop_max_ms": max(hop_all)})
        if "W4" in only:
            r = {"workload": "W4"}
            r.update(w4(args.orca, tmp))
            results.append(r)
    for r in results:
        print(json.dumps(r))
    print()
    for r in results:
        figures = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items() if k != "workload")
        print(f"{r['workload']:<4} {figures}")


if __name__ == "__main__":
    main()
