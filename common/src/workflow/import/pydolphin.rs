//! Warnings for pydolphinscheduler YAML keys that Orca accepts but does not
//! use yet, matching what a JSON import warns about.

use serde_yaml::{Mapping, Value};

use super::ImportWarning;
use crate::model::WorkflowSpec;

/// Workflow keys, and why their value is not kept.
const WORKFLOW_KEYS: &[(&str, &str)] = &[
    (
        "start_time",
        "Orca schedules have no start time yet; the cron applies from now on",
    ),
    ("end_time", "Orca schedules have no end time yet"),
    (
        "timezone",
        "Orca schedules have no time zone yet; the cron runs in the master's time zone",
    ),
    (
        "timeout",
        "Orca has no workflow timeout yet; set task timeouts instead",
    ),
    (
        "warning_type",
        "alerts are not imported; set up notifications in Orca",
    ),
    ("warning_group_id", "alert groups are not imported"),
    (
        "resource_list",
        "resource files are not imported; make them available to Orca workers",
    ),
];

/// Task keys, and why their value is not kept.
const TASK_KEYS: &[(&str, &str)] = &[
    (
        "delay_time",
        "the delay is not imported; Orca starts the task as soon as its upstream tasks succeed",
    ),
    (
        "task_group_id",
        "task groups (concurrency limits) are not imported",
    ),
    ("cpu_quota", "the CPU quota is not imported"),
    ("memory_max", "the memory limit is not imported"),
    (
        "resource_list",
        "resource files are not imported; make them available to Orca workers",
    ),
];

/// Warnings for `yaml`, already parsed into `spec` (so it is valid YAML).
pub(super) fn warnings(yaml: &str, spec: &WorkflowSpec) -> Vec<ImportWarning> {
    let Ok(Value::Mapping(root)) = serde_yaml::from_str::<Value>(yaml) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let warn =
        |out: &mut Vec<ImportWarning>, task: Option<String>, key: &str, value: &str, why: &str| {
            out.push(ImportWarning {
                workflow: spec.name.clone(),
                task,
                message: format!("`{key}`: {value} is not imported: {why}"),
            });
        };
    if let Some(Value::Mapping(wf)) = root.get("workflow") {
        for (key, why) in WORKFLOW_KEYS {
            if let Some(v) = meaningful(wf, key, &[]) {
                warn(&mut out, None, key, &v, why);
            }
        }
        if let Some(v) = meaningful(wf, "execution_type", &["parallel"]) {
            warn(
                &mut out,
                None,
                "execution_type",
                &v,
                "Orca runs instances of a workflow in parallel",
            );
        }
    }
    let Some(Value::Sequence(tasks)) = root.get("tasks") else {
        return out;
    };
    for task in tasks {
        let Value::Mapping(t) = task else { continue };
        let name = match t.get("name") {
            Some(Value::String(n)) => Some(n.trim().to_string()),
            _ => None,
        };
        if let Some(v) = meaningful(t, "flag", &["yes", "true"]) {
            warn(
                &mut out,
                name.clone(),
                "flag",
                &v,
                "Orca has no disabled tasks and will run it; remove the task if it should not run",
            );
        }
        if let Some(v) = meaningful(t, "is_cache", &["no", "false"]) {
            warn(
                &mut out,
                name.clone(),
                "is_cache",
                &v,
                "task result caching is not imported; the task always runs",
            );
        }
        if let Some(v) = meaningful(t, "timeout_notify_strategy", &["failed", "warnfailed"]) {
            warn(
                &mut out,
                name.clone(),
                "timeout_notify_strategy",
                &v,
                "Orca's timeout always fails the task; drop `timeout` if the task should only alert",
            );
        }
        for (key, why) in TASK_KEYS {
            if let Some(v) = meaningful(t, key, &["0", "-1"]) {
                warn(&mut out, name.clone(), key, &v, why);
            }
        }
    }
    out
}

/// The value of `key` as text, unless absent, null, empty or in `defaults`
/// (case-insensitive).
fn meaningful(map: &Mapping, key: &str, defaults: &[&str]) -> Option<String> {
    let text = match map.get(key)? {
        Value::Null => return None,
        Value::String(s) => s.trim().to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Sequence(s) if s.is_empty() => return None,
        Value::Mapping(m) if m.is_empty() => return None,
        Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => "a value".to_string(),
    };
    if text.is_empty() || defaults.iter().any(|d| d.eq_ignore_ascii_case(&text)) {
        return None;
    }
    Some(format!("{text:?}"))
}
