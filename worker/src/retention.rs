//! Deleting finished attempts once nobody needs them: `attempt_retention`
//! after an attempt's terminal file reached its done state
//! (`terminal.done.json`: the report was acknowledged by a leader and the
//! log is in the log store, see [`crate::terminal`]), its dir, its tenant
//! work dir and its in-memory entry go. The age is that of the done file's
//! ctime, which the rename into the done state sets: the time the attempt
//! was done, not the event time inside (reading it would cost a file read
//! per attempt and sweep). Until then an attempt is kept whatever its age:
//! an unacknowledged report or a log not yet shipped is never lost. A
//! running attempt is never deleted. A leader never dispatches an attempt
//! again once it acknowledged its end, so forgetting it cannot let a stale
//! dispatch run it twice.

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::attempts::AttemptKey;
use crate::error::WorkerError;
use crate::layout::is_tmp_name;
use crate::terminal;
use crate::worker::Worker;

/// Sweeps every quarter of `retention` (between 1 s and 10 min) until the
/// worker stops.
pub(crate) async fn run(worker: Arc<Worker>, retention: Duration) {
    let every = (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = worker.cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let w = worker.clone();
        match tokio::task::spawn_blocking(move || sweep(&w, retention)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(
                deleted = n,
                "deleted finished attempts past their retention"
            ),
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot sweep finished attempts"),
            Err(e) => tracing::warn!(error = %e, "the attempt sweep panicked"),
        }
    }
}

/// `<tiid>_<attempt>` of an attempt dir name (the rest ignored).
fn key_of(name: &str) -> Option<AttemptKey> {
    let mut parts = name.split(['_', '.']);
    let task_instance_id = parts.next()?.parse().ok()?;
    let attempt = parts.next()?.parse().ok()?;
    Some(AttemptKey {
        task_instance_id,
        attempt,
    })
}

fn entries(dir: &std::path::Path) -> Result<Vec<std::fs::DirEntry>, WorkerError> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| WorkerError::io("read dir", dir, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(WorkerError::io("read dir", dir, e)),
    }
}

/// Deletes what is past its retention now; returns how many attempts.
/// Blocking.
pub(crate) fn sweep(worker: &Worker, retention: Duration) -> Result<usize, WorkerError> {
    let now = SystemTime::now();
    let mut deleted = 0;
    for wf in entries(&worker.layout.attempts_dir())? {
        let wf_dir = wf.path();
        if !wf_dir.is_dir() {
            continue;
        }
        for a in entries(&wf_dir)? {
            let name = a.file_name().to_string_lossy().into_owned();
            if is_tmp_name(&name) {
                continue;
            }
            let Some(key) = key_of(&name) else { continue };
            let dir = a.path();
            let done = match std::fs::metadata(dir.join(terminal::DONE)) {
                Ok(m) => m,
                Err(_) => continue,
            };
            let old_enough = ctime(&done)
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age >= retention);
            if !old_enough
                || worker
                    .attempts
                    .get(&key)
                    .is_some_and(|e| e.phase() == crate::attempts::Phase::Running)
            {
                continue;
            }
            std::fs::remove_dir_all(&dir).map_err(|e| WorkerError::io("delete", &dir, e))?;
            let work = worker.layout.tenant_work_dir().join(&name);
            if work.exists() {
                std::fs::remove_dir_all(&work).map_err(|e| WorkerError::io("delete", &work, e))?;
            }
            worker.attempts.forget(&key);
            deleted += 1;
        }
        // The run's dir goes with its last attempt (fails harmlessly when
        // not empty or when a new attempt just arrived).
        let _ = std::fs::remove_dir(&wf_dir);
    }
    Ok(deleted)
}

/// Status change time of a file.
fn ctime(m: &std::fs::Metadata) -> Option<SystemTime> {
    let secs = u64::try_from(m.ctime()).ok()?;
    let nanos = u32::try_from(m.ctime_nsec()).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_dir_names() {
        let k = |t, a| {
            Some(AttemptKey {
                task_instance_id: t,
                attempt: a,
            })
        };
        assert_eq!(key_of("12_3"), k(12, 3));
        assert_eq!(key_of("12_3_7.json"), k(12, 3));
        assert_eq!(key_of(".12_3.tmp"), None);
        assert_eq!(key_of("notes"), None);
    }
}
