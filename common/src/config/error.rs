//! Configuration errors and where a value came from.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSource {
    /// The built-in default.
    Default,
    /// The TOML file; `line` is 1-based when known.
    File {
        /// The file as given with `--config`.
        path: PathBuf,
        /// Line of the key in the file.
        line: Option<usize>,
    },
    /// An `ORCA_<SECTION>__<KEY>` environment variable.
    Env {
        /// The variable's name.
        var: String,
    },
    /// A `key=value` override (`--set`).
    Override {
        /// The override as given.
        text: String,
    },
}

impl ValueSource {
    /// Short label as `orca config check` prints it: `default`,
    /// `file orca.toml`, `env ORCA_MASTER__LISTEN`, `override`.
    pub fn label(&self) -> String {
        match self {
            ValueSource::Default => "default".into(),
            ValueSource::File { path, .. } => format!("file {}", path.display()),
            ValueSource::Env { var } => format!("env {var}"),
            ValueSource::Override { .. } => "override".into(),
        }
    }
}

/// Long form for error messages: names the file and line, the variable or
/// the override text.
impl fmt::Display for ValueSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueSource::Default => f.write_str("the built-in default"),
            ValueSource::File {
                path,
                line: Some(line),
            } => write!(f, "file {} line {line}", path.display()),
            ValueSource::File { path, line: None } => write!(f, "file {}", path.display()),
            ValueSource::Env { var } => write!(f, "environment variable {var}"),
            ValueSource::Override { text } => write!(f, "override `{text}`"),
        }
    }
}

/// One semantic problem found by [`super::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted key, e.g. `registry.fence_margin`.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
    /// Where the key's value came from, when known ([`super::check`]).
    pub origin: Option<ValueSource>,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Some(origin) => write!(f, "{} (from {origin}): {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// Errors of loading or validating the configuration. Each message starts
/// with a stable `ORCA-CONFIG-…` code ([`ConfigError::code`]).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The `--config` file cannot be read.
    #[error(
        "ORCA-CONFIG-READ: cannot read config file {path} (given with --config): {error}; check the path and its permissions"
    )]
    Read {
        /// The file as given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        error: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("ORCA-CONFIG-PARSE: config file {path} line {line}, column {column}: {message}")]
    Parse {
        /// The file as given.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A key that no section has (typos are never ignored).
    #[error("ORCA-CONFIG-UNKNOWN-KEY: unknown key `{key}` in {origin}; {}", unknown_key_hint(.origin, .suggestion.as_deref()))]
    UnknownKey {
        /// The key as understood, dotted (`master.listn`).
        key: String,
        /// Where it was given.
        origin: ValueSource,
        /// The closest known dotted key, if one is close.
        suggestion: Option<String>,
    },
    /// A value of the wrong type or format (`slots = "many"`, `"10x"`).
    #[error("ORCA-CONFIG-INVALID-VALUE: `{key}` from {origin}: {message}")]
    InvalidValue {
        /// Dotted key.
        key: String,
        /// Where the value was given.
        origin: ValueSource,
        /// What is wrong, with the expected form.
        message: String,
    },
    /// An override that is not `key=value`.
    #[error(
        "ORCA-CONFIG-OVERRIDE-SYNTAX: override `{text}` is not `section.key=value` (e.g. master.listen=0.0.0.0:5678)"
    )]
    OverrideSyntax {
        /// The override as given.
        text: String,
    },
    /// Semantic problems found by [`super::validate`]; all are listed.
    #[error("ORCA-CONFIG-INVALID: {}", list_problems(.problems))]
    Invalid {
        /// Every problem found.
        problems: Vec<ConfigProblem>,
    },
    /// The built-in schema could not be built (a bug, not a user error).
    #[error("ORCA-CONFIG-INTERNAL: {message}")]
    Internal {
        /// What failed.
        message: String,
    },
}

impl ConfigError {
    /// The stable code, e.g. `ORCA-CONFIG-UNKNOWN-KEY`.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } => "ORCA-CONFIG-READ",
            ConfigError::Parse { .. } => "ORCA-CONFIG-PARSE",
            ConfigError::UnknownKey { .. } => "ORCA-CONFIG-UNKNOWN-KEY",
            ConfigError::InvalidValue { .. } => "ORCA-CONFIG-INVALID-VALUE",
            ConfigError::OverrideSyntax { .. } => "ORCA-CONFIG-OVERRIDE-SYNTAX",
            ConfigError::Invalid { .. } => "ORCA-CONFIG-INVALID",
            ConfigError::Internal { .. } => "ORCA-CONFIG-INTERNAL",
        }
    }
}

fn unknown_key_hint(origin: &ValueSource, suggestion: Option<&str>) -> String {
    match (suggestion, origin) {
        (Some(key), ValueSource::Env { .. }) => {
            format!("did you mean {}?", super::env_var_name(key))
        }
        (Some(key), ValueSource::File { .. }) => match key.split_once('.') {
            Some((section, leaf)) => format!("did you mean `{leaf}` in [{section}] ({key})?"),
            None => format!("did you mean [{key}]?"),
        },
        (Some(key), _) => format!("did you mean `{key}`?"),
        (None, _) => "see docs/CONFIG.md for every known key".into(),
    }
}

fn list_problems(problems: &[ConfigProblem]) -> String {
    match problems {
        [one] => one.to_string(),
        many => {
            let mut out = format!("{} problems:", many.len());
            for problem in many {
                out.push_str("\n  - ");
                out.push_str(&problem.to_string());
            }
            out
        }
    }
}
