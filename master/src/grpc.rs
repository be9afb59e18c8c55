//! `MasterService` gRPC adapter: thin layer over the engine.

use std::sync::{Arc, RwLock};

use orca_proto::v1::master_service_server::MasterService;
use orca_proto::v1::{
    NudgeRequest, NudgeResponse, ReportTaskEventRequest, ReportTaskEventResponse,
    ShipTaskLogRequest, ShipTaskLogResponse, ShipTaskLogsRequest, ShipTaskLogsResponse,
};
use tonic::{Request, Response, Status};

use crate::engine::EngineHandle;

/// The engine of this master while it leads; `None` on a standby.
pub type LeaderSlot = Arc<RwLock<Option<EngineHandle>>>;

/// Wakes the engine if this master leads (no-op on a standby).
pub(crate) fn nudge_leader(slot: &LeaderSlot) {
    if let Ok(slot) = slot.read()
        && let Some(engine) = slot.as_ref()
    {
        engine.nudge();
    }
}

pub struct MasterGrpc {
    pub leader: LeaderSlot,
    /// For logs shipped by workers (not fenced: immutable per attempt); its
    /// log store (`[log_store]`: db, dir or s3) decides where the bytes go.
    pub store: orca_store::Store,
}

#[tonic::async_trait]
impl MasterService for MasterGrpc {
    async fn report_task_event(
        &self,
        request: Request<ReportTaskEventRequest>,
    ) -> Result<Response<ReportTaskEventResponse>, Status> {
        let event = request
            .into_inner()
            .event
            .ok_or_else(|| Status::invalid_argument("ORCA-MASTER-REPORT: missing event"))?;
        let engine = self
            .leader
            .read()
            .map_err(|_| Status::internal("leader slot poisoned"))?
            .clone()
            .ok_or_else(|| {
                Status::unavailable("ORCA-MASTER-NOT-LEADER: this master is not the leader")
            })?;
        match engine.report(event).await {
            Ok(_) => Ok(Response::new(ReportTaskEventResponse {
                acknowledged: true,
            })),
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
    }

    async fn nudge(&self, _: Request<NudgeRequest>) -> Result<Response<NudgeResponse>, Status> {
        let engine = self
            .leader
            .read()
            .map_err(|_| Status::internal("leader slot poisoned"))?
            .clone();
        if let Some(engine) = &engine {
            engine.nudge();
        }
        Ok(Response::new(NudgeResponse {
            leader: engine.is_some(),
        }))
    }

    async fn ship_task_log(
        &self,
        request: Request<ShipTaskLogRequest>,
    ) -> Result<Response<ShipTaskLogResponse>, Status> {
        self.store_logs(vec![request.into_inner()]).await?;
        Ok(Response::new(ShipTaskLogResponse { stored: true }))
    }

    async fn ship_task_logs(
        &self,
        request: Request<ShipTaskLogsRequest>,
    ) -> Result<Response<ShipTaskLogsResponse>, Status> {
        self.store_logs(request.into_inner().logs).await?;
        Ok(Response::new(ShipTaskLogsResponse { stored: true }))
    }
}

impl MasterGrpc {
    /// Stores shipped logs, all in one write.
    async fn store_logs(&self, logs: Vec<ShipTaskLogRequest>) -> Result<(), Status> {
        let first = logs.first().map(|l| (l.task_instance_id, l.attempt));
        let n = logs.len();
        let puts = logs
            .into_iter()
            .map(|r| orca_store::TaskLogPut {
                task_instance_id: r.task_instance_id,
                attempt: r.attempt,
                content: r.data,
                truncated: r.truncated,
                original_size: r.original_size,
            })
            .collect();
        self.store.put_task_logs(puts).await.map_err(|e| {
            // The store logged and counted the failure
            // (`orca_log_store_writes_total`); the worker retries.
            let which = match (first, n) {
                (Some((ti, attempt)), 1) => {
                    format!("the log of task instance {ti} attempt {attempt}")
                }
                (Some((ti, attempt)), n) => {
                    format!("{n} logs (the first of task instance {ti} attempt {attempt})")
                }
                (None, _) => "no logs".to_string(),
            };
            Status::unavailable(format!(
                "cannot store {which} in the {} log store: {e}",
                self.store.log_store_kind()
            ))
        })
    }
}
