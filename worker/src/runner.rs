//! Running one attempt: render the script, start it in its own process
//! group with output to `task.log`, supervise it (exit, timeout, kill), and
//! report its end.
//!
//! The task runs under a small wrapper shell that writes the task's exit
//! code to `exit_code` in the attempt dir, so the outcome survives a worker
//! crash; the worker itself learns the exit from `Child::wait()` (or a pidfd
//! for attempts adopted after a restart) and then reads that file.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Local, NaiveDateTime, TimeZone};
use orca_common::params::{ResolvedParam, SYSTEM_TASK_EXECUTE_PATH, render_python, render_shell};
use tokio::time::Instant;

use crate::attempts::{AttemptEntry, Phase};
use crate::error::WorkerError;
use crate::events::{self, now_ms};
use crate::layout::{
    DispatchRecord, EXIT_CODE_FILE, KILL_FILE, KillReason, LOG_FILE, PID_FILE, PidRecord,
    write_atomic, write_json,
};
use crate::process::{TaskProcess, proc_stat, signal_group};
use crate::pyfork::{self, Deadman, ForkRequest};
use crate::tenant::{self, RunAs};
use crate::terminal;
use crate::worker::Worker;
use orca_proto::v1::TaskEvent;

/// Runs `"$@"` (interpreter + script) and stores its exit code, in one
/// write just before the wrapper exits (no rename: that would cost a `mv`
/// process per task). A reader takes an empty or partial `exit_code` as
/// "not yet" ([`crate::layout::read_exit_code`] parses it or gives `None`).
const WRAPPER: &str = r#""$@"; rc=$?; printf '%s\n' "$rc" >exit_code; exit "$rc""#;

/// A SHELL task run as the worker's user: its script is sourced in a
/// subshell of the wrapper (`$0` is `task.sh`, as with `bash task.sh`),
/// which costs a fork instead of a fork and an exec of a second bash. The
/// subshell keeps the task's `exit`, traps, `set` options, directory
/// changes and `wait` to itself.
const SOURCED: &str = "( . ./task.sh )";

/// The same, plus a dead-man switch: a watchdog subshell (in the task's
/// process group) checks every `$ORCA_DEADMAN_HALF` seconds that the worker's
/// heartbeat file `$ORCA_HEARTBEAT` was touched since its last check, and
/// kills the whole group otherwise. No `exit_code` is written then: the
/// attempt is lost with its worker. `-nt` compares mtimes without forking.
const WRAPPER_DEADMAN: &str = r#"cp=.deadman
( trap 'kill $s 2>/dev/null; exit 0' TERM
  while :; do
    : >"$cp"; sleep "$ORCA_DEADMAN_HALF" & s=$!; wait $s
    if ! [ "$ORCA_HEARTBEAT" -nt "$cp" ]; then
      echo "orca: the worker stopped heartbeating; killing the task (dead-man switch)" >&2
      kill -KILL 0
    fi
  done ) &
wd=$!
"$@"; rc=$?
kill $wd 2>/dev/null; wait $wd 2>/dev/null
printf '%s\n' "$rc" >exit_code; exit "$rc""#;

/// A rendered task, ready to start.
pub(crate) struct Prepared {
    interpreter: String,
    script_file: &'static str,
    env: Vec<(String, String)>,
    /// Runs as another user, in its `work/` dir (see [`crate::tenant`]).
    run_as: Option<(RunAs, PathBuf)>,
}

/// Starts and supervises a freshly dispatched attempt (in the background).
pub(crate) fn start_new(
    worker: Arc<Worker>,
    entry: Arc<AttemptEntry>,
    rec: DispatchRecord,
    prepared: Result<Prepared, String>,
) {
    tokio::spawn(async move {
        let started = Instant::now();
        let prepared = match prepared {
            Ok(p) => p,
            Err(message) => return fail_unstarted(&worker, &entry, message).await,
        };
        let (proc, record) = match start_process(&worker, &entry, &rec, &prepared).await {
            Ok(started) => started,
            Err(message) => return fail_unstarted(&worker, &entry, message).await,
        };
        let pid = record.pid;
        entry.set_pid(i64::from(pid));
        metrics::counter!("orca_worker_tasks_started_total").increment(1);
        let running = events::running(&worker.id, entry.key, i64::from(pid), &entry.log_path());
        entry.set_started_us(running.event_time_us);
        // pid.json first: a RUNNING event is only sent for a task a
        // restarted worker can find again. The event itself is not stored:
        // recovery sends it again for every task it adopts.
        let dir = entry.dir.clone();
        match crate::blocking::run(move || write_json(&dir.join(PID_FILE), &record, false)).await {
            Ok(Ok(())) => report_running(&worker, &entry, running),
            Ok(Err(e)) => tracing::error!(error = %e, "cannot record running task"),
            Err(e) => tracing::error!(error = %e, "cannot record running task"),
        }
        tracing::info!(
            tiid = entry.key.task_instance_id,
            attempt = entry.key.attempt,
            pid,
            prepare_ms = started.elapsed().as_millis() as u64,
            "task started"
        );
        let deadline = (rec.timeout_ms > 0)
            .then(|| started + Duration::from_millis(rec.timeout_ms.unsigned_abs()));
        supervise(worker, entry, proc, deadline).await;
    });
}

/// Sends the RUNNING event once the task has run for `running_delay`
/// (see [`crate::WorkerConfig::running_delay`]); a task that ends sooner
/// reports only its end, which carries its start.
fn report_running(worker: &Arc<Worker>, entry: &Arc<AttemptEntry>, running: TaskEvent) {
    let delay = worker.config.running_delay;
    if delay.is_zero() {
        worker.outbox.deliver(running);
        return;
    }
    let (w, e) = (worker.clone(), entry.clone());
    tokio::spawn(async move {
        let mut phase = e.watch_phase();
        let ended = tokio::select! {
            _ = w.cancel.cancelled() => return,
            _ = tokio::time::sleep(delay) => false,
            r = phase.wait_for(|p| *p == Phase::Finished) => r.is_ok(),
        };
        if !ended {
            w.outbox.deliver(running);
        }
    });
}

/// Supervises an attempt adopted after a worker restart (in the background).
pub(crate) fn start_adopted(
    worker: Arc<Worker>,
    entry: Arc<AttemptEntry>,
    record: PidRecord,
    timeout_ms: i64,
) {
    entry.set_pid(i64::from(record.pid));
    entry.set_started_us(record.started_at_ms.saturating_mul(1000));
    let deadline = (timeout_ms > 0).then(|| {
        let elapsed = now_ms().saturating_sub(record.started_at_ms).max(0);
        let left = timeout_ms.saturating_sub(elapsed).max(0);
        Instant::now() + Duration::from_millis(left.unsigned_abs())
    });
    tokio::spawn(supervise(
        worker,
        entry,
        TaskProcess::Adopted(record),
        deadline,
    ));
}

/// Starts the task's process: forked by the Python fork server when it
/// can be ([`crate::pyfork`]), else by exec under the wrapper shell. The
/// error is the message of the FAILURE event.
async fn start_process(
    worker: &Arc<Worker>,
    entry: &Arc<AttemptEntry>,
    rec: &DispatchRecord,
    prepared: &Prepared,
) -> Result<(TaskProcess, PidRecord), String> {
    let deadman = worker
        .config
        .deadman
        .map(|window| (worker.layout.heartbeat_file(), window));
    let forkable = rec.task_type.eq_ignore_ascii_case("PYTHON")
        && prepared.run_as.is_none()
        && pyfork::env_allows_fork(&prepared.env);
    // A server found dead while asked is replaced once.
    let mut tries = if forkable { 2 } else { 0 };
    while tries > 0
        && let Some(server) = worker.fork_server().await
    {
        tries -= 1;
        let req = fork_request(&entry.dir, rec, prepared, deadman.as_ref());
        match server.spawn(&req).await {
            Ok(forked) => {
                if forked.kept {
                    metrics::counter!("orca_worker_python_kept_reuses_total").increment(1);
                } else {
                    metrics::counter!("orca_worker_python_forks_total").increment(1);
                }
                let record = PidRecord {
                    pid: forked.pid,
                    start_time: proc_stat(forked.pid).map(|(_, t)| t).unwrap_or(0),
                    started_at_ms: now_ms(),
                };
                let proc = TaskProcess::Forked {
                    rec: record,
                    exit: Some(forked.exit),
                    status: None,
                };
                return Ok((proc, record));
            }
            Err(f) if f.maybe_started => {
                return Err(format!("ORCA-WORKER-PYFORK: {}", f.message));
            }
            Err(f) if server.is_dead() && tries > 0 => tracing::info!(
                server = server.pid(),
                error = %f.message,
                "the fork server has ended; starting a new one"
            ),
            Err(f) => {
                tracing::warn!(
                    server = server.pid(),
                    error = %f.message,
                    "cannot fork the task; starting it by exec"
                );
                break;
            }
        }
    }
    let child = spawn(&entry.dir, prepared, deadman).map_err(|e| e.to_string())?;
    let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
    let record = PidRecord {
        pid,
        start_time: proc_stat(pid).map(|(_, t)| t).unwrap_or(0),
        started_at_ms: now_ms(),
    };
    Ok((TaskProcess::Child(child), record))
}

/// The fork server's request for a prepared task. The paths are absolute
/// (the child changes its directory before it opens anything) because the
/// data dir is: `crate::start` makes it so. A run that shares processes
/// shares them under its instance id.
fn fork_request(
    dir: &Path,
    rec: &DispatchRecord,
    p: &Prepared,
    deadman: Option<&(PathBuf, Duration)>,
) -> ForkRequest {
    ForkRequest {
        script: dir.join(p.script_file),
        log: dir.join(LOG_FILE),
        exit_file: dir.join(EXIT_CODE_FILE),
        cwd: dir.to_path_buf(),
        env: p.env.iter().cloned().collect(),
        deadman: deadman.map(|(heartbeat, window)| Deadman {
            heartbeat: heartbeat.clone(),
            half: window.as_secs_f64() / 2.0,
        }),
        share: rec
            .share_python_process
            .then(|| format!("run-{}", rec.workflow_instance_id)),
    }
}

/// Renders the script and writes it into `write_into`, the attempt dir
/// `dir` while it is built under its temporary name (or, for a task that
/// runs as its tenant's user, into a work dir that user owns; `roots` are
/// the attempts dir and the root of those work dirs). Blocking. The error
/// is the message of the FAILURE event.
pub(crate) fn prepare(
    rec: &DispatchRecord,
    dir: &Path,
    write_into: &Path,
    roots: &(PathBuf, PathBuf),
    python: &str,
) -> Result<Prepared, String> {
    let run_as = match tenant::resolve(&rec.run_as_user)? {
        None => None,
        Some(ra) => {
            let name = format!("{}_{}", rec.task_instance_id, rec.attempt);
            let work = tenant::prepare_work_dir(&roots.1, &name, &roots.0, &ra).map_err(|e| {
                format!(
                    "ORCA-WORKER-WORK-DIR: cannot prepare the work dir of user {:?}: {e}",
                    ra.user
                )
            })?;
            Some((ra, work))
        }
    };
    let script_dir = run_as.as_ref().map_or(dir, |(_, work)| work.as_path());
    let mut params: Vec<ResolvedParam> = rec.params.iter().map(ResolvedParam::from).collect();
    params.retain(|p| p.name != SYSTEM_TASK_EXECUTE_PATH);
    params.push(ResolvedParam::orca_generated(
        SYSTEM_TASK_EXECUTE_PATH,
        script_dir.display().to_string(),
    ));
    let schedule_time = schedule_time(rec.schedule_time_ms);
    let (rendered, interpreter, script_file) = match rec.task_type.to_ascii_uppercase().as_str() {
        "SHELL" => (
            render_shell(&rec.script, &params, schedule_time),
            "bash".to_string(),
            "task.sh",
        ),
        "PYTHON" => (
            render_python(&rec.script, &params, schedule_time),
            python.to_string(),
            "task.py",
        ),
        other => {
            return Err(format!(
                "ORCA-WORKER-UNSUPPORTED-TASK-TYPE: this worker runs SHELL and PYTHON tasks, not {other:?}"
            ));
        }
    };
    let rendered = rendered.map_err(|e| format!("ORCA-WORKER-RENDER: {e}"))?;
    let script_path = match &run_as {
        Some((_, work)) => {
            let path = work.join(script_file);
            write_atomic(&path, rendered.script.as_bytes(), false).map_err(|e| e.to_string())?;
            path
        }
        // Not visible before the attempt dir is renamed into place.
        None => {
            let path = write_into.join(script_file);
            std::fs::write(&path, rendered.script.as_bytes())
                .map_err(|e| WorkerError::io("write", &path, e).to_string())?;
            path
        }
    };
    if let Some((ra, _)) = &run_as {
        tenant::give(&script_path, ra).map_err(|e| {
            format!(
                "ORCA-WORKER-WORK-DIR: cannot hand {} to user {:?}: {e}",
                script_path.display(),
                ra.user
            )
        })?;
    }
    // Context every task can read (user parameters never use ORCA_ names:
    // the renderer exports those under ORCA_P_<n>).
    let mut env = vec![
        ("PYTHONUNBUFFERED".to_string(), "1".to_string()),
        ("ORCA_WORKFLOW_NAME".to_string(), rec.workflow_name.clone()),
        (
            "ORCA_WORKFLOW_INSTANCE_ID".to_string(),
            rec.workflow_instance_id.to_string(),
        ),
        ("ORCA_TASK_NAME".to_string(), rec.task_name.clone()),
        (
            "ORCA_TASK_INSTANCE_ID".to_string(),
            rec.task_instance_id.to_string(),
        ),
        ("ORCA_TASK_ATTEMPT".to_string(), rec.attempt.to_string()),
        ("ORCA_TASK_FAILOVER".to_string(), rec.failover.to_string()),
    ];
    env.extend(rendered.env);
    if let Some((ra, _)) = &run_as {
        env.push(("HOME".into(), ra.home.display().to_string()));
        env.push(("USER".into(), ra.user.clone()));
        env.push(("LOGNAME".into(), ra.user.clone()));
    }
    Ok(Prepared {
        interpreter,
        script_file,
        env,
        run_as,
    })
}

/// Schedule time as local time; 0 (unset) means now.
fn schedule_time(ms: i64) -> NaiveDateTime {
    if ms == 0 {
        return Local::now().naive_local();
    }
    Local
        .timestamp_millis_opt(ms)
        .earliest()
        .map(|t| t.naive_local())
        .unwrap_or_else(|| Local::now().naive_local())
}

fn spawn(
    dir: &Path,
    p: &Prepared,
    deadman: Option<(std::path::PathBuf, Duration)>,
) -> Result<tokio::process::Child, WorkerError> {
    let spawn_err = |source| WorkerError::Spawn {
        dir: dir.to_path_buf(),
        source,
    };
    let log_path = dir.join(LOG_FILE);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| WorkerError::io("open", &log_path, e))?;
    let log_err = log.try_clone().map_err(spawn_err)?;
    let mut cmd = tokio::process::Command::new("bash");
    let sourced = p.run_as.is_none() && p.script_file == "task.sh";
    let wrapper = |w: &str| {
        if sourced {
            w.replace("\"$@\"", SOURCED)
        } else {
            w.to_string()
        }
    };
    match &deadman {
        Some((heartbeat, window)) => {
            // The watchdog checks every half window: a stale heartbeat is
            // noticed at most one window after the worker's last touch.
            let half = format!("{:.3}", window.as_secs_f64() / 2.0);
            cmd.arg("-c")
                .arg(wrapper(WRAPPER_DEADMAN))
                .env("ORCA_HEARTBEAT", heartbeat)
                .env("ORCA_DEADMAN_HALF", half);
        }
        None => {
            cmd.arg("-c").arg(wrapper(WRAPPER));
        }
    }
    match &p.run_as {
        Some((ra, work)) => {
            cmd.arg("orca-task")
                .args(tenant::command_prefix(ra, work))
                .arg(&p.interpreter)
                .arg(work.join(p.script_file));
        }
        None if p.script_file == "task.sh" => {
            cmd.arg("task.sh");
        }
        None => {
            cmd.arg("orca-task").arg(&p.interpreter).arg(p.script_file);
        }
    }
    cmd.current_dir(dir)
        .envs(p.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0)
        .kill_on_drop(false)
        .spawn()
        .map_err(spawn_err)
}

/// Waits for the end of the task, killing its group on timeout or request,
/// then reports. Returns early, leaving the process alone, on shutdown.
async fn supervise(
    worker: Arc<Worker>,
    entry: Arc<AttemptEntry>,
    mut proc: TaskProcess,
    deadline: Option<Instant>,
) {
    let cancel = worker.cancel.clone();
    let mut kill_rx = entry.watch_kill();
    let reason = tokio::select! {
        // The end before a timeout or a kill: a process kept for a later
        // task of the run (see crate::pyfork) must not be signalled once
        // this task has ended.
        biased;
        _ = cancel.cancelled() => return,
        () = proc.wait() => None,
        () = sleep_until(deadline) => {
            entry.request_kill(KillReason::Timeout);
            entry.kill_reason()
        }
        r = kill_rx.wait_for(Option::is_some) => r.ok().and_then(|k| *k),
    };
    if let Some(reason) = reason {
        let pgid = i32::try_from(entry.pid()).unwrap_or(0);
        tracing::info!(
            tiid = entry.key.task_instance_id,
            attempt = entry.key.attempt,
            pgid,
            ?reason,
            "killing task process group"
        );
        let path = entry.dir.join(KILL_FILE);
        let marked = tokio::task::spawn_blocking(move || write_json(&path, &reason, true)).await;
        if !matches!(marked, Ok(Ok(()))) {
            tracing::error!(?marked, "cannot record kill reason");
        }
        signal_group(pgid, libc::SIGTERM);
        tokio::select! {
            _ = cancel.cancelled() => return,
            () = proc.wait() => {}
            _ = tokio::time::sleep(worker.config.kill_grace) => {}
        }
        // Whatever of the group survived SIGTERM (or ignored it) goes now.
        signal_group(pgid, libc::SIGKILL);
        tokio::select! {
            _ = cancel.cancelled() => return,
            () = proc.wait() => {}
        }
    }
    finish(&worker, &entry, End::Exited(proc.forked_status())).await;
}

/// A forked task writes its own exit code; one killed by a signal cannot,
/// and gets the code a shell would give it (128 + signal). Blocking.
fn record_forked_exit(dir: &Path, status: i32) {
    if crate::layout::read_exit_code(dir).is_none() {
        let code = pyfork::exit_code_of_status(status);
        if let Err(e) = write_atomic(
            &dir.join(EXIT_CODE_FILE),
            format!("{code}\n").as_bytes(),
            false,
        ) {
            tracing::warn!(error = %e, "cannot record the exit code of a forked task");
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn fail_unstarted(worker: &Arc<Worker>, entry: &Arc<AttemptEntry>, message: String) {
    tracing::warn!(tiid = entry.key.task_instance_id, attempt = entry.key.attempt, %message, "task not started");
    finish(worker, entry, End::NotStarted(message)).await;
}

/// How an attempt ended, for [`finish`].
enum End {
    /// Its process never started: the FAILURE's message.
    NotStarted(String),
    /// Its process ended; the wait status when the fork server reported it.
    Exited(Option<i32>),
}

/// Builds the terminal event and delivers it while storing it durably
/// ([`crate::outbox::Outbox::deliver_persisting`]), then marks the attempt
/// finished and ships its log. The report goes first: it is what the
/// leader waits for to dispatch the next task.
async fn finish(worker: &Arc<Worker>, entry: &Arc<AttemptEntry>, end: End) {
    let (w, e) = (worker.clone(), entry.clone());
    let built = crate::blocking::run(move || match end {
        End::NotStarted(msg) => events::not_started(&w.id, e.key, &e.dir, msg),
        End::Exited(status) => {
            if let Some(status) = status {
                record_forked_exit(&e.dir, status);
            }
            events::terminal(
                &w.id,
                e.key,
                &e.dir,
                e.pid(),
                "task process ended without an exit code",
            )
        }
    })
    .await;
    match built {
        Ok(mut ev) => {
            ev.start_time_us = entry.started_us();
            let (e, stored) = (entry.clone(), ev.clone());
            let persist = tokio::task::spawn_blocking(move || terminal::store(&e, &stored));
            let (tiid, attempt, kind, exit_code) =
                (ev.task_instance_id, ev.attempt, ev.kind(), ev.exit_code);
            worker.outbox.deliver_persisting(entry.clone(), ev, persist);
            tracing::info!(tiid, attempt, ?kind, exit_code, "task ended");
            if worker.attempts.finish(entry) {
                worker.publish();
            }
            worker.outbox.ship_log(entry.clone());
        }
        Err(e) => {
            tracing::error!(error = %e, "building the terminal event failed");
            if worker.attempts.finish(entry) {
                worker.publish();
            }
        }
    }
}
