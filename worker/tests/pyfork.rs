//! PYTHON tasks forked from the worker's warm interpreter: they must behave
//! as `python task.py` would (their own process group, log, cwd, env, exit
//! codes, tracebacks, atexit, threads), start by exec when forking is
//! off, and survive the fork server dying.

mod support;

use orca_common::registry::memory::MemoryRegistry;
use orca_proto::v1::{TaskDispatch, TaskEventKind};
use support::*;

fn python(tiid: i64, epoch: u64, script: &str) -> TaskDispatch {
    let mut t = shell(tiid, epoch, script);
    t.task_type = "PYTHON".into();
    t
}

/// Prints `parent=fork-server` or `parent=other`, from the parent's
/// command line.
const SHOW_PARENT: &str = "import os\nwith open(f'/proc/{os.getppid()}/cmdline', 'rb') as f:\n    print('parent=' + ('fork-server' if b\"Orca's Python fork server\" in f.read() else 'other'))\n";

fn log_of(dir: &std::path::Path, tiid: i64) -> String {
    std::fs::read_to_string(attempt_dir(dir, tiid).join("task.log")).unwrap()
}

#[tokio::test]
async fn forked_tasks_behave_like_python_scripts() {
    let reg = MemoryRegistry::new();
    let master = TestMaster::start(&reg, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.slots = 8;
    let worker = start_worker(cfg, &reg).await;
    let mut c = client(&worker).await;
    let e = master.epoch();

    // Context: __main__, argv, cwd, params in env, stdin, own process group.
    let mut t = python(
        1,
        e,
        &format!(
            "{SHOW_PARENT}import os, sys\nprint('name=' + __name__)\nprint('argv0=' + os.path.basename(sys.argv[0]))\nprint('cwd=' + os.getcwd())\nprint('n=' + os.environ['n'])\nprint('stdin=%r' % sys.stdin.read())\nprint('own_group=%s' % (os.getpgid(0) == os.getpid()))\nprint('path0=' + sys.path[0])\nimport __main__\nprint('fresh_main=%s' % ('fork_spare' not in globals() and __main__.__file__ == __file__))\nprint('to stderr', file=sys.stderr)\n"
        ),
    );
    t.params = vec![param("n", "7")];
    assert!(dispatch(&mut c, t).await.accepted);
    // sys.exit codes, a string exit, an uncaught exception.
    for (tiid, script) in [
        (2, "import sys\nsys.exit(4)\n"),
        (3, "import sys\nsys.exit('bad input')\n"),
        (4, "def f():\n    raise ValueError('boom')\nf()\n"),
    ] {
        assert!(dispatch(&mut c, python(tiid, e, script)).await.accepted);
    }
    // atexit handlers and non-daemon threads run before the exit code.
    assert!(
        dispatch(
            &mut c,
            python(
                5,
                e,
                "import atexit, threading, time\natexit.register(lambda: print('atexit ran'))\ndef later():\n    time.sleep(0.2)\n    print('thread done')\nthreading.Thread(target=later).start()\nprint('main done')\n"
            )
        )
        .await
        .accepted
    );

    let adir = attempt_dir(dir.path(), 1);
    let ev = master.wait_terminal(1).await;
    assert_eq!(ev.kind(), TaskEventKind::Success, "{ev:?}");
    let log = log_of(dir.path(), 1);
    for want in [
        "parent=fork-server\n".to_string(),
        "name=__main__\n".into(),
        "argv0=task.py\n".into(),
        format!("cwd={}\n", std::path::absolute(&adir).unwrap().display()),
        "n=7\n".into(),
        "stdin=''\n".into(),
        "own_group=True\n".into(),
        format!("path0={}\n", std::path::absolute(&adir).unwrap().display()),
        "fresh_main=True\n".into(),
        "to stderr\n".into(),
    ] {
        assert!(log.contains(&want), "{want:?} missing from:\n{log}");
    }

    let ev = master.wait_terminal(2).await;
    assert_eq!((ev.kind(), ev.exit_code), (TaskEventKind::Failure, 4));
    let ev = master.wait_terminal(3).await;
    assert_eq!((ev.kind(), ev.exit_code), (TaskEventKind::Failure, 1));
    assert_eq!(log_of(dir.path(), 3), "bad input\n");
    let ev = master.wait_terminal(4).await;
    assert_eq!((ev.kind(), ev.exit_code), (TaskEventKind::Failure, 1));
    let log = log_of(dir.path(), 4);
    assert!(
        log.starts_with("Traceback (most recent call last):\n"),
        "{log}"
    );
    assert!(log.contains("task.py\", line 3"), "{log}");
    assert!(log.ends_with("ValueError: boom\n"), "{log}");
    assert!(
        !log.contains("File \"<string>\""),
        "the server's frames show: {log}"
    );
    let ev = master.wait_terminal(5).await;
    assert_eq!(ev.kind(), TaskEventKind::Success, "{ev:?}");
    assert_eq!(
        log_of(dir.path(), 5),
        "main done\nthread done\natexit ran\n"
    );

    // The task's own exit code counts, not that of a child it forked which
    // runs on to the end of the script after the task has ended.
    assert!(
        dispatch(
            &mut c,
            python(
                6,
                e,
                "import os, sys, time\nif os.fork():\n    sys.exit(3)\ntime.sleep(0.3)\nprint('child at the end')\n"
            )
        )
        .await
        .accepted
    );
    let ev = master.wait_terminal(6).await;
    assert_eq!((ev.kind(), ev.exit_code), (TaskEventKind::Failure, 3));
    let pgid = i32::try_from(ev.pid).unwrap();
    wait_until("the forked child has ended", || {
        live_group_members(pgid) == 0
    })
    .await;
    assert_eq!(log_of(dir.path(), 6), "child at the end\n");
    let code = std::fs::read_to_string(attempt_dir(dir.path(), 6).join("exit_code")).unwrap();
    assert_eq!(code, "3\n");
    worker.shutdown(true).await;
}

#[tokio::test]
async fn signals_and_timeouts_reach_forked_tasks_and_their_children() {
    let reg = MemoryRegistry::new();
    let master = TestMaster::start(&reg, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let worker = start_worker(config(dir.path()), &reg).await;
    let mut c = client(&worker).await;
    let e = master.epoch();

    // Killed by a signal: no exit code of its own, the shell's 128 + n.
    let t = python(
        1,
        e,
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
    );
    assert!(dispatch(&mut c, t).await.accepted);
    let ev = master.wait_terminal(1).await;
    assert_eq!((ev.kind(), ev.exit_code), (TaskEventKind::Failure, 137));

    // A timeout kills the whole group, the task's own children included.
    let mut t = python(
        2,
        e,
        "import subprocess\np = subprocess.Popen(['sleep', '60'])\nopen('bg.pid', 'w').write(str(p.pid))\np.wait()\n",
    );
    t.timeout_ms = 500;
    assert!(dispatch(&mut c, t).await.accepted);
    let running = master.wait_event(2, TaskEventKind::Running).await;
    let ev = master.wait_terminal(2).await;
    assert_eq!(ev.kind(), TaskEventKind::Timeout, "{ev:?}");
    let bg: i32 = std::fs::read_to_string(attempt_dir(dir.path(), 2).join("bg.pid"))
        .unwrap()
        .parse()
        .unwrap();
    wait_until("the task's child is gone", || process_gone(bg)).await;
    assert!(process_gone(running.pid as i32));
    worker.shutdown(true).await;
}

#[tokio::test]
async fn with_python_fork_off_tasks_start_by_exec() {
    let reg = MemoryRegistry::new();
    let master = TestMaster::start(&reg, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.python_fork = false;
    let worker = start_worker(cfg, &reg).await;
    let mut c = client(&worker).await;
    let t = python(1, master.epoch(), &format!("{SHOW_PARENT}print('ok')\n"));
    assert!(dispatch(&mut c, t).await.accepted);
    let ev = master.wait_terminal(1).await;
    assert_eq!(ev.kind(), TaskEventKind::Success, "{ev:?}");
    assert_eq!(log_of(dir.path(), 1), "parent=other\nok\n");
    worker.shutdown(true).await;
}

#[tokio::test]
async fn a_task_outlives_its_fork_server_and_the_next_task_gets_a_new_one() {
    let reg = MemoryRegistry::new();
    let master = TestMaster::start(&reg, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let worker = start_worker(config(dir.path()), &reg).await;
    let mut c = client(&worker).await;
    let e = master.epoch();
    let fifo = dir.path().join("go");
    make_fifo(&fifo);
    let t = python(
        1,
        e,
        &format!(
            "import os\nprint('server=%d' % os.getppid(), flush=True)\nopen({:?}).read()\nprint('released')\n",
            fifo.display()
        ),
    );
    assert!(dispatch(&mut c, t).await.accepted);
    let log = attempt_dir(dir.path(), 1).join("task.log");
    wait_until("the task printed its parent", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains('\n'))
    })
    .await;
    let server: i32 = std::fs::read_to_string(&log).unwrap()["server=".len()..]
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill(2) on a pid this test just read; no memory involved.
    assert_eq!(unsafe { libc::kill(server, libc::SIGKILL) }, 0);
    wait_until("the fork server is gone", || process_gone(server)).await;
    release(&fifo).await;
    let ev = master.wait_terminal(1).await;
    assert_eq!(ev.kind(), TaskEventKind::Success, "{ev:?}");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().lines().nth(1),
        Some("released")
    );

    let t = python(
        2,
        e,
        &format!("import os\nprint('server=%d' % os.getppid())\n{SHOW_PARENT}"),
    );
    assert!(dispatch(&mut c, t).await.accepted);
    let ev = master.wait_terminal(2).await;
    assert_eq!(ev.kind(), TaskEventKind::Success, "{ev:?}");
    let log = log_of(dir.path(), 2);
    assert!(log.ends_with("parent=fork-server\n"), "{log}");
    let second: i32 = log.lines().next().unwrap()["server=".len()..]
        .parse()
        .unwrap();
    assert_ne!(second, server, "a new fork server");
    worker.shutdown(true).await;
}

#[tokio::test]
async fn the_dead_man_switch_kills_forked_tasks_of_a_silent_worker() {
    let reg = MemoryRegistry::new();
    let master = TestMaster::start(&reg, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.deadman = Some(std::time::Duration::from_millis(800));
    let a = start_worker(cfg, &reg).await;
    let mut c = client(&a).await;
    let e = master.epoch();
    // A live worker keeps a forked task alive past the window.
    let t = python(1, e, &format!("{SHOW_PARENT}import time\ntime.sleep(2)\n"));
    assert!(dispatch(&mut c, t).await.accepted);
    let ev = master.wait_terminal(1).await;
    assert_eq!(ev.kind(), TaskEventKind::Success, "{ev:?}");
    assert_eq!(log_of(dir.path(), 1), "parent=fork-server\n");
    // A silent one takes the task and its children with it.
    let t = python(
        2,
        e,
        "import subprocess\nsubprocess.Popen(['sleep', '60'])\nsubprocess.run(['sleep', '60'])\n",
    );
    assert!(dispatch(&mut c, t).await.accepted);
    let running = master.wait_event(2, TaskEventKind::Running).await;
    let pgid = running.pid as i32;
    wait_until("the task's children run", || live_group_members(pgid) >= 3).await;
    let silent_since = std::time::Instant::now();
    a.shutdown(false).await;
    wait_until("no live process of the task's group is left", || {
        live_group_members(pgid) == 0
    })
    .await;
    assert!(
        silent_since.elapsed() < std::time::Duration::from_secs(3),
        "killed after {:?}",
        silent_since.elapsed()
    );
    let log = log_of(dir.path(), 2);
    assert!(log.contains("(dead-man switch)"), "{log}");
}

#[tokio::test]
async fn preloaded_modules_are_loaded_in_forked_tasks_and_a_missing_one_is_skipped() {
    let reg = MemoryRegistry::new();
    let master = TestMaster::start(&reg, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.python_preload = vec!["wave".into(), "orca_no_such_module".into()];
    let worker = start_worker(cfg, &reg).await;
    let mut c = client(&worker).await;
    let t = python(
        1,
        master.epoch(),
        &format!(
            "{SHOW_PARENT}import sys\nprint('wave' in sys.modules, 'colorsys' in sys.modules)\n"
        ),
    );
    assert!(dispatch(&mut c, t).await.accepted);
    let ev = master.wait_terminal(1).await;
    assert_eq!(ev.kind(), TaskEventKind::Success, "{ev:?}");
    assert_eq!(log_of(dir.path(), 1), "parent=fork-server\nTrue False\n");
    worker.shutdown(true).await;
}

/// A PYTHON dispatch of run `wf` that lets the run's tasks share processes
/// (workflow `python_process: per_run`).
fn shared(tiid: i64, epoch: u64, wf: i64, script: &str) -> TaskDispatch {
    let mut t = python(tiid, epoch, script);
    t.workflow_instance_id = wf;
    t.share_python_process = true;
    t
}

#[tokio::test]
async fn a_run_that_shares_processes_reuses_only_clean_ones_of_its_own() {
    let reg = MemoryRegistry::new();
    let master = TestMaster::start(&reg, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let worker = start_worker(config(dir.path()), &reg).await;
    let mut c = client(&worker).await;
    let e = master.epoch();
    let mut run = async |t: TaskDispatch| {
        let tiid = t.task_instance_id;
        assert!(dispatch(&mut c, t).await.accepted);
        master.wait_terminal(tiid).await
    };

    // A task changes what a process carries: environment, cwd, sys.path,
    // argv, its globals, an imported module.
    let first = run(shared(
        1,
        e,
        1,
        "import io, os, sys, colorsys\nos.environ['LEAK'] = '1'\nos.chdir('/')\nsys.path.append('/leak')\nsys.argv.append('x')\nmine = 1\nprint('first')\nsys.stdout = io.StringIO()\n",
    ))
    .await;
    assert_eq!(first.kind(), TaskEventKind::Success, "{first:?}");
    // The next task of the run gets the same process, reset.
    let mut t = shared(
        2,
        e,
        1,
        "import os, sys\nprint('leak=%s' % ('LEAK' in os.environ))\nprint('n=' + os.environ['n'])\nprint('cwd_is_own=%s' % (os.getcwd() == os.path.dirname(os.path.abspath(__file__))))\nprint('path=%s' % ('/leak' in sys.path))\nprint('argv=%d' % len(sys.argv))\nprint('globals=%s' % ('mine' in globals()))\nprint('module_kept=%s' % ('colorsys' in sys.modules))\n",
    );
    t.params = vec![param("n", "7")];
    let second = run(t).await;
    assert_eq!(second.kind(), TaskEventKind::Success, "{second:?}");
    assert_eq!(second.pid, first.pid, "the run's process was not reused");
    assert_eq!(
        log_of(dir.path(), 2),
        "leak=False\nn=7\ncwd_is_own=True\npath=False\nargv=1\nglobals=False\nmodule_kept=True\n"
    );
    assert_eq!(log_of(dir.path(), 1), "first\n");

    // Never across runs, nor for a task of the run that does not share.
    let other_run = run(shared(3, e, 2, "print('other run')\n")).await;
    assert_ne!(other_run.pid, first.pid);
    let mut t = python(4, e, "print('own process')\n");
    t.workflow_instance_id = 1;
    let unshared = run(t).await;
    assert_ne!(unshared.pid, first.pid);

    // A failed task, one that leaves a thread or a signal handler behind:
    // their processes end, the next task gets a fresh one.
    for (tiid, script, kind) in [
        (5, "import sys\nsys.exit(2)\n", TaskEventKind::Failure),
        (
            7,
            "import threading, time\nthreading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n",
            TaskEventKind::Success,
        ),
        (
            9,
            "import signal\nsignal.signal(signal.SIGTERM, lambda *a: None)\n",
            TaskEventKind::Success,
        ),
        (
            11,
            "import builtins\nbuiltins.left_open = open('/dev/null')\n",
            TaskEventKind::Success,
        ),
    ] {
        let warm = run(shared(tiid + 100, e, 1, "print('warm')\n")).await;
        let ended = run(shared(tiid, e, 1, script)).await;
        assert_eq!(ended.kind(), kind, "{ended:?}");
        assert_eq!(
            ended.pid, warm.pid,
            "task {tiid} did not run in the kept process"
        );
        wait_until("the unclean process has ended", || {
            process_gone(ended.pid as i32)
        })
        .await;
    }

    // A timeout kills the kept process running the task.
    let warm = run(shared(200, e, 1, "print('warm')\n")).await;
    let mut t = shared(201, e, 1, "import time\ntime.sleep(60)\n");
    t.timeout_ms = 300;
    let ended = run(t).await;
    assert_eq!(ended.kind(), TaskEventKind::Timeout, "{ended:?}");
    assert_eq!(ended.pid, warm.pid);
    assert!(process_gone(ended.pid as i32));
    worker.shutdown(true).await;
}

#[tokio::test]
async fn parallel_tasks_of_a_sharing_run_each_get_a_process_and_later_ones_reuse_them() {
    let reg = MemoryRegistry::new();
    let master = TestMaster::start(&reg, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.slots = 8;
    let worker = start_worker(cfg, &reg).await;
    let mut c = client(&worker).await;
    let e = master.epoch();
    let mut wave = async |first: i64| {
        for tiid in first..first + 3 {
            let t = shared(tiid, e, 1, "import time\ntime.sleep(0.2)\nprint('ok')\n");
            assert!(dispatch(&mut c, t).await.accepted);
        }
        let mut pids = Vec::new();
        for tiid in first..first + 3 {
            let ev = master.wait_terminal(tiid).await;
            assert_eq!(ev.kind(), TaskEventKind::Success, "{ev:?}");
            assert_eq!(log_of(dir.path(), tiid), "ok\n");
            pids.push(ev.pid);
        }
        pids.sort_unstable();
        pids
    };
    // Running at once, the three cannot share: three processes.
    let first = wave(1).await;
    assert!(first[0] != first[1] && first[1] != first[2], "{first:?}");
    // The next three of the run get those three back.
    let second = wave(4).await;
    assert_eq!(second, first);
    worker.shutdown(true).await;
}
