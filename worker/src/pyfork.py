# Orca's Python fork server (see worker/src/pyfork.rs).
#
# Started once per worker as `python -u -c <this> <preload json>`. Reads one
# request per line on stdin (its id, its share key or `-`, the request as
# JSON, which the server passes on unparsed; separated by a space) and
# hands each to a child of this warm
# interpreter: the child becomes a task process (own process group, output
# to its log, its cwd and environment) and runs the task's script as
# `__main__`, like `python task.py` would. One child is forked ahead (the
# spare), waiting on a socket for its request, so that a task does not wait
# for fork(). The task tells its exit code on that socket just before it
# exits (the exit itself, tearing down a copy of this interpreter, takes a
# while). A task whose request has a share key and that ends cleanly (see
# keepable()) may instead reset itself, tell `keep` and wait for another
# request: the server keeps it under that key and hands it the next
# request with the same key (see worker/src/pyfork.rs). Replies on stdout,
# one JSON object per line:
#   {"ready": true, "exe": ..., "pid": ...}   once, at start
#   {"id": N, "pid": P}                       the child of request N runs
#   {"id": N, "pid": P, "kept": true}         ... in a kept process
#   {"id": N, "error": "..."}                 it could not be forked
#   {"done": P, "code": C}                    task P is ending with code C
#   {"exit": P, "status": S}                  child P ended (waitpid status)
# When stdin closes (the worker is gone) the server exits at once; running
# children keep running, as tasks started by exec would, and the spare,
# seeing its pipe close, exits.
import builtins
import importlib.machinery
import json
import os
import selectors
import signal
import socket
import sys
import time
import types

# The spare's end of its socket: the request comes in on it, the task's
# exit code goes out on it just before the exit.
DONE_FD = 3
# A kept process serves at most this many tasks; at most MAX_KEPT wait
# for a request at once, each at most KEPT_SECONDS.
MAX_TASKS = 100
MAX_KEPT = 8
KEPT_SECONDS = 5.0
# How long a request waits for a process of its share key that is still
# deciding whether it is kept (normally well under a millisecond).
WAIT_SECONDS = 0.2
# What a task may change that a later one in the same process would see;
# a task that changed any of these is not kept.
WATCHED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGPIPE", "SIGCHLD")


def send(obj):
    send_line((json.dumps(obj) + "\n").encode())


def send_line(data):
    while data:
        data = data[os.write(1, data):]


def reap(state):
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        spare = state.get("spare")
        if spare is not None and spare[0] == pid:
            spare[1].close()
            state["spare"] = None
        send_line(b'{"exit":%d,"status":%d}\n' % (pid, status))


def exit_code_of(exc):
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except BaseException:
        pass
    return 1


def watchdog(heartbeat, half):
    # The dead-man switch of the shell wrapper, as a thread: kill the whole
    # process group once the worker has not touched its heartbeat file
    # for a whole check period.
    import time

    while True:
        checkpoint = time.time()
        time.sleep(half)
        try:
            touched = os.stat(heartbeat).st_mtime
        except OSError:
            touched = 0.0
        if touched < checkpoint:
            try:
                os.write(2, b"orca: the worker stopped heartbeating; killing the task (dead-man switch)\n")
            finally:
                os.killpg(0, signal.SIGKILL)


def fork_spare(close_fds, selector):
    # Forks a child that waits for its request on a socket; returns
    # (pid, the server's end) to the server. Raises OSError when fork fails.
    w, r = socket.socketpair()
    try:
        pid = os.fork()
    except OSError:
        r.close()
        w.close()
        raise
    if pid == 0:
        spare(r, w, close_fds, selector)
    r.close()
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass
    return pid, w


def spare(r, w, close_fds, selector):
    # The spare child; never returns. Until its request comes it holds
    # nothing of the server's: not its pipes to the worker (so the worker
    # sees the server end), not its selector, not the sockets of running
    # tasks. Its own socket stays open as DONE_FD, not inherited by
    # programs the task runs.
    try:
        os.setpgid(0, 0)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        selector.close()
        w.close()
        for fd in close_fds:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        keep = os.dup2(r.detach(), DONE_FD, inheritable=False) if r.fileno() != DONE_FD else r.detach()
        os.closerange(DONE_FD + 1, 1 << 20)
        warm_up()
        st = os.fstat(keep)
        base = Base()
    except BaseException:
        os._exit(127)
    served = 0
    while True:
        try:
            data = b""
            while not data.endswith(b"\n"):
                chunk = os.read(keep, 1 << 16)
                if not chunk:
                    # The server ended, or let this kept process go.
                    os._exit(0)
                data += chunk
            share, _, data = data.partition(b" ")
            req = json.loads(data)
        except BaseException:
            os._exit(127)
        served += 1
        # Returns only when the task left this process fit for another.
        child(req, (st.st_dev, st.st_ino), base, share != b"-" and served < MAX_TASKS)


class Base:
    # What a kept process goes back to after each task: the spare's cwd,
    # environment, sys.path, standard stream objects, signal dispositions
    # and open descriptors.
    def __init__(self):
        self.cwd = os.getcwd()
        self.environ = dict(os.environ)
        self.path = list(sys.path)
        self.streams = (sys.stdin, sys.stdout, sys.stderr)
        self.umask = os.umask(0o022)
        os.umask(self.umask)
        self.signals = signal_dispositions()
        self.fds = open_fds()


def open_fds():
    # The process's open descriptors (None where /proc is not there).
    try:
        return sorted(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def signal_dispositions():
    out = {}
    for name in WATCHED_SIGNALS:
        sig = getattr(signal, name, None)
        if sig is not None:
            out[name] = signal.getsignal(sig)
    return out


def keepable(base):
    # Whether the task that just ran left nothing that a later task in this
    # process would see or suffer from: no other thread, no child process,
    # no open file (a descriptor a later task would find, or that a
    # leftover object would close under it), no changed signal disposition,
    # alarm or umask.
    import threading

    if threading.active_count() != 1:
        return False
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break  # no child at all
        if pid == 0:
            return False  # a child still runs
    if open_fds() != base.fds:
        return False
    if signal_dispositions() != base.signals:
        return False
    if signal.alarm(0) != 0:
        return False
    mask = os.umask(base.umask)
    return mask == base.umask


def reset(base):
    # Puts a kept process back as the spare was; False when it cannot.
    try:
        import atexit

        atexit._clear()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        os.chdir(base.cwd)
        # Undo the task's changes only (clearing and refilling all of it
        # costs a putenv per variable).
        env = os.environ
        for k in [k for k in env if k not in base.environ]:
            del env[k]
        for k, v in base.environ.items():
            if env.get(k) != v:
                env[k] = v
        sys.path[:] = base.path
        sys.argv = [""]
        sys.stdin, sys.stdout, sys.stderr = base.streams
        return True
    except BaseException:
        return False


WARM_UP = "def f(n):\n    return n if n < 2 else f(n - 1) + f(n - 2)\nprint(f(5))\n"


def warm_up():
    # What running a task writes to in the interpreter (type caches,
    # allocator pools, refcounts of shared objects) is shared with the
    # server until written: each first write copies a page. Doing that
    # here, for a throwaway script, while no request has come, spares the
    # task most of those copies (and their time). Output goes to /dev/null.
    try:
        req = json.loads(json.dumps({"env": {"ORCA_WARM_UP": "1"}, "script": "/"}))
        os.environ.update(req["env"])
        del os.environ["ORCA_WARM_UP"]
        main = types.ModuleType("__main__")
        main.__file__ = "<warm-up>"
        main.__builtins__ = builtins
        exec(compile(WARM_UP, "<warm-up>", "exec"), main.__dict__)
        sys.stdout.flush()
    except BaseException:
        pass


def child(req, done, base, may_keep):
    # Turns the spare into the task. Returns only when the request let the
    # process be kept (`share`), the task left it fit for another
    # (`may_keep`, keepable()) and it was reset: it then waits for the next
    # request. Otherwise ends the process. `done` identifies the socket to
    # tell the end on.
    me = os.getpid()
    try:
        log = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.chdir(req["cwd"])
        os.environ.update(req["env"])
        script = req["script"]
        sys.argv = [script]
        sys.path[0] = os.path.dirname(script)
        deadman = req.get("deadman")
        if deadman:
            import threading

            threading.Thread(
                target=watchdog,
                args=(deadman["heartbeat"], float(deadman["half"])),
                name="orca-deadman",
                daemon=True,
            ).start()
    except BaseException as e:
        try:
            os.write(2, ("orca: cannot start the task in the fork server: %r\n" % (e,)).encode())
        finally:
            os._exit(127)
    code = run(script)
    # As the interpreter does at exit: join non-daemon threads, run atexit
    # handlers, flush; then record the exit code, like the shell wrapper.
    try:
        import threading

        threading._shutdown()
    except BaseException:
        pass
    try:
        import atexit

        atexit._run_exitfuncs()
    except SystemExit as e:
        code = exit_code_of(e)
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    kept = False
    try:
        # Only the task's own process: a child it forked that ran on to the
        # end of the script just exits, as it would after `python script`.
        if os.getpid() == me:
            fd = os.open(req["exit_file"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, b"%d\n" % code)
            os.close(fd)
            tell(done, b"%d\n" % code)
            # The end is told first: checking and resetting the process for
            # the run's next task is off the hop's path (the next request
            # follows the report, the commit and the dispatch).
            kept = (
                may_keep
                and code == 0
                and not deadman
                and keepable(base)
                and reset(base)
                and tell(done, b"keep\n")
            )
            if not kept:
                # Tearing down this copy of the interpreter is the exit's
                # main cost; with the end told, it may wait for the CPU
                # while the worker reports the end and the next task is
                # dispatched.
                os.nice(19)
    finally:
        if not kept:
            os._exit(code)


def tell(done, what):
    # Tells the server the task's exit code (before the exit: tearing down
    # the address space takes a while), or `keep` (this process waits for
    # another request), on the socket the request came on: if the script
    # has not closed it (and reused its number) meanwhile. False when it
    # could not.
    try:
        st = os.fstat(DONE_FD)
        if (st.st_dev, st.st_ino) == done:
            os.write(DONE_FD, what)
            return True
    except OSError:
        pass
    return False


def run(script):
    # As `python script` runs it: a fresh __main__ module (nothing of the
    # server's globals), the file compiled under its own name.
    try:
        main = types.ModuleType("__main__")
        main.__file__ = script
        main.__cached__ = None
        main.__builtins__ = builtins
        main.__loader__ = importlib.machinery.SourceFileLoader("__main__", script)
        sys.modules["__main__"] = main
        with open(script, "rb") as f:
            source = f.read()
        code = compile(source, script, "exec")
        exec(code, main.__dict__)
        return 0
    except SystemExit as e:
        return exit_code_of(e)
    except BaseException as e:
        # Show the traceback from the script down, as `python script` does.
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != script:
            tb = tb.tb_next
        if tb is not None:
            e = e.with_traceback(tb)
        try:
            sys.excepthook(type(e), e, e.__traceback__)
        except BaseException:
            pass
        return 1


def main():
    preload = json.loads(sys.argv[1]) if len(sys.argv) > 1 else []
    for name in preload:
        try:
            __import__(name)
        except BaseException as e:
            print("orca fork server: cannot preload %s: %r" % (name, e), file=sys.stderr)
    # Warm what every child uses, then keep the collector off the
    # inherited heap (children would otherwise copy the pages it touches).
    import gc
    import traceback  # noqa: F401

    gc.freeze()

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    state = {"spare": None}
    # Kept processes waiting for a request: share key -> [(pid, socket,
    # since)], and every kept one by socket, for its key.
    kept = {}
    kept_key = {}
    # Processes of a share key whose task has told its end but not yet
    # whether it is kept (it says `keep` or exits at once), and requests
    # with that key waiting for the answer: key -> set of sockets, key ->
    # [(id, line, since)]. A run's next task thus gets its kept process
    # however soon it comes; one that waits WAIT_SECONDS gets the spare.
    ending = {}
    waiting = {}

    def ensure_spare():
        if state["spare"] is None:
            try:
                state["spare"] = fork_spare((wake_r, wake_w), selector)
            except OSError as e:
                print("orca fork server: cannot fork a spare: %r" % (e,), file=sys.stderr)

    def drop(w):
        # Closes a child's socket: lets a kept process go (its read sees
        # the end, it exits), or forgets one that ended or died.
        key = kept_key.pop(w, None)
        if key is not None:
            kept[key] = [k for k in kept[key] if k[1] is not w]
            if not kept[key]:
                del kept[key]
        try:
            selector.unregister(w)
        except (KeyError, ValueError):
            pass
        w.close()

    def keep(pid, w, key):
        if len(kept_key) >= MAX_KEPT:
            oldest = min((k for ks in kept.values() for k in ks), key=lambda k: k[2])
            drop(oldest[1])
        kept.setdefault(key, []).append((pid, w, time.monotonic()))
        kept_key[w] = key
        selector.modify(w, selectors.EVENT_READ, [pid, None, True])

    def expire_kept():
        old = time.monotonic() - KEPT_SECONDS
        for w in [k[1] for ks in kept.values() for k in ks if k[2] < old]:
            drop(w)

    def settled(w, share):
        # `w` (of `share`) is kept or gone: requests waiting for that may go.
        socks = ending.get(share)
        if socks is not None:
            socks.discard(w)
            if not socks:
                del ending[share]
        while waiting.get(share) and (share in kept or not ending.get(share)):
            ident, line, _ = waiting[share].pop(0)
            hand(ident, share, line)
        if share in waiting and not waiting[share]:
            del waiting[share]

    def handle(ident, share, req):
        line = share + b" " + req + b"\n"
        if share != b"-" and share not in kept and ending.get(share):
            waiting.setdefault(share, []).append((ident, line, time.monotonic()))
            return
        hand(ident, share, line)

    def expire_waiting():
        old = time.monotonic() - WAIT_SECONDS
        for share in [k for k, reqs in waiting.items() if reqs[0][2] < old]:
            for ident, line, _ in waiting.pop(share):
                hand(ident, share, line)

    def hand(ident, share, line):
        # Hands request `ident` (its line for the child) to a process kept
        # under its share key, else to the spare; a spare that died
        # meanwhile is replaced once.
        while share != b"-" and share in kept:
            pid, w, _ = kept[share].pop()
            if not kept[share]:
                del kept[share]
            del kept_key[w]
            try:
                w.sendall(line)
            except OSError:
                drop(w)
                continue
            selector.modify(w, selectors.EVENT_READ, [pid, share, False])
            send_line(b'{"id":%d,"pid":%d,"kept":true}\n' % (ident, pid))
            return
        for _ in range(2):
            ensure_spare()
            if state["spare"] is None:
                break
            pid, w = state["spare"]
            state["spare"] = None
            try:
                w.sendall(line)
            except OSError:
                w.close()
                continue
            send_line(b'{"id":%d,"pid":%d}\n' % (ident, pid))
            # [pid, share key (None: none), end told]
            selector.register(w, selectors.EVENT_READ, [pid, share if share != b"-" else None, False])
            return
        send({"id": ident, "error": "cannot fork a task process"})

    ensure_spare()
    send({"ready": True, "exe": sys.executable, "pid": os.getpid()})
    buf = b""
    while True:
        timeout = WAIT_SECONDS if waiting else 1.0 if kept_key else None
        for key, _ in selector.select(timeout):
            if key.data is not None:
                # A running task's socket: its exit code, then `keep` when
                # the process waits for another request with its share
                # key; or (killed, its script closed the socket, or it
                # ended after telling) nothing, and the exit follows. A kept
                # process's socket: its end (it died).
                run = key.data
                w = key.fileobj
                try:
                    said = w.recv(64).split()
                except OSError:
                    said = []
                if not said:
                    drop(w)
                    if run[1] is not None:
                        settled(w, run[1])
                    continue
                for word in said:
                    if not run[2] and word.lstrip(b"-").isdigit():
                        run[2] = True
                        send_line(b'{"done":%d,"code":%d}\n' % (run[0], int(word)))
                        if run[1] is not None:
                            ending.setdefault(run[1], set()).add(w)
                    elif word == b"keep" and run[2] and run[1] is not None:
                        share = run[1]
                        keep(run[0], w, share)
                        settled(w, share)
                continue
            if key.fd == wake_r:
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
                continue
            data = os.read(0, 1 << 16)
            if not data:
                os._exit(0)
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                ident, share, req = (line.split(b" ", 2) + [b"", b""])[:3]
                if ident.isdigit() and share:
                    handle(int(ident), share, req)
        reap(state)
        if kept_key:
            expire_kept()
        if waiting:
            expire_waiting()
        # The reply is out before this fork, which runs beside the task
        # (while the worker, waiting for the task, has little to do).
        if state["spare"] is None:
            ensure_spare()

main()
