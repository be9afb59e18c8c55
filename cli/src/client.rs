//! HTTP client of the Orca API.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use orca_api::page::{MAX_LIMIT, Page};
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

/// Filters of [`Client::list_runs`] (`GET /runs`); `None` does not filter.
#[derive(Debug, Clone, Default)]
pub struct RunsFilter {
    /// RUNNING, SUCCESS, FAILURE, STOP or PAUSE.
    pub state: Option<String>,
    pub project: Option<String>,
    /// Workflow name.
    pub workflow: Option<String>,
}

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
        // An unreadable CA file is reported, and then the server's
        // certificate check fails naming its issuer.
        let http = crate::config::http_client().unwrap_or_else(|e| {
            eprintln!("warning: {e:#}");
            reqwest::Client::new()
        });
        Client {
            http,
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

    /// One page of a list (a [`Page`], or a page with more fields):
    /// `GET url?query&limit=&cursor=`.
    async fn page<P: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        query: &[(&str, String)],
        limit: u64,
        cursor: Option<&str>,
        what: &str,
    ) -> anyhow::Result<P> {
        let mut req = self.http.get(url).query(query).query(&[("limit", limit)]);
        if let Some(c) = cursor {
            req = req.query(&[("cursor", c)]);
        }
        self.send(req, what).await
    }

    /// Up to `max` items of a list (all of them if `None`), following
    /// `next_cursor` only as far as needed.
    async fn collect<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        query: &[(&str, String)],
        max: Option<u64>,
        what: &str,
    ) -> anyhow::Result<Vec<T>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let left = max.map_or(MAX_LIMIT, |m| m - items.len() as u64);
            if left == 0 {
                return Ok(items);
            }
            let page: Page<T> = self
                .page(url, query, left.min(MAX_LIMIT), cursor.as_deref(), what)
                .await?;
            items.extend(page.items);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(items),
            }
        }
    }

    /// `GET /runs`: up to `limit` of the newest runs the caller can see
    /// that match `filter`, newest first (as many pages as that takes).
    pub async fn list_runs(
        &self,
        filter: &RunsFilter,
        limit: u64,
    ) -> anyhow::Result<Vec<WorkflowInstanceRow>> {
        let mut query = Vec::new();
        for (k, v) in [
            ("state", &filter.state),
            ("project", &filter.project),
            ("workflow", &filter.workflow),
        ] {
            if let Some(v) = v {
                query.push((k, v.clone()));
            }
        }
        self.collect(
            &format!("{}/runs", self.base),
            &query,
            Some(limit),
            "list runs",
        )
        .await
    }

    /// `GET /workers`, every page: the workers as a JSON array; `Ok(None)`
    /// when the server has no such endpoint (any 404 or 405: a list has no
    /// missing item).
    pub async fn workers(&self) -> anyhow::Result<Option<serde_json::Value>> {
        let what = "list workers";
        let url = format!("{}/workers", self.base);
        let resp = self
            .authed(self.http.get(&url).query(&[("limit", MAX_LIMIT)]))
            .send()
            .await
            .with_context(|| format!("{what}: cannot reach the Orca API at {}", self.base))?;
        if matches!(
            resp.status(),
            reqwest::StatusCode::NOT_FOUND | reqwest::StatusCode::METHOD_NOT_ALLOWED
        ) {
            return Ok(None);
        }
        let first: Page<serde_json::Value> = self
            .check(resp, what)
            .await?
            .json()
            .await
            .with_context(|| format!("{what}: unexpected response"))?;
        let mut workers = first.items;
        let mut cursor = first.next_cursor;
        while let Some(c) = cursor {
            let page: Page<serde_json::Value> =
                self.page(&url, &[], MAX_LIMIT, Some(&c), what).await?;
            workers.extend(page.items);
            cursor = page.next_cursor;
        }
        Ok(Some(serde_json::Value::Array(workers)))
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

/// Workflow lifecycle and schedules: `orca schedule`, `versions`, `diff`,
/// `online`/`offline`.
impl Client {
    fn workflow_url(&self, project: &str, name: &str, rest: &str) -> String {
        format!(
            "{}/workflows/{}/{}{rest}",
            self.base,
            enc(project),
            enc(name)
        )
    }

    /// `PUT /workflows/{project}/{name}/schedule`.
    pub async fn put_schedule(
        &self,
        project: &str,
        name: &str,
        body: &orca_api::routes::schedules::ScheduleRequest,
    ) -> anyhow::Result<orca_store::ScheduleRow> {
        let url = self.workflow_url(project, name, "/schedule");
        self.send(
            self.http.put(url).json(body),
            &format!("set the schedule of {project}/{name}"),
        )
        .await
    }

    /// `GET /workflows/{project}/{name}/schedule`.
    pub async fn schedule(
        &self,
        project: &str,
        name: &str,
    ) -> anyhow::Result<orca_store::ScheduleRow> {
        let url = self.workflow_url(project, name, "/schedule");
        self.send(
            self.http.get(url),
            &format!("read the schedule of {project}/{name}"),
        )
        .await
    }

    /// `GET /workflows/{project}/{name}/schedule/preview?count=N`.
    pub async fn preview_schedule(
        &self,
        project: &str,
        name: &str,
        count: usize,
    ) -> anyhow::Result<orca_api::routes::schedules::SchedulePreview> {
        let url = self.workflow_url(project, name, "/schedule/preview");
        self.send(
            self.http.get(url).query(&[("count", count)]),
            &format!("preview the schedule of {project}/{name}"),
        )
        .await
    }

    /// `DELETE /workflows/{project}/{name}/schedule`.
    pub async fn delete_schedule(&self, project: &str, name: &str) -> anyhow::Result<()> {
        let url = self.workflow_url(project, name, "/schedule");
        self.send_raw(
            self.http.delete(url),
            &format!("delete the schedule of {project}/{name}"),
        )
        .await?;
        Ok(())
    }

    /// `GET /workflows/{project}/{name}/versions`, every page.
    pub async fn versions(
        &self,
        project: &str,
        name: &str,
    ) -> anyhow::Result<orca_api::routes::lifecycle::WorkflowVersions> {
        use orca_api::routes::lifecycle::{WorkflowVersionPage, WorkflowVersions};
        let url = self.workflow_url(project, name, "/versions");
        let what = format!("list the versions of {project}/{name}");
        let mut cursor: Option<String> = None;
        let mut versions = Vec::new();
        loop {
            let page: WorkflowVersionPage = self
                .page(&url, &[], MAX_LIMIT, cursor.as_deref(), &what)
                .await?;
            versions.extend(page.items);
            cursor = page.next_cursor;
            if cursor.is_none() {
                return Ok(WorkflowVersions {
                    project: page.project,
                    name: page.name,
                    current_version: page.current_version,
                    release_state: page.release_state,
                    versions,
                });
            }
        }
    }

    /// `GET /workflows/{project}/{name}/versions/{from}/diff/{to}`.
    pub async fn diff(
        &self,
        project: &str,
        name: &str,
        from: i32,
        to: i32,
    ) -> anyhow::Result<orca_api::routes::lifecycle::WorkflowDiff> {
        let url = self.workflow_url(project, name, &format!("/versions/{from}/diff/{to}"));
        self.send(
            self.http.get(url),
            &format!("diff {project}/{name} v{from} and v{to}"),
        )
        .await
    }

    /// `POST /workflows/{project}/{name}/online` (or `/offline`).
    pub async fn set_online(
        &self,
        project: &str,
        name: &str,
        online: bool,
    ) -> anyhow::Result<orca_api::routes::lifecycle::ReleaseStateResponse> {
        let verb = if online { "online" } else { "offline" };
        let url = self.workflow_url(project, name, &format!("/{verb}"));
        self.send(
            self.http.post(url),
            &format!("take {project}/{name} {verb}"),
        )
        .await
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
