//! `orca.v1.OrcaApi`: each method authorises like its REST route in the
//! route table, then calls that route's handler.

use axum::Json;
use axum::extract::{Path, Query, State};
use orca_common::WorkflowSpec;
use orca_proto::v1 as pb;
use orca_proto::v1::orca_api_server::OrcaApi;
use orca_store::ProjectRole;
use tonic::{Request, Response, Status};

use super::convert;
use crate::AppState;
use crate::auth::{AuthError, Caller, authenticate};
use crate::authz::{project_hidden, require};
use crate::error::ApiError;
use crate::routes::{logs, projects, runs, workflows};

/// Largest `limit` of `ListRuns` (as `GET /runs`).
const MAX_LIST: u64 = 1000;
/// `ListRuns` without a limit.
const DEFAULT_LIST: u64 = 50;

/// The implementation of `orca.v1.OrcaApi` over the API's state.
#[derive(Clone)]
pub struct GrpcApi {
    state: AppState,
}

impl GrpcApi {
    pub fn new(state: AppState) -> Self {
        GrpcApi { state }
    }

    /// The caller of a request: its `authorization: Bearer …` metadata,
    /// resolved as REST does.
    async fn caller<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        let headers = req.metadata().clone().into_headers();
        Ok(authenticate(&self.state.store, &headers).await?)
    }

    /// The caller, with at least `min` in `project` (404 when it has no
    /// role there, 403 when too small).
    async fn in_project<T>(
        &self,
        req: &Request<T>,
        min: ProjectRole,
        project: &str,
    ) -> Result<Caller, Status> {
        let caller = self.caller(req).await?;
        require(&caller, min, project, project_hidden(project))?;
        Ok(caller)
    }

    /// The caller, with at least `min` in the project of run `id`.
    async fn on_run<T>(&self, req: &Request<T>, min: ProjectRole, id: i64) -> Result<(), Status> {
        let caller = self.caller(req).await?;
        let hidden = || ApiError::NotFound {
            what: "run",
            id: id.to_string(),
        };
        let project = self
            .state
            .store
            .project_of_run(id)
            .await
            .map_err(AuthError::from)?
            .ok_or_else(hidden)?;
        require(&caller, min, &project, hidden())?;
        Ok(())
    }

    /// The caller, with at least `min` in the project of task instance `id`.
    async fn on_task_instance<T>(
        &self,
        req: &Request<T>,
        min: ProjectRole,
        id: i64,
    ) -> Result<(), Status> {
        let caller = self.caller(req).await?;
        let hidden = || ApiError::NotFound {
            what: "task instance",
            id: id.to_string(),
        };
        let project = self
            .state
            .store
            .project_of_task_instance(id)
            .await
            .map_err(AuthError::from)?
            .ok_or_else(hidden)?;
        require(&caller, min, &project, hidden())?;
        Ok(())
    }

    fn state(&self) -> State<AppState> {
        State(self.state.clone())
    }
}

#[tonic::async_trait]
impl OrcaApi for GrpcApi {
    /// As `POST /workflows` (editor in `spec.project`).
    async fn apply_workflow(
        &self,
        req: Request<pb::ApplyWorkflowRequest>,
    ) -> Result<Response<pb::WorkflowSummary>, Status> {
        let spec: WorkflowSpec = serde_json::from_str(&req.get_ref().spec_json)
            .map_err(|e| ApiError::Invalid(format!("spec_json: {e}")))?;
        self.in_project(&req, ProjectRole::Editor, &spec.project)
            .await?;
        let source = req.into_inner().source;
        let Json(summary) =
            workflows::apply(self.state(), Json(workflows::ApplyRequest { spec, source })).await?;
        Ok(Response::new(convert::summary(summary)))
    }

    /// As `GET /workflows/{project}/{name}` (viewer).
    async fn get_workflow(
        &self,
        req: Request<pb::GetWorkflowRequest>,
    ) -> Result<Response<pb::Workflow>, Status> {
        self.in_project(&req, ProjectRole::Viewer, &req.get_ref().project)
            .await?;
        let r = req.into_inner();
        let Json(row) = workflows::get(self.state(), Path((r.project, r.name))).await?;
        Ok(Response::new(convert::workflow(row)?))
    }

    /// As `POST /workflows/{project}/{name}/runs` (operator).
    async fn trigger_run(
        &self,
        req: Request<pb::TriggerRunRequest>,
    ) -> Result<Response<pb::TriggerRunResponse>, Status> {
        self.in_project(&req, ProjectRole::Operator, &req.get_ref().project)
            .await?;
        let r = req.into_inner();
        let body = runs::TriggerRequest {
            scope: convert::scope(r.scope()),
            params: r.params.into_iter().collect(),
            version: r.version,
            start_tasks: r.start_tasks,
        };
        let Json(t) = runs::trigger(
            self.state(),
            Path((r.project, r.name)),
            axum::http::HeaderMap::new(),
            Json(body),
        )
        .await?;
        Ok(Response::new(convert::triggered(t)))
    }

    /// As `GET /runs/{id}` (viewer).
    async fn get_run(&self, req: Request<pb::RunRef>) -> Result<Response<pb::RunDetail>, Status> {
        let id = req.get_ref().id;
        self.on_run(&req, ProjectRole::Viewer, id).await?;
        let Json(detail) = runs::get(self.state(), Path(id)).await?;
        Ok(Response::new(convert::run_detail(detail)))
    }

    /// As `GET /runs` (any authenticated user; only projects it can view),
    /// plus `before_id` paging within the newest 1000 runs it can see.
    async fn list_runs(
        &self,
        req: Request<pb::ListRunsRequest>,
    ) -> Result<Response<pb::ListRunsResponse>, Status> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let limit = match u64::from(r.limit) {
            0 => DEFAULT_LIST,
            n => n.min(MAX_LIST),
        };
        let mut query = runs::ListQuery::first(limit);
        query.before_id = r.before_id;
        let Json(rows) = projects::list_runs(self.state(), caller, Query(query)).await?;
        let runs = rows.into_iter().map(convert::run).collect();
        Ok(Response::new(pb::ListRunsResponse { runs }))
    }

    /// As `POST /runs/{id}/stop` (operator).
    async fn stop_run(&self, req: Request<pb::RunRef>) -> Result<Response<pb::RunCommand>, Status> {
        let id = req.get_ref().id;
        self.on_run(&req, ProjectRole::Operator, id).await?;
        let Json(cmd) = runs::stop(self.state(), Path(id)).await?;
        Ok(Response::new(convert::command(cmd)))
    }

    /// As `POST /runs/{id}/pause` (operator).
    async fn pause_run(
        &self,
        req: Request<pb::RunRef>,
    ) -> Result<Response<pb::RunCommand>, Status> {
        let id = req.get_ref().id;
        self.on_run(&req, ProjectRole::Operator, id).await?;
        let Json(cmd) = runs::pause(self.state(), Path(id)).await?;
        Ok(Response::new(convert::command(cmd)))
    }

    /// As `POST /runs/{id}/resume` (operator).
    async fn resume_run(
        &self,
        req: Request<pb::RunRef>,
    ) -> Result<Response<pb::RunCommand>, Status> {
        let id = req.get_ref().id;
        self.on_run(&req, ProjectRole::Operator, id).await?;
        let Json(cmd) = runs::resume(self.state(), Path(id)).await?;
        Ok(Response::new(convert::command(cmd)))
    }

    /// As `GET /task-instances/{id}/log` (viewer).
    async fn get_task_log(
        &self,
        req: Request<pb::GetTaskLogRequest>,
    ) -> Result<Response<pb::TaskLog>, Status> {
        let r = *req.get_ref();
        self.on_task_instance(&req, ProjectRole::Viewer, r.task_instance_id)
            .await?;
        let text = logs::task_log(
            self.state(),
            Path(r.task_instance_id),
            Query(logs::LogQuery {
                offset: r.offset,
                ..Default::default()
            }),
        )
        .await?;
        Ok(Response::new(pb::TaskLog { text }))
    }
}
