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
        .route("/workflows/{project}/{name}", get(workflows::get))
        .route("/workflows/{project}/{name}/runs", post(runs::trigger))
        .route("/commands/{id}", get(runs::command))
        .route("/runs", get(runs::list))
        .route("/runs/{id}", get(runs::get))
        .route("/runs/{id}/stop", post(runs::stop))
        .route("/task-instances/{id}/log", get(logs::task_log))
}
