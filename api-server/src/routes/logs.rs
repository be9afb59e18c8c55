//! Task attempt logs: a finished attempt's from the log store (the
//! metadata DB, a directory or S3, whichever the log was shipped to; only
//! the byte ranges a request needs are read), a running one's from the
//! worker that runs it.

use std::collections::HashMap;
use std::ops::Range;
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
use orca_store::log_store::TaskLogMeta;
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
/// Bytes read from the log store at a time by search, download and follow.
const CHUNK: u64 = 1 << 20;
/// Bytes read at a time, from the end backwards, to find the last lines.
const TAIL_CHUNK: u64 = 64 << 10;

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
        let log = open_log(&state, id, 0, None).await?;
        let bytes = log.tail(&state, lines).await?;
        return Ok(String::from_utf8_lossy(&bytes).into_owned());
    }
    let log = open_log(&state, id, q.offset, q.limit).await?;
    let end = q.limit.map_or(u64::MAX, |l| q.offset.saturating_add(l));
    let bytes = log.read(&state, q.offset..end).await?;
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
    let log = open_log(&state, id, 0, None).await?;
    let name = format!("task-{}-attempt-{}.log", log.ti.id, log.ti.attempt);
    let size = log.size();
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
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        Body::from_stream(log.chunks(state)),
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
    let log = open_log(&state, id, 0, None).await?;
    // Chunk by chunk, carrying a partial last line over: a large log is
    // never held whole.
    let mut search = LineSearch {
        matcher,
        line: 0,
        matches: Vec::new(),
        truncated: false,
    };
    let mut pending: Vec<u8> = Vec::new();
    let mut pos = 0;
    while pos < log.size() && !search.truncated {
        let chunk = log.read(&state, pos..pos.saturating_add(CHUNK)).await?;
        if chunk.is_empty() {
            break;
        }
        pos += chunk.len() as u64;
        pending.extend_from_slice(&chunk);
        if let Some(last_nl) = pending.iter().rposition(|b| *b == b'\n') {
            let rest = pending.split_off(last_nl + 1);
            for line in pending[..last_nl].split(|b| *b == b'\n') {
                search.line(line);
            }
            pending = rest;
        }
    }
    if !pending.is_empty() && !search.truncated {
        search.line(&pending);
    }
    Ok(Json(LogSearchResult {
        matches: search.matches,
        truncated: search.truncated,
    }))
}

/// Line-by-line matching state of a search.
struct LineSearch {
    matcher: Box<dyn Fn(&str) -> bool + Send>,
    /// Lines seen so far.
    line: usize,
    matches: Vec<LogMatch>,
    truncated: bool,
}

impl LineSearch {
    fn line(&mut self, raw: &[u8]) {
        self.line += 1;
        if self.truncated {
            return;
        }
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = String::from_utf8_lossy(raw);
        if (self.matcher)(&text) {
            if self.matches.len() == MAX_SEARCH_MATCHES {
                self.truncated = true;
                return;
            }
            self.matches.push(LogMatch {
                line: self.line,
                text: text.into_owned(),
            });
        }
    }
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
    let log = open_log(&state, id, 0, None).await?;
    Ok((text_plain, Body::from_stream(log.chunks(state))).into_response())
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

/// A log to answer from: where its bytes are, and the task instance.
#[derive(Clone)]
struct OpenLog {
    ti: TaskInstanceRow,
    source: Source,
}

#[derive(Clone)]
enum Source {
    /// Shipped to the log store: read by byte range.
    Stored(TaskLogMeta),
    /// Read from the worker (or its file) from byte `base` on.
    Loaded { base: u64, bytes: Arc<Vec<u8>> },
}

impl OpenLog {
    /// One past the last byte.
    fn size(&self) -> u64 {
        match &self.source {
            Source::Stored(meta) => meta.stored_size,
            Source::Loaded { base, bytes } => base + bytes.len() as u64,
        }
    }

    /// The bytes of `range`, clamped to the log.
    async fn read(&self, state: &AppState, range: Range<u64>) -> Result<Vec<u8>, ApiError> {
        match &self.source {
            Source::Stored(meta) => {
                let read = state
                    .store
                    .read_task_log(meta.task_instance_id, range)
                    .await
                    .map_err(log_store_error)?;
                Ok(read.map(|(_, bytes)| bytes).unwrap_or_default())
            }
            Source::Loaded { base, bytes } => {
                let len = bytes.len() as u64;
                let start = range.start.saturating_sub(*base).min(len);
                let end = range.end.saturating_sub(*base).clamp(start, len);
                Ok(bytes[start as usize..end as usize].to_vec())
            }
        }
    }

    /// The last `n` lines, reading backwards from the end in chunks until
    /// they are found (a large stored log is not read whole).
    async fn tail(&self, state: &AppState, n: usize) -> Result<Vec<u8>, ApiError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut start = self.size();
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let from = start.saturating_sub(TAIL_CHUNK);
            let mut chunk = self.read(state, from..start).await?;
            chunk.extend_from_slice(&buf);
            buf = chunk;
            start = from;
            let tail = tail_lines(&buf, n);
            if start == 0 || tail.len() < buf.len() {
                return Ok(tail.to_vec());
            }
        }
    }

    /// The whole log as a stream of chunks (download, follow).
    fn chunks(
        self,
        state: AppState,
    ) -> impl futures::Stream<Item = Result<Bytes, ApiError>> + Send + 'static {
        futures::stream::try_unfold((self, state, 0u64), |(log, state, pos)| async move {
            if pos >= log.size() {
                return Ok(None);
            }
            let chunk = log.read(&state, pos..pos.saturating_add(CHUNK)).await?;
            if chunk.is_empty() {
                return Ok(None);
            }
            let next = pos + chunk.len() as u64;
            Ok(Some((Bytes::from(chunk), (log, state, next))))
        })
    }
}

/// A stored log that cannot be read is the log store's fault (502), with
/// what failed in the message; other store errors stay internal.
fn log_store_error(e: orca_store::StoreError) -> ApiError {
    match e {
        orca_store::StoreError::LogStore(e) => {
            ApiError::Unavailable(format!("the log store cannot serve this log: {e}"))
        }
        other => other.into(),
    }
}

/// Where to read the log of task instance `id` from. `offset`/`limit` are
/// only hints for a read from the worker (what to fetch).
async fn open_log(
    state: &AppState,
    id: i64,
    offset: u64,
    limit: Option<u64>,
) -> Result<OpenLog, ApiError> {
    let ti = task_instance(state, id).await?;
    let Some(addr) = ti.worker_addr.clone() else {
        return Err(ApiError::NotFound {
            what: "log of task instance (it never reached a worker)",
            id: id.to_string(),
        });
    };
    // A finished attempt's log was shipped to the log store by its worker:
    // read it there (the worker may be gone), unless it was cut to head +
    // tail (then the worker's whole file is better while it exists).
    let stored = if ti.state.is_terminal() {
        state.store.task_log_meta(id).await?
    } else {
        None
    };
    if let Some(meta) = &stored
        && !meta.truncated
    {
        let source = Source::Stored(meta.clone());
        return Ok(OpenLog { ti, source });
    }
    match read_from_worker(state, &addr, ti.id, ti.attempt, offset, limit).await {
        Ok(bytes) => {
            let source = Source::Loaded {
                base: offset,
                bytes: Arc::new(bytes),
            };
            Ok(OpenLog { ti, source })
        }
        Err(worker_err) => {
            if let Some(meta) = stored {
                let source = Source::Stored(meta);
                return Ok(OpenLog { ti, source });
            }
            // Same host (standalone): the worker's file is readable directly.
            if let Some(path) = &ti.log_path
                && let Ok(bytes) = tokio::fs::read(path).await
            {
                let source = Source::Loaded {
                    base: 0,
                    bytes: Arc::new(bytes),
                };
                return Ok(OpenLog { ti, source });
            }
            Err(worker_err)
        }
    }
}

/// The log from the worker, from byte `offset` on, at most `limit` bytes
/// (it stops reading once it has them).
async fn read_from_worker(
    state: &AppState,
    addr: &str,
    ti: i64,
    attempt: i32,
    offset: u64,
    limit: Option<u64>,
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
    let limit = limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
    let mut out = Vec::new();
    while out.len() < limit
        && let Some(chunk) = stream.message().await.map_err(|s| {
            ApiError::Unavailable(format!("log stream from {addr} broke: {}", s.message()))
        })?
    {
        out.extend_from_slice(&chunk.data);
    }
    out.truncate(limit);
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
