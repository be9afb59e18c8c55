//! Workflow YAML files with mistakes: every problem is reported, with its
//! code, task, field and position.

use std::path::Path;

use orca_common::workflow::{
    Problem, ProblemCode, WorkflowError, parse_workflow_file, parse_workflow_str,
};

fn errors(src: &str) -> WorkflowError {
    match parse_workflow_str(src, "bad.yaml", Path::new(".")) {
        Ok(spec) => panic!("expected errors, got {spec:?}"),
        Err(e) => e,
    }
}

fn only(src: &str, code: ProblemCode) -> Problem {
    let err = errors(src);
    let found: Vec<&Problem> = err.problems.iter().filter(|p| p.code == code).collect();
    assert_eq!(found.len(), 1, "want one {code}, got:\n{err}");
    found[0].clone()
}

fn at(p: &Problem) -> (Option<usize>, Option<usize>) {
    (p.line, p.column)
}

const HEAD: &str = "workflow:\n  name: w\ntasks:\n";

#[test]
fn yaml_syntax_error_has_line_and_column() {
    let err = errors("workflow:\n  name: w\ntasks: [\n  - name: a\n");
    assert_eq!(err.problems.len(), 1, "{err}");
    let p = &err.problems[0];
    assert_eq!(p.code, ProblemCode::YamlSyntax);
    assert!(p.message.starts_with("invalid YAML"), "{}", p.message);
    assert!(
        p.line.is_some_and(|l| l >= 3) && p.column.is_some(),
        "{p:?}"
    );
    let text = err.to_string();
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .starts_with(&format!("bad.yaml:{}:", p.line.unwrap())),
        "{text}"
    );
}

#[test]
fn unquoted_colon_in_text_gets_a_quoting_hint() {
    let p = only(
        &format!("{HEAD}  - name: a\n    task_type: Shell\n    command: echo hi: there\n"),
        ProblemCode::YamlSyntax,
    );
    assert_eq!(p.line, Some(6));
    assert!(p.message.contains("must be quoted"), "{p:?}");
}

#[test]
fn missing_sections_and_empty_file() {
    let p = only(
        "tasks:\n  - {name: a, task_type: Shell, command: x}\n",
        ProblemCode::Missing,
    );
    assert!(p.message.contains("missing `workflow` section"), "{p:?}");
    let p = only("workflow: {name: w}\n", ProblemCode::Missing);
    assert!(p.message.contains("missing `tasks` list"), "{p:?}");
    let p = only("# nothing\n", ProblemCode::Missing);
    assert!(p.message.contains("empty"), "{p:?}");
    let p = only(
        "tasks: [{name: a, task_type: Shell, command: x}]\nworkflow: {}\n",
        ProblemCode::Missing,
    );
    assert!(p.message.contains("no `name`"), "{p:?}");
}

#[test]
fn workflow_without_tasks_is_rejected() {
    for tasks in ["tasks: []\n", "tasks:\n"] {
        let p = only(
            &format!("workflow: {{name: w}}\n{tasks}"),
            ProblemCode::NoTasks,
        );
        assert!(p.message.contains("no tasks"), "{p:?}");
        assert_eq!(p.line, Some(2));
    }
}

#[test]
fn missing_or_empty_task_name() {
    let src = format!(
        "{HEAD}  - task_type: Shell\n    command: x\n  - name: \"  \"\n    task_type: Shell\n    command: y\n"
    );
    let err = errors(&src);
    let names: Vec<&Problem> = err
        .problems
        .iter()
        .filter(|p| p.code == ProblemCode::EmptyTaskName)
        .collect();
    assert_eq!(names.len(), 2, "{err}");
    assert!(names[0].message.contains("task #1 has no name"), "{err}");
    assert_eq!(names[0].line, Some(4));
    assert!(names[1].message.contains("task #2 has no name"), "{err}");
    assert_eq!(at(names[1]), (Some(6), Some(11)));
}

#[test]
fn duplicate_task_names_point_at_the_second_and_name_the_first() {
    let src = format!(
        "{HEAD}  - {{name: a, task_type: Shell, command: x}}\n  - {{name: a, task_type: Shell, command: y}}\n"
    );
    let p = only(&src, ProblemCode::DuplicateTask);
    assert_eq!(p.task.as_deref(), Some("a"));
    assert_eq!(p.line, Some(5));
    assert!(p.message.contains("first defined at line 4"), "{p:?}");
}

#[test]
fn unknown_task_type_lists_known_types_and_suggests() {
    let src = format!(
        "{HEAD}  - name: a\n    task_type: Shel\n    command: x\n  - name: b\n    task_type: Spark\n    main_class: X\n"
    );
    let err = errors(&src);
    assert_eq!(err.problems.len(), 2, "{err}");
    let a = &err.problems[0];
    assert_eq!(
        (a.code, a.task.as_deref(), a.line),
        (ProblemCode::UnknownTaskType, Some("a"), Some(5))
    );
    assert!(
        a.message.contains("SHELL, PYTHON") && a.message.contains("did you mean \"SHELL\"?"),
        "{a:?}"
    );
    // Keys of other pydolphinscheduler task types are not reported as typos.
    let b = &err.problems[1];
    assert_eq!(
        (b.code, b.task.as_deref(), b.line),
        (ProblemCode::UnknownTaskType, Some("b"), Some(8))
    );
}

#[test]
fn missing_task_type() {
    let p = only(
        &format!("{HEAD}  - name: a\n    command: x\n"),
        ProblemCode::Missing,
    );
    assert_eq!(
        (p.task.as_deref(), p.field.as_deref(), p.line),
        (Some("a"), Some("task_type"), Some(4))
    );
}

#[test]
fn unknown_dependency_names_task_and_dep_and_suggests() {
    let src = format!(
        "{HEAD}  - name: prepare\n    task_type: Shell\n    command: x\n  - name: train\n    task_type: Shell\n    command: y\n    deps: [prepar, nothing_like_it]\n"
    );
    let err = errors(&src);
    let deps: Vec<&Problem> = err
        .problems
        .iter()
        .filter(|p| p.code == ProblemCode::UnknownDependency)
        .collect();
    assert_eq!(deps.len(), 2, "{err}");
    assert_eq!(deps[0].task.as_deref(), Some("train"));
    assert_eq!(at(deps[0]), (Some(10), Some(12)));
    assert_eq!(
        deps[0].message,
        "unknown dependency \"prepar\" (did you mean \"prepare\"?)"
    );
    assert_eq!(at(deps[1]), (Some(10), Some(20)));
    assert!(
        deps[1].message.contains("\"nothing_like_it\"")
            && !deps[1].message.contains("did you mean")
    );
    assert!(err.to_string().contains(
        "bad.yaml:10:12: task \"train\": unknown dependency \"prepar\" (did you mean \"prepare\"?)"
    ), "{err}");
}

#[test]
fn self_dependency() {
    let p = only(
        &format!("{HEAD}  - {{name: a, task_type: Shell, command: x, deps: [a]}}\n"),
        ProblemCode::SelfDependency,
    );
    assert_eq!((p.task.as_deref(), p.line), (Some("a"), Some(4)));
    assert!(p.message.contains("depends on itself"));
}

#[test]
fn cycle_lists_its_tasks_in_order() {
    let src = format!(
        "{HEAD}  - {{name: ok, task_type: Shell, command: x}}\n  - {{name: a, task_type: Shell, command: x, deps: [c]}}\n  - {{name: b, task_type: Shell, command: x, deps: [a, ok]}}\n  - {{name: c, task_type: Shell, command: x, deps: [b]}}\n"
    );
    let p = only(&src, ProblemCode::Cycle);
    assert_eq!((p.task.as_deref(), p.line), (Some("a"), Some(5)));
    assert!(
        p.message.contains("cycle of 3 tasks: a -> b -> c -> a"),
        "{p:?}"
    );
}

#[test]
fn bad_retry_counts_and_durations() {
    let src = format!(
        "{HEAD}  - name: a\n    task_type: Shell\n    command: x\n    fail_retry_times: -1\n    fail_retry_interval: 5x\n    timeout: -10\n  - name: b\n    task_type: Shell\n    command: x\n    fail_retry_times: many\n"
    );
    let err = errors(&src);
    let bad: Vec<&Problem> = err
        .problems
        .iter()
        .filter(|p| p.code == ProblemCode::BadValue)
        .collect();
    assert_eq!(bad.len(), 4, "{err}");
    assert_eq!(
        (bad[0].field.as_deref(), bad[0].line, bad[0].task.as_deref()),
        (Some("fail_retry_times"), Some(7), Some("a"))
    );
    assert!(bad[0].message.contains("negative"));
    assert_eq!(
        (bad[1].field.as_deref(), bad[1].line),
        (Some("fail_retry_interval"), Some(8))
    );
    assert!(
        bad[1].message.contains("\"5x\" is not a duration") && bad[1].message.contains("1h30m"),
        "{:?}",
        bad[1]
    );
    assert_eq!(
        (bad[2].field.as_deref(), bad[2].line),
        (Some("timeout"), Some(9))
    );
    assert!(bad[2].message.contains("negative"));
    assert_eq!((bad[3].task.as_deref(), bad[3].line), (Some("b"), Some(13)));
    assert!(bad[3].message.contains("not a whole number"));
}

#[test]
fn script_missing_empty_or_doubled() {
    let src = format!(
        "{HEAD}  - {{name: a, task_type: Shell}}\n  - {{name: b, task_type: Python}}\n  - {{name: c, task_type: Shell, command: \"  \"}}\n  - {{name: d, task_type: Shell, command: x, definition: y}}\n"
    );
    let err = errors(&src);
    let s: Vec<&Problem> = err
        .problems
        .iter()
        .filter(|p| p.code == ProblemCode::Script)
        .collect();
    assert_eq!(s.len(), 4, "{err}");
    assert_eq!((s[0].task.as_deref(), s[0].line), (Some("a"), Some(4)));
    assert!(s[0].message.contains("missing `command`"));
    assert!(
        s[1].message.contains("missing `definition`") && s[1].message.contains("Python source")
    );
    assert!(s[2].message.contains("`command` is empty"));
    assert!(s[3].message.contains("both `command` and `definition`"));
}

#[test]
fn typo_keys_are_reported_with_suggestion_but_known_ds_keys_are_ignored() {
    let src = "workflow:\n  name: w\n  tenant: t\n  release_state: online\n  shedule: x\ntasks:\n  - name: a\n    task_type: Shell\n    comand: x\n    flag: YES\n    delay_time: 3\n    task_group_id: 1\n    frobnicate: 1\n";
    let err = errors(src);
    let keys: Vec<&Problem> = err
        .problems
        .iter()
        .filter(|p| p.code == ProblemCode::UnknownKey)
        .collect();
    assert_eq!(keys.len(), 3, "{err}");
    assert_eq!((keys[0].line, keys[0].task.as_deref()), (Some(5), None));
    assert!(
        keys[0].message.contains("\"shedule\"")
            && keys[0].message.contains("did you mean \"schedule\"?")
    );
    assert_eq!(
        (keys[1].line, keys[1].column, keys[1].task.as_deref()),
        (Some(9), Some(5), Some("a"))
    );
    assert!(keys[1].message.contains("did you mean \"command\"?"));
    assert_eq!(keys[2].field.as_deref(), Some("frobnicate"));
    assert!(
        keys[2].message.contains("Orca reads: name, task_type"),
        "{:?}",
        keys[2]
    );
    // The typo'd `comand` leaves the task without a script: reported too.
    assert!(err.has(ProblemCode::Script));
}

#[test]
fn duplicate_keys_are_reported() {
    let p = only(
        &format!("{HEAD}  - name: a\n    task_type: Shell\n    command: x\n    command: y\n"),
        ProblemCode::DuplicateKey,
    );
    assert_eq!((p.line, p.task.as_deref()), (Some(7), Some("a")));
    assert!(p.message.contains("first at line 6"));
}

#[test]
fn env_placeholder_for_unset_variable_names_it() {
    let p = only(
        &format!(
            "{HEAD}  - name: a\n    task_type: Shell\n    command: echo $ENV{{ORCA_TEST_SURELY_UNSET_VAR}}\n"
        ),
        ProblemCode::Placeholder,
    );
    assert_eq!(
        (p.task.as_deref(), p.line, p.field.as_deref()),
        (Some("a"), Some(6), Some("command"))
    );
    assert!(
        p.message.contains("ORCA_TEST_SURELY_UNSET_VAR is not set"),
        "{p:?}"
    );
}

#[test]
fn missing_file_placeholder_names_yaml_file_task_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flow.yaml");
    std::fs::write(
        &file,
        format!("{HEAD}  - name: train\n    task_type: Python\n    definition: $FILE{{\"scripts/missing.py\"}}\n"),
    )
    .unwrap();
    let err = parse_workflow_file(&file).unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    let p = &err.problems[0];
    assert_eq!(
        (p.code, p.task.as_deref(), p.line),
        (ProblemCode::Placeholder, Some("train"), Some(6))
    );
    assert!(p.message.contains("scripts/missing.py"), "{p:?}");
    let line = err.to_string().lines().nth(1).unwrap().to_string();
    assert!(
        line.starts_with(&format!("{}:6:", file.display())),
        "{line}"
    );
}

#[test]
fn unreadable_workflow_file() {
    let err = parse_workflow_file(Path::new("/nonexistent/flow.yaml")).unwrap_err();
    assert_eq!(err.problems[0].code, ProblemCode::Read);
    assert!(err.to_string().contains("/nonexistent/flow.yaml"));
}

#[test]
fn every_problem_is_reported_together_in_file_order() {
    let src = "workflow:\n  name: w\n  failure_strategy: sometimes\ntasks:\n  - name: a\n    task_type: Bash\n    command: x\n  - name: b\n    task_type: Shell\n    deps: [a, zz]\n    fail_retry_times: -2\n  - name: b\n    task_type: Python\n    definition: y\n    priority: urgent\n";
    let err = errors(src);
    let codes: Vec<(ProblemCode, Option<usize>)> =
        err.problems.iter().map(|p| (p.code, p.line)).collect();
    assert_eq!(
        codes,
        vec![
            (ProblemCode::BadValue, Some(3)),
            (ProblemCode::UnknownTaskType, Some(6)),
            (ProblemCode::Script, Some(8)),
            (ProblemCode::UnknownDependency, Some(10)),
            (ProblemCode::BadValue, Some(11)),
            (ProblemCode::DuplicateTask, Some(12)),
            (ProblemCode::BadValue, Some(15)),
        ],
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with("ORCA-WORKFLOW-INVALID: bad.yaml has 7 problems\n"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 8);
}

#[test]
fn wrong_shapes_are_reported() {
    let src = format!(
        "{HEAD}  - just a string\n  - name: [x]\n    task_type: Shell\n    command: x\n  - name: c\n    task_type: Shell\n    command: {{a: 1}}\n    deps: {{a: 1}}\n"
    );
    let err = errors(&src);
    let lines: Vec<Option<usize>> = err
        .problems
        .iter()
        .filter(|p| p.code == ProblemCode::WrongType)
        .map(|p| p.line)
        .collect();
    assert_eq!(lines, vec![Some(4), Some(5), Some(10), Some(11)], "{err}");
}

fn chain_yaml(n: usize, closed: bool) -> String {
    let mut s = String::from(HEAD);
    for i in 0..n {
        let dep = if i > 0 {
            format!(", deps: [t{}]", i - 1)
        } else if closed {
            format!(", deps: [t{}]", n - 1)
        } else {
            String::new()
        };
        s.push_str(&format!(
            "  - {{name: t{i}, task_type: Shell, command: echo {i}{dep}}}\n"
        ));
    }
    s
}

#[test]
fn ten_thousand_task_chain_parses() {
    let spec =
        parse_workflow_str(&chain_yaml(10_000, false), "chain.yaml", Path::new(".")).unwrap();
    assert_eq!(spec.tasks.len(), 10_000);
    let dag = orca_common::workflow::dag::Dag::build(&spec).unwrap();
    assert_eq!(dag.topo_order.len(), 10_000);
    assert_eq!(dag.topo_order[9_999], 9_999);
}

#[test]
fn ten_thousand_task_cycle_is_reported_once() {
    let p = only(&chain_yaml(10_000, true), ProblemCode::Cycle);
    assert_eq!((p.task.as_deref(), p.line), (Some("t0"), Some(4)));
    assert!(
        p.message
            .starts_with("dependency cycle of 10000 tasks: t0 -> t1 -> "),
        "{}",
        p.message
    );
    assert!(p.message.contains("t9999 -> t0 "), "{}", p.message);
    assert!(p.message.len() < 1_000);
}

#[test]
fn an_unknown_python_process_policy_names_the_choices() {
    let err = errors(
        "workflow:\n  name: w\n  python_process: shared\ntasks:\n  - name: a\n    task_type: Python\n    definition: print(1)\n",
    );
    assert_eq!(err.problems.len(), 1, "{err}");
    let p = &err.problems[0];
    assert_eq!((p.code, p.line), (ProblemCode::BadValue, Some(3)), "{err}");
    let text = err.to_string();
    assert!(text.contains("python_process"), "{text}");
    assert!(
        text.contains("per_task") && text.contains("per_run"),
        "{text}"
    );
}

#[test]
fn a_python_process_policy_on_a_shell_task_is_refused() {
    let err = errors(
        "workflow:\n  name: w\ntasks:\n  - name: a\n    task_type: Shell\n    command: 'true'\n    python_process: per_task\n",
    );
    assert_eq!(err.problems.len(), 1, "{err}");
    let p = &err.problems[0];
    assert_eq!((p.code, p.line), (ProblemCode::BadValue, Some(7)), "{err}");
    assert!(err.to_string().contains("Python tasks only"), "{err}");
}
