//! Client verbs that act: `apply`, `run`, `validate`, `stop`, `pause`,
//! `resume`, `rerun`, `force-success`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use orca_api::routes::runs::RunDetail;
use orca_common::{TaskState, WorkflowState};

use crate::args::{
    ApplyArgs, ForceSuccessArgs, Output, RerunArgs, RunArgs, StopArgs, ValidateArgs, default_slots,
};
use crate::client::Client;
use crate::standalone::{Standalone, StandaloneOptions};

/// Parses `key=value` start parameters.
pub fn parse_params(raw: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for p in raw {
        let Some((k, v)) = p.split_once('=') else {
            bail!("--param {p:?}: expected KEY=VALUE");
        };
        let k = k.trim();
        if k.is_empty() {
            bail!("--param {p:?}: the key is empty");
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

pub fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    match orca_common::workflow::parse_workflow_file(&args.file) {
        Ok(spec) => {
            println!(
                "{}: workflow {:?} is valid ({} tasks)",
                args.file.display(),
                spec.name,
                spec.tasks.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(2))
        }
    }
}

/// True when `orca run`'s argument names a workflow file rather than an
/// applied workflow: it ends in .yaml/.yml, or is a file on disk.
pub fn is_workflow_file(target: &str) -> bool {
    let lower = target.to_ascii_lowercase();
    lower.ends_with(".yaml") || lower.ends_with(".yml") || Path::new(target).is_file()
}

/// Splits `[PROJECT/]NAME` (project `default` when absent).
pub fn split_workflow_name(target: &str) -> anyhow::Result<(String, String)> {
    let (project, name) = match target.split_once('/') {
        Some((p, n)) => (p.trim(), n.trim()),
        None => ("default", target.trim()),
    };
    if project.is_empty() || name.is_empty() || name.contains('/') {
        bail!(
            "{target:?} is neither a workflow file (.yaml/.yml) nor a workflow name `[PROJECT/]NAME`"
        );
    }
    Ok((project.to_string(), name.to_string()))
}

/// The data dir of the local standalone when none is given.
fn default_data_dir() -> PathBuf {
    std::env::var_os("ORCA_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "orca-data".into())
}

fn run_scope(scope: Option<&str>) -> Option<orca_store::RunScope> {
    match scope {
        Some("upstream") => Some(orca_store::RunScope::Upstream),
        Some("only") => Some(orca_store::RunScope::Only),
        Some(_) => Some(orca_store::RunScope::Downstream),
        None => None,
    }
}

/// `orca run FILE|[PROJECT/]NAME`.
pub async fn run_workflow(args: RunArgs, output: Output) -> anyhow::Result<ExitCode> {
    let json = args.json || output == Output::Json;
    if is_workflow_file(&args.target) {
        let file = PathBuf::from(&args.target);
        run_file(args, file, json).await
    } else {
        run_named(args, json).await
    }
}

/// `orca run [PROJECT/]NAME`: triggers an applied workflow on the server.
async fn run_named(args: RunArgs, json: bool) -> anyhow::Result<ExitCode> {
    let (project, name) = split_workflow_name(&args.target)?;
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let endpoint = crate::config::resolve(args.server.as_deref(), args.token.as_deref(), &data_dir)
        .with_context(|| {
            format!(
                "{:?} is not a file, so it names a workflow on a server",
                args.target
            )
        })?;
    let client = Client::new(&endpoint.server, &endpoint.token);
    let trigger = orca_api::routes::runs::TriggerRequest {
        params: parse_params(&args.params)?,
        version: None,
        start_tasks: args.start_tasks.clone(),
        scope: run_scope(args.scope.as_deref()),
    };
    let started = Instant::now();
    let trig = client.trigger_with(&project, &name, trigger).await?;
    let run_id = wait_for_instance(&client, trig.command_id).await?;
    if !args.wait {
        println!("run {run_id} of {project}/{name} started; `orca status {run_id}` shows it");
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("run {run_id}: workflow {project}/{name}");
    tokio::select! {
        r = watch(&client, run_id, started, json) => r,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted; run {run_id} goes on (`orca stop {run_id}` stops it)");
            Ok(ExitCode::from(130))
        }
    }
}

/// `orca run FILE`: applies and runs it, on `--server` or on an ephemeral
/// standalone, and waits.
async fn run_file(args: RunArgs, file: PathBuf, json: bool) -> anyhow::Result<ExitCode> {
    let mut spec = match orca_common::workflow::parse_workflow_file(&file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let source = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let scope = run_scope(args.scope.as_deref());
    let trigger = orca_api::routes::runs::TriggerRequest {
        params: parse_params(&args.params)?,
        version: None,
        start_tasks: args.start_tasks.clone(),
        scope,
    };

    let mut _tmp = None;
    let (client, standalone) = match (&args.server, &args.token) {
        (Some(url), Some(token)) => (Client::new(url, token), None),
        (Some(url), None) => {
            let e = crate::config::resolve(Some(url), None, &default_data_dir())
                .context("--server needs a token: pass --token (or ORCA_TOKEN)")?;
            (Client::new(url, &e.token), None)
        }
        _ => {
            let data_dir = match &args.data_dir {
                Some(d) => d.clone(),
                None => {
                    let t = tempfile::Builder::new()
                        .prefix("orca-run-")
                        .tempdir()
                        .context("cannot create a temporary data dir")?;
                    let p = t.path().to_path_buf();
                    _tmp = Some(t);
                    p
                }
            };
            let s = Standalone::start(StandaloneOptions {
                data_dir,
                http: SocketAddr::from(([127, 0, 0, 1], 0)),
                worker_slots: default_slots(),
                python: args.python.clone(),
            })
            .await?;
            // One run, now: an ephemeral standalone does not keep the
            // file's cron schedule (a server does, when the file is applied).
            spec.schedule = None;
            (Client::new(&s.url, &s.token), Some(s))
        }
    };
    let outcome = tokio::select! {
        r = drive(&client, &spec, &source, trigger, json) => r,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted");
            Ok(ExitCode::from(130))
        }
    };
    if let Some(s) = standalone {
        s.shutdown().await;
    }
    outcome
}

async fn drive(
    client: &Client,
    spec: &orca_common::WorkflowSpec,
    source: &str,
    trigger: orca_api::routes::runs::TriggerRequest,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let wf = client.apply(spec, source).await?;
    let trig = client.trigger_with(&wf.project, &wf.name, trigger).await?;
    let run_id = wait_for_instance(client, trig.command_id).await?;
    eprintln!(
        "run {run_id}: workflow {}/{} v{} ({} tasks)",
        wf.project, wf.name, wf.version, wf.tasks
    );
    watch(client, run_id, started, json).await
}

/// Follows run `run_id` to its end, printing task progress; then its
/// summary. Exit code 0 only on SUCCESS.
async fn watch(
    client: &Client,
    run_id: i64,
    started: Instant,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut seen: HashMap<(i64, String), ()> = HashMap::new();
    let mut delay = Duration::from_millis(20);
    // The server may restart while we watch (it resumes the run): keep
    // trying for a while instead of giving up on the first refused connection.
    const UNREACHABLE_FOR: Duration = Duration::from_secs(120);
    let mut last_ok = Instant::now();
    let mut warned = false;
    let detail = loop {
        let detail = match client.run(run_id).await {
            Ok(d) => {
                last_ok = Instant::now();
                warned = false;
                d
            }
            Err(e) if is_unreachable(&e) && last_ok.elapsed() < UNREACHABLE_FOR => {
                if !warned {
                    eprintln!("server unreachable ({e:#}); still waiting for run {run_id}…");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        for t in &detail.tasks {
            let key = (t.id, t.state.as_str().to_string());
            if seen.insert(key, ()).is_none() {
                print_progress(started, t);
            }
        }
        if detail.instance.state.is_terminal() {
            break detail;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(250));
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&detail)?);
    } else {
        print_summary(&detail);
        print_failed_logs(client, &detail).await;
    }
    eprintln!(
        "run {run_id} finished: {} in {:.2}s",
        detail.instance.state,
        started.elapsed().as_secs_f64()
    );
    Ok(if detail.instance.state == WorkflowState::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// True for errors that mean "the server did not answer" (worth retrying).
fn is_unreachable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<reqwest::Error>()
            .is_some_and(|r| r.is_connect() || r.is_timeout() || r.is_request())
    })
}

pub async fn wait_for_instance(client: &Client, command_id: i64) -> anyhow::Result<i64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut delay = Duration::from_millis(5);
    loop {
        if let Some(id) = client.command(command_id).await?.workflow_instance_id {
            return Ok(id);
        }
        if Instant::now() > deadline {
            bail!(
                "command {command_id} was not picked up by a master within 60 s — is a master running?"
            );
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}

fn print_progress(started: Instant, t: &orca_store::TaskInstanceRow) {
    let dur = match (t.start_time, t.end_time) {
        (Some(s), Some(e)) => format!(" in {:.3}s", (e - s).num_milliseconds() as f64 / 1000.0),
        _ => String::new(),
    };
    let extra = match (&t.message, t.failover) {
        (Some(m), _) if !m.is_empty() && t.state != TaskState::Running => format!(" — {m}"),
        (_, true) => " (failover)".into(),
        _ => String::new(),
    };
    // Formatted first: stderr is unbuffered, and a formatted eprintln!
    // writes each piece with its own syscall.
    let line = format!(
        "[{:>7.2}s] {:<24} attempt {} {}{}{}\n",
        started.elapsed().as_secs_f64(),
        t.task_name,
        t.attempt,
        t.state,
        dur,
        extra
    );
    eprint!("{line}");
}

/// The last attempt of each task.
pub fn last_attempts(detail: &RunDetail) -> Vec<&orca_store::TaskInstanceRow> {
    let mut last: BTreeMap<&str, &orca_store::TaskInstanceRow> = BTreeMap::new();
    for t in &detail.tasks {
        let e = last.entry(&t.task_name).or_insert(t);
        if t.attempt >= e.attempt {
            *e = t;
        }
    }
    last.into_values().collect()
}

/// One line per task: its last attempt.
pub fn print_summary(detail: &RunDetail) {
    let mut rows = last_attempts(detail);
    rows.sort_by_key(|t| t.id);
    println!(
        "{:<24} {:>8} {:<16} {:>10} {:>6}  TASK INSTANCE",
        "TASK", "ATTEMPTS", "STATE", "DURATION", "EXIT"
    );
    for t in rows {
        let dur = match (t.start_time, t.end_time) {
            (Some(s), Some(e)) => format!("{:.3}s", (e - s).num_milliseconds() as f64 / 1000.0),
            _ => "-".into(),
        };
        let exit = t
            .exit_code
            .map(|c| c.to_string())
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<24} {:>8} {:<16} {:>10} {:>6}  {}",
            t.task_name,
            t.attempt,
            t.state.as_str(),
            dur,
            exit,
            t.id
        );
    }
    println!("workflow state: {}", detail.instance.state);
}

/// Prints the log tail of each task whose last attempt failed.
async fn print_failed_logs(client: &Client, detail: &RunDetail) {
    for t in last_attempts(detail) {
        if !matches!(t.state, TaskState::Failure | TaskState::Timeout) || t.worker_addr.is_none() {
            continue;
        }
        if let Ok(log) = client.task_log(t.id).await {
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(20)..];
            eprintln!(
                "--- last lines of {} attempt {} (task instance {}) ---",
                t.task_name, t.attempt, t.id
            );
            for l in tail {
                eprintln!("{l}");
            }
        }
    }
}

/// `orca apply -f FILE`: creates the workflow on the server, or a new
/// version of it.
pub async fn apply(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let spec = match orca_common::workflow::parse_workflow_file(&args.file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let source = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let client = Client::from_args(&args.server)?;
    let wf = client.apply(&spec, &source).await?;
    println!(
        "workflow {}/{} v{} applied ({} tasks); `orca run {}/{}` runs it",
        wf.project, wf.name, wf.version, wf.tasks, wf.project, wf.name
    );
    Ok(ExitCode::SUCCESS)
}

/// stop | pause | resume | recover-failed on a run.
pub async fn run_op(args: StopArgs, op: &str) -> anyhow::Result<ExitCode> {
    let client = Client::from_args(&args.server)?;
    let cmd = client.run_op(args.run, op).await?;
    println!(
        "{op} of run {} requested (command {}); `orca status {}` shows its state",
        args.run, cmd.id, args.run
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn rerun(args: RerunArgs) -> anyhow::Result<ExitCode> {
    let client = Client::from_args(&args.server)?;
    if args.failed {
        let cmd = client.run_op(args.run, "recover-failed").await?;
        println!(
            "the failed tasks of run {} run again (command {}); `orca status {}` follows it",
            args.run, cmd.id, args.run
        );
    } else {
        let t = client.rerun(args.run).await?;
        let id = wait_for_instance(&client, t.command_id).await?;
        println!("run {id} started as a rerun of run {}", args.run);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn force_success(args: ForceSuccessArgs) -> anyhow::Result<ExitCode> {
    let client = Client::from_args(&args.server)?;
    let cmd = client.force_success(args.run, &args.task).await?;
    println!(
        "task {} of run {} is forced to SUCCESS (command {}); `orca rerun {} --failed` continues the run",
        args.task, args.run, cmd.id, args.run
    );
    Ok(ExitCode::SUCCESS)
}
