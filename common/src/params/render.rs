//! What rendering produces, and the parameter table shared by the SHELL and
//! PYTHON renderers: environment names and which values may be inlined.

use std::collections::HashMap;

use super::error::ParamError;
use super::resolve::ResolvedParam;

/// A task's text after parameter substitution, plus the environment the
/// worker must set when running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The script to run.
    pub script: String,
    /// Environment variables to add, one per distinct parameter name.
    pub env: Vec<(String, String)>,
}

/// Prefix of the environment names given to parameters whose own name cannot
/// (or must not) be an environment variable.
pub const GENERATED_ENV_PREFIX: &str = "ORCA_P_";

/// Environment names a parameter must never take over: they change how the
/// shell, the dynamic loader or an interpreter starts (code execution via
/// `BASH_ENV`, `LD_PRELOAD`, `PYTHONSTARTUP`, …) or the worker's own basics.
const RESERVED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "IFS",
    "ENV",
    "SHELL",
    "SHELLOPTS",
    "PS1",
    "PS2",
    "PS3",
    "PS4",
    "PROMPT_COMMAND",
    "CDPATH",
    "GLOBIGNORE",
    "PWD",
    "OLDPWD",
    "USER",
    "TMPDIR",
    "PERL5OPT",
    "PERL5LIB",
    "RUBYOPT",
    "NODE_OPTIONS",
    "GCONV_PATH",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "RES_OPTIONS",
    "INPUTRC",
];
const RESERVED_ENV_PREFIXES: &[&str] = &["BASH", "LD_", "DYLD_", "PYTHON", "ORCA_", "CONDA"];

/// True for names usable as-is as a shell variable: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_shell_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_reserved_env(name: &str) -> bool {
    RESERVED_ENV.contains(&name) || RESERVED_ENV_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// True when a generated value can be pasted into shell text unquoted without
/// being split, globbed or expanded.
fn is_shell_inert(value: &str) -> bool {
    value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.:/+=@%-".contains(c))
}

/// One parameter as the renderers see it.
pub(crate) struct Entry<'p> {
    pub(crate) value: &'p str,
    /// Environment name (`name` itself, or `ORCA_P_<n>`).
    pub(crate) env: String,
    /// The value may be pasted into shell text as-is.
    pub(crate) shell_inline: bool,
}

/// Parameters by name; the last of duplicate names wins.
pub(crate) struct ParamTable<'p> {
    by_name: HashMap<&'p str, Entry<'p>>,
    order: Vec<&'p str>,
}

impl<'p> ParamTable<'p> {
    pub(crate) fn new(params: &'p [ResolvedParam]) -> Result<Self, ParamError> {
        let mut by_name = HashMap::with_capacity(params.len());
        let mut order = Vec::with_capacity(params.len());
        for (n, p) in params.iter().enumerate() {
            if p.value.contains('\0') {
                return Err(ParamError::NulByte {
                    param: p.name.clone(),
                });
            }
            let env = if is_shell_identifier(&p.name) && !is_reserved_env(&p.name) {
                p.name.clone()
            } else {
                format!("{GENERATED_ENV_PREFIX}{n}")
            };
            let entry = Entry {
                value: &p.value,
                env,
                shell_inline: p.generated && is_shell_inert(&p.value),
            };
            if by_name.insert(p.name.as_str(), entry).is_none() {
                order.push(p.name.as_str());
            }
        }
        Ok(ParamTable { by_name, order })
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Entry<'p>> {
        self.by_name.get(name)
    }

    /// The environment: every parameter under its environment name.
    pub(crate) fn env(&self) -> Vec<(String, String)> {
        self.order
            .iter()
            .filter_map(|n| self.by_name.get(n))
            .map(|e| (e.env.clone(), e.value.to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_reserved_names() {
        assert!(is_shell_identifier("_a1"));
        assert!(!is_shell_identifier("1a"));
        assert!(!is_shell_identifier("a.b"));
        assert!(!is_shell_identifier(""));
        assert!(is_reserved_env("BASH_ENV"));
        assert!(is_reserved_env("LD_PRELOAD"));
        assert!(is_reserved_env("ORCA_P_1"));
        assert!(!is_reserved_env("path"));
    }

    #[test]
    fn inert_values_exclude_shell_syntax() {
        assert!(is_shell_inert("2024-01-31"));
        assert!(is_shell_inert("/data/run_1/x.csv"));
        for bad in [
            "a b", "$(x)", "`x`", "a;b", "~", "*", "a,b", "{a}", "'", "\"", "\n",
        ] {
            assert!(!is_shell_inert(bad), "{bad:?}");
        }
    }
}
