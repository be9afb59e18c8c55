//! Task attempt logs, read from the worker that ran the attempt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use orca_proto::v1::StreamTaskLogRequest;
use orca_proto::v1::worker_service_client::WorkerServiceClient;
use orca_store::TaskInstanceRow;
use serde::{Deserialize, Serialize};
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

/// Most lines `…/log/search` returns.
pub const MAX_SEARCH_MATCHES: usize = 1000;
/// Longest search text or pattern, bytes.
pub const MAX_SEARCH_BYTES: usize = 1000;
/// Largest compiled search regex (bounds the work one request causes).
const MAX_REGEX_SIZE: usize = 1 << 20;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// First byte to return.
    #[serde(default)]
    pub offset: u64,
    /// Most bytes to return (from `offset`).
    pub limit: Option<u64>,
    /// Return only the last `tail` lines (not with `offset`/`limit`).
    pub tail: Option<usize>,
}

/// `GET /task-instances/{id}/log?offset=N&limit=M` or `?tail=LINES` — a
/// byte range, or the last lines, of the log.
#[utoipa::path(
    get,
    path = "/task-instances/{id}/log",
    tag = "logs",
    operation_id = "task_log",
    params(("id" = i64, Path, description = "Task instance id"), LogQuery),
    responses(
        (status = 200, description = "The log from byte `offset` on (at most `limit` bytes), or its last `tail` lines", body = String, content_type = "text/plain"),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::Invalid),
        (status = 502, response = crate::openapi::Unavailable),
    ),
)]
pub async fn task_log(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<LogQuery>,
) -> Result<String, ApiError> {
    if let Some(lines) = q.tail {
        if q.offset != 0 || q.limit.is_some() {
            return Err(ApiError::Invalid(
                "tail: give either `tail` or `offset`/`limit`, not both".into(),
            ));
        }
        let (_, bytes) = log_bytes(&state, id, 0).await?;
        return Ok(String::from_utf8_lossy(tail_lines(&bytes, lines)).into_owned());
    }
    let (_, mut bytes) = log_bytes(&state, id, q.offset).await?;
    if let Some(limit) = q.limit {
        bytes.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The last `n` lines of `bytes` (a final newline does not start a line).
fn tail_lines(bytes: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &bytes[i + 1..];
            }
        }
    }
    bytes
}

/// `GET /task-instances/{id}/log/download` — the whole log as a file.
#[utoipa::path(
    get,
    path = "/task-instances/{id}/log/download",
    tag = "logs",
    operation_id = "task_log_download",
    params(("id" = i64, Path, description = "Task instance id")),
    responses(
        (status = 200, description = "The whole log, as an attachment `task-<id>-attempt-<n>.log`", body = String, content_type = "text/plain"),
        (status = 404, response = crate::openapi::NotFound),
        (status = 502, response = crate::openapi::Unavailable),
    ),
)]
pub async fn download(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let (ti, bytes) = log_bytes(&state, id, 0).await?;
    let name = format!("task-{}-attempt-{}.log", ti.id, ti.attempt);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "text/plain; charset=utf-8".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Text to find (1 to 1000 bytes); a regular expression with `regex=true`.
    pub q: String,
    /// Treat `q` as a regular expression (Rust `regex` syntax).
    #[serde(default)]
    pub regex: bool,
}

/// One matching line.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogMatch {
    /// 1-based line number.
    pub line: usize,
    pub text: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogSearchResult {
    /// The first matching lines, in order.
    pub matches: Vec<LogMatch>,
    /// More lines matched than the 1000 returned.
    pub truncated: bool,
}

/// `GET /task-instances/{id}/log/search?q=TEXT[&regex=true]` — the lines
/// of the log matching `q`.
#[utoipa::path(
    get,
    path = "/task-instances/{id}/log/search",
    tag = "logs",
    operation_id = "task_log_search",
    params(("id" = i64, Path, description = "Task instance id"), SearchQuery),
    responses(
        (status = 200, description = "Matching lines with their line numbers (at most 1000)", body = LogSearchResult),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::Invalid),
        (status = 502, response = crate::openapi::Unavailable),
    ),
)]
pub async fn search(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<SearchQuery>,
) -> Result<Json<LogSearchResult>, ApiError> {
    if q.q.is_empty() || q.q.len() > MAX_SEARCH_BYTES {
        return Err(ApiError::Invalid(format!(
            "q: give 1 to {MAX_SEARCH_BYTES} bytes to search for"
        )));
    }
    let matcher: Box<dyn Fn(&str) -> bool + Send> = if q.regex {
        let re = regex::RegexBuilder::new(&q.q)
            .size_limit(MAX_REGEX_SIZE)
            .build()
            .map_err(|e| ApiError::Invalid(format!("q: not a valid regular expression: {e}")))?;
        Box::new(move |line| re.is_match(line))
    } else {
        let needle = q.q.clone();
        Box::new(move |line| line.contains(&needle))
    };
    let (_, bytes) = log_bytes(&state, id, 0).await?;
    let text = String::from_utf8_lossy(&bytes);
    let mut matches = Vec::new();
    let mut truncated = false;
    for (i, line) in text.lines().enumerate() {
        if matcher(line) {
            if matches.len() == MAX_SEARCH_MATCHES {
                truncated = true;
                break;
            }
            matches.push(LogMatch {
                line: i + 1,
                text: line.to_string(),
            });
        }
    }
    Ok(Json(LogSearchResult { matches, truncated }))
}

/// `GET /task-instances/{id}/log/follow` — the log, streamed as it grows
/// while the attempt runs; the response ends when the attempt ends. For a
/// finished attempt: the whole log.
#[utoipa::path(
    get,
    path = "/task-instances/{id}/log/follow",
    tag = "logs",
    operation_id = "task_log_follow",
    params(("id" = i64, Path, description = "Task instance id")),
    responses(
        (status = 200, description = "The log from its start, streamed (chunked) until the attempt ends", body = String, content_type = "text/plain"),
        (status = 404, response = crate::openapi::NotFound),
        (status = 502, response = crate::openapi::Unavailable),
    ),
)]
pub async fn follow(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let ti = task_instance(&state, id).await?;
    let text_plain = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    if !ti.state.is_terminal()
        && let Some(addr) = ti.worker_addr.clone()
    {
        let opened = async {
            let mut client = state.worker_clients.client(&addr)?;
            client
                .stream_task_log(StreamTaskLogRequest {
                    task_instance_id: ti.id,
                    attempt: ti.attempt,
                    offset: 0,
                    follow: true,
                })
                .await
                .map_err(|s| {
                    ApiError::Unavailable(format!(
                        "worker {addr} cannot stream the log of task instance {id}: {}",
                        s.message()
                    ))
                })
        }
        .await;
        match opened {
            Ok(resp) => {
                let stream = resp
                    .into_inner()
                    .map(|r| r.map(|chunk| Bytes::from(chunk.data)));
                return Ok((text_plain, Body::from_stream(stream)).into_response());
            }
            // The attempt may have ended meanwhile: answer from the store.
            Err(e) => tracing::debug!(error = %e, "following a log failed; reading it whole"),
        }
    }
    let (_, bytes) = log_bytes(&state, id, 0).await?;
    Ok((text_plain, bytes).into_response())
}

async fn task_instance(state: &AppState, id: i64) -> Result<TaskInstanceRow, ApiError> {
    state
        .store
        .task_instance(id)
        .await?
        .ok_or(ApiError::NotFound {
            what: "task instance",
            id: id.to_string(),
        })
}

/// The task instance and its log from byte `offset` on.
async fn log_bytes(
    state: &AppState,
    id: i64,
    offset: u64,
) -> Result<(TaskInstanceRow, Vec<u8>), ApiError> {
    let ti = task_instance(state, id).await?;
    let Some(addr) = ti.worker_addr.clone() else {
        return Err(ApiError::NotFound {
            what: "log of task instance (it never reached a worker)",
            id: id.to_string(),
        });
    };
    let from = |bytes: &[u8]| {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        bytes[start..].to_vec()
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
        let out = from(&log.content);
        return Ok((ti, out));
    }
    match read_from_worker(state, &addr, ti.id, ti.attempt, offset).await {
        Ok(bytes) => Ok((ti, bytes)),
        Err(worker_err) => {
            if let Some(log) = stored {
                let out = from(&log.content);
                return Ok((ti, out));
            }
            // Same host (standalone): the worker's file is readable directly.
            if let Some(path) = &ti.log_path
                && let Ok(bytes) = tokio::fs::read(path).await
            {
                let out = from(&bytes);
                return Ok((ti, out));
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
) -> Result<Vec<u8>, ApiError> {
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
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::tail_lines;

    #[test]
    fn tail_counts_lines_from_the_end() {
        assert_eq!(tail_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail_lines(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(tail_lines(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(tail_lines(b"a\nb\n", 0), b"");
        assert_eq!(tail_lines(b"", 3), b"");
    }
}
