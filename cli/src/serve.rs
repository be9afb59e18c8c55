//! Cluster roles: `orca master`, `orca worker`, `orca api`, and
//! `orca config check`. Each reads the layered config (defaults → TOML file
//! → `ORCA_<SECTION>__<KEY>` env vars → `--set key=value`), connects to etcd
//! (and the metadata store where needed), serves until SIGTERM/Ctrl-C, and
//! exposes `/health` + `/metrics` for operators.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use axum::http::StatusCode;
use orca_common::config::{self, ConfigSources, OrcaConfig};
use orca_common::registry::Registry;
use orca_common::registry::etcd::{EtcdConfig, EtcdRegistry};
use orca_store::Store;

use crate::args::{ApiServeArgs, ConfigCheckArgs, ServeArgs};
use crate::ops::{HealthFn, hostname, serve_ops, shutdown_signal};

fn sources(args: &ServeArgs) -> ConfigSources {
    ConfigSources {
        file: args.config.clone(),
        overrides: args.set.clone(),
    }
}

/// Loads and validates the config; errors name the key and its source.
pub fn load_config(args: &ServeArgs) -> anyhow::Result<OrcaConfig> {
    let cfg = config::load(&sources(args))?;
    config::validate(&cfg)?;
    Ok(cfg)
}

async fn registry(cfg: &OrcaConfig) -> anyhow::Result<Arc<dyn Registry>> {
    let r = &cfg.registry;
    let reg = EtcdRegistry::connect(EtcdConfig {
        endpoints: r.endpoints.clone(),
        prefix: r.prefix.clone(),
        lease_ttl: r.lease_ttl,
        keepalive_interval: r.keepalive_interval,
        fence_margin: r.fence_margin,
    })
    .await
    .with_context(|| {
        format!(
            "cannot reach etcd at {} (registry.endpoints)",
            r.endpoints.join(",")
        )
    })?;
    Ok(Arc::new(reg))
}

async fn store(cfg: &OrcaConfig) -> anyhow::Result<Store> {
    let logs = orca_store::log_store::open(&cfg.log_store).with_context(|| {
        format!(
            "cannot set up log_store.kind = {:?}",
            cfg.log_store.kind.as_str()
        )
    })?;
    let store = Store::connect(&cfg.store.url).await.with_context(|| {
        format!(
            "cannot open the metadata store (store.url = {})",
            redact(&cfg.store.url)
        )
    })?;
    Ok(store.with_log_store(logs))
}

/// Hides a password in a database URL.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

pub async fn run_master(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let cfg = load_config(&args)?;
    crate::init_tracing_from(&cfg.log);
    let host = hostname();
    let store = store(&cfg).await?;
    let registry = registry(&cfg).await?;
    let m = &cfg.master;
    let master = orca_master::start(
        orca_master::MasterConfig {
            id: m.effective_id(&host),
            listen: m.listen,
            advertise_host: m.effective_advertise_host(&host),
            policy: match m.dispatch_policy {
                config::DispatchPolicy::LowestWeight => orca_master::Policy::LowestWeight,
                config::DispatchPolicy::RoundRobin => orca_master::Policy::RoundRobin,
                config::DispatchPolicy::Random => orca_master::Policy::Random,
            },
            poll_interval: m.command_poll_interval,
            worker_loss_grace: m.worker_loss_grace,
            local: None,
        },
        store,
        registry,
    )
    .await?;
    let leader = master.leader_flag();
    let health: HealthFn = Arc::new(move || {
        let role = if leader.load(std::sync::atomic::Ordering::Relaxed) {
            "leader"
        } else {
            "standby"
        };
        (StatusCode::OK, role.to_string())
    });
    let ops = serve_ops(m.http_listen, health).await?;
    println!(
        "orca master {} up: gRPC {} (advertised {}), health/metrics http://{ops}",
        m.effective_id(&host),
        master.addr(),
        master.advertised()
    );
    shutdown_signal().await;
    tracing::info!("stopping master");
    master.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn run_worker(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let cfg = load_config(&args)?;
    crate::init_tracing_from(&cfg.log);
    let host = hostname();
    let registry = registry(&cfg).await?;
    let w = &cfg.worker;
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let worker = orca_worker::start(
        orca_worker::WorkerConfig {
            id: (!w.id.is_empty()).then(|| w.id.clone()),
            data_dir: w.data_dir.clone(),
            listen: w.listen,
            advertise_host: w.effective_advertise_host(&host),
            group: w.group.clone(),
            labels: w.labels.clone(),
            slots: w.effective_slots(cpus),
            python: w.python.clone(),
            python_fork: w.python_fork,
            python_preload: w.python_preload.clone(),
            kill_grace: w.kill_grace,
            running_delay: orca_worker::DEFAULT_RUNNING_DELAY,
            attempt_retention: w.effective_attempt_retention(),
            // Tasks kill themselves once the worker has been silent for the
            // lease's fence window, before etcd can expire the lease and the
            // master fails them over.
            deadman: Some(
                cfg.registry
                    .lease_ttl
                    .saturating_sub(cfg.registry.fence_margin),
            ),
            local: None,
        },
        registry,
    )
    .await?;
    let health: HealthFn = Arc::new(|| (StatusCode::OK, "serving".to_string()));
    let ops = serve_ops(w.http_listen, health).await?;
    println!(
        "orca worker {} up: gRPC {} ({} slots, group {:?}), health/metrics http://{ops}",
        worker.id(),
        worker.url(),
        w.effective_slots(cpus),
        w.group
    );
    shutdown_signal().await;
    tracing::info!("stopping worker: its running tasks are killed and fail over");
    worker.shutdown(true).await;
    Ok(ExitCode::SUCCESS)
}

pub async fn run_api(args: ApiServeArgs) -> anyhow::Result<ExitCode> {
    let cfg = load_config(&args.serve)?;
    crate::init_tracing_from(&cfg.log);
    let store = store(&cfg).await?;
    let registry = registry(&cfg).await?;
    let state = orca_api::AppState {
        store: store.clone(),
        nudge: orca_api::nudge::leader_nudger(registry.clone()),
        worker_clients: Default::default(),
        metrics: crate::ops::metrics_handle(),
        registry: Some(registry),
    };
    let tls = match cfg.api.tls() {
        Some((cert, key)) => Some(orca_api::tls::ApiTls::from_pem_files(
            std::path::Path::new(cert),
            std::path::Path::new(key),
        )?),
        None => None,
    };
    let api = orca_api::serve_with_tls(cfg.api.listen, state.clone(), tls.as_ref()).await?;
    let grpc =
        orca_api::grpc::serve_grpc_with_tls(cfg.api.grpc_listen, state, tls.as_ref()).await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}", api.addr);
    println!("orca api up: {url}/api/v1 (health {url}/health, metrics {url}/metrics)");
    println!(
        "orca gRPC API up: {} (orca.v1.OrcaApi, gRPC health, reflection)",
        grpc.addr
    );
    if let Some(dir) = &args.credentials_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let cli = crate::admin::ensure_cli_token(&store, dir, &url).await?;
        let file = dir.join(crate::client::CREDENTIALS_FILE);
        if let Some(a) = &cli.new_admin
            && let Some(p) = &a.generated_password
        {
            println!(
                "admin user {:?} created; its password (shown once, store it now): {p}",
                a.user.username
            );
        }
        if cli.created {
            println!(
                "a personal access token of an admin was written to {} (mode 0600)",
                file.display()
            );
        } else {
            println!("CLI token: kept in {}", file.display());
        }
    }
    shutdown_signal().await;
    api.shutdown().await;
    grpc.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

pub fn config_check(args: ConfigCheckArgs) -> anyhow::Result<ExitCode> {
    let sources = sources(&args.serve);
    let values = match config::explain(&sources) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let width = values.iter().map(|v| v.key.len()).max().unwrap_or(0);
    for v in &values {
        println!("{:<width$} = {:<40} # {}", v.key, v.value, v.source);
    }
    match config::load(&sources).and_then(|c| config::validate(&c)) {
        Ok(()) => {
            eprintln!("configuration is valid");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(2))
        }
    }
}
