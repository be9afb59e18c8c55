//! PYTHON rendering, run through a real `python3`: values print exactly and
//! never run as code.

use std::process::Command;

use chrono::{NaiveDate, NaiveDateTime};
use orca_common::params::{Rendered, ResolvedParam, render_python};

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

fn render(script: &str, params: &[ResolvedParam]) -> Rendered {
    render_python(script, params, base()).expect("renders")
}

/// Runs the rendered source from a file; returns stdout bytes as a string.
fn python(dir: &tempfile::TempDir, r: &Rendered) -> String {
    let file = dir.path().join("task.py");
    std::fs::write(&file, &r.script).expect("write script");
    let out = Command::new("python3")
        .arg(&file)
        .current_dir(dir.path())
        .envs(r.env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "script failed:\n{}\n{}",
        r.script,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

const WRITE: &str = "import sys\ndef w(s):\n    sys.stdout.buffer.write(s.encode())\n";

#[test]
fn values_with_quotes_backslashes_and_newlines_print_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pwned = dir.path().join("pwned");
    let values = [
        "plain".to_string(),
        "it's \"quoted\"".to_string(),
        "back\\slash\\".to_string(),
        "line1\nline2\r\nline3\t\u{2028}end".to_string(),
        format!(
            "\"); __import__('os').system('touch {}'); print(\"",
            pwned.display()
        ),
        format!("'''\"\"\"); open('{}','w') #", pwned.display()),
        "{__import__('os').getcwd()} {{x}} \\N{BULLET}".to_string(),
        "\u{1}\u{7f}ünïcødé".to_string(),
    ];
    for v in &values {
        let params = [user("v", v)];
        for body in [
            "w(\"${v}\")",
            "w('${v}')",
            "w(\"\"\"${v}\"\"\")",
            "w('''${v}''')",
            "w(f\"${v}\")",
            "w(F'''${v}''')",
            "w(u\"${v}\")",
        ] {
            let r = render(&format!("{WRITE}{body}\n"), &params);
            assert_eq!(
                &python(&dir, &r),
                v,
                "body {body:?} rendered {:?}",
                r.script
            );
            assert!(!pwned.exists(), "injected code ran for {body:?}");
        }
    }
}

#[test]
fn references_in_code_become_literals_never_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pwned = dir.path().join("pwned");
    let attack = format!("__import__('os').system('touch {}')", pwned.display());
    let params = [
        user("n", "41"),
        user("ratio", "-0.5"),
        user("flag", "True"),
        user("s", &attack),
        user("zero", "08"),
    ];
    let src = format!(
        "{WRITE}x = ${{n}} + 1\ny = ${{s}}\nw(f\"{{x}} {{${{ratio}} * 2}} {{${{flag}}}} {{y}} {{${{zero}}}}\")\n"
    );
    let r = render(&src, &params);
    assert_eq!(python(&dir, &r), format!("42 -1.0 True {attack} 08"));
    assert!(!pwned.exists());
}

#[test]
fn comments_set_value_and_unknown_references_are_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let params = [user("v", "val")];
    let src = "# ${v}\nprint('${setValue(k=1)}', \"${unknown}\", \"#{setValue(out=${v})}\")\n";
    let r = render(src, &params);
    assert!(r.script.starts_with("# ${v}\n"), "{}", r.script);
    assert_eq!(
        python(&dir, &r),
        "${setValue(k=1)} ${unknown} #{setValue(out=val)}\n"
    );
}

#[test]
fn time_expressions_and_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let params = [
        user("a.b", "dotted"),
        user("PYTHONSTARTUP", "x"),
        ResolvedParam::orca_generated("system.biz.date", "20240229"),
    ];
    let src = "import os\nprint('$[yyyyMMdd-1]', $[yyyy], \"${system.biz.date}\", \"${a.b}\")\nprint(os.environ['ORCA_P_0'], os.environ['ORCA_P_1'], 'PYTHONSTARTUP' in os.environ)\n";
    let r = render(src, &params);
    assert_eq!(
        python(&dir, &r),
        "20240229 2024 20240229 dotted\ndotted x False\n"
    );
}

#[test]
fn invalid_time_expression_is_an_error() {
    let err = render_python("print('$[bogus_fn(yyyy)]')", &[], base()).expect_err("bad");
    assert_eq!(err.code(), "ORCA-PARAM-TIME-FUNCTION");
}
