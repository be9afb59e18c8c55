//! `GET /workers` and `GET /masters` of a real standalone: its embedded
//! worker and master, the master leading with its epoch.

use std::net::SocketAddr;
use std::time::Duration;

use orca::client::Client;
use orca::standalone::{Standalone, StandaloneOptions};
use orca_api::page::Page;
use orca_api::routes::cluster::{MasterView, WorkerView};

const DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_view_lists_the_standalone_worker_and_leading_master() {
    let dir = tempfile::tempdir().unwrap();
    let s = Standalone::start(StandaloneOptions {
        data_dir: dir.path().to_path_buf(),
        http: SocketAddr::from(([127, 0, 0, 1], 0)),
        worker_slots: 3,
        python: "python3".into(),
    })
    .await
    .expect("standalone starts");

    let workers = Client::new(&s.url, &s.token)
        .workers()
        .await
        .unwrap()
        .expect("the server offers GET /workers");
    let workers: Vec<WorkerView> = serde_json::from_value(workers).unwrap();
    assert_eq!(workers.len(), 1, "{workers:?}");
    let w = &workers[0];
    assert_eq!(
        (w.addr.as_str(), w.group.as_str(), w.slots),
        (format!("http://{}", s.worker_addr).as_str(), "default", 3)
    );
    assert!(w.running <= w.slots);

    // The master registers, then wins the election: wait for it to lead.
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let masters = loop {
        let resp = http
            .get(format!("{}/api/v1/masters", s.url))
            .bearer_auth(&s.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let page: Page<MasterView> = resp.json().await.unwrap();
        assert!(page.next_cursor.is_none(), "one master, one page");
        let masters = page.items;
        if masters.iter().any(|m| m.leader) {
            break masters;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a leader within {DEADLINE:?}: {masters:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(masters.len(), 1, "{masters:?}");
    let m = &masters[0];
    // Filters of GET /workers apply.
    let filtered = |query: &str| {
        let req = http
            .get(format!("{}/api/v1/workers?{query}", s.url))
            .bearer_auth(&s.token);
        async move {
            let page: Page<WorkerView> = req.send().await.unwrap().json().await.unwrap();
            page.items.len()
        }
    };
    let group = workers[0].group.clone();
    assert_eq!(filtered(&format!("group={group}")).await, 1);
    assert_eq!(filtered("group=no-such-group").await, 0);
    assert_eq!(filtered("label=no-such-label").await, 0);
    assert_eq!(filtered("state=full").await, 0, "nothing runs");
    assert!(m.addr.ends_with(&s.master_addr.port().to_string()), "{m:?}");
    assert!(m.epoch.is_some_and(|e| e >= 1), "{m:?}");

    // Both need a token.
    let resp = http
        .get(format!("{}/api/v1/masters", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    s.shutdown().await;
}
