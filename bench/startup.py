#!/usr/bin/env python3
"""W7 (Orca only): start-up time and idle RSS of each Orca process.

  start-up  spawn -> first 200 from its /health (polled every 5 ms)
  idle RSS  VmRSS from /proc/PID/status after IDLE seconds of idling

`orca master`, `orca worker` and `orca api` are started as scripts/cluster.sh
starts them (etcd on free loopback ports, a throwaway PostgreSQL database);
the master is started once beforehand so that the timed start finds the
schema migrated, as a restart does. `orca standalone` starts on a fresh data
dir (SQLite, migrations included). Prints one JSON line, then a table.

  python3 bench/startup.py --orca target/release/orca [--idle 5]
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))
import common  # noqa: E402
from common import die, log  # noqa: E402


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def health(url):
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except Exception:
        return False


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def measure(name, argv, url, tmp, env, idle):
    t0 = time.perf_counter()
    p = common.Proc(argv, os.path.join(tmp, f"{name}.log"), env=env)
    deadline = time.time() + 60
    while not health(url):
        if not p.alive():
            die(f"{name} exited at start; see:\n{open(p.logfile, errors='replace').read()[-2000:]}")
        if time.time() > deadline:
            die(f"{name}: no 200 from {url} within 60s; see {p.logfile}")
        time.sleep(0.005)
    startup = (time.perf_counter() - t0) * 1000
    time.sleep(idle)
    rss = rss_kib(p.p.pid)
    log(f"{name}: up in {startup:.0f} ms, idle RSS {rss / 1024:.1f} MiB")
    return p, startup, rss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--orca", default="target/release/orca")
    ap.add_argument("--idle", type=float, default=5.0)
    args = ap.parse_args()
    orca = os.path.abspath(args.orca)
    common.install_exit_handlers()
    if shutil.which("etcd") is None:
        die("etcd is not installed (apt-get install etcd-server, or scripts/lib.sh's ensure_etcd)")
    common.ensure_postgres()
    db = f"orca_bench_w7_{os.getpid()}"
    admin = ["psql", common.PG_SERVER + "/postgres", "-qc"]
    subprocess.run(admin + [f"CREATE DATABASE {db}"], check=True, capture_output=True)
    tmp = tempfile.mkdtemp(prefix="orca-bench-w7-")
    r = {"workload": "W7", "system": "orca"}
    try:
        ec, ep = free_port(), free_port()
        etcd = common.Proc(["etcd", "--name", "w7", "--data-dir", f"{tmp}/etcd",
                            "--listen-client-urls", f"http://127.0.0.1:{ec}",
                            "--advertise-client-urls", f"http://127.0.0.1:{ec}",
                            "--listen-peer-urls", f"http://127.0.0.1:{ep}",
                            "--initial-advertise-peer-urls", f"http://127.0.0.1:{ep}",
                            "--initial-cluster", f"w7=http://127.0.0.1:{ep}"], f"{tmp}/etcd.log")
        common.wait_until("etcd", lambda: health(f"http://127.0.0.1:{ec}/health"), 30, every=0.1)
        env = dict(os.environ, ORCA_STORE__URL=f"{common.PG_SERVER}/{db}",
                   ORCA_REGISTRY__ENDPOINTS=f"http://127.0.0.1:{ec}")
        mp, mh = free_port(), free_port()
        master_argv = [orca, "master", "--set", "master.id=master-1", "--set", f"master.listen=127.0.0.1:{mp}",
                       "--set", "master.advertise_host=127.0.0.1", "--set", f"master.http_listen=127.0.0.1:{mh}"]
        # Migrate the schema first: the timed start is a restart.
        first, r["master_first_start_ms"], _ = measure("master-first", master_argv, f"http://127.0.0.1:{mh}/health",
                                                       tmp, env, 0)
        first.stop()
        master, r["master_start_ms"], r["master_rss_mib"] = measure(
            "master", master_argv, f"http://127.0.0.1:{mh}/health", tmp, env, args.idle)
        wp, wh = free_port(), free_port()
        worker, r["worker_start_ms"], r["worker_rss_mib"] = measure(
            "worker", [orca, "worker", "--set", "worker.id=worker-1", "--set", f"worker.listen=127.0.0.1:{wp}",
                       "--set", "worker.advertise_host=127.0.0.1", "--set", f"worker.http_listen=127.0.0.1:{wh}",
                       "--set", f"worker.data_dir={tmp}/worker"],
            f"http://127.0.0.1:{wh}/health", tmp, env, args.idle)
        ap_ = free_port()
        api, r["api_start_ms"], r["api_rss_mib"] = measure(
            "api", [orca, "api", "--set", f"api.listen=127.0.0.1:{ap_}", "--credentials-dir", tmp],
            f"http://127.0.0.1:{ap_}/health", tmp, env, args.idle)
        for p in (api, worker, master, etcd):
            p.stop()
        sp = free_port()
        senv = {k: v for k, v in os.environ.items() if not k.startswith("ORCA_")}
        standalone, r["standalone_start_ms"], r["standalone_rss_mib"] = measure(
            "standalone", [orca, "standalone", "--data-dir", f"{tmp}/standalone", "--http", f"127.0.0.1:{sp}"],
            f"http://127.0.0.1:{sp}/health", tmp, senv, args.idle)
        standalone.stop()
    finally:
        common.Proc.stop_all()
        subprocess.run(admin + [f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    common.emit([r])


if __name__ == "__main__":
    main()
