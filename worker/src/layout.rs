//! The worker's data dir: where every file lives, and the records kept there.
//!
//! ```text
//! data_dir/
//!   worker-id                 this worker's id (when not configured)
//!   epoch                     highest master epoch seen
//!   heartbeat                 touched while the lease is valid (dead-man switch)
//!   attempts/<wfid>/<tiid>_<attempt>/
//!     dispatch.json           the dispatch as received (written before the task starts)
//!     task.sh | task.py       the rendered script
//!     task.log                stdout + stderr of the task
//!     pid.json                process group leader pid + its start time
//!     exit_code               written by the wrapper shell when the task ends
//!     kill.json               why the worker killed the task (timeout, kill, lease loss)
//!     terminal.json           the terminal event, fsynced; renamed to
//!                             terminal.{acked,shipped,done}.json as the
//!                             leader acknowledges it and stores the log
//!                             (see [`crate::terminal`])
//!   work/<tiid>_<attempt>/    cwd and script of a task run as its tenant's
//!                             user, owned by that user (mode 0700)
//!   outbox/                   legacy: events of an earlier worker version,
//!                             sent once more at start
//! ```
//!
//! An attempt dir is built under a temporary name (`.<tiid>_<attempt>.tmp`,
//! holding `dispatch.json`) and renamed into place, so it never exists
//! without its dispatch. Records that change or that another party reads
//! while they are written (`pid.json`, `kill.json`, the terminal event) are
//! written to a temporary file and renamed into place, so a reader sees
//! either nothing or the whole record. The script is written in place:
//! nothing reads it before the task starts. RUNNING events are not stored
//! (recovery sends them again for adopted attempts).
//!
//! Inodes allocated per attempt: the dir, `dispatch.json`, the script,
//! `task.log`, `pid.json`, `exit_code`, the terminal file (plus `kill.json`
//! for a killed task and `.deadman` under the dead-man switch).
//!
//! An earlier layout kept every event in `outbox/` and marked an attempt
//! with empty `reported` (terminal event in the outbox) and `log_shipped`
//! files; recovery converts such an attempt dir to a terminal file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::WorkerError;

/// The dispatch as received, JSON.
pub(crate) const DISPATCH_FILE: &str = "dispatch.json";
/// Process record ([`PidRecord`]).
pub(crate) const PID_FILE: &str = "pid.json";
/// Exit code of the task, written by the wrapper shell.
pub(crate) const EXIT_CODE_FILE: &str = "exit_code";
/// Why the worker killed the task ([`KillReason`]).
pub(crate) const KILL_FILE: &str = "kill.json";
/// stdout + stderr of the task.
pub(crate) const LOG_FILE: &str = "task.log";
/// Legacy marker: the terminal event of this attempt is in the outbox.
pub(crate) const LEGACY_REPORTED_FILE: &str = "reported";
/// Legacy marker: the log is stored by the leader.
pub(crate) const LEGACY_LOG_SHIPPED_FILE: &str = "log_shipped";

/// Paths inside the data dir.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    data_dir: PathBuf,
}

impl Layout {
    pub(crate) fn new(data_dir: PathBuf) -> Self {
        Layout { data_dir }
    }

    pub(crate) fn attempts_dir(&self) -> PathBuf {
        self.data_dir.join("attempts")
    }

    /// Work dirs of tasks that run as their tenant's user (see
    /// [`crate::tenant`]).
    pub(crate) fn tenant_work_dir(&self) -> PathBuf {
        self.data_dir.join("work")
    }

    pub(crate) fn attempt_dir(
        &self,
        workflow_instance_id: i64,
        tiid: i64,
        attempt: i32,
    ) -> PathBuf {
        self.attempts_dir()
            .join(workflow_instance_id.to_string())
            .join(format!("{tiid}_{attempt}"))
    }

    /// Touched by the worker while its lease is valid (dead-man switch).
    pub(crate) fn heartbeat_file(&self) -> PathBuf {
        self.data_dir.join("heartbeat")
    }

    /// Where earlier worker versions stored every event (read at start).
    pub(crate) fn legacy_outbox_dir(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }

    pub(crate) fn id_file(&self) -> PathBuf {
        self.data_dir.join("worker-id")
    }

    pub(crate) fn epoch_file(&self) -> PathBuf {
        self.data_dir.join("epoch")
    }

    /// Creates the top-level directories.
    pub(crate) fn create(&self) -> Result<(), WorkerError> {
        let dir = self.attempts_dir();
        fs::create_dir_all(&dir).map_err(|e| WorkerError::io("create dir", &dir, e))
    }
}

/// How a task parameter is persisted in `dispatch.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ParamRecord {
    pub name: String,
    pub value: String,
    pub generated: bool,
}

/// `dispatch.json`: the dispatch as received from the master.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DispatchRecord {
    pub task_instance_id: i64,
    pub attempt: i32,
    pub workflow_instance_id: i64,
    pub workflow_name: String,
    pub task_name: String,
    pub task_type: String,
    pub script: String,
    pub params: Vec<ParamRecord>,
    pub timeout_ms: i64,
    pub epoch: u64,
    pub master_addr: String,
    pub schedule_time_ms: i64,
    pub failover: bool,
    pub project: String,
    /// The tenant's operating-system user to run as; empty: the worker's.
    #[serde(default)]
    pub run_as_user: String,
    /// The run lets its PYTHON tasks share warm processes.
    #[serde(default)]
    pub share_python_process: bool,
}

/// `pid.json`: the process group leader of a running attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PidRecord {
    pub pid: i32,
    /// Start time of `pid` in clock ticks since boot (`/proc/<pid>/stat` field 22),
    /// to tell the task from a process that reused its pid.
    pub start_time: u64,
    /// When the task was started, unix ms (base of its timeout).
    pub started_at_ms: i64,
}

/// `kill.json`: why the worker killed an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum KillReason {
    /// `KillTask`.
    Killed,
    /// The worker shut down with `kill_tasks`: the attempt is lost with the
    /// worker (the master fails it over), not failed.
    Shutdown,
    /// The task ran past its `timeout_ms`.
    Timeout,
    /// The worker lost its registry lease.
    LeaseLost,
}

/// Writes `bytes` to `path` via a temporary file and a rename; with
/// `durable`, the file and its directory are fsynced.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> Result<(), WorkerError> {
    let tmp = tmp_path(path);
    write_file(&tmp, bytes, durable)?;
    fs::rename(&tmp, path).map_err(|e| WorkerError::io("rename", path, e))?;
    if durable && let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Creates (or truncates) `path` and writes `bytes` to it; with `durable`,
/// the file is fsynced. The first half of [`write_atomic`], for callers
/// that rename the file themselves.
pub(crate) fn write_file(path: &Path, bytes: &[u8], durable: bool) -> Result<(), WorkerError> {
    let mut f = fs::File::create(path).map_err(|e| WorkerError::io("create", path, e))?;
    f.write_all(bytes)
        .map_err(|e| WorkerError::io("write", path, e))?;
    if durable {
        f.sync_all()
            .map_err(|e| WorkerError::io("fsync", path, e))?;
    }
    Ok(())
}

/// fsyncs a directory, making renames inside it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), WorkerError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| WorkerError::io("fsync dir", dir, e))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Serialises `value` as JSON into `path` (atomically).
pub(crate) fn write_json<T: Serialize>(
    path: &Path,
    value: &T,
    durable: bool,
) -> Result<(), WorkerError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| WorkerError::CorruptRecord {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, &bytes, durable)
}

/// Reads a JSON record; `Ok(None)` when the file does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, WorkerError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(WorkerError::io("read", path, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| WorkerError::CorruptRecord {
            path: path.to_path_buf(),
            source,
        })
}

/// Reads the `exit_code` file of an attempt dir; `None` when absent or unreadable.
pub(crate) fn read_exit_code(dir: &Path) -> Option<i32> {
    fs::read_to_string(dir.join(EXIT_CODE_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// Creates an attempt dir holding `dispatch.json`, atomically: the dir is
/// built under a temporary name and renamed, so an attempt dir without its
/// dispatch never exists. `fill` runs on the temporary dir before the
/// rename (it writes the task's script there). Returns `None` when the dir
/// already existed.
pub(crate) fn create_attempt_dir<R>(
    dir: &Path,
    record: &DispatchRecord,
    fill: impl FnOnce(&Path) -> R,
) -> Result<Option<R>, WorkerError> {
    if dir.exists() {
        return Ok(None);
    }
    let parent = dir.parent().ok_or_else(|| {
        WorkerError::io("create dir", dir, std::io::ErrorKind::InvalidInput.into())
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(dir.file_name().unwrap_or_default());
    tmp_name.push(".tmp");
    let tmp = parent.join(tmp_name);
    // The retention sweep deletes a run's dir once it is empty: if that
    // happens between creating it and creating the attempt in it, again.
    let mut tries = 0;
    loop {
        fs::create_dir_all(parent).map_err(|e| WorkerError::io("create dir", parent, e))?;
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| WorkerError::io("remove dir", &tmp, e))?;
        }
        match fs::create_dir(&tmp) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 3 => tries += 1,
            Err(e) => return Err(WorkerError::io("create dir", &tmp, e)),
        }
    }
    // Nobody sees the temporary dir: its files need no rename of their own.
    let dispatch = tmp.join(DISPATCH_FILE);
    let bytes = serde_json::to_vec(record).map_err(|source| WorkerError::CorruptRecord {
        path: dispatch.clone(),
        source,
    })?;
    fs::write(&dispatch, bytes).map_err(|e| WorkerError::io("write", &dispatch, e))?;
    let filled = fill(&tmp);
    fs::rename(&tmp, dir).map_err(|e| WorkerError::io("rename", dir, e))?;
    Ok(Some(filled))
}

/// Whether a dir entry name is a leftover temporary dir of [`create_attempt_dir`].
pub(crate) fn is_tmp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_json_round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        assert_eq!(read_json::<PidRecord>(&p).unwrap(), None);
        let rec = PidRecord {
            pid: 42,
            start_time: 7,
            started_at_ms: 9,
        };
        write_json(&p, &rec, true).unwrap();
        assert_eq!(read_json::<PidRecord>(&p).unwrap(), Some(rec));
        assert!(!dir.path().join("r.json.tmp").exists());
        fs::write(&p, b"{not json").unwrap();
        let err = read_json::<PidRecord>(&p).unwrap_err().to_string();
        assert!(err.starts_with("ORCA-WORKER-CORRUPT-RECORD"), "{err}");
    }
}
