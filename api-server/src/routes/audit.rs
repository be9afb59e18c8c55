//! `GET /audit`: the audit log of mutating calls (see [`crate::audit`]).

use axum::Json;
use axum::extract::{Query, State};
use orca_store::{AuditFilter, AuditRow};
use serde::Deserialize;

use crate::AppState;
use crate::error::ApiError;
use crate::page::{Page, PageQuery, encode_id};

/// `GET /audit?limit=&cursor=&user=&project=&method=&path=&since=&until=`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Items per page (1..=1000, default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page; absent for the first page.
    pub cursor: Option<String>,
    /// Only calls of this user (for logins: the username claimed).
    pub user: Option<String>,
    /// Only calls that targeted this project.
    pub project: Option<String>,
    /// Only calls with this HTTP method (`POST`, `PUT`, `PATCH`, `DELETE`).
    pub method: Option<String>,
    /// Only calls whose path (as recorded, e.g. `/api/v1/workflows`)
    /// starts with this.
    pub path: Option<String>,
    /// Only calls made at or after this time (RFC 3339).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only calls made before this time (RFC 3339).
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

/// `GET /audit` — the audit log, newest first.
#[utoipa::path(
    get,
    path = "/audit",
    tag = "audit",
    operation_id = "audit_log",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of the audit log, newest first", body = Page<AuditRow>),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Page<AuditRow>>, ApiError> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let filter = AuditFilter {
        username: q.user,
        project: q.project,
        method: q.method.map(|m| m.to_ascii_uppercase()),
        path_prefix: q.path,
        since: q.since,
        until: q.until,
        before_id: page.cursor_id()?,
        limit,
    };
    let rows = state.store.audit_entries(&filter).await?;
    Ok(Json(Page::from_fetched(rows, limit, |e| encode_id(e.id))))
}
