//! Schedules and exactly-once fires, on SQLite and PostgreSQL.

#[allow(dead_code)]
mod harness;

use std::sync::Arc;

use orca_store::{CommandKind, NewSchedule};

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
    schedules_upsert_list_delete,
    fires_are_recorded_exactly_once
);

fn new_schedule(def: i64, cron: &str, enabled: bool) -> NewSchedule {
    NewSchedule {
        workflow_definition_id: def,
        cron: cron.into(),
        timezone: "Asia/Shanghai".into(),
        start_time: Some(t(10)),
        end_time: None,
        enabled,
        params: params(&[("dt", "x")]),
    }
}

async fn schedules_upsert_list_delete(db: &TestDb) {
    let store = db.connect().await;
    let a = store.save_workflow(&spec("p", "a"), "yaml").await.unwrap();
    let b = store.save_workflow(&spec("p", "b"), "yaml").await.unwrap();
    assert_eq!(store.schedule(a.id).await.unwrap(), None);

    let sa = store
        .upsert_schedule(&new_schedule(a.id, "0 0 2 * * ? *", true))
        .await
        .unwrap();
    assert_eq!(
        (
            sa.cron.as_str(),
            sa.timezone.as_str(),
            sa.start_time,
            sa.enabled,
            sa.last_fire_time
        ),
        ("0 0 2 * * ? *", "Asia/Shanghai", Some(t(10)), true, None)
    );
    assert_eq!(sa.params, params(&[("dt", "x")]));
    let sb = store
        .upsert_schedule(&new_schedule(b.id, "* * * * *", false))
        .await
        .unwrap();
    // Upsert replaces, keeping the id.
    let sa2 = store
        .upsert_schedule(&new_schedule(a.id, "0 0 3 * * ? *", true))
        .await
        .unwrap();
    assert_eq!((sa2.id, sa2.cron.as_str()), (sa.id, "0 0 3 * * ? *"));
    assert_eq!(store.schedule(a.id).await.unwrap(), Some(sa2.clone()));

    let all = store.list_schedules().await.unwrap();
    assert_eq!(
        all.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![sa.id, sb.id]
    );
    let due = store.due_schedules().await.unwrap();
    assert_eq!(due, vec![sa2.clone()]);

    assert!(store.delete_schedule(a.id).await.unwrap());
    assert!(!store.delete_schedule(a.id).await.unwrap());
    assert_eq!(store.schedule(a.id).await.unwrap(), None);
}

async fn fires_are_recorded_exactly_once(db: &TestDb) {
    let store = db.connect().await;
    let def = store.save_workflow(&spec("p", "wf"), "yaml").await.unwrap();
    let s = store
        .upsert_schedule(&new_schedule(def.id, "* * * * * ? *", true))
        .await
        .unwrap();

    let cmd = store.record_fire(&s, t(100)).await.unwrap().unwrap();
    assert_eq!(
        (
            cmd.kind,
            cmd.workflow_definition_id,
            cmd.version,
            cmd.schedule_time
        ),
        (CommandKind::Start, def.id, 1, t(100))
    );
    assert_eq!(cmd.params, params(&[("dt", "x")]));
    assert_eq!(store.command(cmd.id).await.unwrap(), Some(cmd.clone()));
    // The same second again: nothing, and no stray command.
    assert_eq!(store.record_fire(&s, t(100)).await.unwrap(), None);
    assert_eq!(store.pending_commands(10).await.unwrap(), vec![cmd.clone()]);

    // Two leaders racing on the next second: exactly one wins.
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (store, s) = (store.clone(), s.clone());
            tokio::spawn(async move { store.record_fire(&s, t(101)).await.unwrap() })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        won += usize::from(task.await.unwrap().is_some());
    }
    assert_eq!(won, 1);
    assert_eq!(store.pending_commands(10).await.unwrap().len(), 2);
    let row = store.schedule(def.id).await.unwrap().unwrap();
    assert_eq!(row.last_fire_time, Some(t(101)));
}
