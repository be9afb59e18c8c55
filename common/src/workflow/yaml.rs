//! Workflow files in pydolphinscheduler's YAML format (a superset of it):
//! the `workflow` section, the `tasks` list, and the graph checks with
//! file positions.

use std::path::Path;

use super::dag::{GraphTask, analyze};
use super::error::{Pos, Problem, ProblemCode, WorkflowError};
use super::node::{self, Node, Value};
use super::placeholder::Lookup;
use super::reader::{KeySet, Reader};
use super::task::{TaskDraft, read_task};
use super::validate::{Loc, duplicate_params, graph_problems};
use crate::model::{
    Direction, FailureStrategy, ParamSpec, PythonProcess, WorkflowSpec, default_project,
    default_worker_group,
};

const TOP_KEYS: KeySet = KeySet {
    what: "top-level",
    used: &["workflow", "tasks"],
    ignored: &[],
};

const WORKFLOW_KEYS: KeySet = KeySet {
    what: "workflow",
    used: &[
        "name",
        "description",
        "project",
        "schedule",
        "param",
        "failure_strategy",
        "worker_group",
        "tenant",
        "python_process",
    ],
    ignored: &[
        "start_time",
        "end_time",
        "timezone",
        "user",
        "queue",
        "warning_type",
        "warning_group_id",
        "execution_type",
        "timeout",
        "release_state",
        "resource_plugin",
        "resource_list",
        "online_schedule",
        "run",
    ],
};

/// The `workflow` section, read.
struct Header {
    name: String,
    description: String,
    project: String,
    schedule: Option<String>,
    params: Vec<ParamSpec>,
    failure_strategy: FailureStrategy,
    worker_group: String,
    tenant: Option<String>,
    python_process: PythonProcess,
}

/// Parses and validates a workflow from YAML text, looking up placeholders
/// through `lookup`.
pub(crate) fn parse_with(
    source: &str,
    origin: &str,
    base_dir: &Path,
    lookup: &dyn Lookup,
) -> Result<WorkflowSpec, WorkflowError> {
    let root = match node::parse(source) {
        Ok(Some(root)) => root,
        Ok(None) => {
            return Err(WorkflowError::new(
                origin,
                vec![Problem::new(
                    ProblemCode::Missing,
                    "the file is empty; it needs a `workflow:` section and a `tasks:` list",
                )],
            ));
        }
        Err(problems) => return Err(WorkflowError::new(origin, problems)),
    };
    let mut r = Reader {
        base_dir,
        lookup,
        problems: Vec::new(),
    };
    let spec = read_root(&mut r, &root);
    match spec {
        Some(spec) if r.problems.is_empty() => Ok(spec),
        _ => Err(WorkflowError::new(origin, r.problems)),
    }
}

fn read_root(r: &mut Reader<'_>, root: &Node) -> Option<WorkflowSpec> {
    if !matches!(root.value, Value::Map(_)) {
        r.report(
            ProblemCode::WrongType,
            Some(root.pos),
            None,
            None,
            format!(
                "the file must be a mapping with `workflow:` and `tasks:`, not {}",
                root.kind()
            ),
        );
        return None;
    }
    let top = r.fields(root, "top level", &TOP_KEYS, None, true)?;
    let header = match top.get("workflow") {
        Some(node) => read_header(r, node),
        None => {
            r.report(
                ProblemCode::Missing,
                None,
                None,
                Some("workflow"),
                "missing `workflow` section; add `workflow:` with at least `name: ...`",
            );
            None
        }
    };
    let default_group = header
        .as_ref()
        .map_or_else(default_worker_group, |h| h.worker_group.clone());
    let drafts = match top.get("tasks") {
        Some(node) => read_tasks(r, node, top.key_pos("tasks"), &default_group),
        None => {
            r.report(
                ProblemCode::Missing,
                None,
                None,
                Some("tasks"),
                "missing `tasks` list; add `tasks:` with at least one task",
            );
            Vec::new()
        }
    };
    check_graph(r, &drafts);
    let header = header?;
    let tasks = drafts
        .into_iter()
        .map(|d| d.spec)
        .collect::<Option<Vec<_>>>()?;
    Some(WorkflowSpec {
        name: header.name,
        description: header.description,
        project: header.project,
        schedule: header.schedule,
        params: header.params,
        failure_strategy: header.failure_strategy,
        tenant: header.tenant,
        python_process: header.python_process,
        tasks,
    })
}

fn read_header(r: &mut Reader<'_>, node: &Node) -> Option<Header> {
    let f = r.fields(node, "workflow", &WORKFLOW_KEYS, None, true)?;
    let name = match f.get("name") {
        None => {
            r.report(
                ProblemCode::Missing,
                Some(f.pos),
                None,
                Some("name"),
                "the workflow has no `name`; add `name: ...` under `workflow:`",
            );
            String::new()
        }
        Some(n) => {
            let name = r
                .text(n, "name", None)
                .unwrap_or_default()
                .trim()
                .to_string();
            if name.is_empty() {
                r.report(
                    ProblemCode::Missing,
                    Some(n.pos),
                    None,
                    Some("name"),
                    "the workflow `name` is empty; give it a name",
                );
            }
            name
        }
    };
    let non_empty = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let description = r.opt_text(&f, "description", None).unwrap_or_default();
    let project = non_empty(r.opt_text(&f, "project", None)).unwrap_or_else(default_project);
    let schedule = non_empty(r.opt_text(&f, "schedule", None));
    let worker_group =
        non_empty(r.opt_text(&f, "worker_group", None)).unwrap_or_else(default_worker_group);
    // DolphinScheduler's tenant `default` is the worker's own user.
    let tenant = non_empty(r.opt_text(&f, "tenant", None)).filter(|t| t != "default");
    if let Some(t) = &tenant
        && !super::is_resource_name(t)
    {
        let pos = f.get("tenant").map(|n| n.pos);
        r.report(
            ProblemCode::BadValue,
            pos,
            None,
            Some("tenant"),
            format!(
                "tenant {t:?}: a tenant name is 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit"
            ),
        );
    }
    let failure_strategy = r
        .parsed(&f, "failure_strategy", None, |s| {
            s.trim()
                .to_ascii_uppercase()
                .parse::<FailureStrategy>()
                .map_err(|_| format!("{s:?} is not a failure strategy; use END or CONTINUE"))
        })
        .unwrap_or_default();
    let python_process = r
        .parsed(&f, "python_process", None, |s| s.parse::<PythonProcess>())
        .unwrap_or_default();
    let mut params = Vec::new();
    let mut positions = Vec::new();
    if let Some(node) = f.get("param")
        && let Some(entries) = r.entries(node, "param", None)
    {
        for (key, k, v) in entries {
            if let Some(value) = r.text(v, "param", None) {
                params.push(ParamSpec {
                    name: key,
                    value,
                    direction: Direction::In,
                });
                positions.push(k.pos);
            }
        }
    }
    let dup = duplicate_params(&params, None, "param", &|i| positions.get(i).copied());
    r.problems.extend(dup);
    Some(Header {
        name,
        description,
        project,
        schedule,
        params,
        failure_strategy,
        worker_group,
        tenant,
        python_process,
    })
}

fn read_tasks(
    r: &mut Reader<'_>,
    node: &Node,
    key_pos: Option<Pos>,
    default_group: &str,
) -> Vec<TaskDraft> {
    let items = match &node.value {
        Value::Seq(items) => items,
        Value::Scalar { .. } if node.is_null() => &Vec::new(),
        _ => {
            r.report(
                ProblemCode::WrongType,
                Some(node.pos),
                None,
                Some("tasks"),
                format!(
                    "`tasks` must be a list (`- name: ...` entries), not {}",
                    node.kind()
                ),
            );
            return Vec::new();
        }
    };
    if items.is_empty() {
        r.report(
            ProblemCode::NoTasks,
            key_pos,
            None,
            Some("tasks"),
            "the workflow has no tasks; add at least one under `tasks:`",
        );
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            // A task that is not a mapping keeps its place, so that "task #N"
            // in later messages counts like the file does.
            read_task(r, item, i + 1, default_group).unwrap_or(TaskDraft {
                name: None,
                name_pos: item.pos,
                deps: Vec::new(),
                spec: None,
            })
        })
        .collect()
}

fn check_graph(r: &mut Reader<'_>, drafts: &[TaskDraft]) {
    let tasks: Vec<GraphTask<'_>> = drafts
        .iter()
        .map(|d| GraphTask {
            name: d.name.as_deref(),
            deps: d.deps.iter().map(|(n, _)| n.as_str()).collect(),
        })
        .collect();
    let (_, issues) = analyze(&tasks);
    let locate = |loc: Loc| -> Option<Pos> {
        match loc {
            Loc::Task(i) => drafts.get(i).map(|d| d.name_pos),
            Loc::Dep { task, dep } => drafts
                .get(task)
                .and_then(|d| d.deps.get(dep))
                .map(|(_, p)| *p),
        }
    };
    let problems = graph_problems(&issues, &tasks, &locate);
    r.problems.extend(problems);
}
