"""Shared helpers of the peer harnesses (bench/peers/*.py) and bench/floor.py.

Each harness is started with the system python3, makes (or reuses) its own
venv under $HOME/.cache/orca-bench/, then re-executes itself inside it. It
prints one JSON line per workload with the same keys as bench/workloads.py
(plus "system"), then a table.
"""
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

CACHE = os.path.join(os.path.expanduser("~"), ".cache", "orca-bench")
PG_SERVER = os.environ.get("ORCA_BENCH_PG", "postgresql://postgres:postgres@127.0.0.1:5432")


def log(msg):
    print(f"[{os.path.basename(sys.argv[0])}] {msg}", file=sys.stderr, flush=True)


def die(msg):
    log("error: " + msg)
    sys.exit(2)


def pct(xs, p):
    """The same percentile as bench/workloads.py (nearest rank, rounded)."""
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def _failed_package(out):
    """Name the package pip could not install, from its output."""
    for pat in (
        r"No matching distribution found for ([^\s]+)",
        r"Could not find a version that satisfies the requirement ([^\s]+)",
        r"Failed building wheel for ([^\s]+)",
        r"Failed to build ([^\n]+)",
        r"ResolutionImpossible.*?\n.*?The conflict is caused by:\n\s+([^\n]+)",
        r"ERROR: Cannot install ([^\n]+)",
    ):
        m = re.search(pat, out, re.S)
        if m:
            return m.group(1).strip()
    return None


def ensure_venv(name, pins, check, skip_install=False):
    """A venv at CACHE/NAME with PINS installed, in which CHECK (python code)
    runs cleanly. Reused when its marker says the same pins were installed.
    Returns the venv's python."""
    venv = os.path.join(CACHE, name)
    py = os.path.join(venv, "bin", "python")
    marker = os.path.join(venv, ".orca-bench-pins")
    want = hashlib.sha256("\n".join(pins).encode()).hexdigest()
    have = open(marker).read().strip() if os.path.exists(marker) else None
    if skip_install:
        if not os.path.exists(py):
            die(f"--skip-install but no venv at {venv}")
    elif have != want or not os.path.exists(py):
        os.makedirs(CACHE, exist_ok=True)
        if not os.path.exists(py):
            log(f"creating venv {venv}")
            r = subprocess.run([sys.executable, "-m", "venv", venv], capture_output=True, text=True)
            if r.returncode:
                die(f"python3 -m venv {venv} failed:\n{r.stderr[-2000:]}")
        log(f"pip install {' '.join(pins)} (into {venv}; a few minutes the first time)")
        r = subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", *pins],
                           capture_output=True, text=True)
        if r.returncode:
            out = r.stdout + r.stderr
            pkg = _failed_package(out)
            die(f"installing {'package ' + pkg if pkg else 'the pins'} into {venv} failed "
                f"(pins: {' '.join(pins)}):\n{out[-3000:]}")
        with open(marker, "w") as f:
            f.write(want + "\n")
    r = subprocess.run([py, "-c", check], capture_output=True, text=True)
    if r.returncode:
        if os.path.exists(marker):
            os.remove(marker)
        die(f"{venv}: `{check}` fails after install (pins: {' '.join(pins)}):\n{r.stderr[-3000:]}")
    return py


def reexec_in(py):
    """Run this very script again under the venv's python (once)."""
    if os.environ.get("ORCA_BENCH_IN_VENV") == py:
        return
    os.environ["ORCA_BENCH_IN_VENV"] = py
    os.execv(py, [py, os.path.abspath(sys.argv[0]), *sys.argv[1:]])


def ensure_postgres():
    """The local PostgreSQL cluster is online (started with pg_ctlcluster if not)."""
    if shutil.which("pg_lsclusters") is None:
        die("PostgreSQL is not installed (apt-get install postgresql, or source scripts/lib.sh; ensure_postgres)")
    out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout.split("\n")
    rows = [l.split() for l in out if l.strip()]
    if not rows:
        die("no PostgreSQL cluster (pg_createcluster 15 main)")
    ver, name, port, status = rows[-1][:4]
    if status != "online":
        log(f"starting PostgreSQL {ver}/{name}")
        subprocess.run(["pg_ctlcluster", ver, name, "start"], check=True)
    return port


def ensure_database(psycopg2, db):
    conn = psycopg2.connect(PG_SERVER + "/postgres")
    conn.autocommit = True
    with conn.cursor() as c:
        c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
        if not c.fetchone():
            log(f"creating database {db}")
            c.execute(f'CREATE DATABASE "{db}"')
        c.execute("SHOW server_version")
        version = c.fetchone()[0]
    conn.close()
    return version


class Proc:
    """A child in its own process group, ended (TERM, then KILL) on exit."""

    live = []

    def __init__(self, argv, logfile, env=None, cwd=None):
        self.logf = open(logfile, "ab")
        self.p = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                  start_new_session=True)
        self.logfile = logfile
        Proc.live.append(self)

    def alive(self):
        return self.p.poll() is None

    def stop(self, grace=20):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        # Its children (task processes) may outlive it: end the whole group.
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.logf.close()
        if self in Proc.live:
            Proc.live.remove(self)

    @classmethod
    def stop_all(cls):
        for p in list(cls.live):
            p.stop(grace=10)


def install_exit_handlers():
    import atexit

    atexit.register(Proc.stop_all)

    def on_signal(sig, _frame):
        Proc.stop_all()
        sys.exit(128 + sig)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def wait_until(what, pred, deadline_s, every=0.2):
    t_end = time.time() + deadline_s
    while True:
        v = pred()
        if v:
            return v
        if time.time() > t_end:
            die(f"timed out after {deadline_s:.0f}s waiting for {what}")
        time.sleep(every)


def chain_figures(spans, walls):
    return {"span_s_median": median(spans), "span_s_min": min(spans), "span_s_max": max(spans),
            "wall_s_median": median(walls)}


def hop_figures(hops_ms):
    return {"hops": len(hops_ms), "hop_p50_ms": pct(hops_ms, 50), "hop_p99_ms": pct(hops_ms, 99),
            "hop_max_ms": max(hops_ms) if hops_ms else float("nan")}


def emit(results):
    for r in results:
        print(json.dumps(r), flush=True)
    print()
    for r in results:
        figures = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()
                            if k not in ("workload", "system", "config"))
        print(f"{r['workload']:<4} {figures}", flush=True)
