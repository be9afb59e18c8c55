//! The schedule endpoints of a workflow: set, read, preview, delete, and
//! 422s naming the field at fault.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Timelike, Utc};
use orca_api::AppState;
use orca_api::auth::{generate_token, hash_token};
use orca_store::{NewToken, NewUser, Store, TokenKind};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("orca.db").display());
    let store = Store::connect(&url).await.unwrap();
    let yaml = "workflow: {name: wf, project: P}\ntasks:\n  - {name: a, task_type: Shell, command: \"true\"}\n";
    let spec = orca_common::workflow::parse_workflow_str(yaml, "t.yaml", std::path::Path::new("."))
        .unwrap();
    let def = store.save_workflow(&spec, yaml).await.unwrap();
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
    let http = reqwest::Client::new();
    let base = format!("http://{}/api/v1/workflows/P/wf/schedule", api.addr);
    let call = |req: reqwest::RequestBuilder| {
        let req = req.bearer_auth(&token);
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            (
                status,
                serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
            )
        }
    };

    // None yet.
    let (status, body) = call(http.get(&base)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("ORCA-API-NOT-FOUND"))
    );
    let (status, _) = call(http.get(format!("{base}/preview"))).await;
    assert_eq!(status, 404);

    // Invalid cron and time zone: 422 naming the field.
    for (req, field) in [
        (
            json!({"cron": "0 0 99 * * ? *", "timezone": "UTC"}),
            "`cron`",
        ),
        (
            json!({"cron": "0 0 2 * * ? *", "timezone": "Mars/Base"}),
            "`timezone`",
        ),
        (
            json!({"cron": "0 0 2 * * ? *", "start_time": "2030-01-02T00:00:00Z", "end_time": "2030-01-01T00:00:00Z"}),
            "`end_time`",
        ),
    ] {
        let (status, body) = call(http.put(&base).json(&req)).await;
        assert_eq!(status, 422, "{req}: {body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(field), "{req}: {detail}");
    }
    assert_eq!(store.schedule(def.id).await.unwrap(), None);
    assert_eq!(nudges.load(Ordering::SeqCst), 0);

    // Set it: Quartz, 02:00 in Shanghai, enabled, with params.
    let (status, body) = call(http.put(&base).json(&json!({
        "cron": "0 0 2 * * ? *",
        "timezone": "Asia/Shanghai",
        "enabled": true,
        "params": {"dt": "x"},
    })))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cron"], "0 0 2 * * ? *");
    assert_eq!(body["enabled"], true);
    assert_eq!(body["params"]["dt"], "x");
    assert_eq!(nudges.load(Ordering::SeqCst), 1, "the leader is told");
    let stored = store.schedule(def.id).await.unwrap().unwrap();
    assert_eq!(stored.timezone, "Asia/Shanghai");
    let (status, got) = call(http.get(&base)).await;
    assert_eq!((status, got["id"].as_i64()), (200, Some(stored.id)));

    // Preview: 3 times, each 02:00 Shanghai = 18:00 UTC, a day apart.
    let (status, body) = call(http.get(format!("{base}/preview?count=3"))).await;
    assert_eq!(status, 200, "{body}");
    let times: Vec<DateTime<Utc>> =
        serde_json::from_value(body["next_fire_times"].clone()).unwrap();
    assert_eq!(times.len(), 3);
    assert!(times[0] > Utc::now());
    for t in &times {
        assert_eq!((t.hour(), t.minute(), t.second()), (18, 0, 0), "{t}");
    }
    assert_eq!(times[1] - times[0], chrono::Duration::days(1));
    let (status, _) = call(http.get(format!("{base}/preview?count=0"))).await;
    assert_eq!(status, 422);

    // Delete: idempotent.
    let (status, _) = call(http.delete(&base)).await;
    assert_eq!(status, 204);
    assert_eq!(store.schedule(def.id).await.unwrap(), None);
    let (status, _) = call(http.delete(&base)).await;
    assert_eq!(status, 204);
    // Unknown workflow.
    let (status, _) = call(http.delete(format!(
        "http://{}/api/v1/workflows/P/nope/schedule",
        api.addr
    )))
    .await;
    assert_eq!(status, 404);
    api.shutdown().await;
}
