//! Tasks run as their tenant's operating-system user, on a real standalone:
//! a task sees its own user and work dir, and a task of another tenant
//! cannot read it. Needs root (to create the test users and switch to
//! them); skipped loudly otherwise.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use orca::client::Client;
use orca::standalone::{Standalone, StandaloneOptions};
use orca_api::routes::runs::RunDetail;
use orca_common::{TaskState, WorkflowState};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(120);

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A system user without a home or login shell (kept between runs).
fn ensure_user(name: &str) {
    let exists = std::process::Command::new("id")
        .arg(name)
        .output()
        .is_ok_and(|o| o.status.success());
    if !exists {
        let st = std::process::Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .status()
            .expect("useradd runs");
        assert!(st.success(), "useradd {name}");
    }
}

async fn run(c: &Client, yaml: &str, params: &[(&str, &str)]) -> RunDetail {
    let spec = orca_common::workflow::parse_workflow_str(yaml, "t.yaml", Path::new("."))
        .expect("test workflow parses");
    let wf = c.apply(&spec, yaml).await.expect("apply");
    let params: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let trig = c
        .trigger(&wf.project, &wf.name, params)
        .await
        .expect("trigger");
    let deadline = Instant::now() + DEADLINE;
    let id = loop {
        if let Some(id) = c
            .command(trig.command_id)
            .await
            .unwrap()
            .workflow_instance_id
        {
            break id;
        }
        assert!(Instant::now() < deadline, "command never consumed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    loop {
        let d = c.run(id).await.unwrap();
        if d.instance.state.is_terminal() {
            return d;
        }
        assert!(Instant::now() < deadline, "run never finished: {d:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn create_tenant(s: &Standalone, name: &str, os_user: &str) {
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/tenants", s.url))
        .bearer_auth(&s.token)
        .json(&json!({"name": name, "os_user": os_user}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        201,
        "{}",
        resp.text().await.unwrap()
    );
}

const WRITER: &str = r#"
workflow: {name: writer, tenant: team-a}
tasks:
  - name: write
    task_type: Shell
    command: |
      echo "user=$(id -un) home=$HOME"
      echo "top secret" > secret.txt
      echo "workdir=$PWD"
"#;

const READER: &str = r#"
workflow: {name: reader, tenant: team-b, param: {target: ""}}
tasks:
  - name: read
    task_type: Shell
    command: |
      echo "user=$(id -un)"
      if cat "${target}/secret.txt"; then echo LEAKED; exit 1; fi
      if ls "$(dirname "${target}")" >/dev/null 2>&1; then echo LISTED WORK; exit 1; fi
      if ls "$(dirname "$(dirname "${target}")")/attempts" >/dev/null 2>&1; then echo LISTED ATTEMPTS; exit 1; fi
      echo "denied as expected"
"#;

const GHOST: &str = r#"
workflow: {name: ghost, tenant: ghost}
tasks:
  - {name: t, task_type: Shell, command: "true"}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_run_as_their_tenant_and_cannot_read_other_tenants_work() {
    if !is_root() {
        eprintln!(
            "\n!!!!!!!! SKIPPED: running tasks as tenant users needs root (to create users and switch to them) !!!!!!!!\n"
        );
        return;
    }
    ensure_user("orcatest_a");
    ensure_user("orcatest_b");
    let dir = tempfile::tempdir().unwrap();
    // Users must be able to traverse down to the worker's data dir.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let s = Standalone::start(StandaloneOptions {
        data_dir: dir.path().to_path_buf(),
        http: SocketAddr::from(([127, 0, 0, 1], 0)),
        worker_slots: 4,
        python: "python3".into(),
    })
    .await
    .expect("standalone starts");
    let c = Client::new(&s.url, &s.token);
    create_tenant(&s, "team-a", "orcatest_a").await;
    create_tenant(&s, "team-b", "orcatest_b").await;
    create_tenant(&s, "ghost", "orcatest_nobody_here").await;

    let d = run(&c, WRITER, &[]).await;
    assert_eq!(d.instance.state, WorkflowState::Success, "{d:#?}");
    let log = c.task_log(d.tasks[0].id).await.unwrap();
    assert!(log.contains("user=orcatest_a"), "{log}");
    let work = log
        .lines()
        .find_map(|l| l.strip_prefix("workdir="))
        .expect("the task printed its work dir")
        .to_string();
    let meta = std::fs::metadata(Path::new(&work).join("secret.txt")).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        uid_of("orcatest_a"),
        "files the task writes are its user's"
    );

    let d = run(&c, READER, &[("target", &work)]).await;
    let log = c.task_log(d.tasks[0].id).await.unwrap();
    assert_eq!(d.instance.state, WorkflowState::Success, "{log}");
    assert!(
        log.contains("user=orcatest_b") && log.contains("denied as expected"),
        "{log}"
    );
    assert!(!log.contains("top secret"), "{log}");

    // A tenant whose user does not exist on the worker: the task fails,
    // saying so.
    let d = run(&c, GHOST, &[]).await;
    assert_eq!(d.tasks[0].state, TaskState::Failure, "{d:#?}");
    let msg = d.tasks[0].message.clone().unwrap_or_default();
    assert!(
        msg.contains("ORCA-WORKER-NO-SUCH-USER") && msg.contains("orcatest_nobody_here"),
        "{msg}"
    );
    s.shutdown().await;
}

fn uid_of(user: &str) -> u32 {
    let out = std::process::Command::new("id")
        .args(["-u", user])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}
