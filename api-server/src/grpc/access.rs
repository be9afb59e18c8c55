//! Who may call what: the caller of a gRPC request and the checks of the
//! route table's permissions ([`crate::authz`]), as methods of
//! [`GrpcApi`].

use orca_store::ProjectRole;
use tonic::{Request, Status};

use super::GrpcApi;
use crate::auth::{AuthError, Caller, authenticate};
use crate::authz::{project_hidden, require};
use crate::error::ApiError;

impl GrpcApi {
    /// The caller of a request: its `authorization: Bearer …` metadata,
    /// resolved as REST does.
    pub(super) async fn caller<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        let headers = req.metadata().clone().into_headers();
        Ok(authenticate(&self.state.store, &headers).await?)
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
    pub(super) async fn on_task_instance<T>(
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

    /// The caller, with at least `min` in the project of command `id`.
    pub(super) async fn on_command<T>(
        &self,
        req: &Request<T>,
        min: ProjectRole,
        id: i64,
    ) -> Result<(), Status> {
        let caller = self.caller(req).await?;
        let hidden = || ApiError::NotFound {
            what: "command",
            id: id.to_string(),
        };
        let project = self
            .state
            .store
            .project_of_command(id)
            .await
            .map_err(AuthError::from)?
            .ok_or_else(hidden)?;
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
