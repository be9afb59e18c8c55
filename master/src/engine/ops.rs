//! Operator commands on existing runs: pause, resume, recover failed tasks,
//! force a task to success.

use chrono::Utc;
use orca_common::{TaskState, WorkflowState};
use orca_store::{CommandKind, CommandRow, TaskInstanceUpdate, Write};
use tracing::{info, warn};

use super::{Engine, Phase};
use crate::error::MasterError;

impl Engine {
    /// PAUSE: running tasks finish, nothing new starts; the run ends in
    /// PAUSE once nothing is active.
    pub(super) fn on_pause_command(&mut self, cmd: &CommandRow) {
        self.writes.push(Write::ConsumeCommand { id: cmd.id });
        let Some(wf) = cmd.workflow_instance_id else {
            return;
        };
        match self.runs.get_mut(&wf) {
            Some(run) if !run.stopping => {
                info!(instance = wf, command = cmd.id, "pausing workflow instance");
                run.pausing = true;
                self.touched.insert(wf);
            }
            _ => warn!(
                instance = wf,
                command = cmd.id,
                "pause of a run that is not running; ignored"
            ),
        }
    }

    /// RESUME (a paused run) or RECOVER_FAILED (a finished run): loads the
    /// run from the store, sets it RUNNING again and schedules what is ready.
    /// For RECOVER_FAILED, every task whose last attempt did not succeed
    /// (failed, timed out, killed, lost, upstream-failed) runs again with a
    /// fresh retry budget. Returns attempts in flight to verify.
    pub(super) async fn on_resume_command(
        &mut self,
        cmd: &CommandRow,
    ) -> Result<Vec<(i64, usize)>, MasterError> {
        self.writes.push(Write::ConsumeCommand { id: cmd.id });
        let Some(wf) = cmd.workflow_instance_id else {
            return Ok(Vec::new());
        };
        if self.runs.contains_key(&wf) {
            warn!(instance = wf, command = cmd.id, kind = ?cmd.kind, "run is already running; ignored");
            return Ok(Vec::new());
        }
        let Some(inst) = self.store.workflow_instance(wf).await? else {
            warn!(instance = wf, command = cmd.id, "no such run; ignored");
            return Ok(Vec::new());
        };
        let allowed = match cmd.kind {
            CommandKind::Resume => inst.state == WorkflowState::Paused,
            _ => inst.state.is_terminal() && inst.state != WorkflowState::Success,
        };
        if !allowed {
            warn!(instance = wf, state = %inst.state, kind = ?cmd.kind, "run is not in a state this command applies to; ignored");
            return Ok(Vec::new());
        }
        let Some(mut run) = self.load_run(&inst).await? else {
            return Ok(Vec::new());
        };
        if cmd.kind == CommandKind::RecoverFailed {
            for task in run.tasks.iter_mut() {
                if matches!(task.phase, Phase::Done(s) if s != TaskState::Success) {
                    task.phase = Phase::Pending;
                    task.retries_used = 0;
                }
            }
        }
        info!(instance = wf, command = cmd.id, kind = ?cmd.kind, "workflow instance runs again");
        self.writes.push(Write::UpdateWorkflowInstance {
            id: wf,
            state: WorkflowState::Running,
            end_time: None,
        });
        Ok(self.install_run(run))
    }

    /// FORCE_SUCCESS: the last attempt of `options.task` becomes SUCCESS, so
    /// that a following RECOVER_FAILED treats it as done. Only on runs that
    /// are not running.
    pub(super) async fn on_force_success_command(
        &mut self,
        cmd: &CommandRow,
    ) -> Result<(), MasterError> {
        self.writes.push(Write::ConsumeCommand { id: cmd.id });
        let (Some(wf), Some(task)) = (cmd.workflow_instance_id, cmd.options.task.as_deref()) else {
            return Ok(());
        };
        if self.runs.contains_key(&wf) {
            warn!(
                instance = wf,
                task, "force success on a running run; ignored (pause or stop it first)"
            );
            return Ok(());
        }
        let rows = self.store.task_instances(wf).await?;
        let Some(last) = rows
            .iter()
            .filter(|r| r.task_name == task)
            .max_by_key(|r| r.attempt)
        else {
            warn!(
                instance = wf,
                task, "force success of a task that never ran; ignored"
            );
            return Ok(());
        };
        if last.state.is_terminal() && last.state != TaskState::Success {
            info!(instance = wf, task, ti = last.id, "forcing task to success");
            self.writes.push(Write::UpdateTaskInstance {
                id: last.id,
                update: TaskInstanceUpdate {
                    state: Some(TaskState::Success),
                    end_time: Some(last.end_time.unwrap_or_else(Utc::now)),
                    message: Some(format!(
                        "forced to SUCCESS by an operator (was {})",
                        last.state
                    )),
                    ..Default::default()
                },
            });
        }
        Ok(())
    }
}
