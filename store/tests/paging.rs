//! Paged lists (limit + 1 rows, a cursor, filters in SQL), on SQLite and
//! PostgreSQL.

#[allow(dead_code)]
mod harness;

use std::fmt::Debug;
use std::future::Future;

use orca_common::WorkflowState;
use orca_store::{
    AuditFilter, MemberFilter, NewAuditEntry, NewToken, NewUser, ProjectFilter, ProjectRole,
    ReleaseState, RunFilter, TokenKind, UserFilter, WorkflowFilter,
};

use harness::TestDbExt;
use harness::fixtures::{new_command, spec, t};
use orca_testkit::TestDb;

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::TestDb::sqlite();
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::TestDb::postgres().await else { return };
                    super::$name(&db).await;
                }
            )*
        }
    };
}

conformance!(
    runs_page_by_id_within_visible_projects,
    audit_entries_filter_and_page,
    projects_users_tokens_and_members_page,
    workflows_page_by_project_then_name,
    versions_page_oldest_first,
);

/// Walks a list whose store query returns up to `limit + 1` rows after
/// `after`: every page but the last is full and tells of a next one.
/// Returns the keys of every row, in list order.
async fn walk<T, K, F, Fut>(limit: u64, key: impl Fn(&T) -> K, mut fetch: F) -> Vec<K>
where
    T: Debug,
    K: Clone + Debug,
    F: FnMut(Option<K>) -> Fut,
    Fut: Future<Output = Vec<T>>,
{
    let mut all = Vec::new();
    let mut after = None;
    for _ in 0..100 {
        let mut rows = fetch(after.clone()).await;
        assert!(rows.len() as u64 <= limit + 1, "{rows:?}");
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        all.extend(rows.iter().map(&key));
        if !more {
            return all;
        }
        assert_eq!(rows.len() as u64, limit);
        after = rows.last().map(&key);
    }
    panic!("more than 100 pages");
}

/// A run made by the test: its id, project, workflow and start second.
type Made = (i64, &'static str, &'static str, i64);

async fn runs_page_by_id_within_visible_projects(db: &TestDb) {
    let store = db.connect().await;
    store.claim_epoch(1, "m").await.unwrap();
    let mut ids: Vec<Made> = Vec::new();
    for i in 0..9i64 {
        let project = if i % 3 == 2 { "q" } else { "p" };
        let name = if i % 2 == 0 { "even" } else { "odd" };
        let def = store
            .save_workflow(&spec(project, name), "y")
            .await
            .unwrap();
        let cmd = new_command(&store, &def, i).await;
        let run = store
            .start_workflow_instance(1, &cmd, &def, t(100 + i))
            .await
            .unwrap();
        ids.push((run.id, project, name, i));
    }
    let filter = |projects: Option<Vec<&str>>, before_id, limit| RunFilter {
        projects: projects.map(|p| p.into_iter().map(String::from).collect()),
        before_id,
        limit,
        ..Default::default()
    };
    let newest_first = |keep: &dyn Fn(&Made) -> bool| {
        let mut want: Vec<i64> = ids.iter().filter(|r| keep(r)).map(|r| r.0).collect();
        want.reverse();
        want
    };
    let got = walk(
        2,
        |r: &orca_store::WorkflowInstanceRow| r.id,
        |after| {
            let f = filter(None, after, 2);
            let store = &store;
            async move { store.list_runs(&f).await.unwrap() }
        },
    )
    .await;
    assert_eq!(got, newest_first(&|_| true));
    // Only the visible project, pages still full.
    let got = walk(
        2,
        |r: &orca_store::WorkflowInstanceRow| r.id,
        |after| {
            let f = filter(Some(vec!["p"]), after, 2);
            let store = &store;
            async move { store.list_runs(&f).await.unwrap() }
        },
    )
    .await;
    assert_eq!(got, newest_first(&|r| r.1 == "p"));
    assert!(
        store
            .list_runs(&filter(Some(vec![]), None, 5))
            .await
            .unwrap()
            .is_empty()
    );
    // Filters combine with the cursor.
    let f = RunFilter {
        project: Some("p".into()),
        workflow: Some("even".into()),
        state: Some(WorkflowState::Running),
        since: Some(t(101)),
        until: Some(t(108)),
        limit: 10,
        ..Default::default()
    };
    let got: Vec<i64> = store
        .list_runs(&f)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        got,
        newest_first(&|r| r.1 == "p" && r.2 == "even" && (1..8).contains(&r.3))
    );
    let f = RunFilter {
        state: Some(WorkflowState::Success),
        limit: 10,
        ..Default::default()
    };
    assert!(store.list_runs(&f).await.unwrap().is_empty());
}

async fn audit_entries_filter_and_page(db: &TestDb) {
    let store = db.connect().await;
    let mut ids = Vec::new();
    let paths = [
        "/api/v1/workflows",
        "/api/v1/Workflows",
        "/api/v1/workflows/etl/x",
        "/api/v1/tokens",
        "/api/v1/work%lows",
        "/api/v1/projects/etl/members/bob",
        "/api/v1/workflows",
    ];
    for (i, path) in paths.iter().enumerate() {
        let i = i as i64;
        let e = NewAuditEntry {
            at: t(i),
            username: Some(if i % 2 == 0 { "alice" } else { "bob" }.into()),
            method: if i == 3 { "DELETE" } else { "POST" }.into(),
            path: path.to_string(),
            project: path.contains("/etl").then(|| "etl".to_string()),
            status: 200,
            request_id: format!("req-{i}"),
        };
        ids.push(store.insert_audit(&e).await.unwrap());
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    let got = walk(
        3,
        |e: &orca_store::AuditRow| e.id,
        |before_id| {
            let f = AuditFilter {
                before_id,
                limit: 3,
                ..Default::default()
            };
            let store = &store;
            async move { store.audit_entries(&f).await.unwrap() }
        },
    )
    .await;
    assert_eq!(got, newest_first);
    let ids_of = |f: AuditFilter| {
        let store = &store;
        async move {
            let f = AuditFilter { limit: 100, ..f };
            let rows = store.audit_entries(&f).await.unwrap();
            rows.iter().map(|e| e.id).collect::<Vec<_>>()
        }
    };
    let pick = |is: &[usize]| is.iter().rev().map(|&i| ids[i]).collect::<Vec<_>>();
    // A path prefix is literal and case-sensitive.
    let f = AuditFilter {
        path_prefix: Some("/api/v1/workflows".into()),
        ..Default::default()
    };
    assert_eq!(ids_of(f).await, pick(&[0, 2, 6]));
    let f = AuditFilter {
        path_prefix: Some("/api/v1/work%".into()),
        ..Default::default()
    };
    assert_eq!(ids_of(f).await, pick(&[4]));
    let f = AuditFilter {
        username: Some("bob".into()),
        ..Default::default()
    };
    assert_eq!(ids_of(f).await, pick(&[1, 3, 5]));
    let f = AuditFilter {
        project: Some("etl".into()),
        ..Default::default()
    };
    assert_eq!(ids_of(f).await, pick(&[2, 5]));
    let f = AuditFilter {
        method: Some("DELETE".into()),
        ..Default::default()
    };
    assert_eq!(ids_of(f).await, pick(&[3]));
    let f = AuditFilter {
        username: Some("alice".into()),
        since: Some(t(2)),
        until: Some(t(6)),
        ..Default::default()
    };
    assert_eq!(ids_of(f).await, pick(&[2, 4]));
}

async fn projects_users_tokens_and_members_page(db: &TestDb) {
    let store = db.connect().await;
    let names = [
        "alpha", "beta", "Gamma_1", "gamma-2", "delta", "epsilon", "zeta",
    ];
    let mut projects = Vec::new();
    for n in names {
        projects.push(store.create_project(n).await.unwrap().unwrap());
    }
    let mut users = Vec::new();
    for (i, n) in ["ann", "bert", "carl", "dora", "ed", "fay"]
        .iter()
        .enumerate()
    {
        let u = store
            .create_user(&NewUser {
                username: n.to_string(),
                password_hash: "x".into(),
                admin: i % 3 == 0,
            })
            .await
            .unwrap()
            .unwrap();
        users.push(u);
    }
    // Projects, by name, all or only the visible ones.
    let projects_by = |visible: Option<Vec<&str>>, contains: Option<&str>| {
        let store = &store;
        let visible: Option<Vec<String>> =
            visible.map(|v| v.into_iter().map(String::from).collect());
        let contains = contains.map(String::from);
        async move {
            walk(
                2,
                |p: &orca_store::ProjectRow| p.name.clone(),
                |after| {
                    let f = ProjectFilter {
                        projects: visible.clone(),
                        name_contains: contains.clone(),
                        after,
                        limit: 2,
                    };
                    async move { store.projects_page(&f).await.unwrap() }
                },
            )
            .await
        }
    };
    let mut all = store
        .list_projects()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect::<Vec<_>>();
    assert_eq!(projects_by(None, None).await, all);
    all.retain(|n| ["beta", "delta", "zeta"].contains(&n.as_str()));
    assert_eq!(
        projects_by(Some(vec!["zeta", "beta", "delta"]), None).await,
        all
    );
    assert!(projects_by(Some(vec![]), None).await.is_empty());
    // Substrings ignore case; `_` is no wildcard.
    assert_eq!(projects_by(None, Some("GAMMA")).await.len(), 2);
    assert_eq!(projects_by(None, Some("a_")).await, ["Gamma_1"]);
    assert_eq!(
        projects_by(Some(vec!["zeta", "beta"]), Some("ta")).await,
        ["beta", "zeta"]
    );

    // Users, by name, with filters.
    let users_by = |admin: Option<bool>, contains: Option<&str>| {
        let store = &store;
        let contains = contains.map(String::from);
        async move {
            walk(
                2,
                |u: &orca_store::UserRow| u.username.clone(),
                |after| {
                    let f = UserFilter {
                        admin,
                        name_contains: contains.clone(),
                        after,
                        limit: 2,
                        ..Default::default()
                    };
                    async move { store.users_page(&f).await.unwrap() }
                },
            )
            .await
        }
    };
    assert_eq!(
        users_by(None, None).await,
        ["ann", "bert", "carl", "dora", "ed", "fay"]
    );
    assert_eq!(users_by(Some(true), None).await, ["ann", "dora"]);
    assert_eq!(users_by(Some(false), Some("R")).await, ["bert", "carl"]);
    let disabled = UserFilter {
        disabled: Some(true),
        limit: 10,
        ..Default::default()
    };
    assert!(store.users_page(&disabled).await.unwrap().is_empty());

    // Tokens of one user and kind, oldest first.
    let mut token_ids = Vec::new();
    for i in 0..5 {
        let kind = if i == 2 {
            TokenKind::Session
        } else {
            TokenKind::PersonalAccess
        };
        let row = store
            .insert_token(&NewToken {
                user_id: users[0].id,
                kind,
                name: format!("t{i}"),
                token_hash: format!("hash{i}"),
                expires_at: None,
            })
            .await
            .unwrap();
        if kind == TokenKind::PersonalAccess {
            token_ids.push(row.id);
        }
    }
    store
        .insert_token(&NewToken {
            user_id: users[1].id,
            kind: TokenKind::PersonalAccess,
            name: "other".into(),
            token_hash: "other".into(),
            expires_at: None,
        })
        .await
        .unwrap();
    let got = walk(
        3,
        |t: &orca_store::TokenRow| t.id,
        |after| {
            let store = &store;
            let user = users[0].id;
            async move {
                store
                    .tokens_page(user, Some(TokenKind::PersonalAccess), after, 3)
                    .await
                    .unwrap()
            }
        },
    )
    .await;
    assert_eq!(got, token_ids);

    // Members of one project, by username, optionally of one role.
    let (p, other) = (&projects[0], &projects[1]);
    for (i, u) in users.iter().enumerate() {
        let role = if i % 2 == 0 {
            ProjectRole::Viewer
        } else {
            ProjectRole::Owner
        };
        store.set_member(p.id, u.id, role).await.unwrap();
    }
    store
        .set_member(other.id, users[0].id, ProjectRole::Owner)
        .await
        .unwrap();
    let members_by = |role: Option<ProjectRole>| {
        let store = &store;
        async move {
            walk(
                2,
                |m: &orca_store::MemberRow| m.username.clone(),
                |after| {
                    let f = MemberFilter {
                        role,
                        after,
                        limit: 2,
                    };
                    async move { store.members_page(p.id, &f).await.unwrap() }
                },
            )
            .await
        }
    };
    assert_eq!(
        members_by(None).await,
        ["ann", "bert", "carl", "dora", "ed", "fay"]
    );
    assert_eq!(
        members_by(Some(ProjectRole::Owner)).await,
        ["bert", "dora", "fay"]
    );
}

async fn workflows_page_by_project_then_name(db: &TestDb) {
    let store = db.connect().await;
    // Project "a-b" sorts after project "a", whatever their names.
    let all = [
        ("a", "etl"),
        ("a", "load"),
        ("a", "report_x"),
        ("a-b", "a"),
        ("a-b", "etl2"),
        ("b", "ETL"),
        ("b", "z"),
    ];
    for (p, n) in all {
        store.save_workflow(&spec(p, n), "y").await.unwrap();
    }
    let offline = store.workflow("b", "z").await.unwrap().unwrap();
    assert!(
        store
            .set_release_state(offline.id, ReleaseState::Offline)
            .await
            .unwrap()
    );
    let by = |f: WorkflowFilter| {
        let store = &store;
        async move {
            walk(
                2,
                |w: &orca_store::WorkflowDefinitionRow| (w.project.clone(), w.name.clone()),
                |after| {
                    let f = WorkflowFilter {
                        after,
                        limit: 2,
                        ..f.clone()
                    };
                    async move { store.workflows_page(&f).await.unwrap() }
                },
            )
            .await
        }
    };
    let pairs = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(p, n)| (p.to_string(), n.to_string()))
            .collect::<Vec<_>>()
    };
    // The database orders names: compare with its own order of the pairs.
    let mut want = store
        .list_workflows(None)
        .await
        .unwrap()
        .into_iter()
        .map(|w| (w.project, w.name))
        .collect::<Vec<_>>();
    assert_eq!(want.len(), all.len());
    assert_eq!(by(WorkflowFilter::default()).await, want);
    want.retain(|(p, _)| p != "a");
    let visible = WorkflowFilter {
        projects: Some(vec!["a-b".into(), "b".into()]),
        ..Default::default()
    };
    assert_eq!(by(visible).await, want);
    let etl = WorkflowFilter {
        name_contains: Some("etl".into()),
        ..Default::default()
    };
    let got = by(etl).await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got.contains(&("b".to_string(), "ETL".to_string())));
    let literal = WorkflowFilter {
        name_contains: Some("t_x".into()),
        ..Default::default()
    };
    assert_eq!(by(literal).await, pairs(&[("a", "report_x")]));
    let off = WorkflowFilter {
        release_state: Some(ReleaseState::Offline),
        ..Default::default()
    };
    assert_eq!(by(off).await, pairs(&[("b", "z")]));
    let one = WorkflowFilter {
        project: Some("a-b".into()),
        release_state: Some(ReleaseState::Online),
        ..Default::default()
    };
    assert_eq!(by(one).await, pairs(&[("a-b", "a"), ("a-b", "etl2")]));
}

async fn versions_page_oldest_first(db: &TestDb) {
    let store = db.connect().await;
    let mut s = spec("p", "wf");
    let mut id = 0;
    for i in 0..5 {
        s.description = format!("v{i}");
        id = store.save_workflow(&s, "y").await.unwrap().id;
    }
    let got = walk(
        2,
        |v: &orca_store::WorkflowVersionInfo| v.version,
        |after| {
            let store = &store;
            async move { store.workflow_versions_page(id, after, 2).await.unwrap() }
        },
    )
    .await;
    assert_eq!(got, [1, 2, 3, 4, 5]);
    let page = store.workflow_versions_page(id, Some(3), 10).await.unwrap();
    assert_eq!(
        page.iter()
            .map(|v| (v.version, v.tasks))
            .collect::<Vec<_>>(),
        [(4, 3), (5, 3)]
    );
    assert!(
        store
            .workflow_versions_page(id + 100, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
