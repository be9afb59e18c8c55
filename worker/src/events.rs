//! Building the task events a worker reports.

use std::path::Path;

use orca_proto::v1::{TaskEvent, TaskEventKind};

use crate::attempts::AttemptKey;
use crate::layout::{KILL_FILE, KillReason, LOG_FILE, PidRecord, read_exit_code, read_json};
use crate::log::collect_out_params;

/// Sequence number of the RUNNING event.
pub(crate) const SEQ_RUNNING: u64 = 1;
/// Sequence number of the terminal event.
pub(crate) const SEQ_TERMINAL: u64 = 2;
/// Exit code reported when the task's own exit code is unknown.
pub(crate) const EXIT_UNKNOWN: i32 = -1;
/// Message of the FAILURE reported for a task lost across a worker restart.
pub(crate) const LOST_ON_RESTART: &str = "lost: worker restarted and the task process is gone";

/// Unix milliseconds now.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn base(worker_id: &str, key: AttemptKey, seq: u64, kind: TaskEventKind) -> TaskEvent {
    let mut ev = TaskEvent {
        task_instance_id: key.task_instance_id,
        attempt: key.attempt,
        seq,
        event_time_us: chrono::Utc::now().timestamp_micros(),
        worker_id: worker_id.to_string(),
        ..Default::default()
    };
    ev.set_kind(kind);
    ev
}

/// The RUNNING event, sent right after the task process started.
pub(crate) fn running(worker_id: &str, key: AttemptKey, pid: i64, log: &Path) -> TaskEvent {
    let mut ev = base(worker_id, key, SEQ_RUNNING, TaskEventKind::Running);
    ev.pid = pid;
    ev.log_path = log.display().to_string();
    ev
}

/// The RUNNING event again, for an attempt adopted after a restart (its
/// first one was not stored): stamped with the task's recorded start.
pub(crate) fn running_again(
    worker_id: &str,
    key: AttemptKey,
    pid: &PidRecord,
    log: &Path,
) -> TaskEvent {
    let mut ev = running(worker_id, key, i64::from(pid.pid), log);
    if pid.started_at_ms > 0 {
        ev.event_time_us = pid.started_at_ms.saturating_mul(1000);
    }
    ev
}

/// FAILURE of an attempt whose process never started (bad script, spawn error).
pub(crate) fn not_started(
    worker_id: &str,
    key: AttemptKey,
    dir: &Path,
    message: String,
) -> TaskEvent {
    let mut ev = base(worker_id, key, SEQ_TERMINAL, TaskEventKind::Failure);
    ev.exit_code = EXIT_UNKNOWN;
    ev.message = message;
    ev.log_path = dir.join(LOG_FILE).display().to_string();
    ev
}

/// The terminal event of an attempt whose process has ended, from what the
/// attempt dir holds: a kill record decides KILLED/TIMEOUT, else the exit
/// code decides SUCCESS/FAILURE; with neither, the attempt is reported as a
/// FAILURE with `lost_message`. Blocking: reads the whole log for setValue.
pub(crate) fn terminal(
    worker_id: &str,
    key: AttemptKey,
    dir: &Path,
    pid: i64,
    lost_message: &str,
) -> TaskEvent {
    let kill = match read_json::<KillReason>(&dir.join(KILL_FILE)) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable kill record; treating the attempt as killed");
            Some(KillReason::Killed)
        }
    };
    let exit = read_exit_code(dir);
    let (kind, message) = match (kill, exit) {
        (Some(KillReason::Timeout), _) => (
            TaskEventKind::Timeout,
            "killed: ran past its timeout".to_string(),
        ),
        (Some(KillReason::Killed), _) => (TaskEventKind::Killed, "killed on request".to_string()),
        (Some(KillReason::Shutdown), _) => (
            TaskEventKind::Lost,
            "killed: the worker shut down".to_string(),
        ),
        (Some(KillReason::LeaseLost), _) => (
            TaskEventKind::Lost,
            "killed: the worker lost its registry lease".to_string(),
        ),
        (None, Some(0)) => (TaskEventKind::Success, String::new()),
        (None, Some(code)) => (TaskEventKind::Failure, format!("exit code {code}")),
        // The process vanished without an exit code while the worker was
        // away (e.g. the host rebooted): lost with the worker, not failed.
        (None, None) => (TaskEventKind::Lost, lost_message.to_string()),
    };
    let log = dir.join(LOG_FILE);
    let mut ev = base(worker_id, key, SEQ_TERMINAL, kind);
    ev.exit_code = exit.unwrap_or(EXIT_UNKNOWN);
    ev.message = message;
    ev.pid = pid;
    ev.out_params = collect_out_params(&log).into_iter().collect();
    ev.log_path = log.display().to_string();
    ev
}
