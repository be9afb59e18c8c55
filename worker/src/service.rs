//! gRPC adapter: `orca.v1.WorkerService` over the worker's domain modules.

use std::sync::Arc;

use orca_proto::v1::worker_service_server::WorkerService;
use orca_proto::v1::{
    AttemptInfo, AttemptState, DispatchTaskRequest, DispatchTaskResponse, KillTaskRequest,
    KillTaskResponse, ListAttemptsRequest, ListAttemptsResponse, LogChunk, StreamTaskLogRequest,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::attempts::{AttemptKey, Phase, Reservation};
use crate::layout::{DispatchRecord, KillReason, create_attempt_dir};
use crate::log::stream_log;
use crate::runner;
use crate::worker::Worker;

/// The `WorkerService` implementation.
pub(crate) struct WorkerGrpc {
    pub worker: Arc<Worker>,
}

/// Accepted without effect: the attempt is known already.
fn already_known() -> Response<DispatchTaskResponse> {
    Response::new(DispatchTaskResponse {
        accepted: true,
        reason: "already known".to_string(),
    })
}

fn refuse(reason: String) -> Response<DispatchTaskResponse> {
    Response::new(DispatchTaskResponse {
        accepted: false,
        reason,
    })
}

#[tonic::async_trait]
impl WorkerService for WorkerGrpc {
    async fn dispatch_task(
        &self,
        request: Request<DispatchTaskRequest>,
    ) -> Result<Response<DispatchTaskResponse>, Status> {
        let w = &self.worker;
        let task = request
            .into_inner()
            .task
            .ok_or_else(|| Status::invalid_argument("ORCA-WORKER-BAD-DISPATCH: task is missing"))?;
        if let Err(highest) = w.observe_epoch(task.epoch) {
            tracing::warn!(
                epoch = task.epoch,
                highest,
                tiid = task.task_instance_id,
                "dispatch from a stale master refused"
            );
            return Ok(refuse(format!(
                "ORCA-WORKER-STALE-EPOCH: epoch {} is older than {highest}",
                task.epoch
            )));
        }
        let key = AttemptKey {
            task_instance_id: task.task_instance_id,
            attempt: task.attempt,
        };
        let dir =
            w.layout
                .attempt_dir(task.workflow_instance_id, key.task_instance_id, key.attempt);
        let entry = match w.attempts.reserve(key, &dir, task.epoch, w.config.slots) {
            Reservation::Known => {
                tracing::debug!(
                    tiid = key.task_instance_id,
                    attempt = key.attempt,
                    "duplicate dispatch"
                );
                return Ok(already_known());
            }
            Reservation::Full { running } => {
                return Ok(refuse(format!(
                    "ORCA-WORKER-FULL: {running} of {} slots in use",
                    w.config.slots
                )));
            }
            Reservation::New(entry) => entry,
        };
        let rec = DispatchRecord::from(&task);
        // One blocking job creates the attempt dir and renders the script
        // into it; a script that cannot be prepared still makes an accepted
        // attempt, whose FAILURE event says why.
        let python = if rec.task_type.eq_ignore_ascii_case("PYTHON") {
            w.python().await.to_string()
        } else {
            w.config.python.clone()
        };
        let roots = (w.layout.attempts_dir(), w.layout.tenant_work_dir());
        let created = {
            let (dir, rec) = (dir.clone(), rec.clone());
            crate::blocking::run(move || {
                create_attempt_dir(&dir, &rec, |tmp| {
                    runner::prepare(&rec, &dir, tmp, &roots, &python)
                })
            })
            .await
        };
        let prepared = match created {
            Ok(Ok(Some(prepared))) => prepared,
            Ok(Ok(None)) => {
                // Created by a concurrent dispatch of the same attempt
                // between the reservation and now: nothing to start.
                w.attempts.cancel(&entry);
                return Ok(already_known());
            }
            Ok(Err(e)) => {
                w.attempts.cancel(&entry);
                return Err(e.into());
            }
            Err(e) => {
                w.attempts.cancel(&entry);
                return Err(crate::WorkerError::from(e).into());
            }
        };
        w.publish();
        runner::start_new(w.clone(), entry, rec, prepared);
        Ok(Response::new(DispatchTaskResponse {
            accepted: true,
            reason: String::new(),
        }))
    }

    async fn kill_task(
        &self,
        request: Request<KillTaskRequest>,
    ) -> Result<Response<KillTaskResponse>, Status> {
        let req = request.into_inner();
        if let Err(highest) = self.worker.observe_epoch(req.epoch) {
            return Err(Status::failed_precondition(format!(
                "ORCA-WORKER-STALE-EPOCH: epoch {} is older than {highest}",
                req.epoch
            )));
        }
        let key = AttemptKey {
            task_instance_id: req.task_instance_id,
            attempt: req.attempt,
        };
        let found = self
            .worker
            .attempts
            .get(&key)
            .is_some_and(|e| e.request_kill(KillReason::Killed));
        tracing::info!(
            tiid = key.task_instance_id,
            attempt = key.attempt,
            found,
            "kill requested"
        );
        Ok(Response::new(KillTaskResponse { found }))
    }

    type StreamTaskLogStream = ReceiverStream<Result<LogChunk, Status>>;

    async fn stream_task_log(
        &self,
        request: Request<StreamTaskLogRequest>,
    ) -> Result<Response<Self::StreamTaskLogStream>, Status> {
        let req = request.into_inner();
        let key = AttemptKey {
            task_instance_id: req.task_instance_id,
            attempt: req.attempt,
        };
        let entry = self.worker.attempts.get(&key).ok_or_else(|| {
            Status::not_found(format!(
                "ORCA-WORKER-ATTEMPT-NOT-FOUND: task instance {} attempt {} is not held by this worker",
                key.task_instance_id, key.attempt
            ))
        })?;
        let (tx, rx) = mpsc::channel(4);
        let cancel = self.worker.cancel.clone();
        let job = stream_log(
            entry.log_path(),
            req.offset,
            req.follow,
            entry.watch_phase(),
            tx,
        );
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                () = job => {}
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn list_attempts(
        &self,
        _request: Request<ListAttemptsRequest>,
    ) -> Result<Response<ListAttemptsResponse>, Status> {
        let attempts = self
            .worker
            .attempts
            .all()
            .into_iter()
            .filter(|e| e.listed)
            .map(|e| {
                let state = match e.phase() {
                    Phase::Running => AttemptState::Running,
                    Phase::Finished => AttemptState::Finished,
                };
                AttemptInfo {
                    task_instance_id: e.key.task_instance_id,
                    attempt: e.key.attempt,
                    state: state as i32,
                    pid: e.pid(),
                    epoch: e.epoch,
                }
            })
            .collect();
        Ok(Response::new(ListAttemptsResponse {
            attempts,
            worker_id: self.worker.id.clone(),
        }))
    }
}
