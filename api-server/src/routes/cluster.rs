//! The cluster as the registry sees it: live workers and masters, and which
//! master leads with which epoch.

use axum::Json;
use axum::extract::{Query, State};
use orca_common::registry::{Registry, RegistryError};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;
use crate::page::{Page, PageQuery, encode_name};

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

/// How busy a worker is, for `GET /workers?state=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkerLoad {
    /// No task running.
    Idle,
    /// Some tasks running, slots free.
    Busy,
    /// Every slot taken.
    Full,
}

impl WorkerView {
    /// How busy it is.
    pub fn load_state(&self) -> WorkerLoad {
        if self.running == 0 {
            WorkerLoad::Idle
        } else if self.running < self.slots {
            WorkerLoad::Busy
        } else {
            WorkerLoad::Full
        }
    }
}

/// `GET /workers?limit=&cursor=&group=&label=&environment=&state=`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkersQuery {
    /// Items per page (1..=1000, default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page; absent for the first page.
    pub cursor: Option<String>,
    /// Only workers of this group.
    pub group: Option<String>,
    /// Only workers with this label.
    pub label: Option<String>,
    /// Only workers offering this environment.
    pub environment: Option<String>,
    /// Only idle (nothing running), busy (slots free) or full workers.
    #[param(inline)]
    pub state: Option<WorkerLoad>,
}

#[utoipa::path(
    get,
    path = "/workers",
    tag = "cluster",
    operation_id = "list_workers",
    params(WorkersQuery),
    responses(
        (status = 200, description = "A page of the live workers, by id", body = Page<WorkerView>),
        (status = 422, response = crate::openapi::Invalid),
        (status = 502, response = crate::openapi::Unavailable),
    ),
)]
/// `GET /workers`: live workers with their capacity and load, by id.
pub async fn workers(
    State(state): State<AppState>,
    Query(q): Query<WorkersQuery>,
) -> Result<Json<Page<WorkerView>>, ApiError> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let after = page.cursor_name()?;
    let workers: Vec<WorkerView> = worker_views(&state)
        .await?
        .into_iter()
        .filter(|w| q.group.as_ref().is_none_or(|g| w.group == *g))
        .filter(|w| q.label.as_ref().is_none_or(|l| w.labels.contains(l)))
        .filter(|w| {
            q.environment
                .as_ref()
                .is_none_or(|e| w.environments.contains(e))
        })
        .filter(|w| q.state.is_none_or(|s| w.load_state() == s))
        .collect();
    Ok(Json(Page::from_sorted(
        workers,
        limit,
        after,
        |w| w.id.clone(),
        |id| encode_name(&id),
    )))
}

/// Live workers, by id (`GET /workers`, gRPC `ListWorkers`).
pub async fn worker_views(state: &AppState) -> Result<Vec<WorkerView>, ApiError> {
    let mut workers: Vec<WorkerView> = registry(state)?
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
    Ok(workers)
}

#[utoipa::path(
    get,
    path = "/masters",
    tag = "cluster",
    operation_id = "list_masters",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of the registered masters, by id; the leader with its epoch", body = Page<MasterView>),
        (status = 422, response = crate::openapi::Invalid),
        (status = 502, response = crate::openapi::Unavailable),
    ),
)]
/// `GET /masters`: registered masters, which one leads, and its epoch, by
/// id.
pub async fn masters(
    State(state): State<AppState>,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<MasterView>>, ApiError> {
    let limit = page.limit()?;
    let after = page.cursor_name()?;
    let masters = master_views(&state).await?;
    Ok(Json(Page::from_sorted(
        masters,
        limit,
        after,
        |m| m.id.clone(),
        |id| encode_name(&id),
    )))
}

/// Registered masters, by id, the leader with its epoch (`GET /masters`,
/// gRPC `ListMasters`).
pub async fn master_views(state: &AppState) -> Result<Vec<MasterView>, ApiError> {
    let registry = registry(state)?;
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
    Ok(masters)
}
