//! Checks shared by YAML files and specs from elsewhere (JSON via the API):
//! graph problems turned into user-facing [`Problem`]s, and [`validate_spec`].

use std::collections::HashSet;

use super::dag::{GraphIssue, GraphTask, analyze};
use super::error::{Pos, Problem, ProblemCode, WorkflowError};
use crate::model::{ParamSpec, WorkflowSpec};

/// Longest cycle printed in full; longer ones are shortened in the middle.
const CYCLE_SHOWN: usize = 24;

/// What a graph problem points at, for position lookup.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Loc {
    /// The task's name (or the task itself when it has no name).
    Task(usize),
    /// Dependency `dep` of task `task`.
    Dep { task: usize, dep: usize },
}

fn task_name<'a>(tasks: &'a [GraphTask<'_>], i: usize) -> Option<&'a str> {
    tasks[i].name.map(str::trim).filter(|n| !n.is_empty())
}

/// Turns graph issues into problems, positioned by `locate`.
pub(crate) fn graph_problems(
    issues: &[GraphIssue],
    tasks: &[GraphTask<'_>],
    locate: &dyn Fn(Loc) -> Option<Pos>,
) -> Vec<Problem> {
    let label = |i: usize| match task_name(tasks, i) {
        Some(n) => format!("{n:?}"),
        None => format!("#{} (unnamed)", i + 1),
    };
    issues
        .iter()
        .map(|issue| match issue {
            GraphIssue::EmptyName { task } => Problem::new(
                ProblemCode::EmptyTaskName,
                format!(
                    "task #{} has no name; give every task a unique `name`",
                    task + 1
                ),
            )
            .field("name")
            .at(locate(Loc::Task(*task))),
            GraphIssue::DuplicateName { task, first } => {
                let first_at = locate(Loc::Task(*first))
                    .map(|p| format!("line {}", p.line))
                    .unwrap_or_else(|| format!("task #{}", first + 1));
                Problem::new(
                    ProblemCode::DuplicateTask,
                    format!(
                        "duplicate task name (first defined at {first_at}); task names must be unique"
                    ),
                )
                .task(task_name(tasks, *task))
                .field("name")
                .at(locate(Loc::Task(*task)))
            }
            GraphIssue::UnknownDep {
                task,
                dep,
                suggestion,
            } => {
                let hint = match suggestion {
                    Some(s) => format!(" (did you mean {s:?}?)"),
                    None => "; deps must name tasks of this workflow".to_string(),
                };
                let dep_name = tasks[*task].deps[*dep];
                let prefix = match task_name(tasks, *task) {
                    Some(_) => String::new(),
                    None => format!("task {}: ", label(*task)),
                };
                Problem::new(
                    ProblemCode::UnknownDependency,
                    format!("{prefix}unknown dependency {dep_name:?}{hint}"),
                )
                .task(task_name(tasks, *task))
                .field("deps")
                .at(locate(Loc::Dep {
                    task: *task,
                    dep: *dep,
                }))
            }
            GraphIssue::SelfDep { task, dep } => Problem::new(
                ProblemCode::SelfDependency,
                "depends on itself; remove its own name from `deps`",
            )
            .task(task_name(tasks, *task))
            .field("deps")
            .at(locate(Loc::Dep {
                task: *task,
                dep: *dep,
            })),
            GraphIssue::Cycle { tasks: cycle } => {
                let mut names: Vec<String> = cycle.iter().map(|&i| label(i)).collect();
                let total = names.len();
                if total > CYCLE_SHOWN {
                    let tail = names.split_off(total - CYCLE_SHOWN / 2);
                    names.truncate(CYCLE_SHOWN / 2);
                    names.push(format!("... {} more ...", total - CYCLE_SHOWN));
                    names.extend(tail);
                }
                names.push(label(cycle[0]));
                let path = names
                    .iter()
                    .map(|n| n.trim_matches('"'))
                    .collect::<Vec<_>>()
                    .join(" -> ");
                Problem::new(
                    ProblemCode::Cycle,
                    format!(
                        "dependency cycle of {total} task{}: {path} (each runs before the next); remove one of these dependencies",
                        if total == 1 { "" } else { "s" }
                    ),
                )
                .task(task_name(tasks, cycle[0]))
                .field("deps")
                .at(locate(Loc::Task(cycle[0])))
            }
        })
        .collect()
}

/// Problems with duplicate parameter names within one scope.
pub(crate) fn duplicate_params(
    params: &[ParamSpec],
    task: Option<&str>,
    field: &str,
    locate: &dyn Fn(usize) -> Option<Pos>,
) -> Vec<Problem> {
    let mut seen = HashSet::new();
    params
        .iter()
        .enumerate()
        .filter(|(_, p)| !seen.insert(p.name.as_str()))
        .map(|(i, p)| {
            Problem::new(
                ProblemCode::DuplicateParam,
                format!(
                    "parameter {:?} is defined twice; keep one definition",
                    p.name
                ),
            )
            .task(task)
            .field(field)
            .at(locate(i))
        })
        .collect()
}

/// Names of tenants, worker groups and environments: 1 to 64 of
/// `A-Z a-z 0-9 . _ -`, starting with a letter or digit.
pub fn is_resource_name(name: &str) -> bool {
    name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Validates a spec that did not come from YAML (e.g. JSON through the
/// API): workflow name, at least one task, task names, dependencies,
/// cycles, non-empty scripts and parameter names.
pub fn validate_spec(spec: &WorkflowSpec) -> Result<(), WorkflowError> {
    let mut problems = Vec::new();
    if spec.name.trim().is_empty() {
        problems.push(
            Problem::new(ProblemCode::Missing, "workflow has no name; set `name`").field("name"),
        );
    }
    if let Some(t) = &spec.tenant
        && !is_resource_name(t)
    {
        problems.push(
            Problem::new(
                ProblemCode::BadValue,
                format!(
                    "tenant {t:?}: a tenant name is 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit"
                ),
            )
            .field("tenant"),
        );
    }
    if spec.tasks.is_empty() {
        problems.push(Problem::new(
            ProblemCode::NoTasks,
            "workflow has no tasks; add at least one task",
        ));
    }
    let tasks: Vec<GraphTask<'_>> = spec
        .tasks
        .iter()
        .map(|t| GraphTask {
            name: Some(t.name.as_str()),
            deps: t.deps.iter().map(String::as_str).collect(),
        })
        .collect();
    let (_, issues) = analyze(&tasks);
    problems.extend(graph_problems(&issues, &tasks, &|_| None));
    for (i, t) in spec.tasks.iter().enumerate() {
        let name = Some(t.name.trim()).filter(|n| !n.is_empty());
        if t.script.trim().is_empty() {
            let who = name.map_or_else(|| format!("task #{}: ", i + 1), |_| String::new());
            problems.push(
                Problem::new(
                    ProblemCode::Script,
                    format!("{who}empty script; give the shell command or Python source"),
                )
                .task(name)
                .field("script"),
            );
        }
        if t.worker_group.trim().is_empty() {
            problems.push(
                Problem::new(
                    ProblemCode::BadValue,
                    "empty worker_group; omit it to use \"default\"",
                )
                .task(name)
                .field("worker_group"),
            );
        }
        problems.extend(param_name_problems(&t.local_params, name, "local_params"));
        problems.extend(duplicate_params(
            &t.local_params,
            name,
            "local_params",
            &|_| None,
        ));
    }
    problems.extend(param_name_problems(&spec.params, None, "params"));
    problems.extend(duplicate_params(&spec.params, None, "params", &|_| None));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(WorkflowError::new(
            format!("workflow {:?}", spec.name),
            problems,
        ))
    }
}

fn param_name_problems(params: &[ParamSpec], task: Option<&str>, field: &str) -> Vec<Problem> {
    params
        .iter()
        .filter(|p| p.name.trim().is_empty())
        .map(|_| {
            Problem::new(
                ProblemCode::BadValue,
                "parameter with an empty name; give it a name",
            )
            .task(task)
            .field(field)
        })
        .collect()
}
