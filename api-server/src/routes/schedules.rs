//! A workflow's cron schedule: set, read, delete, and preview its next fire
//! times. The leader fires it (see `orca-master`'s `engine/cron.rs`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use orca_common::cron::CronSchedule;
use orca_store::{NewSchedule, ScheduleRow};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;
use crate::routes::workflows::current_workflow;

/// Most fire times one preview lists.
const MAX_PREVIEW: usize = 100;

/// A workflow's schedule, as set by `PUT`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct ScheduleRequest {
    /// Quartz cron (`sec min hour day month weekday [year]`, e.g.
    /// `0 0 2 * * ? *`) or 5-field Unix cron.
    pub cron: String,
    /// IANA time zone the expression is evaluated in.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// No fire before this time.
    #[serde(default)]
    pub start_time: Option<DateTime<Utc>>,
    /// No fire after this time.
    #[serde(default)]
    pub end_time: Option<DateTime<Utc>>,
    /// Whether the leader fires it; off unless set.
    #[serde(default)]
    pub enabled: bool,
    /// Start parameters of every run it fires.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

fn default_timezone() -> String {
    "UTC".into()
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    /// How many fire times (1–100, default 5).
    #[serde(default = "default_count")]
    pub count: usize,
}

fn default_count() -> usize {
    5
}

/// The next fire times of a schedule.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SchedulePreview {
    pub cron: String,
    pub timezone: String,
    /// Upcoming fire times inside the schedule's window, in UTC.
    pub next_fire_times: Vec<DateTime<Utc>>,
}

fn parse(cron: &str, timezone: &str) -> Result<CronSchedule, ApiError> {
    CronSchedule::parse(cron, timezone)
        .map_err(|e| ApiError::Invalid(format!("field `{}`: {e}", e.field())))
}

#[utoipa::path(
    put,
    path = "/workflows/{project}/{name}/schedule",
    tag = "workflows",
    operation_id = "put_schedule",
    params(("project" = String, Path, description = "Project name"), ("name" = String, Path, description = "Workflow name")),
    request_body = ScheduleRequest,
    responses(
        (status = 200, description = "The schedule as stored", body = ScheduleRow),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
/// `PUT /workflows/{project}/{name}/schedule`: creates or replaces it.
pub async fn put(
    State(state): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    Json(req): Json<ScheduleRequest>,
) -> Result<Json<ScheduleRow>, ApiError> {
    let def = current_workflow(&state, &project, &name).await?;
    parse(&req.cron, &req.timezone)?;
    if let (Some(start), Some(end)) = (req.start_time, req.end_time)
        && end < start
    {
        return Err(ApiError::Invalid(format!(
            "field `end_time`: {end} is before start_time {start}"
        )));
    }
    let row = state
        .store
        .upsert_schedule(&NewSchedule {
            workflow_definition_id: def.id,
            cron: req.cron.trim().to_string(),
            timezone: req.timezone,
            start_time: req.start_time,
            end_time: req.end_time,
            enabled: req.enabled,
            params: req.params,
        })
        .await?;
    // The leader re-plans its timer.
    (state.nudge)();
    Ok(Json(row))
}

#[utoipa::path(
    get,
    path = "/workflows/{project}/{name}/schedule",
    tag = "workflows",
    operation_id = "get_schedule",
    params(("project" = String, Path, description = "Project name"), ("name" = String, Path, description = "Workflow name")),
    responses(
        (status = 200, description = "The schedule", body = ScheduleRow),
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
/// `GET /workflows/{project}/{name}/schedule`.
pub async fn get(
    State(state): State<AppState>,
    Path((project, name)): Path<(String, String)>,
) -> Result<Json<ScheduleRow>, ApiError> {
    let def = current_workflow(&state, &project, &name).await?;
    let row = state
        .store
        .schedule(def.id)
        .await?
        .ok_or(ApiError::NotFound {
            what: "schedule of workflow",
            id: format!("{project}/{name}"),
        })?;
    Ok(Json(row))
}

#[utoipa::path(
    delete,
    path = "/workflows/{project}/{name}/schedule",
    tag = "workflows",
    operation_id = "delete_schedule",
    params(("project" = String, Path, description = "Project name"), ("name" = String, Path, description = "Workflow name")),
    responses(
        (status = 204, description = "The workflow has no schedule (any more)"),
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
/// `DELETE /workflows/{project}/{name}/schedule`: idempotent.
pub async fn delete(
    State(state): State<AppState>,
    Path((project, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let def = current_workflow(&state, &project, &name).await?;
    if state.store.delete_schedule(def.id).await? {
        (state.nudge)();
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/workflows/{project}/{name}/schedule/preview",
    tag = "workflows",
    operation_id = "preview_schedule",
    params(
        ("project" = String, Path, description = "Project name"),
        ("name" = String, Path, description = "Workflow name"),
        PreviewQuery,
    ),
    responses(
        (status = 200, description = "The next fire times", body = SchedulePreview),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
/// `GET /workflows/{project}/{name}/schedule/preview?count=N`.
pub async fn preview(
    State(state): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    Query(q): Query<PreviewQuery>,
) -> Result<Json<SchedulePreview>, ApiError> {
    if q.count == 0 || q.count > MAX_PREVIEW {
        return Err(ApiError::Invalid(format!(
            "field `count`: {} is not between 1 and {MAX_PREVIEW}",
            q.count
        )));
    }
    let Json(row) = get(State(state), Path((project, name))).await?;
    let cron = parse(&row.cron, &row.timezone)?;
    let next_fire_times = cron.upcoming(Utc::now(), row.start_time, row.end_time, q.count);
    Ok(Json(SchedulePreview {
        cron: row.cron,
        timezone: row.timezone,
        next_fire_times,
    }))
}
