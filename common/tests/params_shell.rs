//! SHELL rendering, run through a real `bash -c`: parameter values must
//! print literally and never run.
//!
//! Every run uses a throw-away HOME holding a canary file, so even a failed
//! test cannot reach the real home directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{NaiveDate, NaiveDateTime};
use orca_common::params::{Rendered, ResolvedParam, render_shell};

fn base() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2024, 3, 1)
        .and_then(|d| d.and_hms_opt(0, 30, 0))
        .expect("date")
}

fn user(name: &str, value: &str) -> ResolvedParam {
    ResolvedParam {
        name: name.into(),
        value: value.into(),
        generated: false,
    }
}

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("home")).expect("home");
        std::fs::write(dir.path().join("home/canary"), "alive").expect("canary");
        Sandbox { dir }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn pwned(&self) -> String {
        self.path("pwned").display().to_string()
    }
    /// Runs the rendered script; returns stdout.
    fn bash(&self, r: &Rendered) -> String {
        let out = Command::new("bash")
            .arg("-c")
            .arg(&r.script)
            .current_dir(self.dir.path())
            .env("HOME", self.path("home"))
            .envs(r.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "script failed: {}\n{}",
            r.script,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    }
    fn assert_untouched(&self) {
        assert!(!Path::new(&self.pwned()).exists(), "injected command ran");
        assert!(self.path("home/canary").exists(), "home was wiped");
    }
}

fn render(script: &str, params: &[ResolvedParam]) -> Rendered {
    render_shell(script, params, base()).expect("renders")
}

#[test]
fn command_substitution_in_a_value_never_runs() {
    let sb = Sandbox::new();
    let v = format!("$(touch {}); rm -rf ~", sb.pwned());
    let params = [user("v", &v)];
    for script in [
        "echo \"${v}\"",
        "echo ${v}",
        "echo '${v}'",
        "echo \"$v\"",
        "printf '%s\\n' \"${v}\"",
        "x=\"prefix ${v}\"; echo \"${x#prefix }\"",
        "echo \"$(echo '${v}')\"",
    ] {
        let r = render(script, &params);
        assert!(
            !r.script.contains("touch"),
            "value inlined into {:?}",
            r.script
        );
        assert_eq!(sb.bash(&r), format!("{v}\n"), "script {script:?}");
        sb.assert_untouched();
    }
}

#[test]
fn references_in_single_quotes_become_quoted_expansions() {
    let params = [user("v", "x")];
    assert_eq!(render("echo '${v}'", &params).script, "echo ''\"${v}\"''");
    assert_eq!(
        render("echo $'a${v}'", &params).script,
        "echo $'a'\"${v}\"$''"
    );
    assert_eq!(render("echo \"'${v}'\"", &params).script, "echo \"'${v}'\"");
}

#[test]
fn backticks_quotes_and_newlines_in_values_stay_data() {
    let sb = Sandbox::new();
    let values = [
        format!("`touch {}`", sb.pwned()),
        format!("'; touch {} #", sb.pwned()),
        format!("\"; touch {}; echo \"", sb.pwned()),
        format!("a\nb'c\"d\\e $HOME ${{HOME}} *\ntouch {}", sb.pwned()),
    ];
    for v in &values {
        let params = [user("v", v)];
        for script in [
            "printf '%s' \"${v}\"",
            "printf '%s' '${v}'",
            "printf '%s' $'${v}'",
        ] {
            let r = render(script, &params);
            assert_eq!(&sb.bash(&r), v, "script {script:?} rendered {:?}", r.script);
            sb.assert_untouched();
        }
    }
}

#[test]
fn here_documents_expand_from_the_environment() {
    let sb = Sandbox::new();
    let v = format!("$(touch {}) `id`", sb.pwned());
    let params = [user("v", &v), user("a.b", "dotted")];
    let r = render(
        "cat <<EOF\nv=${v}\nd=${a.b}\nEOF\necho \"after ${a.b}\"",
        &params,
    );
    assert_eq!(sb.bash(&r), format!("v={v}\nd=dotted\nafter dotted\n"));
    sb.assert_untouched();

    // A quoted here-document expands nothing: user references stay literal.
    let r = render("cat <<'EOF'\n${v}\nEOF\necho ${a.b}", &params);
    assert_eq!(sb.bash(&r), "${v}\ndotted\n");
}

#[test]
fn non_identifier_names_are_exported_under_generated_names() {
    let sb = Sandbox::new();
    let params = [
        user("a.b", "A B"),
        user("my-var", "it's"),
        user("ok_name", "plain"),
    ];
    let r = render(
        "echo \"${a.b}|${my-var}|${ok_name}\"; echo '${a.b}'; echo $((1<<2)) ${my-var}",
        &params,
    );
    assert!(
        !r.script.contains("${a.b}") && !r.script.contains("${my-var}"),
        "{}",
        r.script
    );
    assert!(
        r.script.contains("${ORCA_P_0}") && r.script.contains("${ORCA_P_1}"),
        "{}",
        r.script
    );
    assert_eq!(
        r.env,
        vec![
            ("ORCA_P_0".to_string(), "A B".to_string()),
            ("ORCA_P_1".to_string(), "it's".to_string()),
            ("ok_name".to_string(), "plain".to_string()),
        ]
    );
    assert_eq!(sb.bash(&r), "A B|it's|plain\nA B\n4 it's\n");
}

#[test]
fn reserved_environment_names_are_renamed() {
    let sb = Sandbox::new();
    let hook = sb.path("hook.sh");
    std::fs::write(&hook, format!("touch {}\n", sb.pwned())).expect("hook");
    let params = [
        user("BASH_ENV", &hook.display().to_string()),
        user("PATH", "/nonexistent"),
    ];
    let r = render("echo \"${PATH}\"; ls / >/dev/null && echo ok", &params);
    assert!(
        r.env.iter().all(|(k, _)| k != "BASH_ENV" && k != "PATH"),
        "{:?}",
        r.env
    );
    assert_eq!(sb.bash(&r), "/nonexistent\nok\n");
    sb.assert_untouched();
}

#[test]
fn generated_values_and_time_expressions_are_inlined() {
    let sb = Sandbox::new();
    let params = [
        ResolvedParam::orca_generated("system.biz.date", "20240229"),
        ResolvedParam::orca_generated("dt", "2024-02-29"),
    ];
    let r = render(
        "echo ${system.biz.date} '${dt}' $[yyyyMMdd-1] $[HH:mm-1/24]",
        &params,
    );
    assert_eq!(r.script, "echo 20240229 '2024-02-29' 20240229 23:30");
    assert_eq!(sb.bash(&r), "20240229 2024-02-29 20240229 23:30\n");
}

#[test]
fn generated_values_with_shell_syntax_are_exported_instead() {
    let sb = Sandbox::new();
    let path = format!("/tmp/x y;$(touch {})", sb.pwned());
    let params = [ResolvedParam::orca_generated(
        "system.task.execute.path",
        &path,
    )];
    let r = render("echo \"${system.task.execute.path}\"", &params);
    assert_eq!(r.script, "echo \"${ORCA_P_0}\"");
    assert_eq!(sb.bash(&r), format!("{path}\n"));
    sb.assert_untouched();
}

#[test]
fn set_value_comments_and_unknown_references_are_left_alone() {
    let sb = Sandbox::new();
    let params = [user("v", "val ue")];
    let script = "# uses ${v}\necho '${setValue(k=v)}' \"#{setValue(k2=x)}\" \"${nope:-dflt}\"\necho \"#{setValue(out=${v})}\"";
    let r = render(script, &params);
    assert!(r.script.starts_with(
        "# uses ${v}\necho '${setValue(k=v)}' \"#{setValue(k2=x)}\" \"${nope:-dflt}\""
    ));
    assert_eq!(
        sb.bash(&r),
        "${setValue(k=v)} #{setValue(k2=x)} dflt\n#{setValue(out=val ue)}\n"
    );
}

#[test]
fn invalid_time_expression_and_nul_values_are_errors() {
    let err = render_shell("echo $[yyyyww]", &[], base()).expect_err("bad pattern");
    assert_eq!(err.code(), "ORCA-PARAM-TIME-PATTERN");
    let err = render_shell("echo", &[user("v", "a\0b")], base()).expect_err("nul");
    assert!(err.to_string().contains("\"v\""), "{err}");
}
