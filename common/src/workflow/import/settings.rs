//! Settings of a DolphinScheduler workflow outside its DAG: global and
//! local parameters, the schedule, and the settings Orca only warns about.

use serde_json::{Map, Value};

use super::error::ImportProblemKind;
use super::json::{At, Collector, describe, field, kind};
use crate::model::{Direction, FailureStrategy, ParamSpec};

/// `globalParams` (a JSON string or list of `{prop, direct, type, value}`),
/// or `globalParamList`. Only IN parameters become workflow params.
pub(super) fn read_global_params(
    c: &mut Collector,
    at: At<'_>,
    def: &Map<String, Value>,
) -> Vec<ParamSpec> {
    let key = if field(def, "globalParams").is_some() {
        "globalParams"
    } else {
        "globalParamList"
    };
    let Some(list) = c.embedded(at, def, key) else {
        return Vec::new();
    };
    read_params(c, at, &list, key)
        .into_iter()
        .filter(|p| {
            if p.direction == Direction::Out {
                c.warn(
                    at,
                    key,
                    format!(
                        "OUT global parameter {:?} is not imported; Orca's workflow parameters are inputs only, declare it as an OUT local parameter of the task that sets it",
                        p.name
                    ),
                );
            }
            p.direction == Direction::In
        })
        .collect()
}

/// A list of DolphinScheduler properties `{prop, direct, type, value}`.
pub(super) fn read_params(
    c: &mut Collector,
    at: At<'_>,
    list: &Value,
    key: &str,
) -> Vec<ParamSpec> {
    let Some(items) = list.as_array() else {
        c.problem(
            at,
            ImportProblemKind::WrongType,
            Some(key),
            format!(
                "must be a list of `{{prop, direct, type, value}}` objects, not {}",
                kind(list)
            ),
        );
        return Vec::new();
    };
    let mut params = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let here = format!("{key}[{i}]");
        let Some(obj) = item.as_object() else {
            c.problem(
                at,
                ImportProblemKind::WrongType,
                Some(&here),
                format!(
                    "must be a `{{prop, direct, type, value}}` object, not {}",
                    kind(item)
                ),
            );
            continue;
        };
        let name = c
            .text(at, obj, "prop")
            .unwrap_or_default()
            .trim()
            .to_string();
        if name.is_empty() {
            c.problem(
                at,
                ImportProblemKind::MissingField,
                Some(&format!("{here}.prop")),
                "parameter without a name; give it a `prop` or remove it",
            );
            continue;
        }
        let direction = match c.text(at, obj, "direct") {
            None => Direction::In,
            Some(d) => match d.trim().to_ascii_uppercase().as_str() {
                "" | "IN" => Direction::In,
                "OUT" => Direction::Out,
                _ => {
                    c.problem(
                        at,
                        ImportProblemKind::BadValue,
                        Some(&format!("{here}.direct")),
                        format!("direction of {name:?} is {d:?}; use IN or OUT"),
                    );
                    continue;
                }
            },
        };
        let value = c.text(at, obj, "value").unwrap_or_default();
        params.push(ParamSpec {
            name,
            value,
            direction,
        });
    }
    params
}

/// `END` / `CONTINUE` at `key`, when present.
pub(super) fn read_failure_strategy(
    c: &mut Collector,
    at: At<'_>,
    obj: &Map<String, Value>,
    key: &str,
) -> Option<FailureStrategy> {
    let text = c.text(at, obj, key)?;
    match text.trim().to_ascii_uppercase().parse::<FailureStrategy>() {
        Ok(s) => Some(s),
        Err(_) => {
            c.problem(
                at,
                ImportProblemKind::BadValue,
                Some(key),
                format!("{text:?} is not a failure strategy; use END or CONTINUE"),
            );
            None
        }
    }
}

/// The schedule's Quartz cron and failure strategy; what Orca cannot keep
/// yet becomes warnings.
pub(super) fn read_schedule(
    c: &mut Collector,
    at: At<'_>,
    s: &Map<String, Value>,
) -> (Option<String>, Option<FailureStrategy>) {
    let strategy = read_failure_strategy(c, at, s, "failureStrategy");
    let cron = match c.text(at, s, "crontab").map(|t| t.trim().to_string()) {
        None => {
            c.problem(
                at,
                ImportProblemKind::MissingField,
                Some("schedule.crontab"),
                "the schedule has no cron expression; set it in DolphinScheduler, or set `schedule` to null to import the workflow unscheduled",
            );
            None
        }
        Some(cron) => {
            let fields = cron.split_whitespace().count();
            if !(6..=7).contains(&fields) {
                c.problem(
                    at,
                    ImportProblemKind::BadValue,
                    Some("schedule.crontab"),
                    format!(
                        "{cron:?} has {fields} fields; a Quartz cron has 6 or 7 (seconds minutes hours day-of-month month day-of-week [year])"
                    ),
                );
                None
            } else {
                Some(cron)
            }
        }
    };
    for (key, what) in [
        ("timezoneId", "time zone"),
        ("startTime", "start time"),
        ("endTime", "end time"),
    ] {
        if let Some(v) = c.text(at, s, key).filter(|v| !v.trim().is_empty()) {
            c.warn(
                at,
                &format!("schedule.{key}"),
                format!(
                    "schedule {what} {v:?} is not imported: Orca schedules have no {what} yet, so the cron applies from now on, in the master's time zone"
                ),
            );
        }
    }
    let extras: [(&str, &[&str], &str); 5] = [
        (
            "warningType",
            &["NONE"],
            "alerts are not imported; set up notifications in Orca",
        ),
        ("warningGroupId", &["0"], "alert groups are not imported"),
        (
            "processInstancePriority",
            &["MEDIUM"],
            "the instance priority is not imported; Orca gives every instance the same priority",
        ),
        (
            "workerGroup",
            &["default"],
            "the schedule's worker group is not imported; tasks run on their own worker group",
        ),
        (
            "environmentCode",
            &["-1", "0"],
            "the schedule's environment is not imported",
        ),
    ];
    for (key, defaults, message) in extras {
        warn_unless_default(c, at, s, key, defaults, &format!("schedule.{key}"), message);
    }
    if let Some(state) = c.text(at, s, "releaseState")
        && state.trim().eq_ignore_ascii_case("OFFLINE")
    {
        c.warn(
            at,
            "schedule.releaseState",
            "the schedule was offline in DolphinScheduler; it is imported with its cron, check it before the workflow goes live",
        );
    }
    (cron, strategy)
}

pub(super) fn warn_definition_extras(c: &mut Collector, at: At<'_>, def: &Map<String, Value>) {
    if let Some(t) = c.int(at, def, "timeout").filter(|t| *t > 0) {
        c.warn(
            at,
            "timeout",
            format!(
                "the workflow timeout ({t} min) is not imported: Orca has no workflow timeout yet; set task timeouts instead"
            ),
        );
    }
    let extras: [(&str, &[&str], &str); 2] = [
        (
            "executionType",
            &["PARALLEL"],
            "Orca runs instances of a workflow in parallel; serial execution is not imported",
        ),
        ("warningGroupId", &["0"], "alert groups are not imported"),
    ];
    for (key, defaults, message) in extras {
        warn_unless_default(c, at, def, key, defaults, key, message);
    }
}

/// Warns about `key` when it holds something other than null, empty text
/// or one of `defaults`.
pub(super) fn warn_unless_default(
    c: &mut Collector,
    at: At<'_>,
    obj: &Map<String, Value>,
    key: &str,
    defaults: &[&str],
    shown: &str,
    message: &str,
) {
    let Some(v) = field(obj, key) else { return };
    let text = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(a) if a.is_empty() => return,
        _ => describe(v),
    };
    if text.is_empty() || defaults.iter().any(|d| d.eq_ignore_ascii_case(&text)) {
        return;
    }
    c.warn(at, shown, format!("{text}: {message}"));
}
