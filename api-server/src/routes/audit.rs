//! `GET /audit`: the audit log of mutating calls (see [`crate::audit`]).

use axum::Json;
use axum::extract::{Query, State};
use orca_store::AuditRow;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;

/// Entries per page when `limit` is absent.
pub const DEFAULT_LIMIT: u64 = 100;
/// Largest page.
pub const MAX_LIMIT: u64 = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries per page (1..=1000, default 100).
    pub limit: Option<u64>,
    /// Only entries older than this id (the `next_before_id` of the
    /// previous page).
    pub before_id: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditRow>,
    /// Pass as `before_id` for the next page; absent on the last page.
    pub next_before_id: Option<i64>,
}

/// `GET /audit?limit=&before_id=` — the audit log, newest first.
#[utoipa::path(
    get,
    path = "/audit",
    tag = "audit",
    operation_id = "audit_log",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of the audit log, newest first", body = AuditPage),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::Invalid(format!(
            "limit must be between 1 and {MAX_LIMIT}, got {limit}"
        )));
    }
    let entries = state.store.audit_entries(limit, q.before_id).await?;
    let next_before_id = if entries.len() as u64 == limit {
        entries.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Json(AuditPage {
        entries,
        next_before_id,
    }))
}
