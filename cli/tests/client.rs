//! The `orca` binary as an API client, against a real in-process standalone:
//! login, apply, run by name, ps, status, logs, and the errors a user sees.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use orca::client::Client;
use orca::standalone::{Standalone, StandaloneOptions};
use orca_api::routes::runs::RunDetail;
use orca_common::{TaskState, WorkflowState};
use orca_store::WorkflowInstanceRow;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const DEADLINE: Duration = Duration::from_secs(120);

const GREET: &str = r#"
workflow:
  name: client_greet
  param: { who: nobody }
tasks:
  - name: hello
    task_type: Shell
    command: echo "hello ${who} $ENV{ORCA_TEST_GREETING}"
"#;

/// A temp home for the CLI: its config dir, a working dir without
/// `orca-data`, and the data dir of the standalone.
struct Home {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().to_path_buf();
        for d in ["home", "xdg", "work", "data"] {
            std::fs::create_dir_all(root.join(d)).expect("create test dirs");
        }
        Home { _dir: dir, root }
    }

    fn work(&self) -> PathBuf {
        self.root.join("work")
    }

    fn config_file(&self) -> PathBuf {
        self.root.join("xdg/orca/config.toml")
    }

    /// The `orca` binary with this home and no ORCA_* settings of the caller.
    fn orca(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_orca"));
        c.args(args)
            .current_dir(self.work())
            .env("HOME", self.root.join("home"))
            .env("XDG_CONFIG_HOME", self.root.join("xdg"))
            .env("ORCA_TEST_GREETING", "from-the-client-env")
            .env_remove("ORCA_SERVER")
            .env_remove("ORCA_TOKEN")
            .env_remove("ORCA_DATA_DIR")
            .env_remove("ORCA_LOG")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        c
    }

    async fn run(&self, args: &[&str]) -> Output {
        let out = self
            .orca(args)
            .output()
            .await
            .expect("the orca binary runs");
        eprintln!(
            "$ orca {}\n-- exit {:?}\n-- stdout\n{}-- stderr\n{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.work().join(name);
        std::fs::write(&p, text).expect("write test file");
        p
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

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

/// `orca login` with the admin's password on stdin; returns the stored token.
async fn login(home: &Home, s: &Standalone) -> String {
    let (user, password) = s
        .admin_created
        .clone()
        .expect("a fresh standalone creates an admin");
    let mut child = home
        .orca(&[
            "login",
            "--server",
            &s.url,
            "--username",
            &user,
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("orca login starts");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(format!("{password}\n").as_bytes())
        .await
        .expect("write the password");
    drop(stdin);
    let out = child.wait_with_output().await.expect("orca login ends");
    assert!(out.status.success(), "login: {}", stderr(&out));

    let path = home.config_file();
    let mode = std::fs::metadata(&path)
        .expect("login writes the config file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the config file is private");
    let text = std::fs::read_to_string(&path).expect("read config");
    assert!(
        !text.contains(&password),
        "the password is never stored: {text}"
    );
    let table: toml::Table = text.parse().expect("the config is TOML");
    assert_eq!(table["server"].as_str(), Some(s.url.as_str()));
    let token = table["token"]
        .as_str()
        .expect("a token is stored")
        .to_string();
    assert_ne!(token, s.token, "login creates its own token");
    let me = Client::new(&s.url, &token)
        .me()
        .await
        .expect("the stored token works");
    assert_eq!(me.user.username, user);
    assert!(
        me.token.name.starts_with("orca-cli@"),
        "{:?}",
        me.token.name
    );
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_apply_run_by_name_ps_status_and_logs() {
    let home = Home::new();
    let s = standalone(&home.root.join("data")).await;
    login(&home, &s).await;
    home.write("greet.yaml", GREET);

    let out = home.run(&["apply", "-f", "greet.yaml"]).await;
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("default/client_greet v1"),
        "{}",
        stdout(&out)
    );

    let out = home
        .run(&["run", "client_greet", "--param", "who=tester", "--wait"])
        .await;
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("workflow state: SUCCESS"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("hello"), "the summary lists the task");

    let out = home.run(&["ps"]).await;
    assert!(out.status.success());
    let table = stdout(&out);
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.contains("RUN") && header.contains("DURATION"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.contains("default/client_greet") && l.contains("SUCCESS")),
        "{table}"
    );

    let out = home.run(&["--output", "json", "ps"]).await;
    assert!(out.status.success());
    let runs: Vec<WorkflowInstanceRow> =
        serde_json::from_slice(&out.stdout).expect("ps --output json is the runs as JSON");
    let run = runs
        .iter()
        .find(|r| r.name == "client_greet")
        .expect("ps lists the run");
    assert_eq!(run.state, WorkflowState::Success);
    assert_eq!(run.params.get("who").map(String::as_str), Some("tester"));
    let id = run.id.to_string();
    // Filters and --limit of `orca ps`.
    let ps_json = |args: &'static [&'static str]| {
        let home = &home;
        async move {
            let mut all = vec!["--output", "json", "ps"];
            all.extend_from_slice(args);
            let out = home.run(&all).await;
            assert!(out.status.success(), "{}", stderr(&out));
            let runs: Vec<WorkflowInstanceRow> = serde_json::from_slice(&out.stdout).unwrap();
            runs.iter().map(|r| r.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        ps_json(&["--state", "success", "--workflow", "client_greet"]).await,
        [run.id]
    );
    assert_eq!(ps_json(&["--project", "default", "-n", "1"]).await.len(), 1);
    assert!(ps_json(&["--state", "failure"]).await.is_empty());

    let out = home.run(&["status", &id, "-o", "json"]).await;
    assert!(out.status.success());
    let detail: RunDetail = serde_json::from_slice(&out.stdout).expect("status as JSON");
    assert_eq!(detail.instance.id, run.id);
    let attempt = detail
        .tasks
        .iter()
        .find(|t| t.task_name == "hello")
        .expect("task");

    // `$ENV{}` was expanded by `orca apply`, the parameter by the run.
    let out = home.run(&["logs", &id, "hello"]).await;
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("hello tester from-the-client-env"),
        "{}",
        stdout(&out)
    );
    // The one-number form reads one attempt, as before.
    let out = home.run(&["logs", &attempt.id.to_string()]).await;
    assert!(stdout(&out).contains("hello tester from-the-client-env"));
    // Following a finished attempt prints its log and ends.
    let out = home.run(&["logs", &id, "hello", "-f"]).await;
    assert!(out.status.success());
    assert!(stdout(&out).contains("hello tester from-the-client-env"));

    let out = home.run(&["logs", &id, "nosuch"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("its tasks so far: hello"),
        "{}",
        stderr(&out)
    );

    // The server may or may not list workers; either way the user is told.
    let out = home.run(&["workers"]).await;
    if !out.status.success() {
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).contains("does not offer a worker list"),
            "{}",
            stderr(&out)
        );
    }
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_prints_output_as_it_comes_until_the_attempt_ends() {
    let home = Home::new();
    let s = standalone(&home.root.join("data")).await;
    login(&home, &s).await;
    let gate = home.work().join("gate");
    home.write(
        "slow.yaml",
        &format!(
            r#"
workflow:
  name: slow
tasks:
  - name: waits
    task_type: Shell
    command: |
      echo "first line"
      while [ ! -e '{}' ]; do sleep 0.05; done
      echo "second line"
"#,
            gate.display()
        ),
    );
    assert!(
        home.run(&["apply", "-f", "slow.yaml"])
            .await
            .status
            .success()
    );
    let out = home.run(&["run", "default/slow"]).await;
    assert!(out.status.success(), "run without --wait returns at once");
    let run: i64 = stdout(&out)
        .split_whitespace()
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("`run N of …` expected: {}", stdout(&out)));

    // Wait (with a deadline) for the attempt to exist.
    let client = Client::new(&s.url, &s.token);
    let deadline = Instant::now() + DEADLINE;
    while client.run(run).await.expect("read run").tasks.is_empty() {
        assert!(Instant::now() < deadline, "the task never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut child = home
        .orca(&["logs", &run.to_string(), "waits", "-f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("orca logs -f starts");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let first = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .expect("the first line arrives while the task runs")
        .expect("read stdout");
    assert_eq!(first.as_deref(), Some("first line"));
    let d = client.run(run).await.expect("read run");
    assert_eq!(d.tasks[0].state, TaskState::Running, "it is still running");
    std::fs::write(&gate, "").expect("open the gate");
    let second = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .expect("the second line arrives")
        .expect("read stdout");
    assert_eq!(second.as_deref(), Some("second line"));
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("-f ends when the attempt ends")
        .expect("wait for orca logs");
    assert!(status.success());
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_or_no_server_is_a_clear_error_with_exit_code_2() {
    let home = Home::new();
    let s = standalone(&home.root.join("data")).await;
    let out = home
        .run(&[
            "ps",
            "--server",
            &s.url,
            "--token",
            "orca_pat_not-a-real-token",
        ])
        .await;
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("rejected the API token"), "{err}");
    assert!(err.contains("orca login --server"), "{err}");

    // Nothing configured: the user is told how to configure a server.
    let out = home.run(&["run", "client_greet"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("orca login --server URL"),
        "{}",
        stderr(&out)
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_of_a_file_still_uses_an_ephemeral_standalone() {
    let home = Home::new();
    home.write("greet.yaml", GREET);
    let out = home
        .run(&["run", "greet.yaml", "--param", "who=file"])
        .await;
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("workflow state: SUCCESS"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("finished: SUCCESS"),
        "{}",
        stderr(&out)
    );
    assert!(!home.config_file().exists(), "no server, no config written");
}

/// `orca schedule set|show|preview|delete`, `versions`, `diff`,
/// `online`/`offline`, as tables and as JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_versions_diff_and_release_verbs() {
    let home = Home::new();
    let s = standalone(&home.root.join("data")).await;
    let server = ["--server", s.url.as_str(), "--token", s.token.as_str()];
    let orca = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(server);
        all.iter().map(|a| a.to_string()).collect::<Vec<String>>()
    };
    let run = |args: Vec<String>| {
        let home = &home;
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            home.run(&refs).await
        }
    };
    let v1 = "workflow: {name: nightly}\ntasks:\n  - {name: extract, task_type: Shell, command: \"echo one\"}\n";
    let v2 = "workflow: {name: nightly}\ntasks:\n  - {name: extract, task_type: Shell, command: \"echo two\"}\n  - {name: load, task_type: Shell, command: \"true\", deps: [extract]}\n";
    for yaml in [v1, v2] {
        home.write("nightly.yaml", yaml);
        let out = run(orca(&["apply", "-f", "nightly.yaml"])).await;
        assert!(out.status.success(), "{}", stderr(&out));
    }

    // Schedules.
    let out = run(orca(&[
        "schedule",
        "set",
        "nightly",
        "--cron",
        "0 30 2 * * ? *",
        "--timezone",
        "Europe/Paris",
        "--start",
        "2020-01-01T00:00:00Z",
        "--param",
        "day=monday",
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    for want in [
        "default/nightly",
        "0 30 2 * * ? *",
        "Europe/Paris",
        "ENABLED    yes",
        "2020-01-01T00:00:00+00:00",
        "day=monday",
    ] {
        assert!(table.contains(want), "{want:?} in:\n{table}");
    }
    let out = run(orca(&["-o", "json", "schedule", "show", "default/nightly"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let row: orca_store::ScheduleRow =
        serde_json::from_slice(&out.stdout).expect("schedule show -o json is the schedule");
    assert_eq!(
        (row.cron.as_str(), row.timezone.as_str(), row.enabled),
        ("0 30 2 * * ? *", "Europe/Paris", true)
    );
    let out = run(orca(&["schedule", "preview", "nightly", "--count", "3"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("next fire times of default/nightly (0 30 2 * * ? * in Europe/Paris):"),
        "{text}"
    );
    let times: Vec<&str> = text.lines().skip(1).map(str::trim).collect();
    assert_eq!(times.len(), 3, "{text}");
    for t in &times {
        let t = chrono::DateTime::parse_from_rfc3339(t).expect("RFC 3339 times");
        // 02:30 in Paris is 00:30 or 01:30 UTC.
        let utc = t.with_timezone(&chrono::Utc).format("%H:%M:%S").to_string();
        assert!(["00:30:00", "01:30:00"].contains(&utc.as_str()), "{t}");
    }
    let out = run(orca(&[
        "-o", "json", "schedule", "preview", "nightly", "-n", "2",
    ]))
    .await;
    let preview: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON preview");
    assert_eq!(preview["next_fire_times"].as_array().map(Vec::len), Some(2));
    let out = run(orca(&["schedule", "set", "nightly", "--cron", "every day"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cron"), "{}", stderr(&out));
    let out = run(orca(&["schedule", "delete", "nightly"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("default/nightly has no schedule now"));
    let out = run(orca(&["schedule", "show", "nightly"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("404"), "{}", stderr(&out));

    // Versions and their diff.
    let out = run(orca(&["versions", "nightly"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(
        table.starts_with("default/nightly: current v2, online"),
        "{table}"
    );
    let rows: Vec<&str> = table.lines().skip(2).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows[0].trim_start().starts_with('1') && rows[0].trim_end().ends_with('1'));
    assert!(
        rows[1].starts_with('*') && rows[1].trim_end().ends_with('2'),
        "{table}"
    );
    let out = run(orca(&["-o", "json", "versions", "nightly"])).await;
    let versions: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON versions");
    assert_eq!(versions["current_version"], 2);
    let out = run(orca(&["diff", "nightly", "1", "2"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for want in [
        "default/nightly: v1 -> v2",
        "tasks added:    load",
        "tasks removed:  -",
        "extract.script: \"echo one\" -> \"echo two\"",
        "+  - {name: load",
    ] {
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }
    let out = run(orca(&["-o", "json", "diff", "nightly", "1", "2"])).await;
    let diff: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON diff");
    assert_eq!(diff["tasks_added"], serde_json::json!(["load"]));
    let out = run(orca(&["diff", "nightly", "1", "9"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nightly@9"), "{}", stderr(&out));

    // Offline refuses runs; online again.
    let out = run(orca(&["offline", "nightly"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "default/nightly is offline");
    let out = run(orca(&["run", "nightly"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("offline"), "{}", stderr(&out));
    let out = run(orca(&["-o", "json", "online", "nightly"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON state");
    assert_eq!(state["release_state"], "online");
    let out = run(orca(&["versions", "nope/nightly"])).await;
    assert_eq!(out.status.code(), Some(2));

    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_takes_its_log_store_from_config_env_and_set() {
    use tokio::io::AsyncBufReadExt;
    let home = Home::new();
    let data = home.root.join("data");
    let data = data.to_str().unwrap();
    // A bad kind in a file, and an s3 store without a bucket: refused,
    // naming the key.
    let bad = home.write("bad.toml", "[log_store]\nkind = \"dirr\"\n");
    let out = home
        .run(&[
            "standalone",
            "--data-dir",
            data,
            "--http",
            "127.0.0.1:0",
            "--config",
            bad.to_str().unwrap(),
        ])
        .await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("log_store.kind"), "{}", stderr(&out));
    let out = home
        .run(&[
            "standalone",
            "--data-dir",
            data,
            "--http",
            "127.0.0.1:0",
            "--set",
            "log_store.kind=s3",
        ])
        .await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("log_store.s3_bucket"),
        "{}",
        stderr(&out)
    );
    // A directory store from --set: the standalone says where logs go.
    let logs = home.root.join("logs");
    let mut child = home
        .orca(&[
            "standalone",
            "--data-dir",
            data,
            "--http",
            "127.0.0.1:0",
            "--set",
            "log_store.kind=dir",
            "--set",
            &format!("log_store.dir={}", logs.display()),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            if l.contains("task logs") {
                return l;
            }
        }
        panic!("the standalone ended without saying where task logs go");
    })
    .await
    .expect("the standalone starts within a minute");
    assert!(line.trim_end().ends_with("dir"), "{line}");
    child.kill().await.unwrap();
}
