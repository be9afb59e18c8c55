//! HTTP client of the Orca API.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use orca_api::routes::auth::{LoginRequest, LoginResponse, MeResponse};
use orca_api::routes::runs::{RunDetail, TriggerRequest, TriggerResponse};
use orca_api::routes::tokens::{CreateTokenRequest, CreatedToken};
use orca_api::routes::workflows::{ApplyRequest, WorkflowSummary};
use orca_common::WorkflowSpec;
use orca_store::{CommandRow, WorkflowInstanceRow};
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

    /// A client of the server the config, `cli.json`, env and flags name
    /// (see [`crate::config`]).
    pub fn from_args(args: &ServerArgs) -> anyhow::Result<Self> {
        let e = crate::config::resolve(
            args.server.as_deref(),
            args.token.as_deref(),
            &args.data_dir,
        )?;
        Ok(Client::new(&e.server, &e.token))
    }

    /// The server's base URL (without `/api/v1`).
    pub fn server(&self) -> &str {
        self.base.trim_end_matches("/api/v1")
    }

    /// Adds the token, unless there is none (login).
    fn authed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if self.token.is_empty() {
            req
        } else {
            req.bearer_auth(&self.token)
        }
    }

    /// Sends the request; an error response becomes an error that says what
    /// failed (and, for a rejected token, how to get a valid one).
    async fn send_raw(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> anyhow::Result<reqwest::Response> {
        let resp = self
            .authed(req)
            .send()
            .await
            .with_context(|| format!("{what}: cannot reach the Orca API at {}", self.base))?;
        self.check(resp, what).await
    }

    /// `resp` if it is a success, else an error saying what failed.
    async fn check(
        &self,
        resp: reqwest::Response,
        what: &str,
    ) -> anyhow::Result<reqwest::Response> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.text().await.unwrap_or_default();
        let problem = serde_json::from_str::<orca_api::error::Problem>(&body).ok();
        if status == reqwest::StatusCode::NOT_FOUND && problem.is_none() {
            bail!(
                "{what}: this server ({}) does not offer this endpoint — it is older than this CLI",
                self.server()
            );
        }
        let detail = problem
            .map(|p| format!("{} ({})", p.detail, p.code))
            .unwrap_or(body);
        if status == reqwest::StatusCode::UNAUTHORIZED && !self.token.is_empty() {
            bail!(
                "{what}: {status}: {detail} — the server rejected the API token (wrong, expired or revoked): run `orca login --server {}` or pass a valid --token (or ORCA_TOKEN)",
                self.server()
            );
        }
        bail!("{what}: {status}: {detail}");
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> anyhow::Result<T> {
        self.send_raw(req, what)
            .await?
            .json::<T>()
            .await
            .with_context(|| format!("{what}: unexpected response"))
    }

    /// `POST /auth/login`: a session token (the client needs no token).
    pub async fn login(&self, username: &str, password: &str) -> anyhow::Result<LoginResponse> {
        let body = LoginRequest {
            username: username.to_string(),
            password: password.to_string(),
        };
        self.send(
            self.http
                .post(format!("{}/auth/login", self.base))
                .json(&body),
            &format!("log in as {username}"),
        )
        .await
    }

    /// `POST /auth/logout`: revokes this client's token.
    pub async fn logout(&self) -> anyhow::Result<()> {
        self.send_raw(
            self.http.post(format!("{}/auth/logout", self.base)),
            "log out",
        )
        .await?;
        Ok(())
    }

    /// `POST /tokens`: a personal access token of the caller, never expiring.
    pub async fn create_token(&self, name: &str) -> anyhow::Result<CreatedToken> {
        let body = CreateTokenRequest {
            name: name.to_string(),
            expires_in_days: None,
        };
        self.send(
            self.http.post(format!("{}/tokens", self.base)).json(&body),
            "create a personal access token",
        )
        .await
    }

    /// `GET /auth/me`.
    pub async fn me(&self) -> anyhow::Result<MeResponse> {
        self.send(
            self.http.get(format!("{}/auth/me", self.base)),
            "read the caller",
        )
        .await
    }

    /// `GET /runs?limit=N`: the newest runs the caller can see.
    pub async fn list_runs(&self, limit: u32) -> anyhow::Result<Vec<WorkflowInstanceRow>> {
        self.send(
            self.http
                .get(format!("{}/runs", self.base))
                .query(&[("limit", limit)]),
            "list runs",
        )
        .await
    }

    /// `GET /workers`; `Ok(None)` when the server has no such endpoint
    /// (any 404 or 405: a list has no missing item).
    pub async fn workers(&self) -> anyhow::Result<Option<serde_json::Value>> {
        let what = "list workers";
        let resp = self
            .authed(self.http.get(format!("{}/workers", self.base)))
            .send()
            .await
            .with_context(|| format!("{what}: cannot reach the Orca API at {}", self.base))?;
        if matches!(
            resp.status(),
            reqwest::StatusCode::NOT_FOUND | reqwest::StatusCode::METHOD_NOT_ALLOWED
        ) {
            return Ok(None);
        }
        let v = self
            .check(resp, what)
            .await?
            .json()
            .await
            .with_context(|| format!("{what}: unexpected response"))?;
        Ok(Some(v))
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
        self.task_log_from(ti, 0).await
    }

    /// The log of task instance `ti` from byte `offset` on.
    pub async fn task_log_from(&self, ti: i64, offset: u64) -> anyhow::Result<String> {
        let what = format!("read the log of task instance {ti}");
        self.send_raw(
            self.http
                .get(format!("{}/task-instances/{ti}/log", self.base))
                .query(&[("offset", offset)]),
            &what,
        )
        .await?
        .text()
        .await
        .with_context(|| format!("{what}: the response broke off"))
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
