//! Importing workflows from DolphinScheduler: its JSON export (3.x) and
//! pydolphinscheduler YAML files, converted into [`WorkflowSpec`]s that pass
//! [`crate::workflow::validate_spec`].
//!
//! Entry points: [`import_dolphinscheduler_json`] and
//! [`import_pydolphinscheduler_yaml`]; both return [`Imported`], the specs
//! plus [`ImportWarning`]s for settings Orca does not keep (yet).
//!
//! Architecture invariant: an import is all or nothing. Anything that
//! would change what runs (a task type Orca cannot run, a relation to a
//! missing task, a cycle) refuses the whole import with an [`ImportError`]
//! listing every problem; only settings whose loss is visible and harmless
//! to the DAG (alerts, schedule time zone, tenants...) become warnings.
//! Scripts are kept verbatim: DolphinScheduler's `${name}`, `$[yyyyMMdd-1]`
//! and `${setValue(...)}` syntax is Orca's too. Knows nothing of HTTP.

mod dolphin;
mod dolphin_task;
mod error;
mod json;
mod pydolphin;
mod settings;

use std::fmt;
use std::path::Path;

pub use error::{ImportError, ImportProblem, ImportProblemKind};

use crate::model::WorkflowSpec;

/// The result of an import: valid specs, and what was not carried over.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The workflows, in the order of the source.
    pub workflows: Vec<WorkflowSpec>,
    /// Settings that were dropped or changed, for the user to review.
    pub warnings: Vec<ImportWarning>,
}

/// A setting of the source that Orca did not import as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportWarning {
    /// Name of the workflow it belongs to.
    pub workflow: String,
    /// Name of the task, when it is a task setting.
    pub task: Option<String>,
    /// The setting (as the source spells it), what happened to it, and what
    /// to do about it.
    pub message: String,
}

impl fmt::Display for ImportWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "workflow {:?}: ", self.workflow)?;
        if let Some(t) = &self.task {
            write!(f, "task {t:?}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Converts a DolphinScheduler 3.x JSON export: an array of objects each
/// with `processDefinition` (or `workflowDefinition` in 3.2+),
/// `processTaskRelationList` (or `workflowTaskRelationList`),
/// `taskDefinitionList` and `schedule` (may be null). Every workflow goes
/// into `project`.
///
/// Fails, importing nothing, when the text is not JSON or any workflow has
/// a problem; the error lists them all (every unsupported task at once).
pub fn import_dolphinscheduler_json(json: &str, project: &str) -> Result<Imported, ImportError> {
    dolphin::import(json, project)
}

/// Reads a pydolphinscheduler YAML file (the format
/// [`crate::workflow::parse_workflow_str`] reads; `origin` names it in
/// messages, `$FILE{...}` paths are relative to `base_dir`), returned in the
/// same shape as a JSON import. Keys Orca accepts but does not use yet
/// (schedule start/end/time zone, tenant, disabled tasks...) become warnings.
pub fn import_pydolphinscheduler_yaml(
    yaml: &str,
    origin: &str,
    base_dir: &Path,
) -> Result<Imported, ImportError> {
    let spec =
        crate::workflow::parse_workflow_str(yaml, origin, base_dir).map_err(ImportError::Yaml)?;
    let warnings = pydolphin::warnings(yaml, &spec);
    Ok(Imported {
        workflows: vec![spec],
        warnings,
    })
}
