//! Public types of the audit log of mutating API calls.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One mutating API call to record. Never holds request bodies or secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAuditEntry {
    pub at: DateTime<Utc>,
    /// The authenticated user; for a login, the username it claimed;
    /// `None`: anonymous.
    pub username: Option<String>,
    pub method: String,
    /// Request path without the query string.
    pub path: String,
    /// The project the call targeted, when known.
    pub project: Option<String>,
    pub status: u16,
    pub request_id: String,
}

/// A recorded API call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `None`: anonymous.
    pub username: Option<String>,
    pub method: String,
    pub path: String,
    pub project: Option<String>,
    pub status: u16,
    pub request_id: String,
}
