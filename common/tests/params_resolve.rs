//! Parameter resolution: precedence, references between values, cycles,
//! system parameters and the `generated` flag.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use orca_common::params::{ParamError, ResolveInput, ResolvedParam, SystemContext, resolve};
use orca_common::{Direction, ParamSpec};

fn spec(name: &str, value: &str, direction: Direction) -> ParamSpec {
    ParamSpec {
        name: name.into(),
        value: value.into(),
        direction,
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn system() -> SystemContext {
    SystemContext {
        schedule_time: NaiveDate::from_ymd_opt(2024, 3, 1)
            .and_then(|d| d.and_hms_opt(2, 3, 4))
            .expect("date"),
        workflow_instance_id: 17,
        task_instance_id: 42,
    }
}

struct Case {
    globals: Vec<ParamSpec>,
    start: BTreeMap<String, String>,
    upstream: BTreeMap<String, String>,
    local: Vec<ParamSpec>,
}

impl Case {
    fn new() -> Self {
        Case {
            globals: vec![],
            start: BTreeMap::new(),
            upstream: BTreeMap::new(),
            local: vec![],
        }
    }
    fn run(&self) -> Result<Vec<ResolvedParam>, ParamError> {
        let sys = system();
        resolve(&ResolveInput {
            globals: &self.globals,
            start_params: &self.start,
            upstream_out: &self.upstream,
            local: &self.local,
            system: &sys,
        })
    }
    fn get(&self, name: &str) -> ResolvedParam {
        let all = self.run().expect("resolves");
        all.into_iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    }
}

#[test]
fn each_level_overrides_the_next() {
    let mut c = Case::new();
    c.globals = vec![
        spec("a", "global", Direction::In),
        spec("b", "global", Direction::In),
        spec("c", "global", Direction::In),
        spec("d", "global", Direction::In),
    ];
    c.start = map(&[("a", "start"), ("b", "start"), ("c", "start")]);
    c.upstream = map(&[("a", "upstream"), ("b", "upstream")]);
    c.local = vec![spec("a", "local", Direction::In)];
    assert_eq!(c.get("a").value, "local");
    assert_eq!(c.get("b").value, "upstream");
    assert_eq!(c.get("c").value, "start");
    assert_eq!(c.get("d").value, "global");
}

#[test]
fn local_out_params_are_not_inputs() {
    let mut c = Case::new();
    c.globals = vec![spec("x", "from-global", Direction::In)];
    c.local = vec![
        spec("x", "declared-default", Direction::Out),
        spec("only_out", "v", Direction::Out),
    ];
    assert_eq!(c.get("x").value, "from-global");
    assert!(
        c.run()
            .expect("resolves")
            .iter()
            .all(|p| p.name != "only_out")
    );
}

#[test]
fn system_params_are_generated_from_the_schedule_time() {
    let c = Case::new();
    let all = c.run().expect("resolves");
    let got: Vec<(&str, &str, bool)> = all
        .iter()
        .map(|p| (p.name.as_str(), p.value.as_str(), p.generated))
        .collect();
    assert_eq!(
        got,
        vec![
            ("system.biz.curdate", "20240301", true),
            ("system.biz.date", "20240229", true),
            ("system.datetime", "20240301020304", true),
            ("system.task.instance.id", "42", true),
            ("system.workflow.instance.id", "17", true),
        ]
    );
}

#[test]
fn values_reference_other_values_recursively() {
    let mut c = Case::new();
    c.globals = vec![
        spec("root", "/data", Direction::In),
        spec("day", "${system.biz.date}", Direction::In),
        spec("dir", "${root}/${day}", Direction::In),
    ];
    c.start = map(&[("file", "${dir}/part-$[HH].csv")]);
    c.local = vec![spec(
        "msg",
        "read ${file} and ${unknown} ${setValue(x=1)}",
        Direction::In,
    )];
    assert_eq!(c.get("dir").value, "/data/20240229");
    assert_eq!(c.get("file").value, "/data/20240229/part-02.csv");
    assert_eq!(
        c.get("msg").value,
        "read /data/20240229/part-02.csv and ${unknown} ${setValue(x=1)}"
    );
}

#[test]
fn references_resolve_against_the_winning_definition() {
    let mut c = Case::new();
    c.globals = vec![
        spec("env", "dev", Direction::In),
        spec("url", "https://${env}.example", Direction::In),
    ];
    c.local = vec![spec("env", "prod", Direction::In)];
    assert_eq!(c.get("url").value, "https://prod.example");
}

#[test]
fn time_expressions_in_values_may_use_references() {
    let mut c = Case::new();
    c.globals = vec![
        spec("n", "3", Direction::In),
        spec("since", "$[yyyyMMdd-${n}]", Direction::In),
    ];
    assert_eq!(c.get("since").value, "20240227");
}

#[test]
fn upstream_values_are_data_not_templates() {
    let mut c = Case::new();
    c.globals = vec![spec("x", "global", Direction::In)];
    c.upstream = map(&[("out", "${x} $[not a pattern")]);
    assert_eq!(c.get("out").value, "${x} $[not a pattern");
    assert!(!c.get("out").generated);
}

#[test]
fn cycles_are_errors_naming_the_params() {
    let mut c = Case::new();
    c.globals = vec![
        spec("a", "${b}", Direction::In),
        spec("b", "x${c}", Direction::In),
        spec("c", "${a}", Direction::In),
        spec("d", "${a}", Direction::In),
    ];
    let err = c.run().expect_err("cycle");
    match &err {
        ParamError::Cycle { chain } => {
            assert_eq!(chain, &["a", "b", "c", "a"]);
        }
        other => panic!("expected a cycle, got {other}"),
    }
    assert!(err.to_string().contains("a -> b -> c -> a"), "{err}");

    let mut selfref = Case::new();
    selfref.local = vec![spec("p", "${p}/x", Direction::In)];
    assert_eq!(
        selfref.run().expect_err("self cycle"),
        ParamError::Cycle {
            chain: vec!["p".into(), "p".into()]
        }
    );
}

#[test]
fn bad_time_expression_in_a_value_names_the_param() {
    let mut c = Case::new();
    c.globals = vec![spec("dt", "$[next_week(yyyy)]", Direction::In)];
    let err = c.run().expect_err("bad function");
    assert_eq!(err.code(), "ORCA-PARAM-VALUE");
    let text = err.to_string();
    assert!(
        text.contains("\"dt\"") && text.contains("next_week"),
        "{text}"
    );
}

#[test]
fn exponential_values_are_refused() {
    let mut c = Case::new();
    let mut globals = vec![spec("p0", "xxxxxxxxxxxxxxxx", Direction::In)];
    for i in 1..40 {
        globals.push(spec(
            &format!("p{i}"),
            &format!("${{p{}}}${{p{}}}", i - 1, i - 1),
            Direction::In,
        ));
    }
    c.globals = globals;
    assert_eq!(
        c.run().expect_err("too large").code(),
        "ORCA-PARAM-TOO-LARGE"
    );
}

#[test]
fn only_pure_time_expressions_are_generated() {
    let mut c = Case::new();
    c.globals = vec![
        spec("d1", "$[yyyyMMdd-1]", Direction::In),
        spec("d2", "$[yyyy]$[MM]", Direction::In),
        spec("d3", "day=$[yyyyMMdd]", Direction::In),
        spec("d4", "${system.biz.date}", Direction::In),
        spec("d5", "$[yyyyMMdd-${n}]", Direction::In),
        spec("n", "1", Direction::In),
    ];
    c.start = map(&[("d6", "$[yyyyMMdd]")]);
    assert!(c.get("d1").generated);
    assert!(c.get("d2").generated);
    assert!(c.get("d6").generated);
    for user in ["d3", "d4", "d5", "n"] {
        assert!(!c.get(user).generated, "{user}");
    }
    assert_eq!(c.get("d4").value, "20240229");
}

#[test]
fn user_params_may_shadow_system_params_but_are_not_generated() {
    let mut c = Case::new();
    c.start = map(&[("system.biz.date", "$(id)")]);
    c.globals = vec![spec("d", "${system.biz.date}", Direction::In)];
    let p = c.get("system.biz.date");
    assert_eq!(p.value, "$(id)");
    assert!(!p.generated);
    assert_eq!(c.get("d").value, "$(id)");
}
