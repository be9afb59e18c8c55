//! Public types of workflow cron schedules.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a user sets on a workflow's schedule (one per workflow).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewSchedule {
    pub workflow_definition_id: i64,
    /// Quartz (6/7 fields) or Unix (5 fields) cron expression.
    pub cron: String,
    /// IANA time zone the expression is evaluated in.
    pub timezone: String,
    /// No fire before this time.
    pub start_time: Option<DateTime<Utc>>,
    /// No fire after this time.
    pub end_time: Option<DateTime<Utc>>,
    pub enabled: bool,
    /// Start parameters of every run it fires.
    pub params: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleRow {
    pub id: i64,
    pub workflow_definition_id: i64,
    pub cron: String,
    pub timezone: String,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub enabled: bool,
    pub params: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The latest fire time turned into a command, if any.
    pub last_fire_time: Option<DateTime<Utc>>,
}
