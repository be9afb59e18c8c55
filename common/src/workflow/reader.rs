//! Typed access to the marked YAML tree: reading mappings, text and numbers
//! while collecting every problem (with task, field and position) instead
//! of stopping at the first.

use std::collections::HashMap;
use std::path::Path;

use super::error::{Pos, Problem, ProblemCode};
use super::node::{Node, Value};
use super::placeholder::{Lookup, expand};
use super::values::closest;

/// Known keys of one kind of mapping.
pub(crate) struct KeySet {
    /// What the mapping is, for messages ("task", "workflow").
    pub what: &'static str,
    /// Keys Orca reads.
    pub used: &'static [&'static str],
    /// pydolphinscheduler keys Orca accepts and ignores for now.
    pub ignored: &'static [&'static str],
}

impl KeySet {
    fn knows(&self, key: &str) -> bool {
        self.used.contains(&key) || self.ignored.contains(&key)
    }
}

/// The entries of a mapping, by key.
pub(crate) struct Fields<'n> {
    /// Mapping's own position (for "missing field" problems).
    pub pos: Pos,
    entries: HashMap<String, (&'n Node, &'n Node)>,
}

impl<'n> Fields<'n> {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries.get(key).map(|(_, v)| *v)
    }

    /// The key node of `key`, if present.
    pub fn key_pos(&self, key: &str) -> Option<Pos> {
        self.entries.get(key).map(|(k, _)| k.pos)
    }
}

/// Reads values out of the tree, collecting problems.
pub(crate) struct Reader<'a> {
    pub base_dir: &'a Path,
    pub lookup: &'a dyn Lookup,
    pub problems: Vec<Problem>,
}

impl Reader<'_> {
    /// Records a problem.
    pub fn report(
        &mut self,
        code: ProblemCode,
        pos: Option<Pos>,
        task: Option<&str>,
        field: Option<&str>,
        message: impl Into<String>,
    ) {
        let mut p = Problem::new(code, message).at(pos).task(task);
        if let Some(f) = field {
            p = p.field(f);
        }
        self.problems.push(p);
    }

    /// The entries of a mapping node as `(key, key node, value node)`, with
    /// non-text and repeated keys reported and skipped. `None` (reported)
    /// when the node is not a mapping; null counts as an empty mapping.
    pub fn entries<'n>(
        &mut self,
        node: &'n Node,
        field: &str,
        task: Option<&str>,
    ) -> Option<Vec<(String, &'n Node, &'n Node)>> {
        let map = match &node.value {
            Value::Map(m) => m,
            Value::Scalar { .. } if node.is_null() => return Some(Vec::new()),
            _ => {
                self.report(
                    ProblemCode::WrongType,
                    Some(node.pos),
                    task,
                    Some(field),
                    format!(
                        "`{field}` must be a mapping of `key: value`, not {}",
                        node.kind()
                    ),
                );
                return None;
            }
        };
        let mut seen: HashMap<&str, Pos> = HashMap::new();
        let mut out = Vec::with_capacity(map.len());
        for (k, v) in map {
            let Some(key) = k.as_scalar() else {
                self.report(
                    ProblemCode::WrongType,
                    Some(k.pos),
                    task,
                    Some(field),
                    format!("keys in `{field}` must be plain text, not {}", k.kind()),
                );
                continue;
            };
            if let Some(first) = seen.get(key) {
                self.report(
                    ProblemCode::DuplicateKey,
                    Some(k.pos),
                    task,
                    Some(key),
                    format!(
                        "key {key:?} appears twice in `{field}` (first at line {}); keep one",
                        first.line
                    ),
                );
                continue;
            }
            seen.insert(key, k.pos);
            out.push((key.to_string(), k, v));
        }
        Some(out)
    }

    /// Reads a mapping whose keys must belong to `keys`. Unknown keys are
    /// reported with the closest known key, unless `check_unknown` is false.
    /// Keys starting with `x-` are extension keys and always ignored.
    pub fn fields<'n>(
        &mut self,
        node: &'n Node,
        field: &str,
        keys: &KeySet,
        task: Option<&str>,
        check_unknown: bool,
    ) -> Option<Fields<'n>> {
        let entries = self.entries(node, field, task)?;
        let mut out = HashMap::with_capacity(entries.len());
        for (key, k, v) in entries {
            if check_unknown && !keys.knows(&key) && !key.starts_with("x-") {
                let all = keys.used.iter().chain(keys.ignored).copied();
                let hint = match closest(&key, all) {
                    Some(c) => format!("did you mean {c:?}?"),
                    None => format!("Orca reads: {}", keys.used.join(", ")),
                };
                self.report(
                    ProblemCode::UnknownKey,
                    Some(k.pos),
                    task,
                    Some(&key),
                    format!("unknown {} key {key:?}; {hint}", keys.what),
                );
                continue;
            }
            out.insert(key, (k, v));
        }
        Some(Fields {
            pos: node.pos,
            entries: out,
        })
    }

    /// A text value with `$FILE`/`$ENV` placeholders expanded. Null reads as
    /// "". `None` (reported) for lists, mappings and bad placeholders.
    pub fn text(&mut self, node: &Node, field: &str, task: Option<&str>) -> Option<String> {
        let Some(raw) = node.to_text() else {
            self.report(
                ProblemCode::WrongType,
                Some(node.pos),
                task,
                Some(field),
                format!("`{field}` must be text, not {}", node.kind()),
            );
            return None;
        };
        match expand(&raw, self.base_dir, self.lookup) {
            Ok(None) => Some(raw),
            Ok(Some(expanded)) => Some(expanded),
            Err(errors) => {
                for e in errors {
                    self.report(
                        ProblemCode::Placeholder,
                        Some(node.pos),
                        task,
                        Some(field),
                        format!("`{field}`: {e}"),
                    );
                }
                None
            }
        }
    }

    /// An optional text field; `Some("")` stays empty.
    pub fn opt_text(
        &mut self,
        fields: &Fields<'_>,
        key: &str,
        task: Option<&str>,
    ) -> Option<String> {
        let node = fields.get(key)?;
        self.text(node, key, task)
    }

    /// Parses an optional scalar field with `parse`, reporting its error as
    /// a bad value of `key`.
    pub fn parsed<T>(
        &mut self,
        fields: &Fields<'_>,
        key: &str,
        task: Option<&str>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let node = fields.get(key)?;
        if node.is_null() {
            return None;
        }
        let text = self.text(node, key, task)?;
        match parse(&text) {
            Ok(v) => Some(v),
            Err(e) => {
                self.report(
                    ProblemCode::BadValue,
                    Some(node.pos),
                    task,
                    Some(key),
                    format!("`{key}`: {e}"),
                );
                None
            }
        }
    }

    /// The one of two alias keys that is present (reporting when both are).
    pub fn alias<'f>(
        &mut self,
        fields: &Fields<'_>,
        keys: [&'f str; 2],
        task: Option<&str>,
    ) -> Option<&'f str> {
        match (fields.get(keys[0]), fields.get(keys[1])) {
            (Some(_), Some(_)) => {
                self.report(
                    ProblemCode::BadValue,
                    fields.key_pos(keys[1]),
                    task,
                    Some(keys[1]),
                    format!("both `{}` and `{}` are set; keep one", keys[0], keys[1]),
                );
                None
            }
            (Some(_), None) => Some(keys[0]),
            (None, Some(_)) => Some(keys[1]),
            (None, None) => None,
        }
    }
}
