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

    // Paging: one run a page, newest first; the last page has no token.
    let list = |page_token: String, state: &str| pb::ListRunsRequest {
        page_size: 1,
        page_token,
        state: state.into(),
        ..Default::default()
    };
    let first = c
        .list_runs(req(Some(&admin), list(String::new(), "")))
        .await
        .expect("list runs")
        .into_inner();
    let ids: Vec<i64> = first.runs.iter().map(|r| r.id).collect();
    assert_eq!(ids, [long]);
    assert!(!first.next_page_token.is_empty());
    let second = c
        .list_runs(req(Some(&admin), list(first.next_page_token, "")))
        .await
        .expect("list runs, page 2")
        .into_inner();
    let ids: Vec<i64> = second.runs.iter().map(|r| r.id).collect();
    assert_eq!(ids, [run]);
    assert_eq!(second.next_page_token, "");
    // The same filters as REST.
    let stopped = c
        .list_runs(req(Some(&admin), list(String::new(), "stop")))
        .await
        .expect("list stopped runs")
        .into_inner();
    let ids: Vec<i64> = stopped.runs.iter().map(|r| r.id).collect();
    assert_eq!((ids, stopped.next_page_token.as_str()), (vec![long], ""));
    let bad = c
        .list_runs(req(Some(&admin), list("nonsense".into(), "")))
        .await
        .expect_err("a bad page token");
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    assert!(bad.message().contains("cursor"), "{bad:?}");

    s.shutdown().await;
}

/// Each REST route (`orca_api::routes::table`) and the RPC doing the same
/// (`None`: REST only).
const REST_TO_RPC: &[(&str, &str, Option<&str>)] = &[
    ("POST", "/auth/login", Some("Login")),
    ("POST", "/auth/logout", Some("Logout")),
    ("GET", "/auth/me", Some("WhoAmI")),
    ("POST", "/users/me/password", Some("ChangePassword")),
    ("POST", "/users", Some("CreateUser")),
    ("GET", "/users", Some("ListUsers")),
    ("PATCH", "/users/{username}", Some("UpdateUser")),
    ("POST", "/tokens", Some("CreateToken")),
    ("GET", "/tokens", Some("ListTokens")),
    ("DELETE", "/tokens/{id}", Some("DeleteToken")),
    ("GET", "/projects", Some("ListProjects")),
    ("POST", "/projects", Some("CreateProject")),
    ("GET", "/projects/{project}/members", Some("ListMembers")),
    (
        "PUT",
        "/projects/{project}/members/{username}",
        Some("PutMember"),
    ),
    (
        "DELETE",
        "/projects/{project}/members/{username}",
        Some("DeleteMember"),
    ),
    ("POST", "/workflows", Some("ApplyWorkflow")),
    ("GET", "/workflows", Some("ListWorkflows")),
    ("POST", "/workflows:import", Some("ImportWorkflows")),
    ("GET", "/workflows/{project}/{name}", Some("GetWorkflow")),
    (
        "DELETE",
        "/workflows/{project}/{name}",
        Some("DeleteWorkflow"),
    ),
    (
        "GET",
        "/workflows/{project}/{name}/versions",
        Some("ListWorkflowVersions"),
    ),
    (
        "GET",
        "/workflows/{project}/{name}/versions/{version}",
        Some("GetWorkflowVersion"),
    ),
    (
        "GET",
        "/workflows/{project}/{name}/versions/{version}/diff/{to}",
        Some("DiffWorkflowVersions"),
    ),
    (
        "POST",
        "/workflows/{project}/{name}/offline",
        Some("SetWorkflowOffline"),
    ),
    (
        "POST",
        "/workflows/{project}/{name}/online",
        Some("SetWorkflowOnline"),
    ),
    (
        "PUT",
        "/workflows/{project}/{name}/schedule",
        Some("PutSchedule"),
    ),
    (
        "GET",
        "/workflows/{project}/{name}/schedule",
        Some("GetSchedule"),
    ),
    (
        "GET",
        "/workflows/{project}/{name}/schedule/preview",
        Some("PreviewSchedule"),
    ),
    (
        "DELETE",
        "/workflows/{project}/{name}/schedule",
        Some("DeleteSchedule"),
    ),
    (
        "POST",
        "/workflows/{project}/{name}/runs",
        Some("TriggerRun"),
    ),
    ("GET", "/commands/{id}", Some("GetCommand")),
    ("GET", "/runs", Some("ListRuns")),
    ("POST", "/runs:bulk", Some("BulkRunOperation")),
    ("GET", "/runs/{id}", Some("GetRun")),
    ("POST", "/runs/{id}/stop", Some("StopRun")),
    ("POST", "/runs/{id}/pause", Some("PauseRun")),
    ("POST", "/runs/{id}/resume", Some("ResumeRun")),
    (
        "POST",
        "/runs/{id}/recover-failed",
        Some("RecoverFailedRun"),
    ),
    ("POST", "/runs/{id}/rerun", Some("RerunRun")),
    (
        "POST",
        "/runs/{id}/tasks/{task}/force-success",
        Some("ForceTaskSuccess"),
    ),
    ("GET", "/task-instances/{id}/log", Some("GetTaskLog")),
    // The whole log: `GetTaskLog` without `limit`.
    (
        "GET",
        "/task-instances/{id}/log/download",
        Some("GetTaskLog"),
    ),
    (
        "GET",
        "/task-instances/{id}/log/search",
        Some("SearchTaskLog"),
    ),
    (
        "GET",
        "/task-instances/{id}/log/follow",
        Some("FollowTaskLog"),
    ),
    ("GET", "/audit", Some("ListAuditEntries")),
    ("GET", "/workers", Some("ListWorkers")),
    ("GET", "/masters", Some("ListMasters")),
    ("GET", "/tenants", Some("ListTenants")),
    ("POST", "/tenants", Some("CreateTenant")),
    ("GET", "/tenants/{tenant}", Some("GetTenant")),
    ("PATCH", "/tenants/{tenant}", Some("UpdateTenant")),
    ("DELETE", "/tenants/{tenant}", Some("DeleteTenant")),
    ("GET", "/worker-groups", Some("ListWorkerGroups")),
    ("POST", "/worker-groups", Some("CreateWorkerGroup")),
    ("GET", "/worker-groups/{group}", Some("GetWorkerGroup")),
    ("PATCH", "/worker-groups/{group}", Some("UpdateWorkerGroup")),
    (
        "DELETE",
        "/worker-groups/{group}",
        Some("DeleteWorkerGroup"),
    ),
    ("GET", "/environments", Some("ListEnvironments")),
    ("POST", "/environments", Some("CreateEnvironment")),
    ("GET", "/environments/{environment}", Some("GetEnvironment")),
    (
        "PATCH",
        "/environments/{environment}",
        Some("UpdateEnvironment"),
    ),
    (
        "DELETE",
        "/environments/{environment}",
        Some("DeleteEnvironment"),
    ),
    // The REST API's own document; gRPC has server reflection.
    ("GET", "/openapi.json", None),
];

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

    // The service's methods, as grpcurl sees them: every REST operation.
    let ask = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "orca.v1.OrcaApi".into(),
        )),
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
    let Some(MessageResponse::FileDescriptorResponse(files)) = answer.message_response else {
        panic!("not a file descriptor: {answer:?}");
    };
    let methods: Vec<String> = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| {
            <prost_types::FileDescriptorProto as prost::Message>::decode(bytes.as_slice())
                .expect("a file descriptor")
        })
        .flat_map(|f| f.service)
        .filter(|svc| svc.name() == "OrcaApi")
        .flat_map(|svc| svc.method)
        .map(|m| m.name().to_string())
        .collect();
    // Every REST route has its RPC, and every RPC is one of a REST route.
    let routes = orca_api::routes::route_permissions();
    let mut mapped = std::collections::BTreeSet::new();
    for r in &routes {
        let key = (r.verb.as_str(), r.path);
        let Some((_, _, rpc)) = REST_TO_RPC.iter().find(|(v, p, _)| (*v, *p) == key) else {
            panic!(
                "REST {} {} has no RPC: add one (and map it in REST_TO_RPC)",
                key.0, key.1
            );
        };
        if let Some(rpc) = rpc {
            assert!(
                methods.iter().any(|m| m == rpc),
                "{rpc} missing: {methods:?}"
            );
            mapped.insert(rpc.to_string());
        }
    }
    for (v, p, _) in REST_TO_RPC {
        assert!(
            routes.iter().any(|r| (r.verb.as_str(), r.path) == (*v, *p)),
            "REST_TO_RPC maps {v} {p}, which is no route"
        );
    }
    let served: std::collections::BTreeSet<String> = methods.iter().cloned().collect();
    assert_eq!(served, mapped, "RPCs without a REST route, or unmapped");

    s.shutdown().await;
}

/// Every REST operation beyond runs has its RPC: workflows (import, list,
/// versions, diff, online/offline, delete), schedules, run operations,
/// commands, projects and members, the cluster — each with REST's
/// authorisation (a viewer calling an operator/editor/owner RPC is
/// PERMISSION_DENIED, another project's workflow or id is NOT_FOUND).
#[tokio::test]
async fn the_rest_of_the_rest_api_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path()).await;
    let admin = s.token.clone();
    let mut c = OrcaApiClient::new(channel(&s).await);
    let denied = |e: tonic::Status, what: &str| {
        assert_eq!(e.code(), Code::PermissionDenied, "{what}: {e:?}");
    };
    let hidden = |e: tonic::Status, what: &str| {
        assert_eq!(e.code(), Code::NotFound, "{what}: {e:?}");
    };
    let wf = |name: &str| pb::WorkflowRef {
        project: "default".into(),
        name: name.into(),
    };

    // Two versions of one workflow: versions, one version, their diff.
    let v1 = "workflow: {name: grpc-ops}\ntasks:\n  - {name: a, task_type: Shell, command: \"echo one\"}\n";
    let v2 = "workflow: {name: grpc-ops}\ntasks:\n  - {name: a, task_type: Shell, command: \"echo two\"}\n  - {name: c, task_type: Shell, command: \"true\", deps: [a]}\n";
    for yaml in [v1, v2] {
        c.apply_workflow(req(
            Some(&admin),
            pb::ApplyWorkflowRequest {
                spec_json: spec_json(yaml),
                source: yaml.into(),
            },
        ))
        .await
        .expect("apply");
    }
    // (The project `default` exists once something was applied to it.)
    let viewer = user(&s, "ops-viewer", Some("viewer")).await;
    let outsider = user(&s, "ops-outsider", None).await;
    let versions = c
        .list_workflow_versions(req(
            Some(&viewer),
            pb::ListWorkflowVersionsRequest {
                project: "default".into(),
                name: "grpc-ops".into(),
                page_size: 1,
                ..Default::default()
            },
        ))
        .await
        .expect("a viewer lists versions")
        .into_inner();
    assert_eq!(
        (versions.current_version, versions.release_state.as_str()),
        (2, "online")
    );
    assert_eq!(versions.versions.len(), 1);
    assert_eq!(versions.versions[0].version, 1);
    assert!(!versions.next_page_token.is_empty());
    let rest = c
        .list_workflow_versions(req(
            Some(&viewer),
            pb::ListWorkflowVersionsRequest {
                project: "default".into(),
                name: "grpc-ops".into(),
                page_size: 1,
                page_token: versions.next_page_token.clone(),
            },
        ))
        .await
        .expect("second page")
        .into_inner();
    assert_eq!(
        rest.versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [2]
    );
    assert_eq!(rest.versions[0].tasks, 2);
    assert!(rest.next_page_token.is_empty());
    let bad = c
        .list_workflow_versions(req(
            Some(&viewer),
            pb::ListWorkflowVersionsRequest {
                project: "default".into(),
                name: "grpc-ops".into(),
                page_token: "garbage".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("a bad page token");
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    let old = c
        .get_workflow_version(req(
            Some(&viewer),
            pb::GetWorkflowVersionRequest {
                project: "default".into(),
                name: "grpc-ops".into(),
                version: 1,
            },
        ))
        .await
        .expect("version 1")
        .into_inner();
    assert_eq!((old.version, old.source.as_str()), (1, v1));
    let diff = c
        .diff_workflow_versions(req(
            Some(&viewer),
            pb::DiffWorkflowVersionsRequest {
                project: "default".into(),
                name: "grpc-ops".into(),
                from: 1,
                to: 2,
            },
        ))
        .await
        .expect("diff")
        .into_inner();
    assert_eq!(diff.tasks_added, ["c"]);
    assert_eq!(diff.tasks_changed.len(), 1, "{diff:?}");
    assert_eq!(diff.tasks_changed[0].task, "a");
    assert!(
        diff.source_diff.contains("+  - {name: c"),
        "{}",
        diff.source_diff
    );
    hidden(
        c.list_workflow_versions(req(
            Some(&outsider),
            pb::ListWorkflowVersionsRequest {
                project: "default".into(),
                name: "grpc-ops".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("an outsider"),
        "versions of another project",
    );
    hidden(
        c.diff_workflow_versions(req(
            Some(&outsider),
            pb::DiffWorkflowVersionsRequest {
                project: "default".into(),
                name: "grpc-ops".into(),
                from: 1,
                to: 2,
            },
        ))
        .await
        .expect_err("an outsider"),
        "diff in another project",
    );

    // Offline refuses triggers; online again.
    denied(
        c.set_workflow_offline(req(Some(&viewer), wf("grpc-ops")))
            .await
            .expect_err("a viewer"),
        "viewer offline",
    );
    hidden(
        c.set_workflow_online(req(Some(&outsider), wf("grpc-ops")))
            .await
            .expect_err("an outsider"),
        "outsider online",
    );
    let off = c
        .set_workflow_offline(req(Some(&admin), wf("grpc-ops")))
        .await
        .expect("offline")
        .into_inner();
    assert_eq!(off.release_state, "offline");
    let refused = c
        .trigger_run(req(
            Some(&admin),
            pb::TriggerRunRequest {
                project: "default".into(),
                name: "grpc-ops".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("an offline workflow cannot be triggered");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    let on = c
        .set_workflow_online(req(Some(&admin), wf("grpc-ops")))
        .await
        .expect("online")
        .into_inner();
    assert_eq!(on.release_state, "online");

    // Schedules.
    let put = |token: &str, cron: &str| {
        req(
            Some(token),
            pb::PutScheduleRequest {
                project: "default".into(),
                name: "grpc-ops".into(),
                cron: cron.into(),
                timezone: "Europe/Paris".into(),
                enabled: false,
                params: [("k".to_string(), "v".to_string())].into(),
                ..Default::default()
            },
        )
    };
    denied(
        c.put_schedule(put(&viewer, "0 0 2 * * ? *"))
            .await
            .expect_err("a viewer"),
        "viewer put schedule",
    );
    let bad = c
        .put_schedule(put(&admin, "not a cron"))
        .await
        .expect_err("an invalid cron");
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    assert!(bad.message().contains("cron"), "{bad:?}");
    let sched = c
        .put_schedule(put(&admin, "0 0 2 * * ? *"))
        .await
        .expect("put schedule")
        .into_inner();
    assert_eq!(
        (sched.cron.as_str(), sched.timezone.as_str(), sched.enabled),
        ("0 0 2 * * ? *", "Europe/Paris", false)
    );
    assert_eq!(sched.params.get("k").map(String::as_str), Some("v"));
    let got = c
        .get_schedule(req(Some(&viewer), wf("grpc-ops")))
        .await
        .expect("a viewer reads the schedule")
        .into_inner();
    assert_eq!(got.id, sched.id);
    let preview = c
        .preview_schedule(req(
            Some(&viewer),
            pb::PreviewScheduleRequest {
                project: "default".into(),
                name: "grpc-ops".into(),
                count: 3,
            },
        ))
        .await
        .expect("preview")
        .into_inner();
    assert_eq!(preview.next_fire_times_unix_ms.len(), 3, "{preview:?}");
    assert!(preview.next_fire_times_unix_ms.is_sorted());
    hidden(
        c.get_schedule(req(Some(&outsider), wf("grpc-ops")))
            .await
            .expect_err("an outsider"),
        "outsider schedule",
    );
    denied(
        c.delete_schedule(req(Some(&viewer), wf("grpc-ops")))
            .await
            .expect_err("a viewer"),
        "viewer delete schedule",
    );
    c.delete_schedule(req(Some(&admin), wf("grpc-ops")))
        .await
        .expect("delete schedule");
    hidden(
        c.get_schedule(req(Some(&admin), wf("grpc-ops")))
            .await
            .expect_err("deleted"),
        "deleted schedule",
    );

    // Run operations on a failed run: recover, force success, rerun, the
    // command they wrote, bulk.
    let fail = "workflow: {name: grpc-fail}\ntasks:\n  - {name: boom, task_type: Shell, command: \"exit 3\"}\n";
    let run = start(&mut c, &admin, fail).await;
    wait_run(&mut c, &admin, run, "FAILURE", |d| state(d) == "FAILURE").await;
    denied(
        c.recover_failed_run(req(Some(&viewer), pb::RunRef { id: run }))
            .await
            .expect_err("a viewer"),
        "viewer recover",
    );
    hidden(
        c.recover_failed_run(req(Some(&outsider), pb::RunRef { id: run }))
            .await
            .expect_err("an outsider"),
        "outsider recover",
    );
    let cmd = c
        .recover_failed_run(req(Some(&admin), pb::RunRef { id: run }))
        .await
        .expect("recover failed")
        .into_inner();
    assert_eq!(cmd.kind, "RECOVER_FAILED");
    wait_run(&mut c, &admin, run, "a second failed attempt", |d| {
        state(d) == "FAILURE"
            && d.tasks
                .iter()
                .any(|t| t.attempt == 2 && t.state == "FAILURE")
    })
    .await;
    denied(
        c.force_task_success(req(
            Some(&viewer),
            pb::ForceTaskSuccessRequest {
                run_id: run,
                task: "boom".into(),
            },
        ))
        .await
        .expect_err("a viewer"),
        "viewer force success",
    );
    let unknown = c
        .force_task_success(req(
            Some(&admin),
            pb::ForceTaskSuccessRequest {
                run_id: run,
                task: "nope".into(),
            },
        ))
        .await
        .expect_err("no such task");
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    let forced = c
        .force_task_success(req(
            Some(&admin),
            pb::ForceTaskSuccessRequest {
                run_id: run,
                task: "boom".into(),
            },
        ))
        .await
        .expect("force success")
        .into_inner();
    assert_eq!(forced.kind, "FORCE_SUCCESS");
    // The task's last attempt becomes SUCCESS (the run keeps its state).
    wait_run(&mut c, &admin, run, "the forced attempt", |d| {
        d.tasks
            .iter()
            .any(|t| t.attempt == 2 && t.state == "SUCCESS")
    })
    .await;
    denied(
        c.rerun_run(req(Some(&viewer), pb::RunRef { id: run }))
            .await
            .expect_err("a viewer"),
        "viewer rerun",
    );
    let rerun = c
        .rerun_run(req(Some(&admin), pb::RunRef { id: run }))
        .await
        .expect("rerun")
        .into_inner();
    let command = c
        .get_command(req(
            Some(&viewer),
            pb::CommandRef {
                id: rerun.command_id,
            },
        ))
        .await
        .expect("a viewer reads the command")
        .into_inner();
    assert_eq!(
        (command.kind.as_str(), command.version),
        ("START", rerun.version)
    );
    for (who, id) in [(&outsider, rerun.command_id), (&admin, 999_999)] {
        hidden(
            c.get_command(req(Some(who), pb::CommandRef { id }))
                .await
                .expect_err("foreign or unknown command"),
            "command",
        );
    }
    let bulk = |token: &str, op: &str| {
        req(
            Some(token),
            pb::BulkRunOperationRequest {
                op: op.into(),
                ids: vec![run, 999_999],
            },
        )
    };
    let items = c
        .bulk_run_operation(bulk(&viewer, "stop"))
        .await
        .expect("bulk answers per run")
        .into_inner()
        .items;
    let statuses: Vec<u32> = items.iter().map(|i| i.status).collect();
    assert_eq!(statuses, [403, 404], "{items:?}");
    let items = c
        .bulk_run_operation(bulk(&admin, "stop"))
        .await
        .expect("bulk")
        .into_inner()
        .items;
    let statuses: Vec<u32> = items.iter().map(|i| i.status).collect();
    assert_eq!(
        statuses,
        [409, 404],
        "a finished run cannot be stopped: {items:?}"
    );
    let bad = c
        .bulk_run_operation(bulk(&admin, "explode"))
        .await
        .expect_err("an unknown op");
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");

    // Import, list, delete.
    let import = |token: &str, name: &str| {
        req(
            Some(token),
            pb::ImportWorkflowsRequest {
                format: "pydolphinscheduler-yaml".into(),
                content: format!(
                    "workflow: {{name: {name}}}\ntasks:\n  - {{name: t, task_type: Shell, command: \"true\"}}\n"
                ),
                project: String::new(),
            },
        )
    };
    denied(
        c.import_workflows(import(&viewer, "grpc-imported"))
            .await
            .expect_err("a viewer"),
        "viewer import",
    );
    hidden(
        c.import_workflows(import(&outsider, "grpc-imported"))
            .await
            .expect_err("an outsider"),
        "outsider import",
    );
    let imported = c
        .import_workflows(import(&admin, "grpc-imported"))
        .await
        .expect("import")
        .into_inner();
    assert_eq!(imported.workflows.len(), 1);
    assert_eq!(
        (
            imported.workflows[0].project.as_str(),
            imported.workflows[0].name.as_str()
        ),
        ("default", "grpc-imported")
    );
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .list_workflows(req(
                Some(&viewer),
                pb::ListWorkflowsRequest {
                    page_size: 2,
                    page_token: token.clone(),
                    ..Default::default()
                },
            ))
            .await
            .expect("list workflows")
            .into_inner();
        assert!(page.workflows.len() <= 2);
        names.extend(page.workflows.into_iter().map(|w| w.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(names, ["grpc-fail", "grpc-imported", "grpc-ops"]);
    let filtered = c
        .list_workflows(req(
            Some(&viewer),
            pb::ListWorkflowsRequest {
                name: "IMPORT".into(),
                release_state: "online".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("list workflows by name")
        .into_inner();
    assert_eq!(
        filtered
            .workflows
            .iter()
            .map(|w| w.name.as_str())
            .collect::<Vec<_>>(),
        ["grpc-imported"]
    );
    let bad = c
        .list_workflows(req(
            Some(&viewer),
            pb::ListWorkflowsRequest {
                release_state: "sideways".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("not a release state");
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    let none = c
        .list_workflows(req(Some(&outsider), pb::ListWorkflowsRequest::default()))
        .await
        .expect("an outsider lists nothing")
        .into_inner();
    assert!(none.workflows.is_empty(), "{none:?}");
    let del = |token: &str, name: &str| {
        req(
            Some(token),
            pb::DeleteWorkflowRequest {
                project: "default".into(),
                name: name.into(),
                force: false,
            },
        )
    };
    denied(
        c.delete_workflow(del(&viewer, "grpc-imported"))
            .await
            .expect_err("a viewer"),
        "viewer delete",
    );
    hidden(
        c.delete_workflow(del(&outsider, "grpc-imported"))
            .await
            .expect_err("an outsider"),
        "outsider delete",
    );
    let has_runs = c
        .delete_workflow(del(&admin, "grpc-fail"))
        .await
        .expect_err("finished runs need force");
    assert_eq!(has_runs.code(), Code::FailedPrecondition, "{has_runs:?}");
    let gone = c
        .delete_workflow(del(&admin, "grpc-imported"))
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(
        (gone.name.as_str(), gone.deleted_runs),
        ("grpc-imported", 0)
    );
    hidden(
        c.get_workflow(req(
            Some(&admin),
            pb::GetWorkflowRequest {
                project: "default".into(),
                name: "grpc-imported".into(),
            },
        ))
        .await
        .expect_err("deleted"),
        "deleted workflow",
    );

    // Projects and members.
    denied(
        c.create_project(req(
            Some(&viewer),
            pb::CreateProjectRequest {
                name: "grpc-team".into(),
                owner: None,
            },
        ))
        .await
        .expect_err("not an admin"),
        "viewer create project",
    );
    let team = c
        .create_project(req(
            Some(&admin),
            pb::CreateProjectRequest {
                name: "grpc-team".into(),
                owner: Some("ops-outsider".into()),
            },
        ))
        .await
        .expect("create project")
        .into_inner();
    assert_eq!(team.name, "grpc-team");
    let dup = c
        .create_project(req(
            Some(&admin),
            pb::CreateProjectRequest {
                name: "grpc-team".into(),
                owner: None,
            },
        ))
        .await
        .expect_err("exists");
    assert_eq!(dup.code(), Code::FailedPrecondition, "{dup:?}");
    let first = c
        .list_projects(req(
            Some(&admin),
            pb::ListProjectsRequest {
                page_size: 1,
                page_token: String::new(),
            },
        ))
        .await
        .expect("list projects")
        .into_inner();
    assert_eq!(first.projects.len(), 1);
    let second = c
        .list_projects(req(
            Some(&admin),
            pb::ListProjectsRequest {
                page_size: 1,
                page_token: first.next_page_token.clone(),
            },
        ))
        .await
        .expect("list projects")
        .into_inner();
    let both: Vec<&str> = first
        .projects
        .iter()
        .chain(&second.projects)
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(both, ["default", "grpc-team"]);
    let mine = c
        .list_projects(req(Some(&viewer), pb::ListProjectsRequest::default()))
        .await
        .expect("a viewer's projects")
        .into_inner();
    let mine: Vec<(&str, &str)> = mine
        .projects
        .iter()
        .map(|p| (p.name.as_str(), p.role.as_str()))
        .collect();
    assert_eq!(mine, [("default", "viewer")]);
    let members = c
        .list_members(req(
            Some(&viewer),
            pb::ListMembersRequest {
                project: "default".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("a viewer lists members")
        .into_inner();
    assert!(
        members
            .members
            .iter()
            .any(|m| m.username == "ops-viewer" && m.role == "viewer"),
        "{members:?}"
    );
    hidden(
        c.list_members(req(
            Some(&viewer),
            pb::ListMembersRequest {
                project: "grpc-team".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("another project"),
        "members of another project",
    );
    let member = |token: &str, project: &str| {
        req(
            Some(token),
            pb::PutMemberRequest {
                project: project.into(),
                username: "ops-viewer".into(),
                role: "operator".into(),
            },
        )
    };
    denied(
        c.put_member(member(&viewer, "default"))
            .await
            .expect_err("a viewer is no owner"),
        "viewer put member",
    );
    // The owner of grpc-team (not an admin) manages its members.
    let m = c
        .put_member(member(&outsider, "grpc-team"))
        .await
        .expect("the owner adds a member")
        .into_inner();
    assert_eq!(
        (m.project.as_str(), m.username.as_str(), m.role.as_str()),
        ("grpc-team", "ops-viewer", "operator")
    );
    let bad_role = c
        .put_member(req(
            Some(&outsider),
            pb::PutMemberRequest {
                project: "grpc-team".into(),
                username: "ops-viewer".into(),
                role: "king".into(),
            },
        ))
        .await
        .expect_err("no such role");
    assert_eq!(bad_role.code(), Code::InvalidArgument, "{bad_role:?}");
    denied(
        c.delete_member(req(
            Some(&viewer),
            pb::DeleteMemberRequest {
                project: "default".into(),
                username: "ops-viewer".into(),
            },
        ))
        .await
        .expect_err("a viewer is no owner"),
        "viewer delete member",
    );
    c.delete_member(req(
        Some(&outsider),
        pb::DeleteMemberRequest {
            project: "grpc-team".into(),
            username: "ops-viewer".into(),
        },
    ))
    .await
    .expect("the owner removes a member");

    // The cluster.
    let workers = c
        .list_workers(req(Some(&viewer), pb::ListWorkersRequest::default()))
        .await
        .expect("list workers")
        .into_inner();
    assert_eq!(workers.workers.len(), 1, "{workers:?}");
    assert_eq!(workers.workers[0].slots, 4);
    assert!(
        workers.workers[0]
            .addr
            .ends_with(&s.worker_addr.to_string()),
        "{workers:?}"
    );
    let masters = c
        .list_masters(req(Some(&viewer), pb::ListMastersRequest::default()))
        .await
        .expect("list masters")
        .into_inner();
    assert_eq!(masters.masters.len(), 1, "{masters:?}");
    assert!(masters.masters[0].leader && masters.masters[0].epoch.is_some());
    let anon = c
        .list_workers(req(None, pb::ListWorkersRequest::default()))
        .await
        .expect_err("no token");
    assert_eq!(anon.code(), Code::Unauthenticated, "{anon:?}");

    // Users (admins only) and the caller's own tokens.
    let new_user = |token: &str| {
        req(
            Some(token),
            pb::CreateUserRequest {
                username: "ops-new".into(),
                password: "a-long-test-password".into(),
                admin: false,
            },
        )
    };
    denied(
        c.create_user(new_user(&viewer))
            .await
            .expect_err("not an admin"),
        "viewer create user",
    );
    let u = c
        .create_user(new_user(&admin))
        .await
        .expect("create user")
        .into_inner();
    assert_eq!((u.username.as_str(), u.admin), ("ops-new", false));
    denied(
        c.list_users(req(Some(&viewer), pb::ListUsersRequest::default()))
            .await
            .expect_err("not an admin"),
        "viewer list users",
    );
    let mut usernames = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .list_users(req(
                Some(&admin),
                pb::ListUsersRequest {
                    page_size: 2,
                    page_token: token.clone(),
                },
            ))
            .await
            .expect("list users")
            .into_inner();
        assert!(page.users.len() <= 2);
        usernames.extend(page.users.into_iter().map(|u| u.username));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert!(usernames.is_sorted(), "{usernames:?}");
    for name in ["ops-new", "ops-outsider", "ops-viewer"] {
        assert!(usernames.iter().any(|u| u == name), "{usernames:?}");
    }
    let disable = |token: &str, username: &str| {
        req(
            Some(token),
            pb::UpdateUserRequest {
                username: username.into(),
                disabled: Some(true),
                ..Default::default()
            },
        )
    };
    denied(
        c.update_user(disable(&viewer, "ops-new"))
            .await
            .expect_err("not an admin"),
        "viewer update user",
    );
    hidden(
        c.update_user(disable(&admin, "nobody"))
            .await
            .expect_err("no such user"),
        "unknown user",
    );
    let u = c
        .update_user(disable(&admin, "ops-new"))
        .await
        .expect("disable")
        .into_inner();
    assert!(u.disabled);
    let created = c
        .create_token(req(
            Some(&viewer),
            pb::CreateTokenRequest {
                name: "ci".into(),
                expires_in_days: Some(7),
            },
        ))
        .await
        .expect("a token of one's own")
        .into_inner();
    let info = created.info.expect("token info");
    assert_eq!(
        (info.name.as_str(), info.kind.as_str()),
        ("ci", "personal_access")
    );
    assert!(info.expires_at_unix_ms.is_some());
    let listed = c
        .list_tokens(req(Some(&created.token), pb::ListTokensRequest::default()))
        .await
        .expect("the new token works")
        .into_inner();
    assert!(listed.tokens.iter().any(|t| t.id == info.id), "{listed:?}");
    let others = c
        .list_tokens(req(Some(&outsider), pb::ListTokensRequest::default()))
        .await
        .expect("an outsider's own tokens")
        .into_inner();
    assert!(!others.tokens.iter().any(|t| t.id == info.id));
    hidden(
        c.delete_token(req(Some(&outsider), pb::TokenRef { id: info.id }))
            .await
            .expect_err("another user's token"),
        "another user's token",
    );
    c.delete_token(req(Some(&viewer), pb::TokenRef { id: info.id }))
        .await
        .expect("revoke");
    let revoked = c
        .list_tokens(req(Some(&created.token), pb::ListTokensRequest::default()))
        .await
        .expect_err("a revoked token");
    assert_eq!(revoked.code(), Code::Unauthenticated, "{revoked:?}");

    s.shutdown().await;
}

/// `api.tls_cert`/`api.tls_key`: REST and gRPC over TLS with a self-signed
/// certificate; plain text to the TLS ports fails; the CLI trusts the
/// certificate through `ORCA_CA_CERT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_grpc_and_the_cli_over_tls() {
    use std::sync::Arc;
    use tonic::transport::{Certificate, ClientTlsConfig};

    let dir = tempfile::tempdir().unwrap();
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("a self-signed certificate");
    let cert_pem = generated.cert.pem();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    // The server reads the files as `orca api` does with its config.
    let mut cfg = orca_common::config::OrcaConfig::default();
    cfg.api.tls_cert = cert.display().to_string();
    cfg.api.tls_key = key.display().to_string();
    let mut half = cfg.clone();
    half.api.tls_key.clear();
    let e = orca_common::config::validate(&half).expect_err("a certificate without a key");
    assert!(e.to_string().contains("api.tls_key"), "{e}");
    let (c, k) = cfg.api.tls().expect("TLS configured");
    let tls = orca_api::tls::ApiTls::from_pem_files(Path::new(c), Path::new(k))
        .expect("the certificate and key load");
    let bad = orca_api::tls::ApiTls::from_pem_files(&key, &key).expect_err("a key is no cert");
    assert!(bad.to_string().starts_with("ORCA-API-TLS:"), "{bad}");

    let db = dir.path().join("orca.db");
    let store = orca_store::Store::connect(&format!("sqlite://{}?mode=rwc", db.display()))
        .await
        .expect("store");
    let state = orca_api::AppState {
        store: store.clone(),
        nudge: Arc::new(|| {}),
        worker_clients: Default::default(),
        metrics: None,
        registry: None,
    };
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let api = orca_api::serve_with_tls(any, state.clone(), Some(&tls))
        .await
        .expect("REST over TLS");
    let grpc = orca_api::grpc::serve_grpc_with_tls(any, state, Some(&tls))
        .await
        .expect("gRPC over TLS");
    let url = format!("https://127.0.0.1:{}", api.addr.port());
    let token = orca::admin::ensure_cli_token(&store, dir.path(), &url)
        .await
        .expect("an admin token")
        .token;

    // REST: trusted with the certificate as root, refused without it, and
    // plain HTTP to the TLS port fails.
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let health = trusting
        .get(format!("{url}/health"))
        .send()
        .await
        .expect("https with the certificate trusted");
    assert!(health.status().is_success());
    let me = trusting
        .get(format!("{url}/api/v1/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("auth/me");
    assert!(me.status().is_success(), "{}", me.status());
    reqwest::Client::new()
        .get(format!("{url}/health"))
        .send()
        .await
        .expect_err("an unknown issuer is refused");
    let plain = reqwest::Client::new()
        .get(format!("http://{}/health", api.addr))
        .send()
        .await;
    assert!(
        plain.as_ref().map_or(true, |r| !r.status().is_success()),
        "plain HTTP to the TLS port: {plain:?}"
    );

    // gRPC over TLS, and plain text to it fails.
    let ch = Channel::from_shared(format!("https://localhost:{}", grpc.addr.port()))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&cert_pem))
                .domain_name("localhost"),
        )
        .expect("client TLS")
        .connect()
        .await
        .expect("gRPC over TLS");
    let mut client = OrcaApiClient::new(ch);
    client
        .create_project(req(
            Some(&token),
            pb::CreateProjectRequest {
                name: "over-tls".into(),
                owner: None,
            },
        ))
        .await
        .expect("an RPC over TLS");
    let projects = client
        .list_projects(req(Some(&token), pb::ListProjectsRequest::default()))
        .await
        .expect("an RPC over TLS")
        .into_inner();
    assert!(
        projects.projects.iter().any(|p| p.name == "over-tls"),
        "{projects:?}"
    );
    let plain = match Channel::from_shared(format!("http://{}", grpc.addr))
        .unwrap()
        .connect()
        .await
    {
        Err(e) => Err(e.to_string()),
        Ok(ch) => OrcaApiClient::new(ch)
            .list_projects(req(Some(&token), pb::ListProjectsRequest::default()))
            .await
            .map_err(|e| e.to_string()),
    };
    assert!(plain.is_err(), "plain gRPC to the TLS port: {plain:?}");

    // The CLI: trusts the server with ORCA_CA_CERT, refuses it without.
    let orca = |ca: Option<&Path>| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_orca"));
        c.args(["ps", "--server", &url, "--token", &token])
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .env_remove("ORCA_CA_CERT")
            .env_remove("ORCA_SERVER")
            .env_remove("ORCA_TOKEN");
        if let Some(ca) = ca {
            c.env("ORCA_CA_CERT", ca);
        }
        c.output().expect("orca runs")
    };
    let ok = orca(Some(&cert));
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(text.contains("RUN"), "{text}");
    let refused = orca(None);
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("cannot reach"), "{err}");

    api.shutdown().await;
    grpc.shutdown().await;
}

/// Sessions (login, who am I, password, logout), tenants, worker groups,
/// environments, the audit log and log search/follow over gRPC, each with
/// REST's authorisation: reads for any authenticated caller, writes for
/// admins (a viewer is PERMISSION_DENIED), logs for viewers of the project
/// (an outsider is NOT_FOUND).
#[tokio::test]
async fn sessions_resources_audit_and_logs_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path()).await;
    let admin = s.token.clone();
    let mut c = OrcaApiClient::new(channel(&s).await);
    let code = |e: tonic::Status, want: Code, what: &str| {
        assert_eq!(e.code(), want, "{what}: {e:?}");
    };

    // A run whose log has lines to search (also creates `default`).
    let yaml = "workflow: {name: grpc-logs}\ntasks:\n  - {name: t, task_type: Shell, command: \"echo alpha; echo needle-1; echo beta; echo needle-2\"}\n";
    let run = start(&mut c, &admin, yaml).await;
    let done = wait_run(&mut c, &admin, run, "SUCCESS", |d| state(d) == "SUCCESS").await;
    let ti = done.tasks[0].id;
    let viewer = user(&s, "res-viewer", Some("viewer")).await;
    let outsider = user(&s, "res-outsider", None).await;

    // Sessions and the caller.
    let me = c
        .who_am_i(req(Some(&viewer), pb::WhoAmIRequest {}))
        .await
        .expect("who am I")
        .into_inner();
    assert_eq!(me.user.as_ref().unwrap().username, "res-viewer");
    assert_eq!(me.token.as_ref().unwrap().kind, "session");
    assert_eq!(
        me.roles
            .iter()
            .map(|r| (r.project.as_str(), r.role.as_str()))
            .collect::<Vec<_>>(),
        [("default", "viewer")]
    );
    code(
        c.who_am_i(req(None, pb::WhoAmIRequest {}))
            .await
            .expect_err("no token"),
        Code::Unauthenticated,
        "who am I without a token",
    );
    let login = |password: &str| {
        req(
            None,
            pb::LoginRequest {
                username: "res-viewer".into(),
                password: password.into(),
            },
        )
    };
    code(
        c.login(login("wrong-password"))
            .await
            .expect_err("bad password"),
        Code::Unauthenticated,
        "login with a wrong password",
    );
    let session = c
        .login(login("a-long-test-password"))
        .await
        .expect("login needs no token")
        .into_inner();
    assert_eq!(session.user.as_ref().unwrap().username, "res-viewer");
    assert!(session.expires_at_unix_ms > chrono::Utc::now().timestamp_millis());
    c.who_am_i(req(Some(&session.token), pb::WhoAmIRequest {}))
        .await
        .expect("the new session works");
    c.logout(req(Some(&session.token), pb::LogoutRequest {}))
        .await
        .expect("logout");
    code(
        c.who_am_i(req(Some(&session.token), pb::WhoAmIRequest {}))
            .await
            .expect_err("logged out"),
        Code::Unauthenticated,
        "a logged-out session",
    );
    code(
        c.logout(req(None, pb::LogoutRequest {}))
            .await
            .expect_err("no token"),
        Code::Unauthenticated,
        "logout without a token",
    );
    // Changing the password: the current one is needed; every token goes.
    let pw_user = user(&s, "res-pw", None).await;
    let change = |token: &str, current: &str| {
        req(
            Some(token),
            pb::ChangePasswordRequest {
                current_password: current.into(),
                new_password: "another-long-password".into(),
            },
        )
    };
    code(
        c.change_password(change(&pw_user, "wrong-password"))
            .await
            .expect_err("wrong current password"),
        Code::PermissionDenied,
        "change password with a wrong current one",
    );
    let changed = c
        .change_password(change(&pw_user, "a-long-test-password"))
        .await
        .expect("change password")
        .into_inner();
    assert!(changed.revoked_tokens >= 1, "{changed:?}");
    code(
        c.who_am_i(req(Some(&pw_user), pb::WhoAmIRequest {}))
            .await
            .expect_err("revoked by the change"),
        Code::Unauthenticated,
        "a token from before the password change",
    );
    c.login(req(
        None,
        pb::LoginRequest {
            username: "res-pw".into(),
            password: "another-long-password".into(),
        },
    ))
    .await
    .expect("the new password works");

    // Tenants: admins write, everyone reads; paged by name.
    for name in ["pg-c", "pg-a", "pg-b"] {
        let t = c
            .create_tenant(req(
                Some(&admin),
                pb::CreateTenantRequest {
                    name: name.into(),
                    description: format!("tenant {name}"),
                    os_user: None,
                },
            ))
            .await
            .expect("create tenant")
            .into_inner();
        assert_eq!((t.name.as_str(), t.os_user.as_str()), (name, name));
    }
    let new_tenant = pb::CreateTenantRequest {
        name: "pg-x".into(),
        ..Default::default()
    };
    code(
        c.create_tenant(req(Some(&viewer), new_tenant))
            .await
            .expect_err("not an admin"),
        Code::PermissionDenied,
        "viewer create tenant",
    );
    let list = |token: &str, page_token: String| {
        req(
            Some(token),
            pb::ListTenantsRequest {
                page_size: 2,
                page_token,
                name: "pg-".into(),
            },
        )
    };
    let first = c
        .list_tenants(list(&viewer, String::new()))
        .await
        .expect("a viewer lists tenants")
        .into_inner();
    let names =
        |p: &pb::ListTenantsResponse| p.tenants.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&first), ["pg-a", "pg-b"]);
    assert!(!first.next_page_token.is_empty());
    let second = c
        .list_tenants(list(&viewer, first.next_page_token.clone()))
        .await
        .expect("second page")
        .into_inner();
    assert_eq!(names(&second), ["pg-c"]);
    assert!(second.next_page_token.is_empty());
    code(
        c.list_tenants(list(&viewer, "garbage".into()))
            .await
            .expect_err("a bad page token"),
        Code::InvalidArgument,
        "bad tenant page token",
    );
    let t = c
        .get_tenant(req(
            Some(&viewer),
            pb::TenantRef {
                name: "pg-a".into(),
            },
        ))
        .await
        .expect("a viewer gets a tenant")
        .into_inner();
    assert_eq!(t.description, "tenant pg-a");
    let rename = |token: &str| {
        req(
            Some(token),
            pb::UpdateTenantRequest {
                name: "pg-a".into(),
                description: None,
                os_user: Some("pg_user".into()),
            },
        )
    };
    code(
        c.update_tenant(rename(&viewer))
            .await
            .expect_err("not an admin"),
        Code::PermissionDenied,
        "viewer update tenant",
    );
    let t = c
        .update_tenant(rename(&admin))
        .await
        .expect("update tenant")
        .into_inner();
    assert_eq!(
        (t.os_user.as_str(), t.description.as_str()),
        ("pg_user", "tenant pg-a")
    );
    let pg_a = |token: &str| {
        req(
            Some(token),
            pb::TenantRef {
                name: "pg-a".into(),
            },
        )
    };
    code(
        c.delete_tenant(pg_a(&viewer))
            .await
            .expect_err("not an admin"),
        Code::PermissionDenied,
        "viewer delete tenant",
    );
    c.delete_tenant(pg_a(&admin)).await.expect("delete tenant");
    code(
        c.get_tenant(pg_a(&viewer)).await.expect_err("deleted"),
        Code::NotFound,
        "a deleted tenant",
    );

    // Worker groups: `default` (with the standalone's worker) and defined
    // ones.
    let gpu = |token: &str| {
        req(
            Some(token),
            pb::CreateWorkerGroupRequest {
                name: "gpu".into(),
                description: "GPU hosts".into(),
            },
        )
    };
    code(
        c.create_worker_group(gpu(&viewer))
            .await
            .expect_err("not an admin"),
        Code::PermissionDenied,
        "viewer create worker group",
    );
    let g = c
        .create_worker_group(gpu(&admin))
        .await
        .expect("create worker group")
        .into_inner();
    assert!(g.defined && g.created_at_unix_ms.is_some(), "{g:?}");
    let groups = c
        .list_worker_groups(req(Some(&viewer), pb::ListWorkerGroupsRequest::default()))
        .await
        .expect("a viewer lists worker groups")
        .into_inner();
    assert_eq!(
        groups
            .worker_groups
            .iter()
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>(),
        ["default", "gpu"]
    );
    let default = c
        .get_worker_group(req(
            Some(&viewer),
            pb::WorkerGroupRef {
                name: "default".into(),
            },
        ))
        .await
        .expect("get default")
        .into_inner();
    assert!(!default.defined && default.created_at_unix_ms.is_none());
    assert_eq!(default.workers.len(), 1, "{default:?}");
    let describe = |token: &str| {
        req(
            Some(token),
            pb::UpdateWorkerGroupRequest {
                name: "gpu".into(),
                description: Some("GPU hosts (A100)".into()),
            },
        )
    };
    code(
        c.update_worker_group(describe(&viewer))
            .await
            .expect_err("not an admin"),
        Code::PermissionDenied,
        "viewer update worker group",
    );
    let g = c
        .update_worker_group(describe(&admin))
        .await
        .expect("update worker group")
        .into_inner();
    assert_eq!(g.description, "GPU hosts (A100)");

    // Environments (one meant for `gpu`, so `gpu` cannot go before it).
    let env = |token: &str| {
        req(
            Some(token),
            pb::CreateEnvironmentRequest {
                name: "py311".into(),
                description: "Python 3.11".into(),
                packages: vec!["python=3.11".into()],
                channels: vec!["conda-forge".into()],
                worker_groups: vec!["gpu".into()],
            },
        )
    };
    code(
        c.create_environment(env(&viewer))
            .await
            .expect_err("not an admin"),
        Code::PermissionDenied,
        "viewer create environment",
    );
    let e = c
        .create_environment(env(&admin))
        .await
        .expect("create environment")
        .into_inner();
    assert_eq!(e.worker_groups, ["gpu"]);
    assert!(e.hosted_by.is_empty(), "{e:?}");
    let envs = c
        .list_environments(req(
            Some(&viewer),
            pb::ListEnvironmentsRequest {
                name: "py".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("a viewer lists environments")
        .into_inner();
    assert_eq!(envs.environments.len(), 1);
    assert!(envs.next_page_token.is_empty());
    let py311 = |token: &str| {
        req(
            Some(token),
            pb::EnvironmentRef {
                name: "py311".into(),
            },
        )
    };
    let got = c
        .get_environment(py311(&viewer))
        .await
        .expect("a viewer gets an environment")
        .into_inner();
    assert_eq!(got.packages, ["python=3.11"]);
    let gpu_ref = |token: &str| req(Some(token), pb::WorkerGroupRef { name: "gpu".into() });
    code(
        c.delete_worker_group(gpu_ref(&admin))
            .await
            .expect_err("an environment names it"),
        Code::FailedPrecondition,
        "delete a worker group in use",
    );
    let repackage = |token: &str| {
        req(
            Some(token),
            pb::UpdateEnvironmentRequest {
                name: "py311".into(),
                packages: Some(pb::StringList {
                    values: vec!["python=3.11".into(), "numpy".into()],
                }),
                worker_groups: Some(pb::StringList::default()),
                ..Default::default()
            },
        )
    };
    code(
        c.update_environment(repackage(&viewer))
            .await
            .expect_err("not an admin"),
        Code::PermissionDenied,
        "viewer update environment",
    );
    let e = c
        .update_environment(repackage(&admin))
        .await
        .expect("update environment")
        .into_inner();
    assert_eq!(e.packages, ["python=3.11", "numpy"]);
    assert_eq!(e.channels, ["conda-forge"], "absent lists stay");
    assert!(e.worker_groups.is_empty(), "an empty list replaces");
    code(
        c.delete_environment(py311(&viewer))
            .await
            .expect_err("not an admin"),
        Code::PermissionDenied,
        "viewer delete environment",
    );
    c.delete_environment(py311(&admin))
        .await
        .expect("delete environment");
    code(
        c.delete_worker_group(gpu_ref(&viewer))
            .await
            .expect_err("not an admin"),
        Code::PermissionDenied,
        "viewer delete worker group",
    );
    c.delete_worker_group(gpu_ref(&admin))
        .await
        .expect("delete worker group (no longer used)");
    code(
        c.get_worker_group(gpu_ref(&viewer))
            .await
            .expect_err("deleted"),
        Code::NotFound,
        "a deleted worker group",
    );

    // The audit log (of the REST calls above: user creation, logins).
    let audit = |token: &str, page_token: String| {
        req(
            Some(token),
            pb::ListAuditEntriesRequest {
                page_size: 1,
                page_token,
                method: "post".into(),
                path: "/api/v1/users".into(),
                ..Default::default()
            },
        )
    };
    code(
        c.list_audit_entries(audit(&viewer, String::new()))
            .await
            .expect_err("not an admin"),
        Code::PermissionDenied,
        "viewer audit log",
    );
    let newest = c
        .list_audit_entries(audit(&admin, String::new()))
        .await
        .expect("audit log")
        .into_inner();
    assert_eq!(newest.entries.len(), 1);
    let e = &newest.entries[0];
    assert_eq!(
        (e.method.as_str(), e.path.as_str(), e.status),
        ("POST", "/api/v1/users", 201)
    );
    assert!(!newest.next_page_token.is_empty());
    let older = c
        .list_audit_entries(audit(&admin, newest.next_page_token.clone()))
        .await
        .expect("audit log, next page")
        .into_inner();
    assert!(older.entries[0].id < e.id, "{older:?}");
    // RPCs that change something are audited like REST calls; reads are not.
    let grpc = |path: &str| {
        req(
            Some(&admin),
            pb::ListAuditEntriesRequest {
                page_size: 100,
                method: "grpc".into(),
                path: path.into(),
                ..Default::default()
            },
        )
    };
    let created = c
        .list_audit_entries(grpc("/orca.v1.OrcaApi/CreateTenant"))
        .await
        .expect("audit log of gRPC calls")
        .into_inner()
        .entries;
    assert!(
        created
            .iter()
            .any(|e| e.status == 200 && e.username.is_some()),
        "{created:?}"
    );
    assert!(
        created
            .iter()
            .any(|e| e.status == 403 && e.username.as_deref() == Some("res-viewer")),
        "{created:?}"
    );
    let reads = c
        .list_audit_entries(grpc("/orca.v1.OrcaApi/Get"))
        .await
        .expect("audit log of gRPC reads")
        .into_inner()
        .entries;
    assert!(reads.is_empty(), "{reads:?}");
    // Like REST entries, they name the project a call targeted, and a
    // login names the user it claims.
    let triggered = c
        .list_audit_entries(grpc("/orca.v1.OrcaApi/TriggerRun"))
        .await
        .expect("audit log of triggers")
        .into_inner()
        .entries;
    assert!(
        triggered
            .iter()
            .any(|e| e.status == 200 && e.project.as_deref() == Some("default")),
        "{triggered:?}"
    );
    let logins = c
        .list_audit_entries(grpc("/orca.v1.OrcaApi/Login"))
        .await
        .expect("audit log of logins")
        .into_inner()
        .entries;
    assert!(
        logins
            .iter()
            .any(|e| e.username.as_deref() == Some("res-viewer")),
        "{logins:?}"
    );

    // Log search and follow (viewer; an outsider does not see the attempt).
    let search = |token: &str, query: &str, regex: bool| {
        req(
            Some(token),
            pb::SearchTaskLogRequest {
                task_instance_id: ti,
                query: query.into(),
                regex,
            },
        )
    };
    let found = c
        .search_task_log(search(&viewer, "needle", false))
        .await
        .expect("search the log")
        .into_inner();
    assert_eq!(
        found
            .matches
            .iter()
            .map(|m| m.text.as_str())
            .collect::<Vec<_>>(),
        ["needle-1", "needle-2"]
    );
    assert!(found.matches[0].line < found.matches[1].line);
    assert!(!found.truncated);
    let found = c
        .search_task_log(search(&viewer, "^needle-[2-9]$", true))
        .await
        .expect("search by regex")
        .into_inner();
    assert_eq!(found.matches.len(), 1, "{found:?}");
    code(
        c.search_task_log(search(&viewer, "(", true))
            .await
            .expect_err("not a regex"),
        Code::InvalidArgument,
        "a bad regex",
    );
    code(
        c.search_task_log(search(&outsider, "needle", false))
            .await
            .expect_err("not in the project"),
        Code::NotFound,
        "outsider search",
    );
    let mut stream = c
        .follow_task_log(req(
            Some(&viewer),
            pb::FollowTaskLogRequest {
                task_instance_id: ti,
            },
        ))
        .await
        .expect("follow the log")
        .into_inner();
    let mut followed = Vec::new();
    while let Some(chunk) = stream.message().await.expect("a log chunk") {
        followed.extend_from_slice(&chunk.data);
    }
    let text = String::from_utf8_lossy(&followed);
    assert!(
        text.contains("alpha") && text.contains("needle-2"),
        "{text}"
    );
    code(
        c.follow_task_log(req(
            Some(&outsider),
            pb::FollowTaskLogRequest {
                task_instance_id: ti,
            },
        ))
        .await
        .expect_err("not in the project"),
        Code::NotFound,
        "outsider follow",
    );
    // Following a running attempt: streamed from its worker until it ends.
    let slow = "workflow: {name: grpc-follow}\ntasks:\n  - {name: t, task_type: Shell, command: \"echo first; sleep 2; echo last\"}\n";
    let run = start(&mut c, &admin, slow).await;
    let running = wait_run(&mut c, &admin, run, "a running task", |d| {
        d.tasks.iter().any(|t| t.state == "RUNNING")
    })
    .await;
    let mut stream = c
        .follow_task_log(req(
            Some(&viewer),
            pb::FollowTaskLogRequest {
                task_instance_id: running.tasks[0].id,
            },
        ))
        .await
        .expect("follow a running log")
        .into_inner();
    let mut followed = Vec::new();
    while let Some(chunk) = stream.message().await.expect("a log chunk") {
        followed.extend_from_slice(&chunk.data);
    }
    let text = String::from_utf8_lossy(&followed);
    assert!(text.contains("first") && text.contains("last"), "{text}");
    // GetTaskLog honours `tail`.
    let tail = c
        .get_task_log(req(
            Some(&viewer),
            pb::GetTaskLogRequest {
                task_instance_id: ti,
                tail: Some(1),
                ..Default::default()
            },
        ))
        .await
        .expect("the last line")
        .into_inner();
    assert_eq!(tail.text.trim_end(), "needle-2", "{tail:?}");

    s.shutdown().await;
}
