//! The layering: defaults → file → `ORCA_<SECTION>__<KEY>` → overrides,
//! keeping where every key's value came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::OrcaConfig;
use super::error::{ConfigError, ValueSource};

/// Prefix of configuration environment variables.
const ENV_PREFIX: &str = "ORCA_";

/// Where to read the configuration from, besides defaults and environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSources {
    /// The TOML file given with `--config`, if any.
    pub file: Option<PathBuf>,
    /// `section.key=value` overrides, applied last in order (later wins).
    pub overrides: Vec<String>,
}

/// One key of the effective configuration and where its value came from,
/// as `orca config check` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveValue {
    /// Dotted key, e.g. `master.listen`.
    pub key: String,
    /// The effective value in TOML syntax (strings quoted, durations
    /// normalised, the password of `store.url` masked as `***`).
    pub value: String,
    /// `default`, `file PATH`, `env ORCA_…` or `override`.
    pub source: String,
}

/// A loaded configuration with the origin of every key.
pub(super) struct Loaded {
    pub config: OrcaConfig,
    pub origins: BTreeMap<String, ValueSource>,
}

/// Name of the environment variable of a dotted key:
/// `master.listen` → `ORCA_MASTER__LISTEN`.
pub fn env_var_name(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.replace('.', "__").to_ascii_uppercase()
    )
}

/// Loads the configuration from defaults, `sources.file`, the process's
/// `ORCA_<SECTION>__<KEY>` variables and `sources.overrides`. Does not run
/// the semantic checks of [`super::validate`].
pub fn load(sources: &ConfigSources) -> Result<OrcaConfig, ConfigError> {
    load_with_env(sources, &process_env()?)
}

/// [`load`] with the given environment instead of the process's (for tests
/// and embedding). Variables not starting with `ORCA_` are ignored.
pub fn load_with_env(
    sources: &ConfigSources,
    env: &[(String, String)],
) -> Result<OrcaConfig, ConfigError> {
    Ok(load_detailed(sources, env)?.config)
}

/// Every key of the effective configuration with its value and source, in
/// declaration order (reads the process environment).
pub fn explain(sources: &ConfigSources) -> Result<Vec<EffectiveValue>, ConfigError> {
    explain_with_env(sources, &process_env()?)
}

/// [`explain`] with the given environment instead of the process's.
pub fn explain_with_env(
    sources: &ConfigSources,
    env: &[(String, String)],
) -> Result<Vec<EffectiveValue>, ConfigError> {
    let loaded = load_detailed(sources, env)?;
    let effective = to_table(&loaded.config)?;
    let mut out = Vec::new();
    for (section, values) in &effective {
        let Value::Table(values) = values else {
            continue;
        };
        for (key, value) in values {
            let dotted = format!("{section}.{key}");
            let value = match (dotted.as_str(), value) {
                ("store.url", Value::String(url)) => Value::String(mask_password(url)),
                ("log_store.s3_secret_access_key", Value::String(secret)) if !secret.is_empty() => {
                    Value::String("***".into())
                }
                _ => value.clone(),
            };
            let source = loaded
                .origins
                .get(&dotted)
                .map_or_else(|| "default".to_string(), ValueSource::label);
            out.push(EffectiveValue {
                key: dotted,
                value: value.to_string(),
                source,
            });
        }
    }
    Ok(out)
}

/// Every dotted key of the schema, in declaration order.
pub(super) fn known_keys() -> Result<Vec<String>, ConfigError> {
    let schema = to_table(&OrcaConfig::default())?;
    Ok(keys_of(&schema))
}

pub(super) fn load_detailed(
    sources: &ConfigSources,
    env: &[(String, String)],
) -> Result<Loaded, ConfigError> {
    let schema = to_table(&OrcaConfig::default())?;
    let mut layers = Layers {
        known: keys_of(&schema),
        merged: schema.clone(),
        schema,
        origins: BTreeMap::new(),
    };
    if let Some(path) = &sources.file {
        layers.apply_file(path)?;
    }
    layers.apply_env(env)?;
    for text in &sources.overrides {
        let (key, value) = text
            .split_once('=')
            .filter(|(key, _)| !key.trim().is_empty())
            .ok_or_else(|| ConfigError::OverrideSyntax { text: text.clone() })?;
        let origin = ValueSource::Override { text: text.clone() };
        layers.set_text(key.trim(), value, origin)?;
    }
    let Layers {
        merged,
        origins,
        schema,
        ..
    } = layers;
    let config: OrcaConfig =
        serde_path_to_error::deserialize(Value::Table(merged)).map_err(|err| {
            let key = dotted_path(err.path());
            let origin = origins.get(&key).cloned().unwrap_or(ValueSource::Default);
            let mut message = err.inner().message().trim().to_string();
            if let Some(hint) = type_hint(&schema, &key) {
                message.push_str("; ");
                message.push_str(hint);
            }
            ConfigError::InvalidValue {
                key,
                origin,
                message,
            }
        })?;
    Ok(Loaded { config, origins })
}

struct Layers {
    /// The defaults, which also give every key's type.
    schema: Table,
    known: Vec<String>,
    merged: Table,
    origins: BTreeMap<String, ValueSource>,
}

impl Layers {
    fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let table: Table = text.parse().map_err(|err: toml::de::Error| {
            let (line, column) = err
                .span()
                .map_or((1, 1), |span| line_column(&text, span.start));
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: err.message().trim().to_string(),
            }
        })?;
        let lines = key_lines(&text);
        let origin = |key: &str| ValueSource::File {
            path: path.to_path_buf(),
            line: lines.get(key).copied(),
        };
        for (section, value) in table {
            let Some(Value::Table(target)) = self.merged.get_mut(&section) else {
                return Err(self.unknown(&section, origin(&section)));
            };
            let Value::Table(entries) = value else {
                return Err(ConfigError::InvalidValue {
                    origin: origin(&section),
                    message: format!(
                        "`{section}` is a section: write `[{section}]` on its own line and its keys below it"
                    ),
                    key: section,
                });
            };
            for (key, value) in entries {
                let dotted = format!("{section}.{key}");
                if !target.contains_key(&key) {
                    return Err(self.unknown(&dotted, origin(&dotted)));
                }
                target.insert(key, value);
                self.origins.insert(dotted.clone(), origin(&dotted));
            }
        }
        Ok(())
    }

    fn apply_env(&mut self, env: &[(String, String)]) -> Result<(), ConfigError> {
        let mut vars: Vec<&(String, String)> = env
            .iter()
            .filter(|(name, _)| name.starts_with(ENV_PREFIX))
            .collect();
        vars.sort();
        for (name, value) in vars {
            let rest = &name[ENV_PREFIX.len()..];
            let origin = ValueSource::Env { var: name.clone() };
            if let Some((section, key)) = rest.split_once("__") {
                let dotted = format!(
                    "{}.{}",
                    section.to_ascii_lowercase(),
                    key.to_ascii_lowercase()
                );
                self.set_text(&dotted, value, origin)?;
            } else if let Some(suggestion) = self.single_underscore_typo(rest) {
                // `ORCA_WORKER_SLOTS`: a config key with `_` for `__`.
                return Err(ConfigError::UnknownKey {
                    key: rest.to_ascii_lowercase(),
                    origin,
                    suggestion: Some(suggestion),
                });
            }
            // Other ORCA_ variables (ORCA_SERVER, ORCA_TOKEN, ...) belong to
            // the CLI, not to this configuration.
        }
        Ok(())
    }

    /// Sets a dotted key from text (an environment variable or override),
    /// typed after the key's default: numbers and booleans are parsed, lists
    /// are comma-separated (or a TOML array `[...]`).
    fn set_text(
        &mut self,
        dotted: &str,
        text: &str,
        origin: ValueSource,
    ) -> Result<(), ConfigError> {
        let default = dotted
            .split_once('.')
            .and_then(|(section, key)| Some((section, key, self.schema.get(section)?)))
            .and_then(|(section, key, table)| Some((section, key, table.get(key)?)));
        let Some((section, key, default)) = default else {
            return Err(self.unknown(dotted, origin));
        };
        let value =
            typed_value(default, text.trim()).map_err(|message| ConfigError::InvalidValue {
                key: dotted.to_string(),
                origin: origin.clone(),
                message,
            })?;
        if let Some(Value::Table(target)) = self.merged.get_mut(section) {
            target.insert(key.to_string(), value);
        }
        self.origins.insert(dotted.to_string(), origin);
        Ok(())
    }

    fn unknown(&self, key: &str, origin: ValueSource) -> ConfigError {
        ConfigError::UnknownKey {
            key: key.to_string(),
            suggestion: suggest(key, &self.known),
            origin,
        }
    }

    /// `worker_slots` → `worker.slots` when that is (close to) a known key.
    fn single_underscore_typo(&self, rest: &str) -> Option<String> {
        let lower = rest.to_ascii_lowercase();
        self.schema.keys().find_map(|section| {
            let key = lower.strip_prefix(section.as_str())?.strip_prefix('_')?;
            suggest(&format!("{section}.{key}"), &self.known)
        })
    }
}

/// How to write a value of the key's type, added to a type error.
fn type_hint(schema: &Table, dotted: &str) -> Option<&'static str> {
    let (section, key) = dotted.split_once('.')?;
    match schema.get(section)?.get(key)? {
        Value::Integer(_) => Some("write a whole number without quotes, e.g. 8"),
        Value::Array(_) => Some("write a list, e.g. [\"a\", \"b\"]"),
        Value::String(s) if s.parse::<std::net::SocketAddr>().is_ok() => {
            Some("write IP:PORT, e.g. \"0.0.0.0:5678\" (host names are not accepted here)")
        }
        _ => None,
    }
}

fn typed_value(default: &Value, text: &str) -> Result<Value, String> {
    // A value that does not parse as the expected type stays a string, so
    // deserialization reports the type mismatch with the key and source.
    let value = match default {
        Value::Integer(_) => text
            .parse::<i64>()
            .map_or_else(|_| Value::String(text.into()), Value::Integer),
        Value::Float(_) => text
            .parse::<f64>()
            .map_or_else(|_| Value::String(text.into()), Value::Float),
        Value::Boolean(_) => text
            .parse::<bool>()
            .map_or_else(|_| Value::String(text.into()), Value::Boolean),
        Value::Array(_) if text.starts_with('[') => text
            .parse::<Value>()
            .map_err(|err| format!("`{text}` is not a TOML array: {}", err.message().trim()))?,
        Value::Array(_) => Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| Value::String(item.into()))
                .collect(),
        ),
        _ => Value::String(text.into()),
    };
    Ok(value)
}

/// The closest known key to `unknown`: a near-exact typo first, then the
/// same key name in another section, then a looser match.
pub(super) fn suggest(unknown: &str, known: &[String]) -> Option<String> {
    let unknown = unknown.replace("__", ".").to_ascii_lowercase();
    let sections = known
        .iter()
        .filter_map(|key| key.split_once('.').map(|(s, _)| s));
    let mut candidates: Vec<&str> = known.iter().map(String::as_str).collect();
    for section in sections {
        if !candidates.contains(&section) {
            candidates.push(section);
        }
    }
    let best = candidates
        .iter()
        .map(|c| (strsim::normalized_damerau_levenshtein(&unknown, c), *c))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((score, key)) = best
        && score >= 0.8
    {
        return Some(key.to_string());
    }
    let leaf = unknown.rsplit('.').next().unwrap_or(&unknown);
    if let Some(key) = known.iter().find(|k| k.rsplit('.').next() == Some(leaf)) {
        return Some(key.clone());
    }
    best.filter(|(score, _)| *score >= 0.6)
        .map(|(_, key)| key.to_string())
}

fn to_table(config: &OrcaConfig) -> Result<Table, ConfigError> {
    match Value::try_from(config) {
        Ok(Value::Table(table)) => Ok(table),
        Ok(other) => Err(ConfigError::Internal {
            message: format!("defaults serialise to a {}, not a table", other.type_str()),
        }),
        Err(err) => Err(ConfigError::Internal {
            message: format!("cannot serialise the configuration: {err}"),
        }),
    }
}

fn keys_of(schema: &Table) -> Vec<String> {
    let mut keys = Vec::new();
    for (section, values) in schema {
        if let Value::Table(values) = values {
            keys.extend(values.keys().map(|key| format!("{section}.{key}")));
        }
    }
    keys
}

/// `master.listen` from a serde path (array indexes dropped).
fn dotted_path(path: &serde_path_to_error::Path) -> String {
    path.iter()
        .filter_map(|segment| match segment {
            serde_path_to_error::Segment::Map { key } => Some(key.as_str()),
            _ => None,
        })
        .take(2)
        .collect::<Vec<_>>()
        .join(".")
}

/// 1-based line of every section and `section.key` in a TOML text.
fn key_lines(text: &str) -> BTreeMap<String, usize> {
    let mut lines = BTreeMap::new();
    let Ok(root) = toml::de::DeTable::parse(text) else {
        return lines;
    };
    for (section, value) in root.get_ref() {
        let section_name = section.get_ref().to_string();
        lines.insert(
            section_name.clone(),
            line_column(text, section.span().start).0,
        );
        if let Some(entries) = value.get_ref().as_table() {
            for (key, _) in entries {
                let dotted = format!("{section_name}.{}", key.get_ref());
                lines.insert(dotted, line_column(text, key.span().start).0);
            }
        }
    }
    lines
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

/// `postgres://orca:secret@host/db` → `postgres://orca:***@host/db`.
pub(super) fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_string(),
    }
}

pub(super) fn process_env() -> Result<Vec<(String, String)>, ConfigError> {
    let mut env = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|n| n.starts_with(ENV_PREFIX)) else {
            continue;
        };
        let value = value.into_string().map_err(|_| ConfigError::InvalidValue {
            key: name[ENV_PREFIX.len()..]
                .replace("__", ".")
                .to_ascii_lowercase(),
            origin: ValueSource::Env {
                var: name.to_string(),
            },
            message: "the value is not valid UTF-8".into(),
        })?;
        env.push((name.to_string(), value));
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_only_the_password() {
        assert_eq!(
            mask_password("postgres://orca:secret@db:5432/orca"),
            "postgres://orca:***@db:5432/orca"
        );
        assert_eq!(
            mask_password("postgres://orca@db/orca"),
            "postgres://orca@db/orca"
        );
        assert_eq!(
            mask_password("sqlite:///var/a@b/orca.db?mode=rwc"),
            "sqlite:///var/a@b/orca.db?mode=rwc"
        );
    }

    #[test]
    fn line_and_column_are_one_based() {
        assert_eq!(line_column("a\nbc\n", 3), (2, 2));
        assert_eq!(line_column("abc", 0), (1, 1));
    }

    #[test]
    fn suggestions() {
        let known = known_keys().unwrap();
        assert_eq!(
            suggest("master.listn", &known).as_deref(),
            Some("master.listen")
        );
        assert_eq!(suggest("mastr", &known).as_deref(), Some("master"));
        assert_eq!(
            suggest("master.slots", &known).as_deref(),
            Some("worker.slots")
        );
        assert_eq!(suggest("zzz.qqq", &known), None);
    }
}
