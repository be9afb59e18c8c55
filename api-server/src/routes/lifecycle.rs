//! The lifecycle of workflow definitions: versions and their diff, release
//! state (online/offline), deletion.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::{Path, Query, State};
use orca_store::{DeleteOutcome, ReleaseState, WorkflowDefinitionRow, WorkflowVersionInfo};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AppState;
use crate::error::ApiError;
use crate::page::{Page, PageQuery, encode_id};
use crate::routes::workflows::current_workflow;

/// Every version of a workflow: all pages of `GET …/versions` together (the
/// CLI gathers them).
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct WorkflowVersions {
    pub project: String,
    pub name: String,
    pub current_version: i32,
    pub release_state: ReleaseState,
    /// Oldest first.
    pub versions: Vec<WorkflowVersionInfo>,
}

/// `GET /workflows/{project}/{name}/versions`: a page of versions (the
/// `items` and `next_cursor` of every list) with the workflow they are of.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct WorkflowVersionPage {
    pub project: String,
    pub name: String,
    pub current_version: i32,
    pub release_state: ReleaseState,
    /// Oldest first.
    pub items: Vec<WorkflowVersionInfo>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One field that differs between two versions.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct FieldChange {
    pub field: String,
    /// `null` when the field is absent in the old version.
    pub old: Value,
    /// `null` when the field is absent in the new version.
    pub new: Value,
}

/// A task present in both versions whose definition differs.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct TaskChange {
    pub task: String,
    pub fields: Vec<FieldChange>,
}

/// `GET /workflows/{project}/{name}/versions/{version}/diff/{to}`.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct WorkflowDiff {
    pub project: String,
    pub name: String,
    pub from: i32,
    pub to: i32,
    /// Tasks only in `to`, by name.
    pub tasks_added: Vec<String>,
    /// Tasks only in `from`, by name.
    pub tasks_removed: Vec<String>,
    /// Tasks in both whose definition differs, by name.
    pub tasks_changed: Vec<TaskChange>,
    /// Workflow-level fields that differ: `params` (global parameters),
    /// `schedule`, `failure_strategy`, `description`.
    pub workflow_changes: Vec<FieldChange>,
    /// Unified line diff of the two versions' sources.
    pub source_diff: String,
}

/// Answer of `POST …/online` and `POST …/offline`.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct ReleaseStateResponse {
    pub project: String,
    pub name: String,
    pub release_state: ReleaseState,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Also delete the workflow's finished runs (instances, task instances,
    /// stored logs, commands).
    #[serde(default)]
    pub force: bool,
}

/// Answer of `DELETE /workflows/{project}/{name}`.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct DeleteWorkflowResponse {
    pub project: String,
    pub name: String,
    /// Finished runs deleted with it (only with `force=true`).
    pub deleted_runs: usize,
}

async fn version(
    state: &AppState,
    def: &WorkflowDefinitionRow,
    v: i32,
) -> Result<WorkflowDefinitionRow, ApiError> {
    if v == def.version {
        return Ok(def.clone());
    }
    state
        .store
        .workflow_version(def.id, v)
        .await?
        .ok_or(ApiError::NotFound {
            what: "workflow version",
            id: format!("{}/{}@{v}", def.project, def.name),
        })
}

/// `GET /workflows/{project}/{name}/versions`: the stored versions, oldest
/// first.
#[utoipa::path(
    get,
    path = "/workflows/{project}/{name}/versions",
    tag = "workflows",
    operation_id = "list_workflow_versions",
    params(("project" = String, Path, description = "Project name"), ("name" = String, Path, description = "Workflow name"), PageQuery),
    responses(
        (status = 200, description = "A page of the versions, oldest first, and the release state", body = WorkflowVersionPage),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
pub async fn list_versions(
    State(state): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    Query(page): Query<PageQuery>,
) -> Result<Json<WorkflowVersionPage>, ApiError> {
    let limit = page.limit()?;
    let after = page
        .cursor_id()?
        .map(|v| i32::try_from(v).map_err(|_| bad_version_cursor(&page)))
        .transpose()?;
    let def = current_workflow(&state, &project, &name).await?;
    let release_state = state.store.release_state(def.id).await?.unwrap_or_default();
    let rows = state
        .store
        .workflow_versions_page(def.id, after, limit)
        .await?;
    let page = Page::from_fetched(rows, limit, |v| encode_id(i64::from(v.version)));
    Ok(Json(WorkflowVersionPage {
        project: def.project,
        name: def.name,
        current_version: def.version,
        release_state,
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

fn bad_version_cursor(page: &PageQuery) -> ApiError {
    ApiError::Invalid(format!(
        "cursor: {:?} is not a cursor of this list; pass the `next_cursor` of the previous page, or omit it for the first page",
        page.cursor.as_deref().unwrap_or_default()
    ))
}

/// `GET /workflows/{project}/{name}/versions/{version}`: the spec and
/// source of one version.
#[utoipa::path(
    get,
    path = "/workflows/{project}/{name}/versions/{version}",
    tag = "workflows",
    operation_id = "get_workflow_version",
    params(
        ("project" = String, Path, description = "Project name"),
        ("name" = String, Path, description = "Workflow name"),
        ("version" = i32, Path, description = "Version number"),
    ),
    responses(
        (status = 200, description = "The version", body = orca_store::WorkflowDefinitionRow),
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub async fn get_version(
    State(state): State<AppState>,
    Path((project, name, v)): Path<(String, String, i32)>,
) -> Result<Json<WorkflowDefinitionRow>, ApiError> {
    let def = current_workflow(&state, &project, &name).await?;
    Ok(Json(version(&state, &def, v).await?))
}

/// `GET /workflows/{project}/{name}/versions/{version}/diff/{to}`: what
/// changed from one version to another.
#[utoipa::path(
    get,
    path = "/workflows/{project}/{name}/versions/{version}/diff/{to}",
    tag = "workflows",
    operation_id = "diff_workflow_versions",
    params(
        ("project" = String, Path, description = "Project name"),
        ("name" = String, Path, description = "Workflow name"),
        ("version" = i32, Path, description = "The old version"),
        ("to" = i32, Path, description = "The new version"),
    ),
    responses(
        (status = 200, description = "Tasks added, removed and changed, workflow-level changes and a unified diff of the sources", body = WorkflowDiff),
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub async fn diff(
    State(state): State<AppState>,
    Path((project, name, from, to)): Path<(String, String, i32, i32)>,
) -> Result<Json<WorkflowDiff>, ApiError> {
    let def = current_workflow(&state, &project, &name).await?;
    let old = version(&state, &def, from).await?;
    let new = version(&state, &def, to).await?;
    diff_versions(&old, &new).map(Json)
}

fn to_object(what: &str, v: impl Serialize) -> Result<serde_json::Map<String, Value>, ApiError> {
    match serde_json::to_value(v) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::Internal(format!("{what} is not a JSON object"))),
        Err(e) => Err(ApiError::Internal(format!("{what} cannot be encoded: {e}"))),
    }
}

/// Fields of two JSON objects that differ, by name.
fn field_changes(
    old: &serde_json::Map<String, Value>,
    new: &serde_json::Map<String, Value>,
) -> Vec<FieldChange> {
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let o = old.get(k).cloned().unwrap_or(Value::Null);
            let n = new.get(k).cloned().unwrap_or(Value::Null);
            (o != n).then(|| FieldChange {
                field: k.clone(),
                old: o,
                new: n,
            })
        })
        .collect()
}

/// The structured and textual diff of two versions of one workflow.
pub fn diff_versions(
    old: &WorkflowDefinitionRow,
    new: &WorkflowDefinitionRow,
) -> Result<WorkflowDiff, ApiError> {
    let mut old_wf = to_object("workflow spec", &old.spec)?;
    let mut new_wf = to_object("workflow spec", &new.spec)?;
    old_wf.remove("tasks");
    new_wf.remove("tasks");
    let workflow_changes = field_changes(&old_wf, &new_wf);

    let old_tasks: BTreeMap<&str, _> = old
        .spec
        .tasks
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let new_tasks: BTreeMap<&str, _> = new
        .spec
        .tasks
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let tasks_added = new_tasks
        .keys()
        .filter(|k| !old_tasks.contains_key(*k))
        .map(|k| k.to_string())
        .collect();
    let tasks_removed = old_tasks
        .keys()
        .filter(|k| !new_tasks.contains_key(*k))
        .map(|k| k.to_string())
        .collect();
    let mut tasks_changed = Vec::new();
    for (name, o) in &old_tasks {
        let Some(n) = new_tasks.get(name) else {
            continue;
        };
        let fields = field_changes(&to_object("task spec", o)?, &to_object("task spec", n)?);
        if !fields.is_empty() {
            tasks_changed.push(TaskChange {
                task: name.to_string(),
                fields,
            });
        }
    }
    let source_diff = similar::TextDiff::from_lines(&old.source, &new.source)
        .unified_diff()
        .context_radius(3)
        .header(&format!("v{}", old.version), &format!("v{}", new.version))
        .to_string();
    Ok(WorkflowDiff {
        project: new.project.clone(),
        name: new.name.clone(),
        from: old.version,
        to: new.version,
        tasks_added,
        tasks_removed,
        tasks_changed,
        workflow_changes,
        source_diff,
    })
}

async fn set_state(
    state: &AppState,
    project: &str,
    name: &str,
    release_state: ReleaseState,
) -> Result<ReleaseStateResponse, ApiError> {
    let def = current_workflow(state, project, name).await?;
    if !state.store.set_release_state(def.id, release_state).await? {
        return Err(ApiError::NotFound {
            what: "workflow",
            id: format!("{project}/{name}"),
        });
    }
    // The leader re-reads the schedules it fires on a nudge.
    (state.nudge)();
    Ok(ReleaseStateResponse {
        project: def.project,
        name: def.name,
        release_state,
    })
}

/// `POST /workflows/{project}/{name}/online`: lets the workflow be
/// triggered and its schedule fire again.
#[utoipa::path(
    post,
    path = "/workflows/{project}/{name}/online",
    tag = "workflows",
    operation_id = "online_workflow",
    params(("project" = String, Path, description = "Project name"), ("name" = String, Path, description = "Workflow name")),
    responses(
        (status = 200, description = "The workflow is online", body = ReleaseStateResponse),
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub async fn online(
    State(state): State<AppState>,
    Path((project, name)): Path<(String, String)>,
) -> Result<Json<ReleaseStateResponse>, ApiError> {
    set_state(&state, &project, &name, ReleaseState::Online)
        .await
        .map(Json)
}

/// `POST /workflows/{project}/{name}/offline`: triggering it is refused
/// (409) and its schedule does not fire until it is online again; runs
/// already started go on.
#[utoipa::path(
    post,
    path = "/workflows/{project}/{name}/offline",
    tag = "workflows",
    operation_id = "offline_workflow",
    params(("project" = String, Path, description = "Project name"), ("name" = String, Path, description = "Workflow name")),
    responses(
        (status = 200, description = "The workflow is offline", body = ReleaseStateResponse),
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub async fn offline(
    State(state): State<AppState>,
    Path((project, name)): Path<(String, String)>,
) -> Result<Json<ReleaseStateResponse>, ApiError> {
    set_state(&state, &project, &name, ReleaseState::Offline)
        .await
        .map(Json)
}

/// `DELETE /workflows/{project}/{name}`: deletes the definition with all
/// its versions, task definitions and relations, and its schedule.
///
/// Refused with 409 while a run of it is RUNNING or PAUSE or a START
/// command for it is not consumed yet (the answer names them). If it has
/// finished runs, refused with 409 unless `force=true`, which deletes those
/// runs too (workflow and task instances, stored logs, commands).
#[utoipa::path(
    delete,
    path = "/workflows/{project}/{name}",
    tag = "workflows",
    operation_id = "delete_workflow",
    params(
        ("project" = String, Path, description = "Project name"),
        ("name" = String, Path, description = "Workflow name"),
        DeleteQuery,
    ),
    responses(
        (status = 200, description = "Deleted", body = DeleteWorkflowResponse),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> Result<Json<DeleteWorkflowResponse>, ApiError> {
    let def = current_workflow(&state, &project, &name).await?;
    match state.store.delete_workflow(def.id, q.force).await? {
        DeleteOutcome::Deleted { instances } => {
            // The leader drops the deleted schedule on its next look.
            (state.nudge)();
            Ok(Json(DeleteWorkflowResponse {
                project: def.project,
                name: def.name,
                deleted_runs: instances,
            }))
        }
        DeleteOutcome::Active {
            runs,
            pending_commands,
        } => {
            let mut why = Vec::new();
            if !runs.is_empty() {
                why.push(format!("runs {runs:?} are RUNNING or PAUSE"));
            }
            if !pending_commands.is_empty() {
                why.push(format!(
                    "START commands {pending_commands:?} are not consumed yet"
                ));
            }
            Err(ApiError::Conflict(format!(
                "workflow {project}/{name} cannot be deleted: {}; stop them (POST /runs/{{id}}/stop) and wait for them to end",
                why.join(" and ")
            )))
        }
        DeleteOutcome::HasInstances { instances } => Err(ApiError::Conflict(format!(
            "workflow {project}/{name} has {instances} finished run(s); pass ?force=true to delete them with it"
        ))),
        DeleteOutcome::NotFound => Err(ApiError::NotFound {
            what: "workflow",
            id: format!("{project}/{name}"),
        }),
    }
}
