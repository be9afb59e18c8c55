//! The audit log: mutating calls are recorded with their user and status,
//! a failed login without its password, and only admins read the log.

use std::net::SocketAddr;
use std::sync::Arc;

use orca_api::auth::{generate_token, hash_password_blocking, hash_token};
use orca_api::{ApiHandle, AppState};
use orca_store::{NewToken, NewUser, Store, TokenKind};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";
const WRONG: &str = "wrong-password-do-not-store";

struct World {
    _dir: tempfile::TempDir,
    store: Store,
    api: ApiHandle,
    http: reqwest::Client,
}

impl World {
    async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("orca.db").display());
        let store = Store::connect(&url).await.unwrap();
        let api = orca_api::serve(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            AppState {
                store: store.clone(),
                nudge: Arc::new(|| {}),
                worker_clients: Default::default(),
                metrics: None,
                registry: None,
            },
        )
        .await
        .unwrap();
        World {
            _dir: dir,
            store,
            api,
            http: reqwest::Client::new(),
        }
    }

    /// Creates a user; returns a personal access token of theirs.
    async fn user(&self, name: &str, admin: bool) -> String {
        let hash = hash_password_blocking(PASSWORD).unwrap();
        let u = self
            .store
            .create_user(&NewUser {
                username: name.into(),
                password_hash: hash,
                admin,
            })
            .await
            .unwrap()
            .expect("new user");
        let token = generate_token(TokenKind::PersonalAccess);
        self.store
            .insert_token(&NewToken {
                user_id: u.id,
                kind: TokenKind::PersonalAccess,
                name: "test".into(),
                token_hash: hash_token(&token),
                expires_at: None,
            })
            .await
            .unwrap();
        token
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value, Option<String>) {
        let mut req = self
            .http
            .request(method, format!("http://{}/api/v1{path}", self.api.addr));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let rid = resp
            .headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_string());
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
            rid,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_are_recorded_and_only_admins_read_them() {
    use reqwest::Method;
    let w = World::new().await;
    let root = w.user("root", true).await;
    let alice = w.user("alice", false).await;

    // root creates a project (201), alice may not (403), nobody is 401.
    let (s, _, rid_project) = w
        .call(
            Method::POST,
            "/projects",
            Some(&root),
            Some(json!({"name": "etl"})),
        )
        .await;
    assert!((200..300).contains(&s), "{s}");
    let (s, _, _) = w
        .call(
            Method::POST,
            "/projects",
            Some(&alice),
            Some(json!({"name": "nope"})),
        )
        .await;
    assert_eq!(s, 403);
    let (s, _, _) = w
        .call(Method::POST, "/tokens", None, Some(json!({"name": "x"})))
        .await;
    assert_eq!(s, 401);
    // A member change targets its project.
    let (s, _, _) = w
        .call(
            Method::PUT,
            "/projects/etl/members/alice",
            Some(&root),
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert!((200..300).contains(&s), "{s}");
    // Logins: a failed one and a successful one.
    let (s, _, _) = w
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"username": "alice", "password": WRONG})),
        )
        .await;
    assert_eq!(s, 401);
    let (s, login, _) = w
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"username": "alice", "password": PASSWORD})),
        )
        .await;
    assert_eq!(s, 200);
    let session = login["token"].as_str().unwrap().to_string();
    // Reads are not recorded.
    let (s, _, _) = w.call(Method::GET, "/projects", Some(&alice), None).await;
    assert_eq!(s, 200);

    // Non-admins may not read the audit log.
    let (s, body, _) = w.call(Method::GET, "/audit", Some(&alice), None).await;
    assert_eq!(s, 403, "{body}");

    let (s, page, _) = w.call(Method::GET, "/audit", Some(&root), None).await;
    assert_eq!(s, 200, "{page}");
    let entries = page["items"].as_array().unwrap();
    let seen: Vec<(String, String, Value, u64)> = entries
        .iter()
        .map(|e| {
            (
                e["method"].as_str().unwrap().to_string(),
                e["path"].as_str().unwrap().to_string(),
                e["username"].clone(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, String, Value, u64)> = vec![
        (
            "POST".into(),
            "/api/v1/auth/login".into(),
            json!("alice"),
            200,
        ),
        (
            "POST".into(),
            "/api/v1/auth/login".into(),
            json!("alice"),
            401,
        ),
        (
            "PUT".into(),
            "/api/v1/projects/etl/members/alice".into(),
            json!("root"),
            entries[2]["status"].as_u64().unwrap(),
        ),
        ("POST".into(), "/api/v1/tokens".into(), Value::Null, 401),
        (
            "POST".into(),
            "/api/v1/projects".into(),
            json!("alice"),
            403,
        ),
        (
            "POST".into(),
            "/api/v1/projects".into(),
            json!("root"),
            entries[5]["status"].as_u64().unwrap(),
        ),
    ];
    assert_eq!(seen, want, "newest first: {page:#}");
    assert_eq!(entries[2]["project"], "etl");
    assert!((200..300).contains(&entries[5]["status"].as_u64().unwrap()));
    assert_eq!(entries[5]["request_id"].as_str(), rid_project.as_deref());
    assert!(
        entries
            .iter()
            .all(|e| !e["request_id"].as_str().unwrap().is_empty())
    );
    // Neither the password nor a token is stored anywhere in an entry.
    let all = serde_json::to_string(&page).unwrap();
    assert!(!all.contains(WRONG) && !all.contains(PASSWORD), "{all}");
    assert!(!all.contains(&session) && !all.contains(&root) && !all.contains(&alice));

    // Cursor pagination: two at a time, newest first, no overlap.
    let (_, p1, _) = w
        .call(Method::GET, "/audit?limit=2", Some(&root), None)
        .await;
    let ids = |p: &Value| -> Vec<i64> {
        p["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect()
    };
    let first = ids(&p1);
    assert_eq!(first, ids(&page)[..2].to_vec());
    let cursor = p1["next_cursor"].as_str().expect("a next page");
    let (_, p2, _) = w
        .call(
            Method::GET,
            &format!("/audit?limit=2&cursor={cursor}"),
            Some(&root),
            None,
        )
        .await;
    assert_eq!(ids(&p2), ids(&page)[2..4].to_vec());
    // Filters: the user, the method, a path prefix.
    let (_, alices, _) = w
        .call(Method::GET, "/audit?user=alice", Some(&root), None)
        .await;
    assert!(!ids(&alices).is_empty());
    assert!(
        alices["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["username"] == "alice"),
        "{alices}"
    );
    let (_, members, _) = w
        .call(
            Method::GET,
            "/audit?method=put&path=/api/v1/projects/etl/members",
            Some(&root),
            None,
        )
        .await;
    let want: Vec<i64> = entries
        .iter()
        .filter(|e| e["method"] == "PUT")
        .filter(|e| {
            e["path"]
                .as_str()
                .unwrap()
                .starts_with("/api/v1/projects/etl/members")
        })
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(!want.is_empty());
    assert_eq!(ids(&members), want);
    let (s, _, _) = w
        .call(Method::GET, "/audit?limit=0", Some(&root), None)
        .await;
    assert_eq!(s, 422);
    w.api.shutdown().await;
}
