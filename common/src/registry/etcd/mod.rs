//! The etcd registry for cluster mode.
//!
//! Key layout under `prefix` (default `/orca`): `workers/<id>` and
//! `masters/<id>` hold the JSON of [`WorkerInfo`] / [`MasterInfo`], each under
//! its holder's own lease; the election (etcd's election API) is named
//! `<prefix>/leader` and its value is the leader's [`MasterInfo`] JSON. The
//! epoch of a leader is the revision of its election key, so it strictly
//! increases from one leader to the next.
//!
//! **Fencing by the holder's clock:** every lease (worker, master, election)
//! is kept alive every `keepalive_interval`; its holder considers it lost once
//! `lease_ttl - fence_margin` has passed on its own monotonic clock since the
//! last successful keepalive was *sent*, i.e. before etcd can expire it and
//! hand the role to someone else. A short etcd outage (restart) within that
//! window loses nothing.
//!
//! Background tasks (lease keepers, the worker watch, the leader observer)
//! end on [`EtcdRegistry::shutdown`] or when the registry is dropped; leases
//! are then left to expire (a dead process looks the same), and every `lost`
//! flag becomes `true`.

mod election;
mod lease;
mod watchers;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{Client, ConnectOptions, GetOptions};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{
    LeaderInfo, Leadership, MasterInfo, MasterLease, Registry, RegistryError, WorkerInfo,
    WorkerLease,
};

/// Deadline of one unary etcd call (get, put, grant, revoke, resign).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Connection settings of the etcd registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// Client URLs, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Key prefix of this Orca cluster (default `/orca`).
    pub prefix: String,
    /// TTL of every lease (default 10 s; etcd counts whole seconds, rounded up).
    pub lease_ttl: Duration,
    /// Keepalive period (default 3 s); must be below `lease_ttl - fence_margin`.
    pub keepalive_interval: Duration,
    /// Safety margin (default 2 s): a holder gives its lease up
    /// `lease_ttl - fence_margin` after its last successful keepalive.
    pub fence_margin: Duration,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        EtcdConfig {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            prefix: "/orca".into(),
            lease_ttl: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(3),
            fence_margin: Duration::from_secs(2),
        }
    }
}

impl EtcdConfig {
    /// Checks the timing relations the fencing relies on.
    pub fn validate(&self) -> Result<(), RegistryError> {
        if self.endpoints.is_empty() {
            return Err(RegistryError::Config("etcd endpoints are empty"));
        }
        if self.fence_margin >= self.lease_ttl {
            return Err(RegistryError::Config(
                "fence_margin must be shorter than lease_ttl",
            ));
        }
        if self.keepalive_interval.is_zero()
            || self.keepalive_interval >= self.lease_ttl - self.fence_margin
        {
            return Err(RegistryError::Config(
                "keepalive_interval must be positive and shorter than lease_ttl - fence_margin",
            ));
        }
        Ok(())
    }

    /// How long after its last successful keepalive a holder keeps acting.
    pub(crate) fn fence_window(&self) -> Duration {
        self.lease_ttl.saturating_sub(self.fence_margin)
    }

    fn ttl_secs(&self) -> i64 {
        let ms = self.lease_ttl.as_millis();
        i64::try_from(ms.div_ceil(1000)).unwrap_or(i64::MAX).max(1)
    }
}

/// State shared by the registry and its background tasks.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub client: Client,
    pub cfg: Arc<EtcdConfig>,
    pub shutdown: CancellationToken,
    pub leader_rx: watch::Receiver<Option<LeaderInfo>>,
    prefix: Arc<str>,
}

impl Ctx {
    pub fn workers_prefix(&self) -> String {
        format!("{}/workers/", self.prefix)
    }
    pub fn masters_prefix(&self) -> String {
        format!("{}/masters/", self.prefix)
    }
    pub fn election_name(&self) -> String {
        format!("{}/leader", self.prefix)
    }
}

/// Runs one etcd call with a deadline, mapping its errors.
pub(crate) async fn timed<T>(
    op: &'static str,
    after: Duration,
    fut: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, RegistryError> {
    match tokio::time::timeout(after, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(backend(op, e)),
        Err(_) => Err(RegistryError::Timeout { op, after }),
    }
}

pub(crate) fn backend(op: &'static str, e: etcd_client::Error) -> RegistryError {
    RegistryError::Backend {
        op,
        source: Box::new(e),
    }
}

/// Registry backed by an etcd cluster.
pub struct EtcdRegistry {
    ctx: Ctx,
    workers_rx: watch::Receiver<Vec<WorkerInfo>>,
}

impl EtcdRegistry {
    /// Connects, loads the current workers and leader, and starts the
    /// background watches.
    pub async fn connect(cfg: EtcdConfig) -> Result<EtcdRegistry, RegistryError> {
        cfg.validate()?;
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
        let client = timed(
            "connect",
            REQUEST_TIMEOUT,
            Client::connect(cfg.endpoints.clone(), Some(options)),
        )
        .await?;
        let prefix: Arc<str> = Arc::from(cfg.prefix.trim_end_matches('/'));
        let shutdown = CancellationToken::new();
        let (leader_tx, leader_rx) = watch::channel(None);
        let ctx = Ctx {
            client,
            cfg: Arc::new(cfg),
            shutdown,
            leader_rx,
            prefix,
        };
        let (workers, revision) = watchers::list_workers(&ctx).await?;
        let (workers_tx, workers_rx) = watch::channel(workers.values().cloned().collect());
        leader_tx.send_replace(watchers::current_leader(&ctx).await);
        tokio::spawn(watchers::run_workers_watch(
            ctx.clone(),
            workers,
            revision,
            workers_tx,
        ));
        tokio::spawn(watchers::run_leader_observe(ctx.clone(), leader_tx));
        tracing::info!(endpoints = ?ctx.cfg.endpoints, prefix = %ctx.prefix, "connected to etcd registry");
        Ok(EtcdRegistry { ctx, workers_rx })
    }

    /// Stops every background task of this registry. Leases are not revoked
    /// (they expire after their TTL, as for a crashed process) and every
    /// holder's `lost` becomes `true`.
    pub fn shutdown(&self) {
        self.ctx.shutdown.cancel();
    }

    /// The configuration in use.
    pub fn config(&self) -> &EtcdConfig {
        &self.ctx.cfg
    }
}

impl Drop for EtcdRegistry {
    fn drop(&mut self) {
        self.ctx.shutdown.cancel();
    }
}

async fn list<T: serde::de::DeserializeOwned>(
    ctx: &Ctx,
    prefix: String,
) -> Result<(BTreeMap<Vec<u8>, T>, i64), RegistryError> {
    let mut kv = ctx.client.kv_client();
    let resp = timed(
        "range",
        REQUEST_TIMEOUT,
        kv.get(prefix, Some(GetOptions::new().with_prefix())),
    )
    .await?;
    let revision = resp.header().map_or(0, |h| h.revision());
    let mut out = BTreeMap::new();
    for item in resp.kvs() {
        match serde_json::from_slice(item.value()) {
            Ok(v) => {
                out.insert(item.key().to_vec(), v);
            }
            Err(e) => tracing::warn!(
                key = %String::from_utf8_lossy(item.key()),
                error = %e,
                "ORCA-REGISTRY-CODEC: ignoring undecodable registry value"
            ),
        }
    }
    Ok((out, revision))
}

fn encode<T: serde::Serialize>(key: &str, v: &T) -> Result<Vec<u8>, RegistryError> {
    serde_json::to_vec(v).map_err(|source| RegistryError::Codec {
        key: key.to_string(),
        source,
    })
}

#[async_trait]
impl Registry for EtcdRegistry {
    async fn register_worker(&self, info: WorkerInfo) -> Result<WorkerLease, RegistryError> {
        let key = format!("{}{}", self.ctx.workers_prefix(), info.id);
        let value = encode(&key, &info)?;
        let (lease, updates) = lease::grant(
            &self.ctx,
            format!("worker {}", info.id),
            Some((key.clone(), value)),
        )
        .await?;
        let lost = lease.lost.clone();
        let update = Box::new(move |info: WorkerInfo| match encode(&key, &info) {
            Ok(v) => {
                if let Some(tx) = &updates {
                    tx.send_replace(v);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot encode worker info"),
        });
        let revoke = Box::new(move || lease.revoke());
        Ok(WorkerLease {
            update,
            revoke,
            lost,
        })
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>, RegistryError> {
        let (map, _) = list::<WorkerInfo>(&self.ctx, self.ctx.workers_prefix()).await?;
        Ok(map.into_values().collect())
    }

    fn watch_workers(&self) -> watch::Receiver<Vec<WorkerInfo>> {
        self.workers_rx.clone()
    }

    async fn register_master(&self, info: MasterInfo) -> Result<MasterLease, RegistryError> {
        let key = format!("{}{}", self.ctx.masters_prefix(), info.id);
        let value = encode(&key, &info)?;
        let (lease, _) =
            lease::grant(&self.ctx, format!("master {}", info.id), Some((key, value))).await?;
        let lost = lease.lost.clone();
        Ok(MasterLease {
            revoke: Box::new(move || lease.revoke()),
            lost,
        })
    }

    async fn masters(&self) -> Result<Vec<MasterInfo>, RegistryError> {
        let (map, _) = list::<MasterInfo>(&self.ctx, self.ctx.masters_prefix()).await?;
        Ok(map.into_values().collect())
    }

    async fn campaign(&self, me: MasterInfo) -> Result<Leadership, RegistryError> {
        election::campaign(&self.ctx, me).await
    }

    fn watch_leader(&self) -> watch::Receiver<Option<LeaderInfo>> {
        self.ctx.leader_rx.clone()
    }
}
