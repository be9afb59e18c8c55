//! One DolphinScheduler task definition (`taskDefinitionList` entry)
//! converted into a [`TaskSpec`].

use std::time::Duration;

use serde_json::{Map, Value};

use super::error::ImportProblemKind;
use super::json::{At, Collector, field, kind};
use super::settings::{read_params, warn_unless_default};
use crate::model::{OnWorkerLoss, TaskSpec, TaskType, default_worker_group};
use crate::workflow::values::parse_priority;

/// A task definition as read, with what relations need to find it.
pub(super) struct TaskDraft {
    /// DolphinScheduler's task code (relations refer to tasks by it).
    pub code: i64,
    /// The task's name (or `code N` when it has none; then `spec` is `None`).
    pub label: String,
    /// The converted task, when it has no problem.
    pub spec: Option<TaskSpec>,
}

/// Reads task `number` (1-based) of a workflow's `taskDefinitionList`.
/// `None` when the task has no usable code (reported).
pub(super) fn read_task(
    c: &mut Collector,
    wf: At<'_>,
    item: &Value,
    number: usize,
) -> Option<TaskDraft> {
    let entry = format!("taskDefinitionList[{}]", number - 1);
    let Some(obj) = item.as_object() else {
        c.problem(
            wf,
            ImportProblemKind::WrongType,
            Some(&entry),
            format!("must be a task definition object, not {}", kind(item)),
        );
        return None;
    };
    let name = c
        .text(wf, obj, "name")
        .map(|n| n.trim().to_string())
        .unwrap_or_default();
    let fallback = format!("#{number}");
    let at = wf.task(if name.is_empty() { &fallback } else { &name });
    let code = match field(obj, "code") {
        Some(v) => c.int_of(at, v, "code")?,
        None => {
            c.problem(
                at,
                ImportProblemKind::MissingField,
                Some("code"),
                "the task has no code, so relations cannot refer to it; export the workflow again",
            );
            return None;
        }
    };
    let label = if name.is_empty() {
        format!("code {code}")
    } else {
        name.clone()
    };
    let at = wf.task(&label);
    if name.is_empty() {
        c.problem(
            at,
            ImportProblemKind::MissingField,
            Some("name"),
            "the task has no name; name it in DolphinScheduler and export again",
        );
    }
    let task_type = read_type(c, at, obj);
    let spec = match task_type {
        Some(t) if !name.is_empty() => read_spec(c, at, obj, name, t),
        _ => None,
    };
    Some(TaskDraft { code, label, spec })
}

fn read_type(c: &mut Collector, at: At<'_>, obj: &Map<String, Value>) -> Option<TaskType> {
    let Some(text) = c.text(at, obj, "taskType").filter(|t| !t.trim().is_empty()) else {
        c.problem(
            at,
            ImportProblemKind::MissingField,
            Some("taskType"),
            format!(
                "the task has no type; Orca runs {}",
                TaskType::known_names()
            ),
        );
        return None;
    };
    match text.parse::<TaskType>() {
        Ok(t) => Some(t),
        Err(_) => {
            let task_type = text.trim().to_ascii_uppercase();
            c.problem(
                at,
                ImportProblemKind::UnsupportedTaskType {
                    task_type: task_type.clone(),
                },
                Some("taskType"),
                format!(
                    "task type {task_type} is not supported by Orca (it runs {})",
                    TaskType::known_names()
                ),
            );
            None
        }
    }
}

fn read_spec(
    c: &mut Collector,
    at: At<'_>,
    obj: &Map<String, Value>,
    name: String,
    task_type: TaskType,
) -> Option<TaskSpec> {
    let before = c.problems.len();
    let params = match c.embedded(at, obj, "taskParams") {
        None => Map::new(),
        Some(Value::Object(m)) => m,
        Some(other) => {
            c.problem(
                at,
                ImportProblemKind::WrongType,
                Some("taskParams"),
                format!(
                    "must be an object (or a JSON string holding one), not {}",
                    kind(&other)
                ),
            );
            Map::new()
        }
    };
    let script = match c.text(at, &params, "rawScript") {
        Some(s) => s,
        None => {
            c.problem(
                at,
                ImportProblemKind::MissingField,
                Some("taskParams.rawScript"),
                format!(
                    "a {task_type} task needs its script; fill in the script in DolphinScheduler and export again"
                ),
            );
            String::new()
        }
    };
    let local_params = match field(&params, "localParams") {
        Some(list) => read_params(c, at, list, "taskParams.localParams"),
        None => Vec::new(),
    };
    if let Some(Value::Array(res)) = field(&params, "resourceList")
        && !res.is_empty()
    {
        c.warn(
            at,
            "taskParams.resourceList",
            format!(
                "{} resource file(s) are not imported; make them available to Orca workers, or the script may fail",
                res.len()
            ),
        );
    }

    let retries = c.count(at, obj, "failRetryTimes");
    let retry_minutes = c.count(at, obj, "failRetryInterval");
    let timeout = read_timeout(c, at, obj);
    let priority = match c.text(at, obj, "taskPriority") {
        None => 0,
        Some(p) => match parse_priority(&p) {
            Ok(p) => p,
            Err(e) => {
                c.problem(at, ImportProblemKind::BadValue, Some("taskPriority"), e);
                0
            }
        },
    };
    let worker_group = c
        .text(at, obj, "workerGroup")
        .map(|w| w.trim().to_string())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(default_worker_group);
    let description = c.text(at, obj, "description").unwrap_or_default();
    warn_task_extras(c, at, obj);
    if c.problems.len() > before {
        return None;
    }
    Some(TaskSpec {
        name,
        task_type,
        description,
        deps: Vec::new(),
        script,
        retries: retries?,
        retry_interval: Duration::from_secs(u64::from(retry_minutes?) * 60),
        timeout,
        local_params,
        environment: None,
        worker_group,
        priority,
        on_worker_loss: OnWorkerLoss::default(),
        worker_labels: Vec::new(),
        python_process: None,
    })
}

/// `timeout` minutes, only when `timeoutFlag` is OPEN and the timeout fails
/// the task (DolphinScheduler's WARN-only timeout just alerts).
fn read_timeout(c: &mut Collector, at: At<'_>, obj: &Map<String, Value>) -> Option<Duration> {
    let open = c
        .text(at, obj, "timeoutFlag")
        .is_some_and(|f| f.trim().eq_ignore_ascii_case("OPEN"));
    let minutes = c.int(at, obj, "timeout").unwrap_or(0);
    if !open || minutes == 0 {
        return None;
    }
    let Some(secs) = u64::try_from(minutes).ok().and_then(|m| m.checked_mul(60)) else {
        c.problem(
            at,
            ImportProblemKind::BadValue,
            Some("timeout"),
            format!("{minutes} minutes is out of range; use a positive number of minutes"),
        );
        return None;
    };
    let strategy = c.text(at, obj, "timeoutNotifyStrategy").unwrap_or_default();
    if strategy.trim().eq_ignore_ascii_case("WARN") {
        c.warn(
            at,
            "timeout",
            format!(
                "the {minutes} min timeout only alerted in DolphinScheduler (timeoutNotifyStrategy WARN); Orca's timeout kills the task, so it is not imported. Set `timeout` in Orca if the task should fail"
            ),
        );
        return None;
    }
    Some(Duration::from_secs(secs))
}

fn warn_task_extras(c: &mut Collector, at: At<'_>, obj: &Map<String, Value>) {
    if let Some(code) = c.int(at, obj, "environmentCode").filter(|c| *c > 0) {
        c.warn(
            at,
            "environmentCode",
            format!(
                "environment {code} is not imported: DolphinScheduler refers to environments by code, Orca by name; set the task's `environment` to the conda environment's name"
            ),
        );
    }
    if let Some(flag) = c.text(at, obj, "flag")
        && flag.trim().eq_ignore_ascii_case("NO")
    {
        c.warn(
            at,
            "flag",
            "the task was disabled (flag NO) in DolphinScheduler; Orca has no disabled tasks and will run it. Remove it if it should not run",
        );
    }
    let extras: [(&str, &[&str], &str); 5] = [
        (
            "delayTime",
            &["0"],
            "minutes of delay before the task runs are not imported; Orca starts it as soon as its upstream tasks succeed",
        ),
        (
            "taskGroupId",
            &["0", "-1"],
            "task groups (concurrency limits) are not imported",
        ),
        ("cpuQuota", &["-1"], "the CPU quota is not imported"),
        ("memoryMax", &["-1"], "the memory limit is not imported"),
        (
            "isCache",
            &["NO"],
            "task result caching is not imported; the task always runs",
        ),
    ];
    for (key, defaults, message) in extras {
        warn_unless_default(c, at, obj, key, defaults, key, message);
    }
}
