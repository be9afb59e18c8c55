//! `/workflows`: apply (create or new version) and read definitions.

use axum::Json;
use axum::extract::{Path, State};
use orca_common::WorkflowSpec;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;

/// Body of `POST /workflows`: the parsed spec (the CLI expands `$FILE{}`
/// relative to the user's file) and the source text for the record.
#[derive(Debug, Deserialize, Serialize)]
pub struct ApplyRequest {
    pub spec: WorkflowSpec,
    #[serde(default)]
    pub source: String,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct WorkflowSummary {
    pub id: i64,
    pub project: String,
    pub name: String,
    pub version: i32,
    pub tasks: usize,
}

impl From<&orca_store::WorkflowDefinitionRow> for WorkflowSummary {
    fn from(r: &orca_store::WorkflowDefinitionRow) -> Self {
        WorkflowSummary {
            id: r.id,
            project: r.project.clone(),
            name: r.name.clone(),
            version: r.version,
            tasks: r.spec.tasks.len(),
        }
    }
}

pub async fn apply(
    State(state): State<AppState>,
    Json(req): Json<ApplyRequest>,
) -> Result<Json<WorkflowSummary>, ApiError> {
    orca_common::workflow::validate_spec(&req.spec)
        .map_err(|e| ApiError::Invalid(e.to_string()))?;
    let row = state.store.save_workflow(&req.spec, &req.source).await?;
    Ok(Json(WorkflowSummary::from(&row)))
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<WorkflowSummary>>, ApiError> {
    let rows = state.store.list_workflows(None).await?;
    Ok(Json(rows.iter().map(WorkflowSummary::from).collect()))
}

pub async fn get(
    State(state): State<AppState>,
    Path((project, name)): Path<(String, String)>,
) -> Result<Json<orca_store::WorkflowDefinitionRow>, ApiError> {
    let row = state
        .store
        .workflow(&project, &name)
        .await?
        .ok_or(ApiError::NotFound {
            what: "workflow",
            id: format!("{project}/{name}"),
        })?;
    Ok(Json(row))
}
