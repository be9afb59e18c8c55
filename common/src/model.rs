//! Core domain types shared by every Orca crate.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The kinds of task Orca can run. Parsed case-insensitively from YAML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskType {
    Shell,
    Python,
}

impl TaskType {
    pub const ALL: &'static [TaskType] = &[TaskType::Shell, TaskType::Python];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskType::Shell => "SHELL",
            TaskType::Python => "PYTHON",
        }
    }

    /// Known type names, for error messages.
    pub fn known_names() -> String {
        Self::ALL
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for TaskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let up = s.trim().to_ascii_uppercase();
        TaskType::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == up)
            .ok_or_else(|| {
                format!(
                    "unknown task_type {s:?}; known types: {}",
                    TaskType::known_names()
                )
            })
    }
}

/// What happens to the rest of a workflow when a task fails for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureStrategy {
    /// Kill running tasks and stop the workflow (DolphinScheduler's default).
    #[default]
    End,
    /// Let branches that do not depend on the failed task go on.
    Continue,
}

/// What happens to a running attempt whose worker is lost (its lease
/// expired, or it restarted and the task process was gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OnWorkerLoss {
    /// Run the task again as a new attempt marked as failover (not a retry).
    #[default]
    Failover,
    /// Fail the attempt (the task's retries still apply); for tasks that must
    /// not run twice after an unknown outcome.
    Fail,
}

impl FromStr for OnWorkerLoss {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "failover" => Ok(OnWorkerLoss::Failover),
            "fail" => Ok(OnWorkerLoss::Fail),
            _ => Err(format!(
                "{s:?} is not a worker-loss policy; use failover or fail"
            )),
        }
    }
}

/// How a run's PYTHON tasks get their interpreter process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PythonProcess {
    /// Every task gets a fresh process (forked from a warm interpreter, or
    /// started by exec): nothing of one task is seen by another.
    #[default]
    PerTask,
    /// The run's tasks may share warm processes: a task that ended with
    /// exit code 0, leaving no thread, child process or open file behind,
    /// leaves its process to a later task of
    /// the same run (cwd, environment, argv, `sys.path`, standard streams and
    /// `__main__` are reset; imported modules stay imported). Saves the fork,
    /// the page copies and the teardown of a process per task. Never shared
    /// across runs, tenants or interpreters.
    PerRun,
}

impl FromStr for PythonProcess {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "per_task" => Ok(PythonProcess::PerTask),
            "per_run" => Ok(PythonProcess::PerRun),
            _ => Err(format!(
                "{s:?} is not a Python process policy; use per_task (a fresh process per task, the default) or per_run (a run's tasks may share warm processes)"
            )),
        }
    }
}

impl PythonProcess {
    fn is_default(&self) -> bool {
        *self == PythonProcess::PerTask
    }
}

/// Direction of a local parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Direction {
    In,
    Out,
}

/// A named parameter with a value (global param, local IN/OUT param).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ParamSpec {
    pub name: String,
    pub value: String,
    pub direction: Direction,
}

/// One task of a workflow, as written by the user (after YAML parsing and
/// `$FILE`/`$ENV` expansion, before parameter resolution).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskSpec {
    pub name: String,
    pub task_type: TaskType,
    #[serde(default)]
    pub description: String,
    /// Names of upstream tasks.
    #[serde(default)]
    pub deps: Vec<String>,
    /// Shell command or Python source.
    pub script: String,
    /// Number of retries after the first failure (0 = no retry).
    #[serde(default)]
    pub retries: u32,
    /// Milliseconds.
    #[serde(default, with = "duration_ms")]
    #[cfg_attr(feature = "openapi", schema(value_type = u64))]
    pub retry_interval: Duration,
    /// Milliseconds.
    #[serde(default, with = "opt_duration_ms")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub local_params: Vec<ParamSpec>,
    /// Conda environment name (routing arrives with the environment manager).
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default = "default_worker_group")]
    pub worker_group: String,
    /// Higher runs first when several tasks are ready.
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub on_worker_loss: OnWorkerLoss,
    /// Labels a worker must all carry to run this task (e.g. `gpu`).
    #[serde(default)]
    pub worker_labels: Vec<String>,
    /// A PYTHON task's own process policy, over the workflow's
    /// (`per_task` in a `per_run` workflow: this task gets a fresh process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python_process: Option<PythonProcess>,
}

pub fn default_worker_group() -> String {
    "default".to_string()
}

/// A whole workflow definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkflowSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_project")]
    pub project: String,
    /// Quartz cron expression, when scheduled.
    #[serde(default)]
    pub schedule: Option<String>,
    /// Global parameters, in file order.
    #[serde(default)]
    pub params: Vec<ParamSpec>,
    #[serde(default)]
    pub failure_strategy: FailureStrategy,
    /// The tenant whose operating-system user the tasks run as; `None`:
    /// the worker's own user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Whether the run's PYTHON tasks may share warm processes.
    #[serde(default, skip_serializing_if = "PythonProcess::is_default")]
    pub python_process: PythonProcess,
    pub tasks: Vec<TaskSpec>,
}

pub fn default_project() -> String {
    "default".to_string()
}

/// State of a workflow instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkflowState {
    Running,
    Success,
    Failure,
    Stop,
    /// Paused by a user: running tasks finished, nothing new is scheduled
    /// until it is resumed.
    #[serde(rename = "PAUSE")]
    Paused,
}

/// State of one task attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskState {
    /// Created, waiting for a worker (or for its retry delay).
    Submitted,
    /// Sent to a worker, not yet reported running.
    Dispatched,
    Running,
    Success,
    Failure,
    /// Killed by the worker after running past its timeout.
    Timeout,
    /// Killed on request (workflow stopped, or failure strategy END).
    Killed,
    /// Never ran because an upstream task failed.
    UpstreamFailed,
    /// Lost with its worker (lease expired, or the process vanished while
    /// the worker was away); replaced by a failover attempt unless the task
    /// says `on_worker_loss: fail`.
    Lost,
}

macro_rules! str_enum {
    ($ty:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $(<$ty>::$v => $s),* }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s { $($s => Ok(<$ty>::$v),)* _ => Err(format!("unknown {} {s:?}", stringify!($ty))) }
            }
        }
    };
}

str_enum!(WorkflowState { Running => "RUNNING", Success => "SUCCESS", Failure => "FAILURE", Stop => "STOP", Paused => "PAUSE" });
str_enum!(TaskState {
    Submitted => "SUBMITTED", Dispatched => "DISPATCHED", Running => "RUNNING", Success => "SUCCESS",
    Failure => "FAILURE", Timeout => "TIMEOUT", Killed => "KILLED", UpstreamFailed => "UPSTREAM_FAILED",
    Lost => "LOST",
});
str_enum!(FailureStrategy { End => "END", Continue => "CONTINUE" });

impl WorkflowState {
    /// Finished for good (a paused run is not: it can be resumed).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            WorkflowState::Success | WorkflowState::Failure | WorkflowState::Stop
        )
    }
}

impl TaskState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Success
                | TaskState::Failure
                | TaskState::Timeout
                | TaskState::Killed
                | TaskState::UpstreamFailed
                | TaskState::Lost
        )
    }
    pub fn is_active(self) -> bool {
        matches!(self, TaskState::Dispatched | TaskState::Running)
    }
}

/// Serde helpers: durations as integer milliseconds in stored JSON.
pub mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

pub mod opt_duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_type_is_case_insensitive_and_lists_known_types() {
        assert_eq!("Shell".parse::<TaskType>(), Ok(TaskType::Shell));
        assert_eq!("python".parse::<TaskType>(), Ok(TaskType::Python));
        let err = "Spark".parse::<TaskType>().unwrap_err();
        assert!(err.contains("SHELL, PYTHON"), "{err}");
    }

    #[test]
    fn states_round_trip_through_strings() {
        for s in [
            TaskState::Submitted,
            TaskState::UpstreamFailed,
            TaskState::Timeout,
        ] {
            assert_eq!(s.as_str().parse::<TaskState>(), Ok(s));
        }
        assert!(WorkflowState::Stop.is_terminal());
        assert!(!WorkflowState::Running.is_terminal());
    }
}
