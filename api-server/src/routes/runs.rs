//! Runs (workflow instances): trigger and read.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use orca_store::{CommandKind, CommandRow, NewCommand, TaskInstanceRow, WorkflowInstanceRow};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct TriggerRequest {
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Defaults to the current version.
    #[serde(default)]
    pub version: Option<i32>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct TriggerResponse {
    pub command_id: i64,
    pub workflow_definition_id: i64,
    pub version: i32,
}

pub async fn trigger(
    State(state): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    Json(req): Json<TriggerRequest>,
) -> Result<Json<TriggerResponse>, ApiError> {
    let def = state
        .store
        .workflow(&project, &name)
        .await?
        .ok_or(ApiError::NotFound {
            what: "workflow",
            id: format!("{project}/{name}"),
        })?;
    let version = match req.version {
        Some(v) => {
            state
                .store
                .workflow_version(def.id, v)
                .await?
                .ok_or(ApiError::NotFound {
                    what: "workflow version",
                    id: format!("{project}/{name}@{v}"),
                })?
                .version
        }
        None => def.version,
    };
    let cmd = state
        .store
        .insert_command(NewCommand {
            kind: CommandKind::Start,
            target_instance_id: None,
            workflow_definition_id: def.id,
            version,
            params: req.params,
            schedule_time: chrono::Utc::now(),
        })
        .await?;
    (state.nudge)();
    Ok(Json(TriggerResponse {
        command_id: cmd.id,
        workflow_definition_id: def.id,
        version,
    }))
}

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

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default = "default_limit")]
    pub limit: u64,
}

fn default_limit() -> u64 {
    50
}

pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<WorkflowInstanceRow>>, ApiError> {
    Ok(Json(
        state
            .store
            .list_workflow_instances(q.limit.min(1000))
            .await?,
    ))
}

/// A run with all its task attempts.
#[derive(Debug, Deserialize, Serialize)]
pub struct RunDetail {
    pub instance: WorkflowInstanceRow,
    pub tasks: Vec<TaskInstanceRow>,
}

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

/// `POST /runs/{id}/stop`: asks the leader to stop a run (kill its running
/// tasks, schedule nothing more). Answers with the STOP command; the run
/// reaches state STOP once its tasks are gone.
pub async fn stop(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<CommandRow>, ApiError> {
    let instance = state
        .store
        .workflow_instance(id)
        .await?
        .ok_or(ApiError::NotFound {
            what: "run",
            id: id.to_string(),
        })?;
    if instance.state.is_terminal() {
        return Err(ApiError::Conflict(format!(
            "run {id} already finished in state {}; nothing to stop",
            instance.state
        )));
    }
    let cmd = state
        .store
        .insert_command(NewCommand {
            kind: CommandKind::Stop,
            target_instance_id: Some(id),
            workflow_definition_id: instance.workflow_definition_id,
            version: instance.version,
            params: BTreeMap::new(),
            schedule_time: chrono::Utc::now(),
        })
        .await?;
    (state.nudge)();
    Ok(Json(cmd))
}
