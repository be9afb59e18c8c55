//! `/projects` and their members, and the listings that show only what the
//! caller may view (`GET /projects`, `GET /workflows`, `GET /runs`).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use orca_store::{MemberRow, ProjectRole, ProjectRow, ReleaseState, WorkflowInstanceRow};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::{AuthError, Caller};
use crate::error::ApiError;
use crate::page::{Page, PageQuery, decode_name_pair, encode_id, encode_name, encode_name_pair};
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

/// `GET /projects?limit=&cursor=&name=`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProjectsQuery {
    /// Items per page (1..=1000, default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page; absent for the first page.
    pub cursor: Option<String>,
    /// Only projects whose name contains this (case-insensitive).
    pub name: Option<String>,
}

/// The projects `caller` may view, for the store's filters: `None` for
/// admins (all).
pub(crate) fn viewable(caller: &Caller) -> Option<Vec<String>> {
    (!caller.user.admin).then(|| caller.roles.keys().cloned().collect())
}

#[utoipa::path(
    get,
    path = "/projects",
    tag = "projects",
    operation_id = "list_projects",
    params(ProjectsQuery),
    responses(
        (status = 200, description = "A page of the projects the caller can view, by name", body = Page<ProjectSummary>),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
/// `GET /projects`: the projects the caller can view (admins: all), by
/// name.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ProjectsQuery>,
) -> Result<Json<Page<ProjectSummary>>, AuthError> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let filter = orca_store::ProjectFilter {
        projects: viewable(&caller),
        name_contains: q.name,
        after: page.cursor_name()?,
        limit,
    };
    let rows = state.store.projects_page(&filter).await?;
    let page = Page::from_fetched(rows, limit, |p| encode_name(&p.name));
    Ok(Json(Page {
        items: page
            .items
            .into_iter()
            .map(|p| ProjectSummary {
                role: caller.role(&p.name),
                id: p.id,
                name: p.name,
                created_at: p.created_at,
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
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

/// `GET /projects/{project}/members?limit=&cursor=&role=`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MembersQuery {
    /// Items per page (1..=1000, default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page; absent for the first page.
    pub cursor: Option<String>,
    /// Only members with this role.
    pub role: Option<ProjectRole>,
}

/// `GET /projects/{project}/members`: the project's members, by username.
#[utoipa::path(
    get,
    path = "/projects/{project}/members",
    tag = "projects",
    operation_id = "list_members",
    params(("project" = String, Path, description = "Project name"), MembersQuery),
    responses(
        (status = 200, description = "A page of the project's members, by username", body = Page<MemberRow>),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
pub async fn members(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<MembersQuery>,
) -> Result<Json<Page<MemberRow>>, AuthError> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let filter = orca_store::MemberFilter {
        role: q.role,
        after: page.cursor_name()?,
        limit,
    };
    let p = project(&state, &name).await?;
    let rows = state.store.members_page(p.id, &filter).await?;
    Ok(Json(Page::from_fetched(rows, limit, |m| {
        encode_name(&m.username)
    })))
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

/// `GET /workflows?limit=&cursor=&project=&name=&release_state=`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkflowsQuery {
    /// Items per page (1..=1000, default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page; absent for the first page.
    pub cursor: Option<String>,
    /// Only workflows of this project.
    pub project: Option<String>,
    /// Only workflows whose name contains this (case-insensitive).
    pub name: Option<String>,
    /// Only `online` or only `offline` workflows.
    pub release_state: Option<ReleaseState>,
}

/// The cursor after workflow `project`/`name`: both joined by a NUL, so
/// the key sorts like the pair (as gRPC `ListWorkflows` pages).
fn workflow_cursor(project: &str, name: &str) -> String {
    encode_name_pair(project, name)
}

#[utoipa::path(
    get,
    path = "/workflows",
    tag = "workflows",
    operation_id = "list_workflows",
    params(WorkflowsQuery),
    responses(
        (status = 200, description = "A page of the current versions of the workflows the caller can view, by project then name", body = Page<WorkflowSummary>),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
/// `GET /workflows`: current versions of the workflows the caller can view,
/// by project then name.
pub async fn list_workflows(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<WorkflowsQuery>,
) -> Result<Json<Page<WorkflowSummary>>, AuthError> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let after = page.cursor.as_deref().map(decode_name_pair).transpose()?;
    let filter = orca_store::WorkflowFilter {
        projects: viewable(&caller),
        project: q.project,
        name_contains: q.name,
        release_state: q.release_state,
        after,
        limit,
    };
    let rows = state.store.workflows_page(&filter).await?;
    let page = Page::from_fetched(rows, limit, |r| workflow_cursor(&r.project, &r.name));
    Ok(Json(Page {
        items: page.items.iter().map(WorkflowSummary::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(
    get,
    path = "/runs",
    tag = "runs",
    operation_id = "list_runs",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of runs, newest first", body = Page<WorkflowInstanceRow>),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
/// `GET /runs`: runs of the projects the caller can view, newest first,
/// filtered by state/project/workflow/start time.
pub async fn list_runs(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page<WorkflowInstanceRow>>, AuthError> {
    let state_filter = match q.state.as_deref() {
        None => None,
        Some(s) => Some(s.to_ascii_uppercase().parse::<orca_common::WorkflowState>().map_err(|_| {
            AuthError::from(crate::error::ApiError::Invalid(format!(
                "state: {s:?} is not a run state; use RUNNING, SUCCESS, FAILURE, STOP or PAUSE"
            )))
        })?),
    };
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let filter = orca_store::RunFilter {
        projects: viewable(&caller),
        project: q.project,
        workflow: q.workflow,
        state: state_filter,
        before_id: page.cursor_id()?,
        since: q.since,
        until: q.until,
        limit,
    };
    let rows = state.store.list_runs(&filter).await?;
    Ok(Json(Page::from_fetched(rows, limit, |r| encode_id(r.id))))
}
