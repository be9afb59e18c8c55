//! A real etcd process for tests.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long etcd may take to answer `/health` after a start.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Start attempts (each with fresh ports) before giving up.
const START_ATTEMPTS: usize = 3;

/// Why an etcd test server could not be run.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    #[error(
        "ORCA-TESTKIT-ETCD-MISSING: no `etcd` binary (looked for $ORCA_ETCD_BIN, `etcd` on PATH, \
         /usr/bin/etcd); run `scripts/test.sh`, which installs Debian's `etcd-server`"
    )]
    Missing,
    #[error("ORCA-TESTKIT-ETCD-IO: {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "ORCA-TESTKIT-ETCD-NOT-READY: etcd on port {port} not healthy within {timeout:?}; log tail:\n{log}"
    )]
    NotReady {
        port: u16,
        timeout: Duration,
        log: String,
    },
}

/// A single-node etcd on loopback ports with its own temporary data dir.
/// Killed (SIGKILL) when dropped.
pub struct EtcdServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

impl EtcdServer {
    /// Starts etcd and waits until it answers `/health`.
    ///
    /// # Panics
    /// When etcd is missing (the message says to run `scripts/test.sh`) or
    /// does not become ready; this is a test helper, the panic is the failure.
    pub async fn start() -> EtcdServer {
        match Self::try_start().await {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    /// Fallible [`EtcdServer::start`].
    pub async fn try_start() -> Result<EtcdServer, TestkitError> {
        let bin = find_etcd().ok_or(TestkitError::Missing)?;
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix("orca-etcd-")
                .tempdir()
                .map_err(|source| io("create temp dir", source))?;
            let client_port = crate::try_free_port().map_err(|e| io("free port", e))?;
            let peer_port = crate::try_free_port().map_err(|e| io("free port", e))?;
            let mut server = EtcdServer {
                bin: bin.clone(),
                dir,
                client_port,
                peer_port,
                child: None,
            };
            // A port taken between `free_port` and etcd's bind fails the
            // start; try again with fresh ports.
            match server.spawn_and_wait().await {
                Ok(()) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(TestkitError::Missing))
    }

    /// Client URLs, e.g. `["http://127.0.0.1:41234"]`.
    pub fn endpoints(&self) -> Vec<String> {
        vec![format!("http://127.0.0.1:{}", self.client_port)]
    }

    /// The client port.
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// The data dir (kept across [`EtcdServer::restart`]).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// SIGKILLs etcd (no graceful shutdown) and reaps it. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `Child::kill` sends SIGKILL on Unix.
            if let Err(e) = child.kill() {
                tracing::warn!(error = %e, "cannot kill etcd");
            }
            let _ = child.wait();
        }
    }

    /// Kills etcd if running, then starts it again on the same data dir and
    /// ports and waits until it answers.
    ///
    /// # Panics
    /// When it does not come back.
    pub async fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.spawn_and_wait().await {
            panic!("{e}");
        }
    }

    /// Stops etcd (SIGKILL; tests need no graceful shutdown).
    pub fn stop(mut self) {
        self.kill();
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    async fn spawn_and_wait(&mut self) -> Result<(), TestkitError> {
        let data = self.dir.path().join("data");
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| io("open etcd log", e))?;
        let log2 = log.try_clone().map_err(|e| io("open etcd log", e))?;
        let child = Command::new(&self.bin)
            .arg("--name")
            .arg("n1")
            .arg("--data-dir")
            .arg(&data)
            .arg("--listen-client-urls")
            .arg(&client)
            .arg("--advertise-client-urls")
            .arg(&client)
            .arg("--listen-peer-urls")
            .arg(&peer)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer)
            .arg("--initial-cluster")
            .arg(format!("n1={peer}"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| io(&format!("spawn {}", self.bin.display()), e))?;
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if healthy(self.client_port).await {
                return Ok(());
            }
            let exited = match self.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(_))) | None => true,
                Some(Ok(None)) => false,
                Some(Err(e)) => return Err(io("wait for etcd", e)),
            };
            if exited || tokio::time::Instant::now() >= deadline {
                self.kill();
                return Err(TestkitError::NotReady {
                    port: self.client_port,
                    timeout: READY_TIMEOUT,
                    log: log_tail(&self.log_path()),
                });
            }
            // Readiness probe interval of a test helper (a condition with a
            // deadline, not a synchronisation sleep).
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn io(what: &str, source: std::io::Error) -> TestkitError {
    TestkitError::Io {
        what: what.to_string(),
        source,
    }
}

fn find_etcd() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ORCA_ETCD_BIN") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("etcd"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let p = PathBuf::from("/usr/bin/etcd");
        p.is_file().then_some(p)
    })
}

/// `GET /health` answers `{"health":"true"}` once etcd serves requests.
async fn healthy(port: u16) -> bool {
    let probe = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf);
        Some(text.contains("\"health\":\"true\""))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Some(true))
    )
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
