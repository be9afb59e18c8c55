//! `/workflows`: apply (create or new version) and read definitions.

use axum::Json;
use axum::extract::{Path, State};
use orca_common::WorkflowSpec;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;

/// Body of `POST /workflows`: the parsed spec (the CLI expands `$FILE{}`
/// relative to the user's file) and the source text for the record.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct ApplyRequest {
    pub spec: WorkflowSpec,
    #[serde(default)]
    pub source: String,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
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

/// `POST /workflows`: creates a workflow, or a new version of it.
#[utoipa::path(
    post,
    path = "/workflows",
    tag = "workflows",
    operation_id = "apply_workflow",
    request_body = ApplyRequest,
    responses(
        (status = 200, description = "The saved version", body = WorkflowSummary),
    ),
)]
pub async fn apply(
    State(state): State<AppState>,
    Json(req): Json<ApplyRequest>,
) -> Result<Json<WorkflowSummary>, ApiError> {
    orca_common::workflow::validate_spec(&req.spec)
        .map_err(|e| ApiError::Invalid(e.to_string()))?;
    check_tenant(&state, &req.spec).await?;
    // A `schedule:` in the workflow file schedules it (UTC; the schedule
    // endpoints set a time zone, start/end, or disable it).
    if let Some(cron) = &req.spec.schedule {
        orca_common::cron::CronSchedule::parse(cron, "UTC")
            .map_err(|e| ApiError::Invalid(format!("workflow.schedule {cron:?}: {e}")))?;
    }
    let row = state.store.save_workflow(&req.spec, &req.source).await?;
    if let Some(cron) = &req.spec.schedule {
        let existing = state.store.schedule(row.id).await?;
        if existing.as_ref().is_none_or(|s| s.cron != *cron) {
            state
                .store
                .upsert_schedule(&orca_store::NewSchedule {
                    workflow_definition_id: row.id,
                    cron: cron.clone(),
                    timezone: existing
                        .as_ref()
                        .map(|s| s.timezone.clone())
                        .unwrap_or_else(|| "UTC".into()),
                    start_time: existing.as_ref().and_then(|s| s.start_time),
                    end_time: existing.as_ref().and_then(|s| s.end_time),
                    enabled: true,
                    params: existing.map(|s| s.params).unwrap_or_default(),
                })
                .await?;
            (state.nudge)();
        }
    }
    Ok(Json(WorkflowSummary::from(&row)))
}

/// 422 when the workflow names a tenant that is not defined.
pub(crate) async fn check_tenant(
    state: &AppState,
    spec: &orca_common::WorkflowSpec,
) -> Result<(), ApiError> {
    if let Some(t) = &spec.tenant
        && state
            .store
            .resource(orca_store::ResourceKind::Tenant, t)
            .await?
            .is_none()
    {
        return Err(ApiError::Invalid(format!(
            "workflow {}: tenant: there is no tenant {t:?}; an admin creates it with POST /api/v1/tenants, or remove `tenant` to run as the workers' user",
            spec.name
        )));
    }
    Ok(())
}

/// `GET /workflows/{project}/{name}`: the current version.
#[utoipa::path(
    get,
    path = "/workflows/{project}/{name}",
    tag = "workflows",
    operation_id = "get_workflow",
    params(("project" = String, Path, description = "Project name"), ("name" = String, Path, description = "Workflow name")),
    responses(
        (status = 200, description = "The current version", body = orca_store::WorkflowDefinitionRow),
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    Path((project, name)): Path<(String, String)>,
) -> Result<Json<orca_store::WorkflowDefinitionRow>, ApiError> {
    Ok(Json(current_workflow(&state, &project, &name).await?))
}

/// The current version of workflow `project/name`, or 404 naming it.
pub(crate) async fn current_workflow(
    state: &AppState,
    project: &str,
    name: &str,
) -> Result<orca_store::WorkflowDefinitionRow, ApiError> {
    state
        .store
        .workflow(project, name)
        .await?
        .ok_or(ApiError::NotFound {
            what: "workflow",
            id: format!("{project}/{name}"),
        })
}

/// Body of `POST /workflows:import`.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct ImportRequest {
    /// `dolphinscheduler-json` (a DolphinScheduler 3.x export) or
    /// `pydolphinscheduler-yaml`.
    pub format: String,
    pub content: String,
    /// Project the imported workflows go to (JSON exports carry none).
    #[serde(default = "orca_common::default_project")]
    pub project: String,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct ImportResponse {
    pub workflows: Vec<WorkflowSummary>,
    /// What Orca could not keep (e.g. a schedule's time zone), per workflow/task.
    pub warnings: Vec<String>,
}

/// `POST /workflows:import`: converts DolphinScheduler workflows and saves
/// them (all or nothing: any unsupported task or invalid DAG refuses the
/// whole import, listing every problem).
#[utoipa::path(
    post,
    path = "/workflows:import",
    tag = "workflows",
    operation_id = "import_workflows",
    request_body = ImportRequest,
    responses(
        (status = 200, description = "The saved workflows", body = ImportResponse),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
pub async fn import(
    State(state): State<AppState>,
    Json(req): Json<ImportRequest>,
) -> Result<Json<ImportResponse>, ApiError> {
    use orca_common::workflow::import;
    // `$FILE{}` / `$ENV{}` would be expanded on the server, relative to its
    // own files and environment: never for content sent over the API.
    if req.format == "pydolphinscheduler-yaml"
        && (req.content.contains("$FILE{") || req.content.contains("$ENV{"))
    {
        return Err(ApiError::Invalid(
            "content: $FILE{...} and $ENV{...} placeholders are not expanded on the server; \
             expand them where the file lives (`orca apply`/`orca run` do) or inline the values"
                .into(),
        ));
    }
    let imported = match req.format.as_str() {
        "dolphinscheduler-json" => import::import_dolphinscheduler_json(&req.content, &req.project),
        "pydolphinscheduler-yaml" => import::import_pydolphinscheduler_yaml(
            &req.content,
            "import.yaml",
            std::path::Path::new("."),
        ),
        other => {
            return Err(ApiError::Invalid(format!(
                "format: {other:?} is not an import format; use dolphinscheduler-json or pydolphinscheduler-yaml"
            )));
        }
    }
    .map_err(|e| ApiError::Invalid(e.to_string()))?;
    for spec in &imported.workflows {
        check_tenant(&state, spec).await?;
    }
    let mut workflows = Vec::new();
    for mut spec in imported.workflows {
        if req.format == "pydolphinscheduler-yaml" && spec.project == orca_common::default_project()
        {
            spec.project = req.project.clone();
        }
        let row = state.store.save_workflow(&spec, &req.content).await?;
        workflows.push(WorkflowSummary::from(&row));
    }
    Ok(Json(ImportResponse {
        workflows,
        warnings: imported.warnings.iter().map(|w| w.to_string()).collect(),
    }))
}
