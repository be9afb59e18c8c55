//! The terminal record of an attempt: its terminal event, stored durably in
//! the attempt dir, and how far it got, told by the file's name alone.
//!
//! ```text
//! terminal.json           stored; not acknowledged, log not shipped
//! terminal.acked.json     acknowledged by a leader; log not shipped
//! terminal.shipped.json   log shipped; not acknowledged
//! terminal.done.json      acknowledged and log shipped
//! ```
//!
//! The file is written once (temporary file, fsync, rename, fsync of the
//! dir) and then only renamed: a state change allocates no inode. Ack and
//! log shipping end concurrently, so every rename of one attempt's file
//! happens under that attempt's lock ([`AttemptEntry::terminal_state`]),
//! which also knows the current name. Renames are not fsynced: after a
//! machine crash a file may show an earlier state, so an acknowledged event
//! is sent again (the leader acknowledges a duplicate without effect) or a
//! shipped log shipped again (stored again, same bytes).
//!
//! Files in the acknowledged states are not read back; one migrated from
//! the legacy `reported` marker is empty.

use std::fs;
use std::path::{Path, PathBuf};

use orca_proto::v1::TaskEvent;

use crate::attempts::AttemptEntry;
use crate::convert::StoredEvent;
use crate::error::WorkerError;
use crate::layout::{read_json, sync_dir, write_file};

/// Stored, not acknowledged, log not shipped.
pub(crate) const PENDING: &str = "terminal.json";
/// Acknowledged, log not shipped.
pub(crate) const ACKED: &str = "terminal.acked.json";
/// Log shipped, not acknowledged.
pub(crate) const SHIPPED: &str = "terminal.shipped.json";
/// Acknowledged and log shipped: nothing left to do but keep it for
/// `attempt_retention`.
pub(crate) const DONE: &str = "terminal.done.json";
/// Where the record is written before its first rename.
const TMP: &str = "terminal.json.tmp";

/// What is known of an attempt's terminal record (kept in memory, mirrored
/// by the file name once `stored`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TerminalState {
    /// The terminal file exists (under the name of the other two flags).
    pub stored: bool,
    /// A leader acknowledged the terminal event.
    pub acked: bool,
    /// A leader stored the log.
    pub shipped: bool,
}

impl TerminalState {
    /// The file name for these flags.
    pub(crate) fn file_name(self) -> &'static str {
        file_name(self.acked, self.shipped)
    }
}

/// The file name for a state.
pub(crate) fn file_name(acked: bool, shipped: bool) -> &'static str {
    match (acked, shipped) {
        (false, false) => PENDING,
        (true, false) => ACKED,
        (false, true) => SHIPPED,
        (true, true) => DONE,
    }
}

/// Which terminal file an attempt dir holds: its state (`stored` set), or
/// `None` without one. Should several exist (they cannot: each state
/// change is one rename), the least advanced wins: work is redone, never
/// skipped.
pub(crate) fn find(dir: &Path) -> Option<TerminalState> {
    [(false, false), (false, true), (true, false), (true, true)]
        .into_iter()
        .find(|&(acked, shipped)| dir.join(file_name(acked, shipped)).exists())
        .map(|(acked, shipped)| TerminalState {
            stored: true,
            acked,
            shipped,
        })
}

/// Reads the event of an unacknowledged terminal file.
pub(crate) fn read_event(dir: &Path, state: TerminalState) -> Result<TaskEvent, WorkerError> {
    let path = dir.join(state.file_name());
    match read_json::<StoredEvent>(&path)? {
        Some(stored) => Ok(stored.into()),
        None => Err(WorkerError::io(
            "read",
            path,
            std::io::ErrorKind::NotFound.into(),
        )),
    }
}

/// Stores the terminal event of `entry` durably (blocking): written and
/// fsynced under a temporary name, renamed to the name of the attempt's
/// current state (an ack or a shipped log may already be known), then the
/// dir is fsynced.
pub(crate) fn store(entry: &AttemptEntry, ev: &TaskEvent) -> Result<PathBuf, WorkerError> {
    let dir = &entry.dir;
    let tmp = dir.join(TMP);
    let bytes = serde_json::to_vec_pretty(&StoredEvent::from(ev)).map_err(|source| {
        WorkerError::CorruptRecord {
            path: tmp.clone(),
            source,
        }
    })?;
    write_file(&tmp, &bytes, true)?;
    let path = {
        let mut state = entry.terminal_state();
        let path = dir.join(state.file_name());
        fs::rename(&tmp, &path).map_err(|e| WorkerError::io("rename", &path, e))?;
        state.stored = true;
        path
    };
    sync_dir(dir)?;
    Ok(path)
}

/// A state change of a terminal record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// A leader acknowledged the terminal event.
    Acked,
    /// A leader stored the log.
    Shipped,
}

/// Records `mark` for `entry` (blocking): in memory, and by renaming its
/// terminal file when it is stored. Idempotent. On a failed rename the
/// state is left as it was (the work is redone after a restart).
pub(crate) fn mark(entry: &AttemptEntry, mark: Mark) -> Result<(), WorkerError> {
    let mut state = entry.terminal_state();
    let mut next = *state;
    match mark {
        Mark::Acked => next.acked = true,
        Mark::Shipped => next.shipped = true,
    }
    if next == *state {
        return Ok(());
    }
    if state.stored {
        let from = entry.dir.join(state.file_name());
        let to = entry.dir.join(next.file_name());
        fs::rename(&from, &to).map_err(|e| WorkerError::io("rename", &from, e))?;
    }
    *state = next;
    Ok(())
}

/// [`mark`] from async code; failures are logged.
pub(crate) async fn mark_async(entry: std::sync::Arc<AttemptEntry>, m: Mark) {
    mark_all_async(vec![entry], m).await;
}

/// [`mark`] for several entries in one blocking job; failures are logged.
pub(crate) async fn mark_all_async(entries: Vec<std::sync::Arc<AttemptEntry>>, m: Mark) {
    let marked = tokio::task::spawn_blocking(move || {
        for entry in &entries {
            if let Err(e) = mark(entry, m) {
                tracing::warn!(
                    tiid = entry.key.task_instance_id,
                    attempt = entry.key.attempt,
                    mark = ?m,
                    error = %e,
                    "cannot record the terminal record's new state"
                );
            }
        }
    })
    .await;
    if let Err(e) = marked {
        tracing::warn!(error = %e, "recording a terminal record's state panicked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attempts::{AttemptKey, Attempts, Reservation};
    use orca_proto::v1::TaskEventKind;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn renames_follow_acks_and_shipping_in_any_order() {
        let root = tempfile::tempdir().unwrap();
        let attempts = Attempts::default();
        let mut ev = TaskEvent {
            task_instance_id: 1,
            attempt: 1,
            seq: 2,
            out_params: [("k".to_string(), "v".to_string())].into_iter().collect(),
            ..Default::default()
        };
        ev.set_kind(TaskEventKind::Success);
        for (n, early) in [None, Some(Mark::Shipped), Some(Mark::Acked)]
            .into_iter()
            .enumerate()
        {
            let dir = root.path().join(n.to_string());
            let key = AttemptKey {
                task_instance_id: n as i64,
                attempt: 1,
            };
            let Reservation::New(entry) = attempts.reserve(key, &dir, 1, 10) else {
                panic!("expected new")
            };
            fs::create_dir(&dir).unwrap();
            assert_eq!(find(&dir), None);
            // A mark known before the event is stored names the file.
            if let Some(m) = early {
                mark(&entry, m).unwrap();
            }
            store(&entry, &ev).unwrap();
            let state = find(&dir).unwrap();
            assert_eq!(state, *entry.terminal_state());
            if state.acked {
                assert_eq!(names(&dir), [ACKED]);
            } else {
                assert_eq!(read_event(&dir, state).unwrap(), ev);
            }
            mark(&entry, Mark::Shipped).unwrap();
            mark(&entry, Mark::Shipped).unwrap();
            if !entry.terminal_state().acked {
                assert_eq!(names(&dir), [SHIPPED]);
            }
            mark(&entry, Mark::Acked).unwrap();
            assert_eq!(names(&dir), [DONE]);
            assert_eq!(
                find(&dir),
                Some(TerminalState {
                    stored: true,
                    acked: true,
                    shipped: true
                })
            );
        }
    }
}
