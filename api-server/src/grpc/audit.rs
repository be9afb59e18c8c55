//! The audit log for the gRPC API: a layer around `orca.v1.OrcaApi` that
//! records every mutating RPC as the REST layer ([`crate::audit`]) records
//! every mutating call: time, user and project (filled into the request's
//! [`AuditSlot`] by the access checks, as REST's authorisation does; for a
//! login the username it claims), method `GRPC`, path
//! `/orca.v1.OrcaApi/<Rpc>`, the gRPC status as the HTTP status REST
//! would have answered, and the request id (`x-request-id` metadata, or a
//! new one). Messages are never recorded.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::{HeaderMap, Request, Response};
use orca_store::NewAuditEntry;
use rand::RngCore;
use tower_layer::Layer;
use tower_service::Service;

use crate::AppState;
use crate::audit::AuditSlot;

const SERVICE_PREFIX: &str = "/orca.v1.OrcaApi/";
/// RPCs that change nothing, by name prefix.
const READS: [&str; 8] = [
    "Get", "List", "Search", "Follow", "Preview", "Diff", "WhoAmI", "Check",
];

/// Whether `path` is a mutating RPC of `OrcaApi`.
pub(crate) fn is_mutating(path: &str) -> bool {
    path.strip_prefix(SERVICE_PREFIX)
        .is_some_and(|rpc| !READS.iter().any(|r| rpc.starts_with(r)))
}

/// The HTTP status REST answers for a gRPC status code.
fn http_status(code: i32) -> u16 {
    match tonic::Code::from_i32(code) {
        tonic::Code::Ok => 200,
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange => 422,
        tonic::Code::Unauthenticated => 401,
        tonic::Code::PermissionDenied => 403,
        tonic::Code::NotFound => 404,
        tonic::Code::AlreadyExists | tonic::Code::FailedPrecondition | tonic::Code::Aborted => 409,
        tonic::Code::ResourceExhausted => 429,
        tonic::Code::Unavailable => 502,
        tonic::Code::DeadlineExceeded => 504,
        _ => 500,
    }
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(crate::audit::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        })
        .map(String::from)
        .unwrap_or_else(|| {
            let mut b = [0u8; 12];
            rand::rng().fill_bytes(&mut b);
            b.iter().map(|x| format!("{x:02x}")).collect()
        })
}

/// The layer (see the module docs).
#[derive(Clone)]
pub(crate) struct AuditLayer {
    pub(crate) state: AppState,
}

impl<S> Layer<S> for AuditLayer {
    type Service = Audit<S>;

    fn layer(&self, inner: S) -> Audit<S> {
        Audit {
            inner,
            state: self.state.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Audit<S> {
    inner: S,
    state: AppState,
}

impl<S, B, RB> Service<Request<B>> for Audit<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send,
    B: Send + 'static,
    RB: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let path = req.uri().path().to_string();
        // The ready service handles this call; a fresh clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !is_mutating(&path) {
            return Box::pin(inner.call(req));
        }
        let request_id = request_id(req.headers());
        let slot = AuditSlot::default();
        req.extensions_mut().insert(slot.clone());
        let state = self.state.clone();
        Box::pin(async move {
            let resp = inner.call(req).await?;
            // A failed call answers its status in the headers (trailers
            // only); a successful one in the trailers, as 0.
            let code = resp
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.parse::<i32>().ok())
                .unwrap_or(0);
            let (username, project) = slot.take_user_and_project();
            let entry = NewAuditEntry {
                at: chrono::Utc::now(),
                username,
                method: "GRPC".into(),
                path: path.clone(),
                project,
                status: http_status(code),
                request_id,
            };
            if let Err(e) = state.store.insert_audit(&entry).await {
                tracing::error!(error = %e, path, "cannot write the audit log");
            }
            Ok(resp)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_not_audited_and_writes_are() {
        for read in [
            "GetRun",
            "ListTenants",
            "SearchTaskLog",
            "FollowTaskLog",
            "WhoAmI",
            "DiffWorkflowVersions",
            "PreviewSchedule",
        ] {
            assert!(!is_mutating(&format!("{SERVICE_PREFIX}{read}")), "{read}");
        }
        for write in [
            "CreateTenant",
            "StopRun",
            "Login",
            "ApplyWorkflow",
            "DeleteWorkflow",
            "BulkRunOperation",
        ] {
            assert!(is_mutating(&format!("{SERVICE_PREFIX}{write}")), "{write}");
        }
        assert!(!is_mutating("/grpc.health.v1.Health/Check"));
        assert_eq!(
            (http_status(0), http_status(7), http_status(5)),
            (200, 403, 404)
        );
    }
}
