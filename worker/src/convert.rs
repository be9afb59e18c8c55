//! Proto ↔ worker-domain conversions, all in one place.

use std::collections::BTreeMap;

use orca_common::params::ResolvedParam;
use orca_proto::v1::{Param, TaskDispatch, TaskEvent, TaskEventKind};
use serde::{Deserialize, Serialize};

use crate::layout::{DispatchRecord, ParamRecord};

impl From<&TaskDispatch> for DispatchRecord {
    fn from(d: &TaskDispatch) -> Self {
        DispatchRecord {
            task_instance_id: d.task_instance_id,
            attempt: d.attempt,
            workflow_instance_id: d.workflow_instance_id,
            workflow_name: d.workflow_name.clone(),
            task_name: d.task_name.clone(),
            task_type: d.task_type.clone(),
            script: d.script.clone(),
            params: d
                .params
                .iter()
                .map(|p: &Param| ParamRecord {
                    name: p.name.clone(),
                    value: p.value.clone(),
                    generated: p.generated,
                })
                .collect(),
            timeout_ms: d.timeout_ms,
            epoch: d.epoch,
            master_addr: d.master_addr.clone(),
            schedule_time_ms: d.schedule_time_ms,
            failover: d.failover,
            project: d.project.clone(),
            run_as_user: d.run_as_user.clone(),
            share_python_process: d.share_python_process,
        }
    }
}

impl From<&ParamRecord> for ResolvedParam {
    fn from(p: &ParamRecord) -> Self {
        ResolvedParam {
            name: p.name.clone(),
            value: p.value.clone(),
            generated: p.generated,
        }
    }
}

/// A [`TaskEvent`] as stored in a terminal file (JSON, readable by operators).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredEvent {
    pub task_instance_id: i64,
    pub attempt: i32,
    pub seq: u64,
    /// Proto enum name without prefix: RUNNING, SUCCESS, FAILURE, KILLED, TIMEOUT.
    pub kind: String,
    pub exit_code: i32,
    pub event_time_us: i64,
    #[serde(default)]
    pub out_params: BTreeMap<String, String>,
    pub worker_id: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub pid: i64,
    #[serde(default)]
    pub log_path: String,
    /// When the task process started (terminal events), unix µs; 0: unknown.
    #[serde(default)]
    pub start_time_us: i64,
}

fn kind_name(kind: TaskEventKind) -> &'static str {
    match kind {
        TaskEventKind::Unspecified => "UNSPECIFIED",
        TaskEventKind::Running => "RUNNING",
        TaskEventKind::Success => "SUCCESS",
        TaskEventKind::Failure => "FAILURE",
        TaskEventKind::Killed => "KILLED",
        TaskEventKind::Timeout => "TIMEOUT",
        TaskEventKind::Lost => "LOST",
    }
}

fn kind_from_name(name: &str) -> TaskEventKind {
    match name {
        "RUNNING" => TaskEventKind::Running,
        "SUCCESS" => TaskEventKind::Success,
        "FAILURE" => TaskEventKind::Failure,
        "KILLED" => TaskEventKind::Killed,
        "TIMEOUT" => TaskEventKind::Timeout,
        "LOST" => TaskEventKind::Lost,
        _ => TaskEventKind::Unspecified,
    }
}

impl From<&TaskEvent> for StoredEvent {
    fn from(e: &TaskEvent) -> Self {
        StoredEvent {
            task_instance_id: e.task_instance_id,
            attempt: e.attempt,
            seq: e.seq,
            kind: kind_name(e.kind()).to_string(),
            exit_code: e.exit_code,
            event_time_us: e.event_time_us,
            out_params: e
                .out_params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            worker_id: e.worker_id.clone(),
            message: e.message.clone(),
            pid: e.pid,
            log_path: e.log_path.clone(),
            start_time_us: e.start_time_us,
        }
    }
}

impl From<StoredEvent> for TaskEvent {
    fn from(s: StoredEvent) -> Self {
        let mut e = TaskEvent {
            task_instance_id: s.task_instance_id,
            attempt: s.attempt,
            seq: s.seq,
            kind: 0,
            exit_code: s.exit_code,
            event_time_us: s.event_time_us,
            out_params: s.out_params.into_iter().collect(),
            worker_id: s.worker_id,
            message: s.message,
            pid: s.pid,
            log_path: s.log_path,
            start_time_us: s.start_time_us,
        };
        e.set_kind(kind_from_name(&s.kind));
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_event_round_trips_every_field() {
        let mut ev = TaskEvent {
            task_instance_id: 7,
            attempt: 2,
            seq: 2,
            kind: 0,
            exit_code: 3,
            event_time_us: 1234,
            out_params: [("a".to_string(), "1".to_string())].into_iter().collect(),
            worker_id: "w".into(),
            message: "m".into(),
            pid: 99,
            log_path: "/x/task.log".into(),
            start_time_us: 1000,
        };
        for kind in [
            TaskEventKind::Running,
            TaskEventKind::Success,
            TaskEventKind::Failure,
            TaskEventKind::Killed,
            TaskEventKind::Timeout,
        ] {
            ev.set_kind(kind);
            let json = serde_json::to_string(&StoredEvent::from(&ev)).unwrap();
            let back: StoredEvent = serde_json::from_str(&json).unwrap();
            assert_eq!(TaskEvent::from(back), ev);
        }
    }
}
