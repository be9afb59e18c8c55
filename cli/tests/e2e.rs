//! End-to-end tests: a real standalone (SQLite, master, worker, API over
//! loopback) running real shell and python processes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use orca::client::Client;
use orca::standalone::{Standalone, StandaloneOptions};
use orca_api::routes::runs::RunDetail;
use orca_common::config::{LogStoreConfig, LogStoreKind};
use orca_common::{TaskState, WorkflowState};

const DEADLINE: Duration = Duration::from_secs(120);

/// A standalone on `dir`, on a free port, with 8 slots and `ORCA_PYTHON`.
fn options(dir: &Path) -> StandaloneOptions {
    StandaloneOptions {
        data_dir: dir.to_path_buf(),
        http: SocketAddr::from(([127, 0, 0, 1], 0)),
        worker_slots: 8,
        python: std::env::var("ORCA_PYTHON").unwrap_or_else(|_| "python3".into()),
    }
}

async fn standalone(dir: &Path) -> Standalone {
    Standalone::start(options(dir))
        .await
        .expect("standalone starts")
}

fn client(s: &Standalone) -> Client {
    Client::new(&s.url, &s.token)
}

fn parse(yaml: &str) -> orca_common::WorkflowSpec {
    orca_common::workflow::parse_workflow_str(yaml, "test.yaml", Path::new("."))
        .unwrap_or_else(|e| panic!("test workflow must parse: {e}"))
}

/// Applies and triggers; returns the run id.
async fn start(c: &Client, yaml: &str, params: &[(&str, &str)]) -> i64 {
    let spec = parse(yaml);
    let wf = c.apply(&spec, yaml).await.expect("apply");
    let params: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let trig = c
        .trigger(&wf.project, &wf.name, params)
        .await
        .expect("trigger");
    instance_of(c, trig.command_id).await
}

/// Waits until the master turned command `id` into a run; returns the run id.
async fn instance_of(c: &Client, id: i64) -> i64 {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(run) = c.command(id).await.expect("command").workflow_instance_id {
            return run;
        }
        assert!(Instant::now() < deadline, "command {id} never consumed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits (with a deadline) until `pred` holds for the run.
async fn wait_run(c: &Client, id: i64, what: &str, pred: impl Fn(&RunDetail) -> bool) -> RunDetail {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let d = c.run(id).await.expect("read run");
        if pred(&d) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {d:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn finish(c: &Client, id: i64) -> RunDetail {
    wait_run(c, id, "the run to finish", |d| {
        d.instance.state.is_terminal()
    })
    .await
}

/// Applies and triggers `yaml` without parameters, waits for the run and
/// checks that it succeeded.
async fn run_ok(c: &Client, yaml: &str) -> RunDetail {
    let id = start(c, yaml, &[]).await;
    let d = finish(c, id).await;
    assert_eq!(d.instance.state, WorkflowState::Success, "{d:#?}");
    d
}

fn attempts<'a>(d: &'a RunDetail, task: &str) -> Vec<&'a orca_store::TaskInstanceRow> {
    let mut v: Vec<_> = d.tasks.iter().filter(|t| t.task_name == task).collect();
    v.sort_by_key(|t| t.attempt);
    v
}

fn last_state(d: &RunDetail, task: &str) -> Option<TaskState> {
    attempts(d, task).last().map(|t| t.state)
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

async fn run_example(file: &str) -> (RunDetail, Client, Standalone, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path()).await;
    let c = client(&s);
    let path = examples_dir().join(file);
    let spec = orca_common::workflow::parse_workflow_file(&path).expect("example parses");
    let source = std::fs::read_to_string(&path).unwrap();
    let wf = c.apply(&spec, &source).await.unwrap();
    let trig = c
        .trigger(&wf.project, &wf.name, BTreeMap::new())
        .await
        .unwrap();
    let id = instance_of(&c, trig.command_id).await;
    let d = finish(&c, id).await;
    (d, c, s, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_example_succeeds_with_one_retry_and_passes_parameters() {
    let (d, c, s, _dir) = run_example("quickstart.yaml").await;
    assert_eq!(d.instance.state, WorkflowState::Success, "{d:#?}");
    let flaky = attempts(&d, "flaky_load");
    assert_eq!(
        flaky.len(),
        2,
        "flaky_load fails once then succeeds: {flaky:#?}"
    );
    assert_eq!(flaky[0].state, TaskState::Failure);
    assert_eq!(flaky[1].state, TaskState::Success);
    let shell = attempts(&d, "transform_shell")[0];
    let log = c.task_log(shell.id).await.unwrap();
    assert!(
        log.contains("hello from shell: extract produced 42 rows"),
        "{log}"
    );
    let py = attempts(&d, "transform_python")[0];
    let log = c.task_log(py.id).await.unwrap();
    assert!(log.contains("python doubles the rows: 84"), "{log}");
    // Hop order: a successor never starts before its upstream ended.
    let extract_end = attempts(&d, "extract")[0].end_time.unwrap();
    assert!(shell.start_time.unwrap() >= extract_end);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ml_pipeline_example_succeeds() {
    let (d, c, s, _dir) = run_example("ml-pipeline.yaml").await;
    if d.instance.state != WorkflowState::Success {
        for t in &d.tasks {
            eprintln!(
                "--- {} ---\n{}",
                t.task_name,
                c.task_log(t.id).await.unwrap_or_default()
            );
        }
    }
    assert_eq!(d.instance.state, WorkflowState::Success, "{d:#?}");
    let eval = attempts(&d, "evaluate")[0];
    let acc: f64 = eval.out_params["test_accuracy"].parse().unwrap();
    assert!(acc >= 0.9, "accuracy {acc}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_new_attempts_and_then_the_workflow_fails() {
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path()).await;
    let c = client(&s);
    let id = start(
        &c,
        r#"
workflow: {name: always-fails}
tasks:
  - {name: bad, task_type: Shell, command: "echo trying; exit 3", fail_retry_times: 2, fail_retry_interval: 0s}
  - {name: after, task_type: Shell, deps: [bad], command: "true"}
"#,
        &[],
    )
    .await;
    let d = finish(&c, id).await;
    assert_eq!(d.instance.state, WorkflowState::Failure);
    let bad = attempts(&d, "bad");
    assert_eq!(
        bad.iter().map(|t| t.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(
        bad.iter()
            .all(|t| t.state == TaskState::Failure && t.exit_code == Some(3))
    );
    assert!(
        attempts(&d, "after").is_empty(),
        "downstream of a failed task never runs"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_kills_the_task_and_fails_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path()).await;
    let c = client(&s);
    let started = Instant::now();
    let id = start(
        &c,
        r#"
workflow: {name: too-slow}
tasks:
  - {name: slow, task_type: Shell, command: "sleep 60", timeout: 1s}
"#,
        &[],
    )
    .await;
    let d = finish(&c, id).await;
    assert_eq!(d.instance.state, WorkflowState::Failure);
    assert_eq!(last_state(&d, "slow"), Some(TaskState::Timeout));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "killed long before sleep 60 ends"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_strategy_end_kills_running_branches() {
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path()).await;
    let c = client(&s);
    let id = start(
        &c,
        r#"
workflow: {name: end-strategy, failure_strategy: END}
tasks:
  - {name: long, task_type: Shell, command: "sleep 60"}
  - {name: after_long, task_type: Shell, deps: [long], command: "true"}
  - {name: fails, task_type: Shell, command: "exit 1"}
"#,
        &[],
    )
    .await;
    let d = finish(&c, id).await;
    assert_eq!(d.instance.state, WorkflowState::Failure, "{d:#?}");
    assert_eq!(last_state(&d, "fails"), Some(TaskState::Failure));
    assert_eq!(last_state(&d, "long"), Some(TaskState::Killed));
    assert!(attempts(&d, "after_long").is_empty());
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_strategy_continue_runs_independent_branches() {
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path()).await;
    let c = client(&s);
    let id = start(
        &c,
        r#"
workflow: {name: continue-strategy, failure_strategy: continue}
tasks:
  - {name: fails, task_type: Shell, command: "exit 1"}
  - {name: child_of_failed, task_type: Shell, deps: [fails], command: "true"}
  - {name: grandchild, task_type: Shell, deps: [child_of_failed], command: "true"}
  - {name: ok, task_type: Shell, command: "sleep 0.2"}
  - {name: child_of_ok, task_type: Shell, deps: [ok], command: "true"}
"#,
        &[],
    )
    .await;
    let d = finish(&c, id).await;
    assert_eq!(d.instance.state, WorkflowState::Failure, "{d:#?}");
    assert_eq!(last_state(&d, "child_of_ok"), Some(TaskState::Success));
    assert_eq!(
        last_state(&d, "child_of_failed"),
        Some(TaskState::UpstreamFailed)
    );
    assert_eq!(
        last_state(&d, "grandchild"),
        Some(TaskState::UpstreamFailed)
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_flow_and_values_never_run_as_shell_code() {
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path()).await;
    let c = client(&s);
    let pwned = dir.path().join("pwned");
    let evil = format!("$(touch {}); `touch {}`", pwned.display(), pwned.display());
    let id = start(
        &c,
        r#"
workflow:
  name: params
  param: {who: global, evil: placeholder}
tasks:
  - name: produce
    task_type: Shell
    command: |
      echo "quoted=${evil}"
      echo unquoted=${evil}
      echo "who=${who}"
      echo '${setValue(made=by produce)}'
  - name: consume
    task_type: Python
    deps: [produce]
    definition: |
      print("made=${made}|evil=${evil}")
"#,
        &[("who", "start"), ("evil", &evil)],
    )
    .await;
    let d = finish(&c, id).await;
    assert_eq!(d.instance.state, WorkflowState::Success, "{d:#?}");
    let log = c.task_log(attempts(&d, "produce")[0].id).await.unwrap();
    assert!(log.contains(&format!("quoted={evil}")), "{log}");
    assert!(log.contains(&format!("unquoted={evil}")), "{log}");
    assert!(
        log.contains("who=start"),
        "start-time params override globals: {log}"
    );
    let log = c.task_log(attempts(&d, "consume")[0].id).await.unwrap();
    assert!(
        log.contains(&format!("made=by produce|evil={evil}")),
        "{log}"
    );
    assert!(!pwned.exists(), "a parameter value ran as shell code");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_standalone_resumes_and_a_task_running_across_the_restart_reports() {
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate");
    let yaml = format!(
        r#"
workflow: {{name: resume}}
tasks:
  - name: across_restart
    task_type: Shell
    command: |
      while [ ! -e "{gate}" ]; do sleep 0.05; done
      echo '${{setValue(seen=yes)}}'
  - {{name: after, task_type: Shell, deps: [across_restart], command: "echo after=${{seen}}"}}
"#,
        gate = gate.display()
    );
    let s = standalone(dir.path()).await;
    let c = client(&s);
    let id = start(&c, &yaml, &[]).await;
    wait_run(&c, id, "the task to run", |d| {
        last_state(d, "across_restart") == Some(TaskState::Running)
    })
    .await;
    s.shutdown_keep_tasks().await;

    let s = standalone(dir.path()).await;
    let c = client(&s);
    std::fs::write(&gate, b"go").unwrap();
    let d = finish(&c, id).await;
    assert_eq!(d.instance.state, WorkflowState::Success, "{d:#?}");
    let runs = attempts(&d, "across_restart");
    assert_eq!(runs.len(), 1, "adopted, not run twice: {runs:#?}");
    assert_eq!(
        runs[0].out_params.get("seen").map(String::as_str),
        Some("yes")
    );
    let log = c.task_log(attempts(&d, "after")[0].id).await.unwrap();
    assert!(log.contains("after=yes"), "{log}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_run_kills_its_tasks_and_ends_it_in_stop() {
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path()).await;
    let c = client(&s);
    let id = start(
        &c,
        r#"
workflow: {name: to-stop}
tasks:
  - {name: long, task_type: Shell, command: "sleep 60"}
  - {name: after, task_type: Shell, deps: [long], command: "true"}
"#,
        &[],
    )
    .await;
    wait_run(&c, id, "the task to run", |d| {
        last_state(d, "long") == Some(TaskState::Running)
    })
    .await;
    let started = Instant::now();
    c.stop(id).await.expect("stop accepted");
    let d = finish(&c, id).await;
    assert_eq!(d.instance.state, WorkflowState::Stop, "{d:#?}");
    assert_eq!(last_state(&d, "long"), Some(TaskState::Killed));
    assert!(attempts(&d, "after").is_empty());
    assert!(started.elapsed() < Duration::from_secs(30));
    let err = c.stop(id).await.unwrap_err().to_string();
    assert!(
        err.contains("409") && err.contains("already finished"),
        "{err}"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_without_an_eligible_worker_waits_visibly_and_can_be_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path()).await;
    let c = client(&s);
    let id = start(
        &c,
        r#"
workflow: {name: no-worker}
tasks:
  - {name: needs_env, task_type: Shell, command: "true", environment: {conda: not-hosted-here}}
"#,
        &[],
    )
    .await;
    let d = wait_run(&c, id, "the task to wait for a worker", |d| {
        last_state(d, "needs_env") == Some(TaskState::Submitted)
    })
    .await;
    let msg = attempts(&d, "needs_env")[0]
        .message
        .clone()
        .unwrap_or_default();
    assert!(
        msg.contains("not-hosted-here"),
        "the reason names the environment: {msg}"
    );
    c.stop(id).await.unwrap();
    let d = finish(&c, id).await;
    assert_eq!(d.instance.state, WorkflowState::Stop);
    assert_eq!(last_state(&d, "needs_env"), Some(TaskState::Killed));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_requests_without_a_valid_token() {
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path()).await;
    let bad = Client::new(&s.url, "orca_wrong");
    let err = bad.run(1).await.unwrap_err().to_string();
    assert!(err.contains("401"), "{err}");
    let creds = orca::client::read_credentials(dir.path()).unwrap();
    assert_eq!(creds.token, s.token);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("cli.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_recover_failed_force_success_rerun_and_run_from_a_task() {
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path()).await;
    let c = client(&s);
    let gate = dir.path().join("gate");
    let fixed = dir.path().join("fixed");
    let yaml = format!(
        r#"
workflow: {{name: ops}}
tasks:
  - name: first
    task_type: Shell
    command: |
      while [ ! -e "{gate}" ]; do sleep 0.05; done
  - {{name: second, task_type: Shell, deps: [first], command: "true"}}
  - name: flaky
    task_type: Shell
    deps: [second]
    command: '[ -e "{fixed}" ]'
  - {{name: last, task_type: Shell, deps: [flaky], command: "true"}}
"#,
        gate = gate.display(),
        fixed = fixed.display()
    );
    let id = start(&c, &yaml, &[]).await;
    wait_run(&c, id, "first to run", |d| {
        last_state(d, "first") == Some(TaskState::Running)
    })
    .await;
    // Pause: the running task finishes, nothing new starts.
    c.run_op(id, "pause").await.unwrap();
    std::fs::write(&gate, b"go").unwrap();
    let d = wait_run(&c, id, "the pause", |d| {
        d.instance.state == WorkflowState::Paused
    })
    .await;
    assert_eq!(last_state(&d, "first"), Some(TaskState::Success));
    assert!(
        attempts(&d, "second").is_empty(),
        "nothing starts while paused: {d:#?}"
    );
    // Resume: it goes on, and fails at `flaky`.
    c.run_op(id, "resume").await.unwrap();
    let d = finish(&c, id).await;
    assert_eq!(d.instance.state, WorkflowState::Failure, "{d:#?}");
    assert_eq!(last_state(&d, "flaky"), Some(TaskState::Failure));
    // Recover failed: fixed, the failed task and what follows run again in the same run.
    std::fs::write(&fixed, b"").unwrap();
    c.run_op(id, "recover-failed").await.unwrap();
    let d = wait_run(&c, id, "the recovered run", |d| {
        d.instance.state == WorkflowState::Success
    })
    .await;
    assert_eq!(attempts(&d, "flaky").len(), 2);
    assert_eq!(
        attempts(&d, "first").len(),
        1,
        "succeeded tasks do not run again"
    );
    assert_eq!(last_state(&d, "last"), Some(TaskState::Success));

    // Force success: a failed task is marked done, then the run continues.
    std::fs::remove_file(&fixed).unwrap();
    let id2 = start(&c, &yaml, &[]).await;
    let d = finish(&c, id2).await;
    assert_eq!(d.instance.state, WorkflowState::Failure);
    c.force_success(id2, "flaky").await.unwrap();
    wait_run(&c, id2, "the forced task", |d| {
        last_state(d, "flaky") == Some(TaskState::Success)
    })
    .await;
    c.run_op(id2, "recover-failed").await.unwrap();
    let d = wait_run(&c, id2, "the run to go on", |d| {
        d.instance.state == WorkflowState::Success
    })
    .await;
    assert_eq!(attempts(&d, "flaky").len(), 1, "forced, not re-run");
    assert_eq!(last_state(&d, "last"), Some(TaskState::Success));

    // Rerun: a new run with the same parameters.
    let t = c.rerun(id).await.unwrap();
    let id3 = instance_of(&c, t.command_id).await;
    assert_ne!(id3, id);
    assert_eq!(finish(&c, id3).await.instance.state, WorkflowState::Failure);

    // Run from a task: only `flaky` and what is downstream of it.
    std::fs::write(&fixed, b"").unwrap();
    let spec = parse(&yaml);
    let t = c
        .trigger_with(
            &spec.project,
            &spec.name,
            orca_api::routes::runs::TriggerRequest {
                start_tasks: vec!["flaky".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let id4 = instance_of(&c, t.command_id).await;
    let d = finish(&c, id4).await;
    assert_eq!(d.instance.state, WorkflowState::Success, "{d:#?}");
    let ran: Vec<&str> = d.tasks.iter().map(|t| t.task_name.as_str()).collect();
    assert_eq!(ran, vec!["flaky", "last"]);
    let err = c
        .trigger_with(
            &spec.project,
            &spec.name,
            orca_api::routes::runs::TriggerRequest {
                start_tasks: vec!["nope".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope") && err.contains("422"), "{err}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_of_finished_attempts_outlive_their_worker() {
    logs_outlive_their_worker(LogStoreConfig::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_in_a_dir_log_store_outlive_their_worker() {
    let logs = tempfile::tempdir().unwrap();
    let cfg = LogStoreConfig {
        kind: LogStoreKind::Dir,
        dir: logs.path().to_path_buf(),
        ..Default::default()
    };
    logs_outlive_their_worker(cfg).await;
}

/// A finished attempt's log, shipped to the log store `cfg`, is readable
/// through the REST API (whole, range, tail, search, download) after the
/// worker and its attempt dirs are gone; with an external store the bytes
/// are read from there.
async fn logs_outlive_their_worker(cfg: LogStoreConfig) {
    let dir = tempfile::tempdir().unwrap();
    let start_with = |dir: PathBuf, cfg: LogStoreConfig| async move {
        Standalone::start_with_log_store(options(&dir), &cfg)
            .await
            .expect("standalone starts")
    };
    let s = start_with(dir.path().to_path_buf(), cfg.clone()).await;
    let c = client(&s);
    // `seq` makes a log over 1 MiB (under the 2 MiB cap): reads cross the
    // API's chunk boundaries.
    let id = start(
        &c,
        r#"
workflow: {name: logs}
tasks:
  - {name: talk, task_type: Shell, command: "echo hello from the worker; echo to stderr >&2"}
  - {name: count, task_type: Shell, command: "seq 1 200000"}
"#,
        &[],
    )
    .await;
    let d = finish(&c, id).await;
    assert_eq!(d.instance.state, WorkflowState::Success);
    let ti = attempts(&d, "talk")[0].id;
    let count = attempts(&d, "count")[0].id;
    // Wait until the worker shipped the logs (it renames the attempt's
    // terminal file to a shipped state).
    for task in ["talk", "count"] {
        let log = std::path::PathBuf::from(attempts(&d, task)[0].log_path.clone().unwrap());
        let shipped =
            ["terminal.shipped.json", "terminal.done.json"].map(|n| log.with_file_name(n));
        let deadline = Instant::now() + DEADLINE;
        while !shipped.iter().any(|m| m.exists()) {
            assert!(Instant::now() < deadline, "log of {task} never shipped");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let whole = c.task_log(count).await.unwrap();
    s.shutdown().await;
    // The worker and everything it had on disk are gone.
    std::fs::remove_dir_all(dir.path().join("worker")).unwrap();
    let s = start_with(dir.path().to_path_buf(), cfg.clone()).await;
    let c = client(&s);
    let log = c.task_log(ti).await.unwrap();
    assert!(
        log.contains("hello from the worker") && log.contains("to stderr"),
        "{log}"
    );

    // Range, tail, search and download of the long log.
    assert_eq!(c.task_log(count).await.unwrap(), whole);
    assert!(
        whole.ends_with("199999\n200000\n"),
        "{}",
        &whole[whole.len() - 40..]
    );
    let http = reqwest::Client::new();
    let get = |path: String| {
        let req = http
            .get(format!("{}/api/v1/task-instances/{path}", s.url))
            .bearer_auth(&s.token);
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 200, "{path}");
            resp.text().await.unwrap()
        }
    };
    let range = get(format!("{count}/log?offset=1048570&limit=20")).await;
    assert_eq!(range, whole[1_048_570..1_048_590]);
    let tail = get(format!("{count}/log?tail=20000")).await;
    let expected_tail: String = (180_001..=200_000).map(|n| format!("{n}\n")).collect();
    assert_eq!(tail, expected_tail);
    let line_of = |text: &str| whole.lines().position(|l| l == text).unwrap() + 1;
    let found: serde_json::Value = serde_json::from_str(
        &get(format!(
            "{count}/log/search?q=%5E1999%5B89%5D9%24&regex=true"
        ))
        .await,
    )
    .unwrap();
    let lines: Vec<u64> = found["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["line"].as_u64().unwrap())
        .collect();
    assert_eq!(
        lines,
        vec![line_of("199989") as u64, line_of("199999") as u64],
        "{found}"
    );
    assert_eq!(get(format!("{count}/log/download")).await, whole);

    if cfg.kind == LogStoreKind::Dir {
        // The bytes are in the directory, one file per attempt.
        let file = cfg.dir.join(format!("{id}/{count}.1.log"));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), whole);
        // Without the file the log is gone: it was read from there.
        std::fs::remove_file(&file).unwrap();
        let resp = http
            .get(format!("{}/api/v1/task-instances/{count}/log", s.url))
            .bearer_auth(&s.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 502);
    }
    s.shutdown().await;
}

/// A workflow with `python_process: per_run` runs its chained PYTHON tasks
/// in one warm process (the master passes the policy with each dispatch);
/// without it every task has its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_tasks_of_a_per_run_workflow_share_a_process() {
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path()).await;
    let c = client(&s);
    let chain = |name: &str, policy: &str| {
        format!(
            "workflow:\n  name: {name}\n{policy}tasks:\n  - {{name: a, task_type: Python, definition: \"print(1)\"}}\n  - {{name: b, task_type: Python, definition: \"print(2)\", deps: [a]}}\n  - {{name: c, task_type: Python, definition: \"print(3)\", deps: [b]}}\n"
        )
    };
    let pids = |d: &RunDetail| -> Vec<Option<i64>> {
        ["a", "b", "c"]
            .iter()
            .map(|t| attempts(d, t)[0].pid)
            .collect()
    };
    let d = run_ok(&c, &chain("shared", "  python_process: per_run\n")).await;
    let shared = pids(&d);
    assert!(
        shared[0].is_some() && shared.iter().all(|p| *p == shared[0]),
        "{shared:?}"
    );
    // A task of such a run may ask for its own process: it gets a fresh
    // one, and the task after it the run's kept one again.
    let d = run_ok(
        &c,
        &chain("shared", "  python_process: per_run\n").replace(
            "definition: \"print(2)\"",
            "definition: \"print(2)\", python_process: per_task",
        ),
    )
    .await;
    let mixed = pids(&d);
    assert!(mixed[1] != mixed[0] && mixed[2] == mixed[0], "{mixed:?}");
    let d = run_ok(&c, &chain("own", "")).await;
    let own = pids(&d);
    assert!(own[0] != own[1] && own[1] != own[2], "{own:?}");
    s.shutdown().await;
}

/// `orca standalone --config` applies the task-running keys of `[worker]`
/// to its embedded worker: a preloaded module is there in a forked task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_takes_the_task_running_keys_of_the_worker_section() {
    let dir = tempfile::tempdir().unwrap();
    let worker = orca_common::config::WorkerSection {
        python_preload: vec!["colorsys".into()],
        ..Default::default()
    };
    let s = Standalone::start_with_config(options(dir.path()), &LogStoreConfig::default(), &worker)
        .await
        .expect("standalone starts");
    let c = client(&s);
    let d = run_ok(
        &c,
        "workflow: {name: preload}\ntasks:\n  - {name: look, task_type: Python, definition: \"import sys\\nprint('preloaded=%s' % ('colorsys' in sys.modules))\"}\n",
    )
    .await;
    let log = c.task_log(attempts(&d, "look")[0].id).await.unwrap();
    assert_eq!(log, "preloaded=True\n");
    s.shutdown().await;
}

/// A standalone stopped right after its run finished (as `orca run` does)
/// still ships the last task's log, which the worker batches for a moment:
/// it is readable after a restart without the worker's attempt dirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_stopped_at_once_ships_the_last_log_first() {
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path()).await;
    let c = client(&s);
    let d = run_ok(
        &c,
        "workflow: {name: last-log}\ntasks:\n  - {name: talk, task_type: Shell, command: 'echo the last words'}\n",
    )
    .await;
    let ti = attempts(&d, "talk")[0].id;
    s.shutdown().await;
    std::fs::remove_dir_all(dir.path().join("worker")).unwrap();
    let s = standalone(dir.path()).await;
    let log = client(&s).task_log(ti).await.unwrap();
    assert!(log.contains("the last words"), "{log}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_write_endpoints_is_problem_json_never_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path()).await;
    // A connection per request: after refusing the oversized body the
    // server closes its connection, which a pooled client would reuse.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = |p: &str| format!("{}/api/v1{p}", s.url);
    let cases: Vec<(reqwest::Method, String, Option<Vec<u8>>, &str)> = vec![
        (
            reqwest::Method::POST,
            url("/workflows"),
            Some(b"{not json".to_vec()),
            "malformed JSON",
        ),
        (
            reqwest::Method::POST,
            url("/workflows"),
            Some(br#"{"spec": {"name": 5}}"#.to_vec()),
            "wrong types",
        ),
        (
            reqwest::Method::POST,
            url("/workflows"),
            Some(vec![b' '; 3 * 1024 * 1024]),
            "oversized body",
        ),
        (
            reqwest::Method::POST,
            url("/workflows"),
            Some(
                br#"{"spec": {"name": "cyc", "tasks": [
                    {"name": "a", "task_type": "SHELL", "script": "true", "deps": ["b"]},
                    {"name": "b", "task_type": "SHELL", "script": "true", "deps": ["a"]}]}}"#
                    .to_vec(),
            ),
            "a cycle",
        ),
        (
            reqwest::Method::POST,
            url("/runs/987654/stop"),
            None,
            "an unknown run",
        ),
        (
            reqwest::Method::POST,
            url("/runs/not-a-number/stop"),
            None,
            "a bad id",
        ),
        (
            reqwest::Method::POST,
            url("/workflows/default/nope/runs"),
            Some(b"{}".to_vec()),
            "an unknown workflow",
        ),
        (
            reqwest::Method::POST,
            url("/workflows:import"),
            Some(br#"{"format": "dolphinscheduler-json", "content": "[{]"}"#.to_vec()),
            "a broken import",
        ),
    ];
    for (method, u, body, what) in cases {
        let mut req = http
            .request(method, &u)
            .bearer_auth(&s.token)
            .header("content-type", "application/json");
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            // The server may answer 413 and close before the client has
            // written the whole oversized body: the upload breaks (EPIPE /
            // reset) — a refusal too. The server must still be fine (checked
            // after the loop).
            Err(e) if what == "oversized body" && e.is_request() => continue,
            Err(e) => panic!("{what}: {e}"),
        };
        let status = resp.status();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = resp.text().await.unwrap();
        assert!(status.is_client_error(), "{what}: {status} {text}");
        assert!(
            ctype.starts_with("application/problem+json"),
            "{what}: {ctype} {text}"
        );
        let p: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(
            p["code"].as_str().unwrap().starts_with("ORCA-"),
            "{what}: {p}"
        );
        assert_eq!(
            p["status"].as_u64(),
            Some(u64::from(status.as_u16())),
            "{what}"
        );
    }
    // The server is still fine.
    let c = client(&s);
    assert!(c.run(987654).await.unwrap_err().to_string().contains("404"));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_in_the_workflow_file_fires_runs() {
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path()).await;
    let c = client(&s);
    let yaml = r#"
workflow: {name: every-second, schedule: "* * * * * ? *"}
tasks:
  - {name: tick, task_type: Shell, command: "echo tick"}
"#;
    let spec = parse(yaml);
    c.apply(&spec, yaml).await.unwrap();
    let deadline = Instant::now() + DEADLINE;
    let runs = loop {
        let runs = reqwest::Client::new()
            .get(format!("{}/api/v1/runs", s.url))
            .bearer_auth(&s.token)
            .send()
            .await
            .unwrap()
            .json::<orca_api::page::Page<orca_store::WorkflowInstanceRow>>()
            .await
            .unwrap()
            .items;
        if runs
            .iter()
            .filter(|r| r.state == WorkflowState::Success)
            .count()
            >= 2
        {
            break runs;
        }
        assert!(
            Instant::now() < deadline,
            "the schedule never fired twice: {runs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for r in &runs {
        assert_eq!(
            r.schedule_time.timestamp_subsec_millis(),
            0,
            "fires on whole seconds: {r:?}"
        );
    }
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_starts_one_run_however_often_it_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path()).await;
    let c = client(&s);
    let yaml = "workflow: {name: once}\ntasks:\n  - {name: t, task_type: Shell, command: 'true'}\n";
    c.apply(&parse(yaml), yaml).await.unwrap();
    let http = reqwest::Client::new();
    let trigger = |key: &'static str| {
        let req = http
            .post(format!("{}/api/v1/workflows/default/once/runs", s.url))
            .bearer_auth(&s.token)
            .header("Idempotency-Key", key)
            .json(&serde_json::json!({}));
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status();
            (status, resp.json::<serde_json::Value>().await.unwrap())
        }
    };
    // The same key, sent at once and again later: one command, one run.
    let (a, b) = tokio::join!(trigger("retry-1"), trigger("retry-1"));
    let (_, c3) = trigger("retry-1").await;
    assert!(a.0.is_success() && b.0.is_success(), "{a:?} {b:?}");
    assert_eq!(a.1["command_id"], b.1["command_id"]);
    assert_eq!(a.1["command_id"], c3["command_id"]);
    assert_eq!(c3["replayed"], true);
    let (_, other) = trigger("retry-2").await;
    assert_ne!(
        other["command_id"], a.1["command_id"],
        "another key is another run"
    );
    let (status, bad) = trigger("has space").await;
    assert_eq!(status.as_u16(), 422, "{bad}");
    let run = instance_of(&c, a.1["command_id"].as_i64().unwrap()).await;
    assert_eq!(finish(&c, run).await.instance.state, WorkflowState::Success);
    let runs = http
        .get(format!("{}/api/v1/runs", s.url))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap()
        .json::<orca_api::page::Page<serde_json::Value>>()
        .await
        .unwrap()
        .items;
    assert_eq!(runs.len(), 2, "one run per key: {runs:#?}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_list_filters_and_pages_with_a_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path()).await;
    let c = client(&s);
    let ok = "workflow: {name: ok}\ntasks:\n  - {name: t, task_type: Shell, command: 'true'}\n";
    let bad = "workflow: {name: bad}\ntasks:\n  - {name: t, task_type: Shell, command: 'exit 1'}\n";
    let mut ids = Vec::new();
    for yaml in [ok, bad, ok, bad, ok] {
        let id = start(&c, yaml, &[]).await;
        finish(&c, id).await;
        ids.push(id);
    }
    let http = reqwest::Client::new();
    let list = |query: &str| {
        let req = http
            .get(format!("{}/api/v1/runs?{query}", s.url))
            .bearer_auth(&s.token);
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let body: serde_json::Value = resp.json().await.unwrap();
            (status, body)
        }
    };
    let ids_of = |v: &serde_json::Value| -> Vec<i64> {
        v["items"]
            .as_array()
            .unwrap_or_else(|| panic!("not a page: {v}"))
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect()
    };
    let (_, all) = list("limit=10").await;
    assert_eq!(ids_of(&all), ids.iter().rev().copied().collect::<Vec<_>>());
    let (_, failed) = list("state=failure").await;
    assert_eq!(ids_of(&failed), vec![ids[3], ids[1]]);
    let (_, ok_runs) = list("workflow=ok&limit=2").await;
    assert_eq!(ids_of(&ok_runs), vec![ids[4], ids[2]]);
    let cursor = ok_runs["next_cursor"].as_str().expect("a next page");
    let (_, next) = list(&format!("workflow=ok&limit=2&cursor={cursor}")).await;
    assert_eq!(
        ids_of(&next),
        vec![ids[0]],
        "the cursor continues where the page ended"
    );
    assert!(next.get("next_cursor").is_none(), "the last page: {next}");
    let (_, none) = list("since=2999-01-01T00:00:00Z").await;
    assert!(ids_of(&none).is_empty());
    let (status, problem) = list("state=sleeping").await;
    assert_eq!(status.as_u16(), 422, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("state"),
        "{problem}"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_operations_report_each_run() {
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path()).await;
    let c = client(&s);
    let long =
        "workflow: {name: long}\ntasks:\n  - {name: t, task_type: Shell, command: 'sleep 60'}\n";
    let quick =
        "workflow: {name: quick}\ntasks:\n  - {name: t, task_type: Shell, command: 'true'}\n";
    let running = start(&c, long, &[]).await;
    let done = start(&c, quick, &[]).await;
    finish(&c, done).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/runs:bulk", s.url))
        .bearer_auth(&s.token)
        .json(&serde_json::json!({"op": "stop", "ids": [running, done, 424242]}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let items: Vec<serde_json::Value> = resp.json().await.unwrap();
    let statuses: Vec<u64> = items
        .iter()
        .map(|i| i["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![200, 409, 404], "{items:#?}");
    assert!(
        items[1]["detail"].as_str().unwrap().contains("finished"),
        "{items:#?}"
    );
    assert_eq!(
        finish(&c, running).await.instance.state,
        WorkflowState::Stop
    );
    let bad = reqwest::Client::new()
        .post(format!("{}/api/v1/runs:bulk", s.url))
        .bearer_auth(&s.token)
        .json(&serde_json::json!({"op": "explode", "ids": [running]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 422);
    s.shutdown().await;
}
