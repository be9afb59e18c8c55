//! `orca standalone`: master + worker + API in one process, SQLite under the
//! data dir, in-process registry. Also used by `orca run` without `--server`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use orca_common::config::{self, ConfigSources, LogStoreConfig, WorkerSection};
use orca_common::registry::memory::MemoryRegistry;
use orca_store::Store;

use crate::args::StandaloneArgs;
use crate::client::CREDENTIALS_FILE;

/// How long a stopping standalone waits for its worker to deliver what it
/// still has queued to the leader, before it stops that leader.
const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub struct StandaloneOptions {
    pub data_dir: PathBuf,
    pub http: SocketAddr,
    pub worker_slots: u32,
    pub python: String,
}

/// A running standalone server.
pub struct Standalone {
    pub url: String,
    pub token: String,
    /// True when the CLI's token was created by this start (print it once).
    pub token_created: bool,
    /// `(username, generated password)` of the first admin, when this start
    /// created it (print it once: it is stored nowhere).
    pub admin_created: Option<(String, String)>,
    pub master_addr: SocketAddr,
    pub worker_addr: SocketAddr,
    /// The public gRPC API (`orca.v1.OrcaApi`, health, reflection), on a
    /// free loopback port.
    pub grpc_addr: SocketAddr,
    api: orca_api::ApiHandle,
    grpc: orca_api::grpc::GrpcHandle,
    master: orca_master::MasterHandle,
    worker: orca_worker::WorkerHandle,
}

impl Standalone {
    /// Starts with task logs kept in the database.
    pub async fn start(opts: StandaloneOptions) -> anyhow::Result<Standalone> {
        Self::start_with_log_store(opts, &LogStoreConfig::default()).await
    }

    /// Starts with task logs kept where `log_store` says (`[log_store]`).
    pub async fn start_with_log_store(
        opts: StandaloneOptions,
        log_store: &LogStoreConfig,
    ) -> anyhow::Result<Standalone> {
        Self::start_with_config(opts, log_store, &WorkerSection::default()).await
    }

    /// Starts with task logs kept where `log_store` says, and the embedded
    /// worker running tasks as `worker` says: its `python_fork`,
    /// `python_preload`, `labels`, `kill_grace` and `attempt_retention`
    /// apply (its slots and interpreter come from `opts`; its addresses,
    /// id, group and data dir are the standalone's own).
    pub async fn start_with_config(
        opts: StandaloneOptions,
        log_store: &LogStoreConfig,
        worker_cfg: &WorkerSection,
    ) -> anyhow::Result<Standalone> {
        let logs = orca_store::log_store::open(log_store).with_context(|| {
            format!(
                "cannot set up log_store.kind = {:?}",
                log_store.kind.as_str()
            )
        })?;
        std::fs::create_dir_all(&opts.data_dir)
            .with_context(|| format!("cannot create data dir {}", opts.data_dir.display()))?;
        let data_dir = std::fs::canonicalize(&opts.data_dir)
            .with_context(|| format!("cannot resolve data dir {}", opts.data_dir.display()))?;
        let db = data_dir.join("orca.db");
        let url = format!("sqlite://{}?mode=rwc", db.display());
        let store = Store::connect(&url)
            .await
            .with_context(|| format!("cannot open the metadata database {}", db.display()))?
            .with_log_store(logs);
        let registry = Arc::new(MemoryRegistry::new());
        // Master and worker call each other in-process, not over loopback.
        let local = orca_proto::transport::LocalRoutes::default();
        let worker = orca_worker::start(
            orca_worker::WorkerConfig {
                id: None,
                data_dir: data_dir.join("worker"),
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                advertise_host: "127.0.0.1".into(),
                group: "default".into(),
                labels: worker_cfg.labels.clone(),
                slots: opts.worker_slots,
                python: opts.python.clone(),
                python_fork: worker_cfg.python_fork,
                python_preload: worker_cfg.python_preload.clone(),
                kill_grace: worker_cfg.kill_grace,
                running_delay: orca_worker::DEFAULT_RUNNING_DELAY,
                attempt_retention: worker_cfg.effective_attempt_retention(),
                // No lease can expire in-process: tasks may outlive a crash
                // and are re-adopted on the next start.
                deadman: None,
                local: Some(local.clone()),
            },
            registry.clone(),
        )
        .await
        .context("cannot start the embedded worker")?;
        let master = orca_master::start(
            orca_master::MasterConfig {
                local: Some(local),
                ..Default::default()
            },
            store.clone(),
            registry.clone(),
        )
        .await
        .context("cannot start the embedded master")?;
        let state = orca_api::AppState {
            store: store.clone(),
            nudge: master.nudger(),
            worker_clients: Default::default(),
            metrics: crate::ops::metrics_handle(),
            registry: Some(registry.clone()),
        };
        let api = orca_api::serve(opts.http, state.clone())
            .await
            .context("cannot start the API server")?;
        let grpc = orca_api::grpc::serve_grpc(SocketAddr::from(([127, 0, 0, 1], 0)), state)
            .await
            .context("cannot start the gRPC API server")?;
        let url = format!("http://{}", api.addr);
        let cli = crate::admin::ensure_cli_token(&store, &data_dir, &url).await?;
        let admin_created = cli
            .new_admin
            .and_then(|a| Some((a.user.username, a.generated_password?)));
        let (token, token_created) = (cli.token, cli.created);
        Ok(Standalone {
            url,
            token,
            token_created,
            admin_created,
            master_addr: master.addr(),
            worker_addr: worker.addr(),
            grpc_addr: grpc.addr,
            api,
            grpc,
            master,
            worker,
        })
    }

    /// Stops everything; running tasks are killed.
    pub async fn shutdown(self) {
        self.stop(true).await
    }

    /// Stops the servers but leaves running tasks alone, as a crash would;
    /// the next start on the same data dir re-adopts them.
    pub async fn shutdown_keep_tasks(self) {
        self.stop(false).await
    }

    async fn stop(self, kill_tasks: bool) {
        self.api.shutdown().await;
        self.grpc.shutdown().await;
        // The leader goes with this process: what the worker still has to
        // deliver (a finished task's log is batched for up to 50 ms) goes
        // while it is up, instead of waiting for it in vain at shutdown.
        if !self.worker.flush(FLUSH_TIMEOUT).await {
            tracing::warn!("the worker's reports or logs were not all delivered before shutdown");
        }
        self.master.shutdown().await;
        self.worker.shutdown(kill_tasks).await;
    }
}

pub async fn run_standalone(args: StandaloneArgs) -> anyhow::Result<ExitCode> {
    // `[log_store]` and the task-running keys of `[worker]` from
    // `--config`, `ORCA_*` variables and `--set` (validated like every
    // role's config; the other sections do not apply to a standalone).
    let cfg = config::check(&ConfigSources {
        file: args.config.clone(),
        overrides: args.set.clone(),
    })?;
    let s = Standalone::start_with_config(
        StandaloneOptions {
            data_dir: args.data_dir.clone(),
            http: args.http,
            worker_slots: args.worker_slots,
            python: args.python,
        },
        &cfg.log_store,
        &cfg.worker,
    )
    .await?;
    println!("orca standalone is up");
    println!(
        "  API        {}   (health: {}/health, metrics: {}/metrics)",
        s.url, s.url, s.url
    );
    println!(
        "  gRPC API   {}   (orca.v1.OrcaApi, health, reflection)",
        s.grpc_addr
    );
    println!("  master     gRPC {}", s.master_addr);
    println!("  worker     gRPC {}", s.worker_addr);
    println!("  data dir   {}", args.data_dir.display());
    println!("  task logs  {}", cfg.log_store.kind.as_str());
    if let Some((user, password)) = &s.admin_created {
        println!("  admin user {user:?} created; its password (shown once, store it now):");
        println!("    {password}");
    }
    if s.token_created {
        println!(
            "  a personal access token of the admin is kept for the local CLI in {}/{CREDENTIALS_FILE} (mode 0600)",
            args.data_dir.display()
        );
    } else {
        println!(
            "  CLI token: kept in {}/{CREDENTIALS_FILE}",
            args.data_dir.display()
        );
    }
    println!("Ctrl-C stops it.");
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    println!("stopping…");
    s.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
