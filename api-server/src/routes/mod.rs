//! REST resources, one module each.

pub mod logs;
pub mod runs;
pub mod workflows;

use axum::Router;
use axum::routing::{get, post};

use crate::AppState;

pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/workflows", post(workflows::apply).get(workflows::list))
        .route("/workflows:import", post(workflows::import))
        .route("/workflows/{project}/{name}", get(workflows::get))
        .route("/workflows/{project}/{name}/runs", post(runs::trigger))
        .route("/commands/{id}", get(runs::command))
        .route("/runs", get(runs::list))
        .route("/runs/{id}", get(runs::get))
        .route("/runs/{id}/stop", post(runs::stop))
        .route("/runs/{id}/pause", post(runs::pause))
        .route("/runs/{id}/resume", post(runs::resume))
        .route("/runs/{id}/recover-failed", post(runs::recover_failed))
        .route("/runs/{id}/rerun", post(runs::rerun))
        .route(
            "/runs/{id}/tasks/{task}/force-success",
            post(runs::force_success),
        )
        .route("/task-instances/{id}/log", get(logs::task_log))
}
