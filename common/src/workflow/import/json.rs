//! Reading fields out of a DolphinScheduler JSON export while collecting
//! every problem and warning, each naming the workflow and task at fault.

use serde_json::{Map, Value};

use super::ImportWarning;
use super::error::{ImportProblem, ImportProblemKind};

/// Where in the export a field is read, for messages.
#[derive(Debug, Clone, Copy)]
pub(super) struct At<'a> {
    /// Workflow name (or `#N` when it has none).
    pub workflow: &'a str,
    /// Task name (or `code N`), when inside a task.
    pub task: Option<&'a str>,
}

impl<'a> At<'a> {
    /// The same workflow, inside `task`.
    pub fn task(self, task: &'a str) -> At<'a> {
        At {
            workflow: self.workflow,
            task: Some(task),
        }
    }
}

/// Problems and warnings found so far.
#[derive(Debug, Default)]
pub(super) struct Collector {
    pub problems: Vec<ImportProblem>,
    pub warnings: Vec<ImportWarning>,
}

impl Collector {
    /// Records a problem.
    pub fn problem(
        &mut self,
        at: At<'_>,
        kind: ImportProblemKind,
        field: Option<&str>,
        message: impl Into<String>,
    ) {
        self.problems.push(ImportProblem {
            kind,
            workflow: Some(at.workflow.to_string()),
            task: at.task.map(str::to_string),
            field: field.map(str::to_string),
            message: message.into(),
        });
    }

    /// Records a warning about `field`: something kept only approximately
    /// or not at all.
    pub fn warn(&mut self, at: At<'_>, field: &str, message: impl AsRef<str>) {
        self.warnings.push(ImportWarning {
            workflow: at.workflow.to_string(),
            task: at.task.map(str::to_string),
            message: format!("`{field}`: {}", message.as_ref()),
        });
    }

    /// The value of `key`, or `None` (after reporting) when it is absent or null.
    pub fn required<'v>(
        &mut self,
        at: At<'_>,
        obj: &'v Map<String, Value>,
        key: &str,
        fix: &str,
    ) -> Option<&'v Value> {
        let value = field(obj, key);
        if value.is_none() {
            self.problem(
                at,
                ImportProblemKind::MissingField,
                Some(key),
                format!("missing; {fix}"),
            );
        }
        value
    }

    /// Text at `key` (numbers and booleans are written as text); `None`
    /// when absent or null, or (reported) a list or object.
    pub fn text(&mut self, at: At<'_>, obj: &Map<String, Value>, key: &str) -> Option<String> {
        let value = field(obj, key)?;
        self.text_of(at, value, key)
    }

    /// `value` as text (see [`Collector::text`]).
    pub fn text_of(&mut self, at: At<'_>, value: &Value, key: &str) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null => None,
            Value::Array(_) | Value::Object(_) => {
                self.problem(
                    at,
                    ImportProblemKind::WrongType,
                    Some(key),
                    format!("must be text, not {}", kind(value)),
                );
                None
            }
        }
    }

    /// A whole number at `key` (a JSON number or numeric text); `None` when
    /// absent, null or empty text, or (reported) anything else.
    pub fn int(&mut self, at: At<'_>, obj: &Map<String, Value>, key: &str) -> Option<i64> {
        let value = field(obj, key)?;
        self.int_of(at, value, key)
    }

    /// `value` as a whole number (see [`Collector::int`]).
    pub fn int_of(&mut self, at: At<'_>, value: &Value, key: &str) -> Option<i64> {
        let parsed = match value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) if s.trim().is_empty() => return None,
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        if parsed.is_none() {
            self.problem(
                at,
                ImportProblemKind::WrongType,
                Some(key),
                format!("must be a whole number, not {}", describe(value)),
            );
        }
        parsed
    }

    /// A non-negative whole number at `key` (0 when absent).
    pub fn count(&mut self, at: At<'_>, obj: &Map<String, Value>, key: &str) -> Option<u32> {
        let Some(n) = self.int(at, obj, key) else {
            return Some(0);
        };
        match u32::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                self.problem(
                    at,
                    ImportProblemKind::BadValue,
                    Some(key),
                    format!("{n} is out of range; use 0 or more"),
                );
                None
            }
        }
    }

    /// A JSON value that DolphinScheduler stores either as itself or as a
    /// JSON string holding it (`taskParams`, `globalParams`). An empty
    /// string reads as absent; text that does not parse is reported.
    pub fn embedded(&mut self, at: At<'_>, obj: &Map<String, Value>, key: &str) -> Option<Value> {
        match field(obj, key)? {
            Value::String(s) if s.trim().is_empty() => None,
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Null) => None,
                Ok(v) => Some(v),
                Err(e) => {
                    self.problem(
                        at,
                        ImportProblemKind::BadValue,
                        Some(key),
                        format!(
                            "is a string that does not hold valid JSON ({e}); export the workflow again from DolphinScheduler"
                        ),
                    );
                    None
                }
            },
            other => Some(other.clone()),
        }
    }
}

/// The value at `key`, treating null as absent.
pub(super) fn field<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// The first of several alias keys that is present (and not null).
pub(super) fn field_alias<'v, 'k>(
    obj: &'v Map<String, Value>,
    keys: &[&'k str],
) -> Option<(&'k str, &'v Value)> {
    keys.iter().find_map(|k| field(obj, k).map(|v| (*k, v)))
}

/// What kind of JSON value this is, for messages.
pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A short description of a value: its kind, and a scalar's own text.
pub(super) fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        other => kind(other).to_string(),
    }
}
