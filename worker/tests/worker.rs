//! End-to-end tests of the worker: real processes, real files, a real gRPC
//! master stub, waits on events with deadlines.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use orca_common::registry::memory::MemoryRegistry;
use orca_common::registry::{Registry, WorkerInfo};
use orca_proto::v1::{
    AttemptState, KillTaskRequest, ListAttemptsRequest, StreamTaskLogRequest, TaskEventKind,
};
use support::*;
use tokio_stream::StreamExt;

fn out(ev: &orca_proto::v1::TaskEvent) -> HashMap<String, String> {
    ev.out_params.clone().into_iter().collect()
}

#[tokio::test]
async fn shell_task_reports_success_with_its_start_and_out_params_from_env_params() {
    let reg = MemoryRegistry::new();
    let master = TestMaster::start(&reg, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let worker = start_worker(config(dir.path()), &reg).await;
    assert_eq!(reg.workers().await.unwrap()[0].addr, worker.url());
    let mut c = client(&worker).await;

    let mut task = shell(
        1,
        master.epoch(),
        "echo \"hello ${greeting}\"\necho '${setValue(answer=42)}'\necho \"#{setValue(who=$greeting)}\"\necho \"#{setValue(cwd=$PWD)}\"\nexit 0\n",
    );
    task.params = vec![param("greeting", "world; rm -rf /")];
    let resp = dispatch(&mut c, task).await;
    assert!(resp.accepted, "{}", resp.reason);

    let done = master.wait_terminal(1).await;
    assert_eq!(done.kind(), TaskEventKind::Success, "{done:?}");
    assert_eq!(done.exit_code, 0);
    assert!(done.pid > 0);
    assert_eq!(done.worker_id, worker.id());
    assert!(
        0 < done.start_time_us && done.start_time_us <= done.event_time_us,
        "{done:?}"
    );
    let adir = attempt_dir(dir.path(), 1);
    let params = out(&done);
    assert_eq!(params.get("answer").map(String::as_str), Some("42"));
    assert_eq!(
        params.get("who").map(String::as_str),
        Some("world; rm -rf /")
    );
    assert_eq!(params.get("cwd").map(String::as_str), adir.to_str());
    assert_eq!(done.log_path, adir.join("task.log").display().to_string());
    let log = std::fs::read_to_string(adir.join("task.log")).unwrap();
    assert!(log.starts_with("hello world; rm -rf /\n"), "{log}");
    // Acknowledged, log shipped: the terminal file is in its done state,
    // and these are all the files the attempt made.
    wait_until("the terminal file is done", || {
        terminal_file(&adir) == Some(TERMINAL_DONE)
    })
    .await;
    assert_eq!(
        file_names(&adir),
        [
            "dispatch.json",
            "exit_code",
            "pid.json",
            "task.log",
            "task.sh",
            TERMINAL_DONE
        ]
    );
    assert!(!dir.path().join("outbox").exists());
    worker.shutdown(true).await;
}

#[tokio::test]
async fn failing_task_reports_its_exit_code_and_python_tasks_run() {
    let reg = MemoryRegistry::new();
    let master = TestMaster::start(&reg, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let worker = start_worker(config(dir.path()), &reg).await;
    let mut c = client(&worker).await;

    assert!(
        dispatch(&mut c, shell(1, master.epoch(), "echo oops >&2\nexit 3"))
            .await
            .accepted
    );
    let mut py = shell(
        2,
        master.epoch(),
        "import os\nx = ${n} * 2\nprint('$' + '{setValue(doubled=%d)}' % x)\nprint('$' + '{setValue(env=' + os.environ['n'] + ')}')\n",
    );
    py.task_type = "PYTHON".into();
    py.params = vec![param("n", "21")];
    assert!(dispatch(&mut c, py).await.accepted);

    let failed = master.wait_terminal(1).await;
    assert_eq!(failed.kind(), TaskEventKind::Failure);
    assert_eq!(failed.exit_code, 3);
    let log = std::fs::read_to_string(attempt_dir(dir.path(), 1).join("task.log")).unwrap();
    assert_eq!(log, "oops\n");
    // The log is shipped to the leader, so it outlives this worker.
    let shipped = master.wait_log(1).await;
    assert_eq!(
        (shipped.attempt, shipped.data.as_slice(), shipped.truncated),
        (1, &b"oops\n"[..], false)
    );
    wait_until("the terminal file says acknowledged and shipped", || {
        terminal_file(&attempt_dir(dir.path(), 1)) == Some(TERMINAL_DONE)
    })
    .await;

    let py_done = master.wait_terminal(2).await;
    assert_eq!(py_done.kind(), TaskEventKind::Success, "{py_done:?}");
    let params = out(&py_done);
    assert_eq!(params.get("doubled").map(String::as_str), Some("42"));
    assert_eq!(params.get("env").map(String::as_str), Some("21"));
    assert!(attempt_dir(dir.path(), 2).join("task.py").exists());
    worker.shutdown(true).await;
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let reg = MemoryRegistry::new();
    let master = TestMaster::start(&reg, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let worker = start_worker(config(dir.path()), &reg).await;
    let mut c = client(&worker).await;

    let mut task = shell(1, master.epoch(), "sleep 60 &\necho $! > bg.pid\nwait\n");
    task.timeout_ms = 300;
    assert!(dispatch(&mut c, task).await.accepted);
    let running = master.wait_event(1, TaskEventKind::Running).await;
    let ev = master.wait_terminal(1).await;
    assert_eq!(ev.kind(), TaskEventKind::Timeout, "{ev:?}");
    let bg: i32 = std::fs::read_to_string(attempt_dir(dir.path(), 1).join("bg.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_until("the background child is gone", || process_gone(bg)).await;
    assert!(process_gone(running.pid as i32));
    worker.shutdown(true).await;
}

#[tokio::test]
async fn kill_task_kills_and_reports_killed() {
    let reg = MemoryRegistry::new();
    let master = TestMaster::start(&reg, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let worker = start_worker(config(dir.path()), &reg).await;
    let mut c = client(&worker).await;

    assert!(
        dispatch(&mut c, shell(1, master.epoch(), "sleep 60"))
            .await
            .accepted
    );
    let running = master.wait_event(1, TaskEventKind::Running).await;
    let kill = |tiid| KillTaskRequest {
        task_instance_id: tiid,
        attempt: 1,
        epoch: master.epoch(),
    };
    assert!(c.kill_task(kill(1)).await.unwrap().into_inner().found);
    let ev = master.wait_terminal(1).await;
    assert_eq!(ev.kind(), TaskEventKind::Killed, "{ev:?}");
    assert!(process_gone(running.pid as i32));
    // Unknown or finished attempts are not found.
    assert!(!c.kill_task(kill(99)).await.unwrap().into_inner().found);
    assert!(!c.kill_task(kill(1)).await.unwrap().into_inner().found);
    worker.shutdown(true).await;
}

#[tokio::test]
async fn duplicate_dispatch_starts_once_even_after_a_restart() {
    let reg = MemoryRegistry::new();
    let master = TestMaster::start(&reg, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("count");
    let mut task = shell(1, master.epoch(), "echo run >> \"${count_file}\"");
    task.params = vec![param("count_file", counter.to_str().unwrap())];

    let worker = start_worker(config(dir.path()), &reg).await;
    let mut c = client(&worker).await;
    let (mut c1, mut c2) = (c.clone(), c.clone());
    let (a, b) = tokio::join!(
        dispatch(&mut c1, task.clone()),
        dispatch(&mut c2, task.clone())
    );
    assert!(a.accepted && b.accepted);
    master.wait_terminal(1).await;
    assert!(dispatch(&mut c, task.clone()).await.accepted);
    // The ack is recorded (a restart racing it would send the terminal
    // event once more, which a leader ignores but this test counts).
    wait_until("the terminal file is done", || {
        terminal_file(&attempt_dir(dir.path(), 1)) == Some(TERMINAL_DONE)
    })
    .await;
    worker.shutdown(false).await;

    let worker = start_worker(config(dir.path()), &reg).await;
    let mut c = client(&worker).await;
    assert!(dispatch(&mut c, task.clone()).await.accepted);
    // A later task on the same worker ran to its end: the duplicates would have too.
    assert!(
        dispatch(&mut c, shell(2, master.epoch(), "true"))
            .await
            .accepted
    );
    master.wait_terminal(2).await;
    assert_eq!(std::fs::read_to_string(&counter).unwrap(), "run\n");
    // One end, maybe reported twice: a report not yet deleted from the
    // outbox when the worker stopped is sent again, and is the same event.
    let mut ends: Vec<i64> = master
        .events()
        .iter()
        .filter(|e| e.task_instance_id == 1 && e.seq == 2)
        .map(|e| e.event_time_us)
        .collect();
    ends.dedup();
    assert_eq!(ends.len(), 1, "the task ended more than once: {ends:?}");
    worker.shutdown(true).await;
}

#[tokio::test]
async fn stale_epoch_and_full_worker_are_refused() {
    let reg = MemoryRegistry::new();
    let master = TestMaster::start(&reg, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.slots = 1;
    let worker = start_worker(cfg, &reg).await;
    let mut c = client(&worker).await;
    let epoch = master.epoch();

    let first = dispatch(&mut c, shell(1, epoch + 1, "sleep 60")).await;
    assert!(first.accepted, "{}", first.reason);
    let full = dispatch(&mut c, shell(2, epoch + 1, "true")).await;
    assert!(!full.accepted);
    assert!(full.reason.contains("ORCA-WORKER-FULL"), "{}", full.reason);
    let stale = dispatch(&mut c, shell(3, epoch, "true")).await;
    assert!(!stale.accepted);
    assert!(
        stale.reason.contains("ORCA-WORKER-STALE-EPOCH"),
        "{}",
        stale.reason
    );
    assert!(!attempt_dir(dir.path(), 2).exists() && !attempt_dir(dir.path(), 3).exists());
    let listed = c
        .list_attempts(ListAttemptsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.worker_id, worker.id());
    assert_eq!(listed.attempts.len(), 1);
    assert_eq!(listed.attempts[0].epoch, epoch + 1);
    assert_eq!(reg.workers().await.unwrap()[0].running, 1);
    worker.shutdown(true).await;
    // Shutdown with kill_tasks ends the task (lost with the worker: the
    // master fails it over) and deregisters.
    assert!(reg.workers().await.unwrap().is_empty());
    assert_eq!(master.wait_terminal(1).await.kind(), TaskEventKind::Lost);
}

#[tokio::test]
async fn reports_are_retried_until_acknowledged() {
    let reg = MemoryRegistry::new();
    let master = TestMaster::start(&reg, 0, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let worker = start_worker(config(dir.path()), &reg).await;
    let mut c = client(&worker).await;
    assert!(
        dispatch(&mut c, shell(1, master.epoch(), "true"))
            .await
            .accepted
    );
    let ev = master.wait_terminal(1).await;
    assert_eq!(ev.kind(), TaskEventKind::Success);
    assert_eq!(master.refused(), 3);
    wait_until("the terminal file is done", || {
        terminal_file(&attempt_dir(dir.path(), 1)) == Some(TERMINAL_DONE)
    })
    .await;
    worker.shutdown(true).await;
}

#[tokio::test]
async fn worker_restarted_mid_task_adopts_it_and_reports_its_end() {
    let reg = MemoryRegistry::new();
    let master = TestMaster::start(&reg, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("release");
    make_fifo(&fifo);
    let mut task = shell(
        1,
        master.epoch(),
        "echo before\nread line < \"${fifo}\"\necho \"#{setValue(got=$line)}\"\nexit 0\n",
    );
    task.params = vec![param("fifo", fifo.to_str().unwrap())];

    let a = start_worker(config(dir.path()), &reg).await;
    let id = a.id().to_string();
    assert!(dispatch(&mut client(&a).await, task).await.accepted);
    let running = master.wait_event(1, TaskEventKind::Running).await;
    a.shutdown(false).await;

    let b = start_worker(config(dir.path()), &reg).await;
    assert_eq!(b.id(), id, "the id is kept in the data dir");
    let mut c = client(&b).await;
    let listed = c
        .list_attempts(ListAttemptsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.attempts.len(), 1);
    assert_eq!(listed.attempts[0].state(), AttemptState::Running);
    assert_eq!(listed.attempts[0].pid, running.pid);
    assert_eq!(reg.workers().await.unwrap()[0].running, 1);
    // RUNNING events are not stored: the adopting worker sends it again,
    // stamped with the task's start (a leader ignores the duplicate).
    let again = master.wait_events(1, TaskEventKind::Running, 2).await;
    assert_eq!((again[1].seq, again[1].pid), (1, running.pid));
    assert!(again[1].event_time_us <= running.event_time_us);
    assert!(master.events().iter().all(|e| e.seq == 1));

    release(&fifo).await;
    let ev = master.wait_terminal(1).await;
    assert_eq!(ev.kind(), TaskEventKind::Success, "{ev:?}");
    assert_eq!(out(&ev).get("got").map(String::as_str), Some("go"));
    assert_eq!(ev.worker_id, id);
    let listed = c
        .list_attempts(ListAttemptsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.attempts[0].state(), AttemptState::Finished);
    b.shutdown(true).await;
}

#[tokio::test]
async fn task_gone_while_the_worker_was_down_is_reported_lost() {
    let reg = MemoryRegistry::new();
    let master = TestMaster::start(&reg, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let a = start_worker(config(dir.path()), &reg).await;
    assert!(
        dispatch(&mut client(&a).await, shell(1, master.epoch(), "sleep 60"))
            .await
            .accepted
    );
    let running = master.wait_event(1, TaskEventKind::Running).await;
    a.shutdown(false).await;
    // The task dies without its wrapper writing an exit code.
    // SAFETY: plain kill(2) of the task's own process group.
    assert_eq!(
        unsafe { libc::kill(-(running.pid as i32), libc::SIGKILL) },
        0
    );
    wait_until("the task is gone", || process_gone(running.pid as i32)).await;

    let b = start_worker(config(dir.path()), &reg).await;
    let ev = master.wait_terminal(1).await;
    assert_eq!(ev.kind(), TaskEventKind::Lost);
    assert_eq!(
        ev.message,
        "lost: worker restarted and the task process is gone"
    );
    b.shutdown(true).await;
}

#[tokio::test]
async fn dead_man_switch_kills_tasks_of_a_silent_worker_but_not_of_a_live_one() {
    let reg = MemoryRegistry::new();
    let master = TestMaster::start(&reg, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.deadman = Some(Duration::from_millis(800));
    let a = start_worker(cfg.clone(), &reg).await;
    let mut c = client(&a).await;
    // A live worker keeps its tasks alive well past the window.
    assert!(
        dispatch(&mut c, shell(1, master.epoch(), "sleep 2; echo done"))
            .await
            .accepted
    );
    let ev = master.wait_terminal(1).await;
    assert_eq!(ev.kind(), TaskEventKind::Success, "{ev:?}");
    // A worker that goes silent (as if SIGKILLed: tasks are left running)
    // takes its tasks, children included, with it within the window.
    assert!(
        dispatch(
            &mut c,
            shell(2, master.epoch(), "sleep 60 & sleep 60; wait")
        )
        .await
        .accepted
    );
    let running = master.wait_event(2, TaskEventKind::Running).await;
    let silent_since = std::time::Instant::now();
    a.shutdown(false).await;
    wait_until("the task group is gone", || {
        process_gone(running.pid as i32)
    })
    .await;
    assert!(
        silent_since.elapsed() < Duration::from_secs(3),
        "killed after {:?}",
        silent_since.elapsed()
    );
    wait_until("no live process of the task's group is left", || {
        live_group_members(running.pid as i32) == 0
    })
    .await;
    let b = start_worker(cfg, &reg).await;
    let ev = master.wait_terminal(2).await;
    assert_eq!(ev.kind(), TaskEventKind::Lost, "{ev:?}");
    b.shutdown(true).await;
}

#[tokio::test]
async fn terminal_events_are_resent_after_a_restart_when_the_master_was_down() {
    let reg = MemoryRegistry::new();
    // The leader is registered but nothing listens at its address yet.
    let port = free_port();
    let dead = reg
        .campaign(orca_common::registry::MasterInfo {
            id: "down".into(),
            addr: format!("http://127.0.0.1:{port}"),
        })
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = start_worker(config(dir.path()), &reg).await;
    assert!(
        dispatch(
            &mut client(&a).await,
            shell(1, dead.epoch, "echo '${setValue(k=v)}'")
        )
        .await
        .accepted
    );
    let adir = attempt_dir(dir.path(), 1);
    wait_until("the terminal event is stored", || {
        terminal_file(&adir) == Some(TERMINAL_PENDING)
    })
    .await;
    a.shutdown(false).await;
    assert_eq!(terminal_file(&adir), Some(TERMINAL_PENDING));
    assert!(!dir.path().join("outbox").exists());

    // Restarted while the master is still down: nothing is lost once it
    // comes back.
    let b = start_worker(config(dir.path()), &reg).await;
    dead.resign();
    let master = TestMaster::start(&reg, 0, 0).await;
    let ev = master.wait_terminal(1).await;
    assert_eq!(ev.kind(), TaskEventKind::Success);
    assert_eq!(out(&ev).get("k").map(String::as_str), Some("v"));
    master.wait_log(1).await;
    wait_until("the terminal file is done", || {
        terminal_file(&adir) == Some(TERMINAL_DONE)
    })
    .await;
    // The task had ended: its RUNNING event (never acknowledged, not
    // stored) is not sent again; a leader takes the terminal event alone.
    assert!(
        master
            .events()
            .iter()
            .all(|e| e.kind() != TaskEventKind::Running),
        "{:?}",
        master.events()
    );
    b.shutdown(true).await;
}

#[tokio::test]
async fn pending_reports_follow_a_new_leader() {
    let reg = MemoryRegistry::new();
    let old = TestMaster::start(&reg, 0, usize::MAX).await;
    let dir = tempfile::tempdir().unwrap();
    let worker = start_worker(config(dir.path()), &reg).await;
    assert!(
        dispatch(&mut client(&worker).await, shell(1, old.epoch(), "true"))
            .await
            .accepted
    );
    let adir = attempt_dir(dir.path(), 1);
    wait_until("the task ended", || {
        matches!(
            terminal_file(&adir),
            Some(TERMINAL_PENDING | TERMINAL_SHIPPED)
        )
    })
    .await;
    wait_until("the old leader refused a report", || old.refused() > 0).await;
    drop(old);
    let new = TestMaster::start(&reg, 0, 0).await;
    assert_eq!(new.wait_terminal(1).await.kind(), TaskEventKind::Success);
    worker.shutdown(true).await;
}

#[tokio::test]
async fn log_streams_with_follow_until_the_task_ends() {
    let reg = MemoryRegistry::new();
    let master = TestMaster::start(&reg, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("release");
    make_fifo(&fifo);
    let worker = start_worker(config(dir.path()), &reg).await;
    let mut c = client(&worker).await;
    let mut task = shell(
        1,
        master.epoch(),
        "echo line1\necho line2\nread x < \"${fifo}\"\necho last\n",
    );
    task.params = vec![param("fifo", fifo.to_str().unwrap())];
    assert!(dispatch(&mut c, task).await.accepted);
    master.wait_event(1, TaskEventKind::Running).await;

    let req = |offset, follow| StreamTaskLogRequest {
        task_instance_id: 1,
        attempt: 1,
        offset,
        follow,
    };
    let mut stream = c.stream_task_log(req(0, true)).await.unwrap().into_inner();
    let mut text = Vec::new();
    let mut expect_offset = 0u64;
    let mut released = false;
    let collected = tokio::time::timeout(DEADLINE, async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            assert_eq!(chunk.offset, expect_offset);
            expect_offset += chunk.data.len() as u64;
            text.extend_from_slice(&chunk.data);
            if !released && text.ends_with(b"line2\n") {
                released = true;
                release(&fifo).await;
            }
        }
    })
    .await;
    assert!(collected.is_ok(), "follow stream did not end");
    assert_eq!(String::from_utf8(text).unwrap(), "line1\nline2\nlast\n");

    let rest: Vec<u8> = c
        .stream_task_log(req(6, false))
        .await
        .unwrap()
        .into_inner()
        .map(|c| c.unwrap().data)
        .collect::<Vec<_>>()
        .await
        .concat();
    assert_eq!(rest, b"line2\nlast\n");
    let missing = c
        .stream_task_log(StreamTaskLogRequest {
            task_instance_id: 9,
            ..req(0, false)
        })
        .await;
    assert_eq!(missing.unwrap_err().code(), tonic::Code::NotFound);
    worker.shutdown(true).await;
}

#[tokio::test]
async fn lease_loss_kills_running_tasks() {
    let reg = MemoryRegistry::new();
    let master = TestMaster::start(&reg, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let worker = start_worker(config(dir.path()), &reg).await;
    assert!(
        dispatch(
            &mut client(&worker).await,
            shell(1, master.epoch(), "sleep 60")
        )
        .await
        .accepted
    );
    let running = master.wait_event(1, TaskEventKind::Running).await;
    // Another registration under the same id takes the lease away.
    let mut info: WorkerInfo = reg.workers().await.unwrap()[0].clone();
    info.addr = "http://elsewhere:1".into();
    let _other = reg.register_worker(info).await.unwrap();
    let ev = master.wait_terminal(1).await;
    assert_eq!(ev.kind(), TaskEventKind::Lost);
    assert!(ev.message.contains("lease"), "{}", ev.message);
    wait_until("the task is gone", || process_gone(running.pid as i32)).await;
    tokio::time::timeout(Duration::from_secs(10), worker.shutdown(true))
        .await
        .unwrap();
}

/// Finished attempts are deleted after `attempt_retention`, but only once
/// their report is acknowledged and their log shipped: with no leader to
/// take them, they stay whatever their age.
#[tokio::test]
async fn finished_attempts_are_deleted_after_retention_once_reported_and_shipped() {
    let reg = MemoryRegistry::new();
    // First no leader listens: reports and logs stay with the worker.
    let port = free_port();
    let dead = reg
        .campaign(orca_common::registry::MasterInfo {
            id: "down".into(),
            addr: format!("http://127.0.0.1:{port}"),
        })
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.attempt_retention = Some(Duration::from_millis(1));
    let w = start_worker(cfg, &reg).await;
    let mut c = client(&w).await;
    assert!(
        dispatch(&mut c, shell(1, dead.epoch, "echo kept"))
            .await
            .accepted
    );
    let adir = attempt_dir(dir.path(), 1);
    wait_until("the terminal event is stored", || {
        terminal_file(&adir) == Some(TERMINAL_PENDING)
    })
    .await;
    // A sweep runs (it removes empty run dirs, such as this one, made
    // after the report was stored): the attempt is not deleted.
    let probe = dir.path().join("attempts").join("999999");
    std::fs::create_dir_all(&probe).unwrap();
    wait_until("a sweep ran", || !probe.exists()).await;
    assert!(
        adir.join("task.log").exists(),
        "an unreported attempt is kept"
    );
    let listed = c
        .list_attempts(orca_proto::v1::ListAttemptsRequest {})
        .await
        .unwrap()
        .into_inner()
        .attempts;
    assert_eq!(listed.len(), 1);

    // A leader takes the report and the log: the attempt goes, from disk
    // and from ListAttempts.
    dead.resign();
    let master = TestMaster::start(&reg, 0, 0).await;
    master.wait_terminal(1).await;
    master.wait_log(1).await;
    wait_until("the attempt dir is deleted", || !adir.exists()).await;
    let listed = c
        .list_attempts(orca_proto::v1::ListAttemptsRequest {})
        .await
        .unwrap()
        .into_inner()
        .attempts;
    assert!(listed.is_empty(), "{listed:?}");
    // New attempts still run (the run's dir is made again).
    assert!(
        dispatch(&mut c, shell(2, master.epoch(), "true"))
            .await
            .accepted
    );
    assert_eq!(master.wait_terminal(2).await.kind(), TaskEventKind::Success);
    w.shutdown(true).await;
}

/// The configured python is resolved once, by the first PYTHON task, to
/// the interpreter it runs: a launcher in between (here a shim script, as pyenv installs) is
/// not started again for every PYTHON task.
#[tokio::test]
async fn python_launchers_are_resolved_once_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let reg = MemoryRegistry::new();
    let master = TestMaster::start(&reg, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("shim-calls");
    let shim = dir.path().join("python-shim");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\necho called >> {}\nexec python3 \"$@\"\n",
            calls.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cfg = config(&dir.path().join("data"));
    cfg.python = shim.display().to_string();
    let w = start_worker(cfg, &reg).await;
    let mut c = client(&w).await;
    for tiid in [1, 2] {
        let mut py = shell(tiid, master.epoch(), "print('from python')\n");
        py.task_type = "PYTHON".into();
        assert!(dispatch(&mut c, py).await.accepted);
        let done = master.wait_terminal(tiid).await;
        assert_eq!(done.kind(), TaskEventKind::Success, "{done:?}");
    }
    let n = std::fs::read_to_string(&calls).unwrap().lines().count();
    assert_eq!(n, 1, "the shim runs once, to resolve the interpreter");
    w.shutdown(true).await;
}

/// A data dir of the earlier layout (every event in `outbox/`, `reported`
/// and `log_shipped` markers) is taken over by an upgraded worker: events
/// left in the outbox are sent, unshipped logs shipped, and every attempt
/// ends with a terminal file in the done state.
#[tokio::test]
async fn legacy_outbox_and_markers_are_recovered() {
    let reg = MemoryRegistry::new();
    let master = TestMaster::start(&reg, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    let write = |path: std::path::PathBuf, text: String| std::fs::write(path, text).unwrap();
    let event = |tiid: i64, seq: u64, kind: &str, message: &str| {
        format!(
            r#"{{"task_instance_id":{tiid},"attempt":1,"seq":{seq},"kind":"{kind}","exit_code":0,
                "event_time_us":1700000000000000,"worker_id":"old","message":"{message}"}}"#
        )
    };
    // 1: ended, terminal event (and RUNNING) still in the outbox, log not shipped.
    // 2: acknowledged and shipped.  3: acknowledged, log not shipped.
    for tiid in 1..=3 {
        let adir = attempt_dir(dir.path(), tiid);
        std::fs::create_dir_all(&adir).unwrap();
        write(
            adir.join("dispatch.json"),
            format!(
                r#"{{"task_instance_id":{tiid},"attempt":1,"workflow_instance_id":1,"workflow_name":"wf",
                    "task_name":"t","task_type":"SHELL","script":"true","params":[],"timeout_ms":0,
                    "epoch":{},"master_addr":"","schedule_time_ms":0,"failover":false,"project":"p"}}"#,
                master.epoch()
            ),
        );
        write(adir.join("exit_code"), "0\n".into());
        write(adir.join("task.log"), format!("log of {tiid}\n"));
        write(adir.join("reported"), String::new());
    }
    write(
        outbox.join("1_1_2.json"),
        event(1, 2, "SUCCESS", "from the legacy outbox"),
    );
    write(outbox.join("1_1_1.json"), event(1, 1, "RUNNING", ""));
    write(
        attempt_dir(dir.path(), 2).join("log_shipped"),
        String::new(),
    );

    let w = start_worker(config(dir.path()), &reg).await;
    let ev = master.wait_terminal(1).await;
    assert_eq!(
        ev.message, "from the legacy outbox",
        "the stored event is sent"
    );
    assert_eq!(ev.worker_id, "old");
    master.wait_event(1, TaskEventKind::Running).await;
    assert_eq!(master.wait_log(1).await.data, b"log of 1\n");
    assert_eq!(master.wait_log(3).await.data, b"log of 3\n");
    for tiid in 1..=3 {
        let adir = attempt_dir(dir.path(), tiid);
        wait_until("the terminal file is done", || {
            terminal_file(&adir) == Some(TERMINAL_DONE)
        })
        .await;
        assert!(!adir.join("reported").exists() && !adir.join("log_shipped").exists());
    }
    wait_until("the legacy outbox is emptied", || {
        file_names(&outbox).is_empty()
    })
    .await;
    // Acknowledged ones are not sent again; every attempt stays listed.
    assert!(
        master.events().iter().all(|e| e.task_instance_id == 1),
        "{:?}",
        master.events()
    );
    let listed = client(&w)
        .await
        .list_attempts(ListAttemptsRequest {})
        .await
        .unwrap()
        .into_inner()
        .attempts;
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|a| a.state() == AttemptState::Finished));
    w.shutdown(true).await;
    // The next start removes the emptied legacy outbox.
    let w = start_worker(config(dir.path()), &reg).await;
    assert!(!outbox.exists());
    w.shutdown(true).await;
}

/// RUNNING is reported once a task has run for `running_delay`; a task
/// that ends sooner reports only its end, which carries its start.
#[tokio::test]
async fn running_is_reported_only_for_tasks_that_outlive_the_delay() {
    let reg = MemoryRegistry::new();
    let master = TestMaster::start(&reg, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.running_delay = Duration::from_millis(100);
    let worker = start_worker(cfg, &reg).await;
    let mut c = client(&worker).await;
    let fifo = dir.path().join("release");
    make_fifo(&fifo);
    let mut long = shell(1, master.epoch(), "read line < \"${fifo}\"\n");
    long.params = vec![param("fifo", fifo.to_str().unwrap())];
    assert!(dispatch(&mut c, long).await.accepted);
    let running = master.wait_event(1, TaskEventKind::Running).await;
    assert_eq!(running.seq, 1);
    assert!(running.pid > 0);
    assert_eq!(running.worker_id, worker.id());
    release(&fifo).await;
    let done = master.wait_terminal(1).await;
    assert_eq!(done.kind(), TaskEventKind::Success, "{done:?}");
    assert_eq!(done.start_time_us, running.event_time_us);
    assert!(done.event_time_us - done.start_time_us >= 100_000);
    worker.shutdown(true).await;

    // A long delay: a short task is over long before it.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.running_delay = Duration::from_secs(3600);
    let worker = start_worker(cfg, &reg).await;
    let mut c = client(&worker).await;
    assert!(
        dispatch(&mut c, shell(2, master.epoch(), "true"))
            .await
            .accepted
    );
    let done = master.wait_terminal(2).await;
    assert_eq!(done.kind(), TaskEventKind::Success, "{done:?}");
    assert!(0 < done.start_time_us && done.start_time_us <= done.event_time_us);
    worker.shutdown(true).await;
    assert!(
        master
            .events()
            .iter()
            .all(|e| !(e.task_instance_id == 2 && e.kind() == TaskEventKind::Running)),
        "no RUNNING for a task that ended first"
    );
}

/// SHELL scripts are sourced in a subshell of the wrapper: they must
/// behave as `bash task.sh` would ($0, exit codes, their own EXIT traps,
/// `cd`, `set -e`, `wait` for their own jobs only) and their exit code
/// must still reach `exit_code`.
#[tokio::test]
async fn shell_scripts_behave_as_if_run_by_bash() {
    let reg = MemoryRegistry::new();
    let master = TestMaster::start(&reg, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.slots = 8;
    let worker = start_worker(cfg, &reg).await;
    let mut c = client(&worker).await;
    let e = master.epoch();
    let cases: [(i64, &str, i32, &str); 5] = [
        (
            1,
            "echo \"zero=$0 args=$#\"\ncd /\ntrap 'echo bye' EXIT\nexit 4\n",
            4,
            "zero=task.sh args=0\nbye\n",
        ),
        (2, "set -e\necho before\nfalse\necho after\n", 1, "before\n"),
        (
            3,
            "(sleep 0.2; echo job) &\nwait\necho waited\n",
            0,
            "job\nwaited\n",
        ),
        (4, "f() { return 3; }\nf\necho \"rc=$?\"\n", 0, "rc=3\n"),
        (
            5,
            "nosuchcommand_orca\n",
            127,
            "nosuchcommand_orca: command not found",
        ),
    ];
    for (tiid, script, _, _) in &cases {
        assert!(dispatch(&mut c, shell(*tiid, e, script)).await.accepted);
    }
    for (tiid, _, code, log) in cases {
        let ev = master.wait_terminal(tiid).await;
        assert_eq!(ev.exit_code, code, "task {tiid}: {ev:?}");
        let adir = attempt_dir(dir.path(), tiid);
        let got = std::fs::read_to_string(adir.join("task.log")).unwrap();
        assert!(got.contains(log), "task {tiid} log: {got:?}");
        assert_eq!(
            std::fs::read_to_string(adir.join("exit_code")).unwrap(),
            format!("{code}\n"),
            "task {tiid}"
        );
    }
    worker.shutdown(true).await;
}

/// Logs of tasks that end together go to the leader in one call; a leader
/// of an earlier version, which does not know that call, gets them one by
/// one. Either way every log arrives, whole, and the terminal files say so.
#[tokio::test]
async fn logs_of_tasks_ending_together_are_shipped_together() {
    let reg = MemoryRegistry::new();
    let master = TestMaster::start(&reg, 0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let worker = start_worker(config(dir.path()), &reg).await;
    let mut c = client(&worker).await;
    let go = dir.path().join("go");
    for tiid in 1..=4 {
        let mut t = shell(
            tiid,
            master.epoch(),
            "while [ ! -e \"${go}\" ]; do sleep 0.01; done\necho \"log of ${n}\"\n",
        );
        t.params = vec![
            param("go", go.to_str().unwrap()),
            param("n", &tiid.to_string()),
        ];
        assert!(dispatch(&mut c, t).await.accepted);
    }
    std::fs::write(&go, "").unwrap();
    for tiid in 1..=4 {
        let log = master.wait_log(tiid).await;
        assert_eq!(log.data, format!("log of {tiid}\n").as_bytes());
        assert!(!log.truncated);
    }
    let batches = master.log_batches();
    assert!(
        (1..4).contains(&batches),
        "4 logs of tasks that ended together took {batches} calls"
    );

    master.without_batched_logs();
    for tiid in 5..=6 {
        assert!(
            dispatch(&mut c, shell(tiid, master.epoch(), "echo one by one"))
                .await
                .accepted
        );
    }
    for tiid in 5..=6 {
        assert_eq!(master.wait_log(tiid).await.data, b"one by one\n");
    }
    assert_eq!(master.log_batches(), batches);
    for tiid in 1..=6 {
        wait_until("the terminal file says shipped", || {
            terminal_file(&attempt_dir(dir.path(), tiid)) == Some(TERMINAL_DONE)
        })
        .await;
    }
    let shipped: Vec<i64> = master.logs().iter().map(|l| l.task_instance_id).collect();
    assert_eq!(shipped.len(), 6, "each log once: {shipped:?}");
    worker.shutdown(true).await;
}
