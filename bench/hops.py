"""Reads `orca run --json` output; prints wall time, run time and hop latency."""
import json
import sys
from datetime import datetime


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


path, start, end, label = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
run = json.load(open(path))
tasks = sorted((t for t in run["tasks"] if t["state"] == "SUCCESS"), key=lambda t: t["task_name"])
hops = [
    (ts(b["start_time"]) - ts(a["end_time"])) * 1000
    for a, b in zip(tasks, tasks[1:])
]
inst = run["instance"]
span = ts(tasks[-1]["end_time"]) - ts(tasks[0]["start_time"]) if tasks else float("nan")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


print(
    f"{label}: state={inst['state']} tasks={len(tasks)} "
    f"wall={end - start:.3f}s (incl. start-up) first-start→last-end={span:.3f}s "
    f"hop p50={pct(hops, 50):.2f}ms p99={pct(hops, 99):.2f}ms max={max(hops, default=float('nan')):.2f}ms"
)
