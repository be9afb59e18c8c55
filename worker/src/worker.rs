//! The state one running worker shares between its gRPC service, its task
//! supervisors and its background jobs; registry publication.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orca_common::registry::{Registry, WorkerInfo, WorkerLease};
use tokio_util::sync::CancellationToken;

use crate::WorkerConfig;
use crate::attempts::Attempts;
use crate::layout::{KillReason, Layout, write_atomic};
use crate::outbox::Outbox;
use crate::pyfork::ForkServer;

/// Shared state of one worker.
pub(crate) struct Worker {
    pub id: String,
    pub config: WorkerConfig,
    pub layout: Layout,
    /// The bound gRPC address.
    pub addr: SocketAddr,
    pub attempts: Attempts,
    pub outbox: Arc<Outbox>,
    /// Cancelled on shutdown: stops the server, supervisors and deliveries
    /// (without touching task processes).
    pub cancel: CancellationToken,
    max_epoch: AtomicU64,
    /// Serialises writes of the epoch file.
    epoch_file: Mutex<()>,
    /// The current registry lease; replaced when the worker re-registers
    /// after losing it.
    lease: Mutex<Option<Arc<WorkerLease>>>,
    /// `config.python` resolved, on the first PYTHON task (not at start).
    python: tokio::sync::OnceCell<String>,
    /// Host figures for [`Worker::info`], refreshed by [`refresh_load`].
    host: Mutex<WorkerInfo>,
    /// The Python fork server, started by the first PYTHON task.
    fork: tokio::sync::Mutex<ForkSlot>,
}

/// The fork server, or when it last failed to start.
#[derive(Default)]
struct ForkSlot {
    server: Option<Arc<ForkServer>>,
    failed_at: Option<std::time::Instant>,
}

/// How long after a failed start the fork server is not tried again.
const FORK_RETRY: Duration = Duration::from_secs(30);

impl Worker {
    pub(crate) fn new(
        id: String,
        config: WorkerConfig,
        addr: SocketAddr,
        outbox: Arc<Outbox>,
        cancel: CancellationToken,
        max_epoch: u64,
    ) -> Self {
        let layout = Layout::new(config.data_dir.clone());
        Worker {
            id,
            config,
            layout,
            addr,
            attempts: Attempts::default(),
            outbox,
            cancel,
            max_epoch: AtomicU64::new(max_epoch),
            epoch_file: Mutex::new(()),
            lease: Mutex::new(None),
            python: tokio::sync::OnceCell::new(),
            fork: tokio::sync::Mutex::new(ForkSlot::default()),
            host: Mutex::new(host_info()),
        }
    }

    /// The interpreter PYTHON tasks start ([`resolve_python`]), resolved by
    /// the first one that asks.
    pub(crate) async fn python(&self) -> &str {
        self.python
            .get_or_init(|| resolve_python(&self.config.python))
            .await
    }

    /// The running fork server of PYTHON tasks, started (again) when
    /// needed; `None` when forking is off or the server cannot start (then
    /// tried again after [`FORK_RETRY`]).
    pub(crate) async fn fork_server(&self) -> Option<Arc<ForkServer>> {
        if !self.config.python_fork {
            return None;
        }
        let python = self.python().await;
        let mut slot = self.fork.lock().await;
        if let Some(server) = &slot.server
            && !server.is_dead()
        {
            return Some(server.clone());
        }
        if slot.failed_at.is_some_and(|t| t.elapsed() < FORK_RETRY) {
            return None;
        }
        match ForkServer::start(python, &self.config.python_preload).await {
            Ok(server) => {
                slot.server = Some(server.clone());
                slot.failed_at = None;
                Some(server)
            }
            Err(e) => {
                tracing::warn!(error = %e, "PYTHON tasks are started by exec until the fork server can start");
                slot.server = None;
                slot.failed_at = Some(std::time::Instant::now());
                None
            }
        }
    }

    /// What this worker advertises now.
    pub(crate) fn info(&self) -> WorkerInfo {
        WorkerInfo {
            id: self.id.clone(),
            addr: format!("http://{}:{}", self.config.advertise_host, self.addr.port()),
            group: self.config.group.clone(),
            labels: self.config.labels.clone(),
            slots: self.config.slots,
            running: u32::try_from(self.attempts.running_count()).unwrap_or(u32::MAX),
            environments: Vec::new(),
            ..self.host.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }
    }

    /// Reads the host's figures (load, CPUs, memory) again; blocking. The
    /// registry gets them with the next publication: every publication
    /// (each dispatch and each end) does not read `/proc` and cgroup files.
    pub(crate) fn refresh_host(&self) {
        let host = host_info();
        *self.host.lock().unwrap_or_else(|e| e.into_inner()) = host;
    }

    /// Installs the current registry lease (replacing a lost one).
    pub(crate) fn set_lease(&self, lease: WorkerLease) -> Arc<WorkerLease> {
        let lease = Arc::new(lease);
        *self.lease.lock().unwrap_or_else(|e| e.into_inner()) = Some(lease.clone());
        lease
    }

    /// The current registry lease, if registered.
    pub(crate) fn lease(&self) -> Option<Arc<WorkerLease>> {
        self.lease.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Publishes the running count (metrics and registry). Called on every change.
    pub(crate) fn publish(&self) {
        let info = self.info();
        metrics::gauge!("orca_worker_tasks_running").set(f64::from(info.running));
        if let Some(lease) = self.lease() {
            lease.update(info);
        }
    }

    /// Highest master epoch seen.
    pub(crate) fn max_epoch(&self) -> u64 {
        self.max_epoch.load(Ordering::Acquire)
    }

    /// Records a master epoch. `Err(highest)` when `epoch` is older than the
    /// highest seen (a deposed master). A new highest epoch is persisted, so
    /// a restarted worker still refuses the deposed master.
    pub(crate) fn observe_epoch(&self, epoch: u64) -> Result<(), u64> {
        let prev = self.max_epoch.fetch_max(epoch, Ordering::AcqRel);
        if epoch < prev {
            return Err(prev);
        }
        if epoch > prev {
            let _guard = self.epoch_file.lock().unwrap_or_else(|e| e.into_inner());
            // Re-read under the lock: only the newest value is written last.
            let now = self.max_epoch();
            if let Err(e) =
                write_atomic(&self.layout.epoch_file(), now.to_string().as_bytes(), false)
            {
                tracing::warn!(error = %e, "cannot persist master epoch");
            }
        }
        Ok(())
    }

    /// Asks every running attempt to be killed.
    pub(crate) fn kill_all(&self, reason: KillReason) -> usize {
        let running = self.attempts.running();
        for entry in &running {
            entry.request_kill(reason);
        }
        running.len()
    }
}

/// 1-minute load average, 0 when unknown.
/// A `/proc/meminfo` figure in MiB (0 when unreadable).
fn meminfo_mb(meminfo: &str, field: &str) -> u64 {
    meminfo
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

/// The host part of a [`WorkerInfo`] (the rest is left default).
fn host_info() -> WorkerInfo {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    WorkerInfo {
        load: load_average(),
        cpus: std::thread::available_parallelism()
            .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
            .unwrap_or(1),
        memory_total_mb: meminfo_mb(&meminfo, "MemTotal:"),
        memory_available_mb: meminfo_mb(&meminfo, "MemAvailable:"),
        ..WorkerInfo::default()
    }
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// Reads the persisted highest epoch (0 when none).
pub(crate) fn load_epoch(layout: &Layout) -> u64 {
    std::fs::read_to_string(layout.epoch_file())
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Follows the leader: its epoch is the newest a dispatch may carry.
pub(crate) async fn watch_leader_epoch(
    worker: Arc<Worker>,
    mut leader: tokio::sync::watch::Receiver<Option<orca_common::registry::LeaderInfo>>,
) {
    loop {
        let epoch = leader.borrow_and_update().as_ref().map(|l| l.epoch);
        if let Some(epoch) = epoch {
            let _ = worker.observe_epoch(epoch);
        }
        tokio::select! {
            _ = worker.cancel.cancelled() => return,
            changed = leader.changed() => if changed.is_err() { return },
        }
    }
}

/// First wait before re-registering after a lost lease; doubles per failure.
const REREGISTER_BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest wait between re-registration attempts.
const REREGISTER_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Refreshes the advertised load (load average, memory, running tasks)
/// every `every`.
pub(crate) async fn refresh_load(worker: Arc<Worker>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = worker.cancel.cancelled() => return,
            _ = tick.tick() => {
                let w = worker.clone();
                if tokio::task::spawn_blocking(move || w.refresh_host()).await.is_ok() {
                    worker.publish();
                }
            }
        }
    }
}

/// Dead-man switch, worker side: touches the heartbeat file every
/// `window / 8` while the registry lease is valid. Task watchdogs kill their
/// process group once it is older than `window` (see the runner's wrapper).
pub(crate) async fn heartbeat(worker: Arc<Worker>, window: Duration) {
    let path = worker.layout.heartbeat_file();
    let every = (window / 8).max(Duration::from_millis(50));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = worker.cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let valid = worker.lease().is_some_and(|l| !*l.lost.borrow());
        if !valid {
            continue;
        }
        let touched = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        if let Err(e) = touched {
            tracing::error!(path = %path.display(), error = %e, "cannot touch the heartbeat file; tasks will kill themselves");
        }
    }
}

/// Kills every task when the registry lease is lost (the master fails the
/// tasks of a lost worker over, and no two attempts of one task may run),
/// then registers again with backoff until it succeeds and keeps watching
/// the new lease. Ends on shutdown.
pub(crate) async fn watch_lease(
    worker: Arc<Worker>,
    registry: Arc<dyn Registry>,
    mut lost: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let lost_now = tokio::select! {
            // A revoke during shutdown (after cancel) is not a lost lease.
            biased;
            _ = worker.cancel.cancelled() => return,
            r = lost.wait_for(|l| *l) => r.is_ok(),
        };
        if !lost_now {
            return;
        }
        let n = worker.kill_all(KillReason::LeaseLost);
        tracing::error!(worker = %worker.id, killed = n, "ORCA-WORKER-LEASE-LOST: registry lease lost; killed all running tasks");
        match reregister(&worker, registry.as_ref()).await {
            Some(next) => lost = next,
            None => return,
        }
    }
}

/// Registers again with backoff; `None` on shutdown.
async fn reregister(
    worker: &Worker,
    registry: &dyn Registry,
) -> Option<tokio::sync::watch::Receiver<bool>> {
    let mut backoff = REREGISTER_BACKOFF_MIN;
    loop {
        tokio::select! {
            biased;
            _ = worker.cancel.cancelled() => return None,
            _ = tokio::time::sleep(backoff) => {}
        }
        let attempt = tokio::select! {
            biased;
            _ = worker.cancel.cancelled() => return None,
            r = registry.register_worker(worker.info()) => r,
        };
        match attempt {
            Ok(lease) => {
                let lost = lease.lost.clone();
                let lease = worker.set_lease(lease);
                if worker.cancel.is_cancelled() {
                    // Shutdown raced the registration: do not leave it behind.
                    lease.revoke();
                    return None;
                }
                worker.publish();
                tracing::info!(worker = %worker.id, "re-registered in the registry after losing the lease");
                return Some(lost);
            }
            Err(e) => {
                backoff = (backoff * 2).min(REREGISTER_BACKOFF_MAX);
                tracing::warn!(worker = %worker.id, error = %e, retry_in = ?backoff, "cannot re-register; retrying");
            }
        }
    }
}

/// The interpreter PYTHON tasks start: `python` resolved once (by the
/// first PYTHON task, so start-up does not wait for it) to the
/// executable it runs (`sys.executable`), so that every task does not pay
/// for a launcher in between (a pyenv shim costs ~100 ms per start). A venv's
/// or conda env's python resolves to itself. When it cannot run, `python`
/// is kept as configured (its tasks then fail, saying why).
async fn resolve_python(python: &str) -> String {
    let probe = tokio::process::Command::new(python)
        .args(["-c", "import sys; print(sys.executable)"])
        .stdin(std::process::Stdio::null())
        .output();
    match tokio::time::timeout(Duration::from_secs(30), probe).await {
        Ok(Ok(out)) if out.status.success() => {
            let exe = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !exe.is_empty()
                && std::path::Path::new(&exe).is_absolute()
                && std::path::Path::new(&exe).exists()
            {
                if exe != python {
                    tracing::info!(configured = python, resolved = %exe, "PYTHON tasks start the resolved interpreter");
                }
                return exe;
            }
            python.to_string()
        }
        Ok(Ok(out)) => {
            tracing::warn!(python, status = %out.status, stderr = %String::from_utf8_lossy(&out.stderr).trim(), "the python interpreter fails; PYTHON tasks will fail until it works");
            python.to_string()
        }
        Ok(Err(e)) => {
            tracing::warn!(python, error = %e, "cannot start the python interpreter; PYTHON tasks will fail until it can be started");
            python.to_string()
        }
        Err(_) => {
            tracing::warn!(
                python,
                "the python interpreter did not answer within 30 s; keeping it as configured"
            );
            python.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orca_common::registry::memory::MemoryRegistry;

    /// A lost lease (taken away by another registration of the same id) is
    /// followed by a new registration carrying this worker's own address,
    /// and the new lease is watched in turn.
    #[tokio::test]
    async fn reregisters_after_lease_loss_and_keeps_watching() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Arc::new(MemoryRegistry::new());
        let cancel = CancellationToken::new();
        let outbox = Outbox::new(
            dir.path().join("outbox"),
            reg.watch_leader(),
            cancel.clone(),
            None,
        );
        let addr: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let w = Arc::new(Worker::new(
            "w1".into(),
            WorkerConfig::new(dir.path()),
            addr,
            outbox,
            cancel.clone(),
            0,
        ));
        let lease = reg.register_worker(w.info()).await.unwrap();
        let lost = lease.lost.clone();
        w.set_lease(lease);
        let task = tokio::spawn(watch_lease(w.clone(), reg.clone(), lost));
        let mine = w.info().addr;
        let mut workers = reg.watch_workers();
        for round in 0..2 {
            let mut other = w.info();
            other.addr = format!("http://elsewhere:{round}");
            let stolen = reg.register_worker(other).await.unwrap();
            let back = tokio::time::timeout(
                Duration::from_secs(10),
                workers.wait_for(|ws| ws.len() == 1 && ws[0].addr == mine),
            )
            .await;
            assert!(
                matches!(back, Ok(Ok(_))),
                "round {round}: not re-registered"
            );
            assert!(
                *stolen.lost.borrow(),
                "the re-registration replaced the other one"
            );
            let current = w.lease().unwrap();
            assert!(!*current.lost.borrow());
        }
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
}
