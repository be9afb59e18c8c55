//! `orca.v1.OrcaApi`: each method authorises like its REST route in the
//! route table (with the checks of [`super::access`]), then calls that
//! route's handler (the tenant, worker group and environment bodies are in
//! [`super::resources`]).

use axum::Json;
use axum::extract::{Path, Query, State};
use futures::StreamExt;
use futures::stream::BoxStream;
use orca_common::WorkflowSpec;
use orca_proto::v1 as pb;
use orca_proto::v1::orca_api_server::OrcaApi;
use orca_store::ProjectRole;
use tonic::{Request, Response, Status};

use super::{convert, resources};
use crate::AppState;
use crate::authz::import_request_projects;
use crate::error::ApiError;
use crate::page::{PageQuery, page_limit};
use crate::routes::{
    audit, auth, cluster, lifecycle, logs, projects, runs, schedules, tokens, users, workflows,
};

/// The implementation of `orca.v1.OrcaApi` over the API's state.
#[derive(Clone)]
pub struct GrpcApi {
    pub(super) state: AppState,
}

impl GrpcApi {
    pub fn new(state: AppState) -> Self {
        GrpcApi { state }
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
    /// with the same filters and cursors.
    async fn list_runs(
        &self,
        req: Request<pb::ListRunsRequest>,
    ) -> Result<Response<pb::ListRunsResponse>, Status> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let time = |field: &str, ms: Option<i64>| {
            ms.map(|ms| {
                chrono::DateTime::from_timestamp_millis(ms).ok_or_else(|| {
                    ApiError::Invalid(format!("{field}: {ms} is not a time (Unix ms)"))
                })
            })
            .transpose()
        };
        let non_empty = |s: String| (!s.is_empty()).then_some(s);
        let query = runs::ListQuery {
            limit: (r.page_size != 0).then_some(u64::from(r.page_size)),
            cursor: non_empty(r.page_token),
            state: non_empty(r.state),
            project: non_empty(r.project),
            workflow: non_empty(r.workflow),
            since: time("since_unix_ms", r.since_unix_ms)?,
            until: time("until_unix_ms", r.until_unix_ms)?,
        };
        let Json(page) = projects::list_runs(self.state(), caller, Query(query)).await?;
        Ok(Response::new(pb::ListRunsResponse {
            runs: page.items.into_iter().map(convert::run).collect(),
            next_page_token: page.next_cursor.unwrap_or_default(),
        }))
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
                limit: r.limit,
                tail: r.tail.map(|t| t as usize),
            }),
        )
        .await?;
        Ok(Response::new(pb::TaskLog { text }))
    }

    /// As `POST /runs/{id}/rerun` (operator).
    async fn rerun_run(
        &self,
        req: Request<pb::RunRef>,
    ) -> Result<Response<pb::TriggerRunResponse>, Status> {
        let id = req.get_ref().id;
        self.on_run(&req, ProjectRole::Operator, id).await?;
        let Json(t) = runs::rerun(self.state(), Path(id)).await?;
        Ok(Response::new(convert::triggered(t)))
    }

    /// As `POST /runs/{id}/recover-failed` (operator).
    async fn recover_failed_run(
        &self,
        req: Request<pb::RunRef>,
    ) -> Result<Response<pb::RunCommand>, Status> {
        let id = req.get_ref().id;
        self.on_run(&req, ProjectRole::Operator, id).await?;
        let Json(cmd) = runs::recover_failed(self.state(), Path(id)).await?;
        Ok(Response::new(convert::command(cmd)))
    }

    /// As `POST /runs/{id}/tasks/{task}/force-success` (operator).
    async fn force_task_success(
        &self,
        req: Request<pb::ForceTaskSuccessRequest>,
    ) -> Result<Response<pb::RunCommand>, Status> {
        let id = req.get_ref().run_id;
        self.on_run(&req, ProjectRole::Operator, id).await?;
        let task = req.into_inner().task;
        let Json(cmd) = runs::force_success(self.state(), Path((id, task))).await?;
        Ok(Response::new(convert::command(cmd)))
    }

    /// As `POST /runs:bulk` (authenticated; each run authorised on its own).
    async fn bulk_run_operation(
        &self,
        req: Request<pb::BulkRunOperationRequest>,
    ) -> Result<Response<pb::BulkRunOperationResponse>, Status> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let body = runs::BulkRequest {
            op: r.op,
            ids: r.ids,
        };
        let Json(items) = runs::bulk(self.state(), caller, Json(body)).await?;
        Ok(Response::new(pb::BulkRunOperationResponse {
            items: items.into_iter().map(convert::bulk_item).collect(),
        }))
    }

    /// As `GET /commands/{id}` (viewer).
    async fn get_command(
        &self,
        req: Request<pb::CommandRef>,
    ) -> Result<Response<pb::Command>, Status> {
        let id = req.get_ref().id;
        self.on_command(&req, ProjectRole::Viewer, id).await?;
        let Json(cmd) = runs::command(self.state(), Path(id)).await?;
        Ok(Response::new(convert::full_command(cmd)))
    }

    /// As `POST /workflows:import` (editor in every project written).
    async fn import_workflows(
        &self,
        req: Request<pb::ImportWorkflowsRequest>,
    ) -> Result<Response<pb::ImportWorkflowsResponse>, Status> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let body = workflows::ImportRequest {
            format: r.format,
            content: r.content,
            project: if r.project.is_empty() {
                orca_common::default_project()
            } else {
                r.project
            },
        };
        import_request_projects(&caller, ProjectRole::Editor, &body, |_| {})?;
        let Json(out) = workflows::import(self.state(), Json(body)).await?;
        Ok(Response::new(pb::ImportWorkflowsResponse {
            workflows: out.workflows.into_iter().map(convert::summary).collect(),
            warnings: out.warnings,
        }))
    }

    /// As `GET /workflows` (the caller's visible workflows), paged by
    /// project/name.
    async fn list_workflows(
        &self,
        req: Request<pb::ListWorkflowsRequest>,
    ) -> Result<Response<pb::ListWorkflowsResponse>, Status> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let non_empty = |s: String| (!s.is_empty()).then_some(s);
        let release_state = non_empty(r.release_state)
            .map(|s| {
                s.parse().map_err(|_| {
                    ApiError::Invalid(format!(
                        "release_state: {s:?} is not a release state; use online or offline"
                    ))
                })
            })
            .transpose()?;
        let page = page_query(r.page_size, r.page_token)?;
        let query = projects::WorkflowsQuery {
            limit: page.limit,
            cursor: page.cursor,
            project: non_empty(r.project),
            name: non_empty(r.name),
            release_state,
        };
        let Json(page) = projects::list_workflows(self.state(), caller, Query(query)).await?;
        Ok(Response::new(pb::ListWorkflowsResponse {
            workflows: page.items.into_iter().map(convert::summary).collect(),
            next_page_token: page.next_cursor.unwrap_or_default(),
        }))
    }

    /// As `DELETE /workflows/{project}/{name}` (editor).
    async fn delete_workflow(
        &self,
        req: Request<pb::DeleteWorkflowRequest>,
    ) -> Result<Response<pb::DeleteWorkflowResponse>, Status> {
        self.in_project(&req, ProjectRole::Editor, &req.get_ref().project)
            .await?;
        let r = req.into_inner();
        let Json(out) = lifecycle::delete(
            self.state(),
            Path((r.project, r.name)),
            Query(lifecycle::DeleteQuery { force: r.force }),
        )
        .await?;
        Ok(Response::new(pb::DeleteWorkflowResponse {
            project: out.project,
            name: out.name,
            deleted_runs: out.deleted_runs as u64,
        }))
    }

    /// As `GET /workflows/{project}/{name}/versions` (viewer), paged by
    /// version.
    async fn list_workflow_versions(
        &self,
        req: Request<pb::ListWorkflowVersionsRequest>,
    ) -> Result<Response<pb::ListWorkflowVersionsResponse>, Status> {
        self.in_project(&req, ProjectRole::Viewer, &req.get_ref().project)
            .await?;
        let r = req.into_inner();
        let page = page_query(r.page_size, r.page_token)?;
        let Json(v) =
            lifecycle::list_versions(self.state(), Path((r.project, r.name)), Query(page)).await?;
        Ok(Response::new(pb::ListWorkflowVersionsResponse {
            project: v.project,
            name: v.name,
            current_version: v.current_version,
            release_state: v.release_state.as_str().to_string(),
            versions: v.items.into_iter().map(convert::version_info).collect(),
            next_page_token: v.next_cursor.unwrap_or_default(),
        }))
    }

    /// As `GET /workflows/{project}/{name}/versions/{version}` (viewer).
    async fn get_workflow_version(
        &self,
        req: Request<pb::GetWorkflowVersionRequest>,
    ) -> Result<Response<pb::Workflow>, Status> {
        self.in_project(&req, ProjectRole::Viewer, &req.get_ref().project)
            .await?;
        let r = req.into_inner();
        let Json(row) =
            lifecycle::get_version(self.state(), Path((r.project, r.name, r.version))).await?;
        Ok(Response::new(convert::workflow(row)?))
    }

    /// As `GET /workflows/{project}/{name}/versions/{from}/diff/{to}`
    /// (viewer).
    async fn diff_workflow_versions(
        &self,
        req: Request<pb::DiffWorkflowVersionsRequest>,
    ) -> Result<Response<pb::WorkflowDiff>, Status> {
        self.in_project(&req, ProjectRole::Viewer, &req.get_ref().project)
            .await?;
        let r = req.into_inner();
        let Json(d) =
            lifecycle::diff(self.state(), Path((r.project, r.name, r.from, r.to))).await?;
        Ok(Response::new(convert::diff(d)))
    }

    /// As `POST /workflows/{project}/{name}/online` (editor).
    async fn set_workflow_online(
        &self,
        req: Request<pb::WorkflowRef>,
    ) -> Result<Response<pb::ReleaseState>, Status> {
        self.in_project(&req, ProjectRole::Editor, &req.get_ref().project)
            .await?;
        let r = req.into_inner();
        let Json(out) = lifecycle::online(self.state(), Path((r.project, r.name))).await?;
        Ok(Response::new(convert::release(out)))
    }

    /// As `POST /workflows/{project}/{name}/offline` (editor).
    async fn set_workflow_offline(
        &self,
        req: Request<pb::WorkflowRef>,
    ) -> Result<Response<pb::ReleaseState>, Status> {
        self.in_project(&req, ProjectRole::Editor, &req.get_ref().project)
            .await?;
        let r = req.into_inner();
        let Json(out) = lifecycle::offline(self.state(), Path((r.project, r.name))).await?;
        Ok(Response::new(convert::release(out)))
    }

    /// As `GET /workflows/{project}/{name}/schedule` (viewer).
    async fn get_schedule(
        &self,
        req: Request<pb::WorkflowRef>,
    ) -> Result<Response<pb::Schedule>, Status> {
        self.in_project(&req, ProjectRole::Viewer, &req.get_ref().project)
            .await?;
        let r = req.into_inner();
        let Json(row) = schedules::get(self.state(), Path((r.project, r.name))).await?;
        Ok(Response::new(convert::schedule(row)))
    }

    /// As `PUT /workflows/{project}/{name}/schedule` (editor).
    async fn put_schedule(
        &self,
        req: Request<pb::PutScheduleRequest>,
    ) -> Result<Response<pb::Schedule>, Status> {
        self.in_project(&req, ProjectRole::Editor, &req.get_ref().project)
            .await?;
        let r = req.into_inner();
        let body = schedules::ScheduleRequest {
            cron: r.cron,
            timezone: if r.timezone.is_empty() {
                "UTC".into()
            } else {
                r.timezone
            },
            start_time: convert::time("start_time", r.start_time_unix_ms)?,
            end_time: convert::time("end_time", r.end_time_unix_ms)?,
            enabled: r.enabled,
            params: r.params.into_iter().collect(),
        };
        let Json(row) = schedules::put(self.state(), Path((r.project, r.name)), Json(body)).await?;
        Ok(Response::new(convert::schedule(row)))
    }

    /// As `DELETE /workflows/{project}/{name}/schedule` (editor; idempotent).
    async fn delete_schedule(
        &self,
        req: Request<pb::WorkflowRef>,
    ) -> Result<Response<pb::DeleteScheduleResponse>, Status> {
        self.in_project(&req, ProjectRole::Editor, &req.get_ref().project)
            .await?;
        let r = req.into_inner();
        schedules::delete(self.state(), Path((r.project, r.name))).await?;
        Ok(Response::new(pb::DeleteScheduleResponse {}))
    }

    /// As `GET /workflows/{project}/{name}/schedule/preview` (viewer).
    async fn preview_schedule(
        &self,
        req: Request<pb::PreviewScheduleRequest>,
    ) -> Result<Response<pb::SchedulePreview>, Status> {
        self.in_project(&req, ProjectRole::Viewer, &req.get_ref().project)
            .await?;
        let r = req.into_inner();
        let count = match r.count {
            0 => 5,
            n => n as usize,
        };
        let Json(p) = schedules::preview(
            self.state(),
            Path((r.project, r.name)),
            Query(schedules::PreviewQuery { count }),
        )
        .await?;
        Ok(Response::new(convert::preview(p)))
    }

    /// As `GET /projects` (the caller's visible projects), paged by name.
    async fn list_projects(
        &self,
        req: Request<pb::ListProjectsRequest>,
    ) -> Result<Response<pb::ListProjectsResponse>, Status> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let page = page_query(r.page_size, r.page_token)?;
        let query = projects::ProjectsQuery {
            limit: page.limit,
            cursor: page.cursor,
            name: None,
        };
        let Json(page) = projects::list(self.state(), caller, Query(query)).await?;
        Ok(Response::new(pb::ListProjectsResponse {
            projects: page.items.into_iter().map(convert::project).collect(),
            next_page_token: page.next_cursor.unwrap_or_default(),
        }))
    }

    /// As `POST /projects` (admins).
    async fn create_project(
        &self,
        req: Request<pb::CreateProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        self.admin(&req).await?;
        let r = req.into_inner();
        let body = projects::CreateProjectRequest {
            name: r.name,
            owner: r.owner,
        };
        let (_, Json(p)) = projects::create(self.state(), Json(body)).await?;
        Ok(Response::new(convert::new_project(p)))
    }

    /// As `GET /projects/{project}/members` (viewer), paged by username.
    async fn list_members(
        &self,
        req: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        self.in_project(&req, ProjectRole::Viewer, &req.get_ref().project)
            .await?;
        let r = req.into_inner();
        let page = page_query(r.page_size, r.page_token)?;
        let query = projects::MembersQuery {
            limit: page.limit,
            cursor: page.cursor,
            role: None,
        };
        let Json(page) = projects::members(self.state(), Path(r.project), Query(query)).await?;
        Ok(Response::new(pb::ListMembersResponse {
            members: page.items.into_iter().map(convert::member).collect(),
            next_page_token: page.next_cursor.unwrap_or_default(),
        }))
    }

    /// As `PUT /projects/{project}/members/{username}` (owner).
    async fn put_member(
        &self,
        req: Request<pb::PutMemberRequest>,
    ) -> Result<Response<pb::Member>, Status> {
        self.in_project(&req, ProjectRole::Owner, &req.get_ref().project)
            .await?;
        let r = req.into_inner();
        let role: ProjectRole = r.role.parse().map_err(|_| {
            ApiError::Invalid(format!(
                "role: {:?} is not a role; use viewer, operator, editor or owner",
                r.role
            ))
        })?;
        let Json(m) = projects::put_member(
            self.state(),
            Path((r.project, r.username)),
            Json(projects::PutMemberRequest { role }),
        )
        .await?;
        Ok(Response::new(convert::member(m)))
    }

    /// As `DELETE /projects/{project}/members/{username}` (owner).
    async fn delete_member(
        &self,
        req: Request<pb::DeleteMemberRequest>,
    ) -> Result<Response<pb::DeleteMemberResponse>, Status> {
        self.in_project(&req, ProjectRole::Owner, &req.get_ref().project)
            .await?;
        let r = req.into_inner();
        projects::delete_member(self.state(), Path((r.project, r.username))).await?;
        Ok(Response::new(pb::DeleteMemberResponse {}))
    }

    /// As `GET /workers` (authenticated), paged by id.
    async fn list_workers(
        &self,
        req: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        self.caller(&req).await?;
        let r = req.into_inner();
        let page = page_query(r.page_size, r.page_token)?;
        let query = cluster::WorkersQuery {
            limit: page.limit,
            cursor: page.cursor,
            group: None,
            label: None,
            environment: None,
            state: None,
        };
        let Json(page) = cluster::workers(self.state(), Query(query)).await?;
        Ok(Response::new(pb::ListWorkersResponse {
            workers: page.items.into_iter().map(convert::worker).collect(),
            next_page_token: page.next_cursor.unwrap_or_default(),
        }))
    }

    /// As `GET /masters` (authenticated), paged by id.
    async fn list_masters(
        &self,
        req: Request<pb::ListMastersRequest>,
    ) -> Result<Response<pb::ListMastersResponse>, Status> {
        self.caller(&req).await?;
        let r = req.into_inner();
        let page = page_query(r.page_size, r.page_token)?;
        let Json(page) = cluster::masters(self.state(), Query(page)).await?;
        Ok(Response::new(pb::ListMastersResponse {
            masters: page.items.into_iter().map(convert::master).collect(),
            next_page_token: page.next_cursor.unwrap_or_default(),
        }))
    }

    /// As `POST /users` (admins).
    async fn create_user(
        &self,
        req: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        self.admin(&req).await?;
        let r = req.into_inner();
        let body = users::CreateUserRequest {
            username: r.username,
            password: r.password,
            admin: r.admin,
        };
        let (_, Json(u)) = users::create(self.state(), Json(body)).await?;
        Ok(Response::new(convert::user(u)))
    }

    /// As `GET /users` (admins), by username.
    async fn list_users(
        &self,
        req: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        self.admin(&req).await?;
        let r = req.into_inner();
        let page = page_query(r.page_size, r.page_token)?;
        let query = users::UsersQuery {
            limit: page.limit,
            cursor: page.cursor,
            ..Default::default()
        };
        let Json(page) = users::list(self.state(), Query(query)).await?;
        Ok(Response::new(pb::ListUsersResponse {
            users: page.items.into_iter().map(convert::user).collect(),
            next_page_token: page.next_cursor.unwrap_or_default(),
        }))
    }

    /// As `PATCH /users/{username}` (admins).
    async fn update_user(
        &self,
        req: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        self.admin(&req).await?;
        let r = req.into_inner();
        let body = users::UpdateUserRequest {
            admin: r.admin,
            disabled: r.disabled,
            password: r.password,
        };
        let Json(u) = users::update(self.state(), Path(r.username), Json(body)).await?;
        Ok(Response::new(convert::user(u)))
    }

    /// As `POST /tokens` (the caller's own).
    async fn create_token(
        &self,
        req: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreatedToken>, Status> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let body = tokens::CreateTokenRequest {
            name: r.name,
            expires_in_days: r.expires_in_days,
        };
        let (_, Json(t)) = tokens::create(self.state(), caller, Json(body)).await?;
        Ok(Response::new(pb::CreatedToken {
            token: t.token,
            info: Some(convert::token(t.row)),
        }))
    }

    /// As `GET /tokens` (the caller's own), oldest first.
    async fn list_tokens(
        &self,
        req: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let query = page_query(r.page_size, r.page_token)?;
        let Json(page) = tokens::list(self.state(), caller, Query(query)).await?;
        Ok(Response::new(pb::ListTokensResponse {
            tokens: page.items.into_iter().map(convert::token).collect(),
            next_page_token: page.next_cursor.unwrap_or_default(),
        }))
    }

    /// As `DELETE /tokens/{id}` (the caller's own; another's is NOT_FOUND).
    async fn delete_token(
        &self,
        req: Request<pb::TokenRef>,
    ) -> Result<Response<pb::DeleteTokenResponse>, Status> {
        let caller = self.caller(&req).await?;
        let id = req.get_ref().id;
        tokens::delete(self.state(), caller, Path(id.to_string())).await?;
        Ok(Response::new(pb::DeleteTokenResponse {}))
    }

    /// As `POST /auth/login` (public).
    async fn login(
        &self,
        req: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        // The audit log records the username a login claims, as REST does.
        if let Some(slot) = req.extensions().get::<crate::audit::AuditSlot>() {
            slot.set_user(&req.get_ref().username);
        }
        let r = req.into_inner();
        let body = auth::LoginRequest {
            username: r.username,
            password: r.password,
        };
        let Json(login) = auth::login(self.state(), Json(body)).await?;
        Ok(Response::new(convert::login(login)))
    }

    /// As `POST /auth/logout` (the token the request was made with).
    async fn logout(
        &self,
        req: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let caller = self.caller(&req).await?;
        auth::logout(self.state(), caller).await?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    /// As `GET /auth/me` (authenticated).
    async fn who_am_i(
        &self,
        req: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let caller = self.caller(&req).await?;
        let Json(me) = auth::me(caller).await;
        Ok(Response::new(convert::me(me)))
    }

    /// As `POST /users/me/password` (authenticated).
    async fn change_password(
        &self,
        req: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let body = auth::ChangePasswordRequest {
            current_password: r.current_password,
            new_password: r.new_password,
        };
        let Json(out) = auth::change_password(self.state(), caller, Json(body)).await?;
        Ok(Response::new(pb::ChangePasswordResponse {
            revoked_tokens: out.revoked_tokens,
        }))
    }

    /// As `GET /tenants` (authenticated), by name.
    async fn list_tenants(
        &self,
        req: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        self.caller(&req).await?;
        let out = resources::list_tenants(self.state(), req.into_inner()).await?;
        Ok(Response::new(out))
    }

    /// As `POST /tenants` (admins).
    async fn create_tenant(
        &self,
        req: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        self.admin(&req).await?;
        let out = resources::create_tenant(self.state(), req.into_inner()).await?;
        Ok(Response::new(out))
    }

    /// As `GET /tenants/{tenant}` (authenticated).
    async fn get_tenant(
        &self,
        req: Request<pb::TenantRef>,
    ) -> Result<Response<pb::Tenant>, Status> {
        self.caller(&req).await?;
        let out = resources::get_tenant(self.state(), req.into_inner().name).await?;
        Ok(Response::new(out))
    }

    /// As `PATCH /tenants/{tenant}` (admins).
    async fn update_tenant(
        &self,
        req: Request<pb::UpdateTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        self.admin(&req).await?;
        let out = resources::update_tenant(self.state(), req.into_inner()).await?;
        Ok(Response::new(out))
    }

    /// As `DELETE /tenants/{tenant}` (admins).
    async fn delete_tenant(
        &self,
        req: Request<pb::TenantRef>,
    ) -> Result<Response<pb::DeleteTenantResponse>, Status> {
        self.admin(&req).await?;
        let out = resources::delete_tenant(self.state(), req.into_inner().name).await?;
        Ok(Response::new(out))
    }

    /// As `GET /worker-groups` (authenticated), by name.
    async fn list_worker_groups(
        &self,
        req: Request<pb::ListWorkerGroupsRequest>,
    ) -> Result<Response<pb::ListWorkerGroupsResponse>, Status> {
        self.caller(&req).await?;
        let out = resources::list_worker_groups(self.state(), req.into_inner()).await?;
        Ok(Response::new(out))
    }

    /// As `POST /worker-groups` (admins).
    async fn create_worker_group(
        &self,
        req: Request<pb::CreateWorkerGroupRequest>,
    ) -> Result<Response<pb::WorkerGroup>, Status> {
        self.admin(&req).await?;
        let out = resources::create_worker_group(self.state(), req.into_inner()).await?;
        Ok(Response::new(out))
    }

    /// As `GET /worker-groups/{group}` (authenticated).
    async fn get_worker_group(
        &self,
        req: Request<pb::WorkerGroupRef>,
    ) -> Result<Response<pb::WorkerGroup>, Status> {
        self.caller(&req).await?;
        let out = resources::get_worker_group(self.state(), req.into_inner().name).await?;
        Ok(Response::new(out))
    }

    /// As `PATCH /worker-groups/{group}` (admins).
    async fn update_worker_group(
        &self,
        req: Request<pb::UpdateWorkerGroupRequest>,
    ) -> Result<Response<pb::WorkerGroup>, Status> {
        self.admin(&req).await?;
        let out = resources::update_worker_group(self.state(), req.into_inner()).await?;
        Ok(Response::new(out))
    }

    /// As `DELETE /worker-groups/{group}` (admins).
    async fn delete_worker_group(
        &self,
        req: Request<pb::WorkerGroupRef>,
    ) -> Result<Response<pb::DeleteWorkerGroupResponse>, Status> {
        self.admin(&req).await?;
        let out = resources::delete_worker_group(self.state(), req.into_inner().name).await?;
        Ok(Response::new(out))
    }

    /// As `GET /environments` (authenticated), by name.
    async fn list_environments(
        &self,
        req: Request<pb::ListEnvironmentsRequest>,
    ) -> Result<Response<pb::ListEnvironmentsResponse>, Status> {
        self.caller(&req).await?;
        let out = resources::list_environments(self.state(), req.into_inner()).await?;
        Ok(Response::new(out))
    }

    /// As `POST /environments` (admins).
    async fn create_environment(
        &self,
        req: Request<pb::CreateEnvironmentRequest>,
    ) -> Result<Response<pb::Environment>, Status> {
        self.admin(&req).await?;
        let out = resources::create_environment(self.state(), req.into_inner()).await?;
        Ok(Response::new(out))
    }

    /// As `GET /environments/{environment}` (authenticated).
    async fn get_environment(
        &self,
        req: Request<pb::EnvironmentRef>,
    ) -> Result<Response<pb::Environment>, Status> {
        self.caller(&req).await?;
        let out = resources::get_environment(self.state(), req.into_inner().name).await?;
        Ok(Response::new(out))
    }

    /// As `PATCH /environments/{environment}` (admins).
    async fn update_environment(
        &self,
        req: Request<pb::UpdateEnvironmentRequest>,
    ) -> Result<Response<pb::Environment>, Status> {
        self.admin(&req).await?;
        let out = resources::update_environment(self.state(), req.into_inner()).await?;
        Ok(Response::new(out))
    }

    /// As `DELETE /environments/{environment}` (admins).
    async fn delete_environment(
        &self,
        req: Request<pb::EnvironmentRef>,
    ) -> Result<Response<pb::DeleteEnvironmentResponse>, Status> {
        self.admin(&req).await?;
        let out = resources::delete_environment(self.state(), req.into_inner().name).await?;
        Ok(Response::new(out))
    }

    /// As `GET /audit` (admins), newest first, with the same filters.
    async fn list_audit_entries(
        &self,
        req: Request<pb::ListAuditEntriesRequest>,
    ) -> Result<Response<pb::ListAuditEntriesResponse>, Status> {
        self.admin(&req).await?;
        let r = req.into_inner();
        let non_empty = |s: String| (!s.is_empty()).then_some(s);
        let page = page_query(r.page_size, r.page_token)?;
        let query = audit::AuditQuery {
            limit: page.limit,
            cursor: page.cursor,
            user: non_empty(r.user),
            project: non_empty(r.project),
            method: non_empty(r.method),
            path: non_empty(r.path),
            since: convert::time("since_unix_ms", r.since_unix_ms)?,
            until: convert::time("until_unix_ms", r.until_unix_ms)?,
        };
        let Json(page) = audit::list(self.state(), Query(query)).await?;
        Ok(Response::new(pb::ListAuditEntriesResponse {
            entries: page.items.into_iter().map(convert::audit_entry).collect(),
            next_page_token: page.next_cursor.unwrap_or_default(),
        }))
    }

    /// As `GET /task-instances/{id}/log/search` (viewer).
    async fn search_task_log(
        &self,
        req: Request<pb::SearchTaskLogRequest>,
    ) -> Result<Response<pb::TaskLogSearchResult>, Status> {
        let id = req.get_ref().task_instance_id;
        self.on_task_instance(&req, ProjectRole::Viewer, id).await?;
        let r = req.into_inner();
        let query = logs::SearchQuery {
            q: r.query,
            regex: r.regex,
        };
        let Json(found) = logs::search(self.state(), Path(id), Query(query)).await?;
        Ok(Response::new(convert::log_search(found)))
    }

    type FollowTaskLogStream = BoxStream<'static, Result<pb::TaskLogChunk, Status>>;

    /// As `GET /task-instances/{id}/log/follow` (viewer): its body's chunks
    /// as messages.
    async fn follow_task_log(
        &self,
        req: Request<pb::FollowTaskLogRequest>,
    ) -> Result<Response<Self::FollowTaskLogStream>, Status> {
        let id = req.get_ref().task_instance_id;
        self.on_task_instance(&req, ProjectRole::Viewer, id).await?;
        let body = logs::follow(self.state(), Path(id)).await?.into_body();
        let chunks = body.into_data_stream().map(move |chunk| match chunk {
            Ok(data) => Ok(pb::TaskLogChunk {
                data: data.to_vec(),
            }),
            Err(e) => Err(Status::from(ApiError::Unavailable(format!(
                "the log of task instance {id} broke off: {e}"
            )))),
        });
        Ok(Response::new(chunks.boxed()))
    }
}

/// `page_size` (0: the default) of a list RPC, or INVALID_ARGUMENT.
pub(super) fn page_size(n: u32) -> Result<u64, ApiError> {
    page_limit((n != 0).then_some(u64::from(n)))
}

/// The REST page query of a gRPC page size and token (a token is a REST
/// cursor).
pub(super) fn page_query(size: u32, token: String) -> Result<PageQuery, ApiError> {
    Ok(PageQuery {
        limit: Some(page_size(size)?),
        cursor: (!token.is_empty()).then_some(token),
    })
}
