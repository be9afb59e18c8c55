//! The authorisation matrix: every route of the route table
//! ([`orca_api::routes::route_permissions`]) × every kind of caller × the
//! caller's own project's ids, another project's ids and unknown ids, on a
//! real server (SQLite in a temp dir, no-op nudger). Plus the flows around
//! it: login, tokens, password change, disabled users, filtered listings.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use orca_api::auth::{generate_token, hash_password_blocking, hash_token};
use orca_api::authz::{Perm, ProjectFrom, RouteRule, Verb};
use orca_api::{ApiHandle, AppState};
use orca_common::WorkflowSpec;
use orca_store::{
    CommandKind, NewCommand, NewTaskInstance, NewToken, ProjectRole, ResourceKind, Store,
    TaskInstanceUpdate, TokenKind, Write,
};
use serde_json::{Value, json};

mod support;

use support::{create_user as user, pat};

const PASSWORD: &str = "correct horse battery staple";
const UNKNOWN_ID: i64 = 999_999;

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    Admin,
    Role(ProjectRole),
    Outsider,
}

impl Who {
    fn all() -> Vec<Who> {
        vec![
            Who::Anonymous,
            Who::Admin,
            Who::Role(ProjectRole::Owner),
            Who::Role(ProjectRole::Editor),
            Who::Role(ProjectRole::Operator),
            Who::Role(ProjectRole::Viewer),
            Who::Outsider,
        ]
    }

    fn username(self) -> &'static str {
        match self {
            Who::Anonymous => "",
            Who::Admin => "root",
            Who::Role(r) => r.as_str(),
            Who::Outsider => "outsider",
        }
    }
}

/// Which ids a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Project A, where the role users have their roles.
    Own,
    /// Project B, where they have none.
    Other,
    Unknown,
}

/// The ids of one project's data.
#[derive(Debug, Clone)]
struct Ids {
    project: String,
    run: i64,
    command: i64,
    task_instance: i64,
}

struct World {
    _dir: tempfile::TempDir,
    _db: orca_testkit::TestDb,
    store: Store,
    api: ApiHandle,
    http: reqwest::Client,
    tokens: BTreeMap<&'static str, String>,
    a: Ids,
    b: Ids,
    seq: AtomicU32,
}

fn spec(project: &str, name: &str) -> WorkflowSpec {
    let yaml = format!(
        "workflow: {{name: {name}, project: {project}}}\ntasks:\n  - {{name: extract, task_type: Shell, command: \"true\"}}\n"
    );
    orca_common::workflow::parse_workflow_str(&yaml, "test.yaml", std::path::Path::new("."))
        .expect("valid workflow")
}

/// A workflow, a run (RUNNING) with one task attempt whose log is a file.
async fn project_data(store: &Store, dir: &std::path::Path, project: &str) -> Ids {
    let def = store
        .save_workflow(&spec(project, "wf"), "src")
        .await
        .unwrap();
    let cmd = store
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
    let run = store
        .start_workflow_instance(1, &cmd, &def, chrono::Utc::now())
        .await
        .unwrap();
    let ids = store
        .apply(
            1,
            vec![Write::InsertTaskInstance(NewTaskInstance {
                workflow_instance_id: run.id,
                task_name: "extract".into(),
                attempt: 1,
                state: orca_common::TaskState::Running,
                failover: false,
                worker_id: None,
                worker_addr: None,
                submit_time: chrono::Utc::now(),
                end_time: None,
                message: None,
            })],
        )
        .await
        .unwrap();
    let log = dir.join(format!("{project}.log"));
    std::fs::write(&log, format!("log of {project}\n")).unwrap();
    store
        .apply(
            1,
            vec![Write::UpdateTaskInstance {
                id: ids[0],
                update: TaskInstanceUpdate {
                    // Nothing listens there: the API falls back to the file.
                    worker_addr: Some("http://127.0.0.1:1".into()),
                    log_path: Some(log.display().to_string()),
                    ..Default::default()
                },
            }],
        )
        .await
        .unwrap();
    Ids {
        project: project.into(),
        run: run.id,
        command: cmd.id,
        task_instance: ids[0],
    }
}

impl World {
    /// On SQLite.
    async fn new() -> World {
        World::on(orca_testkit::TestDb::sqlite()).await
    }

    async fn on(db: orca_testkit::TestDb) -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&db.url).await.unwrap();
        store.claim_epoch(1, "test").await.unwrap();
        let a = project_data(&store, dir.path(), "A").await;
        let b = project_data(&store, dir.path(), "B").await;
        let a_id = store.project("A").await.unwrap().unwrap().id;
        let b_id = store.project("B").await.unwrap().unwrap().id;

        let hash = hash_password_blocking(PASSWORD).unwrap();
        let mut tokens = BTreeMap::new();
        for who in Who::all().into_iter().skip(1) {
            let u = user(&store, who.username(), who == Who::Admin, &hash).await;
            if let Who::Role(r) = who {
                store.set_member(a_id, u.id, r).await.unwrap();
            }
            tokens.insert(who.username(), pat(&store, u.id).await);
        }
        // Project B has its own owner; `extra` is the member the member
        // routes add and remove.
        let b_owner = user(&store, "b-owner", false, "x").await;
        store
            .set_member(b_id, b_owner.id, ProjectRole::Owner)
            .await
            .unwrap();
        user(&store, "extra", false, "x").await;
        // The tenant, worker group and environment the matrix's paths name.
        for (kind, attrs) in [
            (ResourceKind::Tenant, json!({"os_user": "matrix"})),
            (ResourceKind::WorkerGroup, json!({})),
            (ResourceKind::Environment, json!({})),
        ] {
            store
                .create_resource(kind, "matrix", "", &attrs)
                .await
                .unwrap()
                .unwrap();
        }

        let api = orca_api::serve(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            AppState {
                store: store.clone(),
                nudge: Arc::new(|| {}),
                worker_clients: Default::default(),
                metrics: None,
                registry: Some(Arc::new(
                    orca_common::registry::memory::MemoryRegistry::new(),
                )),
            },
        )
        .await
        .unwrap();
        World {
            _dir: dir,
            _db: db,
            store,
            api,
            http: reqwest::Client::new(),
            tokens,
            a,
            b,
            seq: AtomicU32::new(0),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/api/v1{path}", self.api.addr)
    }

    async fn call(
        &self,
        verb: Verb,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = self.url(path);
        let mut req = match verb {
            Verb::Get => self.http.get(url),
            Verb::Post => self.http.post(url),
            Verb::Put => self.http.put(url),
            Verb::Patch => self.http.patch(url),
            Verb::Delete => self.http.delete(url),
        };
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
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

    fn unique(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.seq.fetch_add(1, Ordering::Relaxed))
    }

    /// The concrete path and body of `rule` for `target`. Panics for a
    /// route it does not know: a new route must be added here.
    fn request(&self, rule: &RouteRule, target: Target) -> (String, Option<Value>) {
        let ids = match target {
            Target::Own => Some(&self.a),
            Target::Other => Some(&self.b),
            Target::Unknown => None,
        };
        let project = ids.map_or("no-such-project".to_string(), |i| i.project.clone());
        let id = match rule.project {
            ProjectFrom::Run => ids.map_or(UNKNOWN_ID, |i| i.run),
            ProjectFrom::Command => ids.map_or(UNKNOWN_ID, |i| i.command),
            ProjectFrom::TaskInstance => ids.map_or(UNKNOWN_ID, |i| i.task_instance),
            _ => UNKNOWN_ID,
        };
        let path = rule
            .path
            .replace("{project}", &project)
            .replace("{name}", "wf")
            .replace("{id}", &id.to_string())
            .replace("{task}", "extract")
            .replace("{username}", "extra")
            .replace("{version}", "1")
            .replace("{to}", "1")
            .replace("{tenant}", "matrix")
            .replace("{group}", "matrix")
            .replace("{environment}", "matrix");
        let path = if rule.path.ends_with("/log/search") {
            format!("{path}?q=log")
        } else {
            path
        };
        // A project that does not exist yet: only admins may create one.
        let body_project = ids.map_or_else(|| self.unique("new-project"), |i| i.project.clone());
        let body = match (rule.verb, rule.path) {
            (Verb::Post, "/auth/login") => {
                Some(json!({"username": "viewer", "password": PASSWORD}))
            }
            // Too short: refused before the current password is checked,
            // so the matrix never changes a password.
            (Verb::Post, "/users/me/password") => {
                Some(json!({"current_password": PASSWORD, "new_password": "short"}))
            }
            (Verb::Post, "/users") => {
                Some(json!({"username": self.unique("user"), "password": PASSWORD}))
            }
            (Verb::Patch, "/users/{username}") => Some(json!({})),
            (Verb::Post, "/tokens") => Some(json!({"name": "matrix"})),
            (Verb::Post, "/projects") => Some(json!({"name": self.unique("project")})),
            (Verb::Put, "/projects/{project}/members/{username}") => {
                Some(json!({"role": "viewer"}))
            }
            (Verb::Post, "/workflows") => {
                Some(json!({"spec": spec(&body_project, &self.unique("wf")), "source": ""}))
            }
            (Verb::Post, "/workflows:import") => Some(json!({
                "format": "pydolphinscheduler-yaml",
                "project": body_project,
                "content": format!(
                    "workflow: {{name: {}}}\ntasks:\n  - {{name: t, task_type: Shell, command: \"true\"}}\n",
                    self.unique("imported")
                ),
            })),
            (Verb::Post, "/workflows/{project}/{name}/runs") => Some(json!({})),
            (Verb::Post, "/runs:bulk") => Some(json!({"op": "pause", "ids": []})),
            (Verb::Post, "/tenants" | "/worker-groups" | "/environments") => {
                Some(json!({"name": self.unique("res")}))
            }
            (
                Verb::Patch,
                "/tenants/{tenant}" | "/worker-groups/{group}" | "/environments/{environment}",
            ) => Some(json!({"description": "matrix"})),
            (Verb::Put, "/workflows/{project}/{name}/schedule") => {
                Some(json!({"cron": "0 0 2 * * ? *", "timezone": "UTC"}))
            }
            (Verb::Post, p) if p.starts_with("/runs/{id}/") => None,
            (
                Verb::Post,
                "/workflows/{project}/{name}/offline" | "/workflows/{project}/{name}/online",
            ) => None,
            (Verb::Get | Verb::Delete, _) | (Verb::Post, "/auth/logout") => None,
            _ => panic!(
                "the matrix test does not know how to call {rule:?}: add it to World::request"
            ),
        };
        (path, body)
    }
}

/// What a call must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Exactly(u16),
    /// Authorised: 2xx, or a 4xx about the request itself (409, 422) —
    /// never 401, 403 or 404.
    Allowed,
    /// Authorised, where the resource may legitimately be missing (an
    /// unknown id): anything but 401 and 403.
    NotDenied,
}

fn expect(rule: &RouteRule, who: Who, target: Target) -> Expect {
    match expect_by_rule(rule, who, target) {
        // Another caller may just have deleted the schedule: where reading
        // it is allowed, its 404 is fine.
        Expect::Allowed if rule.verb == Verb::Get && rule.path.contains("/schedule") => {
            Expect::NotDenied
        }
        e => e,
    }
}

fn named_resource(path: &str) -> bool {
    ["{tenant}", "{group}", "{environment}"]
        .iter()
        .any(|p| path.contains(p))
}

fn expect_by_rule(rule: &RouteRule, who: Who, target: Target) -> Expect {
    use Expect::*;
    if rule.perm == Perm::Public {
        return Allowed;
    }
    if who == Who::Anonymous {
        return Exactly(401);
    }
    let body_project = matches!(
        rule.project,
        ProjectFrom::WorkflowSpecBody | ProjectFrom::ImportBody
    );
    match rule.perm {
        Perm::Public => Allowed,
        Perm::Authenticated if rule.path == "/tokens/{id}" => NotDenied,
        // Named resources: an admin's call in this matrix may have deleted
        // the one the path names.
        _ if named_resource(rule.path) && (rule.perm != Perm::Admin || who == Who::Admin) => {
            NotDenied
        }
        Perm::Authenticated => Allowed,
        Perm::Admin if who == Who::Admin => Allowed,
        Perm::Admin => Exactly(403),
        _ if target == Target::Unknown && who == Who::Admin && body_project => Allowed,
        _ if target == Target::Unknown => Exactly(404),
        _ if who == Who::Admin => Allowed,
        _ if target == Target::Other => Exactly(404),
        _ => match (who, rule.perm.min_role()) {
            (Who::Role(r), Some(min)) if r >= min => Allowed,
            (Who::Role(_), Some(_)) => Exactly(403),
            _ => Exactly(404),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_for_every_caller_and_target() {
    for db in orca_testkit::TestDb::both().await {
        let backend = db.backend;
        let w = World::on(db).await;
        walk_the_matrix(&w).await;
        eprintln!("{backend}: every route answered as intended");
        w.api.shutdown().await;
    }
}

async fn walk_the_matrix(w: &World) {
    let rules = orca_api::routes::route_permissions();
    assert!(rules.len() >= 30, "the table lists every route");
    let mut failures = Vec::new();
    let mut calls = 0;
    for who in Who::all() {
        for rule in &rules {
            let targets = if rule.project == ProjectFrom::Nothing {
                vec![Target::Own]
            } else {
                vec![Target::Own, Target::Other, Target::Unknown]
            };
            for target in targets {
                let (path, body) = w.request(rule, target);
                let token = match who {
                    Who::Anonymous => None,
                    // Logging out revokes the token used: use a spare one.
                    _ if rule.path == "/auth/logout" => {
                        let u = w.store.user(who.username()).await.unwrap().unwrap();
                        Some(pat(&w.store, u.id).await)
                    }
                    _ => Some(w.tokens[who.username()].clone()),
                };
                let (status, resp) = w.call(rule.verb, &path, token.as_deref(), body).await;
                calls += 1;
                let want = expect(rule, who, target);
                let ok = match want {
                    Expect::Exactly(s) => status == s,
                    Expect::Allowed => {
                        (200..300).contains(&status) || status == 409 || status == 422
                    }
                    Expect::NotDenied => status != 401 && status != 403,
                };
                if !ok {
                    failures.push(format!(
                        "{who:?} {} {path} ({target:?}): got {status}, want {want:?}: {resp}",
                        rule.verb.as_str()
                    ));
                }
                // A hidden project looks exactly like a missing one.
                if status == 404 && who != Who::Admin && rule.project != ProjectFrom::Nothing {
                    let detail = resp["detail"].as_str().unwrap_or_default();
                    assert_eq!(resp["code"], "ORCA-API-NOT-FOUND", "{path}: {resp}");
                    // Ids must not reveal the project they belong to.
                    if matches!(
                        rule.project,
                        ProjectFrom::Run | ProjectFrom::Command | ProjectFrom::TaskInstance
                    ) {
                        assert!(!detail.contains('B'), "{path}: {detail}");
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {calls} calls wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_tokens_are_refused_everywhere() {
    let w = World::new().await;
    for rule in orca_api::routes::route_permissions() {
        let (path, body) = w.request(&rule, Target::Own);
        let (status, resp) = w.call(rule.verb, &path, Some("orca_pat_wrong"), body).await;
        if rule.perm == Perm::Public {
            // Mounted (not a router 404/405) and answering on its own.
            assert!(status != 404 && status != 405, "{path}: {status}");
        } else {
            assert_eq!(status, 401, "{} {path}: {resp}", rule.verb.as_str());
            assert_eq!(resp["code"], "ORCA-API-UNAUTHORIZED");
        }
    }
    w.api.shutdown().await;
}

/// The distinct `key`s of the items of a page.
fn names(v: &Value, key: &str) -> Vec<String> {
    let mut n: Vec<String> = v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {v}"))
        .iter()
        .map(|x| x[key].as_str().unwrap_or_default().to_string())
        .collect();
    n.sort();
    n.dedup();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_show_only_viewable_projects() {
    let w = World::new().await;
    for (who, want) in [
        ("root", vec!["A", "B"]),
        ("viewer", vec!["A"]),
        ("owner", vec!["A"]),
        ("outsider", vec![]),
    ] {
        let token = Some(w.tokens[who].as_str());
        let (s, runs) = w.call(Verb::Get, "/runs", token, None).await;
        assert_eq!(s, 200);
        assert_eq!(names(&runs, "project"), want, "{who} runs");
        let (_, wfs) = w.call(Verb::Get, "/workflows", token, None).await;
        assert_eq!(names(&wfs, "project"), want, "{who} workflows");
        let (_, projects) = w.call(Verb::Get, "/projects", token, None).await;
        assert_eq!(names(&projects, "name"), want, "{who} projects");
    }
    // The limit applies after filtering: B's newer run does not crowd A's out.
    let (_, runs) = w
        .call(Verb::Get, "/runs?limit=1", Some(&w.tokens["viewer"]), None)
        .await;
    assert_eq!(names(&runs, "project"), ["A"]);
    w.api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_tokens_password_change_and_disabled_users() {
    let w = World::new().await;
    let login = |user: &str, password: &str| json!({"username": user, "password": password});
    let (s, bad) = w
        .call(
            Verb::Post,
            "/auth/login",
            None,
            Some(login("viewer", "wrong password!")),
        )
        .await;
    assert_eq!(
        (s, bad["code"].as_str()),
        (401, Some("ORCA-API-BAD-CREDENTIALS"))
    );
    let (s, unknown) = w
        .call(
            Verb::Post,
            "/auth/login",
            None,
            Some(login("ghost", PASSWORD)),
        )
        .await;
    assert_eq!(s, 401);
    assert_eq!(
        unknown["detail"], bad["detail"],
        "unknown users look like wrong passwords"
    );

    let (s, session) = w
        .call(
            Verb::Post,
            "/auth/login",
            None,
            Some(login("viewer", PASSWORD)),
        )
        .await;
    assert_eq!(s, 200, "{session}");
    let sess = session["token"].as_str().unwrap().to_string();
    assert!(sess.starts_with("orca_sess_"));
    let (s, me) = w.call(Verb::Get, "/auth/me", Some(&sess), None).await;
    assert_eq!(s, 200);
    assert_eq!(me["user"]["username"], "viewer");
    assert_eq!(me["token"]["kind"], "session");
    assert_eq!(me["roles"], json!([{"project": "A", "role": "viewer"}]));

    // A personal access token: shown once, listed without its secret, revocable.
    let (s, created) = w
        .call(
            Verb::Post,
            "/tokens",
            Some(&sess),
            Some(json!({"name": "ci", "expires_in_days": 30})),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let pat_token = created["token"].as_str().unwrap().to_string();
    let (_, listed) = w.call(Verb::Get, "/tokens", Some(&pat_token), None).await;
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "ci")
    );
    assert!(
        !listed.to_string().contains(&pat_token),
        "secrets are never listed"
    );
    let root_id = w.store.user("root").await.unwrap().unwrap().id;
    let roots_token = w.store.list_tokens(root_id, None).await.unwrap()[0].id;
    let (s, _) = w
        .call(
            Verb::Delete,
            &format!("/tokens/{roots_token}"),
            Some(&pat_token),
            None,
        )
        .await;
    assert_eq!(s, 404, "another user's token is not found");
    let (s, _) = w
        .call(Verb::Get, "/runs", Some(&w.tokens["root"]), None)
        .await;
    assert_eq!(s, 200, "and still works");

    // Expired tokens are refused.
    let viewer = w.store.user("viewer").await.unwrap().unwrap();
    let expired = generate_token(TokenKind::PersonalAccess);
    w.store
        .insert_token(&NewToken {
            user_id: viewer.id,
            kind: TokenKind::PersonalAccess,
            name: "old".into(),
            token_hash: hash_token(&expired),
            expires_at: Some(chrono::Utc::now() - chrono::Duration::seconds(1)),
        })
        .await
        .unwrap();
    assert_eq!(
        w.call(Verb::Get, "/auth/me", Some(&expired), None).await.0,
        401
    );

    // Changing the password needs the current one and revokes every token.
    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new});
    let (s, _) = w
        .call(
            Verb::Post,
            "/users/me/password",
            Some(&sess),
            Some(change("wrong password!", "a new long password")),
        )
        .await;
    assert_eq!(s, 403);
    let (s, r) = w
        .call(
            Verb::Post,
            "/users/me/password",
            Some(&sess),
            Some(change(PASSWORD, "a new long password")),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert!(r["revoked_tokens"].as_u64().unwrap() >= 3, "{r}");
    for t in [&sess, &pat_token, &w.tokens["viewer"]] {
        assert_eq!(w.call(Verb::Get, "/auth/me", Some(t), None).await.0, 401);
    }
    assert_eq!(
        w.call(
            Verb::Post,
            "/auth/login",
            None,
            Some(login("viewer", PASSWORD))
        )
        .await
        .0,
        401
    );
    let (s, again) = w
        .call(
            Verb::Post,
            "/auth/login",
            None,
            Some(login("viewer", "a new long password")),
        )
        .await;
    assert_eq!(s, 200);
    let sess = again["token"].as_str().unwrap().to_string();

    // Logout revokes the session.
    assert_eq!(
        w.call(Verb::Post, "/auth/logout", Some(&sess), None)
            .await
            .0,
        204
    );
    assert_eq!(
        w.call(Verb::Get, "/auth/me", Some(&sess), None).await.0,
        401
    );

    // Disabled users are refused, tokens and logins alike.
    let root = w.tokens["root"].clone();
    let (s, _) = w
        .call(
            Verb::Patch,
            "/users/operator",
            Some(&root),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        w.call(Verb::Get, "/auth/me", Some(&w.tokens["operator"]), None)
            .await
            .0,
        401
    );
    assert_eq!(
        w.call(
            Verb::Post,
            "/auth/login",
            None,
            Some(login("operator", PASSWORD))
        )
        .await
        .0,
        401
    );
    // The last admin cannot lock everyone out.
    let (s, _) = w
        .call(
            Verb::Patch,
            "/users/root",
            Some(&root),
            Some(json!({"admin": false})),
        )
        .await;
    assert_eq!(s, 409);
    w.api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_manage_members_and_roles_take_effect() {
    let w = World::new().await;
    let root = w.tokens["root"].clone();
    let outsider = w.tokens["outsider"].clone();
    let wf = json!({"spec": spec("A", "new"), "source": ""});
    let post_wf = |token: String, body: Value| {
        let w = &w;
        async move {
            w.call(Verb::Post, "/workflows", Some(&token), Some(body))
                .await
                .0
        }
    };
    assert_eq!(post_wf(outsider.clone(), wf.clone()).await, 404);
    // An editor may not manage members; the owner may.
    let grant = json!({"role": "editor"});
    let member_path = "/projects/A/members/outsider";
    let (s, _) = w
        .call(
            Verb::Put,
            member_path,
            Some(&w.tokens["editor"]),
            Some(grant.clone()),
        )
        .await;
    assert_eq!(s, 403);
    let (s, m) = w
        .call(
            Verb::Put,
            member_path,
            Some(&w.tokens["owner"]),
            Some(grant),
        )
        .await;
    assert_eq!((s, m["role"].as_str()), (200, Some("editor")), "{m}");
    assert_eq!(post_wf(outsider.clone(), wf.clone()).await, 200);
    let (s, _) = w
        .call(Verb::Delete, member_path, Some(&w.tokens["owner"]), None)
        .await;
    assert_eq!(s, 204);
    assert_eq!(post_wf(outsider.clone(), wf).await, 404);
    let (s, _) = w
        .call(
            Verb::Put,
            "/projects/A/members/ghost",
            Some(&root),
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = w
        .call(
            Verb::Put,
            "/projects/A/members/extra",
            Some(&root),
            Some(json!({"role": "god"})),
        )
        .await;
    assert_eq!(s, 422);

    // Admins create projects, with an owner.
    let (s, p) = w
        .call(
            Verb::Post,
            "/projects",
            Some(&root),
            Some(json!({"name": "C", "owner": "viewer"})),
        )
        .await;
    assert_eq!(s, 201, "{p}");
    let (_, projects) = w
        .call(Verb::Get, "/projects", Some(&w.tokens["viewer"]), None)
        .await;
    assert_eq!(names(&projects, "name"), ["A", "C"]);
    let (s, _) = w
        .call(
            Verb::Post,
            "/projects",
            Some(&root),
            Some(json!({"name": "C"})),
        )
        .await;
    assert_eq!(s, 409);

    // An import into a project the caller may edit cannot smuggle
    // workflows into another one.
    let yaml = "workflow: {name: sneaky, project: B}\ntasks:\n  - {name: t, task_type: Shell, command: \"true\"}\n";
    let (s, _) = w
        .call(
            Verb::Post,
            "/workflows:import",
            Some(&w.tokens["editor"]),
            Some(json!({"format": "pydolphinscheduler-yaml", "project": "A", "content": yaml})),
        )
        .await;
    assert_eq!(s, 404);
    assert_eq!(w.store.workflow("B", "sneaky").await.unwrap(), None);
    w.api.shutdown().await;
}

/// The permissions the issue asks for, written independently of the route
/// table: the matrix above checks that the server enforces the table, this
/// checks that the table says what was intended (and that a new route gets
/// a deliberate entry here).
#[test]
fn the_route_table_declares_the_intended_permissions() {
    use Perm::*;
    use Verb::*;
    let intended = [
        (Post, "/auth/login", Public),
        (Post, "/auth/logout", Authenticated),
        (Get, "/auth/me", Authenticated),
        (Post, "/users/me/password", Authenticated),
        (Post, "/users", Admin),
        (Get, "/users", Admin),
        (Patch, "/users/{username}", Admin),
        (Post, "/tokens", Authenticated),
        (Get, "/tokens", Authenticated),
        (Delete, "/tokens/{id}", Authenticated),
        (Get, "/projects", Authenticated),
        (Post, "/projects", Admin),
        (Get, "/projects/{project}/members", ProjectView),
        (Put, "/projects/{project}/members/{username}", ProjectOwn),
        (Delete, "/projects/{project}/members/{username}", ProjectOwn),
        (Post, "/workflows", ProjectEdit),
        (Get, "/workflows", Authenticated),
        (Post, "/workflows:import", ProjectEdit),
        (Get, "/workflows/{project}/{name}", ProjectView),
        (Delete, "/workflows/{project}/{name}", ProjectEdit),
        (Get, "/workflows/{project}/{name}/versions", ProjectView),
        (
            Get,
            "/workflows/{project}/{name}/versions/{version}",
            ProjectView,
        ),
        (
            Get,
            "/workflows/{project}/{name}/versions/{version}/diff/{to}",
            ProjectView,
        ),
        (Post, "/workflows/{project}/{name}/offline", ProjectEdit),
        (Post, "/workflows/{project}/{name}/online", ProjectEdit),
        (Put, "/workflows/{project}/{name}/schedule", ProjectEdit),
        (Get, "/workflows/{project}/{name}/schedule", ProjectView),
        (
            Get,
            "/workflows/{project}/{name}/schedule/preview",
            ProjectView,
        ),
        (Delete, "/workflows/{project}/{name}/schedule", ProjectEdit),
        (Post, "/workflows/{project}/{name}/runs", ProjectOperate),
        (Get, "/commands/{id}", ProjectView),
        (Get, "/runs", Authenticated),
        (Get, "/runs/{id}", ProjectView),
        (Post, "/runs:bulk", Authenticated),
        (Post, "/runs/{id}/stop", ProjectOperate),
        (Post, "/runs/{id}/pause", ProjectOperate),
        (Post, "/runs/{id}/resume", ProjectOperate),
        (Post, "/runs/{id}/recover-failed", ProjectOperate),
        (Post, "/runs/{id}/rerun", ProjectOperate),
        (
            Post,
            "/runs/{id}/tasks/{task}/force-success",
            ProjectOperate,
        ),
        (Get, "/task-instances/{id}/log", ProjectView),
        (Get, "/task-instances/{id}/log/download", ProjectView),
        (Get, "/task-instances/{id}/log/search", ProjectView),
        (Get, "/task-instances/{id}/log/follow", ProjectView),
        (Get, "/audit", Admin),
        (Get, "/workers", Authenticated),
        (Get, "/masters", Authenticated),
        (Get, "/tenants", Authenticated),
        (Post, "/tenants", Admin),
        (Get, "/tenants/{tenant}", Authenticated),
        (Patch, "/tenants/{tenant}", Admin),
        (Delete, "/tenants/{tenant}", Admin),
        (Get, "/worker-groups", Authenticated),
        (Post, "/worker-groups", Admin),
        (Get, "/worker-groups/{group}", Authenticated),
        (Patch, "/worker-groups/{group}", Admin),
        (Delete, "/worker-groups/{group}", Admin),
        (Get, "/environments", Authenticated),
        (Post, "/environments", Admin),
        (Get, "/environments/{environment}", Authenticated),
        (Patch, "/environments/{environment}", Admin),
        (Delete, "/environments/{environment}", Admin),
        (Get, "/openapi.json", Public),
    ];
    let mut declared: Vec<(Verb, &str, Perm)> = orca_api::routes::route_permissions()
        .iter()
        .map(|r| (r.verb, r.path, r.perm))
        .collect();
    let mut want = intended.to_vec();
    let key = |r: &(Verb, &str, Perm)| (r.1.to_string(), r.0.as_str());
    declared.sort_by_key(key);
    want.sort_by_key(key);
    assert_eq!(declared, want);
}

/// `POST /runs:bulk` only needs a login; each run in it is then authorised
/// on its own, for every role: operators and up of the run's project get
/// their command (or a 409 when one is already pending), viewers 403,
/// runs of hidden projects and unknown ids 404 — in one answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_operations_authorise_each_run() {
    let w = World::new().await;
    let ids = [w.a.run, w.b.run, UNKNOWN_ID];
    for who in Who::all().into_iter().skip(1) {
        let token = w.tokens[who.username()].clone();
        let body = json!({"op": "pause", "ids": ids});
        let (status, resp) = w
            .call(Verb::Post, "/runs:bulk", Some(&token), Some(body))
            .await;
        assert_eq!(status, 200, "{who:?}: {resp}");
        let got: Vec<u16> = resp
            .as_array()
            .unwrap_or_else(|| panic!("{who:?}: {resp}"))
            .iter()
            .map(|i| i["status"].as_u64().unwrap() as u16)
            .collect();
        let own = match who {
            Who::Admin => "ok",
            Who::Role(r) if r >= ProjectRole::Operator => "ok",
            Who::Role(_) => "403",
            _ => "404",
        };
        let foreign = if who == Who::Admin { "ok" } else { "404" };
        let matches = |status: u16, want: &str| match want {
            "ok" => status == 200 || status == 409,
            n => status.to_string() == n,
        };
        assert!(
            matches(got[0], own) && matches(got[1], foreign) && got[2] == 404,
            "{who:?}: got {got:?}, want [{own}, {foreign}, 404]: {resp}"
        );
        // A hidden project's run looks exactly like a missing one.
        if foreign == "404" {
            assert_eq!(
                resp[1]["detail"],
                resp[2]["detail"]
                    .as_str()
                    .map(|d| d.replace(&UNKNOWN_ID.to_string(), &w.b.run.to_string()))
                    .unwrap_or_default(),
                "{who:?}: {resp}"
            );
        }
    }
    let (status, _) = w
        .call(
            Verb::Post,
            "/runs:bulk",
            None,
            Some(json!({"op": "pause", "ids": ids})),
        )
        .await;
    assert_eq!(status, 401);
    w.api.shutdown().await;
}
