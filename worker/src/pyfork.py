# Orca's Python fork server (see worker/src/pyfork.rs).
#
# Started once per worker as `python -u -c <this> <preload json>`. Reads one
# request per line on stdin (its id, a space, the request as JSON, which
# the server passes on unparsed) and hands each to a child of this warm
# interpreter: the child becomes a task process (own process group, output
# to its log, its cwd and environment) and runs the task's script as
# `__main__`, like `python task.py` would. One child is forked ahead (the
# spare), waiting on a socket for its request, so that a task does not wait
# for fork(). The task tells its exit code on that socket just before it
# exits (the exit itself, tearing down a copy of this interpreter, takes a
# while). Replies on stdout, one JSON object per line:
#   {"ready": true, "exe": ..., "pid": ...}   once, at start
#   {"id": N, "pid": P}                       the child of request N runs
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
import types

# The spare's end of its socket: the request comes in on it, the task's
# exit code goes out on it just before the exit.
DONE_FD = 3


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
        data = b""
        while True:
            chunk = os.read(keep, 1 << 16)
            if not chunk:
                break
            data += chunk
        if not data:
            os._exit(0)  # the server ended without a task for this spare
        st = os.fstat(keep)
        req = json.loads(data)
    except BaseException:
        os._exit(127)
    child(req, (st.st_dev, st.st_ino))


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


def child(req, done):
    # Turns the spare into the task; never returns. `done` identifies the
    # socket to tell the end on.
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
    try:
        # Only the task's own process: a child it forked that ran on to the
        # end of the script just exits, as it would after `python script`.
        if os.getpid() == me:
            fd = os.open(req["exit_file"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, b"%d\n" % code)
            os.close(fd)
            tell_done(done, code)
            # Tearing down this copy of the interpreter is the exit's main
            # cost; with the end told, it may wait for the CPU while the
            # worker reports the end and the next task is dispatched.
            os.nice(19)
    finally:
        os._exit(code)


def tell_done(done, code):
    # Tells the server the task has ended, before the exit (tearing down
    # the address space takes a while), on the socket the request came on:
    # if the script has not closed it (and reused its number) meanwhile.
    try:
        st = os.fstat(DONE_FD)
        if (st.st_dev, st.st_ino) == done:
            os.write(DONE_FD, b"%d\n" % code)
    except OSError:
        pass


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

    def ensure_spare():
        if state["spare"] is None:
            try:
                state["spare"] = fork_spare((wake_r, wake_w), selector)
            except OSError as e:
                print("orca fork server: cannot fork a spare: %r" % (e,), file=sys.stderr)

    def handle(ident, req):
        # Hands request `ident` (its JSON bytes) to the spare; a spare that
        # died meanwhile is replaced once.
        for _ in range(2):
            ensure_spare()
            if state["spare"] is None:
                break
            pid, w = state["spare"]
            state["spare"] = None
            try:
                w.sendall(req)
                w.shutdown(socket.SHUT_WR)
            except OSError:
                w.close()
                continue
            send_line(b'{"id":%d,"pid":%d}\n' % (ident, pid))
            selector.register(w, selectors.EVENT_READ, pid)
            return
        send({"id": ident, "error": "cannot fork a task process"})

    ensure_spare()
    send({"ready": True, "exe": sys.executable, "pid": os.getpid()})
    buf = b""
    while True:
        for key, _ in selector.select():
            if key.data is not None:
                # A running task's socket: its exit code, or (killed, or
                # its script closed the socket) nothing; the exit follows.
                try:
                    said = key.fileobj.recv(64)
                except OSError:
                    said = b""
                selector.unregister(key.fileobj)
                key.fileobj.close()
                if said.strip().lstrip(b"-").isdigit():
                    send_line(b'{"done":%d,"code":%d}\n' % (key.data, int(said)))
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
                ident, _, req = line.partition(b" ")
                if ident.isdigit():
                    handle(int(ident), req)
        reap(state)
        # The reply is out before this fork, which runs beside the task
        # (while the worker, waiting for the task, has little to do).
        if state["spare"] is None:
            ensure_spare()

main()
