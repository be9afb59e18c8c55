//! Orca worker: runs the task attempts a master dispatches and reports
//! their progress back to the current leader.
//!
//! Entry point: [`start`] with a [`WorkerConfig`] and a registry; it returns
//! a [`WorkerHandle`]. Code map:
//! - `service` — the `WorkerService` gRPC adapter (dispatch, kill, logs, list);
//! - `runner` — render, spawn (own process group, output to `task.log`),
//!   supervise (exit, timeout, kill) and report one attempt;
//! - `outbox` — per-event delivery to the leader, log shipping;
//! - `terminal` — the terminal event stored in the attempt dir, its state
//!   (acknowledged, log shipped) kept in its file name;
//! - `recovery` — start-up scan: adopt running tasks, report ended ones;
//! - `attempts` — the in-memory attempt table (slots, idempotency);
//! - `layout` — the data dir and the records kept there;
//! - `process`, `log`, `events`, `convert`, `worker` — helpers.
//!
//! Architecture invariant: the task process never depends on the worker
//! process. Its output goes to a file, its exit code is written by a wrapper
//! shell, and everything the worker must remember is in the attempt dir, so
//! a worker can crash or restart while tasks run and pick them up again.

#![warn(missing_docs)]

mod attempts;
mod blocking;
mod convert;
mod error;
mod events;
mod layout;
mod log;
mod outbox;
mod process;
mod pyfork;
mod recovery;
mod retention;
mod runner;
mod service;
mod tenant;
mod terminal;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use orca_common::registry::Registry;
use orca_proto::transport::{LocalRegistration, LocalRoutes, LocalService};
use orca_proto::v1::worker_service_server::WorkerServiceServer;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;

pub use error::WorkerError;

use crate::attempts::Phase;
use crate::layout::{KillReason, Layout, write_atomic};
use crate::outbox::Outbox;
use crate::worker::Worker;

/// How often the advertised load figures are refreshed in the registry.
const LOAD_REFRESH: Duration = Duration::from_secs(5);

/// How long `shutdown(true)` waits beyond the kill grace for tasks to end.
const SHUTDOWN_SLACK: Duration = Duration::from_secs(5);

/// Default of [`WorkerConfig::running_delay`].
pub const DEFAULT_RUNNING_DELAY: Duration = Duration::from_millis(20);

/// Configuration of one worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Worker id; `None` loads it from `data_dir/worker-id`, or generates and
    /// persists one.
    pub id: Option<String>,
    /// Attempt dirs and the worker id live here.
    pub data_dir: PathBuf,
    /// gRPC listen address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Host masters use to reach this worker (`http://host:port`).
    pub advertise_host: String,
    /// Worker group.
    pub group: String,
    /// Labels for dispatch routing.
    pub labels: Vec<String>,
    /// How many attempts may run at once.
    pub slots: u32,
    /// Interpreter of PYTHON tasks.
    pub python: String,
    /// Fork PYTHON tasks from a warm interpreter (see `pyfork`) instead
    /// of starting one per task.
    pub python_fork: bool,
    /// Modules the fork server imports once, so forked tasks find them
    /// loaded (e.g. `numpy`, `pandas`).
    pub python_preload: Vec<String>,
    /// Time between SIGTERM and SIGKILL when a task is killed.
    pub kill_grace: Duration,
    /// A task's RUNNING event is sent once it has run this long; one that
    /// ends sooner reports only its end, which carries its start time: one
    /// report and one master commit instead of two for short tasks, and
    /// nothing lost (the master records the start from the end event).
    /// Zero sends RUNNING at once.
    pub running_delay: Duration,
    /// Dead-man switch (cluster mode): the worker touches a heartbeat file
    /// while its registry lease is valid, and every task kills its own
    /// process group once the heartbeat is older than this. A worker that
    /// dies (SIGKILL, host freeze) thus takes its tasks with it before its
    /// lease expires and the master fails them over, so two attempts of a
    /// task never run at once. Set it to at most `lease_ttl - fence_margin`.
    /// `None` (standalone: no lease can expire) lets tasks outlive the worker.
    pub deadman: Option<Duration>,
    /// Finished attempts whose report is acknowledged and whose log is
    /// shipped are deleted (dir, tenant work dir, in-memory entry) this
    /// long after both were done; `None` keeps them forever.
    pub attempt_retention: Option<Duration>,
    /// Servers of this process (`orca standalone`): this worker serves a
    /// master of the process in-process, and reports to it that way.
    pub local: Option<LocalRoutes>,
}

impl WorkerConfig {
    /// Defaults: listen on 127.0.0.1 with a free port, advertise 127.0.0.1,
    /// group "default", one slot per CPU, `python3`, 5 s kill grace.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        WorkerConfig {
            id: None,
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise_host: "127.0.0.1".to_string(),
            group: orca_common::model::default_worker_group(),
            labels: Vec::new(),
            slots: std::thread::available_parallelism()
                .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
                .unwrap_or(1),
            python: "python3".to_string(),
            python_fork: true,
            python_preload: Vec::new(),
            kill_grace: Duration::from_secs(5),
            running_delay: DEFAULT_RUNNING_DELAY,
            deadman: None,
            attempt_retention: Some(Duration::from_secs(24 * 3600)),
            local: None,
        }
    }
}

/// A running worker.
pub struct WorkerHandle {
    worker: Arc<Worker>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    local: Option<LocalRegistration>,
}

impl WorkerHandle {
    /// The bound gRPC address.
    pub fn addr(&self) -> SocketAddr {
        self.worker.addr
    }

    /// The worker id.
    pub fn id(&self) -> &str {
        &self.worker.id
    }

    /// The advertised gRPC URL (`http://advertise_host:port`).
    pub fn url(&self) -> String {
        self.worker.info().addr
    }

    /// Delivers what is queued (reports, finished tasks' logs) now and
    /// waits until it is acknowledged, or `timeout`; false when some is
    /// still pending then. A process that stops its leader together with
    /// this worker (standalone) calls it first, so that the last logs are
    /// not left waiting for a leader that is gone.
    pub async fn flush(&self, timeout: std::time::Duration) -> bool {
        let w = &self.worker;
        w.outbox.ship_now();
        w.outbox
            .drained(tokio::time::Instant::now() + timeout)
            .await
    }

    /// Stops the worker. With `kill_tasks`, every running task's process
    /// group is killed (their terminal events stay stored in their attempt
    /// dirs if not yet delivered) and the registry lease is revoked. Without, tasks keep
    /// running and the lease is left to expire: a worker started later on
    /// the same data dir adopts them.
    pub async fn shutdown(mut self, kill_tasks: bool) {
        // In-process callers now fail as network ones will.
        drop(self.local.take());
        let w = &self.worker;
        if kill_tasks {
            let running = w.attempts.running();
            w.kill_all(KillReason::Shutdown);
            let deadline = tokio::time::Instant::now() + w.config.kill_grace + SHUTDOWN_SLACK;
            for entry in running {
                let mut phase = entry.watch_phase();
                let ended =
                    tokio::time::timeout_at(deadline, phase.wait_for(|p| *p == Phase::Finished));
                if ended.await.is_err() {
                    tracing::warn!(
                        tiid = entry.key.task_instance_id,
                        "task still running at shutdown"
                    );
                }
            }
            // Their LOST reports reach the leader now, so it fails them
            // over at once; what is not acknowledged by the deadline stays
            // on disk for the next start. Their logs go too.
            w.outbox.ship_now();
            if !w.outbox.drained(deadline).await {
                tracing::warn!(
                    "reports still unacknowledged at shutdown; sent again on the next start"
                );
            }
        }
        // Stop the lease watcher first: revoking is not a lost lease.
        w.cancel.cancel();
        if kill_tasks && let Some(lease) = w.lease() {
            lease.revoke();
        }
        let mut server = self.server;
        match tokio::time::timeout(SHUTDOWN_SLACK, &mut server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "worker gRPC server ended with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "worker gRPC server task failed"),
            Err(_) => {
                tracing::warn!("worker gRPC server did not stop in time; aborting it");
                server.abort();
            }
        }
        tracing::info!(worker = %w.id, kill_tasks, "worker stopped");
    }
}

/// Starts a worker: binds the gRPC server, recovers attempts from the data
/// dir (adopting tasks still running), registers in `registry`, and starts
/// delivering the reports recovery found unacknowledged.
pub async fn start(
    config: WorkerConfig,
    registry: Arc<dyn Registry>,
) -> Result<WorkerHandle, WorkerError> {
    describe_metrics();
    // Absolute, so that `system.task.execute.path` means the same to a task
    // whatever its working directory.
    let mut config = config;
    config.data_dir = std::path::absolute(&config.data_dir)
        .map_err(|e| WorkerError::io("resolve data dir", &config.data_dir, e))?;
    let layout = Layout::new(config.data_dir.clone());
    let id = {
        let (layout, id) = (layout.clone(), config.id.clone());
        tokio::task::spawn_blocking(move || -> Result<String, WorkerError> {
            layout.create()?;
            match id {
                Some(id) => Ok(id),
                None => load_or_create_id(&layout),
            }
        })
        .await??
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| WorkerError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| WorkerError::Bind {
        addr: config.listen,
        source,
    })?;
    let cancel = CancellationToken::new();
    let leader = registry.watch_leader();
    let outbox = Outbox::new(
        layout.legacy_outbox_dir(),
        leader.clone(),
        cancel.clone(),
        config.local.clone(),
    );
    let max_epoch = worker::load_epoch(&layout);
    let worker = Arc::new(Worker::new(
        id,
        config,
        addr,
        outbox,
        cancel.clone(),
        max_epoch,
    ));

    let recovery = {
        let w = worker.clone();
        tokio::task::spawn_blocking(move || recovery::scan(&w)).await??
    };

    let server = tokio::spawn(serve(worker.clone(), listener));
    // Before the registry knows this worker: a master of this process
    // dispatches to it in-process from the first task on.
    let local = worker.config.local.as_ref().map(|routes| {
        let svc = WorkerServiceServer::new(service::WorkerGrpc {
            worker: worker.clone(),
        });
        routes.register(&worker.info().addr, LocalService::new(svc))
    });

    let lease = match registry.register_worker(worker.info()).await {
        Ok(lease) => lease,
        Err(e) => {
            cancel.cancel();
            return Err(e.into());
        }
    };
    let lost: watch::Receiver<bool> = lease.lost.clone();
    worker.set_lease(lease);
    worker.publish();
    tokio::spawn(worker::watch_lease(worker.clone(), registry.clone(), lost));
    if let Some(window) = worker.config.deadman {
        tokio::spawn(worker::heartbeat(worker.clone(), window));
    }
    if let Some(retention) = worker.config.attempt_retention.filter(|r| !r.is_zero()) {
        tokio::spawn(retention::run(worker.clone(), retention));
    }
    tokio::spawn(worker::watch_leader_epoch(worker.clone(), leader));
    tokio::spawn(worker::refresh_load(worker.clone(), LOAD_REFRESH));

    let resent_legacy = {
        let w = worker.clone();
        match tokio::task::spawn_blocking(move || w.outbox.resend_legacy()).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                cancel.cancel();
                return Err(e);
            }
            Err(e) => {
                cancel.cancel();
                return Err(e.into());
            }
        }
    };
    let resent = recovery.to_send.len();
    for (entry, ev) in recovery.to_send {
        worker.outbox.deliver_stored(entry, ev);
    }
    for entry in recovery.to_ship {
        worker.outbox.ship_log(entry);
    }
    let adopted = recovery.adopted.len();
    for a in recovery.adopted {
        // Its RUNNING event was not stored: sent again (a leader that saw
        // it ignores the duplicate).
        let running = events::running_again(&worker.id, a.entry.key, &a.pid, &a.entry.log_path());
        worker.outbox.deliver(running);
        runner::start_adopted(worker.clone(), a.entry, a.pid, a.timeout_ms);
    }
    tracing::info!(
        worker = %worker.id, %addr, adopted, ended_while_away = recovery.reported_now,
        known = recovery.known, resent, resent_legacy, "worker started"
    );
    Ok(WorkerHandle {
        worker,
        server,
        local,
    })
}

async fn serve(
    worker: Arc<Worker>,
    listener: tokio::net::TcpListener,
) -> Result<(), tonic::transport::Error> {
    let cancel = worker.cancel.clone();
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        if let Ok(stream) = &conn
            && let Err(e) = stream.set_nodelay(true)
        {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        conn
    });
    // gRPC health: the worker serves as long as its server runs.
    let (health, health_svc) = tonic_health::server::health_reporter();
    health
        .set_serving::<WorkerServiceServer<service::WorkerGrpc>>()
        .await;
    tonic::transport::Server::builder()
        .add_service(health_svc)
        .add_service(WorkerServiceServer::new(service::WorkerGrpc { worker }))
        .serve_with_incoming_shutdown(incoming, cancel.cancelled_owned())
        .await
}

fn describe_metrics() {
    metrics::describe_gauge!(
        "orca_worker_tasks_running",
        "Task attempts running on this worker"
    );
    metrics::describe_counter!(
        "orca_worker_tasks_started_total",
        "Task processes started by this worker"
    );
    metrics::describe_gauge!(
        "orca_worker_reports_pending",
        "Task events being delivered and not yet acknowledged by the leader"
    );
}

fn load_or_create_id(layout: &Layout) -> Result<String, WorkerError> {
    let path = layout.id_file();
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(WorkerError::io("read", &path, e)),
    }
    let id = format!("worker-{}", uuid::Uuid::new_v4().simple());
    write_atomic(&path, id.as_bytes(), true)?;
    Ok(id)
}
