//! Report delivery: every task event is sent to the current leader until
//! acknowledged (or the worker stops), and task logs are shipped to it.
//!
//! RUNNING events are delivered from memory: after a restart, recovery sends
//! one again for every attempt it adopts (a leader ignores an event whose
//! seq it has seen). Terminal events are stored durably in their attempt
//! dir ([`crate::terminal`]) and that file is renamed once acknowledged and
//! once the log is shipped. Files left in `<data>/outbox/` by a worker
//! version that stored every event there are sent once more at start and
//! deleted when acknowledged.
//!
//! Each event is delivered by its own task, so a slow or refused event never
//! delays another one. One tonic channel is kept per leader address; when the
//! leader changes, every pending delivery retries at once against the new one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orca_common::registry::LeaderInfo;
use orca_proto::transport::{LocalRoutes, Transport};
use orca_proto::v1::master_service_client::MasterServiceClient;
use orca_proto::v1::{ReportTaskEventRequest, ShipTaskLogRequest, ShipTaskLogsRequest, TaskEvent};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

use crate::attempts::AttemptEntry;
use crate::convert::StoredEvent;
use crate::error::WorkerError;
use crate::layout::read_json;
use crate::terminal::{Mark, mark_all_async, mark_async};

const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_CAP: Duration = Duration::from_secs(2);
const RPC_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest log shipped whole; larger ones keep their head and tail.
const LOG_SHIP_CAP: u64 = 2 * 1024 * 1024;
const PENDING_GAUGE: &str = "orca_worker_reports_pending";
/// How long a finished attempt's log waits for others to ship with it.
const SHIP_DELAY: Duration = Duration::from_millis(50);
/// Most logs in one `ShipTaskLogs` call, and their most bytes together
/// (the leader takes messages of up to 8 MiB).
const SHIP_BATCH: usize = 64;
const SHIP_BATCH_BYTES: u64 = 4 * 1024 * 1024;

/// Logs waiting to be shipped.
#[derive(Default)]
struct Shipping {
    queue: Vec<Arc<AttemptEntry>>,
    /// A shipper task runs (it ends when the queue is empty).
    running: bool,
}

/// Delivery of one worker's reports.
pub(crate) struct Outbox {
    /// The outbox dir of earlier worker versions (read at start only).
    legacy_dir: PathBuf,
    leader: watch::Receiver<Option<LeaderInfo>>,
    channels: Mutex<HashMap<String, Channel>>,
    /// A leader of this process is called in-process.
    local: Option<LocalRoutes>,
    cancel: CancellationToken,
    /// Reports being delivered (and the log shipper, while it runs).
    pending: watch::Sender<usize>,
    shipping: Mutex<Shipping>,
    ship_now: tokio::sync::Notify,
}

impl Outbox {
    pub(crate) fn new(
        legacy_dir: PathBuf,
        leader: watch::Receiver<Option<LeaderInfo>>,
        cancel: CancellationToken,
        local: Option<LocalRoutes>,
    ) -> Arc<Self> {
        Arc::new(Outbox {
            local,
            legacy_dir,
            leader,
            channels: Mutex::new(HashMap::new()),
            cancel,
            pending: watch::channel(0).0,
            shipping: Mutex::new(Shipping::default()),
            ship_now: tokio::sync::Notify::new(),
        })
    }

    /// Runs `job` (a delivery) in the background, counted as pending.
    fn spawn_counted(
        self: &Arc<Self>,
        job: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        metrics::gauge!(PENDING_GAUGE).increment(1.0);
        self.pending.send_modify(|n| *n += 1);
        let me = self.clone();
        tokio::spawn(async move {
            job.await;
            metrics::gauge!(PENDING_GAUGE).decrement(1.0);
            me.pending.send_modify(|n| *n -= 1);
        });
    }

    /// Waits until no report is being delivered, or `deadline`; false when
    /// some are still pending then.
    pub(crate) async fn drained(&self, deadline: tokio::time::Instant) -> bool {
        let mut rx = self.pending.subscribe();
        tokio::time::timeout_at(deadline, rx.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Sends an event kept in memory only (RUNNING) in the background until
    /// acknowledged or the worker stops.
    pub(crate) fn deliver(self: &Arc<Self>, ev: TaskEvent) {
        let me = self.clone();
        self.spawn_counted(async move {
            me.send_until_acked(&ev).await;
        });
    }

    /// Sends a terminal event already stored in its attempt dir (found there
    /// at start) until acknowledged, then marks its file acknowledged.
    pub(crate) fn deliver_stored(self: &Arc<Self>, entry: Arc<AttemptEntry>, ev: TaskEvent) {
        let me = self.clone();
        self.spawn_counted(async move {
            if me.send_until_acked(&ev).await {
                mark_async(entry, Mark::Acked).await;
            }
        });
    }

    /// Re-sends every event left in the legacy outbox dir (written by an
    /// earlier worker version), deleting each once acknowledged. Returns how
    /// many were found (0 when the dir does not exist).
    pub(crate) fn resend_legacy(self: &Arc<Self>) -> Result<usize, WorkerError> {
        let dir = &self.legacy_dir;
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(WorkerError::io("read dir", dir, e)),
        };
        let mut found = 0;
        for entry in rd {
            let entry = entry.map_err(|e| WorkerError::io("read dir", dir, e))?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match read_json::<StoredEvent>(&path) {
                Ok(Some(stored)) => {
                    found += 1;
                    let (me, ev) = (self.clone(), TaskEvent::from(stored));
                    self.spawn_counted(async move {
                        if me.send_until_acked(&ev).await {
                            remove_acked(&path).await;
                        }
                    });
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "skipping unreadable outbox file"),
            }
        }
        if found == 0 {
            // Emptied by an earlier start: it goes (fails harmlessly if not empty).
            let _ = std::fs::remove_dir(dir);
        }
        Ok(found)
    }

    fn channel(&self, addr: &str) -> Result<Transport, WorkerError> {
        if let Some(service) = self.local.as_ref().and_then(|l| l.get(addr)) {
            return Ok(Transport::Local(service));
        }
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ch) = channels.get(addr) {
            return Ok(Transport::Remote(ch.clone()));
        }
        let ch = Endpoint::from_shared(addr.to_string())
            .map_err(|source| WorkerError::BadMasterAddr {
                addr: addr.to_string(),
                source,
            })?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(addr.to_string(), ch.clone());
        Ok(Transport::Remote(ch))
    }

    /// Calls `send` against the current leader until it returns true,
    /// re-targeting when the leader changes and backing off between failed
    /// tries. False when the worker shuts down first.
    async fn until_leader_accepts<F, Fut>(&self, what: &str, mut send: F) -> bool
    where
        F: FnMut(MasterServiceClient<Transport>) -> Fut,
        Fut: std::future::Future<Output = Result<bool, tonic::Status>>,
    {
        let mut leader = self.leader.clone();
        let mut leader_open = true;
        let mut backoff = BACKOFF_START;
        loop {
            let target = leader
                .borrow_and_update()
                .as_ref()
                .map(|l| l.master.addr.clone());
            if let Some(addr) = &target {
                let accepted = match self.channel(addr) {
                    Ok(ch) => {
                        let call =
                            tokio::time::timeout(RPC_TIMEOUT, send(MasterServiceClient::new(ch)));
                        tokio::select! {
                            _ = self.cancel.cancelled() => return false,
                            r = call => match r {
                                Ok(Ok(ok)) => ok,
                                Ok(Err(status)) => {
                                    tracing::debug!(%addr, what, code = ?status.code(), message = status.message(), "call to the leader failed");
                                    false
                                }
                                Err(_) => {
                                    tracing::debug!(%addr, what, "call to the leader timed out");
                                    false
                                }
                            },
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, what, "cannot reach the leader");
                        false
                    }
                };
                if accepted {
                    return true;
                }
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return false,
                changed = leader.changed(), if leader_open => {
                    match changed {
                        // New leader: try it right away.
                        Ok(()) => { backoff = BACKOFF_START; continue; }
                        Err(_) => leader_open = false,
                    }
                }
                _ = tokio::time::sleep(backoff), if target.is_some() || !leader_open => {}
            }
            backoff = (backoff * 2).min(BACKOFF_CAP);
        }
    }

    /// Sends a terminal event at once while `persist` (storing it in the
    /// attempt dir, fsynced: [`crate::terminal::store`]) runs alongside, so
    /// the report does not wait for the disk. The file is marked
    /// acknowledged only once both are done. Should the worker die before
    /// the event is on disk, recovery builds it again from the attempt dir
    /// (its exit code or kill record) and sends it again: a leader
    /// acknowledges a duplicate without effect.
    pub(crate) fn deliver_persisting(
        self: &Arc<Self>,
        entry: Arc<AttemptEntry>,
        ev: TaskEvent,
        persist: tokio::task::JoinHandle<Result<PathBuf, WorkerError>>,
    ) {
        let me = self.clone();
        self.spawn_counted(async move {
            let key = (ev.task_instance_id, ev.attempt);
            let acked = me.send_until_acked(&ev).await;
            match persist.await {
                Ok(Ok(_)) if acked => mark_async(entry, Mark::Acked).await,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(
                    tiid = key.0,
                    attempt = key.1,
                    error = %e,
                    "terminal event not persisted (it was sent from memory)"
                ),
                Err(e) => tracing::error!(error = %e, "persisting a terminal event panicked"),
            }
        });
    }

    /// Sends `ev` to the current leader until acknowledged; `false` when the
    /// worker stops first.
    async fn send_until_acked(&self, ev: &TaskEvent) -> bool {
        let acked = self
            .until_leader_accepts("report", |mut client| {
                let req = ReportTaskEventRequest {
                    event: Some(ev.clone()),
                };
                async move {
                    client
                        .report_task_event(req)
                        .await
                        .map(|r| r.into_inner().acknowledged)
                }
            })
            .await;
        if acked {
            tracing::debug!(
                tiid = ev.task_instance_id,
                attempt = ev.attempt,
                seq = ev.seq,
                "report acknowledged"
            );
        }
        acked
    }

    /// Ships the log of a finished attempt to the leader (which keeps it in
    /// its log store) until stored, then marks the terminal record shipped,
    /// so the log outlives this worker. Logs go in batches: a log waits up
    /// to [`SHIP_DELAY`] for others to finish, so that a burst of short
    /// tasks costs the leader one write, not one per task, and shipping
    /// does not compete with the leader's next commit. Until then the API
    /// reads the log from this worker. Runs in the background.
    pub(crate) fn ship_log(self: &Arc<Self>, entry: Arc<AttemptEntry>) {
        let start = {
            let mut s = self.shipping();
            s.queue.push(entry);
            !std::mem::replace(&mut s.running, true)
        };
        if start {
            let me = self.clone();
            self.spawn_counted(me.ship_queued());
        }
    }

    /// Ships the queued logs now rather than after [`SHIP_DELAY`] (at
    /// shutdown, before waiting for [`Outbox::drained`]).
    pub(crate) fn ship_now(&self) {
        self.ship_now.notify_one();
    }

    /// The shipper: runs while logs are queued.
    async fn ship_queued(self: Arc<Self>) {
        loop {
            let full = self.shipping().queue.len() >= SHIP_BATCH;
            if !full {
                tokio::select! {
                    _ = self.cancel.cancelled() => {
                        // Shipped again after the next start.
                        self.shipping().running = false;
                        return;
                    }
                    _ = tokio::time::sleep(SHIP_DELAY) => {}
                    _ = self.ship_now.notified() => {}
                }
            }
            let batch: Vec<Arc<AttemptEntry>> = {
                let mut s = self.shipping();
                if s.queue.is_empty() {
                    s.running = false;
                    return;
                }
                let n = s.queue.len().min(SHIP_BATCH);
                s.queue.drain(..n).collect()
            };
            if !self.ship_batch(batch).await {
                self.shipping().running = false;
                return;
            }
        }
    }

    fn shipping(&self) -> std::sync::MutexGuard<'_, Shipping> {
        self.shipping.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ships `batch` in as few calls as its size allows; false when the
    /// worker stops first.
    async fn ship_batch(&self, batch: Vec<Arc<AttemptEntry>>) -> bool {
        let paths: Vec<PathBuf> = batch.iter().map(|e| e.log_path()).collect();
        let read = tokio::task::spawn_blocking(move || {
            paths
                .iter()
                .map(|p| crate::log::read_capped(p, LOG_SHIP_CAP))
                .collect::<Vec<_>>()
        })
        .await;
        let read = match read {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "log reader failed");
                return true;
            }
        };
        // Calls of at most SHIP_BATCH_BYTES (or one log, capped itself).
        let mut calls: Vec<Vec<(Arc<AttemptEntry>, ShipTaskLogRequest)>> = vec![Vec::new()];
        let mut bytes = 0u64;
        for (entry, r) in batch.into_iter().zip(read) {
            let (data, truncated, original_size) = match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(
                        tiid = entry.key.task_instance_id,
                        error = %e,
                        "cannot read the log to ship"
                    );
                    continue;
                }
            };
            let len = data.len() as u64;
            if bytes + len > SHIP_BATCH_BYTES && calls.last().is_some_and(|c| !c.is_empty()) {
                calls.push(Vec::new());
                bytes = 0;
            }
            bytes += len;
            let req = ShipTaskLogRequest {
                task_instance_id: entry.key.task_instance_id,
                attempt: entry.key.attempt,
                data,
                truncated,
                original_size,
            };
            if let Some(call) = calls.last_mut() {
                call.push((entry, req));
            }
        }
        for call in calls.into_iter().filter(|c| !c.is_empty()) {
            let req = ShipTaskLogsRequest {
                logs: call.iter().map(|(_, r)| r.clone()).collect(),
            };
            let stored = self
                .until_leader_accepts("ship logs", |client| ship_logs(client, req.clone()))
                .await;
            if !stored {
                return false;
            }
            let entries: Vec<Arc<AttemptEntry>> = call.into_iter().map(|(e, _)| e).collect();
            tracing::debug!(logs = entries.len(), "logs shipped");
            mark_all_async(entries, Mark::Shipped).await;
        }
        true
    }
}

/// One `ShipTaskLogs` call; a leader of an earlier version, which does not
/// know it, gets the logs one `ShipTaskLog` call at a time.
async fn ship_logs(
    mut client: MasterServiceClient<Transport>,
    req: ShipTaskLogsRequest,
) -> Result<bool, tonic::Status> {
    match client.ship_task_logs(req.clone()).await {
        Ok(r) => Ok(r.into_inner().stored),
        Err(s) if s.code() == tonic::Code::Unimplemented => {
            for log in req.logs {
                if !client.ship_task_log(log).await?.into_inner().stored {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Err(s) => Err(s),
    }
}

async fn remove_acked(path: &Path) {
    match tokio::fs::remove_file(path).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot delete acknowledged report")
        }
    }
}
