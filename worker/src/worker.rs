//! The state one running worker shares between its gRPC service, its task
//! supervisors and its background jobs; registry publication.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use orca_common::registry::{WorkerInfo, WorkerLease};
use tokio_util::sync::CancellationToken;

use crate::WorkerConfig;
use crate::attempts::Attempts;
use crate::layout::{KillReason, Layout, write_atomic};
use crate::outbox::Outbox;

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
    lease: OnceLock<WorkerLease>,
}

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
            lease: OnceLock::new(),
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
            load: load_average(),
            environments: Vec::new(),
        }
    }

    pub(crate) fn set_lease(&self, lease: WorkerLease) -> Option<&WorkerLease> {
        let _ = self.lease.set(lease);
        self.lease.get()
    }

    pub(crate) fn lease(&self) -> Option<&WorkerLease> {
        self.lease.get()
    }

    /// Publishes the running count (metrics and registry). Called on every change.
    pub(crate) fn publish(&self) {
        let info = self.info();
        metrics::gauge!("orca_worker_tasks_running").set(f64::from(info.running));
        if let Some(lease) = self.lease.get() {
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

/// Kills every task when the registry lease is lost: the master fails the
/// tasks of a lost worker over, and no two attempts of one task may run.
pub(crate) async fn watch_lease(worker: Arc<Worker>, mut lost: tokio::sync::watch::Receiver<bool>) {
    let lost_now = tokio::select! {
        // A revoke during shutdown (after cancel) is not a lost lease.
        biased;
        _ = worker.cancel.cancelled() => return,
        r = lost.wait_for(|l| *l) => r.is_ok(),
    };
    if lost_now {
        let n = worker.kill_all(KillReason::LeaseLost);
        tracing::error!(worker = %worker.id, killed = n, "ORCA-WORKER-LEASE-LOST: registry lease lost; killed all running tasks");
    }
}
