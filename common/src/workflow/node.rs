//! A YAML tree whose every node knows its line and column, built from
//! `yaml-rust2`'s marked event stream. Anchors/aliases and merge keys (`<<`)
//! are resolved here, so later stages see plain data.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::error::{Pos, Problem, ProblemCode};

/// Deepest nesting accepted; deeper files are rejected (keeps later
/// recursive walks and drops far from the stack limit).
const MAX_DEPTH: usize = 64;
/// Most nodes an alias expansion may create (guards against "billion laughs").
const MAX_NODES: usize = 1_000_000;

/// One YAML node with its position.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub value: Value,
    pub pos: Pos,
}

/// The data of a YAML node.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// Any scalar. `quoted` is true for quoted and block scalars, whose text
    /// is never a number, bool or null.
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The scalar text, if this node is a scalar.
    pub fn as_scalar(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// True for YAML null: an empty plain scalar, `~` or `null`.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, quoted: false }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The scalar as text for a parameter value: null becomes "", numbers
    /// and bools keep their source spelling.
    pub fn to_text(&self) -> Option<String> {
        if self.is_null() {
            return Some(String::new());
        }
        self.as_scalar().map(str::to_string)
    }

    /// Short description of the node's shape, for messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar { .. } if self.is_null() => "nothing (null)",
            Value::Scalar { .. } => "text",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

fn pos_of(mark: Marker) -> Pos {
    Pos {
        line: mark.line(),
        column: mark.col() + 1,
    }
}

enum Frame {
    Seq {
        items: Vec<Node>,
        pos: Pos,
        anchor: usize,
    },
    Map {
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        pos: Pos,
        anchor: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    nodes: usize,
    problems: Vec<Problem>,
    failed: bool,
}

impl Builder {
    fn fail(&mut self, pos: Pos, message: String) {
        if !self.failed {
            self.failed = true;
            self.problems
                .push(Problem::new(ProblemCode::YamlSyntax, message).at(Some(pos)));
        }
    }

    fn finish(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries, key, pos, ..
            }) => match key.take() {
                None => {
                    if entries.is_empty() && node.pos < *pos {
                        // Block mappings are marked at their first value;
                        // the first key is where a reader sees them start.
                        *pos = node.pos;
                    }
                    *key = Some(node);
                }
                Some(k) => entries.push((k, node)),
            },
        }
    }

    fn open(&mut self, frame: Frame, pos: Pos) {
        if self.stack.len() >= MAX_DEPTH {
            self.fail(
                pos,
                format!("nesting deeper than {MAX_DEPTH} levels; flatten the file"),
            );
            return;
        }
        self.stack.push(frame);
    }
}

fn count_nodes(node: &Node) -> usize {
    let mut count = 0;
    let mut todo = vec![node];
    while let Some(n) = todo.pop() {
        count += 1;
        match &n.value {
            Value::Scalar { .. } => {}
            Value::Seq(items) => todo.extend(items),
            Value::Map(entries) => todo.extend(entries.iter().flat_map(|(k, v)| [k, v])),
        }
    }
    count
}

/// Applies YAML merge keys (`<<: *base` or `<<: [*a, *b]`): keys of the
/// merged mappings are added unless the mapping sets them itself.
fn apply_merge(entries: Vec<(Node, Node)>) -> Vec<(Node, Node)> {
    if !entries.iter().any(|(k, _)| is_merge_key(k)) {
        return entries;
    }
    let (merges, mut own): (Vec<_>, Vec<_>) =
        entries.into_iter().partition(|(k, _)| is_merge_key(k));
    for (_, value) in merges {
        let sources = match value.value {
            Value::Map(m) => vec![m],
            Value::Seq(items) => items
                .into_iter()
                .filter_map(|n| match n.value {
                    Value::Map(m) => Some(m),
                    _ => None,
                })
                .collect(),
            Value::Scalar { .. } => Vec::new(),
        };
        for source in sources {
            for (k, v) in source {
                let exists = own.iter().any(|(o, _)| o.as_scalar() == k.as_scalar());
                if !exists {
                    own.push((k, v));
                }
            }
        }
    }
    own
}

fn is_merge_key(k: &Node) -> bool {
    matches!(&k.value, Value::Scalar { text, quoted: false } if text == "<<")
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.failed {
            return;
        }
        let pos = pos_of(mark);
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let quoted = !matches!(style, TScalarStyle::Plain);
                self.nodes += 1;
                let node = Node {
                    value: Value::Scalar { text, quoted },
                    pos,
                };
                self.finish(node, anchor);
            }
            Event::SequenceStart(anchor, _) => self.open(
                Frame::Seq {
                    items: Vec::new(),
                    pos,
                    anchor,
                },
                pos,
            ),
            Event::MappingStart(anchor, _) => self.open(
                Frame::Map {
                    entries: Vec::new(),
                    key: None,
                    pos,
                    anchor,
                },
                pos,
            ),
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else {
                    return;
                };
                self.nodes += 1;
                let (node, anchor) = match frame {
                    Frame::Seq { items, pos, anchor } => (
                        Node {
                            value: Value::Seq(items),
                            pos,
                        },
                        anchor,
                    ),
                    Frame::Map {
                        entries,
                        pos,
                        anchor,
                        ..
                    } => (
                        Node {
                            value: Value::Map(apply_merge(entries)),
                            pos,
                        },
                        anchor,
                    ),
                };
                self.finish(node, anchor);
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(target) => {
                    let mut node = target.clone();
                    node.pos = pos;
                    self.nodes += count_nodes(&node);
                    if self.nodes > MAX_NODES {
                        self.fail(
                            pos,
                            format!("aliases expand to more than {MAX_NODES} nodes"),
                        );
                        return;
                    }
                    self.finish(node, 0);
                }
                None => self.fail(pos, "alias to an unknown anchor".to_string()),
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

/// Parses the first YAML document of `source` into a marked tree.
/// `Ok(None)` means the document is empty.
pub(crate) fn parse(source: &str) -> Result<Option<Node>, Vec<Problem>> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(source);
    let loaded = parser.load(&mut builder, false);
    if builder.failed {
        return Err(builder.problems);
    }
    if let Err(e) = loaded {
        let pos = pos_of(*e.marker());
        let hint = if e.info().contains("mapping values are not allowed") {
            "; text containing \": \" must be quoted (`key: \"a: b\"`) or written as a block (`key: |`)"
        } else {
            ""
        };
        return Err(vec![
            Problem::new(
                ProblemCode::YamlSyntax,
                format!("invalid YAML: {}{hint}", e.info()),
            )
            .at(Some(pos)),
        ]);
    }
    Ok(builder.root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(node: &Node) -> &[(Node, Node)] {
        match &node.value {
            Value::Map(m) => m,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn positions_are_one_based_and_block_maps_start_at_first_key() {
        let root = parse("a: 1\nlist:\n  - name: x\n    v: \"q\"\n")
            .unwrap()
            .unwrap();
        let m = map(&root);
        assert_eq!(m[0].0.pos, Pos { line: 1, column: 1 });
        assert_eq!(m[0].1.pos, Pos { line: 1, column: 4 });
        let Value::Seq(items) = &m[1].1.value else {
            panic!()
        };
        assert_eq!(items[0].pos, Pos { line: 3, column: 5 });
        let item = map(&items[0]);
        assert_eq!(item[1].1.pos, Pos { line: 4, column: 8 });
        assert!(matches!(
            &item[1].1.value,
            Value::Scalar { quoted: true, .. }
        ));
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let errs = parse("a: [1\nb: 2\n").unwrap_err();
        assert_eq!(errs[0].code, ProblemCode::YamlSyntax);
        assert_eq!(errs[0].line, Some(2));
        assert!(errs[0].column.is_some());
    }

    #[test]
    fn aliases_and_merge_keys_resolve() {
        let root = parse("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n")
            .unwrap()
            .unwrap();
        let used = map(&map(&root)[1].1);
        let keys: Vec<_> = used
            .iter()
            .map(|(k, v)| (k.as_scalar().unwrap(), v.as_scalar().unwrap()))
            .collect();
        assert_eq!(keys, vec![("y", "3"), ("x", "1")]);
    }

    #[test]
    fn too_deep_nesting_is_rejected_not_overflowed() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        let errs = parse(&deep).unwrap_err();
        // yaml-rust2's own limit (256) or ours (64), whichever trips first.
        assert_eq!(errs[0].code, ProblemCode::YamlSyntax);
        assert!(
            errs[0].message.contains("nesting deeper")
                || errs[0].message.contains("recursion limit"),
            "{errs:?}"
        );
        let block: String = (0..100).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
        let errs = parse(&block).unwrap_err();
        assert!(
            errs[0].message.contains("nesting deeper than 64"),
            "{errs:?}"
        );
    }

    #[test]
    fn empty_document_is_none() {
        assert!(parse("# only a comment\n").unwrap().is_none());
    }
}
