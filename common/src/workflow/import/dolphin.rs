//! DolphinScheduler 3.x JSON exports: workflow definitions, their schedule,
//! global parameters and task relations, converted into [`WorkflowSpec`]s.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::Imported;
use super::dolphin_task::{TaskDraft, read_task};
use super::error::{ImportError, ImportProblemKind};
use super::json::{At, Collector, field, field_alias, kind};
use super::settings::{
    read_failure_strategy, read_global_params, read_schedule, warn_definition_extras,
};
use crate::model::WorkflowSpec;
use crate::workflow::validate_spec;

/// Keys of the workflow definition, by DolphinScheduler version.
const DEFINITION_KEYS: &[&str] = &["processDefinition", "workflowDefinition"];
/// Keys of the relation list, by DolphinScheduler version.
const RELATION_KEYS: &[&str] = &["processTaskRelationList", "workflowTaskRelationList"];

/// Converts a whole export; see [`super::import_dolphinscheduler_json`].
pub(super) fn import(json: &str, project: &str) -> Result<Imported, ImportError> {
    let root: Value = serde_json::from_str(json).map_err(|e| {
        let text = e.to_string();
        let message = match text.rfind(" at line ") {
            Some(i) => text[..i].to_string(),
            None => text,
        };
        ImportError::JsonSyntax {
            line: e.line(),
            column: e.column(),
            message,
        }
    })?;
    let mut c = Collector::default();
    let items = match root {
        Value::Array(items) => items,
        obj @ Value::Object(_) => vec![obj],
        other => {
            c.problems.push(super::error::ImportProblem {
                kind: ImportProblemKind::NotAnExport,
                workflow: None,
                task: None,
                field: None,
                message: format!(
                    "the export is {}, not a list of workflows; upload the file DolphinScheduler's Export produced",
                    kind(&other)
                ),
            });
            return Err(ImportError::Rejected {
                problems: c.problems,
            });
        }
    };
    if items.is_empty() {
        c.problems.push(super::error::ImportProblem {
            kind: ImportProblemKind::NotAnExport,
            workflow: None,
            task: None,
            field: None,
            message: "the export holds no workflows; select at least one workflow to export"
                .to_string(),
        });
    }
    let mut workflows = Vec::with_capacity(items.len());
    let mut seen: HashSet<String> = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let Some(spec) = read_workflow(&mut c, item, i + 1, project) else {
            continue;
        };
        if !seen.insert(spec.name.clone()) {
            c.problem(
                At {
                    workflow: &spec.name,
                    task: None,
                },
                ImportProblemKind::DuplicateWorkflow,
                Some("name"),
                "two workflows of the export have this name; rename one in DolphinScheduler or export them separately",
            );
            continue;
        }
        workflows.push(spec);
    }
    if c.problems.is_empty() {
        Ok(Imported {
            workflows,
            warnings: c.warnings,
        })
    } else {
        Err(ImportError::Rejected {
            problems: c.problems,
        })
    }
}

/// Converts entry `number` (1-based) of the export; `None` when it has
/// problems (all reported).
fn read_workflow(
    c: &mut Collector,
    item: &Value,
    number: usize,
    project: &str,
) -> Option<WorkflowSpec> {
    let placeholder = format!("#{number}");
    let at = At {
        workflow: &placeholder,
        task: None,
    };
    let Some(obj) = item.as_object() else {
        c.problem(
            at,
            ImportProblemKind::NotAnExport,
            None,
            format!(
                "entry {placeholder} of the export is {}, not a workflow object with `processDefinition` and `taskDefinitionList`",
                kind(item)
            ),
        );
        return None;
    };
    let Some((def_key, def)) = field_alias(obj, DEFINITION_KEYS) else {
        c.problem(
            at,
            ImportProblemKind::NotAnExport,
            Some("processDefinition"),
            "missing (nor `workflowDefinition`); this is not a DolphinScheduler 3.x workflow export",
        );
        return None;
    };
    let Some(def) = def.as_object() else {
        c.problem(
            at,
            ImportProblemKind::WrongType,
            Some(def_key),
            format!("must be an object, not {}", kind(def)),
        );
        return None;
    };
    let name = c
        .text(at, def, "name")
        .map(|n| n.trim().to_string())
        .unwrap_or_default();
    if name.is_empty() {
        c.problem(
            at,
            ImportProblemKind::MissingField,
            Some(&format!("{def_key}.name")),
            "the workflow has no name; name it in DolphinScheduler and export again",
        );
        return None;
    }
    let at = At {
        workflow: &name,
        task: None,
    };
    let before = c.problems.len();

    let description = c.text(at, def, "description").unwrap_or_default();
    // DolphinScheduler's tenant `default` is the worker's own user.
    let tenant = c
        .text(at, def, "tenantCode")
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty() && t != "default");
    let params = read_global_params(c, at, def);
    let mut failure_strategy = read_failure_strategy(c, at, def, "failureStrategy");
    warn_definition_extras(c, at, def);
    let mut schedule = None;
    if let Some(s) = field(obj, "schedule") {
        match s.as_object() {
            Some(s) => {
                let (cron, strategy) = read_schedule(c, at, s);
                schedule = cron;
                failure_strategy = strategy.or(failure_strategy);
            }
            None => c.problem(
                at,
                ImportProblemKind::WrongType,
                Some("schedule"),
                format!("must be an object or null, not {}", kind(s)),
            ),
        }
    }

    let drafts = read_tasks(c, at, obj);
    let relations = match field_alias(obj, RELATION_KEYS) {
        None => &Vec::new(),
        Some((_, Value::Array(items))) => items,
        Some((key, other)) => {
            c.problem(
                at,
                ImportProblemKind::WrongType,
                Some(key),
                format!("must be a list of relations, not {}", kind(other)),
            );
            &Vec::new()
        }
    };
    let deps = read_relations(c, at, &drafts, relations);
    if c.problems.len() > before {
        return None;
    }
    let tasks = drafts
        .into_iter()
        .zip(deps)
        .filter_map(|(d, deps)| {
            d.spec.map(|mut spec| {
                spec.deps = deps;
                spec
            })
        })
        .collect();
    let spec = WorkflowSpec {
        name: name.clone(),
        description,
        project: project.to_string(),
        schedule,
        params,
        failure_strategy: failure_strategy.unwrap_or_default(),
        tenant,
        python_process: Default::default(),
        tasks,
    };
    if let Err(e) = validate_spec(&spec) {
        for p in e.problems {
            let at = match &p.task {
                Some(t) => at.task(t),
                None => at,
            };
            c.problem(
                at,
                ImportProblemKind::Workflow(p.code),
                p.field.as_deref(),
                p.message,
            );
        }
        return None;
    }
    Some(spec)
}

fn read_tasks(c: &mut Collector, at: At<'_>, obj: &Map<String, Value>) -> Vec<TaskDraft> {
    let Some(list) = c.required(
        at,
        obj,
        "taskDefinitionList",
        "this is not a complete DolphinScheduler workflow export",
    ) else {
        return Vec::new();
    };
    let Some(items) = list.as_array() else {
        c.problem(
            at,
            ImportProblemKind::WrongType,
            Some("taskDefinitionList"),
            format!("must be a list of task definitions, not {}", kind(list)),
        );
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| read_task(c, at, item, i + 1))
        .collect()
}

/// Upstream task names of each draft, from the relation list.
fn read_relations(
    c: &mut Collector,
    at: At<'_>,
    drafts: &[TaskDraft],
    relations: &[Value],
) -> Vec<Vec<String>> {
    let mut by_code: HashMap<i64, usize> = HashMap::new();
    for (i, d) in drafts.iter().enumerate() {
        if let Some(first) = by_code.insert(d.code, i) {
            c.problem(
                at.task(&d.label),
                ImportProblemKind::DuplicateTaskCode { code: d.code },
                Some("code"),
                format!(
                    "task code {} is also used by task {:?}; every task of a workflow needs its own code (export again from DolphinScheduler)",
                    d.code, drafts[first].label
                ),
            );
        }
    }
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); drafts.len()];
    for (i, rel) in relations.iter().enumerate() {
        let field_name = format!("processTaskRelationList[{i}]");
        let Some(rel) = rel.as_object() else {
            c.problem(
                at,
                ImportProblemKind::WrongType,
                Some(&field_name),
                format!(
                    "must be an object with `preTaskCode` and `postTaskCode`, not {}",
                    kind(rel)
                ),
            );
            continue;
        };
        let pre = c.int(at, rel, "preTaskCode").unwrap_or(0);
        let post = match field(rel, "postTaskCode") {
            None => 0,
            Some(v) => match c.int_of(at, v, &format!("{field_name}.postTaskCode")) {
                Some(post) => post,
                None => continue,
            },
        };
        if post == 0 {
            c.problem(
                at,
                ImportProblemKind::MissingField,
                Some(&format!("{field_name}.postTaskCode")),
                "the relation names no downstream task; the export is incomplete, export the workflow again",
            );
            continue;
        }
        let mut unknown: Vec<i64> = [pre, post]
            .into_iter()
            .filter(|code| *code != 0 && !by_code.contains_key(code))
            .collect();
        unknown.dedup();
        for code in &unknown {
            c.problem(
                at,
                ImportProblemKind::UnknownTaskCode {
                    pre_task_code: pre,
                    post_task_code: post,
                    unknown: *code,
                },
                Some(&field_name),
                format!(
                    "relation preTaskCode {pre} -> postTaskCode {post} names task code {code}, which no task of this workflow has; the export is incomplete, export the workflow again with all its tasks"
                ),
            );
        }
        if pre == 0 {
            continue;
        }
        if let (Some(&from), Some(&to)) = (by_code.get(&pre), by_code.get(&post))
            && !deps[to].contains(&from)
        {
            deps[to].push(from);
        }
    }
    // Upstream tasks in task-list order: relation order is not meaningful.
    deps.into_iter()
        .map(|mut ups| {
            ups.sort_unstable();
            ups.into_iter().map(|i| drafts[i].label.clone()).collect()
        })
        .collect()
}
