//! Store rows → `orca.v1` API messages.

use chrono::{DateTime, Utc};
use orca_proto::v1 as pb;
use orca_store::{
    CommandRow, MemberRow, ProjectRow, ScheduleRow, TaskInstanceRow, WorkflowDefinitionRow,
    WorkflowInstanceRow, WorkflowVersionInfo,
};

use crate::error::ApiError;
use crate::routes::cluster::{MasterView, WorkerView};
use crate::routes::lifecycle::{FieldChange, ReleaseStateResponse, WorkflowDiff};
use crate::routes::projects::ProjectSummary;
use crate::routes::runs::{BulkItem, RunDetail, TriggerResponse};
use crate::routes::schedules::SchedulePreview;
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

fn opt_ms(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(ms)
}

/// A time of a request (Unix ms), or 422 naming `field`.
pub(super) fn time(field: &str, unix_ms: Option<i64>) -> Result<Option<DateTime<Utc>>, ApiError> {
    unix_ms
        .map(|t| {
            DateTime::from_timestamp_millis(t)
                .ok_or_else(|| ApiError::Invalid(format!("{field}: {t} is out of range")))
        })
        .transpose()
}

pub(super) fn full_command(c: CommandRow) -> pb::Command {
    let scope = match c.options.scope {
        None => pb::RunScope::Unspecified,
        Some(orca_store::RunScope::Downstream) => pb::RunScope::Downstream,
        Some(orca_store::RunScope::Upstream) => pb::RunScope::Upstream,
        Some(orca_store::RunScope::Only) => pb::RunScope::Only,
    };
    pb::Command {
        id: c.id,
        kind: c.kind.as_str().to_string(),
        workflow_definition_id: c.workflow_definition_id,
        version: c.version,
        params: c.params.into_iter().collect(),
        schedule_time_unix_ms: ms(c.schedule_time),
        created_at_unix_ms: ms(c.created_at),
        run_id: c.workflow_instance_id,
        consumed_at_unix_ms: opt_ms(c.consumed_at),
        start_tasks: c.options.start_tasks,
        scope: scope as i32,
        task: c.options.task,
    }
}

pub(super) fn bulk_item(b: BulkItem) -> pb::BulkRunItem {
    pb::BulkRunItem {
        id: b.id,
        status: u32::from(b.status),
        command_id: b.command_id,
        detail: b.detail,
    }
}

pub(super) fn version_info(v: WorkflowVersionInfo) -> pb::WorkflowVersionInfo {
    pb::WorkflowVersionInfo {
        version: v.version,
        created_at_unix_ms: ms(v.created_at),
        tasks: u32::try_from(v.tasks).unwrap_or(u32::MAX),
    }
}

fn field_change(f: FieldChange) -> pb::FieldChange {
    pb::FieldChange {
        field: f.field,
        old_json: f.old.to_string(),
        new_json: f.new.to_string(),
    }
}

pub(super) fn diff(d: WorkflowDiff) -> pb::WorkflowDiff {
    pb::WorkflowDiff {
        project: d.project,
        name: d.name,
        from: d.from,
        to: d.to,
        tasks_added: d.tasks_added,
        tasks_removed: d.tasks_removed,
        tasks_changed: d
            .tasks_changed
            .into_iter()
            .map(|t| pb::TaskChange {
                task: t.task,
                fields: t.fields.into_iter().map(field_change).collect(),
            })
            .collect(),
        workflow_changes: d.workflow_changes.into_iter().map(field_change).collect(),
        source_diff: d.source_diff,
    }
}

pub(super) fn release(r: ReleaseStateResponse) -> pb::ReleaseState {
    pb::ReleaseState {
        project: r.project,
        name: r.name,
        release_state: r.release_state.as_str().to_string(),
    }
}

pub(super) fn schedule(s: ScheduleRow) -> pb::Schedule {
    pb::Schedule {
        id: s.id,
        workflow_definition_id: s.workflow_definition_id,
        cron: s.cron,
        timezone: s.timezone,
        start_time_unix_ms: opt_ms(s.start_time),
        end_time_unix_ms: opt_ms(s.end_time),
        enabled: s.enabled,
        params: s.params.into_iter().collect(),
        created_at_unix_ms: ms(s.created_at),
        updated_at_unix_ms: ms(s.updated_at),
        last_fire_time_unix_ms: opt_ms(s.last_fire_time),
    }
}

pub(super) fn preview(p: SchedulePreview) -> pb::SchedulePreview {
    pb::SchedulePreview {
        cron: p.cron,
        timezone: p.timezone,
        next_fire_times_unix_ms: p.next_fire_times.into_iter().map(ms).collect(),
    }
}

pub(super) fn project(p: ProjectSummary) -> pb::Project {
    pb::Project {
        id: p.id,
        name: p.name,
        created_at_unix_ms: ms(p.created_at),
        role: p.role.map(|r| r.as_str().to_string()).unwrap_or_default(),
    }
}

pub(super) fn new_project(p: ProjectRow) -> pb::Project {
    pb::Project {
        id: p.id,
        name: p.name,
        created_at_unix_ms: ms(p.created_at),
        role: String::new(),
    }
}

pub(super) fn member(m: MemberRow) -> pb::Member {
    pb::Member {
        project: m.project,
        username: m.username,
        role: m.role.as_str().to_string(),
        created_at_unix_ms: ms(m.created_at),
    }
}

pub(super) fn worker(w: WorkerView) -> pb::WorkerInfo {
    pb::WorkerInfo {
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
    }
}

pub(super) fn master(m: MasterView) -> pb::MasterInfo {
    pb::MasterInfo {
        id: m.id,
        addr: m.addr,
        leader: m.leader,
        epoch: m.epoch,
    }
}

pub(super) fn user(u: orca_store::UserRow) -> pb::User {
    pb::User {
        id: u.id,
        username: u.username,
        admin: u.admin,
        disabled: u.disabled,
        created_at_unix_ms: ms(u.created_at),
        updated_at_unix_ms: ms(u.updated_at),
    }
}

pub(super) fn token(t: orca_store::TokenRow) -> pb::Token {
    pb::Token {
        id: t.id,
        name: t.name,
        kind: t.kind.as_str().to_string(),
        created_at_unix_ms: ms(t.created_at),
        expires_at_unix_ms: opt_ms(t.expires_at),
    }
}

pub(super) fn tenant(t: crate::routes::tenants::Tenant) -> pb::Tenant {
    pb::Tenant {
        name: t.name,
        description: t.description,
        os_user: t.os_user,
        created_at_unix_ms: ms(t.created_at),
        updated_at_unix_ms: ms(t.updated_at),
    }
}

pub(super) fn worker_group(g: crate::routes::worker_groups::WorkerGroup) -> pb::WorkerGroup {
    pb::WorkerGroup {
        name: g.name,
        description: g.description,
        defined: g.defined,
        workers: g.workers,
        created_at_unix_ms: opt_ms(g.created_at),
        updated_at_unix_ms: opt_ms(g.updated_at),
    }
}

pub(super) fn environment(e: crate::routes::environments::Environment) -> pb::Environment {
    pb::Environment {
        name: e.name,
        description: e.description,
        packages: e.packages,
        channels: e.channels,
        worker_groups: e.worker_groups,
        hosted_by: e.hosted_by,
        created_at_unix_ms: ms(e.created_at),
        updated_at_unix_ms: ms(e.updated_at),
    }
}

pub(super) fn audit_entry(a: orca_store::AuditRow) -> pb::AuditEntry {
    pb::AuditEntry {
        id: a.id,
        at_unix_ms: ms(a.at),
        username: a.username,
        method: a.method,
        path: a.path,
        project: a.project,
        status: u32::from(a.status),
        request_id: a.request_id,
    }
}

pub(super) fn login(l: crate::routes::auth::LoginResponse) -> pb::LoginResponse {
    pb::LoginResponse {
        token: l.token,
        expires_at_unix_ms: ms(l.expires_at),
        user: Some(user(l.user)),
    }
}

pub(super) fn me(m: crate::routes::auth::MeResponse) -> pb::WhoAmIResponse {
    pb::WhoAmIResponse {
        user: Some(user(m.user)),
        token: Some(token(m.token)),
        roles: m
            .roles
            .into_iter()
            .map(|r| pb::RoleEntry {
                project: r.project,
                role: r.role.as_str().to_string(),
            })
            .collect(),
    }
}

pub(super) fn log_search(r: crate::routes::logs::LogSearchResult) -> pb::TaskLogSearchResult {
    pb::TaskLogSearchResult {
        matches: r
            .matches
            .into_iter()
            .map(|m| pb::TaskLogMatch {
                line: m.line as u64,
                text: m.text,
            })
            .collect(),
        truncated: r.truncated,
    }
}
