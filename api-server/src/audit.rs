//! The audit log: one layer around `/api/v1` records every mutating call
//! (POST, PUT, PATCH, DELETE) — time, user (or anonymous), method, path
//! (without the query string), target project when known, status and
//! request id — through [`orca_store::Store::insert_audit`]. Request bodies
//! and secrets are never recorded.
//!
//! The layer puts an [`AuditSlot`] into the request; [`crate::authz`] fills
//! in the caller and the project once it knows them. For a login, whose
//! caller is not authenticated yet, the user is the username it claimed.
//! Every request gets an `x-request-id` response header (the caller's own
//! when it sent a well-formed one).

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use orca_store::NewAuditEntry;
use rand::RngCore;
use serde::Deserialize;

use crate::AppState;
use crate::error::ApiError;

/// The request id header, read from requests and set on responses.
pub const REQUEST_ID: &str = "x-request-id";
/// Longest caller-supplied request id kept.
const MAX_REQUEST_ID: usize = 64;
/// Largest login body read to find the claimed username.
const MAX_LOGIN_BODY: usize = 64 * 1024;

/// What the authorisation layer learnt about a request, for its audit entry.
#[derive(Debug, Clone, Default)]
pub struct AuditSlot(Arc<Mutex<AuditFacts>>);

#[derive(Debug, Clone, Default)]
struct AuditFacts {
    user: Option<String>,
    project: Option<String>,
}

impl AuditSlot {
    pub fn set_user(&self, user: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).user = Some(user.to_string());
    }

    /// Records the target project (the first one set wins).
    pub fn set_project(&self, project: &str) {
        let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if f.project.is_none() {
            f.project = Some(project.to_string());
        }
    }

    fn take(&self) -> AuditFacts {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The user and project recorded, emptying the slot.
    pub(crate) fn take_user_and_project(&self) -> (Option<String>, Option<String>) {
        let f = self.take();
        (f.user, f.project)
    }
}

fn is_mutation(m: &Method) -> bool {
    matches!(
        *m,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

fn request_id(req: &Request) -> String {
    let given = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= MAX_REQUEST_ID
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        });
    match given {
        Some(s) => s.to_string(),
        None => {
            let mut b = [0u8; 12];
            rand::rng().fill_bytes(&mut b);
            b.iter().map(|x| format!("{x:02x}")).collect()
        }
    }
}

/// The layer (see the module docs).
pub async fn record(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let id = request_id(&req);
    if !is_mutation(req.method()) {
        return with_request_id(next.run(req).await, &id);
    }
    let method = req.method().to_string();
    let path = req
        .extensions()
        .get::<OriginalUri>()
        .map(|u| u.0.path().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let slot = AuditSlot::default();
    req.extensions_mut().insert(slot.clone());
    if path.ends_with("/auth/login") {
        let (parts, body) = req.into_parts();
        let bytes = match axum::body::to_bytes(body, MAX_LOGIN_BODY).await {
            Ok(b) => b,
            Err(e) => {
                let resp = ApiError::Invalid(format!(
                    "login body unreadable or larger than {MAX_LOGIN_BODY} bytes: {e}"
                ))
                .into_response();
                write(&state, &slot, &method, &path, resp.status().as_u16(), &id).await;
                return with_request_id(resp, &id);
            }
        };
        #[derive(Deserialize)]
        struct Claimed {
            username: String,
        }
        if let Ok(c) = serde_json::from_slice::<Claimed>(&bytes) {
            slot.set_user(&c.username);
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    let resp = next.run(req).await;
    write(&state, &slot, &method, &path, resp.status().as_u16(), &id).await;
    with_request_id(resp, &id)
}

async fn write(
    state: &AppState,
    slot: &AuditSlot,
    method: &str,
    path: &str,
    status: u16,
    id: &str,
) {
    let facts = slot.take();
    let entry = NewAuditEntry {
        at: chrono::Utc::now(),
        username: facts.user,
        method: method.to_string(),
        path: path.to_string(),
        project: facts.project,
        status,
        request_id: id.to_string(),
    };
    if let Err(e) = state.store.insert_audit(&entry).await {
        tracing::error!(error = %e, method, path, request_id = id, "cannot write the audit log");
    }
}

fn with_request_id(mut resp: Response, id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}
