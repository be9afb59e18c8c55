//! `orca`: one binary for every role (standalone, and later master, worker,
//! api) and the client verbs (`login`, `apply`, `run`, `ps`, `status`,
//! `logs`, `workers`, `validate`, …).

pub mod admin;
pub mod args;
pub mod client;
pub mod config;
pub mod inspect;
pub mod login;
pub mod manage;
pub mod ops;
pub mod run;
pub mod serve;
pub mod standalone;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

/// Parses the command line, runs the command, maps the outcome to an exit code.
pub fn main_entry() -> ExitCode {
    let cli = Cli::parse();
    // Cluster roles set up logging from their config ([log]).
    if !matches!(
        cli.command,
        Command::Master(_) | Command::Worker(_) | Command::Api(_)
    ) {
        init_tracing(cli.verbose, matches!(cli.command, Command::Standalone(_)));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(dispatch(cli.command, cli.output)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn dispatch(cmd: Command, output: args::Output) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Standalone(a) => standalone::run_standalone(a).await,
        Command::Login(a) => login::login(a).await,
        Command::Apply(a) => run::apply(a).await,
        Command::Run(a) => run::run_workflow(a, output).await,
        Command::Ps(a) => inspect::ps(a, output).await,
        Command::Workers(a) => inspect::workers(a, output).await,
        Command::Validate(a) => run::validate(a),
        Command::Status(a) => inspect::status(a, output).await,
        Command::Logs(a) => inspect::logs(a).await,
        Command::Stop(a) => run::run_op(a, "stop").await,
        Command::Pause(a) => run::run_op(a, "pause").await,
        Command::Resume(a) => run::run_op(a, "resume").await,
        Command::Rerun(a) => run::rerun(a).await,
        Command::ForceSuccess(a) => run::force_success(a).await,
        Command::Schedule(a) => manage::schedule(a, output).await,
        Command::Versions(a) => manage::versions(a, output).await,
        Command::Diff(a) => manage::diff(a, output).await,
        Command::Online(a) => manage::release(a, true, output).await,
        Command::Offline(a) => manage::release(a, false, output).await,
        Command::Master(a) => serve::run_master(a).await,
        Command::Worker(a) => serve::run_worker(a).await,
        Command::Api(a) => serve::run_api(a).await,
        Command::Config(args::ConfigCommand::Check(a)) => serve::config_check(a),
        Command::Admin(a) => admin::run_admin(a).await,
    }
}

fn init_tracing(verbose: u8, server: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match (verbose, server) {
        (0, false) => "warn",
        (0, true) | (1, _) => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_env("ORCA_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Logging of the cluster roles, from `[log]` (ORCA_LOG still overrides the level).
pub fn init_tracing_from(cfg: &orca_common::config::LogConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("ORCA_LOG").unwrap_or_else(|_| EnvFilter::new(&cfg.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cfg.format {
        orca_common::config::LogFormat::Json => builder.json().try_init(),
        orca_common::config::LogFormat::Text => builder.try_init(),
    };
}
