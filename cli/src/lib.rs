//! `orca`: one binary for every role (standalone, and later master, worker,
//! api) and the client verbs (`run`, `status`, `logs`, `validate`).

pub mod args;
pub mod client;
pub mod run;
pub mod standalone;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

/// Parses the command line, runs the command, maps the outcome to an exit code.
pub fn main_entry() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose, matches!(cli.command, Command::Standalone(_)));
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
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn dispatch(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Standalone(a) => standalone::run_standalone(a).await,
        Command::Run(a) => run::run_workflow(a).await,
        Command::Validate(a) => run::validate(a),
        Command::Status(a) => run::status(a).await,
        Command::Logs(a) => run::logs(a).await,
        Command::Stop(a) => run::stop(a).await,
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
