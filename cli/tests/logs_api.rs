//! The logs API on a real standalone: byte ranges, tail, search, download
//! and following a running attempt's log.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use orca::client::Client;
use orca::standalone::{Standalone, StandaloneOptions};
use orca_api::routes::runs::RunDetail;
use orca_common::{TaskState, WorkflowState};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(120);

async fn standalone(dir: &Path) -> Standalone {
    Standalone::start(StandaloneOptions {
        data_dir: dir.to_path_buf(),
        http: SocketAddr::from(([127, 0, 0, 1], 0)),
        worker_slots: 4,
        python: std::env::var("ORCA_PYTHON").unwrap_or_else(|_| "python3".into()),
    })
    .await
    .expect("standalone starts")
}

async fn wait_run(c: &Client, id: i64, what: &str, pred: impl Fn(&RunDetail) -> bool) -> RunDetail {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let d = c.run(id).await.expect("read run");
        if pred(&d) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {d:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn task<'a>(d: &'a RunDetail, name: &str) -> Option<&'a orca_store::TaskInstanceRow> {
    d.tasks.iter().find(|t| t.task_name == name)
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
    }

    async fn text(&self, path: &str) -> (u16, String) {
        let resp = self.get(path).send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn search(&self, ti: i64, query: &[(&str, &str)]) -> (u16, Value) {
        let resp = self
            .get(&format!("/task-instances/{ti}/log/search"))
            .query(query)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }
}

fn line_numbers(v: &Value) -> Vec<u64> {
    v["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["line"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_tail_search_download_and_follow() {
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path()).await;
    let c = Client::new(&s.url, &s.token);
    let api = Api {
        http: reqwest::Client::new(),
        base: s.url.trim_end_matches('/').to_string(),
        token: s.token.clone(),
    };
    let release = dir.path().join("release");
    let yaml = format!(
        r#"
workflow: {{name: logs-api}}
tasks:
  - {{name: lines, task_type: Shell, command: "for i in 1 2 3 4 5 6 7 8 9 10; do echo line $i; done"}}
  - {{name: slow, task_type: Shell, command: "echo first; while [ ! -f '{}' ]; do sleep 0.05; done; echo second"}}
"#,
        release.display()
    );
    let spec = orca_common::workflow::parse_workflow_str(&yaml, "t.yaml", Path::new("."))
        .expect("workflow parses");
    let wf = c.apply(&spec, &yaml).await.unwrap();
    let trig = c
        .trigger(&wf.project, &wf.name, BTreeMap::new())
        .await
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    let run = loop {
        if let Some(r) = c
            .command(trig.command_id)
            .await
            .unwrap()
            .workflow_instance_id
        {
            break r;
        }
        assert!(Instant::now() < deadline, "command never consumed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let d = wait_run(&c, run, "lines done, slow running", |d| {
        task(d, "lines").is_some_and(|t| t.state == TaskState::Success)
            && task(d, "slow").is_some_and(|t| t.state == TaskState::Running)
    })
    .await;
    let lines = task(&d, "lines").unwrap().id;
    let slow = task(&d, "slow").unwrap().id;

    // Byte ranges and tail, against the whole log.
    let (st, full) = api.text(&format!("/task-instances/{lines}/log")).await;
    assert_eq!(st, 200);
    assert!(full.ends_with("line 9\nline 10\n"), "{full}");
    let (st, part) = api
        .text(&format!("/task-instances/{lines}/log?offset=3&limit=10"))
        .await;
    assert_eq!(st, 200);
    assert_eq!(part, full[3..13]);
    let (_, rest) = api
        .text(&format!("/task-instances/{lines}/log?offset=5"))
        .await;
    assert_eq!(rest, full[5..]);
    let (_, past) = api
        .text(&format!(
            "/task-instances/{lines}/log?offset=100000&limit=5"
        ))
        .await;
    assert_eq!(past, "");
    let (_, tail) = api
        .text(&format!("/task-instances/{lines}/log?tail=3"))
        .await;
    assert_eq!(tail, "line 8\nline 9\nline 10\n");
    let (st, _) = api
        .text(&format!("/task-instances/{lines}/log?tail=3&offset=2"))
        .await;
    assert_eq!(st, 422);

    // Search: plain text and regex, with line numbers of the whole log.
    let numbered: Vec<&str> = full.lines().collect();
    let at = |text: &str| numbered.iter().position(|l| *l == text).unwrap() as u64 + 1;
    let (st, found) = api.search(lines, &[("q", "line 1")]).await;
    assert_eq!(st, 200, "{found}");
    assert_eq!(line_numbers(&found), vec![at("line 1"), at("line 10")]);
    assert_eq!(found["matches"][1]["text"], "line 10");
    assert_eq!(found["truncated"], false);
    let (_, found) = api
        .search(lines, &[("q", "^line [23]$"), ("regex", "true")])
        .await;
    assert_eq!(line_numbers(&found), vec![at("line 2"), at("line 3")]);
    let (_, found) = api.search(lines, &[("q", "^line [23]$")]).await;
    assert_eq!(
        line_numbers(&found),
        Vec::<u64>::new(),
        "not a regex by default"
    );
    let (st, bad) = api.search(lines, &[("q", "("), ("regex", "true")]).await;
    assert_eq!(st, 422, "{bad}");
    assert!(bad["detail"].as_str().unwrap().starts_with("q:"), "{bad}");

    // Download: the whole log as an attachment.
    let resp = api
        .get(&format!("/task-instances/{lines}/log/download"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let h = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert!(
        h("content-type").starts_with("text/plain"),
        "{}",
        h("content-type")
    );
    assert_eq!(
        h("content-disposition"),
        format!("attachment; filename=\"task-{lines}-attempt-1.log\"")
    );
    assert_eq!(resp.text().await.unwrap(), full);

    // Following a finished attempt: the whole log, then the end.
    let (st, followed) = tokio::time::timeout(
        DEADLINE,
        api.text(&format!("/task-instances/{lines}/log/follow")),
    )
    .await
    .expect("following a finished attempt ends");
    assert_eq!((st, followed.as_str()), (200, full.as_str()));

    // Following a running attempt: "first" arrives while it still runs,
    // "second" after the release, then the stream ends with the attempt.
    let mut resp = api
        .get(&format!("/task-instances/{slow}/log/follow"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("first\n") {
        let chunk = tokio::time::timeout(DEADLINE, resp.chunk())
            .await
            .expect("the first line arrives")
            .unwrap()
            .expect("the stream stays open while the task runs");
        got.extend_from_slice(&chunk);
    }
    assert!(!String::from_utf8_lossy(&got).contains("second"));
    std::fs::write(&release, "go").unwrap();
    let ended = tokio::time::timeout(DEADLINE, async {
        while let Some(chunk) = resp.chunk().await.unwrap() {
            got.extend_from_slice(&chunk);
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream ends with the attempt");
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.contains("first\n") && text.ends_with("second\n"),
        "{text}"
    );
    let d = wait_run(&c, run, "the run to finish", |d| {
        d.instance.state.is_terminal()
    })
    .await;
    assert_eq!(d.instance.state, WorkflowState::Success, "{d:#?}");
    s.shutdown().await;
}
