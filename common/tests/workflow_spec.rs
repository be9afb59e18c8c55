//! `validate_spec` for specs that do not come from YAML (e.g. JSON).

use orca_common::workflow::{ProblemCode, validate_spec};
use orca_common::{TaskSpec, WorkflowSpec};

fn spec_json(tasks: serde_json::Value) -> WorkflowSpec {
    serde_json::from_value(serde_json::json!({ "name": "api-flow", "tasks": tasks }))
        .expect("test JSON matches the model")
}

fn task(name: &str, deps: &[&str], script: &str) -> serde_json::Value {
    serde_json::json!({ "name": name, "task_type": "SHELL", "deps": deps, "script": script })
}

#[test]
fn valid_spec_passes() {
    let spec = spec_json(serde_json::json!([
        task("a", &[], "x"),
        task("b", &["a"], "y")
    ]));
    assert_eq!(validate_spec(&spec), Ok(()));
}

#[test]
fn spec_problems_are_all_reported_without_positions() {
    let spec = spec_json(serde_json::json!([
        task("a", &["b"], "x"),
        task("b", &["a"], "x"),
        task("c", &["c", "missing"], ""),
        task("", &[], "x"),
        task("a", &[], "x"),
    ]));
    let err = validate_spec(&spec).unwrap_err();
    assert_eq!(err.origin, "workflow \"api-flow\"");
    let mut codes: Vec<ProblemCode> = err.problems.iter().map(|p| p.code).collect();
    codes.sort_by_key(|c| c.as_str());
    let mut want = vec![
        ProblemCode::Cycle,
        ProblemCode::SelfDependency,
        ProblemCode::UnknownDependency,
        ProblemCode::Script,
        ProblemCode::EmptyTaskName,
        ProblemCode::DuplicateTask,
    ];
    want.sort_by_key(|c| c.as_str());
    assert_eq!(codes, want, "{err}");
    assert!(err.problems.iter().all(|p| p.line.is_none()));
    let text = err.to_string();
    assert!(
        text.contains("workflow \"api-flow\": task \"c\": empty script"),
        "{text}"
    );
    assert!(text.contains("task #4 has no name"), "{text}");
    assert!(text.contains("a -> b -> a"), "{text}");
}

#[test]
fn empty_workflow_and_name_are_reported() {
    let spec: WorkflowSpec =
        serde_json::from_value(serde_json::json!({ "name": " ", "tasks": [] })).unwrap();
    let err = validate_spec(&spec).unwrap_err();
    assert!(
        err.has(ProblemCode::NoTasks) && err.has(ProblemCode::Missing),
        "{err}"
    );
}

#[test]
fn duplicate_local_params_are_reported() {
    let mut spec = spec_json(serde_json::json!([task("a", &[], "x")]));
    let p = orca_common::ParamSpec {
        name: "k".into(),
        value: "1".into(),
        direction: orca_common::Direction::In,
    };
    let t: &mut TaskSpec = &mut spec.tasks[0];
    t.local_params = vec![p.clone(), p];
    let err = validate_spec(&spec).unwrap_err();
    assert!(err.has(ProblemCode::DuplicateParam), "{err}");
}
