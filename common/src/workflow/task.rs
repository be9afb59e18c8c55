//! Reading one task of a workflow file into a [`TaskSpec`].

use std::time::Duration;

use super::error::{Pos, ProblemCode};
use super::node::{Node, Value};
use super::reader::{Fields, KeySet, Reader};
use super::validate::duplicate_params;
use super::values::{did_you_mean, parse_count, parse_duration, parse_priority};
use crate::model::{Direction, OnWorkerLoss, ParamSpec, PythonProcess, TaskSpec, TaskType};

/// Keys of a task.
pub(crate) const TASK_KEYS: KeySet = KeySet {
    what: "task",
    used: &[
        "name",
        "task_type",
        "deps",
        "description",
        "command",
        "definition",
        "fail_retry_times",
        "fail_retry_interval",
        "timeout",
        "local_params",
        "input_params",
        "output_params",
        "environment",
        "environment_name",
        "worker_group",
        "priority",
        "task_priority",
        "on_worker_loss",
        "worker_labels",
        "python_process",
    ],
    ignored: &[
        "flag",
        "delay_time",
        "timeout_flag",
        "timeout_notify_strategy",
        "resource_list",
        "resource_plugin",
        "dependence",
        "wait_start_timeout",
        "condition_result",
        "task_group_id",
        "task_group_priority",
        "cpu_quota",
        "memory_max",
        "is_cache",
        "code",
        "version",
    ],
};

const LOCAL_PARAM_KEYS: KeySet = KeySet {
    what: "local parameter",
    used: &["prop", "direct", "type", "value"],
    ignored: &[],
};

const ENVIRONMENT_KEYS: KeySet = KeySet {
    what: "environment",
    used: &["conda"],
    ignored: &[],
};

/// DolphinScheduler parameter data types: `VARCHAR(x)` in `input_params`
/// or `output_params` means the value `x`.
const PARAM_TYPES: &[&str] = &[
    "VARCHAR",
    "INTEGER",
    "LONG",
    "FLOAT",
    "DOUBLE",
    "DATE",
    "TIME",
    "TIMESTAMP",
    "BOOLEAN",
    "LIST",
    "FILE",
];

/// A task as read from YAML, with what the graph checks need to point at it.
pub(crate) struct TaskDraft {
    /// `Some("")` when missing or empty; `None` when unusable (reported).
    pub name: Option<String>,
    /// Position of the name value, or of the task when it has no name.
    pub name_pos: Pos,
    /// Dependencies and their positions.
    pub deps: Vec<(String, Pos)>,
    /// The task, when its type is known (other fields may still have
    /// problems; the reader's problem list decides).
    pub spec: Option<TaskSpec>,
}

/// Reads the task at `node`; `number` is its 1-based place in `tasks`.
pub(crate) fn read_task(
    r: &mut Reader<'_>,
    node: &Node,
    number: usize,
    default_worker_group: &str,
) -> Option<TaskDraft> {
    if !matches!(node.value, Value::Map(_)) {
        r.report(
            ProblemCode::WrongType,
            Some(node.pos),
            None,
            Some("tasks"),
            format!(
                "task #{number} must be a mapping with `name`, `task_type` and `command`, not {}",
                node.kind()
            ),
        );
        return None;
    }
    // Read the name first, so that every later problem can name the task.
    let (name, name_pos) = read_name(r, node, number);
    let task = name.as_deref().filter(|n| !n.is_empty());

    let task_type = read_task_type(r, node, task);
    // Keys of task types Orca does not run are not checked.
    let check_keys = !matches!(task_type, TypeRead::Foreign);
    let f = r.fields(node, "task", &TASK_KEYS, task, check_keys)?;
    let deps = read_deps(r, &f, task);
    let type_ = match task_type {
        TypeRead::Known(t) => Some(t),
        TypeRead::Invalid | TypeRead::Foreign => None,
    };

    let script = type_.and_then(|t| read_script(r, &f, t, task));
    let description = r.opt_text(&f, "description", task).unwrap_or_default();
    let retries = r
        .parsed(&f, "fail_retry_times", task, parse_count)
        .unwrap_or(0);
    let retry_interval = r
        .parsed(&f, "fail_retry_interval", task, parse_duration)
        .unwrap_or(Duration::ZERO);
    let timeout = r
        .parsed(&f, "timeout", task, parse_duration)
        .filter(|d| !d.is_zero());
    let priority = match r.alias(&f, ["priority", "task_priority"], task) {
        Some(key) => r.parsed(&f, key, task, parse_priority).unwrap_or(0),
        None => 0,
    };
    let environment = match r.alias(&f, ["environment", "environment_name"], task) {
        Some(key) => f.get(key).and_then(|n| read_environment(r, n, key, task)),
        None => None,
    };
    let worker_group = match f.get("worker_group") {
        Some(n) if !n.is_null() => r
            .text(n, "worker_group", task)
            .filter(|w| !w.trim().is_empty())
            .unwrap_or_else(|| default_worker_group.to_string()),
        _ => default_worker_group.to_string(),
    };
    let local_params = read_task_params(r, &f, task);
    let worker_labels = read_names(
        r,
        &f,
        "worker_labels",
        "label",
        "worker_labels: [gpu]",
        task,
    )
    .into_iter()
    .map(|(l, _)| l)
    .collect();
    let on_worker_loss = r
        .parsed(&f, "on_worker_loss", task, |t| t.parse::<OnWorkerLoss>())
        .unwrap_or_default();
    let python_process = r.parsed(&f, "python_process", task, |t| t.parse::<PythonProcess>());
    if python_process.is_some()
        && let Some(t) = type_
        && t != TaskType::Python
    {
        r.report(
            ProblemCode::BadValue,
            f.get("python_process").map(|n| n.pos),
            task,
            Some("python_process"),
            format!(
                "python_process applies to Python tasks only; remove it from this {} task",
                t.as_str()
            ),
        );
    }

    let spec = type_.map(|task_type| TaskSpec {
        name: name.clone().unwrap_or_default(),
        task_type,
        description,
        deps: deps.iter().map(|(d, _)| d.clone()).collect(),
        script: script.unwrap_or_default(),
        retries,
        retry_interval,
        timeout,
        local_params,
        environment,
        worker_group,
        priority,
        on_worker_loss,
        worker_labels,
        python_process,
    });
    Some(TaskDraft {
        name,
        name_pos,
        deps,
        spec,
    })
}

fn map_entry<'n>(node: &'n Node, key: &str) -> Option<(&'n Node, &'n Node)> {
    match &node.value {
        Value::Map(m) => m
            .iter()
            .find(|(k, _)| k.as_scalar() == Some(key))
            .map(|(k, v)| (k, v)),
        _ => None,
    }
}

fn read_name(r: &mut Reader<'_>, node: &Node, number: usize) -> (Option<String>, Pos) {
    let Some((_, value)) = map_entry(node, "name") else {
        return (Some(String::new()), node.pos);
    };
    if value.as_scalar().is_none() {
        r.report(
            ProblemCode::WrongType,
            Some(value.pos),
            None,
            Some("name"),
            format!("task #{number}: `name` must be text, not {}", value.kind()),
        );
        return (None, value.pos);
    }
    match r.text(value, "name", None) {
        Some(n) => (Some(n.trim().to_string()), value.pos),
        None => (None, value.pos),
    }
}

/// Outcome of reading `task_type` (problems already reported).
enum TypeRead {
    Known(TaskType),
    /// Missing or not a name.
    Invalid,
    /// A name Orca does not run (maybe another pydolphinscheduler type).
    Foreign,
}

fn read_task_type(r: &mut Reader<'_>, node: &Node, task: Option<&str>) -> TypeRead {
    let Some((_, value)) = map_entry(node, "task_type") else {
        r.report(
            ProblemCode::Missing,
            Some(node.pos),
            task,
            Some("task_type"),
            format!(
                "missing `task_type`; use one of {}",
                TaskType::known_names()
            ),
        );
        return TypeRead::Invalid;
    };
    let Some(text) = value.as_scalar().filter(|_| !value.is_null()) else {
        r.report(
            ProblemCode::UnknownTaskType,
            Some(value.pos),
            task,
            Some("task_type"),
            format!(
                "`task_type` must name a type, one of {}",
                TaskType::known_names()
            ),
        );
        return TypeRead::Invalid;
    };
    match text.parse::<TaskType>() {
        Ok(t) => TypeRead::Known(t),
        Err(e) => {
            let hint = did_you_mean(text, TaskType::ALL.iter().map(|t| t.as_str()));
            r.report(
                ProblemCode::UnknownTaskType,
                Some(value.pos),
                task,
                Some("task_type"),
                format!("{e}{hint}"),
            );
            TypeRead::Foreign
        }
    }
}

fn read_deps(r: &mut Reader<'_>, f: &Fields<'_>, task: Option<&str>) -> Vec<(String, Pos)> {
    read_names(r, f, "deps", "task name", "deps: [prepare, load]", task)
}

/// A list of names under `key` (a single name counts as a one-element list).
fn read_names(
    r: &mut Reader<'_>,
    f: &Fields<'_>,
    key: &str,
    what: &str,
    example: &str,
    task: Option<&str>,
) -> Vec<(String, Pos)> {
    let Some(node) = f.get(key) else {
        return Vec::new();
    };
    let items: Vec<&Node> = match &node.value {
        Value::Seq(items) => items.iter().collect(),
        Value::Scalar { .. } if node.is_null() => Vec::new(),
        Value::Scalar { .. } => vec![node],
        Value::Map(_) => {
            r.report(
                ProblemCode::WrongType,
                Some(node.pos),
                task,
                Some(key),
                format!("`{key}` must be a list of {what}s, like `{example}`"),
            );
            return Vec::new();
        }
    };
    let mut names = Vec::with_capacity(items.len());
    for item in items {
        match item.as_scalar() {
            Some(name) if !item.is_null() && !name.trim().is_empty() => {
                names.push((name.trim().to_string(), item.pos))
            }
            _ => r.report(
                ProblemCode::WrongType,
                Some(item.pos),
                task,
                Some(key),
                format!(
                    "each entry of `{key}` must be a {what}, not {}",
                    item.kind()
                ),
            ),
        }
    }
    names
}

fn read_script(
    r: &mut Reader<'_>,
    f: &Fields<'_>,
    task_type: TaskType,
    task: Option<&str>,
) -> Option<String> {
    let usual = match task_type {
        TaskType::Shell => "command",
        TaskType::Python => "definition",
    };
    let (key, node) = match (f.get("command"), f.get("definition")) {
        (Some(_), Some(_)) => {
            r.report(
                ProblemCode::Script,
                f.key_pos("definition"),
                task,
                Some("definition"),
                "both `command` and `definition` are set; keep one (pydolphinscheduler uses `command` for Shell and `definition` for Python)",
            );
            return None;
        }
        (Some(n), None) => ("command", n),
        (None, Some(n)) => ("definition", n),
        (None, None) => {
            r.report(
                ProblemCode::Script,
                Some(f.pos),
                task,
                Some(usual),
                format!(
                    "missing `{usual}`; a {task_type} task needs its {}",
                    match task_type {
                        TaskType::Shell => "shell command",
                        TaskType::Python => "Python source",
                    }
                ),
            );
            return None;
        }
    };
    let script = r.text(node, key, task)?;
    if script.trim().is_empty() {
        r.report(
            ProblemCode::Script,
            Some(node.pos),
            task,
            Some(key),
            format!("`{key}` is empty; give the code to run"),
        );
        return None;
    }
    Some(script)
}

fn read_environment(
    r: &mut Reader<'_>,
    node: &Node,
    key: &str,
    task: Option<&str>,
) -> Option<String> {
    let name = match &node.value {
        Value::Map(_) => {
            let f = r.fields(node, key, &ENVIRONMENT_KEYS, task, true)?;
            let Some(conda) = f.get("conda") else {
                r.report(
                    ProblemCode::Missing,
                    Some(node.pos),
                    task,
                    Some(key),
                    format!("`{key}` needs `conda: ENV_NAME`"),
                );
                return None;
            };
            r.text(conda, "conda", task)?
        }
        _ => r.text(node, key, task)?,
    };
    let name = name.trim().to_string();
    (!name.is_empty()).then_some(name)
}

/// `local_params`, then `input_params` (IN), then `output_params` (OUT).
fn read_task_params(r: &mut Reader<'_>, f: &Fields<'_>, task: Option<&str>) -> Vec<ParamSpec> {
    let mut params = Vec::new();
    let mut positions = Vec::new();
    if let Some(node) = f.get("local_params") {
        read_local_params(r, node, task, &mut params, &mut positions);
    }
    for (key, direction) in [
        ("input_params", Direction::In),
        ("output_params", Direction::Out),
    ] {
        let Some(node) = f.get(key) else { continue };
        let Some(entries) = r.entries(node, key, task) else {
            continue;
        };
        for (name, k, v) in entries {
            let Some(value) = r.text(v, key, task) else {
                continue;
            };
            params.push(ParamSpec {
                name,
                value: strip_type(&value),
                direction,
            });
            positions.push(k.pos);
        }
    }
    let dup = duplicate_params(&params, task, "local_params", &|i| {
        positions.get(i).copied()
    });
    r.problems.extend(dup);
    params
}

fn read_local_params(
    r: &mut Reader<'_>,
    node: &Node,
    task: Option<&str>,
    params: &mut Vec<ParamSpec>,
    positions: &mut Vec<Pos>,
) {
    let items = match &node.value {
        Value::Seq(items) => items,
        Value::Scalar { .. } if node.is_null() => return,
        _ => {
            r.report(
                ProblemCode::WrongType,
                Some(node.pos),
                task,
                Some("local_params"),
                "`local_params` must be a list like `- {prop: x, direct: IN, type: VARCHAR, value: \"\"}`",
            );
            return;
        }
    };
    for item in items {
        let Some(f) = r.fields(item, "local_params", &LOCAL_PARAM_KEYS, task, true) else {
            continue;
        };
        let name = match f.get("prop").and_then(|n| r.text(n, "prop", task)) {
            Some(p) if !p.trim().is_empty() => p.trim().to_string(),
            _ => {
                r.report(
                    ProblemCode::Missing,
                    Some(item.pos),
                    task,
                    Some("local_params"),
                    "local parameter without `prop`; give its name as `prop`",
                );
                continue;
            }
        };
        let direction = match r.opt_text(&f, "direct", task) {
            None => Direction::In,
            Some(d) => match d.trim().to_ascii_uppercase().as_str() {
                "" | "IN" => Direction::In,
                "OUT" => Direction::Out,
                _ => {
                    r.report(
                        ProblemCode::BadValue,
                        f.get("direct").map(|n| n.pos),
                        task,
                        Some("direct"),
                        format!("`direct` of {name:?} is {d:?}; use IN or OUT"),
                    );
                    continue;
                }
            },
        };
        let value = r.opt_text(&f, "value", task).unwrap_or_default();
        params.push(ParamSpec {
            name,
            value,
            direction,
        });
        positions.push(item.pos);
    }
}

/// `VARCHAR(abc)` → `abc` for DolphinScheduler data types; other text as is.
fn strip_type(value: &str) -> String {
    let v = value.trim();
    if let Some(open) = v.find('(')
        && v.ends_with(')')
        && PARAM_TYPES.contains(&v[..open].trim_end())
    {
        return v[open + 1..v.len() - 1].trim().to_string();
    }
    value.to_string()
}
