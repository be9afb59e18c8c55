//! `/environments`: named Conda environments tasks run in. A task picks one
//! with `environment`; it is dispatched only to a worker that hosts it
//! (workers advertise what they host). The definition here records what
//! the environment holds (conda packages and channels) and which worker
//! groups should host it. Everyone may read them; admins change them.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use orca_store::{ResourceKind, ResourceRow};
use serde::{Deserialize, Serialize};

use super::resources;
use super::worker_groups::first_unknown_group;
use crate::AppState;
use crate::error::ApiError;
use crate::page::{Page, PageQuery};

const KIND: ResourceKind = ResourceKind::Environment;
/// Most packages or channels in one environment.
const MAX_ENTRIES: usize = 500;
/// Longest package spec or channel.
const MAX_ENTRY_BYTES: usize = 256;

/// An environment and the live workers hosting it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Environment {
    pub name: String,
    pub description: String,
    /// Conda match specs, e.g. `python=3.11`, `scikit-learn>=1.3`.
    pub packages: Vec<String>,
    /// Conda channels, in priority order.
    pub channels: Vec<String>,
    /// The worker groups that should host it.
    pub worker_groups: Vec<String>,
    /// Ids of the live workers that host it now.
    pub hosted_by: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Attrs {
    #[serde(default)]
    packages: Vec<String>,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    worker_groups: Vec<String>,
}

/// Body of `POST /environments`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnvironment {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub packages: Vec<String>,
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default)]
    pub worker_groups: Vec<String>,
}

/// Body of `PATCH /environments/{environment}`: absent fields stay.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEnvironment {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub packages: Option<Vec<String>>,
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    #[serde(default)]
    pub worker_groups: Option<Vec<String>>,
}

/// Filters of `GET /environments`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EnvironmentFilter {
    /// Only names containing this.
    #[serde(default)]
    pub name: Option<String>,
}

fn check_entries(field: &str, entries: &[String]) -> Result<(), ApiError> {
    if entries.len() > MAX_ENTRIES {
        return Err(ApiError::Invalid(format!(
            "{field}: {} entries, at most {MAX_ENTRIES}",
            entries.len()
        )));
    }
    for (i, e) in entries.iter().enumerate() {
        if e.trim().is_empty() || e.len() > MAX_ENTRY_BYTES || e.chars().any(char::is_control) {
            return Err(ApiError::Invalid(format!(
                "{field}[{i}] {e:?}: give 1 to {MAX_ENTRY_BYTES} printable bytes"
            )));
        }
    }
    Ok(())
}

async fn check(state: &AppState, a: &Attrs) -> Result<(), ApiError> {
    check_entries("packages", &a.packages)?;
    check_entries("channels", &a.channels)?;
    match first_unknown_group(state, &a.worker_groups).await? {
        Some((i, g)) => Err(ApiError::Invalid(format!(
            "worker_groups[{i}]: there is no worker group {g:?}; create it with POST /api/v1/worker-groups"
        ))),
        None => Ok(()),
    }
}

async fn view(state: &AppState, row: ResourceRow) -> Result<Environment, ApiError> {
    let a: Attrs = resources::attrs(&row)?;
    let hosted_by = match &state.registry {
        Some(registry) => {
            let mut ids: Vec<String> = registry
                .workers()
                .await
                .map_err(|e| ApiError::Unavailable(e.to_string()))?
                .into_iter()
                .filter(|w| w.environments.contains(&row.name))
                .map(|w| w.id)
                .collect();
            ids.sort();
            ids
        }
        None => Vec::new(),
    };
    Ok(Environment {
        name: row.name,
        description: row.description,
        packages: a.packages,
        channels: a.channels,
        worker_groups: a.worker_groups,
        hosted_by,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// "environment E" for each environment meant for worker group `group`.
pub async fn environments_in_group(state: &AppState, group: &str) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for row in state.store.all_resources(KIND).await? {
        let a: Attrs = resources::attrs(&row)?;
        if a.worker_groups.iter().any(|g| g == group) {
            out.push(format!("environment {}", row.name));
        }
    }
    Ok(out)
}

#[utoipa::path(
    get,
    path = "/environments",
    tag = "environments",
    operation_id = "list_environments",
    params(PageQuery, EnvironmentFilter),
    responses(
        (status = 200, description = "Environments by name", body = Page<Environment>),
        (status = 422, response = crate::openapi::Invalid),
        (status = 502, response = crate::openapi::Unavailable),
    ),
)]
/// `GET /environments`.
pub async fn list(
    State(state): State<AppState>,
    Query(page): Query<PageQuery>,
    Query(filter): Query<EnvironmentFilter>,
) -> Result<Json<Page<Environment>>, ApiError> {
    let p = resources::page(&state, KIND, &page, filter.name.as_deref()).await?;
    let mut items = Vec::with_capacity(p.items.len());
    for row in p.items {
        items.push(view(&state, row).await?);
    }
    Ok(Json(Page {
        items,
        next_cursor: p.next_cursor,
    }))
}

#[utoipa::path(
    post,
    path = "/environments",
    tag = "environments",
    operation_id = "create_environment",
    request_body = CreateEnvironment,
    responses(
        (status = 201, description = "The new environment", body = Environment),
        (status = 409, response = crate::openapi::Conflict),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
/// `POST /environments` (admins).
pub async fn create(
    State(state): State<AppState>,
    Json(req): Json<CreateEnvironment>,
) -> Result<(StatusCode, Json<Environment>), ApiError> {
    resources::check_name(KIND, &req.name)?;
    let a = Attrs {
        packages: req.packages,
        channels: req.channels,
        worker_groups: req.worker_groups,
    };
    check(&state, &a).await?;
    let row = resources::create(&state, KIND, &req.name, &req.description, &a).await?;
    Ok((StatusCode::CREATED, Json(view(&state, row).await?)))
}

#[utoipa::path(
    get,
    path = "/environments/{environment}",
    tag = "environments",
    operation_id = "get_environment",
    params(("environment" = String, Path, description = "Environment name")),
    responses(
        (status = 200, description = "The environment", body = Environment),
        (status = 404, response = crate::openapi::NotFound),
        (status = 502, response = crate::openapi::Unavailable),
    ),
)]
/// `GET /environments/{environment}`.
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Environment>, ApiError> {
    let row = resources::get(&state, KIND, &name).await?;
    Ok(Json(view(&state, row).await?))
}

#[utoipa::path(
    patch,
    path = "/environments/{environment}",
    tag = "environments",
    operation_id = "update_environment",
    params(("environment" = String, Path, description = "Environment name")),
    request_body = UpdateEnvironment,
    responses(
        (status = 200, description = "The changed environment", body = Environment),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
/// `PATCH /environments/{environment}` (admins).
pub async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(req): Json<UpdateEnvironment>,
) -> Result<Json<Environment>, ApiError> {
    let row = resources::get(&state, KIND, &name).await?;
    let mut a: Attrs = resources::attrs(&row)?;
    let changes = req.packages.is_some() || req.channels.is_some() || req.worker_groups.is_some();
    if let Some(p) = req.packages {
        a.packages = p;
    }
    if let Some(c) = req.channels {
        a.channels = c;
    }
    if let Some(g) = req.worker_groups {
        a.worker_groups = g;
    }
    check(&state, &a).await?;
    let row =
        resources::update(&state, KIND, &name, req.description, changes.then_some(&a)).await?;
    Ok(Json(view(&state, row).await?))
}

#[utoipa::path(
    delete,
    path = "/environments/{environment}",
    tag = "environments",
    operation_id = "delete_environment",
    params(("environment" = String, Path, description = "Environment name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
    ),
)]
/// `DELETE /environments/{environment}` (admins): refused while a task of
/// a workflow still names it.
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    resources::get(&state, KIND, &name).await?;
    let users =
        resources::users_of(&state, |t| t.environment.as_deref() == Some(name.as_str())).await?;
    resources::refuse_if_used(KIND, &name, &users)?;
    resources::delete(&state, KIND, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
