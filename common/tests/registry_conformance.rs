//! One conformance suite for every `Registry` implementation: each case in
//! `cases` runs as `memory::<case>` (MemoryRegistry) and `etcd::<case>`
//! (EtcdRegistry on a real etcd of its own). `etcd_only` holds what only a
//! networked registry can show: fencing by the holder's clock, surviving an
//! etcd restart, and the leases of a dead holder expiring.

use std::sync::Arc;
use std::time::Duration;

use orca_common::registry::etcd::{EtcdConfig, EtcdRegistry};
use orca_common::registry::memory::MemoryRegistry;
use orca_common::registry::{MasterInfo, Registry, WorkerInfo};
use orca_testkit::EtcdServer;
use tokio::sync::watch;
use tokio::time::Instant;

/// Upper bound for anything that should happen "soon".
const SOON: Duration = Duration::from_secs(10);

/// Hands out registry clients that share one registry (one per simulated
/// process for etcd; clones of one in-process registry for memory).
enum Harness {
    Memory(MemoryRegistry),
    Etcd {
        /// Kept alive for the test's duration.
        _server: EtcdServer,
        cfg: EtcdConfig,
    },
}

fn short_config(server: &EtcdServer) -> EtcdConfig {
    EtcdConfig {
        endpoints: server.endpoints(),
        prefix: "/orca-test".into(),
        lease_ttl: Duration::from_secs(3),
        keepalive_interval: Duration::from_millis(500),
        fence_margin: Duration::from_secs(1),
    }
}

impl Harness {
    fn memory() -> Harness {
        Harness::Memory(MemoryRegistry::new())
    }

    async fn etcd() -> Harness {
        let server = EtcdServer::start().await;
        let cfg = short_config(&server);
        Harness::Etcd {
            _server: server,
            cfg,
        }
    }

    async fn client(&self) -> Arc<dyn Registry> {
        match self {
            Harness::Memory(m) => Arc::new(m.clone()),
            Harness::Etcd { cfg, .. } => Arc::new(
                EtcdRegistry::connect(cfg.clone())
                    .await
                    .expect("connect to test etcd"),
            ),
        }
    }
}

fn worker(id: &str, running: u32) -> WorkerInfo {
    WorkerInfo {
        id: id.into(),
        addr: format!("http://{id}:1"),
        group: "default".into(),
        labels: vec!["gpu".into()],
        slots: 4,
        running,
        load: 0.5,
        environments: vec!["py311".into()],
        ..Default::default()
    }
}

fn master(id: &str) -> MasterInfo {
    MasterInfo {
        id: id.into(),
        addr: format!("http://{id}:2"),
    }
}

/// Waits until `pred` holds for the watched value (deadline `SOON`).
async fn wait_watch<T: Clone + std::fmt::Debug>(
    rx: &mut watch::Receiver<T>,
    what: &str,
    pred: impl Fn(&T) -> bool,
) -> T {
    let reached = match tokio::time::timeout(SOON, rx.wait_for(|v| pred(v))).await {
        Ok(Ok(v)) => Some(v.clone()),
        Ok(Err(_)) => panic!("{what}: watch closed"),
        Err(_) => None,
    };
    reached.unwrap_or_else(|| {
        panic!(
            "{what}: not reached within {SOON:?}; last {:?}",
            *rx.borrow()
        )
    })
}

fn ids(ws: &[WorkerInfo]) -> Vec<String> {
    ws.iter().map(|w| w.id.clone()).collect()
}

/// Polls an async condition (registry reads have no change feed) until it
/// holds, failing after `SOON`.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + SOON;
    while !f().await {
        assert!(
            Instant::now() < deadline,
            "{what}: not reached within {SOON:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[path = "registry_conformance/cases.rs"]
mod cases;
#[path = "registry_conformance/etcd_only.rs"]
mod etcd_only;

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::cases::$case(super::Harness::memory()).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::cases::$case(super::Harness::etcd().await).await;
                }
            )*
        }
    };
}

conformance!(
    workers_register_list_update_revoke,
    watch_workers_follows_every_change,
    masters_register_list_revoke,
    exactly_one_leader_among_campaigners,
    resign_hands_over_with_increasing_epochs,
    watch_leader_follows,
);
