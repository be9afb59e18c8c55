//! Workflow YAML files that are valid: what they parse to.

use std::path::Path;
use std::time::Duration;

use orca_common::workflow::{ProblemCode, parse_workflow_file, parse_workflow_str};
use orca_common::{
    Direction, FailureStrategy, ParamSpec, PythonProcess, TaskSpec, TaskType, WorkflowSpec,
};

fn parse(src: &str) -> WorkflowSpec {
    match parse_workflow_str(src, "test.yaml", Path::new(".")) {
        Ok(spec) => spec,
        Err(e) => panic!("{e}"),
    }
}

fn param(name: &str, value: &str, direction: Direction) -> ParamSpec {
    ParamSpec {
        name: name.to_string(),
        value: value.to_string(),
        direction,
    }
}

/// A pydolphinscheduler-style file (tutorial + MoreConfiguration shapes),
/// with keys Orca ignores, a `$FILE` script and both param styles.
const ML_PIPELINE: &str = r#"
# Define the workflow
workflow:
  name: "ml-pipeline"
  description: "train and evaluate"
  project: ml
  schedule: "0 0 0 * * ? *"
  start_time: "2021-01-01"
  release_state: "offline"
  tenant: tenant_exists
  run: true
  failure_strategy: continue
  param:
    epochs: 10
    lr: 0.01
    dry_run: false
    dt: "${system.datetime}"

# Define the tasks within the workflow
tasks:
  - name: prepare
    task_type: Shell
    description: "yaml define task"
    flag: "YES"
    command: |
      echo "prepare ${dt}"
    task_priority: "HIGH"
    delay_time: 20
    fail_retry_times: 3
    fail_retry_interval: 5
    timeout: 60
    local_params:
      - { "prop": "rows", "direct": "OUT", "type": "VARCHAR", "value": "" }
      - { prop: "epochs", direct: "in", type: "INTEGER", value: "${epochs}" }

  - name: train
    task_type: python
    deps: [prepare]
    definition: $FILE{"scripts/train.py"}
    fail_retry_interval: 30s
    timeout: 1h30m
    environment: {conda: torch-2}
    worker_group: gpu
    priority: 7
    input_params:
      batch: INTEGER(64)
    output_params:
      model_path: ""

  - name: evaluate
    task_type: PYTHON
    deps:
      - train
      - prepare
    command: print("eval")
    environment_name: eval-env
"#;

#[test]
fn realistic_pydolphinscheduler_file_parses_to_the_expected_spec() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("scripts")).unwrap();
    std::fs::write(
        dir.path().join("scripts/train.py"),
        "print('train ${epochs}')\n",
    )
    .unwrap();
    let file = dir.path().join("ml.yaml");
    std::fs::write(&file, ML_PIPELINE).unwrap();

    let spec = parse_workflow_file(&file).unwrap_or_else(|e| panic!("{e}"));
    let expected = WorkflowSpec {
        name: "ml-pipeline".into(),
        description: "train and evaluate".into(),
        project: "ml".into(),
        schedule: Some("0 0 0 * * ? *".into()),
        params: vec![
            param("epochs", "10", Direction::In),
            param("lr", "0.01", Direction::In),
            param("dry_run", "false", Direction::In),
            param("dt", "${system.datetime}", Direction::In),
        ],
        failure_strategy: FailureStrategy::Continue,
        tenant: Some("tenant_exists".into()),
        python_process: Default::default(),
        tasks: vec![
            TaskSpec {
                name: "prepare".into(),
                task_type: TaskType::Shell,
                description: "yaml define task".into(),
                deps: vec![],
                script: "echo \"prepare ${dt}\"\n".into(),
                retries: 3,
                retry_interval: Duration::from_secs(5 * 60),
                timeout: Some(Duration::from_secs(60 * 60)),
                local_params: vec![
                    param("rows", "", Direction::Out),
                    param("epochs", "${epochs}", Direction::In),
                ],
                environment: None,
                worker_group: "default".into(),
                priority: 1,
                on_worker_loss: Default::default(),
                worker_labels: Vec::new(),
                python_process: None,
            },
            TaskSpec {
                name: "train".into(),
                task_type: TaskType::Python,
                description: String::new(),
                deps: vec!["prepare".into()],
                script: "print('train ${epochs}')\n".into(),
                retries: 0,
                retry_interval: Duration::from_secs(30),
                timeout: Some(Duration::from_secs(90 * 60)),
                local_params: vec![
                    param("batch", "64", Direction::In),
                    param("model_path", "", Direction::Out),
                ],
                environment: Some("torch-2".into()),
                worker_group: "gpu".into(),
                priority: 7,
                on_worker_loss: Default::default(),
                worker_labels: Vec::new(),
                python_process: None,
            },
            TaskSpec {
                name: "evaluate".into(),
                task_type: TaskType::Python,
                description: String::new(),
                deps: vec!["train".into(), "prepare".into()],
                script: "print(\"eval\")".into(),
                retries: 0,
                retry_interval: Duration::ZERO,
                timeout: None,
                local_params: vec![],
                environment: Some("eval-env".into()),
                worker_group: "default".into(),
                priority: 0,
                on_worker_loss: Default::default(),
                worker_labels: Vec::new(),
                python_process: None,
            },
        ],
    };
    assert_eq!(spec, expected);
}

#[test]
fn defaults_apply_when_fields_are_absent() {
    let spec = parse(
        "workflow:\n  name: w\ntasks:\n  - name: a\n    task_type: Shell\n    command: echo\n",
    );
    assert_eq!(spec.project, "default");
    assert_eq!(spec.failure_strategy, FailureStrategy::End);
    assert_eq!(spec.python_process, PythonProcess::PerTask);
    assert_eq!(spec.schedule, None);
    let t = &spec.tasks[0];
    assert_eq!(
        (t.retries, t.retry_interval, t.timeout),
        (0, Duration::ZERO, None)
    );
    assert_eq!((t.priority, t.worker_group.as_str()), (0, "default"));
}

#[test]
fn workflow_worker_group_is_the_default_for_its_tasks() {
    let spec = parse(
        "workflow:\n  name: w\n  worker_group: cpu\ntasks:\n  - {name: a, task_type: Shell, command: x}\n  - {name: b, task_type: Shell, command: x, worker_group: gpu}\n",
    );
    assert_eq!(spec.tasks[0].worker_group, "cpu");
    assert_eq!(spec.tasks[1].worker_group, "gpu");
}

#[test]
fn task_type_is_case_insensitive() {
    for (written, expected) in [
        ("Shell", TaskType::Shell),
        ("SHELL", TaskType::Shell),
        ("shell", TaskType::Shell),
        ("Python", TaskType::Python),
        ("pYtHoN", TaskType::Python),
    ] {
        let spec = parse(&format!(
            "workflow: {{name: w}}\ntasks:\n  - {{name: a, task_type: {written}, command: x}}\n"
        ));
        assert_eq!(spec.tasks[0].task_type, expected, "{written}");
    }
}

#[test]
fn command_and_definition_are_accepted_for_either_type() {
    let spec = parse(
        "workflow: {name: w}\ntasks:\n  - {name: a, task_type: Shell, definition: echo a}\n  - {name: b, task_type: Python, command: print(1)}\n",
    );
    assert_eq!(spec.tasks[0].script, "echo a");
    assert_eq!(spec.tasks[1].script, "print(1)");
}

#[test]
fn priority_names_map_to_integers() {
    for (written, expected) in [
        ("HIGHEST", 2),
        ("high", 1),
        ("Medium", 0),
        ("LOW", -1),
        ("lowest", -2),
        ("5", 5),
        ("-3", -3),
    ] {
        let spec = parse(&format!(
            "workflow: {{name: w}}\ntasks:\n  - {{name: a, task_type: Shell, command: x, priority: {written}}}\n"
        ));
        assert_eq!(spec.tasks[0].priority, expected, "{written}");
    }
}

#[test]
fn durations_accept_minutes_and_unit_strings() {
    for (written, expected) in [
        ("10", Duration::from_secs(600)),
        ("\"30s\"", Duration::from_secs(30)),
        ("500ms", Duration::from_millis(500)),
        ("5m", Duration::from_secs(300)),
        ("1h", Duration::from_secs(3600)),
        ("1h30m", Duration::from_secs(5400)),
    ] {
        let spec = parse(&format!(
            "workflow: {{name: w}}\ntasks:\n  - {{name: a, task_type: Shell, command: x, fail_retry_interval: {written}, timeout: {written}}}\n"
        ));
        assert_eq!(spec.tasks[0].retry_interval, expected, "{written}");
        assert_eq!(spec.tasks[0].timeout, Some(expected), "{written}");
    }
    let spec = parse(
        "workflow: {name: w}\ntasks:\n  - {name: a, task_type: Shell, command: x, timeout: 0}\n",
    );
    assert_eq!(spec.tasks[0].timeout, None);
}

#[test]
fn env_placeholder_expands_a_set_variable_and_keeps_parameter_refs() {
    let path = std::env::var("PATH").expect("PATH is set in tests");
    let spec = parse(
        "workflow: {name: w}\ntasks:\n  - name: a\n    task_type: Shell\n    command: echo $ENV{PATH} ${dt} $[yyyyMMdd]\n",
    );
    assert_eq!(
        spec.tasks[0].script,
        format!("echo {path} ${{dt}} $[yyyyMMdd]")
    );
}

#[test]
fn file_placeholder_reads_relative_to_the_yaml_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sql")).unwrap();
    std::fs::write(dir.path().join("sql/run.sh"), "echo from file\n").unwrap();
    let src = "workflow: {name: w}\ntasks:\n  - name: a\n    task_type: Shell\n    command: $FILE{\"sql/run.sh\"}\n";
    let spec = parse_workflow_str(src, "w.yaml", dir.path()).unwrap();
    assert_eq!(spec.tasks[0].script, "echo from file\n");
    // Relative to the directory given, not to the process' working directory.
    let err = parse_workflow_str(src, "w.yaml", Path::new("/nonexistent-dir")).unwrap_err();
    assert!(err.has(ProblemCode::Placeholder), "{err}");
}

#[test]
fn workflow_refs_are_left_as_text() {
    let spec = parse(
        "workflow: {name: w}\ntasks:\n  - {name: a, task_type: Shell, command: 'run $WORKFLOW{\"sub.yaml\"}'}\n",
    );
    assert_eq!(spec.tasks[0].script, "run $WORKFLOW{\"sub.yaml\"}");
}

#[test]
fn anchors_and_merge_keys_share_task_settings() {
    let spec = parse(
        "x-defaults: &d {task_type: Shell, fail_retry_times: 2, worker_group: etl}\nworkflow: {name: w}\ntasks:\n  - {<<: *d, name: a, command: x}\n  - {<<: *d, name: b, command: y, fail_retry_times: 0}\n",
    );
    assert_eq!(
        (spec.tasks[0].retries, spec.tasks[0].worker_group.as_str()),
        (2, "etl")
    );
    assert_eq!(spec.tasks[1].retries, 0);
}

#[test]
fn shipped_examples_parse() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let spec = parse_workflow_file(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!spec.tasks.is_empty(), "{}", path.display());
            orca_common::workflow::dag::Dag::build(&spec).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(seen > 0, "no example workflows in {}", examples.display());
}

#[test]
fn a_workflow_can_let_its_python_tasks_share_processes() {
    let spec = parse(
        "workflow:\n  name: w\n  python_process: per_run\ntasks:\n  - name: a\n    task_type: Python\n    definition: print(1)\n",
    );
    assert_eq!(spec.python_process, PythonProcess::PerRun);
    assert_eq!(spec.tasks[0].python_process, None);
    let spec = parse(
        "workflow:\n  name: w\n  python_process: per_run\ntasks:\n  - name: a\n    task_type: Python\n    definition: print(1)\n    python_process: per_task\n",
    );
    assert_eq!(spec.tasks[0].python_process, Some(PythonProcess::PerTask));
    // Stored definitions without the field read as the default, and the
    // default is not written out.
    let json = serde_json::to_value(&spec).unwrap();
    assert_eq!(json["python_process"], "per_run");
    let mut plain = json.clone();
    plain.as_object_mut().unwrap().remove("python_process");
    let back: orca_common::WorkflowSpec = serde_json::from_value(plain).unwrap();
    assert_eq!(back.python_process, PythonProcess::PerTask);
    assert!(
        serde_json::to_value(&back)
            .unwrap()
            .get("python_process")
            .is_none()
    );
}
