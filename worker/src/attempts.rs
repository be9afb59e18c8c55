//! The attempts this worker holds: running ones, and finished ones known for
//! idempotency (from this process life or found on disk at start).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::layout::KillReason;
use crate::terminal::TerminalState;

/// Identity of one attempt of one task instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct AttemptKey {
    pub task_instance_id: i64,
    pub attempt: i32,
}

/// Lifecycle of an attempt inside this worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Accepted: being prepared, or its process runs.
    Running,
    /// Its process ended (or never started); its terminal event is being
    /// or was reported.
    Finished,
}

/// One attempt.
pub(crate) struct AttemptEntry {
    pub key: AttemptKey,
    pub dir: PathBuf,
    pub epoch: u64,
    /// Shown by `ListAttempts` (false for attempts finished in an earlier life).
    pub listed: bool,
    /// Process group id (= leader pid), 0 until spawned.
    pid: AtomicI64,
    /// When the task process started, unix µs; 0 until then.
    started_us: AtomicI64,
    phase: watch::Sender<Phase>,
    kill: watch::Sender<Option<KillReason>>,
    /// The terminal record's state; its lock serialises the renames of the
    /// terminal file (see [`crate::terminal`]).
    terminal: Mutex<TerminalState>,
}

impl AttemptEntry {
    fn new(key: AttemptKey, dir: PathBuf, epoch: u64, phase: Phase, listed: bool) -> Arc<Self> {
        Arc::new(AttemptEntry {
            key,
            dir,
            epoch,
            listed,
            pid: AtomicI64::new(0),
            started_us: AtomicI64::new(0),
            phase: watch::channel(phase).0,
            kill: watch::channel(None).0,
            terminal: Mutex::new(TerminalState::default()),
        })
    }

    pub(crate) fn pid(&self) -> i64 {
        self.pid.load(Ordering::Acquire)
    }

    pub(crate) fn set_pid(&self, pid: i64) {
        self.pid.store(pid, Ordering::Release);
    }

    pub(crate) fn started_us(&self) -> i64 {
        self.started_us.load(Ordering::Acquire)
    }

    pub(crate) fn set_started_us(&self, us: i64) {
        self.started_us.store(us, Ordering::Release);
    }

    pub(crate) fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Follows the phase (for log streaming and shutdown).
    pub(crate) fn watch_phase(&self) -> watch::Receiver<Phase> {
        self.phase.subscribe()
    }

    /// Asks the supervisor to kill the task; the first reason wins. Returns
    /// whether the attempt was still running.
    pub(crate) fn request_kill(&self, reason: KillReason) -> bool {
        if self.phase() == Phase::Finished {
            return false;
        }
        self.kill.send_if_modified(|k| {
            if k.is_none() {
                *k = Some(reason);
                true
            } else {
                false
            }
        });
        true
    }

    /// Follows kill requests (for the supervisor).
    pub(crate) fn watch_kill(&self) -> watch::Receiver<Option<KillReason>> {
        self.kill.subscribe()
    }

    /// The kill reason requested so far.
    pub(crate) fn kill_reason(&self) -> Option<KillReason> {
        *self.kill.borrow()
    }

    /// The terminal record's state, locked: hold it across a rename of the
    /// terminal file.
    pub(crate) fn terminal_state(&self) -> MutexGuard<'_, TerminalState> {
        // Three flags: still consistent if a holder panicked.
        self.terminal.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        self.dir.join(crate::layout::LOG_FILE)
    }
}

/// Outcome of [`Attempts::reserve`].
pub(crate) enum Reservation {
    /// Already known (running, finished, or on disk): start nothing.
    Known,
    /// All slots are taken.
    Full { running: usize },
    /// A new running attempt, counted against the slots.
    New(Arc<AttemptEntry>),
}

#[derive(Default)]
struct Table {
    entries: HashMap<AttemptKey, Arc<AttemptEntry>>,
    running: usize,
}

/// The attempt table.
#[derive(Default)]
pub(crate) struct Attempts {
    table: Mutex<Table>,
}

impl Attempts {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // Plain maps and a counter: still consistent if a holder panicked.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves a slot for a new attempt unless it is known (in memory or as
    /// a dir on disk) or the worker is full.
    pub(crate) fn reserve(
        &self,
        key: AttemptKey,
        dir: &Path,
        epoch: u64,
        slots: u32,
    ) -> Reservation {
        let mut t = self.lock();
        if t.entries.contains_key(&key) || dir.exists() {
            return Reservation::Known;
        }
        if t.running >= slots as usize {
            return Reservation::Full { running: t.running };
        }
        let entry = AttemptEntry::new(key, dir.to_path_buf(), epoch, Phase::Running, true);
        t.entries.insert(key, entry.clone());
        t.running += 1;
        Reservation::New(entry)
    }

    /// Forgets a reservation whose attempt could not be set up (no dir exists).
    pub(crate) fn cancel(&self, entry: &AttemptEntry) {
        let mut t = self.lock();
        if t.entries.remove(&entry.key).is_some() && entry.phase() == Phase::Running {
            t.running -= 1;
        }
    }

    /// Adds an attempt found on disk at start; `listed` makes it visible to
    /// `ListAttempts`.
    pub(crate) fn insert_recovered(
        &self,
        key: AttemptKey,
        dir: PathBuf,
        epoch: u64,
        phase: Phase,
        listed: bool,
    ) -> Arc<AttemptEntry> {
        let entry = AttemptEntry::new(key, dir, epoch, phase, listed);
        let mut t = self.lock();
        if phase == Phase::Running {
            t.running += 1;
        }
        t.entries.insert(key, entry.clone());
        entry
    }

    /// Marks an attempt finished; returns `false` if it already was.
    pub(crate) fn finish(&self, entry: &AttemptEntry) -> bool {
        let mut t = self.lock();
        let changed = entry.phase.send_if_modified(|p| {
            let was_running = *p == Phase::Running;
            *p = Phase::Finished;
            was_running
        });
        if changed {
            t.running -= 1;
        }
        changed
    }

    /// Drops a finished attempt deleted by the retention sweep.
    pub(crate) fn forget(&self, key: &AttemptKey) {
        let mut t = self.lock();
        if t.entries
            .get(key)
            .is_some_and(|e| e.phase() != Phase::Running)
        {
            t.entries.remove(key);
        }
    }

    pub(crate) fn get(&self, key: &AttemptKey) -> Option<Arc<AttemptEntry>> {
        self.lock().entries.get(key).cloned()
    }

    pub(crate) fn running_count(&self) -> usize {
        self.lock().running
    }

    /// Every known attempt.
    pub(crate) fn all(&self) -> Vec<Arc<AttemptEntry>> {
        let mut v: Vec<_> = self.lock().entries.values().cloned().collect();
        v.sort_by_key(|e| e.key);
        v
    }

    /// Attempts whose process may still run.
    pub(crate) fn running(&self) -> Vec<Arc<AttemptEntry>> {
        self.all()
            .into_iter()
            .filter(|e| e.phase() == Phase::Running)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(t: i64) -> AttemptKey {
        AttemptKey {
            task_instance_id: t,
            attempt: 1,
        }
    }

    #[test]
    fn reserve_counts_slots_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let a = Attempts::default();
        let d = |n: &str| dir.path().join(n);
        let Reservation::New(first) = a.reserve(key(1), &d("1"), 1, 1) else {
            panic!("expected new")
        };
        assert!(matches!(
            a.reserve(key(1), &d("1"), 1, 1),
            Reservation::Known
        ));
        assert!(matches!(
            a.reserve(key(2), &d("2"), 1, 1),
            Reservation::Full { running: 1 }
        ));
        assert!(a.finish(&first));
        assert!(!a.finish(&first));
        assert_eq!(a.running_count(), 0);
        assert!(matches!(
            a.reserve(key(2), &d("2"), 1, 1),
            Reservation::New(_)
        ));
        std::fs::create_dir(d("3")).unwrap();
        assert!(matches!(
            a.reserve(key(3), &d("3"), 1, 5),
            Reservation::Known
        ));
    }

    #[test]
    fn first_kill_reason_wins_and_finished_attempts_are_not_killed() {
        let dir = tempfile::tempdir().unwrap();
        let a = Attempts::default();
        let Reservation::New(e) = a.reserve(key(1), &dir.path().join("x"), 1, 1) else {
            panic!("expected new")
        };
        assert!(e.request_kill(KillReason::Timeout));
        assert!(e.request_kill(KillReason::Killed));
        assert_eq!(e.kill_reason(), Some(KillReason::Timeout));
        a.finish(&e);
        assert!(!e.request_kill(KillReason::Killed));
    }
}
