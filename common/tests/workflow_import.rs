//! Importing DolphinScheduler workflows: JSON exports and pydolphinscheduler
//! YAML, what they convert to, and how bad exports are refused.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use orca_common::workflow::ProblemCode;
use orca_common::workflow::import::{
    ImportError, ImportProblemKind, Imported, import_dolphinscheduler_json,
    import_pydolphinscheduler_yaml,
};
use orca_common::{Direction, FailureStrategy, ParamSpec, TaskSpec, WorkflowSpec};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import")
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(name)).expect("fixture exists")
}

fn import_json(text: &str) -> Imported {
    match import_dolphinscheduler_json(text, "ml") {
        Ok(i) => i,
        Err(e) => panic!("{e}"),
    }
}

fn rejected(text: &str) -> ImportError {
    match import_dolphinscheduler_json(text, "ml") {
        Ok(i) => panic!("import should fail, got {:#?}", i.workflows),
        Err(e) => e,
    }
}

fn one(imported: &Imported) -> &WorkflowSpec {
    assert_eq!(imported.workflows.len(), 1, "{:#?}", imported.workflows);
    &imported.workflows[0]
}

fn task<'a>(spec: &'a WorkflowSpec, name: &str) -> &'a TaskSpec {
    spec.tasks
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no task {name}"))
}

fn param(name: &str, value: &str, direction: Direction) -> ParamSpec {
    ParamSpec {
        name: name.into(),
        value: value.into(),
        direction,
    }
}

/// Tasks by name, deps sorted: the order of tasks and of relations is not
/// meaningful in either format.
fn normalised(spec: &WorkflowSpec) -> WorkflowSpec {
    let mut spec = spec.clone();
    spec.tasks.sort_by(|a, b| a.name.cmp(&b.name));
    for t in &mut spec.tasks {
        t.deps.sort();
    }
    spec
}

/// A minimal export of one workflow with the given tasks and relations.
fn export(name: &str, tasks: Value, relations: Value) -> String {
    json!([{
        "processDefinition": {"code": 1, "name": name, "globalParams": "[]", "timeout": 0},
        "processTaskRelationList": relations,
        "taskDefinitionList": tasks,
        "schedule": null
    }])
    .to_string()
}

fn shell(code: i64, name: &str) -> Value {
    json!({
        "code": code, "name": name, "taskType": "SHELL",
        "taskParams": {"localParams": [], "rawScript": format!("echo {name}"), "resourceList": []},
        "taskPriority": "MEDIUM", "workerGroup": "default",
        "failRetryTimes": 0, "failRetryInterval": 1, "timeoutFlag": "CLOSE", "timeout": 0
    })
}

fn rel(pre: i64, post: i64) -> Value {
    json!({"preTaskCode": pre, "postTaskCode": post, "conditionType": "NONE"})
}

#[test]
fn export_converts_dag_params_schedule_and_task_settings() {
    let imported = import_json(&fixture("churn_model.json"));
    let spec = one(&imported);
    assert_eq!(spec.name, "churn-model-daily");
    assert_eq!(spec.project, "ml");
    assert_eq!(spec.schedule.as_deref(), Some("0 30 2 * * ? *"));
    assert_eq!(spec.failure_strategy, FailureStrategy::Continue);
    assert_eq!(
        spec.params,
        vec![
            param("dt", "$[yyyyMMdd-1]", Direction::In),
            param("data_root", "/data/churn", Direction::In),
            param("epochs", "12", Direction::In),
        ]
    );
    // The diamond, in export order.
    let names: Vec<&str> = spec.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "extract_events",
            "build_features",
            "event_stats",
            "train_model"
        ]
    );
    assert!(task(spec, "extract_events").deps.is_empty());
    assert_eq!(task(spec, "build_features").deps, ["extract_events"]);
    assert_eq!(task(spec, "event_stats").deps, ["extract_events"]);
    assert_eq!(
        task(spec, "train_model").deps,
        ["build_features", "event_stats"]
    );

    let extract = task(spec, "extract_events");
    assert_eq!(extract.retries, 3);
    assert_eq!(extract.retry_interval, Duration::from_secs(120));
    assert_eq!(extract.timeout, Some(Duration::from_secs(45 * 60)));
    assert_eq!(extract.priority, 1);
    assert_eq!(extract.worker_group, "etl");
    assert_eq!(extract.local_params, [param("rows", "", Direction::Out)]);
    // Scripts are verbatim, DolphinScheduler parameter syntax included.
    assert!(
        extract
            .script
            .ends_with("echo '${setValue(rows='\"$n\"')}'\n"),
        "{}",
        extract.script
    );

    let features = task(spec, "build_features");
    assert_eq!(
        features.local_params,
        [
            param("window_days", "28", Direction::In),
            param("feature_path", "", Direction::Out)
        ]
    );
    assert_eq!(features.environment, None);
    assert_eq!(features.timeout, None, "timeoutFlag CLOSE");

    let stats = task(spec, "event_stats");
    assert_eq!(stats.priority, -1);
    assert_eq!(stats.timeout, None, "timeout 10 but timeoutFlag CLOSE");

    let train = task(spec, "train_model");
    assert_eq!(train.priority, 2);
    assert_eq!(train.timeout, Some(Duration::from_secs(7200)));
    assert_eq!(train.retry_interval, Duration::from_secs(600));
    assert_eq!(train.worker_group, "gpu");
}

#[test]
fn export_warns_about_what_orca_does_not_keep() {
    let imported = import_json(&fixture("churn_model.json"));
    let w = &imported.warnings;
    let about = |task: Option<&str>, field: &str| {
        w.iter().any(|w| {
            w.workflow == "churn-model-daily"
                && w.task.as_deref() == task
                && w.message.starts_with(&format!("`{field}`"))
        })
    };
    assert!(about(Some("build_features"), "environmentCode"), "{w:#?}");
    assert!(about(None, "schedule.timezoneId"), "{w:#?}");
    assert!(about(None, "schedule.startTime"), "{w:#?}");
    assert!(about(None, "schedule.endTime"), "{w:#?}");
    let env = w
        .iter()
        .find(|w| w.message.starts_with("`environmentCode`"))
        .map(|w| w.message.as_str())
        .unwrap_or_default();
    assert!(
        env.contains("15231701100001") && env.contains("by name"),
        "{env}"
    );
    // Defaults (tenant "default", PARALLEL, warningType NONE, flag YES...)
    // are not noise.
    assert_eq!(w.len(), 4, "{w:#?}");
}

#[test]
fn json_export_and_pydolphinscheduler_yaml_of_one_workflow_agree() {
    let from_json = import_json(&fixture("churn_model.json"));
    let from_yaml = import_pydolphinscheduler_yaml(
        &fixture("churn_model.yaml"),
        "churn_model.yaml",
        &fixtures(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (j, y) = (one(&from_json), one(&from_yaml));
    // Same DAG, params, schedule and task settings; only the order of tasks
    // and dependencies is free.
    assert_eq!(normalised(j), normalised(y));
    // And the YAML's ignored schedule settings are reported, like the JSON's.
    let yaml_fields: Vec<&str> = from_yaml
        .warnings
        .iter()
        .map(|w| w.message.split('`').nth(1).unwrap_or_default())
        .collect();
    assert_eq!(yaml_fields, ["start_time", "timezone"]);
}

#[test]
fn task_params_as_json_string_equal_task_params_as_object() {
    let text = fixture("churn_model.json");
    let mut doc: Value = serde_json::from_str(&text).expect("fixture is JSON");
    for t in doc[0]["taskDefinitionList"]
        .as_array_mut()
        .expect("task list")
    {
        let params = t["taskParams"].take();
        t["taskParams"] = Value::String(params.to_string());
    }
    // globalParams as a list instead of a string, too.
    let list = doc[0]["processDefinition"]["globalParamList"].clone();
    doc[0]["processDefinition"]["globalParams"] = list;
    let as_strings = import_json(&doc.to_string());
    assert_eq!(as_strings, import_json(&text));
}

#[test]
fn unsupported_task_types_are_all_listed_and_nothing_is_imported() {
    let err = rejected(&fixture("warehouse_mixed.json"));
    assert_eq!(err.code(), "ORCA-IMPORT-REJECTED");
    assert_eq!(
        err.unsupported_tasks(),
        vec![
            ("warehouse-refresh", "load_orders", "SQL"),
            ("warehouse-refresh", "refresh_customer_mart", "SUB_PROCESS"),
            ("report-after-warehouse", "wait_for_warehouse", "DEPENDENT"),
        ]
    );
    // Supported tasks next to them cause no other problem.
    assert_eq!(err.problems().len(), 3, "{err}");
    let text = err.to_string();
    assert!(text.starts_with("ORCA-IMPORT-REJECTED: "), "{text}");
    assert!(
        text.contains(
            "workflow \"warehouse-refresh\": task \"refresh_customer_mart\": `taskType`: task type SUB_PROCESS is not supported"
        ),
        "{text}"
    );
    assert!(text.contains("Orca runs SHELL, PYTHON"), "{text}");
    assert!(text.contains("3 tasks are of a type"), "{text}");
}

#[test]
fn relation_to_unknown_task_code_names_both_codes() {
    let err = rejected(&export(
        "etl",
        json!([shell(11, "a"), shell(12, "b")]),
        json!([rel(0, 11), rel(11, 12), rel(12, 99)]),
    ));
    let [p] = err.problems() else {
        panic!("one problem expected: {err}")
    };
    assert_eq!(
        p.kind,
        ImportProblemKind::UnknownTaskCode {
            pre_task_code: 12,
            post_task_code: 99,
            unknown: 99
        }
    );
    assert_eq!(p.workflow.as_deref(), Some("etl"));
    assert!(
        p.message.contains("12") && p.message.contains("99"),
        "{}",
        p.message
    );
    assert!(err.to_string().contains("[ORCA-IMPORT-UNKNOWN-TASK-CODE]"));
}

#[test]
fn cycles_are_refused_naming_the_workflow() {
    let err = rejected(&export(
        "loop",
        json!([shell(1, "a"), shell(2, "b"), shell(3, "c")]),
        json!([rel(0, 1), rel(1, 2), rel(2, 3), rel(3, 2)]),
    ));
    let [p] = err.problems() else {
        panic!("one problem expected: {err}")
    };
    assert_eq!(p.kind, ImportProblemKind::Workflow(ProblemCode::Cycle));
    assert_eq!(p.workflow.as_deref(), Some("loop"));
    assert!(p.message.contains("b -> c -> b") || p.message.contains("c -> b -> c"));
    assert!(err.to_string().contains("[ORCA-WORKFLOW-CYCLE]"), "{err}");
}

#[test]
fn duplicate_task_names_and_codes_are_refused() {
    let err = rejected(&export(
        "dups",
        json!([shell(1, "a"), shell(2, "a"), shell(2, "b")]),
        json!([rel(0, 1)]),
    ));
    let kinds: Vec<&ImportProblemKind> = err.problems().iter().map(|p| &p.kind).collect();
    assert_eq!(
        kinds,
        [&ImportProblemKind::DuplicateTaskCode { code: 2 }],
        "{err}"
    );
    let err = rejected(&export(
        "dups",
        json!([shell(1, "a"), shell(2, "a")]),
        json!([]),
    ));
    assert_eq!(
        err.problems()[0].kind,
        ImportProblemKind::Workflow(ProblemCode::DuplicateTask),
        "{err}"
    );
}

#[test]
fn malformed_json_reports_line_and_column() {
    let err = rejected("[\n  {\"processDefinition\": {\"name\": \"x\",}\n]");
    let ImportError::JsonSyntax { line, column, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((*line, *column), (2, 38));
    let text = err.to_string();
    assert!(text.starts_with("ORCA-IMPORT-JSON-SYNTAX: "), "{text}");
    assert!(text.contains("line 2, column 38"), "{text}");
}

#[test]
fn json_that_is_not_an_export_is_refused() {
    for (doc, code) in [
        ("42", "ORCA-IMPORT-NOT-AN-EXPORT"),
        ("[]", "ORCA-IMPORT-NOT-AN-EXPORT"),
        ("[{\"tasks\": []}]", "ORCA-IMPORT-NOT-AN-EXPORT"),
        (
            "[{\"processDefinition\": {\"name\": \"x\"}}]",
            "ORCA-IMPORT-MISSING-FIELD",
        ),
    ] {
        let err = rejected(doc);
        assert_eq!(err.problems()[0].kind.code(), code, "{doc}: {err}");
    }
}

#[test]
fn task_params_string_that_is_not_json_names_the_task() {
    let mut t = shell(1, "broken");
    t["taskParams"] = Value::String("{\"rawScript\": \"echo".into());
    let err = rejected(&export("wf", json!([t]), json!([rel(0, 1)])));
    let p = &err.problems()[0];
    assert_eq!(p.kind, ImportProblemKind::BadValue);
    assert_eq!(
        (p.workflow.as_deref(), p.task.as_deref(), p.field.as_deref()),
        (Some("wf"), Some("broken"), Some("taskParams"))
    );
}

#[test]
fn bad_task_fields_are_all_reported() {
    let mut a = shell(1, "a");
    a["taskParams"] = json!({"localParams": [{"prop": "x", "direct": "SIDEWAYS"}]});
    a["taskPriority"] = json!("URGENT");
    a["failRetryTimes"] = json!(-1);
    let err = rejected(&export("wf", json!([a]), json!([rel(0, 1)])));
    let fields: Vec<&str> = err
        .problems()
        .iter()
        .map(|p| p.field.as_deref().unwrap_or_default())
        .collect();
    assert_eq!(
        fields,
        [
            "taskParams.rawScript",
            "taskParams.localParams[0].direct",
            "failRetryTimes",
            "taskPriority"
        ],
        "{err}"
    );
}

#[test]
fn dolphinscheduler_3_2_keys_and_string_codes_are_read() {
    let mut b = shell(2, "b");
    b["code"] = json!("2");
    let doc = json!([{
        "workflowDefinition": {"name": "new-keys", "globalParams": [{"prop": "p", "value": 3}]},
        "workflowTaskRelationList": [rel(0, 1), {"preTaskCode": "1", "postTaskCode": "2"}],
        "taskDefinitionList": [shell(1, "a"), b],
        "schedule": null
    }]);
    let imported = import_json(&doc.to_string());
    let spec = one(&imported);
    assert_eq!(task(spec, "b").deps, ["a"]);
    assert_eq!(spec.params, [param("p", "3", Direction::In)]);
    assert_eq!(spec.schedule, None);
    assert_eq!(spec.failure_strategy, FailureStrategy::End);
}

#[test]
fn warn_only_timeouts_disabled_tasks_and_out_globals_are_flagged() {
    let mut a = shell(1, "a");
    a["timeoutFlag"] = json!("OPEN");
    a["timeout"] = json!(30);
    a["timeoutNotifyStrategy"] = json!("WARN");
    a["flag"] = json!("NO");
    let mut doc: Value =
        serde_json::from_str(&export("wf", json!([a]), json!([rel(0, 1)]))).expect("valid JSON");
    doc[0]["processDefinition"]["globalParams"] = Value::String(
        json!([{"prop": "result", "direct": "OUT", "type": "VARCHAR", "value": ""}]).to_string(),
    );
    let imported = import_json(&doc.to_string());
    let spec = one(&imported);
    assert_eq!(spec.tasks[0].timeout, None);
    assert!(spec.params.is_empty());
    let fields: Vec<(Option<&str>, &str)> = imported
        .warnings
        .iter()
        .map(|w| {
            (
                w.task.as_deref(),
                w.message.split('`').nth(1).unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            (None, "globalParams"),
            (Some("a"), "timeout"),
            (Some("a"), "flag")
        ]
    );
}

#[test]
fn duplicate_workflow_names_are_refused() {
    let one_wf: Value = serde_json::from_str(&export("same", json!([shell(1, "a")]), json!([])))
        .expect("valid JSON");
    let doc = json!([one_wf[0], one_wf[0]]);
    let err = rejected(&doc.to_string());
    assert_eq!(err.problems()[0].kind, ImportProblemKind::DuplicateWorkflow);
}

#[test]
fn bad_schedules_are_refused() {
    let mut doc: Value =
        serde_json::from_str(&export("wf", json!([shell(1, "a")]), json!([rel(0, 1)])))
            .expect("valid JSON");
    doc[0]["schedule"] = json!({"crontab": "0 2 * * *", "failureStrategy": "RETRY"});
    let err = rejected(&doc.to_string());
    let fields: Vec<&str> = err
        .problems()
        .iter()
        .map(|p| p.field.as_deref().unwrap_or_default())
        .collect();
    assert_eq!(fields, ["failureStrategy", "schedule.crontab"], "{err}");
}

#[test]
fn invalid_yaml_is_an_import_error_with_its_problems() {
    let err = import_pydolphinscheduler_yaml(
        "workflow:\n  name: w\ntasks:\n  - name: a\n    task_type: Sql\n    sql: select 1\n",
        "w.yaml",
        Path::new("."),
    )
    .unwrap_err();
    assert_eq!(err.code(), "ORCA-IMPORT-YAML");
    let ImportError::Yaml(inner) = &err else {
        panic!("{err:?}")
    };
    assert!(inner.has(ProblemCode::UnknownTaskType), "{err}");
    assert!(err.to_string().contains("w.yaml:5"), "{err}");
}

#[test]
fn yaml_keys_orca_ignores_become_warnings_only_when_they_matter() {
    let yaml = "workflow:\n  name: w\n  tenant: analytics\n  execution_type: parallel\ntasks:\n  - name: a\n    task_type: Shell\n    command: echo a\n    flag: 'NO'\n    timeout: 5\n    timeout_notify_strategy: WARN\n  - name: b\n    task_type: Shell\n    command: echo b\n    flag: 'YES'\n    delay_time: 0\n    timeout: 5\n    timeout_notify_strategy: FAILED\n";
    let imported = import_pydolphinscheduler_yaml(yaml, "w.yaml", Path::new("."))
        .unwrap_or_else(|e| panic!("{e}"));
    let fields: Vec<(Option<&str>, &str)> = imported
        .warnings
        .iter()
        .map(|w| {
            (
                w.task.as_deref(),
                w.message.split('`').nth(1).unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [(Some("a"), "flag"), (Some("a"), "timeout_notify_strategy")]
    );
    assert!(imported.warnings.iter().all(|w| w.workflow == "w"));
    // The tenant is kept: tasks run as its operating-system user.
    assert_eq!(imported.workflows[0].tenant.as_deref(), Some("analytics"));
}
