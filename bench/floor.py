#!/usr/bin/env python3
"""The floor on this machine (issue 5): what no scheduler can go below, so
that each Orca figure can be read as "x above the floor".

  fork_exec_true_ms    spawn /bin/true + wait: posix_spawn, i.e. vfork + exec,
                       as Rust's Command does (median of 1000)
  python_start_ms      `python3 -c pass` with the interpreter Orca is given
                       (ORCA_PYTHON, else python3 resolved to its real binary;
                       median of 30)
  python3_path_start_ms  `python3 -c pass` through PATH as found (a pyenv
                       shim here is a shell script: median of 10)
  python_fork_exit_ms  fork a warm interpreter (Orca's, with the modules its
                       fork server loads) whose child exits at once, until it
                       is reaped: the
                       least a process-isolated Python task costs when forked
                       from a warm interpreter, as Orca's fork server does
                       (median of 200)
  python_fork_cpu_ms   CPU time of parent and child per such fork (copying
                       page tables, copy-on-write faults, tearing down)
  grpc_rtt_ms          loopback unary gRPC round trip, grpcio echo server
                       and client in one process (median of 1000; Python's
                       grpcio costs more per call than Rust's tonic)
  sqlite_commit_ms     one INSERT + COMMIT in SQLite, WAL, synchronous=FULL,
                       on the temp dir's file system (median of 200)
  pg_commit_ms         one INSERT + COMMIT in PostgreSQL over loopback,
                       synchronous_commit=on (median of 200)

Needs grpcio and psycopg2 (a venv at $HOME/.cache/orca-bench/floor-venv,
made on first use). Prints one JSON line, then a table.

  python3 bench/floor.py [--skip-install]
"""
import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent import futures

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))
import common  # noqa: E402

PINS = ["grpcio>=1.60", "psycopg2-binary>=2.9,<3"]


def timed(fn, n, warm=5):
    for _ in range(warm):
        fn()
    xs = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        xs.append((time.perf_counter() - t) * 1000)
    return statistics.median(xs)


def fork_exec():
    # posix_spawn (glibc: clone(CLONE_VM|CLONE_VFORK) + exec), as Rust's
    # std::process::Command spawns a task.
    pid = os.posix_spawn("/bin/true", ["/bin/true"], os.environ)
    os.waitpid(pid, 0)


# Run by the interpreter Orca's tasks use, with what Orca's fork server
# imports loaded (see worker/src/pyfork.py): fork; the child exits at once;
# reap. Prints the median fork -> reaped time and the CPU per fork (parent
# + child), in ms.
FORK_FLOOR = """
import builtins, gc, importlib.machinery, json, os, resource, selectors, signal, socket, statistics, sys, time, traceback, types
gc.freeze()
def cpu():
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
def one():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
for _ in range(10):
    one()
before, xs = cpu(), []
for _ in range(200):
    t = time.perf_counter()
    one()
    xs.append((time.perf_counter() - t) * 1000)
print(json.dumps([statistics.median(xs), (cpu() - before) * 1000 / 200]))
"""


def python_fork_exit(python):
    out = subprocess.run([python, "-c", FORK_FLOOR], capture_output=True, text=True, check=True)
    wall, cpu = json.loads(out.stdout)
    return wall, cpu


def spawn(argv):
    def run():
        pid = os.posix_spawn(argv[0], argv, os.environ)
        os.waitpid(pid, 0)
    return run


def grpc_rtt():
    import grpc

    ident = lambda b: b  # noqa: E731
    handler = grpc.method_handlers_generic_handler("bench.Echo", {
        "Ping": grpc.unary_unary_rpc_method_handler(lambda req, ctx: req, request_deserializer=ident,
                                                    response_serializer=ident)})
    server = grpc.server(futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            call = ch.unary_unary("/bench.Echo/Ping", request_serializer=ident, response_deserializer=ident)
            return timed(lambda: call(b"x" * 32, timeout=5), 1000, warm=50)
    finally:
        server.stop(0)


def sqlite_commit(tmp):
    db = sqlite3.connect(os.path.join(tmp, "floor.db"), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")

    def one():
        db.execute("BEGIN")
        db.execute("INSERT INTO t (v) VALUES ('x')")
        db.execute("COMMIT")
    try:
        return timed(one, 200)
    finally:
        db.close()


def pg_commit():
    import psycopg2

    common.ensure_postgres()
    conn = psycopg2.connect(common.PG_SERVER + "/postgres")
    with conn.cursor() as c:
        c.execute("SET synchronous_commit = on")
        # Not a TEMP table: those skip the WAL, so their commits flush nothing.
        c.execute("DROP TABLE IF EXISTS orca_bench_floor")
        c.execute("CREATE TABLE orca_bench_floor (id serial PRIMARY KEY, v text)")
        c.execute("SHOW fsync")
        fsync = c.fetchone()[0]
    conn.commit()

    def one():
        with conn.cursor() as c:
            c.execute("INSERT INTO orca_bench_floor (v) VALUES ('x')")
        conn.commit()
    try:
        return timed(one, 200), fsync
    finally:
        with conn.cursor() as c:
            c.execute("DROP TABLE orca_bench_floor")
        conn.commit()
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-install", action="store_true")
    args = ap.parse_args()
    # The interpreter Orca's Python tasks start (resolved before the re-exec,
    # which changes sys.executable).
    orca_py = os.environ.get("ORCA_PYTHON") or os.environ.get("ORCA_BENCH_SYSTEM_PYTHON") or sys.executable
    os.environ.setdefault("ORCA_BENCH_SYSTEM_PYTHON", orca_py)
    py = common.ensure_venv("floor-venv", PINS, "import grpc, psycopg2", args.skip_install)
    common.reexec_in(py)
    orca_py = shutil.which(orca_py) or orca_py
    # compare.sh passes what `python3` is on its PATH (pyenv's exec puts the
    # real binary first on the PATH of this process).
    path_py = os.environ.get("ORCA_BENCH_PATH_PYTHON") or shutil.which("python3")
    r = {"workload": "floor", "system": "floor"}
    r["fork_exec_true_ms"] = timed(fork_exec, 1000, warm=20)
    r["python_start_ms"] = timed(spawn([orca_py, "-c", "pass"]), 30, warm=2)
    r["python_start_interpreter"] = orca_py
    r["python3_path_start_ms"] = timed(spawn([path_py, "-c", "pass"]), 10, warm=1)
    r["python3_path"] = path_py
    r["python_fork_exit_ms"], r["python_fork_cpu_ms"] = python_fork_exit(orca_py)
    r["grpc_rtt_ms"] = grpc_rtt()
    with tempfile.TemporaryDirectory(prefix="orca-floor-") as tmp:
        r["sqlite_commit_ms"] = sqlite_commit(tmp)
    r["pg_commit_ms"], r["pg_fsync"] = pg_commit()
    common.emit([r])


if __name__ == "__main__":
    main()
