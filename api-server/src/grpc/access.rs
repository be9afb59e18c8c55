//! Who may call what: the caller of a gRPC request and the checks of the
//! route table's permissions ([`crate::authz`]), as methods of
//! [`GrpcApi`].

use orca_store::ProjectRole;
use tonic::{Request, Status};

use super::GrpcApi;
use crate::audit::AuditSlot;
use crate::auth::{AuthError, Caller, authenticate};
use crate::authz::{project_hidden, require};
use crate::error::ApiError;

impl GrpcApi {
    /// The caller of a request: its `authorization: Bearer …` metadata,
    /// resolved as REST does (and recorded for the audit log).
    pub(super) async fn caller<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        let headers = req.metadata().clone().into_headers();
        let caller = authenticate(&self.state.store, &headers).await?;
        if let Some(slot) = req.extensions().get::<AuditSlot>() {
            slot.set_user(&caller.user.username);
        }
        Ok(caller)
    }

    /// Records the project a request targets, for the audit log.
    fn audit_project<T>(req: &Request<T>, project: &str) {
        if let Some(slot) = req.extensions().get::<AuditSlot>() {
            slot.set_project(project);
        }
    }

    /// The caller, with at least `min` in `project` (404 when it has no
    /// role there, 403 when too small).
    pub(super) async fn in_project<T>(
        &self,
        req: &Request<T>,
        min: ProjectRole,
        project: &str,
    ) -> Result<Caller, Status> {
        let caller = self.caller(req).await?;
        Self::audit_project(req, project);
        require(&caller, min, project, project_hidden(project))?;
        Ok(caller)
    }

    /// The caller, with at least `min` in the project of run `id`.
    pub(super) async fn on_run<T>(
        &self,
        req: &Request<T>,
        min: ProjectRole,
        id: i64,
    ) -> Result<(), Status> {
        let project = self.state.store.project_of_run(id);
        self.in_project_of(req, min, "run", id, project).await
    }

    /// The caller, with at least `min` in the project of task instance `id`.
    pub(super) async fn on_task_instance<T>(
        &self,
        req: &Request<T>,
        min: ProjectRole,
        id: i64,
    ) -> Result<(), Status> {
        let project = self.state.store.project_of_task_instance(id);
        self.in_project_of(req, min, "task instance", id, project)
            .await
    }

    /// The caller, with at least `min` in the project of command `id`.
    pub(super) async fn on_command<T>(
        &self,
        req: &Request<T>,
        min: ProjectRole,
        id: i64,
    ) -> Result<(), Status> {
        let project = self.state.store.project_of_command(id);
        self.in_project_of(req, min, "command", id, project).await
    }

    /// The caller (authenticated first: no token is 401 before any lookup),
    /// with at least `min` in the project `project` finds for `what` `id`;
    /// an unknown id and a hidden project are the same 404.
    async fn in_project_of<T>(
        &self,
        req: &Request<T>,
        min: ProjectRole,
        what: &'static str,
        id: i64,
        project: impl std::future::Future<Output = orca_store::Result<Option<String>>>,
    ) -> Result<(), Status> {
        let caller = self.caller(req).await?;
        let hidden = || ApiError::NotFound {
            what,
            id: id.to_string(),
        };
        let project = project.await.map_err(AuthError::from)?.ok_or_else(hidden)?;
        Self::audit_project(req, &project);
        require(&caller, min, &project, hidden())?;
        Ok(())
    }

    /// An admin caller (403 otherwise), as the route table's `Admin`.
    pub(super) async fn admin<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        let caller = self.caller(req).await?;
        if !caller.user.admin {
            return Err(AuthError::Forbidden("only an admin may do this".to_string()).into());
        }
        Ok(caller)
    }
}
