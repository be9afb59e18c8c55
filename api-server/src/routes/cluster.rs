//! The cluster as the registry sees it: live workers and masters, and which
//! master leads with which epoch.

use axum::Json;
use axum::extract::State;
use orca_common::registry::{Registry, RegistryError};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;

/// A live worker.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerView {
    pub id: String,
    /// gRPC address.
    pub addr: String,
    pub group: String,
    pub labels: Vec<String>,
    pub environments: Vec<String>,
    /// Task slots in all.
    pub slots: u32,
    /// Tasks running now.
    pub running: u32,
    /// 1-minute load average.
    pub load: f64,
    pub cpus: u32,
    pub memory_total_mb: u64,
    pub memory_available_mb: u64,
}

/// A registered master (leader or standby).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MasterView {
    pub id: String,
    /// gRPC address.
    pub addr: String,
    /// Whether it is the leader now.
    pub leader: bool,
    /// The leader's epoch (fencing token); `null` on standbys.
    pub epoch: Option<u64>,
}

fn registry(state: &AppState) -> Result<&dyn Registry, ApiError> {
    state
        .registry
        .as_deref()
        .ok_or_else(|| ApiError::Unavailable("this API server has no registry configured".into()))
}

fn unavailable(e: RegistryError) -> ApiError {
    ApiError::Unavailable(e.to_string())
}

#[utoipa::path(
    get,
    path = "/workers",
    tag = "cluster",
    operation_id = "list_workers",
    responses(
        (status = 200, description = "Live workers, by id", body = Vec<WorkerView>),
        (status = 502, response = crate::openapi::Unavailable),
    ),
)]
/// `GET /workers`: live workers with their capacity and load.
pub async fn workers(State(state): State<AppState>) -> Result<Json<Vec<WorkerView>>, ApiError> {
    let mut workers: Vec<WorkerView> = registry(&state)?
        .workers()
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|w| WorkerView {
            id: w.id,
            addr: w.addr,
            group: w.group,
            labels: w.labels,
            environments: w.environments,
            slots: w.slots,
            running: w.running,
            load: w.load,
            cpus: w.cpus,
            memory_total_mb: w.memory_total_mb,
            memory_available_mb: w.memory_available_mb,
        })
        .collect();
    workers.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(workers))
}

#[utoipa::path(
    get,
    path = "/masters",
    tag = "cluster",
    operation_id = "list_masters",
    responses(
        (status = 200, description = "Registered masters, by id; the leader with its epoch", body = Vec<MasterView>),
        (status = 502, response = crate::openapi::Unavailable),
    ),
)]
/// `GET /masters`: registered masters, which one leads, and its epoch.
pub async fn masters(State(state): State<AppState>) -> Result<Json<Vec<MasterView>>, ApiError> {
    let registry = registry(&state)?;
    let leader = registry.watch_leader().borrow().clone();
    let mut masters: Vec<MasterView> = registry
        .masters()
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|m| {
            let epoch = leader
                .as_ref()
                .filter(|l| l.master.id == m.id)
                .map(|l| l.epoch);
            MasterView {
                leader: epoch.is_some(),
                epoch,
                id: m.id,
                addr: m.addr,
            }
        })
        .collect();
    masters.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(masters))
}
