//! Public types of the workflow definition lifecycle: release state,
//! version listing, deletion.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Whether a workflow may be started (manually or by its schedule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReleaseState {
    #[default]
    Online,
    Offline,
}

impl ReleaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseState::Online => "online",
            ReleaseState::Offline => "offline",
        }
    }
}

impl std::str::FromStr for ReleaseState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "online" => Ok(ReleaseState::Online),
            "offline" => Ok(ReleaseState::Offline),
            other => Err(format!("unknown release state {other:?}")),
        }
    }
}

/// One stored version of a workflow definition, without its spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkflowVersionInfo {
    pub version: i32,
    pub created_at: DateTime<Utc>,
    /// Number of tasks in this version.
    pub tasks: usize,
}

/// What [`crate::Store::delete_workflow`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Deleted, with this many (finished) workflow instances.
    Deleted { instances: usize },
    /// Refused: these runs are RUNNING or PAUSE, or these START commands
    /// are not consumed yet.
    Active {
        runs: Vec<i64>,
        pending_commands: Vec<i64>,
    },
    /// Refused: finished instances exist and `force` was not given.
    HasInstances { instances: usize },
    /// No such definition.
    NotFound,
}
