//! REST resources, one module each, and **the route table**: every route
//! is declared once in [`table`] with the permission it needs (see
//! [`crate::authz`]); the router and [`route_permissions`] (used by the
//! authorisation matrix test) are both built from it, so a route cannot
//! exist without a declared permission. Each handler is given as
//! `routes!(handler)`, which needs its `#[utoipa::path]`: the OpenAPI
//! document ([`crate::openapi`]) is built from the same table.

pub mod audit;
pub mod auth;
pub mod cluster;
pub mod docs;
pub mod environments;
pub mod lifecycle;
pub mod logs;
pub mod projects;
pub mod resources;
pub mod runs;
pub mod schedules;
pub mod tenants;
pub mod tokens;
pub mod users;
pub mod worker_groups;
pub mod workflows;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use utoipa_axum::router::UtoipaMethodRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::authz::{self, Perm, ProjectFrom, RouteRule, Verb};

/// One route: its rule and its handler with its OpenAPI operation.
pub(crate) struct Route {
    pub(crate) rule: RouteRule,
    pub(crate) handler: UtoipaMethodRouter<AppState>,
}

/// A route of the table. Panics when the handler's `#[utoipa::path]` does
/// not document exactly `verb path` (every test building the router sees it).
fn route(
    verb: Verb,
    path: &'static str,
    perm: Perm,
    project: ProjectFrom,
    handler: UtoipaMethodRouter<AppState>,
) -> Route {
    let documented: Vec<(&str, Verb)> = handler
        .1
        .paths
        .iter()
        .flat_map(|(p, item)| {
            crate::openapi::operations(item)
                .into_iter()
                .map(move |(v, _)| (p.as_str(), v))
        })
        .collect();
    assert_eq!(
        documented,
        [(path, verb)],
        "the #[utoipa::path] of the handler of {} {path} documents another route",
        verb.as_str()
    );
    Route {
        rule: RouteRule {
            verb,
            path,
            perm,
            project,
        },
        handler,
    }
}

/// Every route under `/api/v1`. Add new routes here, with their permission
/// and a handler documented with `#[utoipa::path]`.
#[rustfmt::skip]
pub(crate) fn table() -> Vec<Route> {
    use Perm::*;
    use ProjectFrom::*;
    use Verb::*;
    vec![
        // Authentication, users, tokens.
        route(Post, "/auth/login", Public, Nothing, routes!(auth::login)),
        route(Post, "/auth/logout", Authenticated, Nothing, routes!(auth::logout)),
        route(Get, "/auth/me", Authenticated, Nothing, routes!(auth::me)),
        route(Post, "/users/me/password", Authenticated, Nothing, routes!(auth::change_password)),
        route(Post, "/users", Admin, Nothing, routes!(users::create)),
        route(Get, "/users", Admin, Nothing, routes!(users::list)),
        route(Patch, "/users/{username}", Admin, Nothing, routes!(users::update)),
        route(Post, "/tokens", Authenticated, Nothing, routes!(tokens::create)),
        route(Get, "/tokens", Authenticated, Nothing, routes!(tokens::list)),
        route(Delete, "/tokens/{id}", Authenticated, Nothing, routes!(tokens::delete)),
        // Projects and their members.
        route(Get, "/projects", Authenticated, Nothing, routes!(projects::list)),
        route(Post, "/projects", Admin, Nothing, routes!(projects::create)),
        route(Get, "/projects/{project}/members", ProjectView, PathProject, routes!(projects::members)),
        route(Put, "/projects/{project}/members/{username}", ProjectOwn, PathProject, routes!(projects::put_member)),
        route(Delete, "/projects/{project}/members/{username}", ProjectOwn, PathProject, routes!(projects::delete_member)),
        // Workflow definitions.
        route(Post, "/workflows", ProjectEdit, WorkflowSpecBody, routes!(workflows::apply)),
        route(Get, "/workflows", Authenticated, Nothing, routes!(projects::list_workflows)),
        route(Post, "/workflows:import", ProjectEdit, ImportBody, routes!(workflows::import)),
        route(Get, "/workflows/{project}/{name}", ProjectView, PathProject, routes!(workflows::get)),
        route(Delete, "/workflows/{project}/{name}", ProjectEdit, PathProject, routes!(lifecycle::delete)),
        route(Get, "/workflows/{project}/{name}/versions", ProjectView, PathProject, routes!(lifecycle::list_versions)),
        route(Get, "/workflows/{project}/{name}/versions/{version}", ProjectView, PathProject, routes!(lifecycle::get_version)),
        route(Get, "/workflows/{project}/{name}/versions/{version}/diff/{to}", ProjectView, PathProject, routes!(lifecycle::diff)),
        route(Post, "/workflows/{project}/{name}/offline", ProjectEdit, PathProject, routes!(lifecycle::offline)),
        route(Post, "/workflows/{project}/{name}/online", ProjectEdit, PathProject, routes!(lifecycle::online)),
        // Cron schedules of workflows.
        route(Put, "/workflows/{project}/{name}/schedule", ProjectEdit, PathProject, routes!(schedules::put)),
        route(Get, "/workflows/{project}/{name}/schedule", ProjectView, PathProject, routes!(schedules::get)),
        route(Get, "/workflows/{project}/{name}/schedule/preview", ProjectView, PathProject, routes!(schedules::preview)),
        route(Delete, "/workflows/{project}/{name}/schedule", ProjectEdit, PathProject, routes!(schedules::delete)),
        // Runs.
        route(Post, "/workflows/{project}/{name}/runs", ProjectOperate, PathProject, routes!(runs::trigger)),
        route(Get, "/commands/{id}", ProjectView, Command, routes!(runs::command)),
        route(Get, "/runs", Authenticated, Nothing, routes!(projects::list_runs)),
        // Per-run authorisation inside (each id may be in another project).
        route(Post, "/runs:bulk", Authenticated, Nothing, routes!(runs::bulk)),
        route(Get, "/runs/{id}", ProjectView, Run, routes!(runs::get)),
        route(Post, "/runs/{id}/stop", ProjectOperate, Run, routes!(runs::stop)),
        route(Post, "/runs/{id}/pause", ProjectOperate, Run, routes!(runs::pause)),
        route(Post, "/runs/{id}/resume", ProjectOperate, Run, routes!(runs::resume)),
        route(Post, "/runs/{id}/recover-failed", ProjectOperate, Run, routes!(runs::recover_failed)),
        route(Post, "/runs/{id}/rerun", ProjectOperate, Run, routes!(runs::rerun)),
        route(Post, "/runs/{id}/tasks/{task}/force-success", ProjectOperate, Run, routes!(runs::force_success)),
        route(Get, "/task-instances/{id}/log", ProjectView, TaskInstance, routes!(logs::task_log)),
        route(Get, "/task-instances/{id}/log/download", ProjectView, TaskInstance, routes!(logs::download)),
        route(Get, "/task-instances/{id}/log/search", ProjectView, TaskInstance, routes!(logs::search)),
        route(Get, "/task-instances/{id}/log/follow", ProjectView, TaskInstance, routes!(logs::follow)),
        // The audit log of mutating calls.
        route(Get, "/audit", Admin, Nothing, routes!(audit::list)),
        // The cluster's registry.
        route(Get, "/workers", Authenticated, Nothing, routes!(cluster::workers)),
        route(Get, "/masters", Authenticated, Nothing, routes!(cluster::masters)),
        // Tenants, worker groups, environments: everyone reads, admins write.
        route(Get, "/tenants", Authenticated, Nothing, routes!(tenants::list)),
        route(Post, "/tenants", Admin, Nothing, routes!(tenants::create)),
        route(Get, "/tenants/{tenant}", Authenticated, Nothing, routes!(tenants::get)),
        route(Patch, "/tenants/{tenant}", Admin, Nothing, routes!(tenants::update)),
        route(Delete, "/tenants/{tenant}", Admin, Nothing, routes!(tenants::delete)),
        route(Get, "/worker-groups", Authenticated, Nothing, routes!(worker_groups::list)),
        route(Post, "/worker-groups", Admin, Nothing, routes!(worker_groups::create)),
        route(Get, "/worker-groups/{group}", Authenticated, Nothing, routes!(worker_groups::get)),
        route(Patch, "/worker-groups/{group}", Admin, Nothing, routes!(worker_groups::update)),
        route(Delete, "/worker-groups/{group}", Admin, Nothing, routes!(worker_groups::delete)),
        route(Get, "/environments", Authenticated, Nothing, routes!(environments::list)),
        route(Post, "/environments", Admin, Nothing, routes!(environments::create)),
        route(Get, "/environments/{environment}", Authenticated, Nothing, routes!(environments::get)),
        route(Patch, "/environments/{environment}", Admin, Nothing, routes!(environments::update)),
        route(Delete, "/environments/{environment}", Admin, Nothing, routes!(environments::delete)),
        // This API's OpenAPI document.
        route(Get, "/openapi.json", Public, Nothing, routes!(docs::openapi_json)),
    ]
}

/// The rule of every route under `/api/v1`, in table order.
pub fn route_permissions() -> Vec<RouteRule> {
    table().into_iter().map(|r| r.rule).collect()
}

/// The `/api/v1` router: each route wrapped in [`authz::authorize`] with
/// its rule.
pub fn api_routes(state: &AppState) -> Router<AppState> {
    table().into_iter().fold(Router::new(), |router, r| {
        let rule = r.rule;
        let state = state.clone();
        let guard = middleware::from_fn(move |req: Request, next: Next| {
            authz::authorize(state.clone(), rule, req, next)
        });
        let (_, _, handler) = r.handler;
        router.route(rule.path, handler.route_layer(guard))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_rule_is_consistent_and_unique() {
        let rules = route_permissions();
        let mut seen = HashSet::new();
        for r in &rules {
            assert!(r.is_consistent(), "{r:?}");
            assert!(seen.insert((r.verb, r.path)), "declared twice: {r:?}");
            let needs = match r.project {
                ProjectFrom::PathProject => Some("{project}"),
                ProjectFrom::Run | ProjectFrom::Command | ProjectFrom::TaskInstance => Some("{id}"),
                _ => None,
            };
            if let Some(segment) = needs {
                assert!(r.path.contains(segment), "{r:?} has no {segment}");
            }
        }
    }

    /// Routes are only added through the table: this file calls
    /// `Router::route` once, in `api_routes`.
    #[test]
    fn routes_are_only_added_through_the_table() {
        let src = include_str!("mod.rs");
        let call = concat!(".rou", "te(");
        assert_eq!(src.matches(call).count(), 1);
    }
}
