//! In-memory state of one running workflow instance.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use orca_common::workflow::dag::Dag;
use orca_common::{TaskState, WorkflowSpec};

/// Where one task of a running workflow instance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Upstream not done yet; no attempt row.
    Pending,
    /// Attempt row exists (SUBMITTED), no worker available yet.
    Waiting,
    Dispatched,
    Running,
    /// Last attempt failed; a retry is due later.
    RetryWait,
    Done(TaskState),
    /// Outside the scope of this run (run from a task): never runs, and
    /// counts as done for its downstream.
    Skipped,
}

impl Phase {
    pub fn is_active(self) -> bool {
        matches!(self, Phase::Waiting | Phase::Dispatched | Phase::Running)
    }
}

#[derive(Debug, Clone)]
pub struct TaskRun {
    pub phase: Phase,
    /// Latest attempt number (0 = none yet).
    pub attempt: i32,
    /// Retries consumed (failover attempts do not count).
    pub retries_used: u32,
    /// Row id of the latest attempt.
    pub ti: Option<i64>,
    /// (worker id, worker address) of the latest attempt.
    pub worker: Option<(String, String)>,
    pub last_seq: i64,
    pub out: BTreeMap<String, String>,
    pub failover: bool,
    /// Why the task waits (no worker, …), shown to users.
    pub start_time: Option<DateTime<Utc>>,
}

impl Default for TaskRun {
    fn default() -> Self {
        Self::new()
    }
}

impl TaskRun {
    pub fn new() -> Self {
        TaskRun {
            phase: Phase::Pending,
            attempt: 0,
            retries_used: 0,
            ti: None,
            worker: None,
            last_seq: 0,
            out: BTreeMap::new(),
            failover: false,
            start_time: None,
        }
    }
}

/// A workflow instance the leader is driving.
#[derive(Debug)]
pub struct WorkflowRun {
    pub id: i64,
    pub spec: Arc<WorkflowSpec>,
    pub dag: Arc<Dag>,
    pub params: BTreeMap<String, String>,
    pub schedule_time: DateTime<Utc>,
    pub tasks: Vec<TaskRun>,
    /// Set once the workflow must wind down (failure strategy END, or stop).
    pub stopping: bool,
    /// The wind-down was a user stop (final state STOP rather than FAILURE).
    pub stop_requested: bool,
    /// Paused: nothing new starts; once nothing runs the run ends in PAUSE.
    pub pausing: bool,
    /// The operating-system user its tasks run as (its tenant's), `None`
    /// for the worker's own; `Err`: why the tenant cannot be used (each
    /// task then fails with it).
    pub run_as: Result<Option<String>, String>,
}

impl WorkflowRun {
    pub fn new(
        id: i64,
        spec: Arc<WorkflowSpec>,
        dag: Arc<Dag>,
        params: BTreeMap<String, String>,
        schedule_time: DateTime<Utc>,
    ) -> Self {
        let tasks = vec![TaskRun::new(); spec.tasks.len()];
        WorkflowRun {
            id,
            spec,
            dag,
            params,
            schedule_time,
            tasks,
            run_as: Ok(None),
            stopping: false,
            stop_requested: false,
            pausing: false,
        }
    }

    /// Limits the run to the scope of a START command's options (run from
    /// tasks): tasks outside it are skipped. Unknown task names are ignored.
    pub fn apply_scope(&mut self, options: &orca_store::CommandOptions) {
        if options.start_tasks.is_empty() {
            return;
        }
        let n = self.tasks.len();
        let starts: Vec<usize> = options
            .start_tasks
            .iter()
            .filter_map(|name| self.dag.index.get(name).copied())
            .collect();
        let mut keep = vec![false; n];
        for &s in &starts {
            keep[s] = true;
        }
        let scope = options.scope.unwrap_or(orca_store::RunScope::Downstream);
        let edges = match scope {
            orca_store::RunScope::Only => None,
            orca_store::RunScope::Downstream => Some(&self.dag.downstream),
            orca_store::RunScope::Upstream => Some(&self.dag.upstream),
        };
        if let Some(edges) = edges {
            let mut stack = starts.clone();
            while let Some(t) = stack.pop() {
                for &next in &edges[t] {
                    if !keep[next] {
                        keep[next] = true;
                        stack.push(next);
                    }
                }
            }
        }
        for (t, task) in self.tasks.iter_mut().enumerate() {
            if !keep[t] {
                task.phase = Phase::Skipped;
            }
        }
    }

    /// True when every upstream task of `t` succeeded (or is skipped).
    pub fn upstream_succeeded(&self, t: usize) -> bool {
        self.dag.upstream[t].iter().all(|&u| {
            matches!(
                self.tasks[u].phase,
                Phase::Done(TaskState::Success) | Phase::Skipped
            )
        })
    }

    /// OUT parameters visible to `t`: those of all its ancestors, nearer ones
    /// (later in topological order) overriding farther ones.
    pub fn upstream_out(&self, t: usize) -> BTreeMap<String, String> {
        let mut ancestors = vec![false; self.tasks.len()];
        let mut stack: Vec<usize> = self.dag.upstream[t].clone();
        while let Some(u) = stack.pop() {
            if !ancestors[u] {
                ancestors[u] = true;
                stack.extend(self.dag.upstream[u].iter().copied());
            }
        }
        let mut out = BTreeMap::new();
        for &i in &self.dag.topo_order {
            if ancestors[i] {
                out.extend(
                    self.tasks[i]
                        .out
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone())),
                );
            }
        }
        out
    }

    /// The final state, once nothing is left to do; `None` while work remains.
    pub fn final_state(&self) -> Option<orca_common::WorkflowState> {
        use orca_common::WorkflowState;
        if self.stopping {
            let busy = self
                .tasks
                .iter()
                .any(|t| matches!(t.phase, Phase::Dispatched | Phase::Running));
            if busy {
                return None;
            }
            return Some(if self.stop_requested {
                WorkflowState::Stop
            } else {
                WorkflowState::Failure
            });
        }
        let all_done = self
            .tasks
            .iter()
            .all(|t| matches!(t.phase, Phase::Done(_) | Phase::Skipped));
        if !all_done {
            if self.pausing && !self.tasks.iter().any(|t| t.phase.is_active()) {
                return Some(WorkflowState::Paused);
            }
            return None;
        }
        let ok = self
            .tasks
            .iter()
            .all(|t| matches!(t.phase, Phase::Done(TaskState::Success) | Phase::Skipped));
        Some(if ok {
            WorkflowState::Success
        } else {
            WorkflowState::Failure
        })
    }
}

/// The operating-system user the tasks of `spec` run as: its tenant's, or
/// `None` without a tenant. `Err` (for the tasks' messages) when the
/// tenant is not defined or unreadable; a store failure is an error of the
/// engine instead.
pub async fn tenant_user(
    store: &orca_store::Store,
    spec: &WorkflowSpec,
) -> Result<Result<Option<String>, String>, orca_store::StoreError> {
    let Some(tenant) = &spec.tenant else {
        return Ok(Ok(None));
    };
    let Some(row) = store
        .resource(orca_store::ResourceKind::Tenant, tenant)
        .await?
    else {
        return Ok(Err(format!(
            "tenant {tenant:?} of workflow {}/{} is not defined; create it (POST /api/v1/tenants) or remove `tenant` from the workflow",
            spec.project, spec.name
        )));
    };
    Ok(match row.attrs.get("os_user").and_then(|u| u.as_str()) {
        Some(u) if !u.is_empty() => Ok(Some(u.to_string())),
        _ => Err(format!(
            "tenant {tenant:?} has no os_user; set it (PATCH /api/v1/tenants/{tenant})"
        )),
    })
}
