//! Workflow definition lifecycle (versions, release state, deletion), on
//! SQLite and PostgreSQL.

#[allow(dead_code)]
mod harness;

use orca_common::WorkflowState;
use orca_store::{DeleteOutcome, NewSchedule, ReleaseState, Write};

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
    versions_are_listed_with_task_counts,
    offline_workflows_are_not_due,
    delete_refuses_active_runs_and_needs_force_for_finished_ones,
);

fn schedule(def: i64) -> NewSchedule {
    NewSchedule {
        workflow_definition_id: def,
        cron: "* * * * *".into(),
        timezone: "UTC".into(),
        start_time: None,
        end_time: None,
        enabled: true,
        params: Default::default(),
    }
}

async fn versions_are_listed_with_task_counts(db: &TestDb) {
    let store = db.connect().await;
    let v1 = store.save_workflow(&spec("p", "wf"), "v1").await.unwrap();
    let mut s2 = spec("p", "wf");
    s2.tasks.push(task("publish", &["report"]));
    let v2 = store.save_workflow(&s2, "v2").await.unwrap();
    assert_eq!(v2.id, v1.id);
    let versions = store.workflow_versions(v1.id).await.unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|v| (v.version, v.tasks, v.created_at))
            .collect::<Vec<_>>(),
        vec![(1, 3, v1.created_at), (2, 4, v2.created_at)]
    );
    assert!(
        store
            .workflow_versions(v1.id + 100)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn offline_workflows_are_not_due(db: &TestDb) {
    let store = db.connect().await;
    let a = store.save_workflow(&spec("p", "a"), "yaml").await.unwrap();
    let b = store.save_workflow(&spec("p", "b"), "yaml").await.unwrap();
    let sa = store.upsert_schedule(&schedule(a.id)).await.unwrap();
    let sb = store.upsert_schedule(&schedule(b.id)).await.unwrap();
    // Online by default.
    assert_eq!(
        store.release_state(a.id).await.unwrap(),
        Some(ReleaseState::Online)
    );
    assert_eq!(store.release_state(b.id + 100).await.unwrap(), None);

    assert!(
        store
            .set_release_state(a.id, ReleaseState::Offline)
            .await
            .unwrap()
    );
    assert_eq!(
        store.release_state(a.id).await.unwrap(),
        Some(ReleaseState::Offline)
    );
    let due: Vec<i64> = store
        .due_schedules()
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(due, vec![sb.id]);
    // Still listed (it exists), just not due.
    assert_eq!(store.list_schedules().await.unwrap().len(), 2);
    // A new version keeps the release state.
    let mut s2 = spec("p", "a");
    s2.description = "changed".into();
    store.save_workflow(&s2, "yaml 2").await.unwrap();
    assert_eq!(
        store.release_state(a.id).await.unwrap(),
        Some(ReleaseState::Offline)
    );

    assert!(
        store
            .set_release_state(a.id, ReleaseState::Online)
            .await
            .unwrap()
    );
    let due: Vec<i64> = store
        .due_schedules()
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(due, vec![sa.id, sb.id]);
    assert!(
        !store
            .set_release_state(b.id + 100, ReleaseState::Offline)
            .await
            .unwrap()
    );
}

async fn delete_refuses_active_runs_and_needs_force_for_finished_ones(db: &TestDb) {
    let store = db.connect().await;
    store.claim_epoch(1, "test").await.unwrap();
    let keep = store
        .save_workflow(&spec("p", "keep"), "yaml")
        .await
        .unwrap();
    let keep_cmd = new_command(&store, &keep, 0).await;
    let def = store.save_workflow(&spec("p", "wf"), "yaml").await.unwrap();
    store.upsert_schedule(&schedule(def.id)).await.unwrap();
    let s = store.schedule(def.id).await.unwrap().unwrap();
    let fired = store.record_fire(&s, t(60)).await.unwrap().unwrap();

    // A START command not consumed yet.
    assert_eq!(
        store.delete_workflow(def.id, true).await.unwrap(),
        DeleteOutcome::Active {
            runs: vec![],
            pending_commands: vec![fired.id]
        }
    );
    // Consumed into a RUNNING run.
    let run = store
        .start_workflow_instance(1, &fired, &def, t(61))
        .await
        .unwrap();
    let ti = store
        .apply(
            1,
            vec![Write::InsertTaskInstance(new_task(run.id, "extract", 1))],
        )
        .await
        .unwrap()[0];
    store.put_task_log(ti, 1, b"log", false, 3).await.unwrap();
    assert_eq!(
        store.delete_workflow(def.id, true).await.unwrap(),
        DeleteOutcome::Active {
            runs: vec![run.id],
            pending_commands: vec![]
        }
    );
    // PAUSE counts as active too.
    for (state, active) in [
        (WorkflowState::Paused, true),
        (WorkflowState::Success, false),
    ] {
        store
            .apply(
                1,
                vec![Write::UpdateWorkflowInstance {
                    id: run.id,
                    state,
                    end_time: Some(t(70)),
                }],
            )
            .await
            .unwrap();
        let outcome = store.delete_workflow(def.id, false).await.unwrap();
        if active {
            assert!(
                matches!(outcome, DeleteOutcome::Active { .. }),
                "{outcome:?}"
            );
        } else {
            assert_eq!(outcome, DeleteOutcome::HasInstances { instances: 1 });
        }
    }
    // Nothing was deleted by the refusals.
    assert!(store.workflow_by_id(def.id).await.unwrap().is_some());
    assert!(store.workflow_instance(run.id).await.unwrap().is_some());

    assert_eq!(
        store.delete_workflow(def.id, true).await.unwrap(),
        DeleteOutcome::Deleted { instances: 1 }
    );
    assert_eq!(store.workflow_by_id(def.id).await.unwrap(), None);
    assert_eq!(store.workflow("p", "wf").await.unwrap(), None);
    assert!(store.workflow_versions(def.id).await.unwrap().is_empty());
    assert_eq!(store.schedule(def.id).await.unwrap(), None);
    assert_eq!(store.workflow_instance(run.id).await.unwrap(), None);
    assert_eq!(store.task_instance(ti).await.unwrap(), None);
    assert_eq!(store.task_log(ti).await.unwrap(), None);
    assert_eq!(store.command(fired.id).await.unwrap(), None);
    let raw = db.raw().await;
    assert_eq!(
        raw.count("task_definitions", "workflow_definition_id", def.id, 1)
            .await,
        0
    );
    assert_eq!(
        raw.count("task_relations", "workflow_definition_id", def.id, 1)
            .await,
        0
    );
    assert_eq!(
        store.delete_workflow(def.id, true).await.unwrap(),
        DeleteOutcome::NotFound
    );

    // The other workflow is untouched; without runs it deletes without force.
    assert_eq!(
        store.command(keep_cmd.id).await.unwrap(),
        Some(keep_cmd.clone())
    );
    assert_eq!(store.workflow_versions(keep.id).await.unwrap().len(), 1);
    assert_eq!(
        store.delete_workflow(keep.id, false).await.unwrap(),
        DeleteOutcome::Active {
            runs: vec![],
            pending_commands: vec![keep_cmd.id]
        }
    );
    let fresh = store
        .save_workflow(&spec("p", "fresh"), "yaml")
        .await
        .unwrap();
    assert_eq!(
        store.delete_workflow(fresh.id, false).await.unwrap(),
        DeleteOutcome::Deleted { instances: 0 }
    );
    // The name can be used again.
    let again = store
        .save_workflow(&spec("p", "fresh"), "yaml")
        .await
        .unwrap();
    assert_eq!(again.version, 1);
}
