//! Public types of the named cluster resources: tenants, worker groups and
//! environments. One table holds them all; what differs per kind lives in
//! `attrs` (JSON), typed by the API server.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The kind of a named resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Tenant,
    WorkerGroup,
    Environment,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Tenant => "tenant",
            ResourceKind::WorkerGroup => "worker_group",
            ResourceKind::Environment => "environment",
        }
    }

    /// How users name the kind ("worker group").
    pub fn label(self) -> &'static str {
        match self {
            ResourceKind::Tenant => "tenant",
            ResourceKind::WorkerGroup => "worker group",
            ResourceKind::Environment => "environment",
        }
    }
}

/// A stored tenant, worker group or environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceRow {
    pub id: i64,
    pub kind: ResourceKind,
    pub name: String,
    pub description: String,
    /// Kind-specific attributes.
    pub attrs: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A change to a resource: `None` keeps a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceUpdate {
    pub description: Option<String>,
    pub attrs: Option<serde_json::Value>,
}
