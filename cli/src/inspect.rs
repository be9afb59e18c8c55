//! Read-only client verbs: `ps`, `status`, `workers`, `logs`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Local, Utc};
use orca_store::{TaskInstanceRow, WorkflowInstanceRow};

use crate::args::{LogsArgs, Output, PsArgs, StatusArgs, WorkersArgs};
use crate::client::{Client, RunsFilter};
use crate::run::print_summary;

/// How often `orca logs -f` asks for new output.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// `orca ps`: the newest runs, newest first.
pub async fn ps(args: PsArgs, output: Output) -> anyhow::Result<ExitCode> {
    let client = Client::from_args(&args.server)?;
    let filter = RunsFilter {
        state: args.state,
        project: args.project,
        workflow: args.workflow,
    };
    let mut runs = client.list_runs(&filter, args.limit).await?;
    runs.sort_by(|a, b| b.start_time.cmp(&a.start_time).then(b.id.cmp(&a.id)));
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&runs)?),
        Output::Table => print!("{}", runs_table(&runs, Utc::now())),
    }
    Ok(ExitCode::SUCCESS)
}

/// The `orca ps` table; a run still going is timed up to `now`.
pub fn runs_table(runs: &[WorkflowInstanceRow], now: DateTime<Utc>) -> String {
    let mut out = format!(
        "{:>6}  {:<32} {:>4}  {:<18} {:<19} {:>9}\n",
        "RUN", "WORKFLOW", "VER", "STATE", "STARTED", "DURATION"
    );
    for r in runs {
        let end = r.end_time.unwrap_or(now);
        out.push_str(&format!(
            "{:>6}  {:<32} {:>4}  {:<18} {:<19} {:>9}\n",
            r.id,
            format!("{}/{}", r.project, r.name),
            r.version,
            r.state.as_str(),
            r.start_time
                .with_timezone(&Local)
                .format("%Y-%m-%d %H:%M:%S"),
            human_duration(end - r.start_time),
        ));
    }
    out
}

/// `4.2s`, `3m07s`, `2h05m`.
pub fn human_duration(d: chrono::TimeDelta) -> String {
    let ms = d.num_milliseconds().max(0);
    let s = ms / 1000;
    match s {
        0..60 => format!("{:.1}s", ms as f64 / 1000.0),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// `orca status RUN`.
pub async fn status(args: StatusArgs, output: Output) -> anyhow::Result<ExitCode> {
    let client = Client::from_args(&args.server)?;
    let detail = client.run(args.run).await?;
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&detail)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "run {} of {}/{} v{}: {}",
        detail.instance.id,
        detail.instance.project,
        detail.instance.name,
        detail.instance.version,
        detail.instance.state
    );
    print_summary(&detail);
    Ok(ExitCode::SUCCESS)
}

/// `orca workers`, when the server offers `GET /workers`.
pub async fn workers(args: WorkersArgs, output: Output) -> anyhow::Result<ExitCode> {
    let client = Client::from_args(&args.server)?;
    let Some(workers) = client.workers().await? else {
        bail!(
            "the server at {} does not offer a worker list (GET /api/v1/workers): upgrade the API server to use `orca workers`",
            client.server()
        );
    };
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&workers)?),
        Output::Table => print!("{}", json_table(&workers)),
    }
    Ok(ExitCode::SUCCESS)
}

/// A table of a JSON array of objects (or of the first array inside an
/// object): the columns are the keys of the first row, `id` and `name`
/// first.
pub fn json_table(v: &serde_json::Value) -> String {
    let rows = match v {
        serde_json::Value::Array(a) => a.as_slice(),
        serde_json::Value::Object(o) => match o.values().find_map(|v| v.as_array()) {
            Some(a) => a.as_slice(),
            None => std::slice::from_ref(v),
        },
        _ => return format!("{v}\n"),
    };
    let Some(serde_json::Value::Object(first)) = rows.first() else {
        return "(none)\n".into();
    };
    let mut columns: Vec<&String> = first.keys().collect();
    columns.sort_by_key(|c| match c.as_str() {
        "id" => 0,
        "name" => 1,
        _ => 2,
    });
    let cell = |row: &serde_json::Value, c: &str| match row.get(c) {
        None | Some(serde_json::Value::Null) => "-".to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x.to_string())
            })
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    };
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|c| cell(r, c)).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let mut l = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        l.truncate(l.trim_end().len());
        l.push('\n');
        l
    };
    let mut out = line(columns.iter().map(|c| c.to_uppercase()).collect());
    for r in table {
        out.push_str(&line(r));
    }
    out
}

/// `orca logs TASK_INSTANCE` or `orca logs RUN TASK [-f]`.
pub async fn logs(args: LogsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::from_args(&args.server)?;
    let Some(task) = &args.task else {
        print!("{}", client.task_log(args.id).await?);
        return Ok(ExitCode::SUCCESS);
    };
    let run = args.id;
    let attempt = latest_attempt(&client, run, task).await?;
    if !args.follow {
        print!("{}", client.task_log(attempt.id).await?);
        return Ok(ExitCode::SUCCESS);
    }
    follow(&client, run, attempt).await?;
    Ok(ExitCode::SUCCESS)
}

/// The latest attempt of `task` in run `run`.
async fn latest_attempt(client: &Client, run: i64, task: &str) -> anyhow::Result<TaskInstanceRow> {
    let detail = client.run(run).await?;
    pick_latest(&detail.tasks, task).cloned().with_context(|| {
        let mut names: Vec<&str> = detail.tasks.iter().map(|t| t.task_name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        format!(
            "run {run} has no attempt of task {task:?} (yet); its tasks so far: {}",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )
    })
}

/// The attempt of `task` with the highest attempt number (then id).
pub fn pick_latest<'a>(tasks: &'a [TaskInstanceRow], task: &str) -> Option<&'a TaskInstanceRow> {
    tasks
        .iter()
        .filter(|t| t.task_name == task)
        .max_by_key(|t| (t.attempt, t.id))
}

/// Prints the attempt's log as it grows, until the attempt has ended and
/// its log is read to the end.
async fn follow(client: &Client, run: i64, mut attempt: TaskInstanceRow) -> anyhow::Result<()> {
    let ti = attempt.id;
    let mut offset: u64 = 0;
    let mut stdout = std::io::stdout();
    loop {
        // Read the state before the log: once it is final, this read of
        // the log is the last one needed.
        let ended = attempt.state.is_terminal();
        if attempt.worker_addr.is_some() {
            let chunk = client.task_log_from(ti, offset).await?;
            offset += chunk.len() as u64;
            stdout
                .write_all(chunk.as_bytes())
                .and_then(|()| stdout.flush())
                .context("cannot write to stdout")?;
        }
        if ended {
            eprintln!(
                "task {} attempt {} (task instance {ti}) ended: {}",
                attempt.task_name, attempt.attempt, attempt.state
            );
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
        let detail = client.run(run).await?;
        attempt = detail
            .tasks
            .into_iter()
            .find(|t| t.id == ti)
            .with_context(|| format!("task instance {ti} vanished from run {run}"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(
            human_duration(chrono::TimeDelta::milliseconds(4200)),
            "4.2s"
        );
        assert_eq!(human_duration(chrono::TimeDelta::seconds(187)), "3m07s");
        assert_eq!(human_duration(chrono::TimeDelta::seconds(7500)), "2h05m");
        assert_eq!(human_duration(chrono::TimeDelta::seconds(-3)), "0.0s");
    }

    #[test]
    fn json_table_uses_the_first_rows_keys() {
        let v = serde_json::json!([
            {"id": "w1", "addr": "http://a:1", "labels": ["gpu", "big"], "slots": 4},
            {"id": "w2", "addr": null, "labels": [], "slots": 8}
        ]);
        let t = json_table(&v);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("ID"), "{t}");
        assert!(
            lines[1].contains("gpu,big") && lines[1].contains('4'),
            "{t}"
        );
        assert!(lines[2].contains("w2") && lines[2].contains('-'), "{t}");
        assert_eq!(json_table(&serde_json::json!([])), "(none)\n");
    }
}
