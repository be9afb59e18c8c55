//! Tenants, worker groups and environments over REST, on a real server,
//! on SQLite and on PostgreSQL: create, read, page, change, and delete
//! refused while a workflow or an environment still uses one.

mod support;

use orca_common::registry::{Registry, WorkerInfo};
use serde_json::{Value, json};
use support::{TestApi, TestDb, detail};

const WORKFLOW: &str = "workflow: {name: train, project: P}
tasks:
  - {name: fit, task_type: Shell, command: \"true\", worker_group: gpu, environment: torch}
";

fn names(items: &[Value]) -> Vec<&str> {
    items.iter().map(|i| i["name"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_worker_groups_and_environments() {
    for db in TestDb::both().await {
        let backend = db.backend;
        let t = TestApi::start(db).await;
        exercise(&t).await;
        eprintln!("{backend}: ok");
        t.api.shutdown().await;
    }
}

async fn exercise(t: &TestApi) {
    let root = t.admin.as_str();
    let viewer = t.user("viewer", false).await;
    // A live worker of group `gpu` that hosts `torch`.
    let _lease = t
        .registry
        .register_worker(WorkerInfo {
            id: "w1".into(),
            addr: "http://127.0.0.1:1".into(),
            group: "gpu".into(),
            slots: 2,
            environments: vec!["torch".into()],
            ..Default::default()
        })
        .await
        .unwrap();

    // Tenants.
    let (s, b) = t
        .call(
            "POST",
            "/tenants",
            root,
            Some(json!({"name": "etl", "description": "ETL jobs"})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(
        (b["name"].as_str(), b["os_user"].as_str()),
        (Some("etl"), Some("etl"))
    );
    let (s, b) = t
        .call("POST", "/tenants", root, Some(json!({"name": "etl"})))
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (409, Some("ORCA-API-CONFLICT")),
        "{b}"
    );
    for (body, field) in [
        (json!({"name": "bad name"}), "name"),
        (json!({"name": "ok", "os_user": "Root!"}), "os_user"),
        (
            json!({"name": "ok", "description": "x".repeat(5000)}),
            "description",
        ),
    ] {
        let (s, b) = t.call("POST", "/tenants", root, Some(body)).await;
        assert_eq!(s, 422, "{b}");
        assert!(detail(&b).starts_with(field), "{field}: {b}");
    }
    let (s, b) = t
        .call(
            "POST",
            "/tenants",
            root,
            Some(json!({"name": "x", "queue": 1})),
        )
        .await;
    assert_eq!(s, 422, "unknown fields are refused: {b}");
    assert!(detail(&b).contains("queue"), "{b}");
    let (s, _) = t
        .call("POST", "/tenants", &viewer, Some(json!({"name": "mine"})))
        .await;
    assert_eq!(s, 403, "only admins create tenants");
    let (s, b) = t
        .call(
            "PATCH",
            "/tenants/etl",
            root,
            Some(json!({"os_user": "etl_runner"})),
        )
        .await;
    assert_eq!((s, b["os_user"].as_str()), (200, Some("etl_runner")), "{b}");
    assert_eq!(b["description"], "ETL jobs", "absent fields stay");
    let (s, b) = t.call("GET", "/tenants/etl", &viewer, None).await;
    assert_eq!((s, b["os_user"].as_str()), (200, Some("etl_runner")), "{b}");
    let (s, b) = t.call("GET", "/tenants/nope", root, None).await;
    assert_eq!(s, 404, "{b}");
    assert!(detail(&b).contains("nope"), "{b}");
    for i in 0..5 {
        let (s, b) = t
            .call(
                "POST",
                "/tenants",
                root,
                Some(json!({"name": format!("t{i}")})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
    let all = t.all_pages("/tenants", &viewer, 2).await;
    assert_eq!(names(&all), ["etl", "t0", "t1", "t2", "t3", "t4"]);
    let filtered = t.all_pages("/tenants?name=t3", &viewer, 2).await;
    assert_eq!(names(&filtered), ["t3"]);
    let (s, b) = t.call("GET", "/tenants?cursor=bogus", &viewer, None).await;
    assert_eq!(s, 422, "{b}");
    assert!(detail(&b).starts_with("cursor"), "{b}");

    // Worker groups: `default` and the group the live worker declares are
    // listed before anyone defines them.
    let groups = t.all_pages("/worker-groups", &viewer, 1).await;
    assert_eq!(names(&groups), ["default", "gpu"]);
    assert_eq!(groups[1]["workers"], json!(["w1"]));
    assert_eq!(groups[1]["defined"], false);
    let (s, b) = t
        .call(
            "POST",
            "/worker-groups",
            root,
            Some(json!({"name": "gpu", "description": "A100s"})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(
        (b["defined"].as_bool(), &b["workers"]),
        (Some(true), &json!(["w1"]))
    );
    let (s, b) = t
        .call(
            "POST",
            "/worker-groups",
            root,
            Some(json!({"name": "default"})),
        )
        .await;
    assert_eq!(s, 409, "{b}");
    let (s, b) = t
        .call("POST", "/worker-groups", root, Some(json!({"name": "cpu"})))
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = t.call("GET", "/worker-groups/cpu", &viewer, None).await;
    assert_eq!((s, &b["workers"]), (200, &json!([])), "{b}");
    let (s, _) = t
        .call("GET", "/worker-groups/none-such", &viewer, None)
        .await;
    assert_eq!(s, 404);

    // Environments.
    let (s, b) = t
        .call(
            "POST",
            "/environments",
            root,
            Some(json!({"name": "torch", "packages": ["python=3.11", "pytorch>=2"], "channels": ["conda-forge"], "worker_groups": ["gpu"]})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["hosted_by"], json!(["w1"]), "{b}");
    let (s, b) = t
        .call(
            "POST",
            "/environments",
            root,
            Some(json!({"name": "bad", "worker_groups": ["gpu", "tpu"]})),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    assert!(detail(&b).starts_with("worker_groups[1]"), "{b}");
    let (s, b) = t
        .call(
            "POST",
            "/environments",
            root,
            Some(json!({"name": "bad", "packages": [""]})),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    assert!(detail(&b).starts_with("packages[0]"), "{b}");
    let (s, b) = t
        .call(
            "PATCH",
            "/environments/torch",
            root,
            Some(json!({"packages": ["python=3.12"]})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (&b["packages"], &b["channels"]),
        (&json!(["python=3.12"]), &json!(["conda-forge"]))
    );

    // In use: a workflow's task names group `gpu` and environment `torch`.
    let spec =
        orca_common::workflow::parse_workflow_str(WORKFLOW, "t.yaml", std::path::Path::new("."))
            .unwrap();
    t.store.save_workflow(&spec, WORKFLOW).await.unwrap();
    let (s, b) = t.call("DELETE", "/environments/torch", root, None).await;
    assert_eq!(s, 409, "{b}");
    assert!(detail(&b).contains("P/train task fit"), "{b}");
    let (s, b) = t.call("DELETE", "/worker-groups/gpu", root, None).await;
    assert_eq!(s, 409, "{b}");
    assert!(
        detail(&b).contains("P/train task fit") && detail(&b).contains("environment torch"),
        "{b}"
    );
    let (s, b) = t.call("DELETE", "/workflows/P/train", root, None).await;
    assert!((200..300).contains(&s), "{b}");
    let (s, b) = t.call("DELETE", "/environments/torch", root, None).await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = t.call("DELETE", "/worker-groups/gpu", root, None).await;
    assert_eq!(s, 204, "{b}");
    // Still listed: its worker is live, but no longer defined.
    let (s, b) = t.call("GET", "/worker-groups/gpu", &viewer, None).await;
    assert_eq!((s, b["defined"].as_bool()), (200, Some(false)), "{b}");
    // A workflow runs as tenant `etl`: an unknown tenant is refused, and
    // the tenant cannot go while the workflow names it.
    let mut spec = spec;
    spec.name = "nightly".into();
    spec.tasks[0].worker_group = "default".into();
    spec.tasks[0].environment = None;
    spec.tenant = Some("ghost".into());
    let (s, b) = t
        .call(
            "POST",
            "/workflows",
            root,
            Some(json!({"spec": spec, "source": ""})),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    assert!(
        detail(&b).contains("tenant") && detail(&b).contains("ghost"),
        "{b}"
    );
    spec.tenant = Some("etl".into());
    let (s, b) = t
        .call(
            "POST",
            "/workflows",
            root,
            Some(json!({"spec": spec, "source": ""})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, _) = t.call("DELETE", "/tenants/etl", &viewer, None).await;
    assert_eq!(s, 403);
    let (s, b) = t.call("DELETE", "/tenants/etl", root, None).await;
    assert_eq!(s, 409, "{b}");
    assert!(detail(&b).contains("workflow P/nightly"), "{b}");
    let (s, b) = t.call("DELETE", "/workflows/P/nightly", root, None).await;
    assert!((200..300).contains(&s), "{b}");
    let (s, _) = t.call("DELETE", "/tenants/etl", root, None).await;
    assert_eq!(s, 204);
    let (s, _) = t.call("GET", "/tenants/etl", root, None).await;
    assert_eq!(s, 404);
}
