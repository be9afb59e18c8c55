//! Authorisation: what a caller may do. Every route in the route table
//! (`routes::table`) declares a [`RouteRule`] — the [`Perm`] it needs and
//! where the project of the request comes from ([`ProjectFrom`]) — and
//! [`authorize`] enforces it as a per-route middleware before the handler
//! runs. Handlers contain no permission checks; list handlers filter with
//! [`Caller::can_view`](crate::auth::Caller::can_view).
//!
//! Answers: no/invalid token → 401; a project the caller cannot view, or
//! an id that does not exist → 404 (the two are indistinguishable, so ids
//! and project names of other projects do not leak); a project the caller
//! can view with too small a role → 403.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, Request};
use axum::middleware::Next;
use axum::response::Response;
use orca_store::ProjectRole;
use serde::Deserialize;

use crate::AppState;
use crate::audit::AuditSlot;
use crate::auth::{AuthError, Caller, authenticate};
use crate::error::ApiError;
use crate::routes::workflows::ImportRequest;

/// Largest request body the layer reads to find a project (axum's default
/// body limit for JSON, so no request the handler accepts is refused).
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Perm {
    /// Anyone, without a token (login).
    Public,
    /// Any authenticated user.
    Authenticated,
    /// Admins only.
    Admin,
    /// Any role in the project.
    ProjectView,
    /// Operator or more: run, stop, pause, resume, rerun, force success.
    ProjectOperate,
    /// Editor or more: change workflow definitions.
    ProjectEdit,
    /// Owner: manage the project's members.
    ProjectOwn,
}

impl Perm {
    /// The smallest project role granting this permission (`None`: not a
    /// project permission).
    pub fn min_role(self) -> Option<ProjectRole> {
        match self {
            Perm::ProjectView => Some(ProjectRole::Viewer),
            Perm::ProjectOperate => Some(ProjectRole::Operator),
            Perm::ProjectEdit => Some(ProjectRole::Editor),
            Perm::ProjectOwn => Some(ProjectRole::Owner),
            Perm::Public | Perm::Authenticated | Perm::Admin => None,
        }
    }
}

/// Where the project of a request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProjectFrom {
    /// The route is not about one project.
    Nothing,
    /// The `{project}` path segment.
    PathProject,
    /// The run (workflow instance) in the `{id}` path segment.
    Run,
    /// The command in the `{id}` path segment.
    Command,
    /// The task instance in the `{id}` path segment.
    TaskInstance,
    /// `spec.project` of a JSON body (`POST /workflows`).
    WorkflowSpecBody,
    /// Every project an import body writes to (`POST /workflows:import`).
    ImportBody,
}

/// An HTTP method of the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Patch => "PATCH",
            Verb::Delete => "DELETE",
        }
    }
}

/// What one route (method + path under `/api/v1`) requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteRule {
    pub verb: Verb,
    /// axum path syntax, relative to `/api/v1`.
    pub path: &'static str,
    pub perm: Perm,
    pub project: ProjectFrom,
}

impl RouteRule {
    /// Whether the rule is coherent: project permissions name where the
    /// project comes from, the others name nothing.
    pub fn is_consistent(&self) -> bool {
        self.perm.min_role().is_some() != (self.project == ProjectFrom::Nothing)
    }
}

/// The per-route middleware enforcing `rule` (see the module docs). On
/// success the handler finds the [`Caller`] in the request extensions.
pub async fn authorize(
    state: AppState,
    rule: RouteRule,
    req: Request,
    next: Next,
) -> Result<Response, AuthError> {
    if rule.perm == Perm::Public {
        return Ok(next.run(req).await);
    }
    let caller = authenticate(&state.store, req.headers()).await?;
    let audit = req.extensions().get::<AuditSlot>().cloned();
    if let Some(a) = &audit {
        a.set_user(&caller.user.username);
    }
    let (mut parts, body) = req.into_parts();
    let body = match rule.perm {
        Perm::Public | Perm::Authenticated => body,
        Perm::Admin if caller.user.admin => body,
        Perm::Admin => {
            return Err(AuthError::Forbidden(
                "only an admin may do this".to_string(),
            ));
        }
        Perm::ProjectView | Perm::ProjectOperate | Perm::ProjectEdit | Perm::ProjectOwn => {
            let params = Path::<HashMap<String, String>>::from_request_parts(&mut parts, &state)
                .await
                .map(|Path(p)| p)
                .unwrap_or_default();
            check_project(&state, &caller, rule, &params, body, audit.as_ref()).await?
        }
    };
    parts.extensions.insert(caller);
    Ok(next.run(Request::from_parts(parts, body)).await)
}

/// Checks the caller's role in the request's project(s); returns the body
/// (read and rebuilt when the project is in it).
async fn check_project(
    state: &AppState,
    caller: &Caller,
    rule: RouteRule,
    params: &HashMap<String, String>,
    body: Body,
    audit: Option<&AuditSlot>,
) -> Result<Body, AuthError> {
    let note = |project: &str| {
        if let Some(a) = audit {
            a.set_project(project);
        }
    };
    let Some(min) = rule.perm.min_role() else {
        return Ok(body);
    };
    let by_id = |what: &'static str| -> Result<(i64, ApiError), AuthError> {
        let raw = params.get("id").map(String::as_str).unwrap_or_default();
        let not_found = ApiError::NotFound {
            what,
            id: raw.to_string(),
        };
        match raw.parse::<i64>() {
            Ok(id) => Ok((id, not_found)),
            Err(_) => Err(not_found.into()),
        }
    };
    let store = &state.store;
    let (project, hidden) = match rule.project {
        ProjectFrom::Nothing => return Ok(body),
        ProjectFrom::PathProject => {
            let p = params.get("project").cloned().unwrap_or_default();
            let hidden = ApiError::NotFound {
                what: "project",
                id: p.clone(),
            };
            (Some(p), hidden)
        }
        ProjectFrom::Run => {
            let (id, nf) = by_id("run")?;
            (store.project_of_run(id).await?, nf)
        }
        ProjectFrom::Command => {
            let (id, nf) = by_id("command")?;
            (store.project_of_command(id).await?, nf)
        }
        ProjectFrom::TaskInstance => {
            let (id, nf) = by_id("task instance")?;
            (store.project_of_task_instance(id).await?, nf)
        }
        ProjectFrom::WorkflowSpecBody | ProjectFrom::ImportBody => {
            let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
                .await
                .map_err(|e| {
                    ApiError::Invalid(format!(
                        "request body unreadable or larger than {MAX_BODY_BYTES} bytes: {e}"
                    ))
                })?;
            if rule.project == ProjectFrom::WorkflowSpecBody {
                let p = spec_project(&bytes)?;
                note(&p);
                require(caller, min, &p, project_hidden(&p))?;
            } else {
                import_projects(caller, min, &bytes, note)?;
            }
            return Ok(Body::from(bytes));
        }
    };
    match project {
        Some(p) => {
            note(&p);
            require(caller, min, &p, hidden)?
        }
        None => return Err(hidden.into()),
    }
    Ok(body)
}

pub(crate) fn project_hidden(project: &str) -> ApiError {
    ApiError::NotFound {
        what: "project",
        id: project.to_string(),
    }
}

/// Admins pass; others need at least `min` in `project`, or get `hidden`
/// (404) when they have no role there at all.
pub(crate) fn require(
    caller: &Caller,
    min: ProjectRole,
    project: &str,
    hidden: ApiError,
) -> Result<(), AuthError> {
    if caller.user.admin {
        return Ok(());
    }
    match caller.role(project) {
        None => Err(hidden.into()),
        Some(role) if role < min => Err(AuthError::Forbidden(format!(
            "this needs role {min} or higher in project {project:?}; {} is {role} there",
            caller.user.username
        ))),
        Some(_) => Ok(()),
    }
}

/// `spec.project` of a `POST /workflows` body (its default when absent).
fn spec_project(bytes: &Bytes) -> Result<String, ApiError> {
    #[derive(Deserialize)]
    struct Spec {
        #[serde(default = "orca_common::default_project")]
        project: String,
    }
    #[derive(Deserialize)]
    struct Body {
        spec: Spec,
    }
    serde_json::from_slice::<Body>(bytes)
        .map(|b| b.spec.project)
        .map_err(|e| ApiError::Invalid(format!("request body: {e}")))
}

/// Checks `min` on every project an import writes to. Mirrors
/// `routes::workflows::import`: a DolphinScheduler JSON export goes into
/// `project`; a pydolphinscheduler YAML into the project it names, or
/// `project` when it names none. The YAML is only parsed once the caller
/// may edit `project`.
fn import_projects(
    caller: &Caller,
    min: ProjectRole,
    bytes: &Bytes,
    note: impl Fn(&str),
) -> Result<(), AuthError> {
    let req: ImportRequest = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::Invalid(format!("request body: {e}")))?;
    import_request_projects(caller, min, &req, note)
}

/// Checks `min` on every project the import `req` writes to (REST
/// `POST /workflows:import` and gRPC `ImportWorkflows`).
pub(crate) fn import_request_projects(
    caller: &Caller,
    min: ProjectRole,
    req: &ImportRequest,
    note: impl Fn(&str),
) -> Result<(), AuthError> {
    note(&req.project);
    require(caller, min, &req.project, project_hidden(&req.project))?;
    if req.format != "pydolphinscheduler-yaml" {
        return Ok(());
    }
    let imported = orca_common::workflow::import::import_pydolphinscheduler_yaml(
        &req.content,
        "import.yaml",
        std::path::Path::new("."),
    )
    .map_err(|e| ApiError::Invalid(e.to_string()))?;
    for spec in &imported.workflows {
        if spec.project != orca_common::default_project() {
            require(caller, min, &spec.project, project_hidden(&spec.project))?;
        }
    }
    Ok(())
}
