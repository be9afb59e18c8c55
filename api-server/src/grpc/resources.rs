//! The bodies of the tenant, worker group and environment RPCs: each calls
//! its REST handler ([`crate::routes::tenants`], [`crate::routes::worker_groups`],
//! [`crate::routes::environments`]). The caller is authorised before, in
//! the thin trait methods of [`super::service`] (reads: authenticated;
//! writes: admins, as in the route table).

use axum::Json;
use axum::extract::{Path, Query, State};
use orca_proto::v1 as pb;

use super::convert;
use super::service::page_query;
use crate::AppState;
use crate::error::ApiError;
use crate::routes::{environments, tenants, worker_groups};

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

pub(super) async fn list_tenants(
    state: State<AppState>,
    r: pb::ListTenantsRequest,
) -> Result<pb::ListTenantsResponse, ApiError> {
    let filter = tenants::TenantFilter {
        name: non_empty(r.name),
    };
    let page = page_query(r.page_size, r.page_token)?;
    let Json(page) = tenants::list(state, Query(page), Query(filter)).await?;
    Ok(pb::ListTenantsResponse {
        tenants: page.items.into_iter().map(convert::tenant).collect(),
        next_page_token: page.next_cursor.unwrap_or_default(),
    })
}

pub(super) async fn create_tenant(
    state: State<AppState>,
    r: pb::CreateTenantRequest,
) -> Result<pb::Tenant, ApiError> {
    let body = tenants::CreateTenant {
        name: r.name,
        description: r.description,
        os_user: r.os_user,
    };
    let (_, Json(t)) = tenants::create(state, Json(body)).await?;
    Ok(convert::tenant(t))
}

pub(super) async fn get_tenant(
    state: State<AppState>,
    name: String,
) -> Result<pb::Tenant, ApiError> {
    let Json(t) = tenants::get(state, Path(name)).await?;
    Ok(convert::tenant(t))
}

pub(super) async fn update_tenant(
    state: State<AppState>,
    r: pb::UpdateTenantRequest,
) -> Result<pb::Tenant, ApiError> {
    let body = tenants::UpdateTenant {
        description: r.description,
        os_user: r.os_user,
    };
    let Json(t) = tenants::update(state, Path(r.name), Json(body)).await?;
    Ok(convert::tenant(t))
}

pub(super) async fn delete_tenant(
    state: State<AppState>,
    name: String,
) -> Result<pb::DeleteTenantResponse, ApiError> {
    tenants::delete(state, Path(name)).await?;
    Ok(pb::DeleteTenantResponse {})
}

pub(super) async fn list_worker_groups(
    state: State<AppState>,
    r: pb::ListWorkerGroupsRequest,
) -> Result<pb::ListWorkerGroupsResponse, ApiError> {
    let filter = worker_groups::WorkerGroupFilter {
        name: non_empty(r.name),
    };
    let page = page_query(r.page_size, r.page_token)?;
    let Json(page) = worker_groups::list(state, Query(page), Query(filter)).await?;
    Ok(pb::ListWorkerGroupsResponse {
        worker_groups: page.items.into_iter().map(convert::worker_group).collect(),
        next_page_token: page.next_cursor.unwrap_or_default(),
    })
}

pub(super) async fn create_worker_group(
    state: State<AppState>,
    r: pb::CreateWorkerGroupRequest,
) -> Result<pb::WorkerGroup, ApiError> {
    let body = worker_groups::CreateWorkerGroup {
        name: r.name,
        description: r.description,
    };
    let (_, Json(g)) = worker_groups::create(state, Json(body)).await?;
    Ok(convert::worker_group(g))
}

pub(super) async fn get_worker_group(
    state: State<AppState>,
    name: String,
) -> Result<pb::WorkerGroup, ApiError> {
    let Json(g) = worker_groups::get(state, Path(name)).await?;
    Ok(convert::worker_group(g))
}

pub(super) async fn update_worker_group(
    state: State<AppState>,
    r: pb::UpdateWorkerGroupRequest,
) -> Result<pb::WorkerGroup, ApiError> {
    let body = worker_groups::UpdateWorkerGroup {
        description: r.description,
    };
    let Json(g) = worker_groups::update(state, Path(r.name), Json(body)).await?;
    Ok(convert::worker_group(g))
}

pub(super) async fn delete_worker_group(
    state: State<AppState>,
    name: String,
) -> Result<pb::DeleteWorkerGroupResponse, ApiError> {
    worker_groups::delete(state, Path(name)).await?;
    Ok(pb::DeleteWorkerGroupResponse {})
}

pub(super) async fn list_environments(
    state: State<AppState>,
    r: pb::ListEnvironmentsRequest,
) -> Result<pb::ListEnvironmentsResponse, ApiError> {
    let filter = environments::EnvironmentFilter {
        name: non_empty(r.name),
    };
    let page = page_query(r.page_size, r.page_token)?;
    let Json(page) = environments::list(state, Query(page), Query(filter)).await?;
    Ok(pb::ListEnvironmentsResponse {
        environments: page.items.into_iter().map(convert::environment).collect(),
        next_page_token: page.next_cursor.unwrap_or_default(),
    })
}

pub(super) async fn create_environment(
    state: State<AppState>,
    r: pb::CreateEnvironmentRequest,
) -> Result<pb::Environment, ApiError> {
    let body = environments::CreateEnvironment {
        name: r.name,
        description: r.description,
        packages: r.packages,
        channels: r.channels,
        worker_groups: r.worker_groups,
    };
    let (_, Json(e)) = environments::create(state, Json(body)).await?;
    Ok(convert::environment(e))
}

pub(super) async fn get_environment(
    state: State<AppState>,
    name: String,
) -> Result<pb::Environment, ApiError> {
    let Json(e) = environments::get(state, Path(name)).await?;
    Ok(convert::environment(e))
}

pub(super) async fn update_environment(
    state: State<AppState>,
    r: pb::UpdateEnvironmentRequest,
) -> Result<pb::Environment, ApiError> {
    let list = |l: Option<pb::StringList>| l.map(|l| l.values);
    let body = environments::UpdateEnvironment {
        description: r.description,
        packages: list(r.packages),
        channels: list(r.channels),
        worker_groups: list(r.worker_groups),
    };
    let Json(e) = environments::update(state, Path(r.name), Json(body)).await?;
    Ok(convert::environment(e))
}

pub(super) async fn delete_environment(
    state: State<AppState>,
    name: String,
) -> Result<pb::DeleteEnvironmentResponse, ApiError> {
    environments::delete(state, Path(name)).await?;
    Ok(pb::DeleteEnvironmentResponse {})
}
