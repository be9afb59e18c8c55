//! The Python fork server: PYTHON tasks forked from a warm interpreter.
//!
//! Starting a CPython interpreter costs tens of milliseconds (more behind a
//! launcher), which dominated short PYTHON tasks. The worker therefore keeps
//! one interpreter running (`pyfork.py`, started on the first PYTHON task)
//! and asks it to fork a child per task. Each task is still its own
//! process, in its own process group, with its log as stdout and stderr,
//! its cwd, environment and (with a dead-man window) a watchdog; it runs its
//! script as `__main__` and, like the shell wrapper, writes its exit code to
//! `exit_code` before it exits. The worker learns the pid from the server's
//! reply, and the end from the task itself: right after writing
//! `exit_code` it tells its code to the server, which passes it on, so the
//! end is reported without waiting for the kernel to tear the process down
//! (a copy of the server's address space: a few hundred microseconds).
//! A task that dies without telling (a signal) is known by the wait status
//! the server reports when it reaps it. Should the server die, the worker
//! watches the task through a pidfd like an adopted one.
//!
//! The spare child is forked ahead of its request and, while it waits,
//! runs a throwaway script: the pages of the interpreter a task writes to
//! (shared with the server until written, so each first write copies one)
//! are copied then, not while the task runs. The next spare is forked right
//! after a hand-off, beside the task (while the worker, waiting for it, has
//! little to do); forking when a task ends instead was measured slower, as
//! the fork then competes with the report and the next dispatch.
//!
//! A run that lets its tasks share processes (workflow `python_process:
//! per_run`) sends its requests with a share key (`run-<workflow instance
//! id>`). Such a task that ends with exit code 0, leaving no thread, child
//! process, open file, signal handler, alarm or umask change behind, tells
//! its end as any task does, then resets its cwd, environment, argv,
//! `sys.path` and standard streams and tells the server it can be kept:
//! the server files it under the key and hands it the next request with
//! that key instead of the spare (no fork, no page copies, no teardown); a
//! request that comes while a process of its key is still deciding waits
//! for it. Kept processes serve at most `MAX_TASKS` tasks, at most
//! `MAX_KEPT` wait at once, and one left idle for `KEPT_SECONDS` exits. A
//! key never crosses runs; requests without one always get a fresh
//! process.
//!
//! Not forked, but started by exec as before:
//! - tasks run as a tenant's user: a child of the server would carry the
//!   server's memory, which may hold other tenants' parameters;
//! - tasks whose environment would set `PYTHON*` variables (other than
//!   `PYTHONUNBUFFERED`): they configure interpreter start-up, which a
//!   forked child has already passed. Parameters never do (the renderer
//!   exports such names as `ORCA_P_<n>`); the check guards that rule;
//! - every task when `worker.python_fork` is off, or while the server
//!   cannot be started (the reason is logged once per failure).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, Command};
use tokio::sync::oneshot;

use crate::error::WorkerError;

/// The server's source, run with `python -u -c`.
const SERVER: &str = include_str!("pyfork.py");
/// How long the server may take to say it is ready (preloads included).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// What a forked task needs to start.
#[derive(Debug, Serialize)]
pub(crate) struct ForkRequest {
    /// Absolute path of the script.
    pub script: PathBuf,
    /// Working directory.
    pub cwd: PathBuf,
    /// stdout and stderr, appended.
    pub log: PathBuf,
    /// Where the child writes its exit code.
    pub exit_file: PathBuf,
    /// Added to the worker's environment.
    pub env: HashMap<String, String>,
    /// Dead-man switch: heartbeat file and check period.
    pub deadman: Option<Deadman>,
    /// The task may run in (and leave behind) a process shared by the
    /// requests with this key: `[A-Za-z0-9._-]+`. Sent before the JSON.
    #[serde(skip)]
    pub share: Option<String>,
}

/// The watchdog's settings (see `WorkerConfig::deadman`).
#[derive(Debug, Serialize)]
pub(crate) struct Deadman {
    pub heartbeat: PathBuf,
    /// Seconds between checks (half the window).
    pub half: f64,
}

/// A task process forked by the server.
pub(crate) struct Forked {
    pub pid: i32,
    /// The `waitpid` status once the child ended; closed without a value
    /// when the server died first.
    pub exit: oneshot::Receiver<i32>,
    /// A kept process (of an earlier task with the same share key) runs
    /// the task, not a fresh fork.
    pub kept: bool,
}

/// Why a task was not forked.
#[derive(Debug)]
pub(crate) struct ForkFailure {
    /// The request reached the server, which ended without answering: the
    /// task may have started, so it must not be started again.
    pub maybe_started: bool,
    pub message: String,
}

#[derive(Deserialize)]
struct Reply {
    id: Option<u64>,
    pid: Option<i32>,
    error: Option<String>,
    exit: Option<i32>,
    status: Option<i32>,
    done: Option<i32>,
    code: Option<i32>,
    ready: Option<bool>,
    exe: Option<String>,
    /// The request went to a kept process, not a fresh one.
    #[serde(default)]
    kept: bool,
}

#[derive(Default)]
struct Pending {
    next_id: u64,
    spawns: HashMap<u64, oneshot::Sender<Result<Forked, String>>>,
    exits: HashMap<i32, oneshot::Sender<i32>>,
    dead: bool,
}

/// One running fork server.
pub(crate) struct ForkServer {
    stdin: tokio::sync::Mutex<ChildStdin>,
    pending: Arc<Mutex<Pending>>,
    pid: u32,
}

impl ForkServer {
    /// Starts `python` as a fork server (importing `preload` first) and
    /// waits until it is ready.
    pub(crate) async fn start(python: &str, preload: &[String]) -> Result<Arc<Self>, WorkerError> {
        let preload_json = serde_json::to_string(preload).unwrap_or_else(|_| "[]".into());
        let mut child = Command::new(python)
            .arg("-u")
            .arg("-c")
            .arg(SERVER)
            .arg(preload_json)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| WorkerError::PyFork {
                python: python.to_string(),
                reason: source.to_string(),
            })?;
        let pid = child.id().unwrap_or(0);
        let err = |reason: String| WorkerError::PyFork {
            python: python.to_string(),
            reason,
        };
        let stdin = child.stdin.take().ok_or_else(|| err("no stdin".into()))?;
        let stdout = child.stdout.take().ok_or_else(|| err("no stdout".into()))?;
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::warn!(server = pid, "python fork server: {line}");
                }
            });
        }
        let mut lines = BufReader::new(stdout).lines();
        let hello = tokio::time::timeout(START_TIMEOUT, lines.next_line()).await;
        let exe = match hello {
            Ok(Ok(Some(line))) => match serde_json::from_str::<Reply>(&line) {
                Ok(Reply {
                    ready: Some(true),
                    exe,
                    ..
                }) => exe.unwrap_or_default(),
                _ => return Err(err(format!("unexpected greeting {line:?}"))),
            },
            Ok(Ok(None)) => {
                let status = child.wait().await.ok();
                return Err(err(format!(
                    "it exited at start ({}); see the worker log for its stderr",
                    status.map_or("unknown status".to_string(), |s| s.to_string())
                )));
            }
            Ok(Err(e)) => return Err(err(e.to_string())),
            Err(_) => return Err(err(format!("not ready within {START_TIMEOUT:?}"))),
        };
        tracing::info!(python, %exe, server = pid, preload = ?preload, "python fork server ready");
        let pending = Arc::new(Mutex::new(Pending::default()));
        let shared = pending.clone();
        tokio::spawn(async move {
            // The child is owned here: dropping it would kill the server.
            let mut child = child;
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<Reply>(&line) {
                    Ok(reply) => dispatch_reply(&shared, reply),
                    Err(e) => {
                        tracing::warn!(server = pid, error = %e, %line, "bad reply from the python fork server")
                    }
                }
            }
            let status = child.wait().await;
            if matches!(&status, Ok(s) if s.success()) {
                // Its stdin closed: this worker is going away.
                tracing::debug!(server = pid, "python fork server ended");
            } else {
                tracing::warn!(
                    server = pid,
                    ?status,
                    "python fork server ended; the next PYTHON task starts a new one"
                );
            }
            let mut p = shared.lock().unwrap_or_else(|e| e.into_inner());
            p.dead = true;
            // Dropping the senders tells every waiter the server is gone.
            p.spawns.clear();
            p.exits.clear();
        });
        Ok(Arc::new(ForkServer {
            stdin: tokio::sync::Mutex::new(stdin),
            pending,
            pid,
        }))
    }

    /// Whether the server has ended (a new one must be started).
    pub(crate) fn is_dead(&self) -> bool {
        self.lock().dead
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forks a task process.
    pub(crate) async fn spawn(&self, req: &ForkRequest) -> Result<Forked, ForkFailure> {
        let not_sent = |message: String| ForkFailure {
            maybe_started: false,
            message,
        };
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut p = self.lock();
            if p.dead {
                return Err(not_sent("the fork server has ended".into()));
            }
            p.next_id += 1;
            let id = p.next_id;
            p.spawns.insert(id, tx);
            id
        };
        // `<id> <share key or -> <request as JSON>\n` (JSON has no raw
        // newline; the key no space).
        let share = req
            .share
            .as_deref()
            .filter(|k| is_share_key(k))
            .unwrap_or("-");
        let mut line = format!("{id} {share} ").into_bytes();
        serde_json::to_writer(&mut line, req).map_err(|e| not_sent(e.to_string()))?;
        line.push(b'\n');
        let written = {
            let mut stdin = self.stdin.lock().await;
            match stdin.write_all(&line).await {
                Ok(()) => stdin.flush().await,
                Err(e) => Err(e),
            }
        };
        if let Err(e) = written {
            let mut p = self.lock();
            p.spawns.remove(&id);
            p.dead = true;
            drop(p);
            // A partial line (no newline) is never read as a request.
            return Err(not_sent(format!("cannot write to the fork server: {e}")));
        }
        match rx.await {
            Ok(Ok(forked)) => Ok(forked),
            // The server answered that fork() failed.
            Ok(Err(message)) => Err(not_sent(message)),
            Err(_) => Err(ForkFailure {
                maybe_started: true,
                message: "the fork server ended while starting the task".into(),
            }),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }
}

fn dispatch_reply(pending: &Mutex<Pending>, reply: Reply) {
    let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
    // A task's end: as the child told it just before its exit (a normal
    // exit with that code), or its wait status once reaped; the first to
    // come counts, the other finds no one waiting.
    let ended = match (reply.done, reply.code, reply.exit, reply.status) {
        (Some(pid), Some(code), _, _) => Some((pid, (code & 0xFF) << 8)),
        (_, _, Some(pid), Some(status)) => Some((pid, status)),
        _ => None,
    };
    if let Some((pid, status)) = ended {
        if let Some(tx) = p.exits.remove(&pid) {
            let _ = tx.send(status);
        }
        return;
    }
    let Some(id) = reply.id else { return };
    let Some(tx) = p.spawns.remove(&id) else {
        return;
    };
    let result = match (reply.pid, reply.error) {
        (Some(pid), _) => {
            // Registered before the requester hears of the pid: the exit
            // reply can only follow this one on the stream.
            let (etx, erx) = oneshot::channel();
            p.exits.insert(pid, etx);
            Ok(Forked {
                pid,
                exit: erx,
                kept: reply.kept,
            })
        }
        (None, Some(e)) => Err(e),
        (None, None) => Err("empty reply".into()),
    };
    if let Err(Ok(forked)) = tx.send(result) {
        // Nobody waits any more; the exit will find no receiver.
        p.exits.remove(&forked.pid);
    }
}

/// The exit code a shell would report for a `waitpid` status: the code,
/// or 128 + the signal that killed it.
pub(crate) fn exit_code_of_status(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        crate::events::EXIT_UNKNOWN
    }
}

/// Whether `key` can go on a request line as a share key.
fn is_share_key(key: &str) -> bool {
    !key.is_empty()
        && key != "-"
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether a task's environment lets it be forked: `PYTHON*` variables
/// other than `PYTHONUNBUFFERED` configure interpreter start-up.
pub(crate) fn env_allows_fork(env: &[(String, String)]) -> bool {
    !env.iter()
        .any(|(k, _)| k.starts_with("PYTHON") && k != "PYTHONUNBUFFERED")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_like_a_shell() {
        assert_eq!(exit_code_of_status(0), 0);
        assert_eq!(exit_code_of_status(3 << 8), 3);
        assert_eq!(exit_code_of_status(libc::SIGKILL), 128 + 9);
    }

    #[test]
    fn share_keys_are_one_word() {
        assert!(is_share_key("run-42"));
        assert!(!is_share_key(""));
        assert!(!is_share_key("-"));
        assert!(!is_share_key("run 42"));
        assert!(!is_share_key("run\n42"));
    }

    #[test]
    fn interpreter_start_up_variables_prevent_forking() {
        let e = |k: &str| vec![(k.to_string(), "x".to_string())];
        assert!(env_allows_fork(&e("PYTHONUNBUFFERED")));
        assert!(env_allows_fork(&e("ORCA_P_0")));
        assert!(!env_allows_fork(&e("PYTHONPATH")));
        assert!(!env_allows_fork(&e("PYTHONHASHSEED")));
    }
}
