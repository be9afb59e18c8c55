//! OS process helpers: process identity in `/proc`, group signals, and
//! waiting for a process the worker did not spawn itself (pidfd).

use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::layout::PidRecord;

/// How often an adopted process is checked when pidfd is not available.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// State letter and start time (field 22, clock ticks since boot) of a process.
pub(crate) fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: fields
    // after it start behind the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3 (state); start time is field 22.
    let start_time = fields.nth(22 - 4)?.parse().ok()?;
    Some((state, start_time))
}

/// Whether the process recorded in `rec` still runs (same pid, same start
/// time, not a zombie).
pub(crate) fn is_alive(rec: &PidRecord) -> bool {
    matches!(proc_stat(rec.pid), Some((state, start)) if start == rec.start_time && state != 'Z' && state != 'X')
}

/// Sends `signal` to every process of group `pgid`. A group that is already
/// gone is not an error.
pub(crate) fn signal_group(pgid: i32, signal: i32) {
    if pgid <= 1 {
        tracing::error!(pgid, "refusing to signal a process group <= 1");
        return;
    }
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(-pgid, signal) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ESRCH) {
            tracing::warn!(pgid, signal, error = %err, "cannot signal task process group");
        }
    }
}

/// The process group leader of a running attempt.
pub(crate) enum TaskProcess {
    /// Spawned by this worker process: its exit comes from `wait()`.
    Child(tokio::process::Child),
    /// Adopted after a restart: watched through a pidfd (or polling).
    Adopted(PidRecord),
    /// Forked by the Python fork server, which reports its wait status; if
    /// the server dies first, watched like an adopted process.
    Forked {
        rec: PidRecord,
        exit: Option<tokio::sync::oneshot::Receiver<i32>>,
        status: Option<i32>,
    },
}

impl TaskProcess {
    /// Waits until the process has exited. Cancel-safe.
    pub(crate) async fn wait(&mut self) {
        match self {
            TaskProcess::Child(child) => {
                if let Err(e) = child.wait().await {
                    tracing::warn!(error = %e, "waiting for task process failed; watching /proc");
                    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok())
                        && let Some((_, start_time)) = proc_stat(pid)
                    {
                        let rec = PidRecord {
                            pid,
                            start_time,
                            started_at_ms: 0,
                        };
                        wait_adopted(&rec).await;
                    }
                }
            }
            TaskProcess::Adopted(rec) => wait_adopted(rec).await,
            TaskProcess::Forked { rec, exit, status } => {
                if status.is_some() {
                    return;
                }
                if let Some(rx) = exit {
                    match rx.await {
                        Ok(s) => {
                            *status = Some(s);
                            *exit = None;
                            return;
                        }
                        Err(_) => *exit = None,
                    }
                }
                wait_adopted(rec).await
            }
        }
    }

    /// The wait status of a forked process that has ended, when its fork
    /// server reported it.
    pub(crate) fn forked_status(&self) -> Option<i32> {
        match self {
            TaskProcess::Forked { status, .. } => *status,
            _ => None,
        }
    }
}

/// Waits for the exit of a process that is not our child.
async fn wait_adopted(rec: &PidRecord) {
    match open_pidfd(rec.pid) {
        Ok(fd) => {
            // The pid may have been reused between the record and the open:
            // check identity once the fd pins the process.
            if !is_alive(rec) {
                return;
            }
            // SAFETY: the OwnedFd is a valid open fd owned by the AsyncFd for
            // its whole life.
            match unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) } {
                Ok(afd) => {
                    // Readable once the process has terminated; the fd never
                    // becomes unreadable again, so one readiness is enough.
                    if afd.readable().await.is_ok() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(pid = rec.pid, error = %e, "pidfd not pollable; polling /proc")
                }
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return,
        Err(e) => {
            tracing::debug!(pid = rec.pid, error = %e, "pidfd_open unavailable; polling /proc")
        }
    }
    while is_alive(rec) {
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

fn open_pidfd(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd =
        i32::try_from(fd).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))?;
    // SAFETY: the syscall returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_a_changed_start_time_is_not() {
        let pid = std::process::id() as i32;
        let (state, start_time) = proc_stat(pid).unwrap();
        assert_ne!(state, 'Z');
        let rec = PidRecord {
            pid,
            start_time,
            started_at_ms: 0,
        };
        assert!(is_alive(&rec));
        assert!(!is_alive(&PidRecord {
            start_time: start_time + 1,
            ..rec
        }));
    }

    #[tokio::test]
    async fn adopted_wait_returns_when_the_process_exits() {
        let mut child = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let (_, start_time) = proc_stat(pid).unwrap();
        let mut p = TaskProcess::Adopted(PidRecord {
            pid,
            start_time,
            started_at_ms: 0,
        });
        tokio::time::timeout(Duration::from_secs(10), p.wait())
            .await
            .unwrap();
        child.wait().unwrap();
    }
}
