//! One conformance suite, run against every backend of the store: SQLite (a
//! temporary file) and PostgreSQL (a fresh database per test, from
//! `ORCA_TEST_POSTGRES_URL`; `scripts/test.sh` starts one).

mod harness;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use orca_common::{TaskState, WorkflowState};
use orca_store::{
    NewTaskInstance, Store, StoreError, TaskInstanceRow, TaskInstanceUpdate, WorkflowInstanceRow,
    Write,
};
use tokio::sync::watch;

use harness::fixtures::*;
use harness::{TestDb, TestDbExt};

/// Generates `sqlite::NAME` and `postgres::NAME` tests for each case.
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
    migrations_are_idempotent,
    save_workflow_versions_only_on_change,
    commands_are_consumed_exactly_once,
    apply_round_trips_every_field,
    apply_is_all_or_nothing,
    fencing_rejects_stale_epochs,
    unfinished_and_listed_instances,
    stale_epoch_never_writes_after_a_concurrent_claim,
    api_tokens,
    corrupt_rows_are_reported_by_name,
    task_logs_are_stored_and_replaced,
    idempotency_keys_give_one_command,
);

async fn idempotency_keys_give_one_command(db: &TestDb) {
    let store = db.connect().await;
    let def = store.save_workflow(&spec("p", "wf"), "yaml").await.unwrap();
    let cmd = || orca_store::NewCommand {
        kind: orca_store::CommandKind::Start,
        target_instance_id: None,
        options: Default::default(),
        workflow_definition_id: def.id,
        version: def.version,
        params: BTreeMap::new(),
        schedule_time: t(1),
    };
    let (a, b, c) = tokio::join!(
        store.insert_command_idempotent(cmd(), "k1"),
        store.insert_command_idempotent(cmd(), "k1"),
        store.insert_command_idempotent(cmd(), "k1"),
    );
    let all = [a.unwrap(), b.unwrap(), c.unwrap()];
    assert!(all.iter().all(|(row, _)| row.id == all[0].0.id), "{all:?}");
    assert_eq!(
        all.iter().filter(|(_, replayed)| !replayed).count(),
        1,
        "{all:?}"
    );
    let (other, replayed) = store.insert_command_idempotent(cmd(), "k2").await.unwrap();
    assert!(!replayed);
    assert_ne!(other.id, all[0].0.id);
    // Commands without a key never collide.
    store.insert_command(cmd()).await.unwrap();
    store.insert_command(cmd()).await.unwrap();
    assert_eq!(store.pending_commands(10).await.unwrap().len(), 4);
}

async fn task_logs_are_stored_and_replaced(db: &TestDb) {
    let store = db.connect().await;
    assert_eq!(store.task_log(7).await.unwrap(), None);
    let bytes: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    store.put_task_log(7, 1, &bytes, false, 5000).await.unwrap();
    let log = store.task_log(7).await.unwrap().unwrap();
    assert_eq!(
        (
            log.attempt,
            log.content.as_slice(),
            log.truncated,
            log.original_size
        ),
        (1, bytes.as_slice(), false, 5000)
    );
    // Shipping again (a worker retrying) replaces it.
    store
        .put_task_log(7, 1, b"head...tail", true, 1 << 30)
        .await
        .unwrap();
    let log = store.task_log(7).await.unwrap().unwrap();
    assert_eq!(
        (log.content.as_slice(), log.truncated, log.original_size),
        (&b"head...tail"[..], true, 1 << 30)
    );
}

async fn migrations_are_idempotent(db: &TestDb) {
    let first = db.connect().await;
    first.save_workflow(&spec("p", "wf"), "yaml").await.unwrap();
    first.claim_epoch(3, "m1").await.unwrap();
    // Several processes starting at once must all come up.
    let (a, b) = tokio::join!(Store::connect(&db.url), Store::connect(&db.url));
    for again in [a.unwrap(), b.unwrap(), db.connect().await] {
        assert_eq!(again.backend_name(), db.backend);
        assert_eq!(again.current_epoch().await.unwrap(), 3);
        let wf = again.workflow("p", "wf").await.unwrap().expect("kept");
        assert_eq!(wf.version, 1);
    }
}

async fn save_workflow_versions_only_on_change(db: &TestDb) {
    let store = db.connect().await;
    assert_eq!(
        store.current_epoch().await.unwrap(),
        0,
        "seeded with epoch 0"
    );
    let v1_spec = spec("ml", "train");
    let v1 = store.save_workflow(&v1_spec, "source v1").await.unwrap();
    assert_eq!(
        (v1.version, v1.project.as_str(), v1.name.as_str()),
        (1, "ml", "train")
    );
    assert_eq!(v1.spec, v1_spec);
    assert_eq!(v1.source, "source v1");

    let same = store.save_workflow(&v1_spec, "reformatted").await.unwrap();
    assert_eq!(same, v1, "an unchanged spec keeps its version and source");

    let mut v2_spec = v1_spec.clone();
    v2_spec.tasks[1].script = "python train.py".into();
    v2_spec.tasks.push(task("publish", &["report"]));
    let v2 = store.save_workflow(&v2_spec, "source v2").await.unwrap();
    assert_eq!((v2.id, v2.version), (v1.id, 2));

    assert_eq!(
        store.workflow("ml", "train").await.unwrap(),
        Some(v2.clone())
    );
    assert_eq!(store.workflow_by_id(v1.id).await.unwrap(), Some(v2.clone()));
    assert_eq!(
        store.workflow_version(v1.id, 1).await.unwrap(),
        Some(v1.clone())
    );
    assert_eq!(
        store.workflow_version(v1.id, 2).await.unwrap(),
        Some(v2.clone())
    );
    assert_eq!(store.workflow_version(v1.id, 3).await.unwrap(), None);
    assert_eq!(store.workflow("ml", "nope").await.unwrap(), None);
    assert_eq!(store.workflow("other", "train").await.unwrap(), None);

    // Same name in another project is another workflow.
    let other = store
        .save_workflow(&spec("etl", "train"), "x")
        .await
        .unwrap();
    assert_ne!(other.id, v1.id);
    assert_eq!(other.version, 1);
    let all = store.list_workflows(None).await.unwrap();
    assert_eq!(
        all,
        vec![other.clone(), v2.clone()],
        "ordered by project, name"
    );
    assert_eq!(store.list_workflows(Some("ml")).await.unwrap(), vec![v2]);
    assert!(store.list_workflows(Some("none")).await.unwrap().is_empty());

    // Task rows per version: 3 tasks/3 edges in v1, 4 tasks/4 edges in v2.
    let raw = db.raw().await;
    for (version, tasks, edges) in [(1, 3, 3), (2, 4, 4)] {
        let n = raw
            .count("task_definitions", "workflow_definition_id", v1.id, version)
            .await;
        assert_eq!(n, tasks, "task_definitions for v{version}");
        let n = raw
            .count("task_relations", "workflow_definition_id", v1.id, version)
            .await;
        assert_eq!(n, edges, "task_relations for v{version}");
    }
}

async fn commands_are_consumed_exactly_once(db: &TestDb) {
    let store = db.connect().await;
    store.claim_epoch(1, "m1").await.unwrap();
    let def = store.save_workflow(&spec("p", "wf"), "yaml").await.unwrap();
    let c1 = new_command(&store, &def, 1).await;
    let c2 = new_command(&store, &def, 2).await;
    assert_eq!(store.command(c1.id).await.unwrap(), Some(c1.clone()));
    assert_eq!(store.command(-1).await.unwrap(), None);
    assert_eq!(
        store.pending_commands(10).await.unwrap(),
        vec![c1.clone(), c2.clone()]
    );
    assert_eq!(store.pending_commands(1).await.unwrap(), vec![c1.clone()]);

    let wi = store
        .start_workflow_instance(1, &c1, &def, t(30))
        .await
        .unwrap();
    let expected = WorkflowInstanceRow {
        id: wi.id,
        workflow_definition_id: def.id,
        version: 1,
        name: "wf".into(),
        project: "p".into(),
        state: WorkflowState::Running,
        params: params(&[("dt", "2024-02-02")]),
        schedule_time: t(1),
        start_time: t(30),
        end_time: None,
        command_id: Some(c1.id),
        epoch: 1,
    };
    assert_eq!(wi, expected);
    assert_eq!(
        store.workflow_instance(wi.id).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(store.pending_commands(10).await.unwrap(), vec![c2.clone()]);
    let consumed = store.command(c1.id).await.unwrap().unwrap();
    assert_eq!(consumed.workflow_instance_id, Some(wi.id));

    // A second start (a new leader replaying the command) returns the same instance.
    store.claim_epoch(2, "m2").await.unwrap();
    let again = store
        .start_workflow_instance(2, &c1, &def, t(99))
        .await
        .unwrap();
    assert_eq!(again, expected);
    assert_eq!(
        store.list_workflow_instances(10).await.unwrap(),
        vec![expected]
    );

    // A STOP command names its target and stays pending until consumed.
    let stop = store
        .insert_command(orca_store::NewCommand {
            kind: orca_store::CommandKind::Stop,
            target_instance_id: Some(wi.id),
            options: Default::default(),
            workflow_definition_id: def.id,
            version: 1,
            params: BTreeMap::new(),
            schedule_time: t(40),
        })
        .await
        .unwrap();
    assert_eq!(stop.kind, orca_store::CommandKind::Stop);
    assert_eq!(stop.workflow_instance_id, Some(wi.id));
    assert_eq!(
        store.pending_commands(10).await.unwrap(),
        vec![c2.clone(), stop.clone()]
    );
    store
        .apply(2, vec![Write::ConsumeCommand { id: stop.id }])
        .await
        .unwrap();
    assert_eq!(store.pending_commands(10).await.unwrap(), vec![c2.clone()]);
    assert!(
        store
            .command(stop.id)
            .await
            .unwrap()
            .unwrap()
            .consumed_at
            .is_some()
    );
    let err = store
        .apply(1, vec![Write::ConsumeCommand { id: c2.id }])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
}

async fn apply_round_trips_every_field(db: &TestDb) {
    let store = db.connect().await;
    store.claim_epoch(4, "m").await.unwrap();
    let wi = running_instance(&store, 4, "wf").await;
    assert_eq!(store.apply(4, vec![]).await.unwrap(), Vec::<i64>::new());

    let skipped = NewTaskInstance {
        state: TaskState::UpstreamFailed,
        worker_id: Some("w-9".into()),
        worker_addr: Some("10.0.0.9:7000".into()),
        failover: true,
        end_time: Some(t(21)),
        message: Some("upstream extract failed".into()),
        ..new_task(wi.id, "report", 1)
    };
    let ids = store
        .apply(
            4,
            vec![
                Write::InsertTaskInstance(new_task(wi.id, "extract", 1)),
                Write::InsertTaskInstance(skipped),
            ],
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1], "ids in insertion order: {ids:?}");
    let fresh = TaskInstanceRow {
        id: ids[0],
        workflow_instance_id: wi.id,
        task_name: "extract".into(),
        attempt: 1,
        state: TaskState::Submitted,
        failover: false,
        worker_id: None,
        worker_addr: None,
        pid: None,
        exit_code: None,
        submit_time: t(20),
        start_time: None,
        end_time: None,
        out_params: BTreeMap::new(),
        log_path: None,
        message: None,
        last_seq: 0,
        epoch: 4,
    };
    assert_eq!(
        store.task_instance(ids[0]).await.unwrap(),
        Some(fresh.clone())
    );
    let second = store.task_instance(ids[1]).await.unwrap().unwrap();
    assert_eq!(
        second,
        TaskInstanceRow {
            id: ids[1],
            task_name: "report".into(),
            state: TaskState::UpstreamFailed,
            failover: true,
            worker_id: Some("w-9".into()),
            worker_addr: Some("10.0.0.9:7000".into()),
            end_time: Some(t(21)),
            message: Some("upstream extract failed".into()),
            ..fresh.clone()
        }
    );

    store.claim_epoch(5, "m").await.unwrap();
    let update = TaskInstanceUpdate {
        state: Some(TaskState::Success),
        worker_id: Some("worker-1".into()),
        worker_addr: Some("10.0.0.1:7000".into()),
        pid: Some(4242),
        exit_code: Some(0),
        start_time: Some(t(22)),
        end_time: Some(t(23)),
        out_params: Some(params(&[("model", "s3://m/1"), ("auc", "0.91")])),
        log_path: Some("/logs/1/extract.1.log".into()),
        message: Some("done".into()),
        last_seq: Some(7),
    };
    let no_ids = store
        .apply(
            5,
            vec![
                Write::UpdateTaskInstance {
                    id: ids[0],
                    update: update.clone(),
                },
                Write::UpdateWorkflowInstance {
                    id: wi.id,
                    state: WorkflowState::Success,
                    end_time: Some(t(24)),
                },
            ],
        )
        .await
        .unwrap();
    assert!(no_ids.is_empty());
    let done = TaskInstanceRow {
        state: TaskState::Success,
        worker_id: update.worker_id.clone(),
        worker_addr: update.worker_addr.clone(),
        pid: Some(4242),
        exit_code: Some(0),
        start_time: Some(t(22)),
        end_time: Some(t(23)),
        out_params: update.out_params.clone().unwrap(),
        log_path: update.log_path.clone(),
        message: Some("done".into()),
        last_seq: 7,
        epoch: 5,
        ..fresh
    };
    assert_eq!(
        store.task_instance(ids[0]).await.unwrap(),
        Some(done.clone())
    );
    // `None` fields leave columns alone.
    store
        .apply(
            5,
            vec![Write::UpdateTaskInstance {
                id: ids[0],
                update: TaskInstanceUpdate {
                    last_seq: Some(8),
                    ..Default::default()
                },
            }],
        )
        .await
        .unwrap();
    let after = store.task_instance(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        after,
        TaskInstanceRow {
            last_seq: 8,
            ..done
        }
    );
    assert_eq!(
        store.task_instances(wi.id).await.unwrap(),
        vec![after, second]
    );

    let wi_after = store.workflow_instance(wi.id).await.unwrap().unwrap();
    assert_eq!(
        wi_after,
        WorkflowInstanceRow {
            state: WorkflowState::Success,
            end_time: Some(t(24)),
            epoch: 5,
            ..wi
        }
    );
    assert_eq!(store.task_instance(-5).await.unwrap(), None);
}

async fn apply_is_all_or_nothing(db: &TestDb) {
    let store = db.connect().await;
    store.claim_epoch(1, "m").await.unwrap();
    let wi = running_instance(&store, 1, "wf").await;
    let r = store
        .apply(
            1,
            vec![
                Write::InsertTaskInstance(new_task(wi.id, "extract", 1)),
                Write::UpdateTaskInstance {
                    id: 987_654,
                    update: TaskInstanceUpdate {
                        last_seq: Some(1),
                        ..Default::default()
                    },
                },
            ],
        )
        .await;
    assert!(
        matches!(
            r,
            Err(StoreError::NotFound {
                what: "task instance",
                ..
            })
        ),
        "{r:?}"
    );
    assert!(
        store.task_instances(wi.id).await.unwrap().is_empty(),
        "insert rolled back"
    );

    // The unique (instance, task, attempt) key rejects a duplicate attempt.
    store
        .apply(
            1,
            vec![Write::InsertTaskInstance(new_task(wi.id, "extract", 1))],
        )
        .await
        .unwrap();
    let dup = store
        .apply(
            1,
            vec![Write::InsertTaskInstance(new_task(wi.id, "extract", 1))],
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Db(_))), "{dup:?}");
    assert_eq!(store.task_instances(wi.id).await.unwrap().len(), 1);

    // Several inserts among updates: each id is its own row's, in order.
    let first = store.task_instances(wi.id).await.unwrap()[0].id;
    let ids = store
        .apply(
            1,
            vec![
                Write::InsertTaskInstance(new_task(wi.id, "a", 1)),
                Write::UpdateTaskInstance {
                    id: first,
                    update: TaskInstanceUpdate {
                        last_seq: Some(2),
                        ..Default::default()
                    },
                },
                Write::InsertTaskInstance(new_task(wi.id, "b", 1)),
                Write::InsertTaskInstance(new_task(wi.id, "c", 1)),
            ],
        )
        .await
        .unwrap();
    let rows = store.task_instances(wi.id).await.unwrap();
    let name_of = |id: i64| {
        rows.iter()
            .find(|r| r.id == id)
            .map(|r| r.task_name.clone())
    };
    let names: Vec<_> = ids.iter().map(|&id| name_of(id)).collect();
    assert_eq!(
        names,
        [Some("a".to_string()), Some("b".into()), Some("c".into())]
    );
}

async fn fencing_rejects_stale_epochs(db: &TestDb) {
    let store = db.connect().await;
    let other = db.connect().await; // another master's connection
    store.claim_epoch(5, "m1").await.unwrap();
    let wi = running_instance(&store, 5, "wf").await;
    let ids = store
        .apply(
            5,
            vec![Write::InsertTaskInstance(new_task(wi.id, "extract", 1))],
        )
        .await
        .unwrap();
    let def = store.workflow("p", "wf").await.unwrap().unwrap();
    let pending = new_command(&store, &def, 3).await;

    other.claim_epoch(7, "m2").await.unwrap();
    assert_eq!(store.current_epoch().await.unwrap(), 7);
    let before_tasks = store.task_instances(wi.id).await.unwrap();
    let before_wi = store.workflow_instance(wi.id).await.unwrap();

    let stale = store
        .apply(
            5,
            vec![
                Write::InsertTaskInstance(new_task(wi.id, "train", 1)),
                Write::UpdateTaskInstance {
                    id: ids[0],
                    update: TaskInstanceUpdate {
                        state: Some(TaskState::Killed),
                        ..Default::default()
                    },
                },
                Write::UpdateWorkflowInstance {
                    id: wi.id,
                    state: WorkflowState::Stop,
                    end_time: Some(t(50)),
                },
            ],
        )
        .await;
    assert_fenced(stale, 5, 7);
    assert_fenced(
        store
            .start_workflow_instance(5, &pending, &def, t(60))
            .await,
        5,
        7,
    );
    assert_eq!(
        store.task_instances(wi.id).await.unwrap(),
        before_tasks,
        "nothing written"
    );
    assert_eq!(store.workflow_instance(wi.id).await.unwrap(), before_wi);
    assert_eq!(store.pending_commands(10).await.unwrap(), vec![pending]);

    // A newer epoch than the stored one is stale too (only equality passes).
    assert_fenced(
        store
            .apply(9, vec![Write::InsertTaskInstance(new_task(wi.id, "x", 1))])
            .await,
        9,
        7,
    );
    // A claim whose revision is not above the stored epoch (a registry that
    // lost its history) still gets a fresh token above every earlier one,
    // and fences the previous leader.
    assert_eq!(store.claim_epoch(6, "m3").await.unwrap(), 8);
    assert_eq!(store.current_epoch().await.unwrap(), 8);
    assert_fenced(
        other
            .apply(7, vec![Write::InsertTaskInstance(new_task(wi.id, "x", 1))])
            .await,
        7,
        8,
    );
    assert_eq!(
        store.claim_epoch(8, "m3").await.unwrap(),
        9,
        "never the same token twice"
    );
    store
        .apply(
            9,
            vec![Write::InsertTaskInstance(new_task(wi.id, "train", 1))],
        )
        .await
        .unwrap();
    assert_eq!(store.task_instances(wi.id).await.unwrap().len(), 2);
}

async fn unfinished_and_listed_instances(db: &TestDb) {
    let store = db.connect().await;
    store.claim_epoch(1, "m").await.unwrap();
    let a = running_instance(&store, 1, "a").await;
    let b = running_instance(&store, 1, "b").await;
    let c = running_instance(&store, 1, "c").await;
    assert_eq!(
        store.unfinished_workflow_instances().await.unwrap(),
        vec![a.clone(), b.clone(), c.clone()]
    );
    store
        .apply(
            1,
            vec![Write::UpdateWorkflowInstance {
                id: b.id,
                state: WorkflowState::Failure,
                end_time: Some(t(40)),
            }],
        )
        .await
        .unwrap();
    assert_eq!(
        store.unfinished_workflow_instances().await.unwrap(),
        vec![a.clone(), c.clone()]
    );
    let listed: Vec<i64> = store
        .list_workflow_instances(2)
        .await
        .unwrap()
        .iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(listed, vec![c.id, b.id], "newest first, limited");
}

/// A deposed leader keeps writing (several tasks, multi-statement batches, so
/// transactions are in flight at any moment) while another master claims a
/// newer epoch: once the claim has committed, no write with the old epoch may
/// commit, and every write acknowledged to the old leader is stored.
async fn stale_epoch_never_writes_after_a_concurrent_claim(db: &TestDb) {
    const WRITERS: usize = 3;
    const BATCH: i32 = 8;
    let store = db.connect().await;
    let rival = db.connect().await;
    store.claim_epoch(1, "old").await.unwrap();
    let wi = running_instance(&store, 1, "wf").await;
    for round in 1..=5u64 {
        let (tx, mut rx) = watch::channel(0usize);
        let tx = Arc::new(tx);
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (store, tx) = (store.clone(), tx.clone());
                tokio::spawn(async move {
                    let name = format!("r{round}w{w}");
                    let mut committed = 0usize;
                    for batch in 0.. {
                        let writes = (0..BATCH)
                            .map(|k| {
                                Write::InsertTaskInstance(new_task(wi.id, &name, batch * BATCH + k))
                            })
                            .collect();
                        match store.apply(round, writes).await {
                            Ok(ids) => {
                                committed += ids.len();
                                tx.send_modify(|n| *n += 1);
                            }
                            Err(e) => return (committed, e),
                        }
                    }
                    unreachable!()
                })
            })
            .collect();
        // Claim while the old leader is mid-stream.
        tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|n| *n >= 3 * WRITERS))
            .await
            .expect("writers made progress")
            .expect("writers alive");
        rival.claim_epoch(round + 1, "new").await.unwrap();
        let at_claim = count_round(&rival, wi.id, round).await;
        let mut committed = 0;
        for w in writers {
            let (n, err) = tokio::time::timeout(Duration::from_secs(30), w)
                .await
                .expect("writer stops after the claim")
                .unwrap();
            assert!(
                matches!(err, StoreError::Fenced { mine, current } if mine == round && current == round + 1),
                "{err:?}"
            );
            committed += n;
        }
        assert_eq!(
            count_round(&rival, wi.id, round).await,
            at_claim,
            "round {round}: a stale write committed after the claim"
        );
        assert_eq!(
            at_claim, committed,
            "round {round}: every acknowledged write is stored"
        );
    }
}

async fn count_round(store: &Store, wi: i64, round: u64) -> usize {
    let prefix = format!("r{round}w");
    let rows: Vec<_> = store
        .task_instances(wi)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.task_name.starts_with(&prefix))
        .collect();
    assert!(rows.iter().all(|r| r.epoch == round));
    rows.len()
}

async fn api_tokens(db: &TestDb) {
    let store = db.connect().await;
    assert!(!store.api_token_exists("h1").await.unwrap());
    store.insert_api_token("ci", "h1").await.unwrap();
    assert!(store.api_token_exists("h1").await.unwrap());
    assert!(!store.api_token_exists("h2").await.unwrap());
    let dup = store.insert_api_token("ci-again", "h1").await;
    assert!(
        matches!(dup, Err(StoreError::Db(_))),
        "hashes are unique: {dup:?}"
    );
}

async fn corrupt_rows_are_reported_by_name(db: &TestDb) {
    let store = db.connect().await;
    store.claim_epoch(1, "m").await.unwrap();
    let wi = running_instance(&store, 1, "wf").await;
    let ids = store
        .apply(
            1,
            vec![Write::InsertTaskInstance(new_task(wi.id, "extract", 1))],
        )
        .await
        .unwrap();
    let raw = db.raw().await;
    raw.exec(&format!(
        "UPDATE task_instances SET out_params = '{{not json' WHERE id = {}",
        ids[0]
    ))
    .await;
    raw.exec(&format!(
        "UPDATE workflow_instances SET state = 'PAUSED' WHERE id = {}",
        wi.id
    ))
    .await;
    let err = store.task_instance(ids[0]).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("ORCA-STORE-CORRUPT")
            && msg.contains("task instance")
            && msg.contains(&ids[0].to_string()),
        "{msg}"
    );
    let err = store.workflow_instance(wi.id).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { what: "workflow instance", reason, .. } if reason.contains("PAUSED")),
        "{err}"
    );
}
