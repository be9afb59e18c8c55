//! `/worker-groups`: named groups of workers. A worker joins a group by its
//! `worker.group` setting; a task picks one with `worker_group`. A group
//! defined here carries a description and is listed even with no worker
//! up; a group a live worker declares is listed even when not defined.
//! Everyone may read them; admins change them.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use orca_common::model::default_worker_group;
use orca_store::{ResourceKind, ResourceRow};
use serde::{Deserialize, Serialize};

use super::resources;
use crate::AppState;
use crate::error::ApiError;
use crate::page::{Page, PageQuery, decode_name, encode_name};

const KIND: ResourceKind = ResourceKind::WorkerGroup;

/// A worker group and its live workers.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerGroup {
    pub name: String,
    pub description: String,
    /// Defined through this API (else only declared by live workers, or
    /// the built-in `default`).
    pub defined: bool,
    /// Ids of the live workers in it, by id.
    pub workers: Vec<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Body of `POST /worker-groups`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkerGroup {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// Body of `PATCH /worker-groups/{group}`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWorkerGroup {
    #[serde(default)]
    pub description: Option<String>,
}

/// `?name=` filter of `GET /worker-groups`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkerGroupFilter {
    /// Only names containing this.
    #[serde(default)]
    pub name: Option<String>,
}

/// Live workers by group; empty when the server has no registry.
async fn live_members(state: &AppState) -> Result<BTreeMap<String, Vec<String>>, ApiError> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(registry) = &state.registry {
        let workers = registry
            .workers()
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        for w in workers {
            groups.entry(w.group).or_default().push(w.id);
        }
    }
    for ids in groups.values_mut() {
        ids.sort();
    }
    Ok(groups)
}

/// The first of `names` (with its index) no worker can be in: neither
/// `default`, nor defined, nor declared by a live worker. The registry is
/// read once, and only when a name is not defined.
pub async fn first_unknown_group<'a>(
    state: &AppState,
    names: &'a [String],
) -> Result<Option<(usize, &'a str)>, ApiError> {
    let mut live = None;
    for (i, name) in names.iter().enumerate() {
        if *name == default_worker_group() || state.store.resource(KIND, name).await?.is_some() {
            continue;
        }
        if live.is_none() {
            live = Some(live_members(state).await?);
        }
        if !live.as_ref().is_some_and(|l| l.contains_key(name)) {
            return Ok(Some((i, name)));
        }
    }
    Ok(None)
}

fn view(row: Option<ResourceRow>, name: String, workers: Vec<String>) -> WorkerGroup {
    match row {
        Some(r) => WorkerGroup {
            name,
            description: r.description,
            defined: true,
            workers,
            created_at: Some(r.created_at),
            updated_at: Some(r.updated_at),
        },
        None => WorkerGroup {
            description: if name == default_worker_group() {
                "The group of workers that set no group".into()
            } else {
                String::new()
            },
            name,
            defined: false,
            workers,
            created_at: None,
            updated_at: None,
        },
    }
}

#[utoipa::path(
    get,
    path = "/worker-groups",
    tag = "worker-groups",
    operation_id = "list_worker_groups",
    params(PageQuery, WorkerGroupFilter),
    responses(
        (status = 200, description = "Defined groups, `default`, and groups live workers declare, by name", body = Page<WorkerGroup>),
        (status = 422, response = crate::openapi::Invalid),
        (status = 502, response = crate::openapi::Unavailable),
    ),
)]
/// `GET /worker-groups`.
pub async fn list(
    State(state): State<AppState>,
    Query(page): Query<PageQuery>,
    Query(filter): Query<WorkerGroupFilter>,
) -> Result<Json<Page<WorkerGroup>>, ApiError> {
    let limit = page.limit()?;
    let after = page.cursor.as_deref().map(decode_name).transpose()?;
    let mut live = live_members(&state).await?;
    live.entry(default_worker_group()).or_default();
    let mut defined: BTreeMap<String, ResourceRow> = state
        .store
        .all_resources(KIND)
        .await?
        .into_iter()
        .map(|r| (r.name.clone(), r))
        .collect();
    let mut names: Vec<String> = live.keys().chain(defined.keys()).cloned().collect();
    names.sort();
    names.dedup();
    if let Some(f) = &filter.name {
        names.retain(|n| n.contains(f.as_str()));
    }
    let groups = names
        .into_iter()
        .map(|n| {
            let workers = live.remove(&n).unwrap_or_default();
            view(defined.remove(&n), n, workers)
        })
        .collect();
    Ok(Json(Page::from_sorted(
        groups,
        limit,
        after,
        |g: &WorkerGroup| g.name.clone(),
        |k| encode_name(&k),
    )))
}

#[utoipa::path(
    post,
    path = "/worker-groups",
    tag = "worker-groups",
    operation_id = "create_worker_group",
    request_body = CreateWorkerGroup,
    responses(
        (status = 201, description = "The new group", body = WorkerGroup),
        (status = 409, response = crate::openapi::Conflict),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
/// `POST /worker-groups` (admins).
pub async fn create(
    State(state): State<AppState>,
    Json(req): Json<CreateWorkerGroup>,
) -> Result<(StatusCode, Json<WorkerGroup>), ApiError> {
    if req.name == default_worker_group() {
        return Err(ApiError::Conflict(
            "worker group \"default\" is built in; pick another name".into(),
        ));
    }
    let row = resources::create(
        &state,
        KIND,
        &req.name,
        &req.description,
        &serde_json::json!({}),
    )
    .await?;
    let workers = live_members(&state)
        .await?
        .remove(&row.name)
        .unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(view(Some(row), req.name, workers)),
    ))
}

#[utoipa::path(
    get,
    path = "/worker-groups/{group}",
    tag = "worker-groups",
    operation_id = "get_worker_group",
    params(("group" = String, Path, description = "Worker group name")),
    responses(
        (status = 200, description = "The group and its live workers", body = WorkerGroup),
        (status = 404, response = crate::openapi::NotFound),
        (status = 502, response = crate::openapi::Unavailable),
    ),
)]
/// `GET /worker-groups/{group}`: a defined group, `default`, or one a live
/// worker declares.
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<WorkerGroup>, ApiError> {
    let row = state.store.resource(KIND, &name).await?;
    let workers = live_members(&state).await?.remove(&name);
    if row.is_none() && workers.is_none() && name != default_worker_group() {
        return Err(resources::not_found(KIND, &name));
    }
    Ok(Json(view(row, name, workers.unwrap_or_default())))
}

#[utoipa::path(
    patch,
    path = "/worker-groups/{group}",
    tag = "worker-groups",
    operation_id = "update_worker_group",
    params(("group" = String, Path, description = "Worker group name")),
    request_body = UpdateWorkerGroup,
    responses(
        (status = 200, description = "The changed group", body = WorkerGroup),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
/// `PATCH /worker-groups/{group}` (admins; defined groups only).
pub async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(req): Json<UpdateWorkerGroup>,
) -> Result<Json<WorkerGroup>, ApiError> {
    let row = resources::update::<()>(&state, KIND, &name, req.description, None).await?;
    let workers = live_members(&state)
        .await?
        .remove(&name)
        .unwrap_or_default();
    Ok(Json(view(Some(row), name, workers)))
}

#[utoipa::path(
    delete,
    path = "/worker-groups/{group}",
    tag = "worker-groups",
    operation_id = "delete_worker_group",
    params(("group" = String, Path, description = "Worker group name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
    ),
)]
/// `DELETE /worker-groups/{group}` (admins): refused while a task of a
/// workflow or an environment still names the group.
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    resources::get(&state, KIND, &name).await?;
    let mut users = resources::users_of(&state, |t| t.worker_group == name).await?;
    users.extend(super::environments::environments_in_group(&state, &name).await?);
    resources::refuse_if_used(KIND, &name, &users)?;
    resources::delete(&state, KIND, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
