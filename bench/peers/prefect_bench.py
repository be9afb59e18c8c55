#!/usr/bin/env python3
"""W1-W5 of bench/workloads.py on Prefect 3 (issue 5).

Installs prefect 3 into $HOME/.cache/orca-bench/prefect-venv, pinning
`fastapi<0.120` (newer FastAPI releases break the server's import), starts a
local throwaway Prefect server (`prefect server start`, ended with the
harness; its database a fresh PostgreSQL database prefect_bench, as Prefect
recommends beyond light use: with its default SQLite the server answered W4's
burst of 100 run creations with 503s), runs the flows of prefect_flows.py and
computes every figure from the task runs' start_time / end_time as the
server recorded them, with the same definitions as bench/workloads.py:

  span   first task start -> last task end of a run (W1-W3)
  wall   here: flow call -> last task end
  hop    upstream end -> downstream start, over W1's chain (W5)
  W4     tasks / (last task end - first trigger); trigger -> first task start

How each workload maps onto Prefect (its defaults, unless SETTINGS says):
  W1-W3  the flow is called in this process (Prefect's local execution):
         W1/W2 tasks run one after the other in the flow's thread, W3's 100
         tasks are `.submit()`ted to the default ThreadPoolTaskRunner.
  W4     the chain is a deployment served by `flow.serve` in a process of its
         own (limit = --parallelism concurrent flow runs, each a new Python
         process, as a Prefect worker would start them); the 100 runs are
         created at once through the API (`run_deployment`'s call,
         create_flow_run_from_deployment), i.e. triggered like Orca's W4.

  python3 bench/peers/prefect_bench.py [--runs 1] [--skip-install] [--only W1,W4]
"""
import argparse
import asyncio
import os
import shutil
import socket
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402
from common import log, die  # noqa: E402

PINS = ["prefect>=3,<4", "fastapi<0.120"]
VENV = "prefect-venv"
DB = "prefect_bench"
# Environment of the server, the runner and this process; written into
# RESULTS.md.
SETTINGS = {
    "PREFECT_RUNNER_POLL_FREQUENCY": "1",          # default 10 s between the runner's polls (W4)
    "PREFECT_LOGGING_TO_API_ENABLED": "false",     # run logs stay local (as Airflow's and Orca's do)
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    "PREFECT_API_DEFAULT_LIMIT": "1000",
}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ts(d):
    return d.timestamp()


class Bench:
    def __init__(self, args, server):
        from prefect.client.orchestration import get_client

        self.args = args
        self.server = server
        self.client = get_client(sync_client=True)
        self.client.__enter__()

    def tasks(self, flow_run_id, expected, deadline_s=120):
        """The flow run's task runs, once all EXPECTED are recorded as ended:
        Prefect 3 reports task runs to the server as events, written
        after the flow returns."""
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        def read():
            runs = self.client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), limit=1000)
            if len(runs) < expected or any(r.start_time is None or r.end_time is None for r in runs):
                return None
            return [{"task_name": r.name, "state": r.state_type.value if r.state_type else None,
                     "start": ts(r.start_time), "end": ts(r.end_time)} for r in runs]
        return common.wait_until(f"{expected} task runs of flow run {flow_run_id}", read, deadline_s, every=0.2)

    def chain_workload(self, name, fn, expected):
        spans, walls, hop_all = [], [], []
        for _ in range(self.args.runs):
            at = time.time()
            state = fn(return_state=True)
            if not state.is_completed():
                die(f"{name} flow ended {state.type}: {state.message}")
            tasks = self.tasks(state.state_details.flow_run_id, expected)
            end = max(t["end"] for t in tasks)
            spans.append(end - min(t["start"] for t in tasks))
            walls.append(end - at)
            if name == "W1":
                ok = sorted((t for t in tasks if t["state"] == "COMPLETED"), key=lambda t: t["task_name"])
                hop_all.extend((b["start"] - a["end"]) * 1000 for a, b in zip(ok, ok[1:]))
            log(f"{name}: {len(tasks)} tasks, span {spans[-1]:.2f}s, call->end {walls[-1]:.2f}s")
        out = [dict(workload=name, system="prefect", runs=self.args.runs, **common.chain_figures(spans, walls))]
        if name == "W1":
            out.append(dict(workload="W5", system="prefect", **common.hop_figures(hop_all)))
        return out

    def w4(self, env, runs=100, deadline_s=1800):
        from prefect.client.orchestration import get_client

        runner = common.Proc([sys.executable, os.path.join(HERE, "prefect_flows.py"), "serve",
                              str(self.args.parallelism)], os.path.join(self.home, "runner.log"), env=env, cwd=HERE)
        try:
            def deployment():
                if not runner.alive():
                    die(f"flow.serve exited; see {runner.logfile}")
                try:
                    return self.client.read_deployment_by_name("w4-chain/w4")
                except Exception:
                    return None
            dep = common.wait_until("the served W4 deployment", deployment, 180, every=0.5)
            time.sleep(2)  # let the runner reach its polling loop

            async def trigger_all():
                # 32 at a time, as Orca's W4 posts from 32 threads; a 503 of
                # a busy server is retried, and counts in that run's latency.
                gate = asyncio.Semaphore(32)
                async with get_client() as c:
                    async def one():
                        at = time.time()
                        async with gate:
                            for attempt in range(20):
                                try:
                                    fr = await c.create_flow_run_from_deployment(dep.id)
                                    return at, fr.id
                                except Exception as e:  # PrefectHTTPStatusError 503
                                    if attempt == 19:
                                        raise
                                    log(f"W4: creating a flow run failed ({str(e)[:80]}); retrying")
                                    await asyncio.sleep(0.2)
                    return await asyncio.gather(*(one() for _ in range(runs)))

            t0 = time.time()
            trig = asyncio.run(trigger_all())
            log(f"W4: {runs} runs triggered in {time.time() - t0:.2f}s")

            from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
            ids = [i for _, i in trig]

            def finished():
                if not runner.alive():
                    die(f"flow.serve exited; see {runner.logfile}")
                frs = self.client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)),
                                                 limit=runs)
                return len(frs) == runs and all(f.state and f.state.is_final() for f in frs) and frs
            frs = common.wait_until(f"{runs} W4 flow runs", finished, deadline_s, every=1.0)
        finally:
            runner.stop()
        bad = [f for f in frs if not f.state.is_completed()]
        if bad:
            die(f"{len(bad)} W4 flow run(s) did not complete, e.g. {bad[0].state}; see {runner.logfile}")
        all_tasks, first_start = [], []
        for at, fid in trig:
            tasks = self.tasks(fid, 10)
            all_tasks.extend(tasks)
            if tasks:
                first_start.append(min(t["start"] for t in tasks) - at)
        end = max(t["end"] for t in all_tasks)
        return [{"workload": "W4", "system": "prefect", "tasks": len(all_tasks),
                 "all_success": all(t["state"] == "COMPLETED" for t in all_tasks) and len(all_tasks) == runs * 10,
                 "tasks_per_s": len(all_tasks) / (end - t0),
                 "trigger_to_first_start_p50_ms": common.pct(first_start, 50) * 1000,
                 "trigger_to_first_start_p99_ms": common.pct(first_start, 99) * 1000}]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--skip-install", action="store_true")
    ap.add_argument("--only", default="W1,W2,W3,W4,W5")
    ap.add_argument("--db", choices=["postgres", "sqlite"], default="postgres",
                    help="the server's database (SQLite answers 503 under W4's burst)")
    ap.add_argument("--parallelism", type=int, default=16,
                    help="concurrent flow runs of the W4 runner (flow.serve limit)")
    args = ap.parse_args()
    only = set(args.only.upper().split(","))
    py = common.ensure_venv(VENV, PINS, "import prefect, prefect.server.api.server", args.skip_install)
    common.reexec_in(py)
    common.install_exit_handlers()

    home = tempfile.mkdtemp(prefix="orca-bench-prefect-")
    port = free_port()
    env = dict(os.environ, PREFECT_HOME=home, PREFECT_API_URL=f"http://127.0.0.1:{port}/api", **SETTINGS)
    if args.db == "postgres":
        # A fresh database each invocation, like the throwaway SQLite file.
        common.ensure_postgres()
        admin = ["psql", common.PG_SERVER + "/postgres", "-qc"]
        common.subprocess.run(admin + [f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)"], check=True, capture_output=True)
        common.subprocess.run(admin + [f"CREATE DATABASE {DB}"], check=True, capture_output=True)
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = (
            f"postgresql+asyncpg://{common.PG_SERVER.split('://', 1)[1]}/{DB}")
    env.pop("ORCA_BENCH_IN_VENV", None)
    os.environ.update(env)
    prefect = os.path.join(os.path.dirname(sys.executable), "prefect")
    server = common.Proc([prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                         os.path.join(home, "server.log"), env=env)
    try:
        def healthy():
            if not server.alive():
                die(f"prefect server exited:\n{open(server.logfile, errors='replace').read()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
                    return r.status == 200
            except Exception:
                return False
        t = time.time()
        common.wait_until("prefect server /api/health", healthy, 180, every=0.5)
        log(f"prefect server up after {time.time() - t:.1f}s ({home})")
        import prefect as pf
        import prefect_flows as fl

        b = Bench(args, server)
        b.home = home
        results = [{"workload": "meta", "system": "prefect", "version": pf.__version__,
                    "python": sys.version.split()[0], "config": dict(SETTINGS, W4_serve_limit=str(args.parallelism),
                                                                     database=args.db)}]
        for name, fn, expected in (("W1", fl.w1, 40), ("W2", fl.w2, 10), ("W3", fl.w3, 102)):
            if name in only or (name == "W1" and "W5" in only):
                results.extend(b.chain_workload(name, fn, expected))
        if "W4" in only:
            results.extend(b.w4(env))
    finally:
        server.stop()
        if os.environ.get("ORCA_BENCH_KEEP") != "1":
            shutil.rmtree(home, ignore_errors=True)
    common.emit(results)


if __name__ == "__main__":
    main()
