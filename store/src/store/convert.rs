//! Entity ↔ row conversion and error mapping. Everything that decodes stored
//! text (states, JSON) reports [`StoreError::Corrupt`] naming the row.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sea_orm::DbErr;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::entities::{command, task_instance, workflow_instance};
use crate::{CommandRow, Result, StoreError, TaskInstanceRow, WorkflowInstanceRow};

/// Maps a sea-orm error to [`StoreError::Db`], naming the operation.
pub(super) fn db_err(op: &'static str) -> impl Fn(DbErr) -> StoreError {
    move |e| StoreError::Db(format!("{op}: {e}"))
}

/// The current time at the precision every backend stores (microseconds),
/// so a row read back equals the row returned by the write.
pub(super) fn now() -> DateTime<Utc> {
    ts(Utc::now())
}

/// Truncates to microseconds (PostgreSQL's timestamp precision).
pub(super) fn ts(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

pub(super) fn ts_opt(t: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    t.map(ts)
}

/// Epochs are `u64` in the API and `bigint` in the database.
pub(super) fn epoch_to_db(epoch: u64) -> Result<i64> {
    i64::try_from(epoch).map_err(|_| {
        StoreError::Db(format!(
            "epoch {epoch} does not fit a signed 64-bit column (max {})",
            i64::MAX
        ))
    })
}

pub(super) fn epoch_from_db(what: &'static str, id: impl ToString, epoch: i64) -> Result<u64> {
    u64::try_from(epoch).map_err(|_| StoreError::Corrupt {
        what,
        id: id.to_string(),
        reason: format!("negative epoch {epoch}"),
    })
}

pub(super) fn to_json<T: Serialize>(what: &'static str, value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Db(format!("cannot encode {what} as JSON: {e}")))
}

pub(super) fn from_json<T: DeserializeOwned>(
    what: &'static str,
    id: impl ToString,
    text: &str,
) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what,
        id: id.to_string(),
        reason: format!("invalid JSON: {e}"),
    })
}

pub(super) fn parse_enum<T: FromStr<Err = String>>(
    what: &'static str,
    id: impl ToString,
    text: &str,
) -> Result<T> {
    text.parse().map_err(|reason| StoreError::Corrupt {
        what,
        id: id.to_string(),
        reason,
    })
}

pub(super) fn command_row(m: command::Model) -> Result<CommandRow> {
    let params: BTreeMap<String, String> = from_json("command", m.id, &m.params)?;
    Ok(CommandRow {
        id: m.id,
        kind: parse_enum("command", m.id, &m.command_type)?,
        options: from_json("command", m.id, &m.options)?,
        workflow_definition_id: m.workflow_definition_id,
        version: m.version,
        params,
        schedule_time: m.schedule_time,
        created_at: m.created_at,
        workflow_instance_id: m.workflow_instance_id,
        consumed_at: m.consumed_at,
    })
}

pub(super) fn workflow_instance_row(m: workflow_instance::Model) -> Result<WorkflowInstanceRow> {
    const WHAT: &str = "workflow instance";
    Ok(WorkflowInstanceRow {
        id: m.id,
        workflow_definition_id: m.workflow_definition_id,
        version: m.version,
        state: parse_enum(WHAT, m.id, &m.state)?,
        params: from_json(WHAT, m.id, &m.params)?,
        epoch: epoch_from_db(WHAT, m.id, m.epoch)?,
        name: m.name,
        project: m.project,
        schedule_time: m.schedule_time,
        start_time: m.start_time,
        end_time: m.end_time,
        command_id: m.command_id,
    })
}

pub(super) fn task_instance_row(m: task_instance::Model) -> Result<TaskInstanceRow> {
    const WHAT: &str = "task instance";
    Ok(TaskInstanceRow {
        id: m.id,
        workflow_instance_id: m.workflow_instance_id,
        state: parse_enum(WHAT, m.id, &m.state)?,
        out_params: from_json(WHAT, m.id, &m.out_params)?,
        epoch: epoch_from_db(WHAT, m.id, m.epoch)?,
        task_name: m.task_name,
        attempt: m.attempt,
        failover: m.failover,
        worker_id: m.worker_id,
        worker_addr: m.worker_addr,
        pid: m.pid,
        exit_code: m.exit_code,
        submit_time: m.submit_time,
        start_time: m.start_time,
        end_time: m.end_time,
        log_path: m.log_path,
        message: m.message,
        last_seq: m.last_seq,
    })
}
