//! Runs (workflow instances): trigger and read.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use orca_common::WorkflowState;
use orca_store::{
    CommandKind, CommandOptions, CommandRow, NewCommand, RunScope, TaskInstanceRow,
    WorkflowInstanceRow,
};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;

#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
pub struct TriggerRequest {
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Defaults to the current version.
    #[serde(default)]
    pub version: Option<i32>,
    /// Run only from these tasks (see `scope`); empty: the whole workflow.
    #[serde(default)]
    pub start_tasks: Vec<String>,
    /// With `start_tasks`: `downstream` (default), `upstream` or `only`.
    #[serde(default)]
    pub scope: Option<RunScope>,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct TriggerResponse {
    pub command_id: i64,
    pub workflow_definition_id: i64,
    pub version: i32,
    /// True when an earlier request with the same `Idempotency-Key` already
    /// started this run (nothing new was started).
    #[serde(default)]
    pub replayed: bool,
}

/// Longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 200;

/// `POST /workflows/{project}/{name}/runs`: asks for a run (a START command).
#[utoipa::path(
    post,
    path = "/workflows/{project}/{name}/runs",
    tag = "runs",
    operation_id = "trigger_run",
    params(
        ("project" = String, Path, description = "Project name"),
        ("name" = String, Path, description = "Workflow name"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe trigger: a later request with the same key for the same workflow returns the first run's command instead of starting another (at most 200 printable ASCII characters)"),
    ),
    request_body = TriggerRequest,
    responses(
        (status = 200, description = "The START command written", body = TriggerResponse),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
pub async fn trigger(
    State(state): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    Json(req): Json<TriggerRequest>,
) -> Result<Json<TriggerResponse>, ApiError> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let k = v.to_str().ok().map(str::trim).unwrap_or("");
            if k.is_empty()
                || k.len() > MAX_IDEMPOTENCY_KEY
                || !k.chars().all(|c| c.is_ascii_graphic())
            {
                return Err(ApiError::Invalid(format!(
                    "Idempotency-Key: use 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters without spaces"
                )));
            }
            Some(k.to_string())
        }
    };
    let def = crate::routes::workflows::current_workflow(&state, &project, &name).await?;
    refuse_offline(&state, def.id, &project, &name, "triggered").await?;
    let def = match req.version {
        Some(v) => state
            .store
            .workflow_version(def.id, v)
            .await?
            .ok_or(ApiError::NotFound {
                what: "workflow version",
                id: format!("{project}/{name}@{v}"),
            })?,
        None => def,
    };
    let version = def.version;
    let unknown: Vec<&str> = req
        .start_tasks
        .iter()
        .filter(|t| !def.spec.tasks.iter().any(|s| s.name == **t))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = def.spec.tasks.iter().map(|t| t.name.as_str()).collect();
        return Err(ApiError::Invalid(format!(
            "start_tasks: {unknown:?} are not tasks of {project}/{name} v{version}; its tasks are {known:?}"
        )));
    }
    let new = NewCommand {
        kind: CommandKind::Start,
        target_instance_id: None,
        options: CommandOptions {
            start_tasks: req.start_tasks,
            scope: req.scope,
            task: None,
        },
        workflow_definition_id: def.id,
        version,
        params: req.params,
        schedule_time: chrono::Utc::now(),
    };
    let (cmd, replayed) = match &key {
        Some(k) => state.store.insert_command_idempotent(new, k).await?,
        None => (state.store.insert_command(new).await?, false),
    };
    if !replayed {
        (state.nudge)();
    }
    Ok(Json(TriggerResponse {
        command_id: cmd.id,
        workflow_definition_id: cmd.workflow_definition_id,
        version: cmd.version,
        replayed,
    }))
}

/// `GET /commands/{id}`: a command and what became of it.
#[utoipa::path(
    get,
    path = "/commands/{id}",
    tag = "runs",
    operation_id = "get_command",
    params(("id" = i64, Path, description = "Command id")),
    responses(
        (status = 200, description = "The command", body = CommandRow),
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub async fn command(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<CommandRow>, ApiError> {
    let cmd = state.store.command(id).await?.ok_or(ApiError::NotFound {
        what: "command",
        id: id.to_string(),
    })?;
    Ok(Json(cmd))
}

/// `GET /runs?limit=&cursor=&state=&project=&workflow=&since=&until=`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Items per page (1..=1000, default 50).
    #[param(minimum = 1, maximum = 1000)]
    #[serde(default)]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page; absent for the first page.
    #[serde(default)]
    pub cursor: Option<String>,
    /// RUNNING, SUCCESS, FAILURE, STOP or PAUSE.
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    /// Workflow name.
    #[serde(default)]
    pub workflow: Option<String>,
    /// Started at or after this time (RFC 3339).
    #[serde(default)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Started before this time (RFC 3339).
    #[serde(default)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

/// A run with all its task attempts.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct RunDetail {
    pub instance: WorkflowInstanceRow,
    pub tasks: Vec<TaskInstanceRow>,
}

/// `GET /runs/{id}`: a run with all its task attempts.
#[utoipa::path(
    get,
    path = "/runs/{id}",
    tag = "runs",
    operation_id = "get_run",
    params(("id" = i64, Path, description = "Run (workflow instance) id")),
    responses(
        (status = 200, description = "The run", body = RunDetail),
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<RunDetail>, ApiError> {
    let instance = state
        .store
        .workflow_instance(id)
        .await?
        .ok_or(ApiError::NotFound {
            what: "run",
            id: id.to_string(),
        })?;
    let tasks = state.store.task_instances(id).await?;
    Ok(Json(RunDetail { instance, tasks }))
}

/// Writes a command about an existing run, after checking that the run is
/// in a state the command applies to, and nudges the leader.
async fn command_on_run(
    state: &AppState,
    id: i64,
    kind: CommandKind,
    options: CommandOptions,
    applies: impl Fn(WorkflowState) -> Result<(), String>,
) -> Result<Json<CommandRow>, ApiError> {
    let instance = state
        .store
        .workflow_instance(id)
        .await?
        .ok_or(ApiError::NotFound {
            what: "run",
            id: id.to_string(),
        })?;
    applies(instance.state)
        .map_err(|why| ApiError::Conflict(format!("run {id} is {}: {why}", instance.state)))?;
    let cmd = state
        .store
        .insert_command(NewCommand {
            kind,
            target_instance_id: Some(id),
            options,
            workflow_definition_id: instance.workflow_definition_id,
            version: instance.version,
            params: BTreeMap::new(),
            schedule_time: chrono::Utc::now(),
        })
        .await?;
    (state.nudge)();
    Ok(Json(cmd))
}

/// `POST /runs/{id}/stop`: kill the run's running tasks, schedule nothing
/// more; it reaches STOP once its tasks are gone.
#[utoipa::path(
    post,
    path = "/runs/{id}/stop",
    tag = "runs",
    operation_id = "stop_run",
    params(("id" = i64, Path, description = "Run (workflow instance) id")),
    responses(
        (status = 200, description = "The STOP command written", body = CommandRow),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
    ),
)]
pub async fn stop(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<CommandRow>, ApiError> {
    command_on_run(&state, id, CommandKind::Stop, Default::default(), |s| {
        if s.is_terminal() {
            Err("it already finished; nothing to stop".into())
        } else {
            Ok(())
        }
    })
    .await
}

/// `POST /runs/{id}/pause`: running tasks finish, nothing new starts; the
/// run reaches PAUSE.
#[utoipa::path(
    post,
    path = "/runs/{id}/pause",
    tag = "runs",
    operation_id = "pause_run",
    params(("id" = i64, Path, description = "Run (workflow instance) id")),
    responses(
        (status = 200, description = "The PAUSE command written", body = CommandRow),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
    ),
)]
pub async fn pause(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<CommandRow>, ApiError> {
    command_on_run(&state, id, CommandKind::Pause, Default::default(), |s| {
        if s == WorkflowState::Running {
            Ok(())
        } else {
            Err("only a RUNNING run can be paused".into())
        }
    })
    .await
}

/// `POST /runs/{id}/resume`: a paused run goes on.
#[utoipa::path(
    post,
    path = "/runs/{id}/resume",
    tag = "runs",
    operation_id = "resume_run",
    params(("id" = i64, Path, description = "Run (workflow instance) id")),
    responses(
        (status = 200, description = "The RESUME command written", body = CommandRow),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
    ),
)]
pub async fn resume(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<CommandRow>, ApiError> {
    command_on_run(&state, id, CommandKind::Resume, Default::default(), |s| {
        if s == WorkflowState::Paused {
            Ok(())
        } else {
            Err("only a paused run can be resumed".into())
        }
    })
    .await
}

/// `POST /runs/{id}/recover-failed`: run the tasks of a finished run that
/// did not succeed again (with what depends on them), in the same run.
#[utoipa::path(
    post,
    path = "/runs/{id}/recover-failed",
    tag = "runs",
    operation_id = "recover_failed_tasks",
    params(("id" = i64, Path, description = "Run (workflow instance) id")),
    responses(
        (status = 200, description = "The RECOVER_FAILED command written", body = CommandRow),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
    ),
)]
pub async fn recover_failed(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<CommandRow>, ApiError> {
    if let Some(run) = state.store.workflow_instance(id).await? {
        refuse_offline(
            &state,
            run.workflow_definition_id,
            &run.project,
            &run.name,
            "recovered",
        )
        .await?;
    }
    command_on_run(
        &state,
        id,
        CommandKind::RecoverFailed,
        Default::default(),
        |s| match s {
            WorkflowState::Failure | WorkflowState::Stop => Ok(()),
            _ => Err("only a FAILURE or STOP run has failed tasks to run again".into()),
        },
    )
    .await
}

/// `POST /runs/{id}/tasks/{task}/force-success`: the task's last attempt of
/// a run that is not running becomes SUCCESS.
#[utoipa::path(
    post,
    path = "/runs/{id}/tasks/{task}/force-success",
    tag = "runs",
    operation_id = "force_task_success",
    params(("id" = i64, Path, description = "Run (workflow instance) id"), ("task" = String, Path, description = "Task name")),
    responses(
        (status = 200, description = "The FORCE_SUCCESS command written", body = CommandRow),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
    ),
)]
pub async fn force_success(
    State(state): State<AppState>,
    Path((id, task)): Path<(i64, String)>,
) -> Result<Json<CommandRow>, ApiError> {
    let tasks = state.store.task_instances(id).await?;
    if !tasks.iter().any(|t| t.task_name == task) {
        return Err(ApiError::NotFound {
            what: "task in run",
            id: format!("{id}/{task}"),
        });
    }
    let options = CommandOptions {
        task: Some(task),
        ..Default::default()
    };
    command_on_run(&state, id, CommandKind::ForceSuccess, options, |s| {
        if s == WorkflowState::Running {
            Err("pause or stop it first".into())
        } else {
            Ok(())
        }
    })
    .await
}

/// 409 while workflow `def_id` is offline: nothing new of it starts (a
/// trigger, a rerun, a recovery); runs under way can still be stopped,
/// paused and resumed.
async fn refuse_offline(
    state: &AppState,
    def_id: i64,
    project: &str,
    name: &str,
    action: &str,
) -> Result<(), ApiError> {
    if state.store.release_state(def_id).await? == Some(orca_store::ReleaseState::Offline) {
        return Err(ApiError::Conflict(format!(
            "workflow {project}/{name} is offline: it cannot be {action}; bring it online first (POST /api/v1/workflows/{project}/{name}/online)"
        )));
    }
    Ok(())
}

/// `POST /runs/{id}/rerun`: a new run of the same workflow version with the
/// same parameters and schedule time.
#[utoipa::path(
    post,
    path = "/runs/{id}/rerun",
    tag = "runs",
    operation_id = "rerun",
    params(("id" = i64, Path, description = "Run (workflow instance) id")),
    responses(
        (status = 200, description = "The START command of the new run", body = TriggerResponse),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
    ),
)]
pub async fn rerun(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<TriggerResponse>, ApiError> {
    let instance = state
        .store
        .workflow_instance(id)
        .await?
        .ok_or(ApiError::NotFound {
            what: "run",
            id: id.to_string(),
        })?;
    refuse_offline(
        &state,
        instance.workflow_definition_id,
        &instance.project,
        &instance.name,
        "rerun",
    )
    .await?;
    let cmd = state
        .store
        .insert_command(NewCommand {
            kind: CommandKind::Start,
            target_instance_id: None,
            options: Default::default(),
            workflow_definition_id: instance.workflow_definition_id,
            version: instance.version,
            params: instance.params.clone(),
            schedule_time: instance.schedule_time,
        })
        .await?;
    (state.nudge)();
    Ok(Json(TriggerResponse {
        command_id: cmd.id,
        workflow_definition_id: instance.workflow_definition_id,
        version: instance.version,
        replayed: false,
    }))
}

/// Body of `POST /runs:bulk`.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct BulkRequest {
    /// `stop`, `pause`, `resume` or `recover-failed`.
    pub op: String,
    /// Run ids (at most 1000).
    pub ids: Vec<i64>,
}

/// The outcome of a bulk operation on one run.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct BulkItem {
    pub id: i64,
    /// As the single-run operation would have answered (200, 403, 404, 409).
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `POST /runs:bulk`: one operation on many runs. Each run is authorised and
/// checked on its own (operator of its project); the answer lists every
/// run's outcome, so one refusal does not stop the others.
#[utoipa::path(
    post,
    path = "/runs:bulk",
    tag = "runs",
    operation_id = "bulk_run_operation",
    request_body = BulkRequest,
    responses(
        (status = 200, description = "The outcome per run, in request order", body = Vec<BulkItem>),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
pub async fn bulk(
    State(state): State<AppState>,
    caller: crate::auth::Caller,
    Json(req): Json<BulkRequest>,
) -> Result<Json<Vec<BulkItem>>, ApiError> {
    use axum::response::IntoResponse;
    let kind = match req.op.as_str() {
        "stop" | "pause" | "resume" | "recover-failed" => req.op.clone(),
        other => {
            return Err(ApiError::Invalid(format!(
                "op: {other:?} is not a bulk operation; use stop, pause, resume or recover-failed"
            )));
        }
    };
    if req.ids.len() > 1000 {
        return Err(ApiError::Invalid(format!(
            "ids: {} runs in one request; at most 1000",
            req.ids.len()
        )));
    }
    let mut out = Vec::with_capacity(req.ids.len());
    for id in req.ids {
        let allowed = match state.store.project_of_run(id).await? {
            None => Err(ApiError::NotFound {
                what: "run",
                id: id.to_string(),
            }
            .into_response()),
            Some(project) => crate::authz::require(
                &caller,
                orca_store::ProjectRole::Operator,
                &project,
                ApiError::NotFound {
                    what: "run",
                    id: id.to_string(),
                },
            )
            .map_err(|e| e.into_response()),
        };
        let result = match allowed {
            Err(resp) => Err(resp),
            Ok(()) => {
                let done = match kind.as_str() {
                    "stop" => stop(State(state.clone()), Path(id)).await,
                    "pause" => pause(State(state.clone()), Path(id)).await,
                    "resume" => resume(State(state.clone()), Path(id)).await,
                    _ => recover_failed(State(state.clone()), Path(id)).await,
                };
                done.map_err(|e| e.into_response())
            }
        };
        out.push(match result {
            Ok(Json(cmd)) => BulkItem {
                id,
                status: 200,
                command_id: Some(cmd.id),
                detail: None,
            },
            Err(resp) => {
                let status = resp.status().as_u16();
                let body = axum::body::to_bytes(resp.into_body(), 64 * 1024)
                    .await
                    .unwrap_or_default();
                let detail = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["detail"].as_str().map(str::to_string));
                BulkItem {
                    id,
                    status,
                    command_id: None,
                    detail,
                }
            }
        });
    }
    Ok(Json(out))
}
