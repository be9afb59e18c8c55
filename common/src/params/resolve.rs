//! Resolving the parameters of one task attempt.
//!
//! Precedence, highest first (DolphinScheduler 3.x): task local IN params >
//! upstream OUT params > start-time params (`--param k=v`) > global params.
//! System parameters (`system.*`) sit below all of them; a user parameter of
//! the same name wins but is then user-provided (`generated = false`).
//!
//! Definitions (global, start-time and local values) may reference other
//! parameters as `${name}` and hold time expressions `$[...]`; both are
//! expanded recursively and textually. Unknown `${x}` stay literal. Upstream
//! OUT values are runtime data and are taken verbatim.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDateTime};

use super::error::ParamError;
use super::scan::{reference_at, time_expr_at};
use super::time::eval_time_expr;
use crate::model::{Direction, ParamSpec};

/// Schedule time, `yyyyMMddHHmmss`.
pub const SYSTEM_DATETIME: &str = "system.datetime";
/// The day before the schedule time, `yyyyMMdd`.
pub const SYSTEM_BIZ_DATE: &str = "system.biz.date";
/// The schedule day, `yyyyMMdd`.
pub const SYSTEM_BIZ_CURDATE: &str = "system.biz.curdate";
/// Id of the workflow instance.
pub const SYSTEM_WORKFLOW_INSTANCE_ID: &str = "system.workflow.instance.id";
/// Id of the task instance.
pub const SYSTEM_TASK_INSTANCE_ID: &str = "system.task.instance.id";
/// The task's working directory; added by the worker, not by [`resolve`].
pub const SYSTEM_TASK_EXECUTE_PATH: &str = "system.task.execute.path";

/// Largest resolved value, in bytes.
pub const MAX_VALUE_LEN: usize = 1 << 20;

/// What Orca knows about the attempt being resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemContext {
    /// Schedule time (local wall clock); the base of every `$[...]`.
    pub schedule_time: NaiveDateTime,
    /// Id of the workflow instance.
    pub workflow_instance_id: i64,
    /// Id of the task instance.
    pub task_instance_id: i64,
}

/// All parameter sources of one task attempt.
#[derive(Debug, Clone, Copy)]
pub struct ResolveInput<'a> {
    /// Global parameters of the workflow.
    pub globals: &'a [ParamSpec],
    /// Parameters given when the workflow instance was started.
    pub start_params: &'a BTreeMap<String, String>,
    /// OUT parameters set by upstream tasks (already merged).
    pub upstream_out: &'a BTreeMap<String, String>,
    /// The task's local parameters; OUT ones are declarations and ignored.
    pub local: &'a [ParamSpec],
    /// System values.
    pub system: &'a SystemContext,
}

/// One resolved parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedParam {
    /// Parameter name as written (may contain `.` or `-`).
    pub name: String,
    /// Fully expanded value.
    pub value: String,
    /// `true` when Orca produced the value (`system.*`, values made only of
    /// `$[...]` expressions); such values may be inlined into task text.
    /// Every user-provided value is `false`, even after expansion.
    pub generated: bool,
}

impl ResolvedParam {
    /// A value produced by Orca itself (e.g. the worker's
    /// [`SYSTEM_TASK_EXECUTE_PATH`]).
    pub fn orca_generated(name: impl Into<String>, value: impl Into<String>) -> Self {
        ResolvedParam {
            name: name.into(),
            value: value.into(),
            generated: true,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    System,
    Definition,
    Upstream,
}

/// Resolves every parameter visible to a task attempt, sorted by name,
/// including the system parameters (except [`SYSTEM_TASK_EXECUTE_PATH`]).
pub fn resolve(input: &ResolveInput) -> Result<Vec<ResolvedParam>, ParamError> {
    let sys = input.system;
    let t = sys.schedule_time;
    let day_before = t
        .checked_sub_signed(Duration::days(1))
        .unwrap_or(t)
        .format("%Y%m%d");
    let mut defs: BTreeMap<&str, (String, Source)> = BTreeMap::new();
    let system = [
        (SYSTEM_DATETIME, t.format("%Y%m%d%H%M%S").to_string()),
        (SYSTEM_BIZ_DATE, day_before.to_string()),
        (SYSTEM_BIZ_CURDATE, t.format("%Y%m%d").to_string()),
        (
            SYSTEM_WORKFLOW_INSTANCE_ID,
            sys.workflow_instance_id.to_string(),
        ),
        (SYSTEM_TASK_INSTANCE_ID, sys.task_instance_id.to_string()),
    ];
    for (name, value) in system {
        defs.insert(name, (value, Source::System));
    }
    for p in input.globals {
        defs.insert(&p.name, (p.value.clone(), Source::Definition));
    }
    for (k, v) in input.start_params {
        defs.insert(k, (v.clone(), Source::Definition));
    }
    for (k, v) in input.upstream_out {
        defs.insert(k, (v.clone(), Source::Upstream));
    }
    for p in input.local.iter().filter(|p| p.direction == Direction::In) {
        defs.insert(&p.name, (p.value.clone(), Source::Definition));
    }
    let mut r = Resolver {
        defs: &defs,
        base: t,
        done: BTreeMap::new(),
        visiting: Vec::new(),
    };
    let mut out = Vec::with_capacity(defs.len());
    for (name, (raw, source)) in &defs {
        let value = r.resolve_one(name)?;
        let generated = match source {
            Source::System => true,
            Source::Upstream => false,
            Source::Definition => is_only_time_exprs(raw),
        };
        out.push(ResolvedParam {
            name: name.to_string(),
            value,
            generated,
        });
    }
    Ok(out)
}

/// True when `raw` is one or more `$[...]` and nothing else (no `${..}`).
fn is_only_time_exprs(raw: &str) -> bool {
    let mut at = 0;
    while at < raw.len() {
        match time_expr_at(raw, at) {
            Some((inner, end)) if !inner.contains("${") => at = end,
            _ => return false,
        }
    }
    at > 0
}

struct Resolver<'d> {
    defs: &'d BTreeMap<&'d str, (String, Source)>,
    base: NaiveDateTime,
    done: BTreeMap<&'d str, String>,
    visiting: Vec<&'d str>,
}

impl<'d> Resolver<'d> {
    fn resolve_one(&mut self, name: &str) -> Result<String, ParamError> {
        if let Some(v) = self.done.get(name) {
            return Ok(v.clone());
        }
        let Some((&key, (raw, source))) = self.defs.get_key_value(name) else {
            return Ok(format!("${{{name}}}"));
        };
        if let Some(pos) = self.visiting.iter().position(|v| *v == key) {
            let mut chain: Vec<String> =
                self.visiting[pos..].iter().map(|s| s.to_string()).collect();
            chain.push(key.to_string());
            return Err(ParamError::Cycle { chain });
        }
        let value = if *source == Source::Definition {
            self.visiting.push(key);
            let expanded = self.expand(raw, true);
            self.visiting.pop();
            expanded.map_err(|e| match e {
                ParamError::Cycle { .. }
                | ParamError::InValue { .. }
                | ParamError::ValueTooLarge { .. } => e,
                other => ParamError::InValue {
                    param: key.to_string(),
                    source: Box::new(other),
                },
            })?
        } else {
            raw.clone()
        };
        if value.len() > MAX_VALUE_LEN {
            return Err(ParamError::ValueTooLarge {
                param: key.to_string(),
                limit: MAX_VALUE_LEN,
            });
        }
        self.done.insert(key, value.clone());
        Ok(value)
    }

    /// Expands `${known}` references and, when `time` is set, `$[...]`
    /// expressions (whose text may itself hold references).
    fn expand(&mut self, raw: &str, time: bool) -> Result<String, ParamError> {
        let mut out = String::with_capacity(raw.len());
        let mut at = 0;
        while let Some(off) = raw[at..].find('$') {
            let i = at + off;
            out.push_str(&raw[at..i]);
            if let Some((name, end)) = reference_at(raw, i) {
                if self.defs.contains_key(name) {
                    out.push_str(&self.resolve_one(name)?);
                } else {
                    out.push_str(&raw[i..end]);
                }
                at = end;
            } else if let Some((inner, end)) = time.then(|| time_expr_at(raw, i)).flatten() {
                let inner = self.expand(inner, false)?;
                out.push_str(&eval_time_expr(&inner, self.base)?);
                at = end;
            } else {
                out.push('$');
                at = i + 1;
            }
            if out.len() > MAX_VALUE_LEN {
                return Err(ParamError::ValueTooLarge {
                    param: self.visiting.last().map_or("", |s| s).to_string(),
                    limit: MAX_VALUE_LEN,
                });
            }
        }
        out.push_str(&raw[at..]);
        Ok(out)
    }
}
