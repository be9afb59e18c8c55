//! Orca's metadata store: sea-orm over SQLite (embedded default, WAL) or
//! PostgreSQL, with migrations.
//!
//! API boundary: callers see only the plain row/write types below; sea-orm
//! entities stay inside this crate.
//!
//! Fencing invariant: every write a master makes goes through [`Store::apply`]
//! (or another method taking `epoch`), which runs in one transaction that
//! first checks — under a row lock of the single `leader_epoch` row — that the
//! stored epoch still equals the caller's. A deposed leader gets
//! [`StoreError::Fenced`] and nothing it wrote is kept.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use orca_common::{TaskState, WorkflowSpec, WorkflowState};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("ORCA-STORE-DB: database error: {0}")]
    Db(String),
    #[error(
        "ORCA-STORE-FENCED: epoch {mine} is stale (store holds epoch {current}); this master is no longer the leader"
    )]
    Fenced { mine: u64, current: u64 },
    #[error("ORCA-STORE-NOT-FOUND: {what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("ORCA-STORE-LOGS: {0}")]
    LogStore(#[from] log_store::LogStoreError),
    #[error("ORCA-STORE-CORRUPT: stored {what} {id} cannot be read: {reason}")]
    Corrupt {
        what: &'static str,
        id: String,
        reason: String,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectRow {
    pub id: i64,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A workflow definition at one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkflowDefinitionRow {
    pub id: i64,
    pub project: String,
    pub name: String,
    pub version: i32,
    pub spec: WorkflowSpec,
    /// The YAML (or JSON) the user submitted for this version.
    pub source: String,
    pub created_at: DateTime<Utc>,
}

/// What a command asks the leader to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CommandKind {
    /// Start a workflow instance.
    #[default]
    Start,
    /// Stop the workflow instance `target_instance_id`: kill its running
    /// tasks, schedule nothing more, end it in state STOP.
    Stop,
    /// Pause `target_instance_id`: let running tasks finish, start nothing
    /// new; it ends in state PAUSE.
    Pause,
    /// Resume a paused `target_instance_id`.
    Resume,
    /// Run the failed, killed, lost and upstream-failed tasks of a finished
    /// `target_instance_id` again (and what depends on them).
    RecoverFailed,
    /// Mark the last attempt of task `options.task` of a finished or paused
    /// `target_instance_id` as SUCCESS.
    ForceSuccess,
}

/// Which tasks a START command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunScope {
    /// Only the start tasks.
    Only,
    /// The start tasks and everything downstream of them.
    Downstream,
    /// The start tasks and everything upstream of them.
    Upstream,
}

/// Extra arguments of a command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommandOptions {
    /// START: run only from these tasks (with `scope`); empty = whole DAG.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub start_tasks: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<RunScope>,
    /// FORCE_SUCCESS: the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

impl CommandKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandKind::Start => "START",
            CommandKind::Stop => "STOP",
            CommandKind::Pause => "PAUSE",
            CommandKind::Resume => "RESUME",
            CommandKind::RecoverFailed => "RECOVER_FAILED",
            CommandKind::ForceSuccess => "FORCE_SUCCESS",
        }
    }
}

impl std::str::FromStr for CommandKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "START" => Ok(CommandKind::Start),
            "STOP" => Ok(CommandKind::Stop),
            "PAUSE" => Ok(CommandKind::Pause),
            "RESUME" => Ok(CommandKind::Resume),
            "RECOVER_FAILED" => Ok(CommandKind::RecoverFailed),
            "FORCE_SUCCESS" => Ok(CommandKind::ForceSuccess),
            other => Err(format!("unknown command type {other:?}")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewCommand {
    #[serde(default)]
    pub kind: CommandKind,
    /// For commands on an existing run: the workflow instance.
    #[serde(default)]
    pub target_instance_id: Option<i64>,
    #[serde(default)]
    pub options: CommandOptions,
    pub workflow_definition_id: i64,
    pub version: i32,
    /// Start-time parameters (`--param k=v`).
    pub params: BTreeMap<String, String>,
    /// Schedule time; trigger time for manual runs.
    pub schedule_time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommandRow {
    pub id: i64,
    pub kind: CommandKind,
    #[serde(default)]
    pub options: CommandOptions,
    pub workflow_definition_id: i64,
    pub version: i32,
    pub params: BTreeMap<String, String>,
    pub schedule_time: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// START: set once a master turned the command into a workflow
    /// instance. STOP: the instance to stop.
    pub workflow_instance_id: Option<i64>,
    /// Set once the leader acted on the command.
    pub consumed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkflowInstanceRow {
    pub id: i64,
    pub workflow_definition_id: i64,
    pub version: i32,
    pub name: String,
    pub project: String,
    pub state: WorkflowState,
    pub params: BTreeMap<String, String>,
    pub schedule_time: DateTime<Utc>,
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub command_id: Option<i64>,
    /// Epoch of the master that last wrote this row.
    pub epoch: u64,
}

/// One attempt of one task in one workflow instance (a retry is a new row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskInstanceRow {
    pub id: i64,
    pub workflow_instance_id: i64,
    pub task_name: String,
    pub attempt: i32,
    pub state: TaskState,
    /// This attempt replaces one lost with its worker (not counted as a retry).
    pub failover: bool,
    pub worker_id: Option<String>,
    pub worker_addr: Option<String>,
    pub pid: Option<i64>,
    pub exit_code: Option<i32>,
    pub submit_time: DateTime<Utc>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub out_params: BTreeMap<String, String>,
    pub log_path: Option<String>,
    pub message: Option<String>,
    /// Highest report sequence number applied (forward-only reports).
    pub last_seq: i64,
    pub epoch: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTaskInstance {
    pub workflow_instance_id: i64,
    pub task_name: String,
    pub attempt: i32,
    pub state: TaskState,
    pub failover: bool,
    /// Set when the attempt is assigned to a worker at creation (state DISPATCHED).
    pub worker_id: Option<String>,
    pub worker_addr: Option<String>,
    pub submit_time: DateTime<Utc>,
    /// Set directly for attempts that never run (UPSTREAM_FAILED).
    pub end_time: Option<DateTime<Utc>>,
    pub message: Option<String>,
}

/// Fields to change on a task instance; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskInstanceUpdate {
    pub state: Option<TaskState>,
    pub worker_id: Option<String>,
    pub worker_addr: Option<String>,
    pub pid: Option<i64>,
    pub exit_code: Option<i32>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub out_params: Option<BTreeMap<String, String>>,
    pub log_path: Option<String>,
    pub message: Option<String>,
    pub last_seq: Option<i64>,
}

/// One write in a fenced batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Returns the new row's id in [`Store::apply`]'s result, in order.
    InsertTaskInstance(NewTaskInstance),
    UpdateTaskInstance {
        id: i64,
        update: TaskInstanceUpdate,
    },
    UpdateWorkflowInstance {
        id: i64,
        state: WorkflowState,
        end_time: Option<DateTime<Utc>>,
    },
    /// Marks a (STOP) command as acted on.
    ConsumeCommand {
        id: i64,
    },
}

/// Which runs `Store::list_runs` returns: newest first, up to `limit + 1`
/// (the extra one only tells that a next page exists).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only runs of these projects (the ones the caller may view); `None`:
    /// all.
    pub projects: Option<Vec<String>>,
    pub project: Option<String>,
    pub workflow: Option<String>,
    pub state: Option<WorkflowState>,
    /// Cursor: only runs with a smaller id (the last id of the previous page).
    pub before_id: Option<i64>,
    /// Only runs started at or after / before these times.
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: u64,
}

/// The stored log of a finished attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskLogRow {
    pub task_instance_id: i64,
    pub attempt: i32,
    pub content: Vec<u8>,
    /// The worker kept only the head and tail of a larger log.
    pub truncated: bool,
    /// Size of the whole log on the worker, bytes.
    pub original_size: u64,
    pub created_at: DateTime<Utc>,
}

mod audit;
mod auth;
mod entities;
mod lifecycle;
mod lists;
pub mod log_store;
mod migration;
mod migration_logs;
mod resources;
mod schedule;
mod store;

pub use audit::{AuditRow, NewAuditEntry};
pub use auth::{
    BootstrapOutcome, MemberRow, NewToken, NewUser, ProjectRole, TokenKind, TokenOwner, TokenRow,
    UserCredentials, UserRow, UserUpdate,
};
pub use lifecycle::{DeleteOutcome, ReleaseState, WorkflowVersionInfo};
pub use lists::{AuditFilter, MemberFilter, ProjectFilter, UserFilter, WorkflowFilter};
pub use resources::{ResourceKind, ResourceRow, ResourceUpdate};
pub use schedule::{NewSchedule, ScheduleRow};
pub use store::{Store, TaskLogPut};
