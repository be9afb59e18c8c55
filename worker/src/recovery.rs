//! Start-up recovery: rebuilds the attempt table from the attempt dirs left
//! by an earlier life of this worker, reports attempts that ended while it
//! was away, and finds the ones still running so they can be adopted.
//!
//! By its terminal file ([`crate::terminal`]), a finished attempt's event
//! is sent again unless acknowledged, and its log shipped again unless
//! shipped. An attempt dir of an earlier worker version (terminal event in
//! `outbox/`, `reported` and `log_shipped` markers) is converted first.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use orca_proto::v1::TaskEvent;

use crate::attempts::{AttemptEntry, AttemptKey, Phase};
use crate::error::WorkerError;
use crate::events::{self, LOST_ON_RESTART, SEQ_TERMINAL};
use crate::layout::{
    DISPATCH_FILE, DispatchRecord, KILL_FILE, KillReason, LEGACY_LOG_SHIPPED_FILE,
    LEGACY_REPORTED_FILE, PID_FILE, PidRecord, is_tmp_name, read_exit_code, read_json, sync_dir,
};
use crate::process::is_alive;
use crate::terminal::{self, TerminalState};
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
    /// are now stored in their dirs (and in `to_send`).
    pub reported_now: usize,
    /// Attempts whose terminal event was stored by an earlier life.
    pub known: usize,
    /// Ended attempts whose log was not shipped yet.
    pub to_ship: Vec<Arc<AttemptEntry>>,
    /// Terminal events not acknowledged yet, to send.
    pub to_send: Vec<(Arc<AttemptEntry>, TaskEvent)>,
}

/// Scans every attempt dir (blocking). Nothing is sent here: the caller
/// delivers `to_send`, ships `to_ship` and supervises `adopted` (sending
/// their RUNNING event again).
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
    if let Some(state) = terminal::find(dir).or_else(|| convert_legacy(worker, dir, key)) {
        // Listed: its terminal event may still be unacknowledged, and a
        // master that did not see the attempt listed would fail it over and
        // run the task a second time.
        let entry = worker.attempts.insert_recovered(
            key,
            dir.to_path_buf(),
            rec.epoch,
            Phase::Finished,
            true,
        );
        *entry.terminal_state() = state;
        if !state.shipped {
            out.to_ship.push(entry.clone());
        }
        if !state.acked {
            let ev = terminal::read_event(dir, state).unwrap_or_else(|e| {
                tracing::error!(error = %e, "unreadable terminal event; building it again");
                let pid = read_json::<PidRecord>(&dir.join(PID_FILE)).ok().flatten();
                let pid_num = pid.map(|p| i64::from(p.pid)).unwrap_or(0);
                let mut ev = events::terminal(&worker.id, key, dir, pid_num, LOST_ON_RESTART);
                ev.start_time_us = pid.map_or(0, |p| p.started_at_ms.saturating_mul(1000));
                ev
            });
            out.to_send.push((entry, ev));
        }
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
    let mut ev = events::terminal(&worker.id, key, dir, pid_num, LOST_ON_RESTART);
    ev.start_time_us = pid.map_or(0, |p| p.started_at_ms.saturating_mul(1000));
    tracing::info!(tiid = key.task_instance_id, attempt = key.attempt, kind = ?ev.kind(), "attempt ended while the worker was away");
    let entry =
        worker
            .attempts
            .insert_recovered(key, dir.to_path_buf(), rec.epoch, Phase::Finished, true);
    entry.set_pid(pid_num);
    if let Err(e) = terminal::store(&entry, &ev) {
        // Sent from memory: should this life end too, the next one builds
        // it again.
        tracing::error!(error = %e, "cannot store the terminal event");
    }
    out.reported_now += 1;
    out.to_send.push((entry.clone(), ev));
    out.to_ship.push(entry);
    Ok(())
}

/// Converts the records of an earlier worker version into a terminal file:
/// its terminal event still in `outbox/` is moved into the attempt dir
/// (unacknowledged), or else its `reported` marker (acknowledged) becomes
/// an empty terminal file; `log_shipped` decides the shipped half. `None`
/// when there is nothing to convert, or the conversion failed (the attempt
/// is then recovered as one without a terminal event: built again and
/// sent, a duplicate the leader ignores).
fn convert_legacy(worker: &Worker, dir: &Path, key: AttemptKey) -> Option<TerminalState> {
    let outboxed = worker.layout.legacy_outbox_dir().join(format!(
        "{}_{}_{}.json",
        key.task_instance_id, key.attempt, SEQ_TERMINAL
    ));
    let reported = dir.join(LEGACY_REPORTED_FILE);
    let shipped_marker = dir.join(LEGACY_LOG_SHIPPED_FILE);
    let (from, acked) = if outboxed.exists() {
        (outboxed, false)
    } else if reported.exists() {
        (reported.clone(), true)
    } else {
        return None;
    };
    let shipped = shipped_marker.exists();
    let to = dir.join(terminal::file_name(acked, shipped));
    if let Err(e) = std::fs::rename(&from, &to) {
        tracing::warn!(path = %from.display(), error = %e, "cannot convert a legacy attempt record");
        return None;
    }
    if let Err(e) = sync_dir(dir) {
        tracing::warn!(error = %e, "converted legacy attempt record not fsynced");
    }
    for marker in [reported, shipped_marker] {
        match std::fs::remove_file(&marker) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %marker.display(), error = %e, "cannot remove a legacy marker")
            }
        }
    }
    tracing::info!(
        tiid = key.task_instance_id,
        attempt = key.attempt,
        acked,
        shipped,
        "converted a legacy attempt record"
    );
    Some(TerminalState {
        stored: true,
        acked,
        shipped,
    })
}
