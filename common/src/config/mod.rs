//! Layered configuration of `orca master`, `orca worker`, `orca api` and
//! `orca standalone`.
//!
//! Layers, later wins:
//! 1. built-in defaults ([`OrcaConfig::default`]),
//! 2. a TOML file (`--config FILE`, [`ConfigSources::file`]),
//! 3. environment variables `ORCA_<SECTION>__<KEY>` (lists comma-separated),
//! 4. `key=value` overrides with dotted keys (`master.listen=0.0.0.0:5678`,
//!    [`ConfigSources::overrides`]).
//!
//! Unknown keys in the file, in `ORCA_<SECTION>__<KEY>` variables and in
//! overrides are errors naming the key, where it came from and the closest
//! known key. Every key, its default and its variable are listed in
//! `docs/CONFIG.md`, which [`reference::reference_markdown`] generates.
//!
//! Why not `figment`: it cannot report the line of a bad key, does not split
//! comma-separated lists in environment variables, and attributes an unknown
//! field to a struct rather than to the provider that set it. The layering
//! here is ~300 lines over the `toml` crate and keeps a source per key, which
//! is what `orca config check` prints.

pub mod duration;
mod error;
mod layers;
pub mod reference;
mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use error::{ConfigError, ConfigProblem, ValueSource};
pub use layers::{
    ConfigSources, EffectiveValue, env_var_name, explain, explain_with_env, load, load_with_env,
};
pub use validate::{check, check_with_env, validate};

/// The whole configuration; `Default` is the built-in defaults, which make
/// `orca master` work against a local etcd and PostgreSQL.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrcaConfig {
    /// Metadata database (`[store]`).
    pub store: StoreConfig,
    /// Service registry / leader election (`[registry]`).
    pub registry: RegistryConfig,
    /// `orca master` (`[master]`).
    pub master: MasterSection,
    /// `orca worker` (`[worker]`).
    pub worker: WorkerSection,
    /// `orca api` (`[api]`).
    pub api: ApiSection,
    /// Logging of every component (`[log]`).
    pub log: LogConfig,
    /// Where shipped task logs are kept (`[log_store]`).
    pub log_store: LogStoreConfig,
}

/// `[store]`: the metadata database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `postgres://USER:PASSWORD@HOST:PORT/DB` or `sqlite://PATH?mode=rwc`.
    pub url: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: "postgres://orca:orca@127.0.0.1:5432/orca".into(),
        }
    }
}

/// `[registry]`: etcd endpoints, key prefix and lease timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// etcd endpoints, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Key prefix under which Orca keeps its registry keys.
    pub prefix: String,
    /// Lease time-to-live of worker and master registrations.
    #[serde(with = "duration")]
    pub lease_ttl: Duration,
    /// How often a lease is renewed.
    #[serde(with = "duration")]
    pub keepalive_interval: Duration,
    /// A leader stops acting this long before its lease could have expired.
    #[serde(with = "duration")]
    pub fence_margin: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            prefix: "/orca".into(),
            lease_ttl: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(3),
            fence_margin: Duration::from_secs(2),
        }
    }
}

/// How the master picks a worker among those that fit a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DispatchPolicy {
    /// The worker with the fewest running attempts per slot.
    #[default]
    LowestWeight,
    /// Each worker in turn.
    RoundRobin,
    /// A random worker.
    Random,
}

/// `[master]`: the scheduler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MasterSection {
    /// Master id; empty means `master-<hostname>-<listen port>`
    /// ([`MasterSection::effective_id`]).
    pub id: String,
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// Host workers use to reach this master; empty means the hostname.
    pub advertise_host: String,
    /// `/health` and `/metrics` listen address.
    pub http_listen: SocketAddr,
    /// Worker selection policy.
    pub dispatch_policy: DispatchPolicy,
    /// How long a worker may be gone from the registry before its attempts
    /// are treated as lost.
    #[serde(with = "duration")]
    pub worker_loss_grace: Duration,
    /// Safety-net poll for commands written without a nudge.
    #[serde(with = "duration")]
    pub command_poll_interval: Duration,
}

impl Default for MasterSection {
    fn default() -> Self {
        MasterSection {
            id: String::new(),
            listen: SocketAddr::from(([0, 0, 0, 0], 5678)),
            advertise_host: String::new(),
            http_listen: SocketAddr::from(([0, 0, 0, 0], 9101)),
            dispatch_policy: DispatchPolicy::LowestWeight,
            worker_loss_grace: Duration::from_secs(5),
            command_poll_interval: Duration::from_secs(1),
        }
    }
}

impl MasterSection {
    /// The id to register under: `id`, or `master-<hostname>-<listen port>`
    /// when it is empty.
    pub fn effective_id(&self, hostname: &str) -> String {
        if self.id.is_empty() {
            format!("master-{hostname}-{}", self.listen.port())
        } else {
            self.id.clone()
        }
    }

    /// The host workers reach this master at: `advertise_host`, or
    /// `hostname` when it is empty.
    pub fn effective_advertise_host(&self, hostname: &str) -> String {
        non_empty_or(&self.advertise_host, hostname)
    }
}

/// `[worker]`: the task runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSection {
    /// Worker id; empty means the one persisted in `data_dir` (generated on
    /// first start).
    pub id: String,
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// Host masters use to reach this worker; empty means the hostname.
    pub advertise_host: String,
    /// `/health` and `/metrics` listen address.
    pub http_listen: SocketAddr,
    /// Worker group tasks are routed to.
    pub group: String,
    /// Labels for dispatch routing.
    pub labels: Vec<String>,
    /// Attempts run at once; 0 means 4 per CPU
    /// ([`WorkerSection::effective_slots`]).
    pub slots: u32,
    /// Attempt dirs, outbox and the persisted worker id live here.
    pub data_dir: PathBuf,
    /// Interpreter of PYTHON tasks.
    pub python: String,
    /// Fork PYTHON tasks from a warm interpreter instead of starting one
    /// per task.
    pub python_fork: bool,
    /// Modules the fork server imports once, for every forked task.
    pub python_preload: Vec<String>,
    /// Time between SIGTERM and SIGKILL when a task is killed.
    #[serde(with = "duration")]
    pub kill_grace: Duration,
    /// How long a finished attempt's dir (script, log, records) is kept
    /// once its report is acknowledged and its log shipped; 0 keeps it
    /// forever.
    #[serde(with = "duration")]
    pub attempt_retention: Duration,
}

impl Default for WorkerSection {
    fn default() -> Self {
        WorkerSection {
            id: String::new(),
            listen: SocketAddr::from(([0, 0, 0, 0], 5679)),
            advertise_host: String::new(),
            http_listen: SocketAddr::from(([0, 0, 0, 0], 9102)),
            group: "default".into(),
            labels: Vec::new(),
            slots: 0,
            data_dir: PathBuf::from("orca-worker-data"),
            python: "python3".into(),
            python_fork: true,
            python_preload: Vec::new(),
            kill_grace: Duration::from_secs(5),
            attempt_retention: Duration::from_secs(24 * 3600),
        }
    }
}

impl WorkerSection {
    /// How long finished attempt dirs are kept; `None` (for 0): forever.
    pub fn effective_attempt_retention(&self) -> Option<Duration> {
        Some(self.attempt_retention).filter(|d| !d.is_zero())
    }

    /// Slots to offer: `slots`, or 4 × `cpus` (at least 1) when it is 0.
    pub fn effective_slots(&self, cpus: usize) -> u32 {
        if self.slots > 0 {
            return self.slots;
        }
        u32::try_from(cpus.max(1))
            .unwrap_or(u32::MAX)
            .saturating_mul(4)
    }

    /// The host masters reach this worker at: `advertise_host`, or
    /// `hostname` when it is empty.
    pub fn effective_advertise_host(&self, hostname: &str) -> String {
        non_empty_or(&self.advertise_host, hostname)
    }
}

/// `[api]`: the REST server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSection {
    /// REST (`/api/v1`, `/health`, `/metrics`) listen address.
    pub listen: SocketAddr,
    /// Public gRPC API (`orca.v1.OrcaApi`, health, reflection) listen address.
    pub grpc_listen: SocketAddr,
    /// PEM certificate chain: serve REST and gRPC over TLS (with `tls_key`);
    /// empty: plain text.
    pub tls_cert: String,
    /// PEM private key of `tls_cert`.
    pub tls_key: String,
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            grpc_listen: SocketAddr::from(([0, 0, 0, 0], 8081)),
            tls_cert: String::new(),
            tls_key: String::new(),
        }
    }
}

impl ApiSection {
    /// `(certificate, key)` PEM paths when TLS is configured.
    pub fn tls(&self) -> Option<(&str, &str)> {
        (!self.tls_cert.trim().is_empty() && !self.tls_key.trim().is_empty())
            .then(|| (self.tls_cert.trim(), self.tls_key.trim()))
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`: logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `tracing` EnvFilter directives, e.g. `info` or `info,orca_master=debug`.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Where the logs of finished attempts are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStoreKind {
    /// In the metadata database (`task_logs` table).
    #[default]
    Db,
    /// Files under `log_store.dir`.
    Dir,
    /// An S3-compatible object store (`log_store.s3_*`).
    S3,
}

impl LogStoreKind {
    /// `db`, `dir` or `s3`, as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            LogStoreKind::Db => "db",
            LogStoreKind::Dir => "dir",
            LogStoreKind::S3 => "s3",
        }
    }
}

/// `[log_store]`: where the master keeps the logs workers ship when an
/// attempt ends, and where the API reads them. Metadata (size, truncated,
/// shipped at, where the bytes are) is always in the database.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogStoreConfig {
    /// `db`, `dir` or `s3`.
    pub kind: LogStoreKind,
    /// Root directory of `kind = "dir"`.
    pub dir: PathBuf,
    /// Bucket of `kind = "s3"`.
    pub s3_bucket: String,
    /// Key prefix inside the bucket (no leading `/`); empty: none.
    pub s3_prefix: String,
    /// Endpoint URL of an S3-compatible server; empty: AWS (or `AWS_ENDPOINT_URL`).
    pub s3_endpoint: String,
    /// Region; empty: `AWS_REGION`/`AWS_DEFAULT_REGION`, else `us-east-1`.
    pub s3_region: String,
    /// Allow a plain `http://` endpoint.
    pub s3_allow_http: bool,
    /// Access key id; empty: `AWS_ACCESS_KEY_ID` (or instance credentials).
    pub s3_access_key_id: String,
    /// Secret access key; empty: `AWS_SECRET_ACCESS_KEY`.
    pub s3_secret_access_key: String,
}

/// This machine's hostname (from `/proc/sys/kernel/hostname`, then
/// `$HOSTNAME`), or `localhost` when neither is available. Used for the
/// empty-means-hostname defaults.
pub fn local_hostname() -> String {
    let from_proc = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string());
    from_proc
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".to_string())
}

fn non_empty_or(value: &str, fallback: &str) -> String {
    if value.is_empty() {
        fallback.to_string()
    } else {
        value.to_string()
    }
}
