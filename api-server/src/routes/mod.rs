//! REST resources, one module each, and **the route table**: every route
//! is declared once in [`table`] with the permission it needs (see
//! [`crate::authz`]); the router and [`route_permissions`] (used by the
//! authorisation matrix test) are both built from it, so a route cannot
//! exist without a declared permission.

pub mod auth;
pub mod logs;
pub mod projects;
pub mod runs;
pub mod tokens;
pub mod users;
pub mod workflows;

use axum::Router;
use axum::extract::Request;
use axum::handler::Handler;
use axum::middleware::{self, Next};
use axum::routing::{MethodFilter, MethodRouter, on};

use crate::AppState;
use crate::authz::{self, Perm, ProjectFrom, RouteRule, Verb};

/// One route: its rule and its handler.
struct Route {
    rule: RouteRule,
    handler: MethodRouter<AppState>,
}

fn route<H, T>(
    verb: Verb,
    path: &'static str,
    perm: Perm,
    project: ProjectFrom,
    handler: H,
) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = match verb {
        Verb::Get => MethodFilter::GET,
        Verb::Post => MethodFilter::POST,
        Verb::Put => MethodFilter::PUT,
        Verb::Patch => MethodFilter::PATCH,
        Verb::Delete => MethodFilter::DELETE,
    };
    Route {
        rule: RouteRule {
            verb,
            path,
            perm,
            project,
        },
        handler: on(filter, handler),
    }
}

/// Every route under `/api/v1`. Add new routes here, with their permission.
#[rustfmt::skip]
fn table() -> Vec<Route> {
    use Perm::*;
    use ProjectFrom::*;
    use Verb::*;
    vec![
        // Authentication, users, tokens.
        route(Post, "/auth/login", Public, Nothing, auth::login),
        route(Post, "/auth/logout", Authenticated, Nothing, auth::logout),
        route(Get, "/auth/me", Authenticated, Nothing, auth::me),
        route(Post, "/users/me/password", Authenticated, Nothing, auth::change_password),
        route(Post, "/users", Admin, Nothing, users::create),
        route(Get, "/users", Admin, Nothing, users::list),
        route(Patch, "/users/{username}", Admin, Nothing, users::update),
        route(Post, "/tokens", Authenticated, Nothing, tokens::create),
        route(Get, "/tokens", Authenticated, Nothing, tokens::list),
        route(Delete, "/tokens/{id}", Authenticated, Nothing, tokens::delete),
        // Projects and their members.
        route(Get, "/projects", Authenticated, Nothing, projects::list),
        route(Post, "/projects", Admin, Nothing, projects::create),
        route(Get, "/projects/{project}/members", ProjectView, PathProject, projects::members),
        route(Put, "/projects/{project}/members/{username}", ProjectOwn, PathProject, projects::put_member),
        route(Delete, "/projects/{project}/members/{username}", ProjectOwn, PathProject, projects::delete_member),
        // Workflow definitions.
        route(Post, "/workflows", ProjectEdit, WorkflowSpecBody, workflows::apply),
        route(Get, "/workflows", Authenticated, Nothing, projects::list_workflows),
        route(Post, "/workflows:import", ProjectEdit, ImportBody, workflows::import),
        route(Get, "/workflows/{project}/{name}", ProjectView, PathProject, workflows::get),
        // Runs.
        route(Post, "/workflows/{project}/{name}/runs", ProjectOperate, PathProject, runs::trigger),
        route(Get, "/commands/{id}", ProjectView, Command, runs::command),
        route(Get, "/runs", Authenticated, Nothing, projects::list_runs),
        route(Get, "/runs/{id}", ProjectView, Run, runs::get),
        route(Post, "/runs/{id}/stop", ProjectOperate, Run, runs::stop),
        route(Post, "/runs/{id}/pause", ProjectOperate, Run, runs::pause),
        route(Post, "/runs/{id}/resume", ProjectOperate, Run, runs::resume),
        route(Post, "/runs/{id}/recover-failed", ProjectOperate, Run, runs::recover_failed),
        route(Post, "/runs/{id}/rerun", ProjectOperate, Run, runs::rerun),
        route(Post, "/runs/{id}/tasks/{task}/force-success", ProjectOperate, Run, runs::force_success),
        route(Get, "/task-instances/{id}/log", ProjectView, TaskInstance, logs::task_log),
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
        router.route(rule.path, r.handler.route_layer(guard))
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
