//! The lifecycle of a workflow definition over REST, on a real server
//! (SQLite in a temp dir): versions and their diff, online/offline, delete.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use orca_api::AppState;
use orca_api::auth::{generate_token, hash_token};
use orca_common::{Direction, FailureStrategy, ParamSpec, WorkflowState};
use orca_store::{NewToken, NewUser, Store, TokenKind, Write};
use serde_json::{Value, json};

const V1: &str = "workflow: {name: wf, project: P}
tasks:
  - {name: a, task_type: Shell, command: \"echo one\"}
  - {name: b, task_type: Shell, command: \"echo b\", deps: [a]}
";
const V2: &str = "workflow: {name: wf, project: P}
tasks:
  - {name: a, task_type: Shell, command: \"echo two\"}
  - {name: c, task_type: Shell, command: \"echo c\", deps: [a]}
";

fn parse(yaml: &str) -> orca_common::WorkflowSpec {
    orca_common::workflow::parse_workflow_str(yaml, "t.yaml", std::path::Path::new("."))
        .expect("valid workflow")
}

struct Api {
    _dir: tempfile::TempDir,
    store: Store,
    api: orca_api::ApiHandle,
    http: reqwest::Client,
    token: String,
    nudges: Arc<AtomicUsize>,
}

impl Api {
    async fn new() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("orca.db").display());
        let store = Store::connect(&url).await.unwrap();
        store.claim_epoch(1, "test").await.unwrap();
        let admin = store
            .create_user(&NewUser {
                username: "admin".into(),
                password_hash: "x".into(),
                admin: true,
            })
            .await
            .unwrap()
            .unwrap();
        let token = generate_token(TokenKind::PersonalAccess);
        store
            .insert_token(&NewToken {
                user_id: admin.id,
                kind: TokenKind::PersonalAccess,
                name: "t".into(),
                token_hash: hash_token(&token),
                expires_at: None,
            })
            .await
            .unwrap();
        let nudges = Arc::new(AtomicUsize::new(0));
        let n = nudges.clone();
        let api = orca_api::serve(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            AppState {
                store: store.clone(),
                nudge: Arc::new(move || {
                    n.fetch_add(1, Ordering::SeqCst);
                }),
                worker_clients: Default::default(),
                metrics: None,
                registry: None,
            },
        )
        .await
        .unwrap();
        Api {
            _dir: dir,
            store,
            api,
            http: reqwest::Client::new(),
            token,
            nudges,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("http://{}/api/v1{path}", self.api.addr);
        let mut req = match method {
            "GET" => self.http.get(url),
            "POST" => self.http.post(url),
            "DELETE" => self.http.delete(url),
            other => panic!("unknown method {other}"),
        }
        .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

fn detail(body: &Value) -> &str {
    body["detail"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_and_their_diff() {
    let w = Api::new().await;
    let v1 = w.store.save_workflow(&parse(V1), V1).await.unwrap();
    let mut s2 = parse(V2);
    // Global parameters and the failure strategy change too.
    s2.failure_strategy = FailureStrategy::Continue;
    s2.params = vec![ParamSpec {
        name: "dt".into(),
        value: "today".into(),
        direction: Direction::In,
    }];
    let v2 = w.store.save_workflow(&s2, V2).await.unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));

    let (status, body) = w.call("GET", "/workflows/P/wf/versions", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["current_version"], 2);
    assert_eq!(body["release_state"], "online");
    assert!(body.get("next_cursor").is_none(), "{body}");
    let versions: Vec<(i64, i64)> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_i64().unwrap(), v["tasks"].as_i64().unwrap()))
        .collect();
    assert_eq!(versions, vec![(1, 2), (2, 2)]);
    // One a page: version 1, then version 2 and no further page.
    let (_, p1) = w
        .call("GET", "/workflows/P/wf/versions?limit=1", None)
        .await;
    assert_eq!(p1["items"][0]["version"], 1, "{p1}");
    let cursor = p1["next_cursor"].as_str().expect("a next page");
    let (_, p2) = w
        .call(
            "GET",
            &format!("/workflows/P/wf/versions?limit=1&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(p2["items"][0]["version"], 2, "{p2}");
    assert!(p2.get("next_cursor").is_none(), "{p2}");
    assert_eq!(p2["current_version"], 2);

    let (status, body) = w.call("GET", "/workflows/P/wf/versions/1", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["version"].as_i64(), body["source"].as_str()),
        (Some(1), Some(V1))
    );
    assert_eq!(body["spec"]["tasks"][0]["script"], "echo one");
    let (status, body) = w.call("GET", "/workflows/P/wf/versions/7", None).await;
    assert_eq!(status, 404, "{body}");
    assert!(detail(&body).contains("P/wf@7"), "{body}");
    let (status, _) = w.call("GET", "/workflows/P/nope/versions", None).await;
    assert_eq!(status, 404);

    let (status, d) = w
        .call("GET", "/workflows/P/wf/versions/1/diff/2", None)
        .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!((d["from"].as_i64(), d["to"].as_i64()), (Some(1), Some(2)));
    assert_eq!(d["tasks_added"], json!(["c"]));
    assert_eq!(d["tasks_removed"], json!(["b"]));
    let changed = d["tasks_changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{d}");
    assert_eq!(changed[0]["task"], "a");
    assert_eq!(
        changed[0]["fields"],
        json!([{"field": "script", "old": "echo one", "new": "echo two"}])
    );
    let wf_fields: Vec<&str> = d["workflow_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(wf_fields, vec!["failure_strategy", "params"], "{d}");
    let fs = &d["workflow_changes"][0];
    assert_eq!(
        (fs["old"].as_str(), fs["new"].as_str()),
        (Some("END"), Some("CONTINUE"))
    );
    let text = d["source_diff"].as_str().unwrap();
    assert!(text.contains("--- v1\n+++ v2\n"), "{text}");
    assert!(
        text.contains("\n-  - {name: a, task_type: Shell, command: \"echo one\"}\n"),
        "{text}"
    );
    assert!(
        text.contains("\n+  - {name: a, task_type: Shell, command: \"echo two\"}\n"),
        "{text}"
    );

    // The same version: nothing changed.
    let (status, d) = w
        .call("GET", "/workflows/P/wf/versions/2/diff/2", None)
        .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(
        (
            &d["tasks_added"],
            &d["tasks_removed"],
            &d["tasks_changed"],
            &d["workflow_changes"]
        ),
        (&json!([]), &json!([]), &json!([]), &json!([]))
    );
    assert_eq!(d["source_diff"], "");
    let (status, _) = w
        .call("GET", "/workflows/P/wf/versions/1/diff/3", None)
        .await;
    assert_eq!(status, 404);
    w.api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_workflows_cannot_be_triggered() {
    let w = Api::new().await;
    let def = w.store.save_workflow(&parse(V1), V1).await.unwrap();

    let (status, body) = w.call("POST", "/workflows/P/wf/offline", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"project": "P", "name": "wf", "release_state": "offline"})
    );
    assert_eq!(
        w.nudges.load(Ordering::SeqCst),
        1,
        "the leader re-reads its schedules"
    );
    let (_, body) = w.call("GET", "/workflows/P/wf/versions", None).await;
    assert_eq!(body["release_state"], "offline");

    let (status, body) = w
        .call("POST", "/workflows/P/wf/runs", Some(json!({})))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "ORCA-API-CONFLICT");
    assert!(detail(&body).contains("P/wf is offline"), "{body}");
    assert!(w.store.pending_commands(10).await.unwrap().is_empty());

    let (status, body) = w.call("POST", "/workflows/P/wf/online", None).await;
    assert_eq!(
        (status, &body["release_state"]),
        (200, &json!("online")),
        "{body}"
    );
    let (status, body) = w
        .call("POST", "/workflows/P/wf/runs", Some(json!({})))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["workflow_definition_id"].as_i64(), Some(def.id));

    let (status, _) = w.call("POST", "/workflows/P/nope/offline", None).await;
    assert_eq!(status, 404);
    w.api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_workflows_are_not_rerun_or_recovered() {
    let w = Api::new().await;
    let def = w.store.save_workflow(&parse(V1), V1).await.unwrap();
    let (status, body) = w
        .call("POST", "/workflows/P/wf/runs", Some(json!({})))
        .await;
    assert_eq!(status, 200, "{body}");
    let cmd = w
        .store
        .command(body["command_id"].as_i64().unwrap())
        .await
        .unwrap()
        .unwrap();
    let run = w
        .store
        .start_workflow_instance(1, &cmd, &def, chrono::Utc::now())
        .await
        .unwrap();
    w.store
        .apply(
            1,
            vec![Write::UpdateWorkflowInstance {
                id: run.id,
                state: WorkflowState::Failure,
                end_time: Some(chrono::Utc::now()),
            }],
        )
        .await
        .unwrap();
    let (status, _) = w.call("POST", "/workflows/P/wf/offline", None).await;
    assert_eq!(status, 200);
    for op in ["rerun", "recover-failed"] {
        let (status, body) = w
            .call("POST", &format!("/runs/{}/{op}", run.id), None)
            .await;
        assert_eq!(status, 409, "{op}: {body}");
        assert!(detail(&body).contains("P/wf is offline"), "{op}: {body}");
    }
    let (status, _) = w.call("POST", "/workflows/P/wf/online", None).await;
    assert_eq!(status, 200);
    for op in ["rerun", "recover-failed"] {
        let (status, body) = w
            .call("POST", &format!("/runs/{}/{op}", run.id), None)
            .await;
        assert_eq!(status, 200, "{op}: {body}");
    }
    w.api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_is_refused_while_runs_are_active() {
    let w = Api::new().await;
    let def = w.store.save_workflow(&parse(V1), V1).await.unwrap();

    // A pending START command.
    let (status, body) = w
        .call("POST", "/workflows/P/wf/runs", Some(json!({})))
        .await;
    assert_eq!(status, 200, "{body}");
    let command_id = body["command_id"].as_i64().unwrap();
    let (status, body) = w.call("DELETE", "/workflows/P/wf", None).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        detail(&body).contains(&format!("START commands [{command_id}] are not consumed")),
        "{body}"
    );

    // Consumed into a RUNNING run.
    let cmd = w.store.command(command_id).await.unwrap().unwrap();
    let run = w
        .store
        .start_workflow_instance(1, &cmd, &def, chrono::Utc::now())
        .await
        .unwrap();
    let (status, body) = w.call("DELETE", "/workflows/P/wf?force=true", None).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        detail(&body).contains(&format!("runs [{}] are RUNNING or PAUSE", run.id)),
        "{body}"
    );

    // Finished: refused without force, deleted with it.
    w.store
        .apply(
            1,
            vec![Write::UpdateWorkflowInstance {
                id: run.id,
                state: WorkflowState::Success,
                end_time: Some(chrono::Utc::now()),
            }],
        )
        .await
        .unwrap();
    let (status, body) = w.call("DELETE", "/workflows/P/wf", None).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        detail(&body).contains("1 finished run(s); pass ?force=true"),
        "{body}"
    );
    assert!(w.store.workflow("P", "wf").await.unwrap().is_some());

    let nudges = w.nudges.load(Ordering::SeqCst);
    let (status, body) = w.call("DELETE", "/workflows/P/wf?force=true", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"project": "P", "name": "wf", "deleted_runs": 1})
    );
    assert_eq!(w.nudges.load(Ordering::SeqCst), nudges + 1);
    let (status, _) = w.call("GET", "/workflows/P/wf", None).await;
    assert_eq!(status, 404);
    assert_eq!(w.store.workflow_instance(run.id).await.unwrap(), None);
    let (status, _) = w.call("DELETE", "/workflows/P/wf", None).await;
    assert_eq!(status, 404);

    // Without runs, no force is needed.
    w.store.save_workflow(&parse(V2), V2).await.unwrap();
    let (status, body) = w.call("DELETE", "/workflows/P/wf", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deleted_runs"], 0);
    w.api.shutdown().await;
}
