//! Store rows → `orca.v1` API messages.

use chrono::{DateTime, Utc};
use orca_proto::v1 as pb;
use orca_store::{CommandRow, TaskInstanceRow, WorkflowDefinitionRow, WorkflowInstanceRow};

use crate::error::ApiError;
use crate::routes::runs::{RunDetail, TriggerResponse};
use crate::routes::workflows::WorkflowSummary;

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn run(r: WorkflowInstanceRow) -> pb::Run {
    pb::Run {
        id: r.id,
        workflow_definition_id: r.workflow_definition_id,
        version: r.version,
        project: r.project,
        name: r.name,
        state: r.state.as_str().to_string(),
        params: r.params.into_iter().collect(),
        schedule_time_unix_ms: ms(r.schedule_time),
        start_time_unix_ms: ms(r.start_time),
        end_time_unix_ms: r.end_time.map(ms),
        command_id: r.command_id,
    }
}

pub(super) fn task(t: TaskInstanceRow) -> pb::TaskAttempt {
    pb::TaskAttempt {
        id: t.id,
        run_id: t.workflow_instance_id,
        task_name: t.task_name,
        attempt: t.attempt,
        state: t.state.as_str().to_string(),
        failover: t.failover,
        worker_id: t.worker_id,
        exit_code: t.exit_code,
        submit_time_unix_ms: ms(t.submit_time),
        start_time_unix_ms: t.start_time.map(ms),
        end_time_unix_ms: t.end_time.map(ms),
        out_params: t.out_params.into_iter().collect(),
        message: t.message,
    }
}

pub(super) fn run_detail(d: RunDetail) -> pb::RunDetail {
    pb::RunDetail {
        run: Some(run(d.instance)),
        tasks: d.tasks.into_iter().map(task).collect(),
    }
}

pub(super) fn command(c: CommandRow) -> pb::RunCommand {
    pb::RunCommand {
        id: c.id,
        kind: c.kind.as_str().to_string(),
        workflow_definition_id: c.workflow_definition_id,
        version: c.version,
        run_id: c.workflow_instance_id,
        created_at_unix_ms: ms(c.created_at),
    }
}

pub(super) fn summary(s: WorkflowSummary) -> pb::WorkflowSummary {
    pb::WorkflowSummary {
        id: s.id,
        project: s.project,
        name: s.name,
        version: s.version,
        tasks: u32::try_from(s.tasks).unwrap_or(u32::MAX),
    }
}

pub(super) fn workflow(w: WorkflowDefinitionRow) -> Result<pb::Workflow, ApiError> {
    let spec_json = serde_json::to_string(&w.spec)
        .map_err(|e| ApiError::Internal(format!("cannot encode workflow {}: {e}", w.id)))?;
    Ok(pb::Workflow {
        id: w.id,
        project: w.project,
        name: w.name,
        version: w.version,
        spec_json,
        source: w.source,
        created_at_unix_ms: ms(w.created_at),
    })
}

pub(super) fn triggered(t: TriggerResponse) -> pb::TriggerRunResponse {
    pb::TriggerRunResponse {
        command_id: t.command_id,
        workflow_definition_id: t.workflow_definition_id,
        version: t.version,
    }
}

pub(super) fn scope(s: pb::RunScope) -> Option<orca_store::RunScope> {
    match s {
        pb::RunScope::Unspecified => None,
        pb::RunScope::Downstream => Some(orca_store::RunScope::Downstream),
        pb::RunScope::Upstream => Some(orca_store::RunScope::Upstream),
        pb::RunScope::Only => Some(orca_store::RunScope::Only),
    }
}
