//! A real API server for tests, on SQLite or PostgreSQL ([`TestDb`]), with
//! an in-process registry tests can register workers in, and users with
//! personal access tokens.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use orca_api::auth::{generate_token, hash_token};
use orca_api::{ApiHandle, AppState};
use orca_common::registry::memory::MemoryRegistry;
use orca_store::{NewToken, NewUser, Store, TokenKind, UserRow};
pub use orca_testkit::TestDb;
use serde_json::Value;

pub struct TestApi {
    pub db: TestDb,
    pub store: Store,
    pub api: ApiHandle,
    pub http: reqwest::Client,
    pub registry: Arc<MemoryRegistry>,
    /// A token of the admin `root`.
    pub admin: String,
}

impl TestApi {
    /// A server on `db` with one admin, `root`.
    pub async fn start(db: TestDb) -> TestApi {
        let store = Store::connect(&db.url)
            .await
            .unwrap_or_else(|e| panic!("connect {}: {e}", db.backend));
        store.claim_epoch(1, "test").await.unwrap();
        let registry = Arc::new(MemoryRegistry::new());
        let api = orca_api::serve(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            AppState {
                store: store.clone(),
                nudge: Arc::new(|| {}),
                worker_clients: Default::default(),
                metrics: None,
                registry: Some(registry.clone()),
            },
        )
        .await
        .unwrap();
        let root = create_user(&store, "root", true, "x").await;
        let admin = pat(&store, root.id).await;
        TestApi {
            db,
            store,
            api,
            http: reqwest::Client::new(),
            registry,
            admin,
        }
    }

    /// A new user and a personal access token of theirs.
    pub async fn user(&self, name: &str, admin: bool) -> String {
        let u = create_user(&self.store, name, admin, "x").await;
        pat(&self.store, u.id).await
    }

    /// `METHOD /api/v1{path}` with `token`; the status and the JSON body
    /// (a JSON string when the body is not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("http://{}/api/v1{path}", self.api.addr);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut req = self.http.request(method, url).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("the server answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("a body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Every item of a paged list, following `next_cursor` with `limit`
    /// per page; panics on a page that is not 200.
    pub async fn all_pages(&self, path: &str, token: &str, limit: u64) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut p = format!("{path}{sep}limit={limit}");
            if let Some(c) = &cursor {
                p.push_str(&format!("&cursor={c}"));
            }
            let (status, body) = self.call("GET", &p, token, None).await;
            assert_eq!(status, 200, "{p}: {body}");
            let page = body["items"].as_array().expect("a page has items");
            assert!(
                page.len() as u64 <= limit,
                "{p}: page larger than the limit"
            );
            items.extend(page.iter().cloned());
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return items,
            }
        }
    }
}

/// A new user with this password hash (`"x"`: none can log in).
pub async fn create_user(store: &Store, name: &str, admin: bool, password_hash: &str) -> UserRow {
    store
        .create_user(&NewUser {
            username: name.into(),
            password_hash: password_hash.into(),
            admin,
        })
        .await
        .unwrap()
        .expect("a new user")
}

/// A new personal access token of `user_id`.
pub async fn pat(store: &Store, user_id: i64) -> String {
    let token = generate_token(TokenKind::PersonalAccess);
    store
        .insert_token(&NewToken {
            user_id,
            kind: TokenKind::PersonalAccess,
            name: "test".into(),
            token_hash: hash_token(&token),
            expires_at: None,
        })
        .await
        .unwrap();
    token
}

/// The `detail` of a problem+json body.
pub fn detail(body: &Value) -> &str {
    body["detail"].as_str().unwrap_or_default()
}
