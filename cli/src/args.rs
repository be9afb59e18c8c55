//! Command-line arguments.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "orca",
    version,
    about = "Orca: a fast workflow scheduler for ML pipelines"
)]
pub struct Cli {
    /// More log output (-v info, -vv debug); ORCA_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Output of `ps`, `status`, `workers`, `schedule`, `versions`, `diff`,
    /// `online`/`offline` (and of `run` at its end).
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

/// How client verbs print what they read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// The API's JSON, for scripts.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run master, worker and API in one process (SQLite, in-process registry).
    Standalone(StandaloneArgs),
    /// Log in to a server; stores its URL and a personal access token in
    /// ~/.config/orca/config.toml (mode 0600).
    Login(LoginArgs),
    /// Create or update a workflow on the server from a YAML file.
    Apply(ApplyArgs),
    /// Run a workflow: a YAML file (ephemeral standalone unless --server,
    /// waits; exit code 0 only on SUCCESS), or `[PROJECT/]NAME` of an
    /// applied workflow on the server.
    Run(RunArgs),
    /// List the newest runs, newest first.
    Ps(PsArgs),
    /// List the workers the server knows.
    Workers(WorkersArgs),
    /// Check a workflow file and report every problem.
    Validate(ValidateArgs),
    /// Show a run and its task attempts.
    Status(StatusArgs),
    /// Print a task's log: `RUN TASK` (its latest attempt) or `TASK_INSTANCE`.
    Logs(LogsArgs),
    /// Stop a run: kill its running tasks and schedule nothing more.
    Stop(StopArgs),
    /// Pause a run: running tasks finish, nothing new starts.
    Pause(StopArgs),
    /// Resume a paused run.
    Resume(StopArgs),
    /// Run a finished run again: a new run, or with --failed its failed tasks in place.
    Rerun(RerunArgs),
    /// Mark a task of a run that is not running as succeeded.
    ForceSuccess(ForceSuccessArgs),
    /// A workflow's cron schedule: set, show, preview, delete.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// List the stored versions of a workflow, oldest first.
    Versions(WorkflowArgs),
    /// What changed between two versions of a workflow.
    Diff(DiffArgs),
    /// Bring a workflow online: it can be triggered and its schedule fires.
    Online(WorkflowArgs),
    /// Take a workflow offline: triggers are refused, its schedule does not
    /// fire; runs already started go on.
    Offline(WorkflowArgs),
    /// Run a master (cluster mode: etcd + PostgreSQL).
    Master(ServeArgs),
    /// Run a worker (cluster mode).
    Worker(ServeArgs),
    /// Run the API server (cluster mode).
    Api(ApiServeArgs),
    /// Inspect configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Administration: users.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create the first admin user; refuses if an admin exists. Prints a
    /// generated password once, unless --password-stdin.
    Bootstrap(BootstrapArgs),
}

#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// Name of the admin to create.
    #[arg(long, default_value = "admin")]
    pub username: String,
    /// Metadata store URL (postgres://… or sqlite://…); default: the
    /// SQLite database of --data-dir.
    #[arg(
        long,
        env = "ORCA_STORE__URL",
        hide_env_values = true,
        conflicts_with = "data_dir"
    )]
    pub store_url: Option<String>,
    /// Data dir of a standalone server (default ./orca-data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Read the password from stdin instead of generating one.
    #[arg(long)]
    pub password_stdin: bool,
}

/// Where a server's configuration comes from (later wins): built-in
/// defaults, `--config FILE`, `ORCA_<SECTION>__<KEY>` env vars, `--set`.
#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// TOML config file (see deploy/examples/ and docs/CONFIG.md).
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Override one key, e.g. `--set master.listen=0.0.0.0:5678` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(Debug, Args, Clone)]
pub struct ApiServeArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Keep a personal access token of an admin for local clients in
    /// DIR/cli.json (mode 0600); on first start creates the first admin
    /// (password printed once) if there is none.
    #[arg(long, value_name = "DIR")]
    pub credentials_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print every effective value with its source.
    Check(ConfigCheckArgs),
}

#[derive(Debug, Args)]
pub struct ConfigCheckArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Args, Clone)]
pub struct StandaloneArgs {
    /// Where the SQLite database, task work dirs and logs live.
    #[arg(long, default_value = "orca-data", env = "ORCA_DATA_DIR")]
    pub data_dir: PathBuf,
    /// REST API address.
    #[arg(long, default_value = "127.0.0.1:8080", env = "ORCA_HTTP")]
    pub http: SocketAddr,
    /// Tasks the embedded worker runs at once.
    #[arg(long, default_value_t = default_slots())]
    pub worker_slots: u32,
    /// Python interpreter for PYTHON tasks.
    #[arg(long, default_value = "python3", env = "ORCA_PYTHON")]
    pub python: String,
    /// TOML config file; a standalone reads its `[log_store]` section and
    /// the `[worker]` keys python_fork, python_preload, labels, kill_grace
    /// and attempt_retention.
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Override one key, e.g. `--set log_store.kind=dir` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

pub fn default_slots() -> u32 {
    std::thread::available_parallelism()
        .map(|n| (n.get() as u32 * 4).max(8))
        .unwrap_or(8)
}

/// Where a client finds the server.
#[derive(Debug, Args, Clone)]
pub struct ServerArgs {
    /// API URL, e.g. http://127.0.0.1:8080. Default: the standalone server of --data-dir.
    #[arg(long, env = "ORCA_SERVER")]
    pub server: Option<String>,
    /// API token. Default: the one the standalone server keeps in --data-dir.
    #[arg(long, env = "ORCA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Data dir of a local standalone server (for its URL and token).
    #[arg(long, default_value = "orca-data", env = "ORCA_DATA_DIR")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// API URL, e.g. https://orca.example.com. Default: the server of the
    /// config file.
    #[arg(long, env = "ORCA_SERVER")]
    pub server: Option<String>,
    /// User to log in as (asked for when omitted on a terminal).
    #[arg(short, long)]
    pub username: Option<String>,
    /// Read the password from the first line of stdin instead of asking.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Workflow YAML file (`$FILE{}` and `$ENV{}` are expanded here, locally).
    #[arg(short, long)]
    pub file: PathBuf,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// How many runs to list (newest first; pages are followed as needed).
    #[arg(short = 'n', long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: u64,
    /// Only runs in this state: RUNNING, SUCCESS, FAILURE, STOP or PAUSE.
    #[arg(long)]
    pub state: Option<String>,
    /// Only runs of this workflow (its name).
    #[arg(long)]
    pub workflow: Option<String>,
    /// Only runs of this project.
    #[arg(long)]
    pub project: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct WorkersArgs {
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A workflow YAML file (a name ending in .yaml/.yml, or an existing
    /// file), or `[PROJECT/]NAME` of a workflow applied on the server.
    #[arg(value_name = "FILE|[PROJECT/]NAME")]
    pub target: String,
    /// With a workflow name: wait for the run to end and print its summary
    /// (exit code 0 only on SUCCESS). A file always waits.
    #[arg(short, long)]
    pub wait: bool,
    /// Start-time parameter, `--param key=value` (repeatable).
    #[arg(short, long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Run on this API server instead of an ephemeral in-process standalone.
    /// With a workflow name: default from the config file (`orca login`).
    #[arg(long, env = "ORCA_SERVER")]
    pub server: Option<String>,
    /// API token for --server. Default: the token a local standalone keeps in
    /// ./orca-data/cli.json (or $ORCA_DATA_DIR/cli.json), else the config file's.
    #[arg(long, env = "ORCA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Keep the ephemeral standalone's data (database, logs) here instead of
    /// a temp dir. With a workflow name: the data dir of the local standalone.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[arg(long, default_value = "python3", env = "ORCA_PYTHON")]
    pub python: String,
    /// Print the run as JSON at the end instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Run only from this task (repeatable), with --scope.
    #[arg(long = "from", value_name = "TASK")]
    pub start_tasks: Vec<String>,
    /// With --from: downstream (default), upstream or only.
    #[arg(long, value_parser = ["downstream", "upstream", "only"])]
    pub scope: Option<String>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Run (workflow instance) id.
    pub run: i64,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Run (workflow instance) id.
    pub run: i64,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct RerunArgs {
    /// Run (workflow instance) id.
    pub run: i64,
    /// Re-run only the tasks that did not succeed (and what depends on
    /// them), in the same run.
    #[arg(long)]
    pub failed: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct ForceSuccessArgs {
    /// Run (workflow instance) id.
    pub run: i64,
    /// Task name.
    pub task: String,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Run id (with TASK), or a task instance id (one attempt) as shown by
    /// `orca status`.
    #[arg(value_name = "RUN|TASK_INSTANCE")]
    pub id: i64,
    /// Task name: print the log of its latest attempt in run RUN.
    pub task: Option<String>,
    /// Follow a running attempt: print new output until the attempt ends
    /// (needs RUN TASK).
    #[arg(short, long, requires = "task")]
    pub follow: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// A workflow on the server.
#[derive(Debug, Args, Clone)]
pub struct WorkflowArgs {
    /// Workflow: `NAME` (in --project) or `PROJECT/NAME`.
    #[arg(value_name = "[PROJECT/]WORKFLOW")]
    pub workflow: String,
    /// Project of WORKFLOW when it names none.
    #[arg(short = 'P', long, default_value = "default")]
    pub project: String,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Create or replace the schedule (enabled unless --disabled).
    Set(ScheduleSetArgs),
    /// Show the schedule.
    Show(WorkflowArgs),
    /// List the next fire times.
    Preview(SchedulePreviewArgs),
    /// Delete the schedule (no error when there is none).
    Delete(WorkflowArgs),
}

#[derive(Debug, Args)]
pub struct ScheduleSetArgs {
    #[command(flatten)]
    pub workflow: WorkflowArgs,
    /// Quartz cron (`sec min hour day month weekday [year]`, e.g.
    /// `0 0 2 * * ? *`) or 5-field Unix cron.
    #[arg(long)]
    pub cron: String,
    /// IANA time zone the expression is evaluated in.
    #[arg(long, default_value = "UTC")]
    pub timezone: String,
    /// No fire before this time (RFC 3339, e.g. 2026-01-01T00:00:00Z).
    #[arg(long)]
    pub start: Option<chrono::DateTime<chrono::Utc>>,
    /// No fire after this time (RFC 3339).
    #[arg(long)]
    pub end: Option<chrono::DateTime<chrono::Utc>>,
    /// Store the schedule without letting it fire.
    #[arg(long)]
    pub disabled: bool,
    /// Start parameter of every run it fires, `--param key=value` (repeatable).
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SchedulePreviewArgs {
    #[command(flatten)]
    pub workflow: WorkflowArgs,
    /// How many fire times (1-100).
    #[arg(short = 'n', long, default_value_t = 5)]
    pub count: usize,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub workflow: WorkflowArgs,
    /// The old version.
    pub from: i32,
    /// The new version.
    pub to: i32,
}
