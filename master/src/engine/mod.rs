//! The workflow engine: one task owning the state of every running workflow
//! instance, driven by messages (reports, dispatch outcomes, timers, nudges).
//!
//! Each loop turn drains all queued messages, applies them to the in-memory
//! state, commits every resulting write in **one fenced transaction**, and
//! only then acknowledges reports and sends dispatches/kills. A report is
//! acknowledged only once its effect is durable; a dispatch is sent only once
//! the attempt row exists.

mod cron;
mod ops;
mod recover;
mod run;
mod transitions;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use orca_common::registry::{Registry, WorkerInfo};
use orca_proto::v1::TaskEvent;
use orca_store::{CommandKind, CommandRow, Store, Write};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::dispatch::{WorkerClients, WorkerSelector};
use crate::error::MasterError;
pub use run::{Phase, TaskRun, WorkflowRun};

/// Outcome of one `DispatchTask` call.
#[derive(Debug)]
pub enum DispatchOutcome {
    Accepted,
    Rejected { reason: String, full: bool },
    Unreachable(String),
}

pub(crate) enum Msg {
    Report(Box<TaskEvent>, oneshot::Sender<Result<bool, MasterError>>),
    DispatchDone {
        ti: i64,
        attempt: i32,
        worker: String,
        outcome: DispatchOutcome,
    },
    RetryDue {
        wf: i64,
        task: usize,
    },
    /// Try again to place tasks waiting for a worker.
    WakeWaiting,
    /// New commands may be pending.
    Nudge,
    /// The registry's worker list changed.
    WorkersChanged,
    /// Grace periods of vanished workers may be over.
    CheckLostWorkers,
}

/// Handle to a running engine (held by the gRPC service and the API).
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::UnboundedSender<Msg>,
}

impl EngineHandle {
    pub(crate) fn new(tx: mpsc::UnboundedSender<Msg>) -> Self {
        EngineHandle { tx }
    }

    /// Applies a worker's report; `Ok(true)` if it changed state, `Ok(false)`
    /// for a duplicate/stale report (acknowledged without effect).
    pub async fn report(&self, ev: TaskEvent) -> Result<bool, MasterError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Report(Box::new(ev), tx))
            .map_err(|_| MasterError::EngineStopped)?;
        rx.await.map_err(|_| MasterError::EngineStopped)?
    }

    /// Tells the engine that new commands are waiting.
    pub fn nudge(&self) {
        let _ = self.tx.send(Msg::Nudge);
    }
}

/// Side effects performed after a successful commit.
enum Action {
    Dispatch { wf: i64, task: usize },
    Kill { ti: i64, attempt: i32, addr: String },
    Timer { after: Duration, msg: Msg },
    Finished { wf: i64 },
}

pub(crate) struct Engine {
    store: Store,
    epoch: u64,
    master_addr: String,
    workers: watch::Receiver<Vec<WorkerInfo>>,
    clients: WorkerClients,
    selector: WorkerSelector,
    tx: mpsc::UnboundedSender<Msg>,
    runs: HashMap<i64, WorkflowRun>,
    /// Task instance id → (workflow instance id, task index).
    by_ti: HashMap<i64, (i64, usize)>,
    /// Tasks with an attempt row waiting for a worker.
    waiting: Vec<(i64, usize)>,
    /// Tasks that became ready this turn (workflow, task, failover).
    ready: Vec<(i64, usize, bool)>,
    /// Workers that vanished while holding attempts, with the end of their
    /// grace period.
    suspects: HashMap<String, tokio::time::Instant>,
    /// Ids of the live workers when the registry last changed: a change of
    /// load alone (every dispatch and every end publishes one) does not
    /// look for attempts on vanished workers.
    live_ids: Vec<String>,
    worker_loss_grace: Duration,
    // The batch being built this turn.
    writes: Vec<Write>,
    inserts: Vec<(i64, usize)>,
    actions: Vec<Action>,
    touched: BTreeSet<i64>,
    /// When to look at the cron schedules next.
    cron: cron::CronPlanner,
}

/// Runs the engine as leader of `epoch` until leadership is lost or the
/// store fences it off.
/// What one term of leadership runs with.
pub(crate) struct EngineSetup {
    pub store: Store,
    /// Fencing token of this term.
    pub epoch: u64,
    /// This master's advertised gRPC URL (workers report there).
    pub master_addr: String,
    pub registry: Arc<dyn Registry>,
    pub policy: crate::dispatch::Policy,
    pub poll_interval: Duration,
    pub worker_loss_grace: Duration,
    /// Workers of this process, reached in-process.
    pub local: Option<orca_proto::transport::LocalRoutes>,
}

pub(crate) async fn run(
    setup: EngineSetup,
    mut lost: watch::Receiver<bool>,
    tx: mpsc::UnboundedSender<Msg>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
) -> Result<(), MasterError> {
    let EngineSetup {
        store,
        epoch,
        master_addr,
        registry,
        policy,
        poll_interval,
        worker_loss_grace,
        local,
    } = setup;
    let workers = registry.watch_workers();
    let mut engine = Engine {
        store,
        epoch,
        master_addr,
        workers,
        clients: WorkerClients::new(local),
        selector: WorkerSelector::new(policy),
        tx,
        runs: HashMap::new(),
        by_ti: HashMap::new(),
        waiting: Vec::new(),
        ready: Vec::new(),
        suspects: HashMap::new(),
        live_ids: Vec::new(),
        worker_loss_grace,
        writes: Vec::new(),
        inserts: Vec::new(),
        actions: Vec::new(),
        touched: BTreeSet::new(),
        cron: cron::CronPlanner::new(),
    };
    engine.recover().await?;
    engine.consume_commands().await?;
    engine.run_schedules().await?;
    let mut poll = tokio::time::interval(poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = lost.changed() => {
                if changed.is_err() || *lost.borrow() {
                    info!(epoch, "leadership lost; engine stops");
                    return Ok(());
                }
            }
            msg = rx.recv() => {
                let Some(msg) = msg else { return Ok(()) };
                let mut msgs = vec![msg];
                while msgs.len() < 1024 {
                    match rx.try_recv() {
                        Ok(m) => msgs.push(m),
                        Err(_) => break,
                    }
                }
                engine.handle_batch(msgs).await?;
            }
            changed = engine.workers.changed() => {
                if changed.is_ok() {
                    engine.handle_batch(vec![Msg::WorkersChanged]).await?;
                }
            }
            _ = poll.tick() => {
                engine.consume_commands().await?;
            }
            _ = tokio::time::sleep_until(engine.cron.wake_at()) => {
                engine.run_schedules().await?;
            }
        }
    }
}

impl Engine {
    async fn handle_batch(&mut self, msgs: Vec<Msg>) -> Result<(), MasterError> {
        let mut acks = Vec::new();
        let mut nudged = false;
        for msg in msgs {
            match msg {
                Msg::Report(ev, ack) => {
                    let applied = self.on_report(*ev);
                    acks.push((ack, applied));
                }
                Msg::DispatchDone {
                    ti,
                    attempt,
                    worker,
                    outcome,
                } => self.on_dispatch_done(ti, attempt, &worker, outcome),
                Msg::RetryDue { wf, task } => self.on_retry_due(wf, task),
                Msg::WakeWaiting => self.try_waiting(),
                Msg::Nudge => nudged = true,
                Msg::WorkersChanged => self.on_workers_changed(),
                Msg::CheckLostWorkers => self.check_lost_workers(),
            }
        }
        match self.commit().await {
            Ok(()) => {
                for (ack, applied) in acks {
                    let _ = ack.send(Ok(applied));
                }
            }
            Err(e) => {
                for (ack, _) in acks {
                    let _ = ack.send(Err(MasterError::EngineStopped));
                }
                if matches!(e, MasterError::Fenced(_)) {
                    return Err(e);
                }
                warn!(error = %e, "commit failed; reloading state from the store");
                self.reload().await?;
            }
        }
        if nudged {
            self.consume_commands().await?;
            // A schedule may have changed.
            self.run_schedules().await?;
        }
        Ok(())
    }

    /// Turns pending commands into workflow instances.
    async fn consume_commands(&mut self) -> Result<(), MasterError> {
        loop {
            let cmds = self.store.pending_commands(64).await?;
            if cmds.is_empty() {
                return Ok(());
            }
            for cmd in cmds {
                match cmd.kind {
                    CommandKind::Start => {}
                    CommandKind::Stop => {
                        self.on_stop_command(&cmd);
                        continue;
                    }
                    CommandKind::Pause => {
                        self.on_pause_command(&cmd);
                        continue;
                    }
                    CommandKind::Resume | CommandKind::RecoverFailed => {
                        let in_flight = self.on_resume_command(&cmd).await?;
                        self.verify_in_flight(in_flight).await;
                        continue;
                    }
                    CommandKind::ForceSuccess => {
                        self.on_force_success_command(&cmd).await?;
                        continue;
                    }
                }
                let def = self
                    .store
                    .workflow_version(cmd.workflow_definition_id, cmd.version)
                    .await?
                    .ok_or(MasterError::MissingDefinition {
                        id: cmd.workflow_definition_id,
                        version: cmd.version,
                    })?;
                let inst = self
                    .store
                    .start_workflow_instance(self.epoch, &cmd, &def, chrono::Utc::now())
                    .await
                    .map_err(MasterError::from_store)?;
                if self.runs.contains_key(&inst.id) {
                    continue;
                }
                let dag = match orca_common::workflow::dag::Dag::build(&def.spec) {
                    Ok(d) => d,
                    Err(e) => {
                        warn!(instance = inst.id, error = %e, "stored workflow no longer validates");
                        self.writes.push(Write::UpdateWorkflowInstance {
                            id: inst.id,
                            state: orca_common::WorkflowState::Failure,
                            end_time: Some(chrono::Utc::now()),
                        });
                        continue;
                    }
                };
                info!(instance = inst.id, workflow = %def.name, "workflow instance started");
                let mut run = WorkflowRun::new(
                    inst.id,
                    Arc::new(def.spec),
                    Arc::new(dag),
                    inst.params.clone(),
                    inst.schedule_time,
                );
                run.apply_scope(&cmd.options);
                run.run_as = run::tenant_user(&self.store, &run.spec).await?;
                let roots: Vec<usize> = (0..run.tasks.len())
                    .filter(|&t| run.tasks[t].phase == Phase::Pending && run.upstream_succeeded(t))
                    .collect();
                self.runs.insert(inst.id, run);
                for t in roots {
                    self.ready.push((inst.id, t, false));
                }
                self.touched.insert(inst.id);
            }
            self.commit().await?;
        }
    }

    /// A STOP command: wind the run down (kill running tasks, schedule
    /// nothing more; it ends in state STOP). Stopping a finished or unknown
    /// run is a no-op.
    fn on_stop_command(&mut self, cmd: &CommandRow) {
        self.writes.push(Write::ConsumeCommand { id: cmd.id });
        match cmd.workflow_instance_id {
            Some(wf) if self.runs.contains_key(&wf) => {
                info!(
                    instance = wf,
                    command = cmd.id,
                    "stopping workflow instance"
                );
                self.wind_down(wf, true);
            }
            target => debug!(
                ?target,
                command = cmd.id,
                "stop of a run that is not running"
            ),
        }
    }

    /// Commits the batch built this turn, then performs its side effects.
    async fn commit(&mut self) -> Result<(), MasterError> {
        self.flush_ready();
        self.finish_touched();
        let writes = std::mem::take(&mut self.writes);
        let inserts = std::mem::take(&mut self.inserts);
        let actions = std::mem::take(&mut self.actions);
        if writes.is_empty() && actions.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let n = writes.len();
        let ids = self
            .store
            .apply(self.epoch, writes)
            .await
            .map_err(MasterError::from_store)?;
        metrics::histogram!("orca_master_commit_seconds").record(started.elapsed().as_secs_f64());
        debug!(
            writes = n,
            elapsed_us = started.elapsed().as_micros() as u64,
            "committed"
        );
        for ((wf, t), id) in inserts.into_iter().zip(ids) {
            self.by_ti.insert(id, (wf, t));
            if let Some(run) = self.runs.get_mut(&wf) {
                run.tasks[t].ti = Some(id);
            }
        }
        for action in actions {
            self.perform(action);
        }
        Ok(())
    }

    fn perform(&mut self, action: Action) {
        match action {
            Action::Dispatch { wf, task } => self.send_dispatch(wf, task),
            Action::Kill { ti, attempt, addr } => {
                let clients = self.clients.clone();
                let epoch = self.epoch;
                tokio::spawn(async move {
                    match clients.client(&addr) {
                        Ok(mut c) => {
                            let req = orca_proto::v1::KillTaskRequest {
                                task_instance_id: ti,
                                attempt,
                                epoch,
                            };
                            if let Err(e) = c.kill_task(req).await {
                                warn!(ti, attempt, error = %e, "kill request failed");
                            }
                        }
                        Err(e) => warn!(ti, error = %e, "bad worker address"),
                    }
                });
            }
            Action::Timer { after, msg } => {
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    let _ = tx.send(msg);
                });
            }
            Action::Finished { wf } => {
                if let Some(run) = self.runs.remove(&wf) {
                    for t in &run.tasks {
                        if let Some(ti) = t.ti {
                            self.by_ti.remove(&ti);
                        }
                    }
                }
                self.by_ti.retain(|_, (w, _)| *w != wf);
            }
        }
    }

    /// Drops all in-memory state and rebuilds it from the store.
    async fn reload(&mut self) -> Result<(), MasterError> {
        self.runs.clear();
        self.by_ti.clear();
        self.waiting.clear();
        self.ready.clear();
        self.suspects.clear();
        self.live_ids.clear();
        self.writes.clear();
        self.inserts.clear();
        self.actions.clear();
        self.touched.clear();
        self.selector = WorkerSelector::new(self.selector.policy);
        self.recover().await
    }

    fn live_workers(&self) -> Vec<WorkerInfo> {
        self.workers.borrow().clone()
    }
}
