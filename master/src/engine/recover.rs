//! Rebuilding engine state from the store (start-up, takeover, after a
//! failed commit) and verifying in-flight attempts with their workers.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::Utc;
use orca_common::TaskState;
use orca_common::workflow::dag::Dag;
use orca_store::{TaskInstanceUpdate, Write};
use tracing::{info, warn};

use super::{Action, Engine, Msg, Phase, WorkflowRun};
use crate::error::MasterError;

impl Engine {
    /// Loads every unfinished workflow instance and resumes it.
    pub(super) async fn recover(&mut self) -> Result<(), MasterError> {
        let instances = self.store.unfinished_workflow_instances().await?;
        if !instances.is_empty() {
            info!(
                count = instances.len(),
                "resuming unfinished workflow instances"
            );
        }
        let mut in_flight: Vec<(i64, usize)> = Vec::new();
        for inst in instances {
            let Some(run) = self.load_run(&inst).await? else {
                continue;
            };
            in_flight.extend(self.install_run(run));
        }
        self.verify_in_flight(in_flight).await;
        self.try_waiting();
        self.commit().await
    }

    /// Takes a loaded run over: queues what waits or is due for a retry,
    /// fails over LOST attempts, re-derives ready tasks. Returns the attempts
    /// in flight on workers (to verify with them).
    pub(super) fn install_run(&mut self, mut run: WorkflowRun) -> Vec<(i64, usize)> {
        let id = run.id;
        let mut in_flight = Vec::new();
        {
            let mut lost_latest = Vec::new();
            for t in 0..run.tasks.len() {
                let spec = &run.spec.tasks[t];
                let task = &mut run.tasks[t];
                match task.phase {
                    Phase::Waiting => self.waiting.push((id, t)),
                    Phase::Dispatched | Phase::Running => in_flight.push((id, t)),
                    Phase::Done(TaskState::Failure | TaskState::Timeout)
                        if task.retries_used < spec.retries =>
                    {
                        task.retries_used += 1;
                        task.phase = Phase::RetryWait;
                        self.ready.push((id, t, false));
                    }
                    Phase::Done(TaskState::Lost) => lost_latest.push(t),
                    _ => {}
                }
            }
            self.runs.insert(id, run);
            self.touched.insert(id);
            for t in lost_latest {
                self.attempt_ended(id, t, TaskState::Lost);
            }
            self.resume_dag(id);
        }
        in_flight
    }

    /// Rebuilds the in-memory state of one workflow instance from its rows
    /// (registering its task instances); `None` if its definition no longer
    /// validates (it is then failed).
    pub(super) async fn load_run(
        &mut self,
        inst: &orca_store::WorkflowInstanceRow,
    ) -> Result<Option<WorkflowRun>, MasterError> {
        let def = self
            .store
            .workflow_version(inst.workflow_definition_id, inst.version)
            .await?
            .ok_or(MasterError::MissingDefinition {
                id: inst.workflow_definition_id,
                version: inst.version,
            })?;
        let dag = match Dag::build(&def.spec) {
            Ok(d) => d,
            Err(e) => {
                warn!(instance = inst.id, error = %e, "stored workflow no longer validates; failing it");
                self.writes.push(Write::UpdateWorkflowInstance {
                    id: inst.id,
                    state: orca_common::WorkflowState::Failure,
                    end_time: Some(Utc::now()),
                });
                return Ok(None);
            }
        };
        let mut run = WorkflowRun::new(
            inst.id,
            Arc::new(def.spec),
            Arc::new(dag),
            inst.params.clone(),
            inst.schedule_time,
        );
        if let Some(cmd) = inst.command_id
            && let Some(cmd) = self.store.command(cmd).await?
        {
            run.apply_scope(&cmd.options);
        }
        run.run_as = super::run::tenant_user(&self.store, &run.spec).await?;
        let rows = self.store.task_instances(inst.id).await?;
        let mut non_failover: HashMap<usize, u32> = HashMap::new();
        for row in &rows {
            let Some(&t) = run.dag.index.get(&row.task_name) else {
                continue;
            };
            self.by_ti.insert(row.id, (inst.id, t));
            if !row.failover {
                *non_failover.entry(t).or_default() += 1;
            }
            let task = &mut run.tasks[t];
            if row.attempt < task.attempt {
                continue;
            }
            task.attempt = row.attempt;
            task.ti = Some(row.id);
            task.last_seq = row.last_seq;
            task.failover = row.failover;
            task.start_time = row.start_time;
            task.worker = row.worker_id.clone().zip(row.worker_addr.clone());
            task.out = row.out_params.clone();
            task.phase = match row.state {
                TaskState::Submitted => Phase::Waiting,
                TaskState::Dispatched => Phase::Dispatched,
                TaskState::Running => Phase::Running,
                other => Phase::Done(other),
            };
        }
        for (t, n) in non_failover {
            run.tasks[t].retries_used = n.saturating_sub(1);
        }
        Ok(Some(run))
    }

    /// Re-derives what is ready or upstream-failed in `wf` after a reload.
    pub(super) fn resume_dag(&mut self, wf: i64) {
        let Some(run) = self.runs.get(&wf) else {
            return;
        };
        let failed: Vec<usize> = (0..run.tasks.len())
            .filter(|&t| {
                matches!(run.tasks[t].phase, Phase::Done(s) if s != TaskState::Success && s != TaskState::UpstreamFailed)
            })
            .collect();
        let ready: Vec<usize> = run
            .dag
            .topo_order
            .iter()
            .copied()
            .filter(|&t| run.tasks[t].phase == Phase::Pending && run.upstream_succeeded(t))
            .collect();
        for t in failed {
            self.task_failed(wf, t);
        }
        for t in ready {
            self.ready.push((wf, t, false));
        }
    }

    /// Asks each worker which attempts it holds; adopts those, re-places the
    /// ones that never reached a worker, and fails over the lost ones.
    pub(super) async fn verify_in_flight(&mut self, in_flight: Vec<(i64, usize)>) {
        if in_flight.is_empty() {
            return;
        }
        let workers = self.live_workers();
        let mut held: HashMap<String, HashSet<(i64, i32)>> = HashMap::new();
        for w in &workers {
            let Ok(mut client) = self.clients.client(&w.addr) else {
                continue;
            };
            match client
                .list_attempts(orca_proto::v1::ListAttemptsRequest {})
                .await
            {
                Ok(resp) => {
                    let set = resp
                        .into_inner()
                        .attempts
                        .into_iter()
                        .map(|a| (a.task_instance_id, a.attempt))
                        .collect();
                    held.insert(w.id.clone(), set);
                }
                Err(e) => warn!(worker = %w.id, error = %e, "cannot list attempts"),
            }
        }
        let live: HashSet<String> = workers.iter().map(|w| w.id.clone()).collect();
        for (wf, t) in in_flight {
            let Some(run) = self.runs.get(&wf) else {
                continue;
            };
            let task = &run.tasks[t];
            let Some(ti) = task.ti else { continue };
            let worker_id = task
                .worker
                .as_ref()
                .map(|w| w.0.clone())
                .unwrap_or_default();
            match held.get(&worker_id) {
                Some(set) if set.contains(&(ti, task.attempt)) => self.selector.adopt(&worker_id),
                // The worker is alive and never got it (or forgot it): the
                // attempt never ran there.
                Some(_) => self.attempt_lost(wf, t, "its worker does not hold it", true),
                // Alive but did not answer: keep it; its reports will come.
                None if live.contains(&worker_id) => self.selector.adopt(&worker_id),
                // Not registered (yet): lost unless it is back within the grace.
                None => self.suspect_worker(&worker_id),
            }
        }
    }

    /// Starts the grace period of a worker that vanished from the registry
    /// while it held attempts.
    pub(super) fn suspect_worker(&mut self, worker: &str) {
        if self.suspects.contains_key(worker) {
            return;
        }
        info!(
            worker,
            grace_ms = self.worker_loss_grace.as_millis() as u64,
            "worker gone; its attempts fail over unless it returns"
        );
        self.suspects.insert(
            worker.to_string(),
            tokio::time::Instant::now() + self.worker_loss_grace,
        );
        self.actions.push(Action::Timer {
            after: self.worker_loss_grace,
            msg: Msg::CheckLostWorkers,
        });
    }

    /// The registry's worker list changed: start the grace period of workers
    /// that vanished while holding attempts; forget the ones that came back.
    pub(super) fn on_workers_changed(&mut self) {
        let mut ids: Vec<String> = self.workers.borrow().iter().map(|w| w.id.clone()).collect();
        ids.sort_unstable();
        if ids == self.live_ids && self.suspects.is_empty() {
            // Only loads changed: capacity may have been freed.
            self.try_waiting();
            return;
        }
        self.live_ids = ids;
        let live: HashSet<String> = self.live_workers().into_iter().map(|w| w.id).collect();
        self.suspects.retain(|w, _| !live.contains(w));
        let mut gone = BTreeSet::new();
        for run in self.runs.values() {
            for task in &run.tasks {
                if let (true, Some((w, _))) = (
                    matches!(task.phase, Phase::Dispatched | Phase::Running),
                    &task.worker,
                ) && !live.contains(w)
                {
                    gone.insert(w.clone());
                }
            }
        }
        for w in gone {
            self.suspect_worker(&w);
        }
        self.try_waiting();
    }

    /// Grace periods over: attempts of workers still gone are lost.
    pub(super) fn check_lost_workers(&mut self) {
        let now = tokio::time::Instant::now();
        let live: HashSet<String> = self.live_workers().into_iter().map(|w| w.id).collect();
        let due: Vec<String> = self
            .suspects
            .iter()
            .filter(|(w, deadline)| **deadline <= now && !live.contains(*w))
            .map(|(w, _)| w.clone())
            .collect();
        for worker in due {
            self.suspects.remove(&worker);
            let mut lost = Vec::new();
            for (wf, run) in &self.runs {
                for (t, task) in run.tasks.iter().enumerate() {
                    if task.phase.is_active()
                        && task.worker.as_ref().is_some_and(|(w, _)| *w == worker)
                    {
                        lost.push((*wf, t));
                    }
                }
            }
            warn!(worker, attempts = lost.len(), "worker lost");
            for (wf, t) in lost {
                self.attempt_lost(wf, t, &format!("worker {worker} was lost"), false);
            }
        }
    }

    /// The current attempt of task `t` is gone. `never_reached`: its worker
    /// is alive and does not know it, so the same attempt is placed again;
    /// otherwise the attempt is recorded LOST and replaced by a failover
    /// attempt (or failed, per the task's `on_worker_loss`).
    fn attempt_lost(&mut self, wf: i64, t: usize, why: &str, never_reached: bool) {
        let Some(run) = self.runs.get_mut(&wf) else {
            return;
        };
        let task = &mut run.tasks[t];
        let Some(ti) = task.ti else { return };
        if let Some((w, _)) = task.worker.take() {
            self.selector.release(&w);
        }
        if never_reached && task.phase == Phase::Dispatched && task.last_seq == 0 {
            warn!(
                ti,
                why, "dispatched attempt never reached a worker; placing it again"
            );
            task.phase = Phase::Waiting;
            self.waiting.push((wf, t));
            return;
        }
        warn!(ti, why, "attempt lost");
        self.writes.push(Write::UpdateTaskInstance {
            id: ti,
            update: TaskInstanceUpdate {
                state: Some(TaskState::Lost),
                end_time: Some(Utc::now()),
                message: Some(format!("attempt lost: {why}")),
                ..Default::default()
            },
        });
        self.attempt_ended(wf, t, TaskState::Lost);
    }
}
