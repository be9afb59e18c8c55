//! Task attempt logs, read from the worker that ran the attempt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use orca_proto::v1::StreamTaskLogRequest;
use orca_proto::v1::worker_service_client::WorkerServiceClient;
use serde::Deserialize;
use tonic::transport::{Channel, Endpoint};

use crate::AppState;
use crate::error::ApiError;

/// Cached channels to workers.
#[derive(Clone, Default)]
pub struct WorkerLogClients {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl WorkerLogClients {
    fn client(&self, addr: &str) -> Result<WorkerServiceClient<Channel>, ApiError> {
        let mut map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ch) = map.get(addr) {
            return Ok(WorkerServiceClient::new(ch.clone()));
        }
        let ch = Endpoint::from_shared(addr.to_string())
            .map_err(|e| ApiError::Unavailable(format!("bad worker address {addr:?}: {e}")))?
            .connect_timeout(std::time::Duration::from_secs(3))
            .connect_lazy();
        map.insert(addr.to_string(), ch.clone());
        Ok(WorkerServiceClient::new(ch))
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    #[serde(default)]
    pub offset: u64,
}

/// `GET /task-instances/{id}/log?offset=N` — the log from byte `offset`.
#[utoipa::path(
    get,
    path = "/task-instances/{id}/log",
    tag = "logs",
    operation_id = "task_log",
    params(("id" = i64, Path, description = "Task instance id"), LogQuery),
    responses(
        (status = 200, description = "The log from byte `offset` on", body = String, content_type = "text/plain"),
        (status = 404, response = crate::openapi::NotFound),
        (status = 502, response = crate::openapi::Unavailable),
    ),
)]
pub async fn task_log(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<LogQuery>,
) -> Result<String, ApiError> {
    let ti = state
        .store
        .task_instance(id)
        .await?
        .ok_or(ApiError::NotFound {
            what: "task instance",
            id: id.to_string(),
        })?;
    let Some(addr) = ti.worker_addr.clone() else {
        return Err(ApiError::NotFound {
            what: "log of task instance (it never reached a worker)",
            id: id.to_string(),
        });
    };
    let from = |bytes: &[u8]| {
        let start = usize::try_from(q.offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    };
    // A finished attempt's log was shipped to the store by its worker: read
    // it there (the worker may be gone), unless it was cut to head + tail.
    let stored = if ti.state.is_terminal() {
        state.store.task_log(id).await?
    } else {
        None
    };
    if let Some(log) = &stored
        && !log.truncated
    {
        return Ok(from(&log.content));
    }
    match read_from_worker(&state, &addr, ti.id, ti.attempt, q.offset).await {
        Ok(text) => Ok(text),
        Err(worker_err) => {
            if let Some(log) = stored {
                return Ok(from(&log.content));
            }
            // Same host (standalone): the worker's file is readable directly.
            if let Some(path) = &ti.log_path
                && let Ok(bytes) = tokio::fs::read(path).await
            {
                return Ok(from(&bytes));
            }
            Err(worker_err)
        }
    }
}

async fn read_from_worker(
    state: &AppState,
    addr: &str,
    ti: i64,
    attempt: i32,
    offset: u64,
) -> Result<String, ApiError> {
    let mut client = state.worker_clients.client(addr)?;
    let mut stream = client
        .stream_task_log(StreamTaskLogRequest {
            task_instance_id: ti,
            attempt,
            offset,
            follow: false,
        })
        .await
        .map_err(|s| {
            ApiError::Unavailable(format!(
                "worker {addr} cannot serve the log of task instance {ti}: {}",
                s.message()
            ))
        })?
        .into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = stream.message().await.map_err(|s| {
        ApiError::Unavailable(format!("log stream from {addr} broke: {}", s.message()))
    })? {
        out.extend_from_slice(&chunk.data);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}
