//! Service registry: workers register under a lease, masters elect a leader.
//!
//! The trait is shaped after etcd (leases, watches, elections whose epoch is
//! the leader key's revision). `memory` is the in-process implementation used
//! by `orca standalone`; `etcd` is the cluster one. Both pass the same
//! conformance suite (`common/tests/registry_conformance.rs`).

pub mod etcd;
pub mod memory;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// What a worker advertises (refreshed every few seconds with its load).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
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
    /// CPUs of the host.
    #[serde(default)]
    pub cpus: u32,
    /// Memory of the host, MiB.
    #[serde(default)]
    pub memory_total_mb: u64,
    #[serde(default)]
    pub memory_available_mb: u64,
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

/// Boxed error of a registry backend (kept opaque so domain code never
/// depends on the backend's client crate).
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Registry failures. Every message starts with a stable code.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("ORCA-REGISTRY-UNAVAILABLE: registry unavailable: {0}")]
    Unavailable(String),
    #[error("ORCA-REGISTRY-LEASE-LOST: lease of {0} lost")]
    LeaseLost(String),
    /// A backend call failed (connection refused, gRPC error, ...).
    #[error("ORCA-REGISTRY-BACKEND: {op} failed: {source}")]
    Backend {
        op: &'static str,
        #[source]
        source: BackendError,
    },
    /// A backend call did not answer in time.
    #[error("ORCA-REGISTRY-TIMEOUT: {op} did not answer within {after:?}")]
    Timeout {
        op: &'static str,
        after: std::time::Duration,
    },
    /// A stored value could not be encoded or decoded.
    #[error("ORCA-REGISTRY-CODEC: value of {key}: {source}")]
    Codec {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    /// Invalid registry configuration.
    #[error("ORCA-REGISTRY-CONFIG: {0}")]
    Config(&'static str),
}

impl RegistryError {
    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            RegistryError::Unavailable(_)
                | RegistryError::LeaseLost(_)
                | RegistryError::Backend { .. }
                | RegistryError::Timeout { .. }
        )
    }
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
    /// Deregisters: deletes the key and ends the lease (asynchronously for
    /// etcd); `lost` becomes `true` at once.
    pub fn revoke(&self) {
        (self.revoke)()
    }
}

/// A master's registration (leader or standby), for the registry view of
/// masters; dropping it does not deregister (call `revoke`).
pub struct MasterLease {
    pub(crate) revoke: Box<dyn Fn() + Send + Sync>,
    /// Becomes `true` when the lease is lost or revoked.
    pub lost: watch::Receiver<bool>,
}

impl MasterLease {
    /// Deregisters (asynchronously for etcd); `lost` becomes `true` at once.
    pub fn revoke(&self) {
        (self.revoke)()
    }
}

/// Leadership won by `campaign`; dropping it does not resign (call `resign`).
pub struct Leadership {
    pub epoch: u64,
    /// Becomes `true` when leadership is lost; the master must stop acting.
    pub lost: watch::Receiver<bool>,
    pub(crate) resign: Box<dyn Fn() + Send + Sync>,
}

impl Leadership {
    /// Gives leadership up; `lost` becomes `true` at once and another
    /// campaigner can win (asynchronously for etcd).
    pub fn resign(&self) {
        (self.resign)()
    }
}

/// Worker and master registration, worker discovery and leader election.
///
/// Lease holders are told through `lost` when they must stop acting; the etcd
/// implementation declares a lease lost by the holder's own clock before
/// etcd can expire it (see `etcd::EtcdConfig::fence_margin`).
#[async_trait]
pub trait Registry: Send + Sync + 'static {
    /// Registers (or re-registers) a worker under a new lease; its info is
    /// visible to `workers`/`watch_workers` once this returns.
    async fn register_worker(&self, info: WorkerInfo) -> Result<WorkerLease, RegistryError>;
    /// Live workers now.
    async fn workers(&self) -> Result<Vec<WorkerInfo>, RegistryError>;
    /// Live workers, updated on every change.
    fn watch_workers(&self) -> watch::Receiver<Vec<WorkerInfo>>;
    /// Registers a master (leader or standby) under a lease; visible to
    /// `masters` once this returns.
    async fn register_master(&self, info: MasterInfo) -> Result<MasterLease, RegistryError>;
    /// Registered masters now.
    async fn masters(&self) -> Result<Vec<MasterInfo>, RegistryError>;
    /// Wait until this master is the leader.
    async fn campaign(&self, me: MasterInfo) -> Result<Leadership, RegistryError>;
    /// The current leader, updated on every change.
    fn watch_leader(&self) -> watch::Receiver<Option<LeaderInfo>>;
}
