//! The leader fires cron schedules: one run per fire time, on the second.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Timelike;
use orca_common::registry::memory::MemoryRegistry;
use orca_master::MasterConfig;
use orca_store::{NewSchedule, Store};

const DEADLINE: Duration = Duration::from_secs(20);

const ONE: &str = r#"
workflow: {name: every-second, project: p}
tasks:
  - {name: a, task_type: Shell, command: "true"}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_second_schedule_creates_one_run_per_second() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/orca.db?mode=rwc", dir.path().display());
    let store = Store::connect(&url).await.unwrap();
    let spec = orca_common::workflow::parse_workflow_str(ONE, "t.yaml", std::path::Path::new("."))
        .unwrap();
    let def = store.save_workflow(&spec, ONE).await.unwrap();
    let schedule = store
        .upsert_schedule(&NewSchedule {
            workflow_definition_id: def.id,
            cron: "* * * * * ? *".into(),
            timezone: "Europe/Berlin".into(),
            start_time: None,
            end_time: None,
            enabled: true,
            params: BTreeMap::from([("k".to_string(), "v".to_string())]),
        })
        .await
        .unwrap();
    // No workers: runs are created and wait for one.
    let registry = Arc::new(MemoryRegistry::new());
    let _master = orca_master::start(MasterConfig::default(), store.clone(), registry)
        .await
        .unwrap();

    let deadline = tokio::time::Instant::now() + DEADLINE;
    let runs = loop {
        let runs = store.list_workflow_instances(100).await.unwrap();
        if runs.len() >= 3 {
            break runs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "3 scheduled runs within {DEADLINE:?}, got {}",
            runs.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let times: BTreeSet<_> = runs.iter().map(|r| r.schedule_time).collect();
    assert_eq!(times.len(), runs.len(), "one run per fire time: {times:?}");
    for r in &runs {
        assert_eq!(r.schedule_time.nanosecond(), 0, "on a second boundary");
        assert!(r.schedule_time > schedule.updated_at);
        assert_eq!(r.params.get("k").map(String::as_str), Some("v"));
        assert_eq!(r.workflow_definition_id, def.id);
        // A second leader firing the same second writes nothing.
        assert_eq!(
            store.record_fire(&schedule, r.schedule_time).await.unwrap(),
            None
        );
    }
    let last = store
        .schedule(def.id)
        .await
        .unwrap()
        .unwrap()
        .last_fire_time;
    assert!(last >= times.last().copied());
}
