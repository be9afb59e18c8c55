//! Workflow files: YAML parsing (pydolphinscheduler's format), `$FILE` /
//! `$ENV` placeholders, validation that reports every problem at once, and
//! the task [`dag`].
//!
//! Entry points: [`parse_workflow_file`], [`parse_workflow_str`] and, for
//! specs that arrive as JSON, [`validate_spec`].
//!
//! Architecture invariant: this module only reads the files it is pointed
//! at (the workflow file and its `$FILE` references) and the process
//! environment; it resolves no `${...}` parameter references (that is
//! `crate::params`' job) and knows nothing of storage or transport.

pub mod dag;
mod error;
pub mod import;
mod node;
mod placeholder;
mod reader;
mod task;
mod validate;
pub mod values;
mod yaml;

use std::path::Path;

pub use error::{Pos, Problem, ProblemCode, WorkflowError};
pub use validate::{is_resource_name, validate_spec};

use crate::model::WorkflowSpec;

/// Reads and validates a workflow file. `$FILE{"..."}` paths are relative
/// to the file's directory; messages name the file as `path` is written.
pub fn parse_workflow_file(path: &Path) -> Result<WorkflowSpec, WorkflowError> {
    let origin = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|e| {
        WorkflowError::new(
            origin.clone(),
            vec![Problem::new(
                ProblemCode::Read,
                format!("cannot read the workflow file: {e}; check the path and permissions"),
            )],
        )
    })?;
    let base_dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    parse_workflow_str(&source, &origin, base_dir)
}

/// Parses and validates workflow YAML text. `origin` names the source in
/// messages (usually the file name); `$FILE{"..."}` paths are relative to
/// `base_dir`.
pub fn parse_workflow_str(
    source: &str,
    origin: &str,
    base_dir: &Path,
) -> Result<WorkflowSpec, WorkflowError> {
    yaml::parse_with(source, origin, base_dir, &placeholder::System)
}
