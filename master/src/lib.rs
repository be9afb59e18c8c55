//! The Orca master: leader election, the workflow engine, dispatch.
//!
//! Architecture invariant: the master never runs tasks; it talks to workers
//! only through `orca-proto`'s `WorkerService` and never depends on the
//! worker crate.

pub mod dispatch;
pub mod engine;
pub mod error;
pub mod grpc;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use orca_common::registry::{MasterInfo, Registry};
use orca_proto::transport::{LocalRegistration, LocalRoutes, LocalService};
use orca_proto::v1::master_service_server::MasterServiceServer;
use orca_store::Store;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

pub use dispatch::Policy;
pub use engine::EngineHandle;
pub use error::MasterError;
use grpc::{LeaderSlot, MasterGrpc};

#[derive(Debug, Clone)]
pub struct MasterConfig {
    pub id: String,
    pub listen: SocketAddr,
    /// Host workers use to reach this master.
    pub advertise_host: String,
    pub policy: Policy,
    /// Safety-net poll for commands written without a nudge.
    pub poll_interval: Duration,
    /// How long a worker that vanished from the registry may take to come
    /// back before its attempts are failed over.
    pub worker_loss_grace: Duration,
    /// Servers of this process (`orca standalone`): this master serves
    /// workers of the process in-process, and reaches theirs that way.
    pub local: Option<LocalRoutes>,
}

impl Default for MasterConfig {
    fn default() -> Self {
        MasterConfig {
            id: "master-1".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise_host: "127.0.0.1".into(),
            policy: Policy::default(),
            poll_interval: Duration::from_secs(1),
            worker_loss_grace: Duration::from_secs(5),
            local: None,
        }
    }
}

/// A running master.
pub struct MasterHandle {
    addr: SocketAddr,
    advertised: String,
    is_leader: Arc<AtomicBool>,
    leader: LeaderSlot,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Serves this process's workers in-process (standalone).
    local: Option<LocalRegistration>,
}

impl MasterHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The gRPC URL workers use to reach this master.
    pub fn advertised(&self) -> &str {
        &self.advertised
    }

    /// True while this master leads (for health endpoints).
    pub fn leader_flag(&self) -> Arc<AtomicBool> {
        self.is_leader.clone()
    }

    /// Wakes the engine to consume new commands (no-op on a standby).
    pub fn nudge(&self) {
        grpc::nudge_leader(&self.leader);
    }

    /// A cloneable nudger for the API server.
    pub fn nudger(&self) -> Arc<dyn Fn() + Send + Sync> {
        let leader = self.leader.clone();
        Arc::new(move || {
            grpc::nudge_leader(&leader);
        })
    }

    pub fn is_leader(&self) -> bool {
        self.leader.read().map(|s| s.is_some()).unwrap_or(false)
    }

    /// Stops serving; a leader resigns so a standby takes over at once
    /// instead of after the lease TTL.
    pub async fn shutdown(mut self) {
        // In-process callers now fail as network ones will.
        drop(self.local.take());
        let _ = self.shutdown.send(true);
        for mut t in self.tasks {
            if tokio::time::timeout(Duration::from_secs(5), &mut t)
                .await
                .is_err()
            {
                t.abort();
                let _ = t.await;
            }
        }
    }
}

/// Starts the gRPC service and campaigns for leadership in the background.
pub async fn start(
    config: MasterConfig,
    store: Store,
    registry: Arc<dyn Registry>,
) -> Result<MasterHandle, MasterError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| MasterError::Bind {
            addr: config.listen.to_string(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| MasterError::Bind {
        addr: config.listen.to_string(),
        source,
    })?;
    let advertised = format!("http://{}:{}", config.advertise_host, addr.port());
    let leader: LeaderSlot = Arc::new(RwLock::new(None));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let svc = MasterServiceServer::new(MasterGrpc {
        leader: leader.clone(),
        store: store.clone(),
    })
    .max_decoding_message_size(8 * 1024 * 1024);
    let local = config
        .local
        .as_ref()
        .map(|routes| routes.register(&advertised, LocalService::new(svc.clone())));
    // gRPC health: the master service is SERVING only on the leader, so
    // load balancers and probes can tell the leader from standbys.
    let (health, health_svc) = tonic_health::server::health_reporter();
    health
        .set_not_serving::<MasterServiceServer<MasterGrpc>>()
        .await;
    let mut rx = shutdown_rx.clone();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = tokio::spawn(async move {
        let res = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(health_svc)
            .add_service(svc)
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = res {
            error!(error = %e, "master gRPC server failed");
        }
    });
    info!(%addr, id = %config.id, "master listening");

    let is_leader = Arc::new(AtomicBool::new(false));
    // In the registry view (leader and standbys alike).
    let registration = registry
        .register_master(MasterInfo {
            id: config.id.clone(),
            addr: advertised.clone(),
        })
        .await?;
    let leader_loop = tokio::spawn(
        LeaderLoop {
            config,
            advertised: advertised.clone(),
            is_leader: is_leader.clone(),
            store,
            registry,
            slot: leader.clone(),
            health,
            registration,
        }
        .run(shutdown_rx),
    );
    Ok(MasterHandle {
        addr,
        advertised,
        is_leader,
        leader,
        shutdown: shutdown_tx,
        tasks: vec![server, leader_loop],
        local,
    })
}

/// Campaigns, leads until deposed, campaigns again — until shutdown.
struct LeaderLoop {
    config: MasterConfig,
    advertised: String,
    is_leader: Arc<AtomicBool>,
    store: Store,
    registry: Arc<dyn Registry>,
    slot: LeaderSlot,
    health: tonic_health::server::HealthReporter,
    registration: orca_common::registry::MasterLease,
}

impl LeaderLoop {
    async fn run(self, mut shutdown: watch::Receiver<bool>) {
        self.campaign_until(&mut shutdown).await;
        self.registration.revoke();
    }

    async fn campaign_until(&self, shutdown: &mut watch::Receiver<bool>) {
        let LeaderLoop {
            config,
            advertised,
            is_leader,
            store,
            registry,
            slot,
            health,
            ..
        } = self;
        let me = MasterInfo {
            id: config.id.clone(),
            addr: advertised.clone(),
        };
        loop {
            let leadership = tokio::select! {
                l = registry.campaign(me.clone()) => l,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            let leadership = match leadership {
                Ok(l) => l,
                Err(e) => {
                    warn!(error = %e, "campaign failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if *leadership.lost.borrow() {
                // Lost again before acting (e.g. frozen right after winning).
                leadership.resign();
                continue;
            }
            let epoch = match store.claim_epoch(leadership.epoch, &config.id).await {
                Ok(token) => token,
                Err(e) => {
                    warn!(revision = leadership.epoch, error = %e, "cannot claim the leadership in the store; resigning");
                    leadership.resign();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            info!(epoch, id = %config.id, "became leader");
            let (tx, rx) = mpsc::unbounded_channel();
            if let Ok(mut s) = slot.write() {
                *s = Some(EngineHandle::new(tx.clone()));
            }
            health
                .set_serving::<MasterServiceServer<MasterGrpc>>()
                .await;
            is_leader.store(true, Ordering::Relaxed);
            let result = tokio::select! {
                r = engine::run(
                    engine::EngineSetup {
                        store: store.clone(),
                        epoch,
                        master_addr: advertised.clone(),
                        registry: registry.clone(),
                        policy: config.policy,
                        poll_interval: config.poll_interval,
                        worker_loss_grace: config.worker_loss_grace,
                        local: config.local.clone(),
                    },
                    leadership.lost.clone(),
                    tx,
                    rx,
                ) => r,
                _ = shutdown.wait_for(|s| *s) => Ok(()),
            };
            if let Ok(mut s) = slot.write() {
                *s = None;
            }
            is_leader.store(false, Ordering::Relaxed);
            health
                .set_not_serving::<MasterServiceServer<MasterGrpc>>()
                .await;
            leadership.resign();
            match result {
                Ok(()) if *shutdown.borrow() => return,
                Ok(()) => info!(epoch, "stepped down"),
                Err(e) => error!(epoch, error = %e, "engine stopped; stepping down"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
