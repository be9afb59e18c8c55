//! State transitions of tasks and workflows, driven by events.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use orca_common::params::{ResolveInput, ResolvedParam, SystemContext, resolve};
use orca_common::{FailureStrategy, OnWorkerLoss, PythonProcess, TaskState};
use orca_proto::v1::{Param, TaskDispatch, TaskEvent, TaskEventKind};
use orca_store::{NewTaskInstance, TaskInstanceUpdate, Write};
use tracing::{debug, info, warn};

use super::{Action, DispatchOutcome, Engine, Msg, Phase};

/// Delay before re-placing a task whose dispatch failed.
const REDISPATCH_DELAY: Duration = Duration::from_millis(200);

fn us_to_utc(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_else(Utc::now)
}

impl Engine {
    /// Applies one report; returns whether it changed anything.
    pub(super) fn on_report(&mut self, ev: TaskEvent) -> bool {
        let Some(&(wf, t)) = self.by_ti.get(&ev.task_instance_id) else {
            debug!(
                ti = ev.task_instance_id,
                "report for an attempt not in flight; acknowledged"
            );
            return false;
        };
        let Some(run) = self.runs.get_mut(&wf) else {
            return false;
        };
        let task = &mut run.tasks[t];
        if task.ti != Some(ev.task_instance_id) || task.attempt != ev.attempt {
            debug!(
                ti = ev.task_instance_id,
                attempt = ev.attempt,
                "report for a superseded attempt"
            );
            return false;
        }
        let seq = ev.seq as i64;
        if seq <= task.last_seq {
            return false;
        }
        let kind = TaskEventKind::try_from(ev.kind).unwrap_or(TaskEventKind::Unspecified);
        if matches!(
            task.phase,
            Phase::Done(_) | Phase::RetryWait | Phase::Pending
        ) {
            return false;
        }
        task.last_seq = seq;
        let at = us_to_utc(ev.event_time_us);
        let mut update = TaskInstanceUpdate {
            last_seq: Some(seq),
            ..Default::default()
        };
        metrics::counter!("orca_master_task_events_total").increment(1);
        let ti = ev.task_instance_id;
        match kind {
            TaskEventKind::Running => {
                task.phase = Phase::Running;
                task.start_time = Some(at);
                update.state = Some(TaskState::Running);
                update.start_time = Some(at);
                update.pid = Some(ev.pid);
                if !ev.log_path.is_empty() {
                    update.log_path = Some(ev.log_path);
                }
                self.writes
                    .push(Write::UpdateTaskInstance { id: ti, update });
                return true;
            }
            TaskEventKind::Unspecified => {
                warn!(ti, "report without a kind; ignored");
                return false;
            }
            _ => {}
        }
        // Terminal event.
        let state = match kind {
            TaskEventKind::Success => TaskState::Success,
            TaskEventKind::Timeout => TaskState::Timeout,
            TaskEventKind::Killed => TaskState::Killed,
            TaskEventKind::Lost => TaskState::Lost,
            _ => TaskState::Failure,
        };
        if task.start_time.is_none() {
            // A task that ended before its RUNNING event was sent.
            let started = if ev.start_time_us > 0 {
                us_to_utc(ev.start_time_us)
            } else {
                at
            };
            task.start_time = Some(started);
            update.start_time = Some(started);
        }
        update.state = Some(state);
        update.end_time = Some(at);
        update.exit_code = Some(ev.exit_code);
        update.out_params = Some(ev.out_params.clone().into_iter().collect());
        if !ev.message.is_empty() {
            update.message = Some(ev.message.clone());
        }
        if !ev.log_path.is_empty() {
            update.log_path = Some(ev.log_path.clone());
        }
        if ev.pid != 0 {
            update.pid = Some(ev.pid);
        }
        self.writes
            .push(Write::UpdateTaskInstance { id: ti, update });
        if let Some((wid, _)) = task.worker.clone() {
            self.selector.release(&wid);
            self.actions.push(Action::Timer {
                after: Duration::ZERO,
                msg: Msg::WakeWaiting,
            });
        }
        self.touched.insert(wf);
        if state == TaskState::Success {
            task.out = ev.out_params.into_iter().collect();
            task.phase = Phase::Done(TaskState::Success);
            if !run.stopping {
                let downstream = run.dag.downstream[t].clone();
                for d in downstream {
                    if run.tasks[d].phase == Phase::Pending && run.upstream_succeeded(d) {
                        self.ready.push((wf, d, false));
                    }
                }
            }
            return true;
        }
        self.attempt_ended(wf, t, state);
        true
    }

    /// The current attempt of task `t` ended unsuccessfully in `state`
    /// (its row is already updated): retry, fail over, or fail the task.
    pub(super) fn attempt_ended(&mut self, wf: i64, t: usize, state: TaskState) {
        let Some(run) = self.runs.get_mut(&wf) else {
            return;
        };
        self.touched.insert(wf);
        let spec = &run.spec.tasks[t];
        let task = &mut run.tasks[t];
        task.worker = None;
        if state == TaskState::Lost
            && !run.stopping
            && spec.on_worker_loss == OnWorkerLoss::Failover
        {
            info!(wf, task = %spec.name, attempt = task.attempt, "attempt lost with its worker; failing over");
            metrics::counter!("orca_master_failovers_total").increment(1);
            task.phase = Phase::Pending;
            self.ready.push((wf, t, true));
            return;
        }
        let retryable = matches!(
            state,
            TaskState::Failure | TaskState::Timeout | TaskState::Lost
        );
        if retryable && !run.stopping && task.retries_used < spec.retries {
            task.retries_used += 1;
            task.phase = Phase::RetryWait;
            info!(wf, task = %spec.name, retry = task.retries_used, "task failed; retry scheduled");
            self.actions.push(Action::Timer {
                after: spec.retry_interval,
                msg: Msg::RetryDue { wf, task: t },
            });
            return;
        }
        task.phase = Phase::Done(state);
        if !run.stopping {
            self.task_failed(wf, t);
        }
    }

    /// A task failed for good: apply the workflow's failure strategy.
    pub(super) fn task_failed(&mut self, wf: i64, t: usize) {
        let Some(run) = self.runs.get_mut(&wf) else {
            return;
        };
        self.touched.insert(wf);
        match run.spec.failure_strategy {
            FailureStrategy::Continue => {
                let failed_name = run.spec.tasks[t].name.clone();
                for d in run.dag.descendants(t) {
                    if run.tasks[d].phase == Phase::Pending {
                        run.tasks[d].phase = Phase::Done(TaskState::UpstreamFailed);
                        run.tasks[d].attempt = 1;
                        let now = Utc::now();
                        self.writes.push(Write::InsertTaskInstance(NewTaskInstance {
                            workflow_instance_id: wf,
                            task_name: run.spec.tasks[d].name.clone(),
                            attempt: 1,
                            state: TaskState::UpstreamFailed,
                            failover: false,
                            worker_id: None,
                            worker_addr: None,
                            submit_time: now,
                            end_time: Some(now),
                            message: Some(format!("upstream task {failed_name:?} failed")),
                        }));
                        self.inserts.push((wf, d));
                    }
                }
            }
            FailureStrategy::End => self.wind_down(wf, false),
        }
    }

    /// Stops scheduling in `wf` and kills what runs (failure strategy END, or a stop).
    pub(super) fn wind_down(&mut self, wf: i64, stop_requested: bool) {
        let Some(run) = self.runs.get_mut(&wf) else {
            return;
        };
        run.stopping = true;
        run.stop_requested |= stop_requested;
        self.touched.insert(wf);
        for task in run.tasks.iter_mut() {
            match task.phase {
                Phase::Dispatched | Phase::Running => {
                    if let (Some(ti), Some((_, addr))) = (task.ti, task.worker.clone()) {
                        self.actions.push(Action::Kill {
                            ti,
                            attempt: task.attempt,
                            addr,
                        });
                    }
                }
                Phase::Waiting => {
                    task.phase = Phase::Done(TaskState::Killed);
                    if let Some(ti) = task.ti {
                        self.writes.push(Write::UpdateTaskInstance {
                            id: ti,
                            update: TaskInstanceUpdate {
                                state: Some(TaskState::Killed),
                                end_time: Some(Utc::now()),
                                message: Some("workflow stopped before a worker was free".into()),
                                ..Default::default()
                            },
                        });
                    }
                }
                Phase::RetryWait => task.phase = Phase::Done(TaskState::Failure),
                _ => {}
            }
        }
    }

    pub(super) fn on_retry_due(&mut self, wf: i64, t: usize) {
        let Some(run) = self.runs.get(&wf) else {
            return;
        };
        if run.tasks[t].phase == Phase::RetryWait && !run.stopping && !run.pausing {
            self.ready.push((wf, t, false));
        }
    }

    pub(super) fn on_dispatch_done(
        &mut self,
        ti: i64,
        attempt: i32,
        worker: &str,
        outcome: DispatchOutcome,
    ) {
        let (reason, full) = match outcome {
            DispatchOutcome::Accepted => return,
            DispatchOutcome::Rejected { reason, full } => (reason, full),
            DispatchOutcome::Unreachable(reason) => (reason, false),
        };
        let Some(&(wf, t)) = self.by_ti.get(&ti) else {
            return;
        };
        let Some(run) = self.runs.get_mut(&wf) else {
            return;
        };
        let task = &mut run.tasks[t];
        if task.ti != Some(ti) || task.attempt != attempt || task.phase != Phase::Dispatched {
            return;
        }
        warn!(ti, attempt, worker, %reason, "dispatch failed; the task will be placed again");
        self.selector.release(worker);
        if full {
            self.selector.mark_full(worker);
        }
        task.phase = Phase::Waiting;
        task.worker = None;
        self.writes.push(Write::UpdateTaskInstance {
            id: ti,
            update: TaskInstanceUpdate {
                state: Some(TaskState::Submitted),
                message: Some(format!(
                    "dispatch to worker {worker} failed: {reason}; waiting for a worker"
                )),
                ..Default::default()
            },
        });
        self.waiting.push((wf, t));
        self.actions.push(Action::Timer {
            after: REDISPATCH_DELAY,
            msg: Msg::WakeWaiting,
        });
    }

    /// Places waiting tasks on workers with free slots, highest priority first.
    pub(super) fn try_waiting(&mut self) {
        if self.waiting.is_empty() {
            return;
        }
        let mut waiting = std::mem::take(&mut self.waiting);
        waiting.retain(|(wf, t)| {
            self.runs
                .get(wf)
                .is_some_and(|r| r.tasks[*t].phase == Phase::Waiting && !r.stopping)
        });
        waiting.sort_by_key(|(wf, t)| (-self.runs[wf].spec.tasks[*t].priority, *wf, *t));
        waiting.dedup();
        let workers = self.live_workers();
        let mut still = Vec::new();
        for (wf, t) in waiting {
            let run = self.runs.get_mut(&wf).expect("retained above");
            match self.selector.choose(&workers, &run.spec.tasks[t]) {
                Some(w) => {
                    let task = &mut run.tasks[t];
                    task.phase = Phase::Dispatched;
                    task.worker = Some((w.id.clone(), w.addr.clone()));
                    if let Some(ti) = task.ti {
                        self.writes.push(Write::UpdateTaskInstance {
                            id: ti,
                            update: TaskInstanceUpdate {
                                state: Some(TaskState::Dispatched),
                                worker_id: Some(w.id.clone()),
                                worker_addr: Some(w.addr.clone()),
                                message: Some(String::new()),
                                ..Default::default()
                            },
                        });
                    }
                    self.actions.push(Action::Dispatch { wf, task: t });
                }
                None => still.push((wf, t)),
            }
        }
        self.waiting = still;
    }

    /// Creates attempt rows for the tasks that became ready this turn.
    pub(super) fn flush_ready(&mut self) {
        if self.ready.is_empty() {
            return;
        }
        let mut ready = std::mem::take(&mut self.ready);
        ready.retain(|(wf, _, _)| self.runs.contains_key(wf));
        ready.sort_by_key(|(wf, t, _)| (-self.runs[wf].spec.tasks[*t].priority, *wf, *t));
        ready.dedup_by_key(|(wf, t, _)| (*wf, *t));
        let workers = self.live_workers();
        for (wf, t, failover) in ready {
            let epoch = self.epoch;
            let master_addr = self.master_addr.clone();
            let run = self.runs.get_mut(&wf).expect("retained above");
            if run.stopping
                || run.pausing
                || matches!(run.tasks[t].phase, Phase::Done(_) | Phase::Skipped)
                || run.tasks[t].phase.is_active()
            {
                continue;
            }
            // Check parameters now so a bad reference fails the task before it is placed.
            let precheck = build_dispatch(run, t, 0, epoch, &master_addr).err();
            let spec = &run.spec.tasks[t];
            let now = Utc::now();
            let task = &mut run.tasks[t];
            task.attempt += 1;
            task.failover = failover;
            task.last_seq = 0;
            task.start_time = None;
            task.ti = None;
            self.touched.insert(wf);
            if let Some(err) = precheck {
                task.phase = Phase::Done(TaskState::Failure);
                self.writes.push(Write::InsertTaskInstance(NewTaskInstance {
                    workflow_instance_id: wf,
                    task_name: spec.name.clone(),
                    attempt: task.attempt,
                    state: TaskState::Failure,
                    failover,
                    worker_id: None,
                    worker_addr: None,
                    submit_time: now,
                    end_time: Some(now),
                    message: Some(err),
                }));
                self.inserts.push((wf, t));
                self.task_failed(wf, t);
                continue;
            }
            let chosen = self.selector.choose(&workers, spec);
            let (state, worker, message) = match chosen {
                Some(w) => (
                    TaskState::Dispatched,
                    Some((w.id.clone(), w.addr.clone())),
                    None,
                ),
                None => (TaskState::Submitted, None, Some(waiting_reason(spec))),
            };
            task.phase = if worker.is_some() {
                Phase::Dispatched
            } else {
                Phase::Waiting
            };
            task.worker = worker.clone();
            self.writes.push(Write::InsertTaskInstance(NewTaskInstance {
                workflow_instance_id: wf,
                task_name: spec.name.clone(),
                attempt: task.attempt,
                state,
                failover,
                worker_id: worker.as_ref().map(|w| w.0.clone()),
                worker_addr: worker.as_ref().map(|w| w.1.clone()),
                submit_time: now,
                end_time: None,
                message,
            }));
            self.inserts.push((wf, t));
            if worker.is_some() {
                self.actions.push(Action::Dispatch { wf, task: t });
            } else {
                self.waiting.push((wf, t));
            }
        }
    }

    /// Writes the final state of workflows that have nothing left to do.
    pub(super) fn finish_touched(&mut self) {
        for wf in std::mem::take(&mut self.touched) {
            let Some(run) = self.runs.get(&wf) else {
                continue;
            };
            if let Some(state) = run.final_state() {
                info!(instance = wf, %state, "workflow instance finished");
                metrics::counter!("orca_master_workflows_finished_total", "state" => state.as_str())
                    .increment(1);
                self.writes.push(Write::UpdateWorkflowInstance {
                    id: wf,
                    state,
                    end_time: Some(Utc::now()),
                });
                self.actions.push(Action::Finished { wf });
            }
        }
    }

    /// Sends `DispatchTask` for the current attempt of task `t` (after commit).
    pub(super) fn send_dispatch(&mut self, wf: i64, t: usize) {
        let Some(run) = self.runs.get(&wf) else {
            return;
        };
        let task = &run.tasks[t];
        let (Some(ti), Some((worker_id, addr))) = (task.ti, task.worker.clone()) else {
            return;
        };
        let attempt = task.attempt;
        let dispatch = match build_dispatch(run, t, ti, self.epoch, &self.master_addr) {
            Ok(d) => d,
            Err(e) => {
                // Checked before the row was written; only the ids differ now.
                warn!(ti, error = %e, "task cannot be dispatched");
                let _ = self.tx.send(Msg::DispatchDone {
                    ti,
                    attempt,
                    worker: worker_id,
                    outcome: DispatchOutcome::Rejected {
                        reason: e,
                        full: false,
                    },
                });
                return;
            }
        };
        let clients = self.clients.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let outcome = match clients.client(&addr) {
                Err(e) => DispatchOutcome::Unreachable(e.to_string()),
                Ok(mut c) => {
                    let req = orca_proto::v1::DispatchTaskRequest {
                        task: Some(dispatch),
                    };
                    match c.dispatch_task(req).await {
                        Ok(resp) => {
                            let r = resp.into_inner();
                            if r.accepted {
                                DispatchOutcome::Accepted
                            } else {
                                let full = r.reason.starts_with("ORCA-WORKER-FULL")
                                    || r.reason.to_ascii_lowercase().contains("full");
                                DispatchOutcome::Rejected {
                                    reason: r.reason,
                                    full,
                                }
                            }
                        }
                        Err(status) => DispatchOutcome::Unreachable(status.to_string()),
                    }
                }
            };
            if !matches!(outcome, DispatchOutcome::Accepted) {
                let _ = tx.send(Msg::DispatchDone {
                    ti,
                    attempt,
                    worker: worker_id,
                    outcome,
                });
            }
        });
    }
}

/// Why a task waits for a worker, shown to users.
fn waiting_reason(spec: &orca_common::TaskSpec) -> String {
    let mut needs = format!("waiting for a worker in group {:?}", spec.worker_group);
    if !spec.worker_labels.is_empty() {
        needs.push_str(&format!(" with labels {:?}", spec.worker_labels));
    }
    if let Some(env) = &spec.environment {
        needs.push_str(&format!(" hosting environment {env:?}"));
    }
    needs.push_str(" that has a free slot");
    needs
}

/// Resolves the parameters of task `t` and builds its dispatch message;
/// `Err` says why the task cannot run (for its task instance's message).
pub(super) fn build_dispatch(
    run: &super::WorkflowRun,
    t: usize,
    ti: i64,
    epoch: u64,
    master_addr: &str,
) -> Result<TaskDispatch, String> {
    let spec = &run.spec.tasks[t];
    let run_as_user = run.run_as.clone()?.unwrap_or_default();
    let task = &run.tasks[t];
    let schedule_local = run
        .schedule_time
        .with_timezone(&chrono::Local)
        .naive_local();
    let system = SystemContext {
        schedule_time: schedule_local,
        workflow_instance_id: run.id,
        task_instance_id: ti,
    };
    let upstream: BTreeMap<String, String> = run.upstream_out(t);
    let params: Vec<ResolvedParam> = resolve(&ResolveInput {
        globals: &run.spec.params,
        start_params: &run.params,
        upstream_out: &upstream,
        local: &spec.local_params,
        system: &system,
    })
    .map_err(|e| format!("parameters of task {:?}: {e}", spec.name))?;
    Ok(TaskDispatch {
        task_instance_id: ti,
        attempt: task.attempt,
        workflow_instance_id: run.id,
        workflow_name: run.spec.name.clone(),
        task_name: spec.name.clone(),
        task_type: spec.task_type.as_str().to_string(),
        script: spec.script.clone(),
        params: params
            .into_iter()
            .map(|p| Param {
                name: p.name,
                value: p.value,
                generated: p.generated,
            })
            .collect(),
        timeout_ms: spec.timeout.map(|d| d.as_millis() as i64).unwrap_or(0),
        epoch,
        master_addr: master_addr.to_string(),
        schedule_time_ms: run.schedule_time.timestamp_millis(),
        failover: task.failover,
        project: run.spec.project.clone(),
        run_as_user,
        share_python_process: spec.python_process.unwrap_or(run.spec.python_process)
            == PythonProcess::PerRun,
    })
}
