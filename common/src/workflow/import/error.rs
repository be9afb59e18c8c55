//! Errors of workflow import: one [`ImportError`] carries every problem
//! found in an export, each with a stable code.

use std::fmt;

use crate::workflow::{ProblemCode, WorkflowError};

/// What is wrong with one part of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportProblemKind {
    /// The document is not a DolphinScheduler export (wrong top-level shape).
    NotAnExport,
    /// A field the conversion needs is absent or null.
    MissingField,
    /// A field has the wrong JSON type (e.g. a list where text is expected).
    WrongType,
    /// A field has the right type but a value Orca cannot use.
    BadValue,
    /// A task type Orca cannot run yet.
    UnsupportedTaskType {
        /// The DolphinScheduler type, as exported (e.g. `SQL`).
        task_type: String,
    },
    /// Two tasks of one workflow share a `code`.
    DuplicateTaskCode {
        /// The repeated code.
        code: i64,
    },
    /// A relation names a task code that no task of the workflow has.
    UnknownTaskCode {
        /// The relation's `preTaskCode`.
        pre_task_code: i64,
        /// The relation's `postTaskCode`.
        post_task_code: i64,
        /// The code (one of the two) that matches no task.
        unknown: i64,
    },
    /// Two workflows of the export share a name.
    DuplicateWorkflow,
    /// The converted workflow fails Orca's own checks (cycles, duplicate
    /// task names, empty scripts...); carries the workflow problem's code.
    Workflow(ProblemCode),
}

impl ImportProblemKind {
    /// The stable code string, e.g. `ORCA-IMPORT-UNKNOWN-TASK-CODE`; for
    /// [`ImportProblemKind::Workflow`], the workflow problem's own code.
    pub fn code(&self) -> &'static str {
        match self {
            ImportProblemKind::NotAnExport => "ORCA-IMPORT-NOT-AN-EXPORT",
            ImportProblemKind::MissingField => "ORCA-IMPORT-MISSING-FIELD",
            ImportProblemKind::WrongType => "ORCA-IMPORT-WRONG-TYPE",
            ImportProblemKind::BadValue => "ORCA-IMPORT-BAD-VALUE",
            ImportProblemKind::UnsupportedTaskType { .. } => "ORCA-IMPORT-UNSUPPORTED-TASK-TYPE",
            ImportProblemKind::DuplicateTaskCode { .. } => "ORCA-IMPORT-DUPLICATE-TASK-CODE",
            ImportProblemKind::UnknownTaskCode { .. } => "ORCA-IMPORT-UNKNOWN-TASK-CODE",
            ImportProblemKind::DuplicateWorkflow => "ORCA-IMPORT-DUPLICATE-WORKFLOW",
            ImportProblemKind::Workflow(code) => code.as_str(),
        }
    }
}

/// One problem of an export, naming the workflow, task and field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportProblem {
    /// What kind of problem, with its stable code.
    pub kind: ImportProblemKind,
    /// Workflow name, or `#N` (1-based place in the export) when it has none.
    pub workflow: Option<String>,
    /// Task name, or `code N` when the task has no usable name.
    pub task: Option<String>,
    /// Field at fault, as DolphinScheduler spells it (e.g. `taskParams.rawScript`).
    pub field: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for ImportProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(w) = &self.workflow {
            write!(f, "workflow {w:?}: ")?;
        }
        if let Some(t) = &self.task {
            write!(f, "task {t:?}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "`{field}`: ")?;
        }
        write!(f, "{} [{}]", self.message, self.kind.code())
    }
}

/// Why an import was refused. Nothing is imported when any problem is found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The DolphinScheduler export is not JSON at all.
    #[error(
        "{code}: the DolphinScheduler export is not valid JSON (line {line}, column {column}: {message}); upload the file exactly as DolphinScheduler exported it (Workflow Definition > Export)",
        code = Self::JSON_SYNTAX
    )]
    JsonSyntax {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's description.
        message: String,
    },
    /// The export is JSON but some workflows cannot be converted; every
    /// problem found is listed.
    #[error("{}", render_rejected(problems))]
    Rejected {
        /// The problems, workflow by workflow, in export order.
        problems: Vec<ImportProblem>,
    },
    /// The pydolphinscheduler YAML file is not a valid workflow.
    #[error("{code}: the pydolphinscheduler file was not imported; fix these problems and import it again:\n{0}", code = Self::YAML)]
    Yaml(WorkflowError),
}

impl ImportError {
    /// Code of [`ImportError::JsonSyntax`].
    pub const JSON_SYNTAX: &'static str = "ORCA-IMPORT-JSON-SYNTAX";
    /// Code of [`ImportError::Rejected`].
    pub const REJECTED: &'static str = "ORCA-IMPORT-REJECTED";
    /// Code of [`ImportError::Yaml`].
    pub const YAML: &'static str = "ORCA-IMPORT-YAML";

    /// The stable code of the error as a whole.
    pub fn code(&self) -> &'static str {
        match self {
            ImportError::JsonSyntax { .. } => Self::JSON_SYNTAX,
            ImportError::Rejected { .. } => Self::REJECTED,
            ImportError::Yaml(_) => Self::YAML,
        }
    }

    /// The listed problems (empty for syntax and YAML errors).
    pub fn problems(&self) -> &[ImportProblem] {
        match self {
            ImportError::Rejected { problems } => problems,
            _ => &[],
        }
    }

    /// Every task refused for its type, as `(workflow, task, task type)`.
    pub fn unsupported_tasks(&self) -> Vec<(&str, &str, &str)> {
        self.problems()
            .iter()
            .filter_map(|p| match &p.kind {
                ImportProblemKind::UnsupportedTaskType { task_type } => Some((
                    p.workflow.as_deref().unwrap_or_default(),
                    p.task.as_deref().unwrap_or_default(),
                    task_type.as_str(),
                )),
                _ => None,
            })
            .collect()
    }
}

fn render_rejected(problems: &[ImportProblem]) -> String {
    let n = problems.len();
    let mut out = format!(
        "{}: the DolphinScheduler export was not imported: {n} problem{} (nothing was imported)",
        ImportError::REJECTED,
        if n == 1 { "" } else { "s" }
    );
    for p in problems {
        out.push_str("\n  ");
        out.push_str(&p.to_string());
    }
    let unsupported = problems
        .iter()
        .filter(|p| matches!(p.kind, ImportProblemKind::UnsupportedTaskType { .. }))
        .count();
    if unsupported > 0 {
        out.push_str(&format!(
            "\n{unsupported} task{} of a type Orca cannot run yet (Orca runs {}); rewrite {} as SHELL or PYTHON tasks, or remove {} in DolphinScheduler, then export again",
            if unsupported == 1 { " is" } else { "s are" },
            crate::model::TaskType::known_names(),
            if unsupported == 1 { "it" } else { "them" },
            if unsupported == 1 { "it" } else { "them" },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_lists_each_problem_and_sums_up_unsupported_types() {
        let err = ImportError::Rejected {
            problems: vec![ImportProblem {
                kind: ImportProblemKind::UnsupportedTaskType {
                    task_type: "SQL".into(),
                },
                workflow: Some("etl".into()),
                task: Some("load".into()),
                field: Some("taskType".into()),
                message: "task type SQL is not supported".into(),
            }],
        };
        let text = err.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("ORCA-IMPORT-REJECTED: "), "{text}");
        assert_eq!(
            lines[1],
            "  workflow \"etl\": task \"load\": `taskType`: task type SQL is not supported [ORCA-IMPORT-UNSUPPORTED-TASK-TYPE]"
        );
        assert!(lines[2].contains("Orca runs SHELL, PYTHON"), "{text}");
        assert_eq!(err.unsupported_tasks(), vec![("etl", "load", "SQL")]);
    }
}
