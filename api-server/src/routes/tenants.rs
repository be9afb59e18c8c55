//! `/tenants`: who tasks run as. A tenant names the operating-system user
//! a worker runs a tenant's tasks as (DolphinScheduler's tenant code).
//! Everyone may read them; admins change them.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use orca_store::{ResourceKind, ResourceRow};
use serde::{Deserialize, Serialize};

use super::resources;
use crate::AppState;
use crate::error::ApiError;
use crate::page::{Page, PageQuery};

const KIND: ResourceKind = ResourceKind::Tenant;

/// A tenant.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tenant {
    pub name: String,
    pub description: String,
    /// The operating-system user its tasks run as.
    pub os_user: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Attrs {
    os_user: String,
}

/// Body of `POST /tenants`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Defaults to the tenant's name.
    #[serde(default)]
    pub os_user: Option<String>,
}

/// Body of `PATCH /tenants/{tenant}`: absent fields stay as they are.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub os_user: Option<String>,
}

/// `?name=` filter of `GET /tenants`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TenantFilter {
    /// Only names containing this.
    #[serde(default)]
    pub name: Option<String>,
}

/// POSIX portable user names: `[a-z_][a-z0-9_-]*`, at most 32 bytes.
fn check_os_user(user: &str) -> Result<(), ApiError> {
    let ok = user.len() <= 32
        && user
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && user
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::Invalid(format!(
            "os_user {user:?}: an operating-system user name is 1 to 32 of a-z 0-9 _ -, starting with a-z or _"
        )))
    }
}

fn view(row: ResourceRow) -> Result<Tenant, ApiError> {
    let a: Attrs = resources::attrs(&row)?;
    Ok(Tenant {
        name: row.name,
        description: row.description,
        os_user: a.os_user,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

#[utoipa::path(
    get,
    path = "/tenants",
    tag = "tenants",
    operation_id = "list_tenants",
    params(PageQuery, TenantFilter),
    responses(
        (status = 200, description = "Tenants by name", body = Page<Tenant>),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
/// `GET /tenants`.
pub async fn list(
    State(state): State<AppState>,
    Query(page): Query<PageQuery>,
    Query(filter): Query<TenantFilter>,
) -> Result<Json<Page<Tenant>>, ApiError> {
    let p = resources::page(&state, KIND, &page, filter.name.as_deref()).await?;
    Ok(Json(Page {
        items: p.items.into_iter().map(view).collect::<Result<_, _>>()?,
        next_cursor: p.next_cursor,
    }))
}

#[utoipa::path(
    post,
    path = "/tenants",
    tag = "tenants",
    operation_id = "create_tenant",
    request_body = CreateTenant,
    responses(
        (status = 201, description = "The new tenant", body = Tenant),
        (status = 409, response = crate::openapi::Conflict),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
/// `POST /tenants` (admins).
pub async fn create(
    State(state): State<AppState>,
    Json(req): Json<CreateTenant>,
) -> Result<(StatusCode, Json<Tenant>), ApiError> {
    let os_user = req.os_user.unwrap_or_else(|| req.name.clone());
    resources::check_name(KIND, &req.name)?;
    check_os_user(&os_user)?;
    let row = resources::create(
        &state,
        KIND,
        &req.name,
        &req.description,
        &Attrs { os_user },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view(row)?)))
}

#[utoipa::path(
    get,
    path = "/tenants/{tenant}",
    tag = "tenants",
    operation_id = "get_tenant",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses(
        (status = 200, description = "The tenant", body = Tenant),
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
/// `GET /tenants/{tenant}`.
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    Ok(Json(view(resources::get(&state, KIND, &name).await?)?))
}

#[utoipa::path(
    patch,
    path = "/tenants/{tenant}",
    tag = "tenants",
    operation_id = "update_tenant",
    params(("tenant" = String, Path, description = "Tenant name")),
    request_body = UpdateTenant,
    responses(
        (status = 200, description = "The changed tenant", body = Tenant),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
/// `PATCH /tenants/{tenant}` (admins).
pub async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(req): Json<UpdateTenant>,
) -> Result<Json<Tenant>, ApiError> {
    let attrs = match req.os_user {
        Some(os_user) => {
            check_os_user(&os_user)?;
            Some(Attrs { os_user })
        }
        None => None,
    };
    let row = resources::update(&state, KIND, &name, req.description, attrs.as_ref()).await?;
    Ok(Json(view(row)?))
}

#[utoipa::path(
    delete,
    path = "/tenants/{tenant}",
    tag = "tenants",
    operation_id = "delete_tenant",
    params(("tenant" = String, Path, description = "Tenant name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
    ),
)]
/// `DELETE /tenants/{tenant}` (admins): refused while a workflow runs as
/// it.
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    resources::get(&state, KIND, &name).await?;
    let users: Vec<String> = state
        .store
        .list_workflows(None)
        .await?
        .into_iter()
        .filter(|w| w.spec.tenant.as_deref() == Some(name.as_str()))
        .map(|w| format!("workflow {}/{}", w.project, w.name))
        .collect();
    resources::refuse_if_used(KIND, &name, &users)?;
    resources::delete(&state, KIND, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
