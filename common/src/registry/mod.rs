//! Service registry: workers register under a lease, masters elect a leader.
//!
//! The trait is shaped after etcd (leases, watches, elections whose epoch is
//! the leader key's revision). `memory` is the in-process implementation used
//! by `orca standalone`; the etcd one arrives with cluster mode and must pass
//! the same conformance tests.

pub mod memory;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// What a worker advertises.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub id: String,
    /// gRPC address, `http://host:port`.
    pub addr: String,
    pub group: String,
    #[serde(default)]
    pub labels: Vec<String>,
    pub slots: u32,
    #[serde(default)]
    pub running: u32,
    /// Load average (1 min), for lowest-weight dispatch.
    #[serde(default)]
    pub load: f64,
    #[serde(default)]
    pub environments: Vec<String>,
}

/// What a master advertises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterInfo {
    pub id: String,
    pub addr: String,
}

/// The current leader and its epoch (fencing token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderInfo {
    pub master: MasterInfo,
    pub epoch: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("ORCA-REGISTRY-UNAVAILABLE: registry unavailable: {0}")]
    Unavailable(String),
    #[error("ORCA-REGISTRY-LEASE-LOST: lease of {0} lost")]
    LeaseLost(String),
}

/// A worker's registration; dropping it does not deregister (call `revoke`).
pub struct WorkerLease {
    pub(crate) update: Box<dyn Fn(WorkerInfo) + Send + Sync>,
    pub(crate) revoke: Box<dyn Fn() + Send + Sync>,
    /// Becomes `true` when the lease is lost; the worker must then stop its tasks.
    pub lost: watch::Receiver<bool>,
}

impl WorkerLease {
    /// Refresh the advertised info (load, running tasks).
    pub fn update(&self, info: WorkerInfo) {
        (self.update)(info)
    }
    pub fn revoke(&self) {
        (self.revoke)()
    }
}

/// Leadership won by `campaign`.
pub struct Leadership {
    pub epoch: u64,
    /// Becomes `true` when leadership is lost; the master must stop acting.
    pub lost: watch::Receiver<bool>,
    pub(crate) resign: Box<dyn Fn() + Send + Sync>,
}

impl Leadership {
    pub fn resign(&self) {
        (self.resign)()
    }
}

#[async_trait]
pub trait Registry: Send + Sync + 'static {
    async fn register_worker(&self, info: WorkerInfo) -> Result<WorkerLease, RegistryError>;
    /// Live workers now.
    async fn workers(&self) -> Result<Vec<WorkerInfo>, RegistryError>;
    /// Live workers, updated on every change.
    fn watch_workers(&self) -> watch::Receiver<Vec<WorkerInfo>>;
    /// Wait until this master is the leader.
    async fn campaign(&self, me: MasterInfo) -> Result<Leadership, RegistryError>;
    /// The current leader, updated on every change.
    fn watch_leader(&self) -> watch::Receiver<Option<LeaderInfo>>;
}
