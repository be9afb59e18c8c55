//! The OpenAPI 3.1 document of the REST API, assembled in one place from
//! the route table: every route there is built with `utoipa_axum::routes!`
//! from a handler carrying `#[utoipa::path]`, so a route cannot exist
//! without its documentation. [`document`] adds what the route's rule says
//! (the bearer requirement, the 401/403/404 of [`crate::authz`], the
//! permission) and the problem+json error responses, each with its stable
//! `code`.
//!
//! Served at `GET /api/v1/openapi.json`, browsable at `GET /api/docs`.

use std::sync::OnceLock;

use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{PartialSchema, ToResponse, ToSchema};

use crate::auth::AuthError;
use crate::authz::{Perm, ProjectFrom, RouteRule, Verb};
use crate::error::{ApiError, Problem};
use crate::routes;

/// Where the route table is mounted.
pub const API_PREFIX: &str = "/api/v1";

/// Name of the bearer security scheme.
pub const BEARER: &str = "bearer";

/// The media type of every error answer.
pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Orca API",
        description = "REST API of Orca, a distributed workflow scheduler. Authenticate with \
            `Authorization: Bearer <token>`: a session token from `POST /api/v1/auth/login` \
            or a personal access token (`POST /api/v1/tokens`). Errors are RFC 9457 \
            `application/problem+json` documents whose `code` is stable."
    ),
    tags(
        (name = "auth", description = "Login, logout, who am I, own password"),
        (name = "users", description = "User administration (admins)"),
        (name = "tokens", description = "The caller's personal access tokens"),
        (name = "projects", description = "Projects and their members"),
        (name = "workflows", description = "Workflow definitions"),
        (name = "runs", description = "Runs (workflow instances) and the commands acting on them"),
        (name = "logs", description = "Task attempt logs"),
        (name = "audit", description = "The audit log of mutating calls (admins)"),
        (name = "cluster", description = "Registered workers and masters"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

/// The document, built once.
pub fn document_json() -> &'static serde_json::Value {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    DOC.get_or_init(|| serde_json::to_value(document()).expect("the OpenAPI document serialises"))
}

/// The OpenAPI document of every route of the route table.
pub fn document() -> OpenApi {
    let mut doc = <ApiDoc as utoipa::OpenApi>::openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        BEARER.into(),
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "A session token (`orca_sess_…`) or a personal access token (`orca_pat_…`)",
                ))
                .build(),
        ),
    );
    components
        .schemas
        .insert(Problem::name().into_owned(), Problem::schema());
    for (name, response) in error_responses() {
        components.responses.insert(name.to_string(), response);
    }
    for route in routes::table() {
        let (schemas, paths, _) = route.handler;
        components.schemas.extend(schemas);
        for (path, mut item) in paths.paths {
            for op in operations_mut(&mut item) {
                describe_rule(op, &route.rule);
            }
            let full = format!("{API_PREFIX}{path}");
            match doc.paths.paths.get_mut(&full) {
                Some(existing) => existing.merge_operations(item),
                None => {
                    doc.paths.paths.insert(full, item);
                }
            }
        }
    }
    doc
}

/// The operations of a path item, with their HTTP method.
pub fn operations(item: &PathItem) -> Vec<(Verb, &Operation)> {
    [
        (Verb::Get, &item.get),
        (Verb::Post, &item.post),
        (Verb::Put, &item.put),
        (Verb::Patch, &item.patch),
        (Verb::Delete, &item.delete),
    ]
    .into_iter()
    .filter_map(|(v, op)| op.as_ref().map(|op| (v, op)))
    .collect()
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.patch,
        &mut item.delete,
    ]
    .into_iter()
    .flatten()
}

/// Adds what `rule` implies to `op`: security, the authorisation layer's
/// answers, the permission in the description, and 500.
fn describe_rule(op: &mut Operation, rule: &RouteRule) {
    let mut add = |status: &str, name: &str| {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
    };
    if rule.perm != Perm::Public {
        add("401", Unauthorized::NAME);
    }
    if rule.perm == Perm::Admin || rule.perm.min_role().is_some() {
        add("403", Forbidden::NAME);
    }
    if rule.perm.min_role().is_some() {
        add("404", NotFound::NAME);
    }
    if matches!(
        rule.project,
        ProjectFrom::WorkflowSpecBody | ProjectFrom::ImportBody
    ) {
        add("422", Invalid::NAME);
    }
    add("500", Internal::NAME);
    if rule.perm != Perm::Public {
        op.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
    }
    let who = permission_text(rule);
    op.description = Some(match op.description.take() {
        Some(d) if !d.is_empty() => format!("{d}\n\n**Permission:** {who}."),
        _ => format!("**Permission:** {who}."),
    });
}

fn permission_text(rule: &RouteRule) -> String {
    let whose = match rule.project {
        ProjectFrom::Nothing => "",
        ProjectFrom::PathProject => "the `{project}` of the path",
        ProjectFrom::Run => "the project of the run",
        ProjectFrom::Command => "the project of the command",
        ProjectFrom::TaskInstance => "the project of the task instance",
        ProjectFrom::WorkflowSpecBody => "the body's `spec.project`",
        ProjectFrom::ImportBody => "every project the import writes to",
    };
    match (rule.perm, rule.perm.min_role()) {
        (Perm::Public, _) => "none (no token needed)".into(),
        (Perm::Authenticated, _) => "any authenticated user".into(),
        (Perm::Admin, _) => "admins only".into(),
        (_, Some(role)) => format!(
            "role `{role}` or higher in {whose} (admins always); a project the caller has no role in answers 404"
        ),
        (_, None) => unreachable!("project permissions have a role"),
    }
}

/// A problem+json response whose `code` is one of `codes`, with `example`.
fn problem_response(description: &str, example: Problem) -> RefOr<Response> {
    let schema = AllOfBuilder::new()
        .item(Ref::from_schema_name(Problem::name()))
        .item(
            ObjectBuilder::new().property(
                "code",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([example.code.clone()])),
            ),
        );
    let example = serde_json::to_value(&example).expect("a problem serialises");
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(schema))
                .example(Some(example))
                .build(),
        )
        .build()
        .into()
}

fn api_problem(e: &ApiError) -> Problem {
    let (status, code) = e.status_and_code();
    problem(status, code, e.to_string())
}

fn auth_problem(e: AuthError) -> Problem {
    let code = e.code();
    let detail = e.to_string();
    let status = axum::response::IntoResponse::into_response(e).status();
    problem(status, code, detail)
}

fn problem(status: axum::http::StatusCode, code: &str, detail: String) -> Problem {
    Problem {
        kind: "about:blank".into(),
        title: status.canonical_reason().unwrap_or("error").into(),
        status: status.as_u16(),
        detail,
        code: code.into(),
    }
}

/// Declares the reusable error responses: a unit type per response (for
/// `response = …` in `#[utoipa::path]`) and its example error.
macro_rules! error_responses {
    ($($ty:ident: $desc:literal => $example:expr;)*) => {
        $(
            #[doc = $desc]
            pub struct $ty;
            impl $ty {
                pub const NAME: &'static str = stringify!($ty);
            }
            impl<'a> ToResponse<'a> for $ty {
                fn response() -> (&'a str, RefOr<Response>) {
                    (Self::NAME, problem_response($desc, $example))
                }
            }
        )*
        /// Every reusable error response, by name.
        fn error_responses() -> Vec<(&'static str, RefOr<Response>)> {
            vec![$(<$ty as ToResponse>::response()),*]
        }
    };
}

error_responses! {
    Unauthorized: "No, an unknown, an expired or a revoked bearer token, or a disabled user."
        => auth_problem(AuthError::Unauthenticated);
    BadCredentials: "Unknown user, wrong password or disabled user (not told apart)."
        => auth_problem(AuthError::BadCredentials);
    Forbidden: "The caller may see the resource but lacks the permission."
        => auth_problem(AuthError::Forbidden(
            "this needs role operator or higher in project \"etl\"; alice is viewer there".into(),
        ));
    NotFound: "No such resource, or one in a project the caller has no role in (not told apart)."
        => api_problem(&ApiError::NotFound { what: "run", id: "42".into() });
    Conflict: "The request conflicts with the resource's current state."
        => api_problem(&ApiError::Conflict(
            "run 42 is SUCCESS: it already finished; nothing to stop".into(),
        ));
    Invalid: "The request is well-formed JSON but its content is invalid."
        => api_problem(&ApiError::Invalid(
            "name: give the token a name of 1 to 100 bytes".into(),
        ));
    Unavailable: "A component this call needs (a worker, the cluster registry or the leading master) could not be reached or is not configured."
        => api_problem(&ApiError::Unavailable(
            "worker 10.0.0.7:50052 cannot serve the log of task instance 42: connection refused".into(),
        ));
    Internal: "The server failed (details in its log)."
        => api_problem(&ApiError::Internal(
            "the metadata store failed; see the server log".into(),
        ));
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every route of the table is in the document, and nothing else.
    #[test]
    fn the_document_lists_exactly_the_route_table() {
        let doc = document();
        let documented: BTreeSet<(String, &str)> = doc
            .paths
            .paths
            .iter()
            .flat_map(|(path, item)| {
                operations(item)
                    .into_iter()
                    .map(move |(verb, _)| (path.clone(), verb.as_str()))
            })
            .collect();
        let routed: BTreeSet<(String, &str)> = routes::route_permissions()
            .iter()
            .map(|r| (format!("{API_PREFIX}{}", r.path), r.verb.as_str()))
            .collect();
        assert_eq!(documented, routed);
        let ops = doc
            .paths
            .paths
            .values()
            .map(|i| operations(i).len())
            .sum::<usize>();
        assert_eq!(ops, routes::route_permissions().len());
    }

    /// Operation ids are unique, path parameters declared, every `$ref`
    /// resolves, and protected operations document 401.
    #[test]
    fn the_document_is_coherent() {
        let doc = document();
        let json = serde_json::to_value(&doc).unwrap();
        let mut ids = BTreeSet::new();
        for (path, item) in &doc.paths.paths {
            for (verb, op) in operations(item) {
                let id = op.operation_id.clone().unwrap_or_default();
                assert!(ids.insert(id.clone()), "operationId {id} twice");
                assert!(
                    op.tags.as_ref().is_some_and(|t| !t.is_empty()),
                    "{path}: no tag"
                );
                let declared: BTreeSet<String> = op
                    .parameters
                    .iter()
                    .flatten()
                    .filter(|p| p.parameter_in == utoipa::openapi::path::ParameterIn::Path)
                    .map(|p| p.name.clone())
                    .collect();
                let in_path: BTreeSet<String> = path
                    .split('{')
                    .skip(1)
                    .filter_map(|s| s.split_once('}').map(|(n, _)| n.to_string()))
                    .collect();
                assert_eq!(declared, in_path, "{} {path}", verb.as_str());
                assert!(op.responses.responses.contains_key("500"), "{path}");
            }
        }
        let mut refs = Vec::new();
        collect_refs(&json, &mut refs);
        for r in refs {
            let ptr = r.trim_start_matches('#');
            assert!(json.pointer(ptr).is_some(), "dangling $ref {r}");
        }
    }

    fn collect_refs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("$ref", serde_json::Value::String(s)) => out.push(s.clone()),
                        _ => collect_refs(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }
}
