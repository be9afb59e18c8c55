//! DolphinScheduler-compatible task parameters.
//!
//! - [`resolve`]: the values one task attempt sees (precedence, `${..}`
//!   references between values, `$[...]` time expressions, `system.*`).
//! - [`eval_time_expr`]: one `$[...]` expression.
//! - [`render_shell`] / [`render_python`]: a task's text plus the environment
//!   to run it with. Architecture invariant: user-provided values never
//!   become shell code; in Python they only ever appear inside escaped string
//!   literals or as plain number/boolean literals.
//! - [`parse_set_values`]: `${setValue(k=v)}` / `#{setValue(k=v)}` lines a
//!   task prints to publish OUT parameters.

mod datefmt;
mod error;
mod python;
mod render;
mod resolve;
mod scan;
mod setvalue;
mod shell;
mod time;

pub use error::{ParamError, PatternProblem};
pub use python::render_python;
pub use render::{GENERATED_ENV_PREFIX, Rendered, is_shell_identifier};
pub use resolve::{
    MAX_VALUE_LEN, ResolveInput, ResolvedParam, SYSTEM_BIZ_CURDATE, SYSTEM_BIZ_DATE,
    SYSTEM_DATETIME, SYSTEM_TASK_EXECUTE_PATH, SYSTEM_TASK_INSTANCE_ID,
    SYSTEM_WORKFLOW_INSTANCE_ID, SystemContext, resolve,
};
pub use setvalue::parse_set_values;
pub use shell::render_shell;
pub use time::eval_time_expr;
