//! Report delivery: every task event is written to the on-disk outbox first,
//! then sent to the current leader until acknowledged, then deleted.
//!
//! Each event is delivered by its own task, so a slow or refused event never
//! delays another one. One tonic channel is kept per leader address; when the
//! leader changes, every pending delivery retries at once against the new one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orca_common::registry::LeaderInfo;
use orca_proto::v1::master_service_client::MasterServiceClient;
use orca_proto::v1::{ReportTaskEventRequest, ShipTaskLogRequest, TaskEvent};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

use crate::convert::StoredEvent;
use crate::error::WorkerError;
use crate::layout::{read_json, write_json};

const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_CAP: Duration = Duration::from_secs(2);
const RPC_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest log shipped whole; larger ones keep their head and tail.
const LOG_SHIP_CAP: u64 = 2 * 1024 * 1024;
const PENDING_GAUGE: &str = "orca_worker_reports_pending";

/// The outbox of one worker.
pub(crate) struct Outbox {
    dir: PathBuf,
    leader: watch::Receiver<Option<LeaderInfo>>,
    channels: Mutex<HashMap<String, Channel>>,
    cancel: CancellationToken,
}

impl Outbox {
    pub(crate) fn new(
        dir: PathBuf,
        leader: watch::Receiver<Option<LeaderInfo>>,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Outbox {
            dir,
            leader,
            channels: Mutex::new(HashMap::new()),
            cancel,
        })
    }

    fn path_of(&self, ev: &TaskEvent) -> PathBuf {
        self.dir.join(format!(
            "{}_{}_{}.json",
            ev.task_instance_id, ev.attempt, ev.seq
        ))
    }

    /// Writes an event to the outbox (blocking I/O). `durable` fsyncs it:
    /// used for terminal events, which must survive a machine crash.
    pub(crate) fn store(&self, ev: &TaskEvent, durable: bool) -> Result<PathBuf, WorkerError> {
        let path = self.path_of(ev);
        write_json(&path, &StoredEvent::from(ev), durable)?;
        Ok(path)
    }

    /// Sends a stored event in the background until acknowledged.
    pub(crate) fn deliver(self: &Arc<Self>, ev: TaskEvent, path: PathBuf) {
        metrics::gauge!(PENDING_GAUGE).increment(1.0);
        let me = self.clone();
        tokio::spawn(async move {
            me.deliver_until_acked(ev, path).await;
            metrics::gauge!(PENDING_GAUGE).decrement(1.0);
        });
    }

    /// Re-sends every event left in the outbox (after a restart). Returns how
    /// many were found.
    pub(crate) fn resend_all(self: &Arc<Self>) -> Result<usize, WorkerError> {
        let rd =
            std::fs::read_dir(&self.dir).map_err(|e| WorkerError::io("read dir", &self.dir, e))?;
        let mut found = 0;
        for entry in rd {
            let entry = entry.map_err(|e| WorkerError::io("read dir", &self.dir, e))?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match read_json::<StoredEvent>(&path) {
                Ok(Some(stored)) => {
                    found += 1;
                    self.deliver(stored.into(), path);
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "skipping unreadable outbox file"),
            }
        }
        Ok(found)
    }

    fn channel(&self, addr: &str) -> Result<Channel, WorkerError> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ch) = channels.get(addr) {
            return Ok(ch.clone());
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
        Ok(ch)
    }

    /// Calls `send` against the current leader until it returns true,
    /// re-targeting when the leader changes and backing off between failed
    /// tries. False when the worker shuts down first.
    async fn until_leader_accepts<F, Fut>(&self, what: &str, mut send: F) -> bool
    where
        F: FnMut(MasterServiceClient<Channel>) -> Fut,
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
    /// outbox, fsynced, and marking the attempt reported) runs alongside, so
    /// the report does not wait for the disk. The outbox file is removed
    /// only once both are done. Should the worker die before the event is
    /// on disk, recovery builds it again from the attempt dir (its exit
    /// code or kill record) and sends it again: a leader acknowledges a
    /// duplicate without effect.
    pub(crate) fn deliver_persisting(
        self: &Arc<Self>,
        ev: TaskEvent,
        persist: tokio::task::JoinHandle<Result<PathBuf, WorkerError>>,
    ) {
        metrics::gauge!(PENDING_GAUGE).increment(1.0);
        let me = self.clone();
        tokio::spawn(async move {
            let key = (ev.task_instance_id, ev.attempt);
            let acked = me.send_until_acked(&ev).await;
            match persist.await {
                Ok(Ok(path)) if acked => remove_acked(&path).await,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(
                    tiid = key.0,
                    attempt = key.1,
                    error = %e,
                    "terminal event not persisted (it was sent from memory)"
                ),
                Err(e) => tracing::error!(error = %e, "persisting a terminal event panicked"),
            }
            metrics::gauge!(PENDING_GAUGE).decrement(1.0);
        });
    }

    async fn deliver_until_acked(&self, ev: TaskEvent, path: PathBuf) {
        if self.send_until_acked(&ev).await {
            remove_acked(&path).await;
        }
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
    /// the metadata store) until stored, then marks the attempt dir, so the
    /// log outlives this worker. Runs in the background.
    pub(crate) fn ship_log(self: &Arc<Self>, tiid: i64, attempt: i32, dir: PathBuf) {
        let me = self.clone();
        tokio::spawn(async move {
            let log = dir.join(crate::layout::LOG_FILE);
            let read =
                tokio::task::spawn_blocking(move || crate::log::read_capped(&log, LOG_SHIP_CAP))
                    .await;
            let (data, truncated, original_size) = match read {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => {
                    tracing::warn!(tiid, error = %e, "cannot read the log to ship");
                    return;
                }
                Err(e) => {
                    tracing::warn!(tiid, error = %e, "log reader failed");
                    return;
                }
            };
            let req = ShipTaskLogRequest {
                task_instance_id: tiid,
                attempt,
                data,
                truncated,
                original_size,
            };
            let stored = me
                .until_leader_accepts("ship log", |mut client| {
                    let req = req.clone();
                    async move {
                        client
                            .ship_task_log(req)
                            .await
                            .map(|r| r.into_inner().stored)
                    }
                })
                .await;
            if stored {
                let marker = dir.join(crate::layout::LOG_SHIPPED_FILE);
                if let Err(e) = tokio::fs::write(&marker, b"").await {
                    tracing::warn!(path = %marker.display(), error = %e, "cannot mark the log shipped");
                }
                tracing::debug!(tiid, attempt, "log shipped");
            }
        });
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
