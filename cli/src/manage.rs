//! Workflow management verbs over the REST API: `schedule set|show|preview|
//! delete`, `versions`, `diff`, `online`, `offline`.

use std::process::ExitCode;

use anyhow::bail;
use chrono::{DateTime, Utc};
use orca_api::routes::lifecycle::{WorkflowDiff, WorkflowVersions};
use orca_api::routes::schedules::{SchedulePreview, ScheduleRequest};
use orca_store::ScheduleRow;

use crate::args::{DiffArgs, Output, ScheduleCommand, WorkflowArgs};
use crate::client::Client;

/// `(project, name)` of `[PROJECT/]NAME`, the project defaulting to
/// `--project`.
pub fn workflow_ref(args: &WorkflowArgs) -> anyhow::Result<(String, String)> {
    let (project, name) = match args.workflow.split_once('/') {
        Some((p, n)) => (p.to_string(), n.to_string()),
        None => (args.project.clone(), args.workflow.clone()),
    };
    if project.is_empty() || name.is_empty() || name.contains('/') {
        bail!(
            "{:?} is not a workflow: give NAME (with --project) or PROJECT/NAME",
            args.workflow
        );
    }
    Ok((project, name))
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into())
}

/// `orca schedule …`.
pub async fn schedule(cmd: ScheduleCommand, output: Output) -> anyhow::Result<ExitCode> {
    match cmd {
        ScheduleCommand::Set(a) => {
            let client = Client::from_args(&a.workflow.server)?;
            let (project, name) = workflow_ref(&a.workflow)?;
            let mut params = std::collections::BTreeMap::new();
            for p in &a.params {
                let Some((k, v)) = p.split_once('=') else {
                    bail!("--param {p:?}: use KEY=VALUE");
                };
                params.insert(k.trim().to_string(), v.to_string());
            }
            let body = ScheduleRequest {
                cron: a.cron,
                timezone: a.timezone,
                start_time: a.start,
                end_time: a.end,
                enabled: !a.disabled,
                params,
            };
            let row = client.put_schedule(&project, &name, &body).await?;
            match output {
                Output::Json => print_json(&row)?,
                Output::Table => print!("{}", schedule_table(&project, &name, &row)),
            }
        }
        ScheduleCommand::Show(a) => {
            let client = Client::from_args(&a.server)?;
            let (project, name) = workflow_ref(&a)?;
            let row = client.schedule(&project, &name).await?;
            match output {
                Output::Json => print_json(&row)?,
                Output::Table => print!("{}", schedule_table(&project, &name, &row)),
            }
        }
        ScheduleCommand::Preview(a) => {
            let client = Client::from_args(&a.workflow.server)?;
            let (project, name) = workflow_ref(&a.workflow)?;
            let p = client.preview_schedule(&project, &name, a.count).await?;
            match output {
                Output::Json => print_json(&p)?,
                Output::Table => print!("{}", preview_table(&project, &name, &p)),
            }
        }
        ScheduleCommand::Delete(a) => {
            let client = Client::from_args(&a.server)?;
            let (project, name) = workflow_ref(&a)?;
            client.delete_schedule(&project, &name).await?;
            match output {
                Output::Json => print_json(&serde_json::json!({
                    "project": project, "name": name, "schedule": null
                }))?,
                Output::Table => println!("{project}/{name} has no schedule now"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A schedule, one field a line.
pub fn schedule_table(project: &str, name: &str, s: &ScheduleRow) -> String {
    let params = if s.params.is_empty() {
        "-".to_string()
    } else {
        s.params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let rows = [
        ("WORKFLOW", format!("{project}/{name}")),
        ("CRON", s.cron.clone()),
        ("TIMEZONE", s.timezone.clone()),
        ("ENABLED", if s.enabled { "yes" } else { "no" }.to_string()),
        ("START", time(s.start_time)),
        ("END", time(s.end_time)),
        ("PARAMS", params),
        ("LAST FIRE", time(s.last_fire_time)),
        ("UPDATED", s.updated_at.to_rfc3339()),
    ];
    rows.iter().map(|(k, v)| format!("{k:<10} {v}\n")).collect()
}

/// The next fire times, one a line.
pub fn preview_table(project: &str, name: &str, p: &SchedulePreview) -> String {
    let mut out = format!(
        "next fire times of {project}/{name} ({} in {}):\n",
        p.cron, p.timezone
    );
    if p.next_fire_times.is_empty() {
        out.push_str("  (none: the schedule's window is over)\n");
    }
    for t in &p.next_fire_times {
        out.push_str(&format!("  {}\n", t.to_rfc3339()));
    }
    out
}

/// `orca versions WORKFLOW`.
pub async fn versions(a: WorkflowArgs, output: Output) -> anyhow::Result<ExitCode> {
    let client = Client::from_args(&a.server)?;
    let (project, name) = workflow_ref(&a)?;
    let v = client.versions(&project, &name).await?;
    match output {
        Output::Json => print_json(&v)?,
        Output::Table => print!("{}", versions_table(&v)),
    }
    Ok(ExitCode::SUCCESS)
}

/// The versions of a workflow, the current one marked `*`.
pub fn versions_table(v: &WorkflowVersions) -> String {
    let mut out = format!(
        "{}/{}: current v{}, {}\n{:>5}  {:<25} {:>5}\n",
        v.project,
        v.name,
        v.current_version,
        v.release_state.as_str(),
        "VER",
        "CREATED",
        "TASKS"
    );
    for i in &v.versions {
        let mark = if i.version == v.current_version {
            "*"
        } else {
            " "
        };
        out.push_str(&format!(
            "{mark}{:>4}  {:<25} {:>5}\n",
            i.version,
            i.created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            i.tasks
        ));
    }
    out
}

/// `orca diff WORKFLOW FROM TO`.
pub async fn diff(a: DiffArgs, output: Output) -> anyhow::Result<ExitCode> {
    let client = Client::from_args(&a.workflow.server)?;
    let (project, name) = workflow_ref(&a.workflow)?;
    let d = client.diff(&project, &name, a.from, a.to).await?;
    match output {
        Output::Json => print_json(&d)?,
        Output::Table => print!("{}", diff_text(&d)),
    }
    Ok(ExitCode::SUCCESS)
}

/// A diff for people: what changed in tasks and workflow fields, then the
/// unified diff of the sources.
pub fn diff_text(d: &WorkflowDiff) -> String {
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    let mut out = format!("{}/{}: v{} -> v{}\n", d.project, d.name, d.from, d.to);
    out.push_str(&format!("tasks added:    {}\n", list(&d.tasks_added)));
    out.push_str(&format!("tasks removed:  {}\n", list(&d.tasks_removed)));
    if d.tasks_changed.is_empty() {
        out.push_str("tasks changed:  -\n");
    } else {
        out.push_str("tasks changed:\n");
        for t in &d.tasks_changed {
            for f in &t.fields {
                out.push_str(&format!(
                    "  {}.{}: {} -> {}\n",
                    t.task, f.field, f.old, f.new
                ));
            }
        }
    }
    for f in &d.workflow_changes {
        out.push_str(&format!("workflow {}: {} -> {}\n", f.field, f.old, f.new));
    }
    if !d.source_diff.is_empty() {
        out.push('\n');
        out.push_str(&d.source_diff);
        if !d.source_diff.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// `orca online|offline WORKFLOW`.
pub async fn release(a: WorkflowArgs, online: bool, output: Output) -> anyhow::Result<ExitCode> {
    let client = Client::from_args(&a.server)?;
    let (project, name) = workflow_ref(&a)?;
    let r = client.set_online(&project, &name, online).await?;
    match output {
        Output::Json => print_json(&r)?,
        Output::Table => println!("{}/{} is {}", r.project, r.name, r.release_state.as_str()),
    }
    Ok(ExitCode::SUCCESS)
}
