//! `/projects` and their members, and the listings that show only what the
//! caller may view (`GET /projects`, `GET /workflows`, `GET /runs`).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use orca_store::{MemberRow, ProjectRole, ProjectRow, WorkflowInstanceRow};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::{AuthError, Caller};
use crate::error::ApiError;
use crate::routes::runs::ListQuery;
use crate::routes::workflows::WorkflowSummary;

/// A project with the caller's role in it.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct ProjectSummary {
    pub id: i64,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// `None` for admins without a role there.
    pub role: Option<ProjectRole>,
}

#[utoipa::path(
    get,
    path = "/projects",
    tag = "projects",
    operation_id = "list_projects",
    responses(
        (status = 200, description = "The projects the caller can view", body = Vec<ProjectSummary>),
    ),
)]
/// `GET /projects`: the projects the caller can view (admins: all).
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ProjectSummary>>, AuthError> {
    let projects = state.store.list_projects().await?;
    Ok(Json(
        projects
            .into_iter()
            .filter(|p| caller.can_view(&p.name))
            .map(|p| ProjectSummary {
                role: caller.role(&p.name),
                id: p.id,
                name: p.name,
                created_at: p.created_at,
            })
            .collect(),
    ))
}

/// Body of `POST /projects`.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct CreateProjectRequest {
    pub name: String,
    /// Made the project's owner.
    #[serde(default)]
    pub owner: Option<String>,
}

#[utoipa::path(
    post,
    path = "/projects",
    tag = "projects",
    operation_id = "create_project",
    request_body = CreateProjectRequest,
    responses(
        (status = 201, description = "The new project", body = ProjectRow),
        (status = 409, response = crate::openapi::Conflict),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
/// `POST /projects` (admins): an empty project, optionally with an owner.
pub async fn create(
    State(state): State<AppState>,
    Json(req): Json<CreateProjectRequest>,
) -> Result<(StatusCode, Json<ProjectRow>), AuthError> {
    let name = req.name.trim();
    if name.is_empty() || name.len() > 255 || name.contains('/') {
        return Err(ApiError::Invalid(format!(
            "name {:?}: give 1 to 255 bytes without '/'",
            req.name
        ))
        .into());
    }
    let owner = match &req.owner {
        Some(u) => Some(
            state
                .store
                .user(u)
                .await?
                .ok_or_else(|| ApiError::Invalid(format!("owner: there is no user {u:?}")))?,
        ),
        None => None,
    };
    let project = state
        .store
        .create_project(name)
        .await?
        .ok_or_else(|| ApiError::Conflict(format!("project {name:?} exists")))?;
    if let Some(owner) = owner {
        state
            .store
            .set_member(project.id, owner.id, ProjectRole::Owner)
            .await?;
    }
    Ok((StatusCode::CREATED, Json(project)))
}

async fn project(state: &AppState, name: &str) -> Result<ProjectRow, AuthError> {
    Ok(state
        .store
        .project(name)
        .await?
        .ok_or_else(|| ApiError::NotFound {
            what: "project",
            id: name.to_string(),
        })?)
}

/// `GET /projects/{project}/members`.
#[utoipa::path(
    get,
    path = "/projects/{project}/members",
    tag = "projects",
    operation_id = "list_members",
    params(("project" = String, Path, description = "Project name")),
    responses(
        (status = 200, description = "The project's members", body = Vec<MemberRow>),
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub async fn members(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<MemberRow>>, AuthError> {
    let p = project(&state, &name).await?;
    Ok(Json(state.store.members(p.id).await?))
}

/// Body of `PUT /projects/{project}/members/{username}`.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct PutMemberRequest {
    pub role: ProjectRole,
}

/// `PUT /projects/{project}/members/{username}` (owners, admins): grants
/// or changes a role.
#[utoipa::path(
    put,
    path = "/projects/{project}/members/{username}",
    tag = "projects",
    operation_id = "put_member",
    params(("project" = String, Path, description = "Project name"), ("username" = String, Path, description = "A username")),
    request_body = PutMemberRequest,
    responses(
        (status = 200, description = "The member with its role", body = MemberRow),
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub async fn put_member(
    State(state): State<AppState>,
    Path((name, username)): Path<(String, String)>,
    Json(req): Json<PutMemberRequest>,
) -> Result<Json<MemberRow>, AuthError> {
    let p = project(&state, &name).await?;
    let user = state
        .store
        .user(&username)
        .await?
        .ok_or_else(|| ApiError::NotFound {
            what: "user",
            id: username.clone(),
        })?;
    state.store.set_member(p.id, user.id, req.role).await?;
    let member = state
        .store
        .members(p.id)
        .await?
        .into_iter()
        .find(|m| m.user_id == user.id)
        .ok_or_else(|| ApiError::Internal("the new member vanished".into()))?;
    Ok(Json(member))
}

/// `DELETE /projects/{project}/members/{username}` (owners, admins).
#[utoipa::path(
    delete,
    path = "/projects/{project}/members/{username}",
    tag = "projects",
    operation_id = "delete_member",
    params(("project" = String, Path, description = "Project name"), ("username" = String, Path, description = "A username")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub async fn delete_member(
    State(state): State<AppState>,
    Path((name, username)): Path<(String, String)>,
) -> Result<StatusCode, AuthError> {
    let p = project(&state, &name).await?;
    let not_member = || ApiError::NotFound {
        what: "member",
        id: format!("{name}/{username}"),
    };
    let user = state.store.user(&username).await?.ok_or_else(not_member)?;
    if state.store.remove_member(p.id, user.id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_member().into())
    }
}

#[utoipa::path(
    get,
    path = "/workflows",
    tag = "workflows",
    operation_id = "list_workflows",
    responses(
        (status = 200, description = "Current versions of the workflows the caller can view", body = Vec<WorkflowSummary>),
    ),
)]
/// `GET /workflows`: current versions of the workflows the caller can view.
pub async fn list_workflows(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<WorkflowSummary>>, AuthError> {
    let rows = state.store.list_workflows(None).await?;
    Ok(Json(
        rows.iter()
            .filter(|r| caller.can_view(&r.project))
            .map(WorkflowSummary::from)
            .collect(),
    ))
}

#[utoipa::path(
    get,
    path = "/runs",
    tag = "runs",
    operation_id = "list_runs",
    params(ListQuery),
    responses(
        (status = 200, description = "The newest runs, newest first", body = Vec<WorkflowInstanceRow>),
    ),
)]
/// `GET /runs`: runs of the projects the caller can view, newest first,
/// filtered by state/project/workflow/start time, paged with `before_id`.
pub async fn list_runs(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<WorkflowInstanceRow>>, AuthError> {
    let state_filter = match q.state.as_deref() {
        None => None,
        Some(s) => Some(s.to_ascii_uppercase().parse::<orca_common::WorkflowState>().map_err(|_| {
            AuthError::from(crate::error::ApiError::Invalid(format!(
                "state: {s:?} is not a run state; use RUNNING, SUCCESS, FAILURE, STOP or PAUSE"
            )))
        })?),
    };
    let filter = orca_store::RunFilter {
        projects: (!caller.user.admin).then(|| caller.roles.keys().cloned().collect()),
        project: q.project,
        workflow: q.workflow,
        state: state_filter,
        before_id: q.before_id,
        since: q.since,
        until: q.until,
        limit: q.limit.clamp(1, 1000),
    };
    Ok(Json(state.store.list_runs(&filter).await?))
}
