//! Users, project roles and tokens (`m0002_auth`), against every backend:
//! SQLite and PostgreSQL (see `harness`).

#[allow(dead_code)]
mod harness;

use chrono::{Duration, Utc};
use orca_store::{BootstrapOutcome, NewToken, NewUser, ProjectRole, Store, TokenKind, UserUpdate};

use harness::fixtures::*;
use harness::{TestDb, TestDbExt};

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
    usernames_are_unique_and_bootstrap_happens_once,
    password_change_and_disabling_revoke_tokens,
    tokens_list_delete_and_expire,
    roles_per_project,
    projects_of_runs_commands_and_task_instances,
);

fn new_user(name: &str, admin: bool) -> NewUser {
    NewUser {
        username: name.into(),
        password_hash: format!("hash-of-{name}"),
        admin,
    }
}

async fn token(store: &Store, user_id: i64, kind: TokenKind, hash: &str) -> i64 {
    store
        .insert_token(&NewToken {
            user_id,
            kind,
            name: format!("t-{hash}"),
            token_hash: hash.into(),
            expires_at: None,
        })
        .await
        .unwrap()
        .id
}

async fn usernames_are_unique_and_bootstrap_happens_once(db: &TestDb) {
    let store = db.connect().await;
    let alice = store
        .create_user(&new_user("alice", false))
        .await
        .unwrap()
        .expect("created");
    assert!(!alice.admin && !alice.disabled);
    assert_eq!(
        store.create_user(&new_user("alice", true)).await.unwrap(),
        None
    );
    assert_eq!(store.user("alice").await.unwrap(), Some(alice.clone()));
    assert_eq!(
        store.user_by_id(alice.id).await.unwrap(),
        Some(alice.clone())
    );
    let creds = store.user_credentials("alice").await.unwrap().unwrap();
    assert_eq!(creds.password_hash, "hash-of-alice");

    // A non-admin's name cannot be taken over by the bootstrap.
    assert_eq!(
        store.bootstrap_admin("alice", "h").await.unwrap(),
        BootstrapOutcome::UsernameTaken
    );
    // Two bootstraps at once: exactly one admin.
    let (a, b) = tokio::join!(
        store.bootstrap_admin("root1", "h1"),
        store.bootstrap_admin("root2", "h2")
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    let created = outcomes
        .iter()
        .filter(|o| matches!(o, BootstrapOutcome::Created(u) if u.admin))
        .count();
    assert_eq!(created, 1, "{outcomes:?}");
    assert!(outcomes.contains(&BootstrapOutcome::AdminExists));
    assert_eq!(store.count_enabled_admins().await.unwrap(), 1);
    let names: Vec<String> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names.len(), 2);
    assert_eq!(names[0], "alice");
}

async fn password_change_and_disabling_revoke_tokens(db: &TestDb) {
    let store = db.connect().await;
    let u1 = store
        .create_user(&new_user("u1", false))
        .await
        .unwrap()
        .unwrap();
    let u2 = store
        .create_user(&new_user("u2", false))
        .await
        .unwrap()
        .unwrap();
    token(&store, u1.id, TokenKind::Session, "s1").await;
    token(&store, u1.id, TokenKind::PersonalAccess, "p1").await;
    token(&store, u2.id, TokenKind::PersonalAccess, "p2").await;
    let owner = store.token_owner("p1").await.unwrap().expect("known");
    assert_eq!(owner.user, u1);
    assert_eq!(owner.token.kind, TokenKind::PersonalAccess);

    assert_eq!(
        store.set_password(u1.id, "new-hash").await.unwrap(),
        Some(2)
    );
    assert_eq!(store.token_owner("s1").await.unwrap(), None);
    assert_eq!(store.token_owner("p1").await.unwrap(), None);
    assert!(
        store.token_owner("p2").await.unwrap().is_some(),
        "other users keep theirs"
    );
    assert_eq!(
        store
            .user_credentials("u1")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "new-hash"
    );
    assert_eq!(store.set_password(9999, "x").await.unwrap(), None);

    let disabled = store
        .update_user(
            u2.id,
            &UserUpdate {
                disabled: Some(true),
                admin: None,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(disabled.disabled && !disabled.admin);
    assert_eq!(
        store.token_owner("p2").await.unwrap(),
        None,
        "disabling revokes"
    );
    let promoted = store
        .update_user(
            u1.id,
            &UserUpdate {
                admin: Some(true),
                disabled: None,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(promoted.admin);
    assert_eq!(
        store
            .update_user(9999, &UserUpdate::default())
            .await
            .unwrap(),
        None
    );
}

async fn tokens_list_delete_and_expire(db: &TestDb) {
    let store = db.connect().await;
    let u = store
        .create_user(&new_user("u", false))
        .await
        .unwrap()
        .unwrap();
    let other = store
        .create_user(&new_user("o", false))
        .await
        .unwrap()
        .unwrap();
    let pat = token(&store, u.id, TokenKind::PersonalAccess, "pat").await;
    token(&store, u.id, TokenKind::Session, "sess").await;
    let past = Utc::now() - Duration::hours(1);
    let expired = store
        .insert_token(&NewToken {
            user_id: u.id,
            kind: TokenKind::Session,
            name: "old".into(),
            token_hash: "old".into(),
            expires_at: Some(past),
        })
        .await
        .unwrap();
    assert!(expired.is_expired(Utc::now()));
    assert_eq!(
        store.token_owner("old").await.unwrap().unwrap().token,
        expired,
        "rows read back equal rows written"
    );

    let pats = store
        .list_tokens(u.id, Some(TokenKind::PersonalAccess))
        .await
        .unwrap();
    assert_eq!(pats.len(), 1);
    assert_eq!(pats[0].id, pat);
    assert_eq!(store.list_tokens(u.id, None).await.unwrap().len(), 3);

    assert!(
        !store.delete_token(other.id, pat).await.unwrap(),
        "not theirs"
    );
    assert!(store.delete_token(u.id, pat).await.unwrap());
    assert!(!store.delete_token(u.id, pat).await.unwrap());
    assert_eq!(store.delete_expired_tokens(Utc::now()).await.unwrap(), 1);
    assert!(store.delete_token_by_hash("sess").await.unwrap());
    assert!(store.list_tokens(u.id, None).await.unwrap().is_empty());
}

async fn roles_per_project(db: &TestDb) {
    let store = db.connect().await;
    let a = store.create_project("a").await.unwrap().expect("created");
    assert_eq!(store.create_project("a").await.unwrap(), None);
    assert_eq!(store.project("a").await.unwrap(), Some(a.clone()));
    let b = store.create_project("b").await.unwrap().unwrap();
    let u = store
        .create_user(&new_user("u", false))
        .await
        .unwrap()
        .unwrap();
    let v = store
        .create_user(&new_user("v", false))
        .await
        .unwrap()
        .unwrap();

    store
        .set_member(a.id, u.id, ProjectRole::Viewer)
        .await
        .unwrap();
    store
        .set_member(a.id, u.id, ProjectRole::Editor)
        .await
        .unwrap();
    store
        .set_member(b.id, u.id, ProjectRole::Owner)
        .await
        .unwrap();
    store
        .set_member(a.id, v.id, ProjectRole::Operator)
        .await
        .unwrap();
    let roles: Vec<(String, ProjectRole)> = store
        .roles_of(u.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.project, m.role))
        .collect();
    assert_eq!(
        roles,
        [
            ("a".to_string(), ProjectRole::Editor),
            ("b".to_string(), ProjectRole::Owner)
        ]
    );
    let members: Vec<(String, ProjectRole)> = store
        .members(a.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.username, m.role))
        .collect();
    assert_eq!(
        members,
        [
            ("u".to_string(), ProjectRole::Editor),
            ("v".to_string(), ProjectRole::Operator)
        ]
    );
    assert!(store.remove_member(a.id, u.id).await.unwrap());
    assert!(!store.remove_member(a.id, u.id).await.unwrap());
    assert_eq!(store.roles_of(u.id).await.unwrap().len(), 1);
    assert!(ProjectRole::Viewer < ProjectRole::Operator);
    assert!(ProjectRole::Editor < ProjectRole::Owner);
    let names: Vec<String> = store
        .list_projects()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
}

async fn projects_of_runs_commands_and_task_instances(db: &TestDb) {
    let store = db.connect().await;
    store.claim_epoch(1, "m").await.unwrap();
    let run = running_instance(&store, 1, "wf").await;
    let other_def = store.save_workflow(&spec("q", "wf"), "y").await.unwrap();
    let other_cmd = new_command(&store, &other_def, 0).await;
    let ids = store
        .apply(
            1,
            vec![orca_store::Write::InsertTaskInstance(new_task(
                run.id, "extract", 1,
            ))],
        )
        .await
        .unwrap();
    assert_eq!(
        store.project_of_run(run.id).await.unwrap().as_deref(),
        Some("p")
    );
    assert_eq!(store.project_of_run(run.id + 100).await.unwrap(), None);
    assert_eq!(
        store
            .project_of_command(run.command_id.unwrap())
            .await
            .unwrap()
            .as_deref(),
        Some("p")
    );
    assert_eq!(
        store
            .project_of_command(other_cmd.id)
            .await
            .unwrap()
            .as_deref(),
        Some("q")
    );
    assert_eq!(
        store.project_of_command(other_cmd.id + 100).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .project_of_task_instance(ids[0])
            .await
            .unwrap()
            .as_deref(),
        Some("p")
    );
    assert_eq!(
        store.project_of_task_instance(ids[0] + 100).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .project_of_workflow(other_def.id)
            .await
            .unwrap()
            .as_deref(),
        Some("q")
    );

    let in_p = store
        .list_workflow_instances_in(&["p".to_string()], 10)
        .await
        .unwrap();
    assert_eq!(in_p.len(), 1);
    assert!(
        store
            .list_workflow_instances_in(&["q".to_string()], 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_workflow_instances_in(&[], 10)
            .await
            .unwrap()
            .is_empty()
    );
}
