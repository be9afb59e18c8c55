//! Builders for the conformance suite's specs, commands and task attempts.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use orca_common::{
    Direction, FailureStrategy, ParamSpec, TaskSpec, TaskState, TaskType, WorkflowSpec,
};
use orca_store::{
    CommandKind, CommandRow, NewCommand, NewTaskInstance, Store, StoreError, WorkflowDefinitionRow,
    WorkflowInstanceRow,
};

pub fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 123_456_000)
        .single()
        .expect("valid test time")
}

pub fn task(name: &str, deps: &[&str]) -> TaskSpec {
    TaskSpec {
        name: name.to_string(),
        task_type: TaskType::Shell,
        description: format!("task {name}"),
        deps: deps.iter().map(|d| d.to_string()).collect(),
        script: format!("echo {name}"),
        retries: 2,
        retry_interval: Duration::from_millis(1500),
        timeout: Some(Duration::from_secs(60)),
        local_params: vec![ParamSpec {
            name: "out".into(),
            value: String::new(),
            direction: Direction::Out,
        }],
        environment: Some("py311".into()),
        worker_group: "gpu".into(),
        priority: 3,
        on_worker_loss: Default::default(),
        worker_labels: Vec::new(),
        python_process: None,
    }
}

pub fn spec(project: &str, name: &str) -> WorkflowSpec {
    WorkflowSpec {
        name: name.to_string(),
        description: "conformance".into(),
        project: project.to_string(),
        schedule: Some("0 0 * * * ?".into()),
        params: vec![ParamSpec {
            name: "dt".into(),
            value: "2024-01-01".into(),
            direction: Direction::In,
        }],
        failure_strategy: FailureStrategy::Continue,
        tenant: None,
        python_process: Default::default(),
        tasks: vec![
            task("extract", &[]),
            task("train", &["extract"]),
            task("report", &["extract", "train"]),
        ],
    }
}

pub fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A saved workflow plus a consumed command: a RUNNING instance at `epoch`.
pub async fn running_instance(store: &Store, epoch: u64, name: &str) -> WorkflowInstanceRow {
    let def = store.save_workflow(&spec("p", name), "yaml").await.unwrap();
    let cmd = new_command(store, &def, 0).await;
    store
        .start_workflow_instance(epoch, &cmd, &def, t(10))
        .await
        .unwrap()
}

pub async fn new_command(store: &Store, def: &WorkflowDefinitionRow, at: i64) -> CommandRow {
    store
        .insert_command(NewCommand {
            kind: CommandKind::Start,
            target_instance_id: None,
            options: Default::default(),
            workflow_definition_id: def.id,
            version: def.version,
            params: params(&[("dt", "2024-02-02")]),
            schedule_time: t(at),
        })
        .await
        .unwrap()
}

pub fn new_task(wi: i64, name: &str, attempt: i32) -> NewTaskInstance {
    NewTaskInstance {
        workflow_instance_id: wi,
        task_name: name.to_string(),
        attempt,
        state: TaskState::Submitted,
        failover: false,
        worker_id: None,
        worker_addr: None,
        submit_time: t(20),
        end_time: None,
        message: None,
    }
}

pub fn assert_fenced<T: std::fmt::Debug>(r: Result<T, StoreError>, mine: u64, current: u64) {
    match r {
        Err(StoreError::Fenced {
            mine: m,
            current: c,
        }) => {
            assert_eq!((m, c), (mine, current), "fenced with wrong epochs")
        }
        other => panic!("expected Fenced {{ mine: {mine}, current: {current} }}, got {other:?}"),
    }
}
