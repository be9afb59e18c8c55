//! `$FILE{"path"}` and `$ENV{VAR}` placeholders, expanded in string values
//! before their meaning is read (as pydolphinscheduler does).
//!
//! `$FILE` runs first, so a loaded file may itself use `$ENV`. `${...}`
//! parameter references and `$WORKFLOW{...}` are left untouched.

use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;

static FILE_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"\$FILE\{\s*"([^"]*)"\s*\}"#).expect("static regex is valid"));
static ENV_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\$ENV\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}").expect("static regex is valid")
});

/// Where placeholders look things up.
pub(crate) trait Lookup {
    /// Reads a file for `$FILE` (already resolved against the base dir).
    fn read_file(&self, path: &Path) -> std::io::Result<String>;
    /// Reads an environment variable for `$ENV`.
    fn env(&self, name: &str) -> Option<String>;
}

/// The real file system and process environment.
pub(crate) struct System;

impl Lookup for System {
    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Expands placeholders in `text`; `Ok(None)` when there are none.
/// On failure returns one message per bad placeholder.
pub(crate) fn expand(
    text: &str,
    base_dir: &Path,
    lookup: &dyn Lookup,
) -> Result<Option<String>, Vec<String>> {
    if !text.contains("$FILE") && !text.contains("$ENV") {
        return Ok(None);
    }
    let mut errors = Vec::new();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for caps in FILE_RE.captures_iter(text) {
        let (Some(whole), Some(rel)) = (caps.get(0), caps.get(1)) else {
            continue;
        };
        out.push_str(&text[last..whole.start()]);
        last = whole.end();
        let path = base_dir.join(rel.as_str());
        match lookup.read_file(&path) {
            Ok(content) => out.push_str(&content),
            Err(e) => errors.push(format!(
                "$FILE{{{:?}}}: cannot read {} ({e}); the path is relative to the workflow file's directory",
                rel.as_str(),
                path.display()
            )),
        }
    }
    out.push_str(&text[last..]);
    if FILE_RE.replace_all(text, "").contains("$FILE{") {
        errors.push(
            "malformed $FILE placeholder; write $FILE{\"relative/path\"} with the path in double quotes"
                .to_string(),
        );
    }

    let mut expanded = String::with_capacity(out.len());
    let mut last = 0;
    for caps in ENV_RE.captures_iter(&out) {
        let (Some(whole), Some(name)) = (caps.get(0), caps.get(1)) else {
            continue;
        };
        expanded.push_str(&out[last..whole.start()]);
        last = whole.end();
        match lookup.env(name.as_str()) {
            Some(v) => expanded.push_str(&v),
            None => errors.push(format!(
                "$ENV{{{0}}}: environment variable {0} is not set; set it before submitting",
                name.as_str()
            )),
        }
    }
    expanded.push_str(&out[last..]);
    if ENV_RE.replace_all(&out, "").contains("$ENV{") {
        errors
            .push("malformed $ENV placeholder; write $ENV{NAME} with a variable name".to_string());
    }

    if errors.is_empty() {
        Ok(Some(expanded))
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::PathBuf;

    struct Fake {
        files: HashMap<PathBuf, String>,
        env: HashMap<String, String>,
    }

    impl Lookup for Fake {
        fn read_file(&self, path: &Path) -> std::io::Result<String> {
            self.files
                .get(path)
                .cloned()
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        }
        fn env(&self, name: &str) -> Option<String> {
            self.env.get(name).cloned()
        }
    }

    fn fake() -> Fake {
        Fake {
            files: [(
                PathBuf::from("/wf/s.py"),
                "print('$ENV{WHO}')\n".to_string(),
            )]
            .into(),
            env: [("WHO".to_string(), "orca".to_string())].into(),
        }
    }

    #[test]
    fn file_is_relative_to_base_and_env_applies_inside_it() {
        let got = expand("$FILE{\"s.py\"}", Path::new("/wf"), &fake()).unwrap();
        assert_eq!(got.as_deref(), Some("print('orca')\n"));
    }

    #[test]
    fn parameter_references_and_workflow_refs_stay() {
        let f = fake();
        assert_eq!(
            expand("echo ${dt} $WORKFLOW{\"x.yaml\"}", Path::new("/"), &f),
            Ok(None)
        );
        let got = expand("echo ${dt} $ENV{WHO}", Path::new("/"), &f).unwrap();
        assert_eq!(got.as_deref(), Some("echo ${dt} orca"));
    }

    #[test]
    fn every_bad_placeholder_is_reported() {
        let errs = expand(
            "$FILE{\"nope.py\"} $ENV{UNSET_X} $ENV{}",
            Path::new("/wf"),
            &fake(),
        )
        .unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].contains("nope.py") && errs[0].contains("/wf/nope.py"));
        assert!(errs[1].contains("UNSET_X is not set"));
        assert!(errs[2].contains("malformed $ENV"));
    }
}
