//! Errors of workflow parsing and validation: one [`WorkflowError`] carries
//! every [`Problem`] found, each with a stable [`ProblemCode`].

use std::fmt;

/// Stable code of one kind of problem in a workflow definition.
///
/// The string form (`ORCA-WORKFLOW-...`) is part of Orca's interface: tools
/// and docs may match on it, so a code is never renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemCode {
    /// The workflow file could not be read.
    Read,
    /// The file is not valid YAML.
    YamlSyntax,
    /// A required section (`workflow`, `tasks`) or field is missing.
    Missing,
    /// The workflow has no tasks.
    NoTasks,
    /// A field has the wrong YAML shape (e.g. a list where text is expected).
    WrongType,
    /// A key that Orca and pydolphinscheduler do not know (likely a typo).
    UnknownKey,
    /// The same key appears twice in one mapping.
    DuplicateKey,
    /// A task has no name.
    EmptyTaskName,
    /// Two tasks share a name.
    DuplicateTask,
    /// `task_type` names a type Orca cannot run.
    UnknownTaskType,
    /// A dependency names no task of the workflow.
    UnknownDependency,
    /// A task depends on itself.
    SelfDependency,
    /// Tasks depend on each other in a loop.
    Cycle,
    /// A value is out of range or malformed (durations, retries, priority...).
    BadValue,
    /// `command`/`definition` missing, empty, or both given.
    Script,
    /// A `$FILE{...}` or `$ENV{...}` placeholder could not be expanded.
    Placeholder,
    /// Two parameters of one scope share a name.
    DuplicateParam,
}

impl ProblemCode {
    /// The stable code string, e.g. `ORCA-WORKFLOW-UNKNOWN-DEPENDENCY`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemCode::Read => "ORCA-WORKFLOW-READ",
            ProblemCode::YamlSyntax => "ORCA-WORKFLOW-YAML-SYNTAX",
            ProblemCode::Missing => "ORCA-WORKFLOW-MISSING",
            ProblemCode::NoTasks => "ORCA-WORKFLOW-NO-TASKS",
            ProblemCode::WrongType => "ORCA-WORKFLOW-WRONG-TYPE",
            ProblemCode::UnknownKey => "ORCA-WORKFLOW-UNKNOWN-KEY",
            ProblemCode::DuplicateKey => "ORCA-WORKFLOW-DUPLICATE-KEY",
            ProblemCode::EmptyTaskName => "ORCA-WORKFLOW-EMPTY-TASK-NAME",
            ProblemCode::DuplicateTask => "ORCA-WORKFLOW-DUPLICATE-TASK",
            ProblemCode::UnknownTaskType => "ORCA-WORKFLOW-UNKNOWN-TASK-TYPE",
            ProblemCode::UnknownDependency => "ORCA-WORKFLOW-UNKNOWN-DEPENDENCY",
            ProblemCode::SelfDependency => "ORCA-WORKFLOW-SELF-DEPENDENCY",
            ProblemCode::Cycle => "ORCA-WORKFLOW-CYCLE",
            ProblemCode::BadValue => "ORCA-WORKFLOW-BAD-VALUE",
            ProblemCode::Script => "ORCA-WORKFLOW-SCRIPT",
            ProblemCode::Placeholder => "ORCA-WORKFLOW-PLACEHOLDER",
            ProblemCode::DuplicateParam => "ORCA-WORKFLOW-DUPLICATE-PARAM",
        }
    }
}

impl fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A 1-based position in a YAML file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// Line, starting at 1.
    pub line: usize,
    /// Column, starting at 1.
    pub column: usize,
}

/// One problem in a workflow definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Stable kind of the problem.
    pub code: ProblemCode,
    /// 1-based line in the YAML file, when known.
    pub line: Option<usize>,
    /// 1-based column in the YAML file, when known.
    pub column: Option<usize>,
    /// Name of the task at fault, when the problem belongs to a named task.
    pub task: Option<String>,
    /// Field (YAML key) at fault, when there is one.
    pub field: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Problem {
    /// A problem without position, task or field.
    pub fn new(code: ProblemCode, message: impl Into<String>) -> Self {
        Problem {
            code,
            line: None,
            column: None,
            task: None,
            field: None,
            message: message.into(),
        }
    }

    /// Sets the position (when known).
    pub fn at(mut self, pos: Option<Pos>) -> Self {
        if let Some(p) = pos {
            self.line = Some(p.line);
            self.column = Some(p.column);
        }
        self
    }

    /// Sets the task name (when known).
    pub fn task(mut self, task: Option<&str>) -> Self {
        self.task = task.map(str::to_string);
        self
    }

    /// Sets the field name.
    pub fn field(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }

    /// Writes the problem as `origin:line:col: task "t": message`.
    pub fn render(&self, origin: &str, f: &mut impl fmt::Write) -> fmt::Result {
        f.write_str(origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(task) = &self.task {
            write!(f, "task {task:?}: ")?;
        }
        write!(f, "{} [{}]", self.message, self.code)
    }
}

/// Every problem found in one workflow definition.
///
/// `Display` prints a summary line starting with the stable code
/// `ORCA-WORKFLOW-INVALID`, then one line per problem, e.g.
/// `quickstart.yaml:12:5: task "train": unknown dependency "prepar" (did you mean "prepare"?) [ORCA-WORKFLOW-UNKNOWN-DEPENDENCY]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct WorkflowError {
    /// Where the definition came from: a file path, or `workflow "name"`.
    pub origin: String,
    /// The problems, in file order (problems without a line come last).
    pub problems: Vec<Problem>,
}

impl WorkflowError {
    /// Stable code of the error as a whole.
    pub const CODE: &'static str = "ORCA-WORKFLOW-INVALID";

    /// Builds an error, ordering problems by position (stable otherwise).
    pub fn new(origin: impl Into<String>, mut problems: Vec<Problem>) -> Self {
        problems.sort_by_key(|p| (p.line.unwrap_or(usize::MAX), p.column.unwrap_or(0)));
        WorkflowError {
            origin: origin.into(),
            problems,
        }
    }

    /// True when some problem has the given code.
    pub fn has(&self, code: ProblemCode) -> bool {
        self.problems.iter().any(|p| p.code == code)
    }
}

impl fmt::Display for WorkflowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{}: {} has {n} problem{}",
            Self::CODE,
            self.origin,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            f.write_str("\n")?;
            p.render(&self.origin, f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_summary_then_one_line_per_problem_in_file_order() {
        let err = WorkflowError::new(
            "quickstart.yaml",
            vec![
                Problem::new(ProblemCode::NoTasks, "no tasks"),
                Problem::new(
                    ProblemCode::UnknownDependency,
                    "unknown dependency \"prepar\" (did you mean \"prepare\"?)",
                )
                .at(Some(Pos {
                    line: 12,
                    column: 5,
                }))
                .task(Some("train")),
            ],
        );
        let text = err.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "ORCA-WORKFLOW-INVALID: quickstart.yaml has 2 problems"
        );
        assert_eq!(
            lines[1],
            "quickstart.yaml:12:5: task \"train\": unknown dependency \"prepar\" (did you mean \"prepare\"?) [ORCA-WORKFLOW-UNKNOWN-DEPENDENCY]"
        );
        assert_eq!(
            lines[2],
            "quickstart.yaml: no tasks [ORCA-WORKFLOW-NO-TASKS]"
        );
    }
}
