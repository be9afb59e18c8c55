//! The public gRPC API (`orca.v1.OrcaApi`) against a real standalone:
//! runs end to end, the same authorisation as REST, gRPC health and server
//! reflection.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use orca::standalone::{Standalone, StandaloneOptions};
use orca_proto::v1 as pb;
use orca_proto::v1::orca_api_client::OrcaApiClient;
use tonic::transport::Channel;
use tonic::{Code, Request};

const DEADLINE: Duration = Duration::from_secs(120);

async fn standalone(dir: &Path) -> Standalone {
    Standalone::start(StandaloneOptions {
        data_dir: dir.to_path_buf(),
        http: SocketAddr::from(([127, 0, 0, 1], 0)),
        worker_slots: 4,
        python: std::env::var("ORCA_PYTHON").unwrap_or_else(|_| "python3".into()),
    })
    .await
    .expect("standalone starts")
}

async fn channel(s: &Standalone) -> Channel {
    Channel::from_shared(format!("http://{}", s.grpc_addr))
        .expect("valid uri")
        .connect()
        .await
        .expect("gRPC API reachable")
}

/// A request carrying `token` as a bearer token (none when `None`).
fn req<T>(token: Option<&str>, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    if let Some(t) = token {
        r.metadata_mut().insert(
            "authorization",
            format!("Bearer {t}").parse().expect("ascii token"),
        );
    }
    r
}

fn spec_json(yaml: &str) -> String {
    let spec = orca_common::workflow::parse_workflow_str(yaml, "test.yaml", Path::new("."))
        .unwrap_or_else(|e| panic!("test workflow must parse: {e}"));
    serde_json::to_string(&spec).expect("spec serialises")
}

/// Creates a user (via REST, as the admin) with `role` in `default` (none
/// when `None`); returns its session token.
async fn user(s: &Standalone, name: &str, role: Option<&str>) -> String {
    let http = reqwest::Client::new();
    let password = "a-long-test-password";
    let ok = |r: reqwest::Response| {
        assert!(r.status().is_success(), "{} {}", r.url(), r.status());
        r
    };
    ok(http
        .post(format!("{}/api/v1/users", s.url))
        .bearer_auth(&s.token)
        .json(&serde_json::json!({"username": name, "password": password}))
        .send()
        .await
        .expect("create user"));
    if let Some(role) = role {
        ok(http
            .put(format!("{}/api/v1/projects/default/members/{name}", s.url))
            .bearer_auth(&s.token)
            .json(&serde_json::json!({ "role": role }))
            .send()
            .await
            .expect("grant role"));
    }
    let login: serde_json::Value = ok(http
        .post(format!("{}/api/v1/auth/login", s.url))
        .json(&serde_json::json!({"username": name, "password": password}))
        .send()
        .await
        .expect("login"))
    .json()
    .await
    .expect("login body");
    login["token"].as_str().expect("a token").to_string()
}

/// Applies and triggers `yaml` as `token`; waits for the run; returns its id.
async fn start(c: &mut OrcaApiClient<Channel>, token: &str, yaml: &str) -> i64 {
    let wf = c
        .apply_workflow(req(
            Some(token),
            pb::ApplyWorkflowRequest {
                spec_json: spec_json(yaml),
                source: yaml.to_string(),
            },
        ))
        .await
        .expect("apply")
        .into_inner();
    assert_eq!(wf.project, "default");
    let trig = c
        .trigger_run(req(
            Some(token),
            pb::TriggerRunRequest {
                project: wf.project.clone(),
                name: wf.name.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("trigger")
        .into_inner();
    assert_eq!(trig.version, wf.version);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let runs = c
            .list_runs(req(Some(token), pb::ListRunsRequest::default()))
            .await
            .expect("list runs")
            .into_inner()
            .runs;
        if let Some(r) = runs.iter().find(|r| r.command_id == Some(trig.command_id)) {
            return r.id;
        }
        assert!(
            Instant::now() < deadline,
            "command {} never ran",
            trig.command_id
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_run(
    c: &mut OrcaApiClient<Channel>,
    token: &str,
    id: i64,
    what: &str,
    pred: impl Fn(&pb::RunDetail) -> bool,
) -> pb::RunDetail {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let d = c
            .get_run(req(Some(token), pb::RunRef { id }))
            .await
            .expect("get run")
            .into_inner();
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

fn state(d: &pb::RunDetail) -> &str {
    d.run.as_ref().map(|r| r.state.as_str()).unwrap_or_default()
}

#[tokio::test]
async fn runs_over_grpc_with_rest_authorisation() {
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path()).await;
    let admin = s.token.clone();
    let mut c = OrcaApiClient::new(channel(&s).await);

    // Apply → trigger → SUCCESS, with its task's log.
    let yaml = "workflow: {name: grpc-hello}\ntasks:\n  - {name: hi, task_type: Shell, command: \"echo hello-over-grpc\"}\n";
    let run = start(&mut c, &admin, yaml).await;
    let done = wait_run(&mut c, &admin, run, "SUCCESS", |d| state(d) == "SUCCESS").await;
    let r = done.run.as_ref().unwrap();
    assert_eq!(
        (r.project.as_str(), r.name.as_str()),
        ("default", "grpc-hello")
    );
    assert!(r.end_time_unix_ms.is_some());
    assert_eq!(done.tasks.len(), 1);
    let t = &done.tasks[0];
    assert_eq!((t.task_name.as_str(), t.state.as_str()), ("hi", "SUCCESS"));
    let log = c
        .get_task_log(req(
            Some(&admin),
            pb::GetTaskLogRequest {
                task_instance_id: t.id,
                ..Default::default()
            },
        ))
        .await
        .expect("task log")
        .into_inner();
    assert!(log.text.contains("hello-over-grpc"), "{log:?}");
    let wf = c
        .get_workflow(req(
            Some(&admin),
            pb::GetWorkflowRequest {
                project: "default".into(),
                name: "grpc-hello".into(),
            },
        ))
        .await
        .expect("get workflow")
        .into_inner();
    assert_eq!(wf.source, yaml);
    assert!(wf.spec_json.contains("hello-over-grpc"), "{}", wf.spec_json);

    // Stop a long run: a viewer may read it but not stop it; an outsider
    // does not see it; the admin stops it.
    let viewer = user(&s, "grpc-viewer", Some("viewer")).await;
    let outsider = user(&s, "grpc-outsider", None).await;
    let slow = "workflow: {name: grpc-slow}\ntasks:\n  - {name: nap, task_type: Shell, command: \"sleep 60\"}\n";
    let long = start(&mut c, &admin, slow).await;
    wait_run(&mut c, &admin, long, "the task to run", |d| {
        d.tasks.iter().any(|t| t.state == "RUNNING")
    })
    .await;
    let seen = c
        .get_run(req(Some(&viewer), pb::RunRef { id: long }))
        .await
        .expect("a viewer reads the run");
    assert_eq!(seen.into_inner().run.unwrap().id, long);
    let denied = c
        .stop_run(req(Some(&viewer), pb::RunRef { id: long }))
        .await
        .expect_err("a viewer cannot stop");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(
        denied.message().starts_with("ORCA-API-FORBIDDEN"),
        "{denied:?}"
    );
    let denied = c
        .trigger_run(req(
            Some(&viewer),
            pb::TriggerRunRequest {
                project: "default".into(),
                name: "grpc-slow".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("a viewer cannot trigger");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    for (who, id) in [(&outsider, long), (&admin, 999_999)] {
        let hidden = c
            .stop_run(req(Some(who), pb::RunRef { id }))
            .await
            .expect_err("foreign or unknown run");
        assert_eq!(hidden.code(), Code::NotFound, "{hidden:?}");
        let hidden = c
            .get_run(req(Some(who), pb::RunRef { id }))
            .await
            .expect_err("foreign or unknown run");
        assert_eq!(hidden.code(), Code::NotFound, "{hidden:?}");
    }
    let outsider_runs = c
        .list_runs(req(Some(&outsider), pb::ListRunsRequest::default()))
        .await
        .expect("list runs")
        .into_inner();
    assert!(outsider_runs.runs.is_empty(), "{outsider_runs:?}");
    for token in [None, Some("orca_pat_not-a-token")] {
        let anon = c
            .get_run(req(token, pb::RunRef { id: long }))
            .await
            .expect_err("no or bad token");
        assert_eq!(anon.code(), Code::Unauthenticated, "{anon:?}");
    }
    let cmd = c
        .stop_run(req(Some(&admin), pb::RunRef { id: long }))
        .await
        .expect("admin stops")
        .into_inner();
    assert_eq!((cmd.kind.as_str(), cmd.run_id), ("STOP", Some(long)));
    wait_run(&mut c, &admin, long, "STOP", |d| state(d) == "STOP").await;
    let again = c
        .stop_run(req(Some(&admin), pb::RunRef { id: long }))
        .await
        .expect_err("a finished run cannot be stopped");
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");

    // Paging: before_id skips the newest run.
    let page = c
        .list_runs(req(
            Some(&admin),
            pb::ListRunsRequest {
                limit: 10,
                before_id: Some(long),
            },
        ))
        .await
        .expect("list runs")
        .into_inner();
    let ids: Vec<i64> = page.runs.iter().map(|r| r.id).collect();
    assert_eq!(ids, [run]);

    s.shutdown().await;
}

#[tokio::test]
async fn health_is_serving_and_reflection_lists_the_api() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path()).await;
    let ch = channel(&s).await;

    let mut health = HealthClient::new(ch.clone());
    for service in ["", "orca.v1.OrcaApi"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health check")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "orca.v1.WorkerService".into(),
        })
        .await
        .expect_err("internal services are not served here");
    assert_eq!(unknown.code(), Code::NotFound);

    let mut reflection = ServerReflectionClient::new(ch);
    let ask = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([ask]))
        .await
        .expect("reflection")
        .into_inner();
    let answer = answers
        .message()
        .await
        .expect("reflection answer")
        .expect("one answer");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a service list: {answer:?}");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"orca.v1.OrcaApi"), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.contains("Worker") || n.contains("Master")),
        "{names:?}"
    );

    s.shutdown().await;
}
