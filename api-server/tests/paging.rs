//! Cursor pagination and filters of every list of the REST API, on a real
//! server (SQLite in a temp dir, an in-memory registry): each list walked
//! with a small page size shows every item exactly once and in order, the
//! last page has no `next_cursor`, filters apply, a non-admin sees only its
//! project with full pages, and a bad `limit` or `cursor` is a 422 naming
//! the field.

use std::net::SocketAddr;
use std::sync::Arc;

use orca_api::AppState;
use orca_api::auth::{generate_token, hash_token};
use orca_common::registry::memory::MemoryRegistry;
use orca_common::registry::{MasterInfo, Registry, WorkerInfo};
use orca_store::{CommandKind, NewCommand, NewToken, NewUser, ReleaseState, Store, TokenKind};
use serde_json::{Value, json};

const WF: &str = "workflow: {name: NAME, project: PROJECT}
tasks:
  - {name: a, task_type: Shell, command: \"echo DESC\"}
";

fn spec(project: &str, name: &str, desc: &str) -> orca_common::WorkflowSpec {
    let yaml = WF
        .replace("NAME", name)
        .replace("PROJECT", project)
        .replace("DESC", desc);
    orca_common::workflow::parse_workflow_str(&yaml, "t.yaml", std::path::Path::new("."))
        .expect("valid workflow")
}

struct World {
    _dir: tempfile::TempDir,
    store: Store,
    api: orca_api::ApiHandle,
    http: reqwest::Client,
    root: String,
    viewer: String,
    _registry: Arc<MemoryRegistry>,
    _leases: Vec<Box<dyn std::any::Any + Send>>,
}

impl World {
    async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("orca.db").display());
        let store = Store::connect(&url).await.unwrap();
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
        let mut w = World {
            _dir: dir,
            store,
            api,
            http: reqwest::Client::new(),
            root: String::new(),
            viewer: String::new(),
            _registry: registry.clone(),
            _leases: Vec::new(),
        };
        w.root = w.user("root", true).await;
        w.viewer = w.user("viewer", false).await;
        // Workers wkr-0..wkr-4: groups g0/g1, label "gpu" on even ones,
        // environment "py" on odd ones; wkr-0 runs nothing, the others are
        // busy, wkr-4 is full.
        for i in 0..5u32 {
            let lease = registry
                .register_worker(WorkerInfo {
                    id: format!("wkr-{i}"),
                    addr: format!("http://127.0.0.1:{}", 9000 + i),
                    group: format!("g{}", i % 2),
                    labels: if i % 2 == 0 {
                        vec!["gpu".into()]
                    } else {
                        vec![]
                    },
                    environments: if i % 2 == 1 {
                        vec!["py".into()]
                    } else {
                        vec![]
                    },
                    slots: 2,
                    running: match i {
                        0 => 0,
                        4 => 2,
                        _ => 1,
                    },
                    ..Default::default()
                })
                .await
                .unwrap();
            w._leases.push(Box::new(lease));
        }
        for i in 0..3 {
            let lease = registry
                .register_master(MasterInfo {
                    id: format!("m-{i}"),
                    addr: format!("http://127.0.0.1:{}", 9100 + i),
                })
                .await
                .unwrap();
            w._leases.push(Box::new(lease));
        }
        w
    }

    /// A user with a personal access token; returns the token.
    async fn user(&self, name: &str, admin: bool) -> String {
        let u = self
            .store
            .create_user(&NewUser {
                username: name.into(),
                password_hash: "x".into(),
                admin,
            })
            .await
            .unwrap()
            .unwrap();
        let token = generate_token(TokenKind::PersonalAccess);
        self.store
            .insert_token(&NewToken {
                user_id: u.id,
                kind: TokenKind::PersonalAccess,
                name: format!("{name}-1"),
                token_hash: hash_token(&token),
                expires_at: None,
            })
            .await
            .unwrap();
        token
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("http://{}/api/v1{path}", self.api.addr);
        let mut req = match method {
            "GET" => self.http.get(url),
            "POST" => self.http.post(url),
            "PUT" => self.http.put(url),
            other => panic!("unknown method {other}"),
        }
        .bearer_auth(token);
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

    async fn get(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.call("GET", path, token, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Every item of a list, page by page with `limit` items a page: each
    /// page but the last is full and has a `next_cursor`, the last has none.
    async fn walk(&self, path: &str, limit: usize, token: &str) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100 {
            let url = match &cursor {
                None => format!("{path}{sep}limit={limit}"),
                Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
            };
            let page = self.get(&url, token).await;
            let got = page["items"]
                .as_array()
                .unwrap_or_else(|| panic!("GET {url}: not a page: {page}"));
            assert!(got.len() <= limit, "GET {url}: {page}");
            items.extend(got.iter().cloned());
            match page.get("next_cursor") {
                None => return items,
                Some(c) => {
                    assert_eq!(got.len(), limit, "only the last page is short: {url}");
                    cursor = Some(c.as_str().expect("a string cursor").to_string());
                }
            }
        }
        panic!("GET {path}: more than 100 pages");
    }
}

/// The `key` of every item, as strings.
fn keys(items: &[Value], key: &str) -> Vec<String> {
    items
        .iter()
        .map(|i| match &i[key] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_pages_filters_and_hides_what_the_caller_may_not_view() {
    let w = World::new().await;
    let (root, viewer) = (w.root.clone(), w.viewer.clone());

    // Projects A and B through the API (audited), then C1..C4.
    for p in ["A", "B", "C1", "C2", "C3", "C4"] {
        let (s, body) = w
            .call("POST", "/projects", &root, Some(json!({"name": p})))
            .await;
        assert_eq!(s, 201, "{body}");
    }
    // Members of A: viewer (viewer) and u1..u4 (owners on even ones).
    let (s, body) = w
        .call(
            "PUT",
            "/projects/A/members/viewer",
            &root,
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    for i in 1..=4 {
        let name = format!("u{i}");
        w.user(&name, i == 3).await;
        let role = if i % 2 == 0 { "owner" } else { "operator" };
        let (s, body) = w
            .call(
                "PUT",
                &format!("/projects/A/members/{name}"),
                &root,
                Some(json!({"role": role})),
            )
            .await;
        assert_eq!(s, 200, "{body}");
    }
    // Workflows: A/wf1..wf5 (wf1 with 4 versions, wf5 offline), B/wf1..wf3.
    let mut defs = Vec::new();
    for (p, n) in [("A", 5), ("B", 3)] {
        for i in 1..=n {
            let name = format!("wf{i}");
            let def = w
                .store
                .save_workflow(&spec(p, &name, "v1"), "y")
                .await
                .unwrap();
            defs.push(def);
        }
    }
    for v in 2..=4 {
        w.store
            .save_workflow(&spec("A", "wf1", &format!("v{v}")), "y")
            .await
            .unwrap();
    }
    let wf5 = w.store.workflow("A", "wf5").await.unwrap().unwrap();
    w.store
        .set_release_state(wf5.id, ReleaseState::Offline)
        .await
        .unwrap();
    // Runs: 9, alternating A and B (B's newer ones must not crowd A's out).
    let mut runs = Vec::new();
    for i in 0..9usize {
        let def = if i % 2 == 0 {
            &defs[i % 5]
        } else {
            &defs[5 + i % 3]
        };
        let cmd = w
            .store
            .insert_command(NewCommand {
                kind: CommandKind::Start,
                target_instance_id: None,
                options: Default::default(),
                workflow_definition_id: def.id,
                version: def.version,
                params: Default::default(),
                schedule_time: chrono::Utc::now(),
            })
            .await
            .unwrap();
        let run = w
            .store
            .start_workflow_instance(1, &cmd, def, chrono::Utc::now())
            .await
            .unwrap();
        runs.push(run);
    }
    // More tokens of root.
    for i in 0..3 {
        let (s, body) = w
            .call(
                "POST",
                "/tokens",
                &root,
                Some(json!({"name": format!("extra-{i}")})),
            )
            .await;
        assert_eq!(s, 201, "{body}");
    }

    // GET /runs: newest first; the viewer sees A's runs only, pages full.
    let ids = |items: &[Value]| keys(items, "id");
    let mut all: Vec<String> = runs.iter().rev().map(|r| r.id.to_string()).collect();
    assert_eq!(ids(&w.walk("/runs", 2, &root).await), all);
    all = runs
        .iter()
        .rev()
        .filter(|r| r.project == "A")
        .map(|r| r.id.to_string())
        .collect();
    assert_eq!(ids(&w.walk("/runs", 2, &viewer).await), all);
    assert_eq!(ids(&w.walk("/runs?project=A", 2, &root).await), all);
    let b_wf1: Vec<String> = runs
        .iter()
        .rev()
        .filter(|r| r.project == "B" && r.name == "wf1")
        .map(|r| r.id.to_string())
        .collect();
    assert!(!b_wf1.is_empty());
    assert_eq!(
        ids(&w
            .walk("/runs?project=B&workflow=wf1&state=running", 1, &root)
            .await),
        b_wf1
    );
    assert!(w.walk("/runs?project=B", 1, &viewer).await.is_empty());
    assert!(w.walk("/runs?state=success", 1, &root).await.is_empty());

    // GET /projects: by name; the viewer sees A only.
    let names: Vec<String> = w
        .store
        .list_projects()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert!(names.len() >= 6, "{names:?}");
    assert_eq!(keys(&w.walk("/projects", 2, &root).await, "name"), names);
    assert_eq!(keys(&w.walk("/projects", 1, &viewer).await, "name"), ["A"]);
    assert_eq!(
        keys(&w.walk("/projects?name=c", 3, &root).await, "name"),
        ["C1", "C2", "C3", "C4"]
    );
    let page = w.get("/projects", &viewer).await;
    assert_eq!(page["items"][0]["role"], "viewer");

    // GET /workflows: by project then name, current versions only.
    let pair = |items: &[Value]| -> Vec<String> {
        items
            .iter()
            .map(|i| {
                format!(
                    "{}/{}",
                    i["project"].as_str().unwrap(),
                    i["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    let a = strings(&["A/wf1", "A/wf2", "A/wf3", "A/wf4", "A/wf5"]);
    let mut every = a.clone();
    every.extend(strings(&["B/wf1", "B/wf2", "B/wf3"]));
    let listed = w.walk("/workflows", 3, &root).await;
    assert_eq!(pair(&listed), every);
    assert_eq!(listed[0]["version"], 4, "the current version");
    assert_eq!(pair(&w.walk("/workflows", 2, &viewer).await), a);
    assert_eq!(
        pair(&w.walk("/workflows?project=B", 2, &root).await),
        strings(&["B/wf1", "B/wf2", "B/wf3"])
    );
    assert_eq!(
        pair(&w.walk("/workflows?name=WF1", 1, &root).await),
        strings(&["A/wf1", "B/wf1"])
    );
    assert_eq!(
        pair(&w.walk("/workflows?name=wf1", 1, &viewer).await),
        strings(&["A/wf1"])
    );
    assert_eq!(
        pair(&w.walk("/workflows?release_state=offline", 1, &root).await),
        strings(&["A/wf5"])
    );
    assert_eq!(
        w.walk("/workflows?release_state=online", 2, &viewer)
            .await
            .len(),
        4
    );

    // GET /workflows/{project}/{name}/versions: oldest first.
    assert_eq!(
        keys(
            &w.walk("/workflows/A/wf1/versions", 3, &viewer).await,
            "version"
        ),
        ["1", "2", "3", "4"]
    );

    // GET /projects/{project}/members: by username, optionally by role.
    assert_eq!(
        keys(&w.walk("/projects/A/members", 2, &viewer).await, "username"),
        ["u1", "u2", "u3", "u4", "viewer"]
    );
    assert_eq!(
        keys(
            &w.walk("/projects/A/members?role=owner", 1, &viewer).await,
            "username"
        ),
        ["u2", "u4"]
    );

    // GET /users (admins): by username, with filters.
    assert_eq!(
        keys(&w.walk("/users", 2, &root).await, "username"),
        ["root", "u1", "u2", "u3", "u4", "viewer"]
    );
    assert_eq!(
        keys(&w.walk("/users?admin=true", 1, &root).await, "username"),
        ["root", "u3"]
    );
    assert_eq!(
        keys(
            &w.walk("/users?admin=false&name=U", 2, &root).await,
            "username"
        ),
        ["u1", "u2", "u4"]
    );

    // GET /tokens: the caller's, oldest first.
    assert_eq!(
        keys(&w.walk("/tokens", 2, &root).await, "name"),
        ["root-1", "extra-0", "extra-1", "extra-2"]
    );
    assert_eq!(
        keys(&w.walk("/tokens", 2, &viewer).await, "name"),
        ["viewer-1"]
    );

    // GET /audit (admins): newest first, with filters.
    let entries = w.walk("/audit", 3, &root).await;
    let want: Vec<String> = {
        let mut all = w
            .store
            .audit_entries(&orca_store::AuditFilter {
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        all.truncate(1000);
        all.iter().map(|e| e.id.to_string()).collect()
    };
    assert_eq!(ids(&entries), want);
    assert!(entries.len() > 10, "{}", entries.len());
    let members = w
        .walk("/audit?method=PUT&project=A&user=root", 2, &root)
        .await;
    assert_eq!(members.len(), 5, "{members:?}");
    let created = w.walk("/audit?path=/api/v1/projects", 2, &root).await;
    assert_eq!(created.len(), 11, "6 projects and 5 members");
    let tokens = w
        .walk("/audit?path=/api/v1/tokens&method=post", 2, &root)
        .await;
    assert_eq!(tokens.len(), 3);
    let (s, _) = w.call("GET", "/audit", &viewer, None).await;
    assert_eq!(s, 403);
    let future = w.walk("/audit?since=2999-01-01T00:00:00Z", 2, &root).await;
    assert!(future.is_empty());

    // GET /workers: by id, with filters.
    assert_eq!(
        keys(&w.walk("/workers", 2, &viewer).await, "id"),
        ["wkr-0", "wkr-1", "wkr-2", "wkr-3", "wkr-4"]
    );
    assert_eq!(
        keys(&w.walk("/workers?group=g0", 2, &viewer).await, "id"),
        ["wkr-0", "wkr-2", "wkr-4"]
    );
    assert_eq!(
        keys(
            &w.walk("/workers?label=gpu&group=g0", 1, &viewer).await,
            "id"
        ),
        ["wkr-0", "wkr-2", "wkr-4"]
    );
    assert_eq!(
        keys(&w.walk("/workers?environment=py", 1, &viewer).await, "id"),
        ["wkr-1", "wkr-3"]
    );
    for (state, want) in [
        ("idle", vec!["wkr-0"]),
        ("busy", vec!["wkr-1", "wkr-2", "wkr-3"]),
        ("full", vec!["wkr-4"]),
    ] {
        assert_eq!(
            keys(
                &w.walk(&format!("/workers?state={state}"), 2, &viewer).await,
                "id"
            ),
            want,
            "{state}"
        );
    }

    // GET /masters: by id.
    assert_eq!(
        keys(&w.walk("/masters", 2, &viewer).await, "id"),
        ["m-0", "m-1", "m-2"]
    );
    w.api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_limit_or_cursor_is_a_422_naming_the_field() {
    let w = World::new().await;
    let root = w.root.clone();
    let (s, body) = w
        .call("POST", "/projects", &root, Some(json!({"name": "A"})))
        .await;
    assert_eq!(s, 201, "{body}");
    w.store
        .save_workflow(&spec("A", "wf", "v1"), "y")
        .await
        .unwrap();
    let lists = [
        "/runs",
        "/audit",
        "/projects",
        "/projects/A/members",
        "/workflows",
        "/workflows/A/wf/versions",
        "/users",
        "/tokens",
        "/workers",
        "/masters",
    ];
    for list in lists {
        for (query, field) in [
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("cursor=nonsense", "cursor"),
            // An id cursor on a list by name, or a name cursor on one by id.
            ("cursor=i.5", "cursor"),
            ("cursor=n.41", "cursor"),
        ] {
            let (s, body) = w.call("GET", &format!("{list}?{query}"), &root, None).await;
            // Lists by id take `i.`, lists by name take `n.` cursors.
            if s == 200 {
                assert!(query.starts_with("cursor=i.") || query.starts_with("cursor=n."));
                continue;
            }
            assert_eq!(s, 422, "GET {list}?{query}: {body}");
            assert_eq!(body["code"], "ORCA-API-INVALID", "{body}");
            let detail = body["detail"].as_str().unwrap_or_default();
            assert!(detail.starts_with(field), "GET {list}?{query}: {body}");
        }
        // Exactly one of the two cursor kinds fits each list (workflows are
        // named by project and name, joined by a NUL).
        let name = if list == "/workflows" {
            "n.4100"
        } else {
            "n.41"
        };
        let mut fits = 0;
        for cursor in ["i.5", name] {
            let (s, _) = w
                .call("GET", &format!("{list}?cursor={cursor}"), &root, None)
                .await;
            fits += usize::from(s == 200);
        }
        assert_eq!(fits, 1, "GET {list}");
        // A number that is not one is refused by the query parser, naming it.
        let (s, body) = w
            .call("GET", &format!("{list}?limit=ten"), &root, None)
            .await;
        assert_eq!(s, 400, "GET {list}?limit=ten: {body}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("limit"),
            "{body}"
        );
    }
    // Filters are checked too.
    let (s, body) = w.call("GET", "/runs?state=sleeping", &root, None).await;
    assert_eq!(s, 422, "{body}");
    let (s, body) = w.call("GET", "/workers?state=asleep", &root, None).await;
    assert_eq!(s, 400, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("state"),
        "{body}"
    );
    w.api.shutdown().await;
}
