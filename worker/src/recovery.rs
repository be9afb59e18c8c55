//! Start-up recovery: rebuilds the attempt table from the attempt dirs left
//! by an earlier life of this worker, reports attempts that ended while it
//! was away, and finds the ones still running so they can be adopted.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use crate::attempts::{AttemptEntry, AttemptKey, Phase};
use crate::error::WorkerError;
use crate::events::{self, LOST_ON_RESTART};
use crate::layout::{
    DISPATCH_FILE, DispatchRecord, KILL_FILE, KillReason, PID_FILE, PidRecord, REPORTED_FILE,
    is_tmp_name, read_exit_code, read_json,
};
use crate::process::is_alive;
use crate::runner::record_terminal;
use crate::worker::Worker;

/// A running attempt found on disk, to be supervised again.
pub(crate) struct Adoption {
    pub entry: Arc<AttemptEntry>,
    pub pid: PidRecord,
    pub timeout_ms: i64,
}

/// What start-up recovery found.
#[derive(Default)]
pub(crate) struct Recovery {
    pub adopted: Vec<Adoption>,
    /// Attempts that ended while the worker was away; their terminal events
    /// are now in the outbox.
    pub reported_now: usize,
    pub known: usize,
    /// Ended attempts whose log was not shipped yet: (tiid, attempt, dir).
    pub to_ship: Vec<(i64, i32, std::path::PathBuf)>,
}

/// Scans every attempt dir (blocking). Terminal events produced here are
/// only stored: the outbox re-send at start delivers them.
pub(crate) fn scan(worker: &Worker) -> Result<Recovery, WorkerError> {
    let mut out = Recovery::default();
    let root = worker.layout.attempts_dir();
    for wf in read_dir(&root)? {
        if !wf.is_dir() {
            continue;
        }
        for dir in read_dir(&wf)? {
            let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if is_tmp_name(name) {
                // A dispatch interrupted before its dir was complete: it was never accepted.
                if let Err(e) = fs::remove_dir_all(&dir) {
                    tracing::warn!(path = %dir.display(), error = %e, "cannot remove partial attempt dir");
                }
                continue;
            }
            if let Err(e) = recover_one(worker, &dir, &mut out) {
                tracing::error!(path = %dir.display(), error = %e, "cannot recover attempt");
            }
        }
    }
    Ok(out)
}

fn read_dir(dir: &Path) -> Result<Vec<std::path::PathBuf>, WorkerError> {
    let rd = fs::read_dir(dir).map_err(|e| WorkerError::io("read dir", dir, e))?;
    let mut v = Vec::new();
    for entry in rd {
        v.push(
            entry
                .map_err(|e| WorkerError::io("read dir", dir, e))?
                .path(),
        );
    }
    v.sort();
    Ok(v)
}

fn recover_one(worker: &Worker, dir: &Path, out: &mut Recovery) -> Result<(), WorkerError> {
    let Some(rec) = read_json::<DispatchRecord>(&dir.join(DISPATCH_FILE))? else {
        tracing::warn!(path = %dir.display(), "attempt dir without dispatch record; ignored");
        return Ok(());
    };
    let key = AttemptKey {
        task_instance_id: rec.task_instance_id,
        attempt: rec.attempt,
    };
    if dir.join(REPORTED_FILE).exists() {
        if !dir.join(crate::layout::LOG_SHIPPED_FILE).exists() {
            out.to_ship
                .push((key.task_instance_id, key.attempt, dir.to_path_buf()));
        }
        // Listed: its terminal event may still sit unacknowledged in the
        // outbox, and a master that did not see the attempt listed would
        // fail it over and run the task a second time.
        worker
            .attempts
            .insert_recovered(key, dir.to_path_buf(), rec.epoch, Phase::Finished, true);
        out.known += 1;
        return Ok(());
    }
    let pid = read_json::<PidRecord>(&dir.join(PID_FILE))?;
    let alive = pid.filter(is_alive);
    // An exit code is written by the wrapper in one write just before it
    // exits: while the file is empty or partial the task is still ending.
    if let Some(pid) = alive
        && read_exit_code(dir).is_none()
    {
        let entry = worker.attempts.insert_recovered(
            key,
            dir.to_path_buf(),
            rec.epoch,
            Phase::Running,
            true,
        );
        // A kill that the earlier life had started is carried on.
        if let Ok(Some(reason)) = read_json::<KillReason>(&dir.join(KILL_FILE)) {
            entry.request_kill(reason);
        }
        tracing::info!(
            tiid = key.task_instance_id,
            attempt = key.attempt,
            pid = pid.pid,
            "adopting running task"
        );
        out.adopted.push(Adoption {
            entry,
            pid,
            timeout_ms: rec.timeout_ms,
        });
        return Ok(());
    }
    let pid_num = pid.map(|p| i64::from(p.pid)).unwrap_or(0);
    let ev = events::terminal(&worker.id, key, dir, pid_num, LOST_ON_RESTART);
    tracing::info!(tiid = key.task_instance_id, attempt = key.attempt, kind = ?ev.kind(), "attempt ended while the worker was away");
    record_terminal(worker, dir, &ev)?;
    let entry =
        worker
            .attempts
            .insert_recovered(key, dir.to_path_buf(), rec.epoch, Phase::Finished, true);
    entry.set_pid(pid_num);
    out.reported_now += 1;
    out.to_ship
        .push((key.task_instance_id, key.attempt, dir.to_path_buf()));
    Ok(())
}
