//! HTTP client of the Orca API.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use orca_api::routes::runs::{RunDetail, TriggerRequest, TriggerResponse};
use orca_api::routes::workflows::{ApplyRequest, WorkflowSummary};
use orca_common::WorkflowSpec;
use orca_store::CommandRow;
use serde::{Deserialize, Serialize};

use crate::args::ServerArgs;

/// What a standalone server leaves in its data dir for the local CLI (mode 0600).
#[derive(Debug, Serialize, Deserialize)]
pub struct CliCredentials {
    pub url: String,
    pub token: String,
}

pub const CREDENTIALS_FILE: &str = "cli.json";

pub fn read_credentials(data_dir: &Path) -> anyhow::Result<CliCredentials> {
    let path = data_dir.join(CREDENTIALS_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} — start `orca standalone --data-dir {}` first, or pass --server and --token",
            path.display(),
            data_dir.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    pub fn new(url: &str, token: &str) -> Self {
        Client {
            http: reqwest::Client::new(),
            base: format!("{}/api/v1", url.trim_end_matches('/')),
            token: token.to_string(),
        }
    }

    pub fn from_args(args: &ServerArgs) -> anyhow::Result<Self> {
        match (&args.server, &args.token) {
            (Some(url), Some(token)) => Ok(Client::new(url, token)),
            (url, token) => {
                let creds = read_credentials(&args.data_dir)?;
                Ok(Client::new(
                    url.as_deref().unwrap_or(&creds.url),
                    token.as_deref().unwrap_or(&creds.token),
                ))
            }
        }
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> anyhow::Result<T> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("{what}: cannot reach the Orca API at {}", self.base))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            let detail = serde_json::from_str::<orca_api::error::Problem>(&body)
                .map(|p| format!("{} ({})", p.detail, p.code))
                .unwrap_or(body);
            bail!("{what}: {status}: {detail}");
        }
        resp.json::<T>()
            .await
            .with_context(|| format!("{what}: unexpected response"))
    }

    pub async fn apply(
        &self,
        spec: &WorkflowSpec,
        source: &str,
    ) -> anyhow::Result<WorkflowSummary> {
        let body = ApplyRequest {
            spec: spec.clone(),
            source: source.to_string(),
        };
        self.send(
            self.http
                .post(format!("{}/workflows", self.base))
                .json(&body),
            "apply workflow",
        )
        .await
    }

    pub async fn trigger(
        &self,
        project: &str,
        name: &str,
        params: BTreeMap<String, String>,
    ) -> anyhow::Result<TriggerResponse> {
        self.trigger_with(
            project,
            name,
            TriggerRequest {
                params,
                ..Default::default()
            },
        )
        .await
    }

    /// Triggers a run with every option (version, start tasks and scope).
    pub async fn trigger_with(
        &self,
        project: &str,
        name: &str,
        body: TriggerRequest,
    ) -> anyhow::Result<TriggerResponse> {
        let url = format!(
            "{}/workflows/{}/{}/runs",
            self.base,
            enc(project),
            enc(name)
        );
        self.send(self.http.post(url).json(&body), "trigger run")
            .await
    }

    pub async fn command(&self, id: i64) -> anyhow::Result<CommandRow> {
        self.send(
            self.http.get(format!("{}/commands/{id}", self.base)),
            "read command",
        )
        .await
    }

    pub async fn run(&self, id: i64) -> anyhow::Result<RunDetail> {
        self.send(
            self.http.get(format!("{}/runs/{id}", self.base)),
            "read run",
        )
        .await
    }

    pub async fn stop(&self, run: i64) -> anyhow::Result<CommandRow> {
        self.run_op(run, "stop").await
    }

    /// `POST /runs/{run}/{op}` for op = stop, pause, resume, recover-failed.
    pub async fn run_op(&self, run: i64, op: &str) -> anyhow::Result<CommandRow> {
        self.send(
            self.http.post(format!("{}/runs/{run}/{op}", self.base)),
            &format!("{op} run {run}"),
        )
        .await
    }

    pub async fn force_success(&self, run: i64, task: &str) -> anyhow::Result<CommandRow> {
        let url = format!("{}/runs/{run}/tasks/{}/force-success", self.base, enc(task));
        self.send(self.http.post(url), "force success").await
    }

    pub async fn rerun(&self, run: i64) -> anyhow::Result<TriggerResponse> {
        self.send(
            self.http.post(format!("{}/runs/{run}/rerun", self.base)),
            "rerun",
        )
        .await
    }

    pub async fn task_log(&self, ti: i64) -> anyhow::Result<String> {
        let resp = self
            .http
            .get(format!("{}/task-instances/{ti}/log", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .context("read log: cannot reach the Orca API")?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            let detail = serde_json::from_str::<orca_api::error::Problem>(&body)
                .map(|p| p.detail)
                .unwrap_or(body);
            bail!("read log of task instance {ti}: {status}: {detail}");
        }
        Ok(body)
    }
}

/// Percent-encodes a path segment.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
