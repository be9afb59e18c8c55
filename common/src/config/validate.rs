//! Semantic checks of a loaded configuration.

use std::time::Duration;

use super::duration::format_duration;
use super::error::{ConfigError, ConfigProblem};
use super::layers::{ConfigSources, load_detailed, mask_password, process_env};
use super::{LogStoreKind, OrcaConfig, env_var_name};

/// More slots than this is taken for a typo.
const MAX_SLOTS: u32 = 10_000;

/// Checks what types cannot: store URL scheme, registry endpoints and
/// timing (`fence_margin < lease_ttl`, `keepalive_interval < lease_ttl -
/// fence_margin`), durations > 0, slots, ids and hosts. Reports every
/// problem at once, each naming its key.
pub fn validate(cfg: &OrcaConfig) -> Result<(), ConfigError> {
    let problems = problems(cfg);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid { problems })
    }
}

/// [`super::load`] then [`validate`], each problem naming where its key's
/// value came from. What `orca master|worker|api` run at start.
pub fn check(sources: &ConfigSources) -> Result<OrcaConfig, ConfigError> {
    check_with_env(sources, &process_env()?)
}

/// [`check`] with the given environment instead of the process's.
pub fn check_with_env(
    sources: &ConfigSources,
    env: &[(String, String)],
) -> Result<OrcaConfig, ConfigError> {
    let loaded = load_detailed(sources, env)?;
    let mut problems = problems(&loaded.config);
    if problems.is_empty() {
        return Ok(loaded.config);
    }
    for problem in &mut problems {
        problem.origin = loaded.origins.get(&problem.key).cloned();
    }
    Err(ConfigError::Invalid { problems })
}

fn problems(cfg: &OrcaConfig) -> Vec<ConfigProblem> {
    let mut out = Problems(Vec::new());
    store(cfg, &mut out);
    registry(cfg, &mut out);
    master(cfg, &mut out);
    worker(cfg, &mut out);
    log_store(cfg, &mut out);
    api(cfg, &mut out);
    if cfg.log.level.trim().is_empty() {
        out.add(
            "log.level",
            "is empty; use a tracing filter such as \"info\" or \"info,orca_master=debug\"",
        );
    }
    out.0
}

struct Problems(Vec<ConfigProblem>);

impl Problems {
    fn add(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(ConfigProblem {
            key: key.to_string(),
            message: message.into(),
            origin: None,
        });
    }

    fn positive(&mut self, key: &str, value: Duration) {
        if value.is_zero() {
            self.add(key, "must be greater than 0 (e.g. \"1s\")");
        }
    }

    /// Ids and hosts end up in registry keys and URLs.
    fn name(&mut self, key: &str, value: &str, what: &str) {
        if value.chars().any(|c| c.is_whitespace() || c == '/') || value.contains("://") {
            self.add(
                key,
                format!("`{value}` is not a valid {what}: no spaces, `/` or scheme (`http://`)"),
            );
        }
    }
}

/// `api.tls_cert` and `api.tls_key`: both or neither, each a readable file.
fn api(cfg: &OrcaConfig, out: &mut Problems) {
    let cert = cfg.api.tls_cert.trim();
    let key = cfg.api.tls_key.trim();
    match (cert.is_empty(), key.is_empty()) {
        (true, true) => {}
        (false, true) => out.add(
            "api.tls_key",
            "is empty but api.tls_cert is set; give both (PEM files) for TLS, or neither",
        ),
        (true, false) => out.add(
            "api.tls_cert",
            "is empty but api.tls_key is set; give both (PEM files) for TLS, or neither",
        ),
        (false, false) => {
            for (k, path) in [("api.tls_cert", cert), ("api.tls_key", key)] {
                if let Err(e) = std::fs::metadata(path) {
                    out.add(k, format!("cannot read `{path}`: {e}"));
                }
            }
        }
    }
}

fn store(cfg: &OrcaConfig, out: &mut Problems) {
    let url = &cfg.store.url;
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    if !matches!(scheme, Some("postgres" | "postgresql" | "sqlite")) {
        out.add(
            "store.url",
            format!(
                "`{}` is not a PostgreSQL or SQLite URL; use postgres://USER:PASSWORD@HOST:5432/DB or sqlite://PATH?mode=rwc",
                mask_password(url)
            ),
        );
    }
}

fn registry(cfg: &OrcaConfig, out: &mut Problems) {
    let r = &cfg.registry;
    let endpoints_var = env_var_name("registry.endpoints");
    if r.endpoints.is_empty() {
        out.add(
            "registry.endpoints",
            format!(
                "is empty; list at least one etcd endpoint, e.g. [\"http://127.0.0.1:2379\"] (or {endpoints_var}=http://a:2379,http://b:2379)"
            ),
        );
    }
    for endpoint in &r.endpoints {
        let scheme_ok = match endpoint.split_once("://") {
            Some((scheme, host)) => matches!(scheme, "http" | "https") && !host.is_empty(),
            None => !endpoint.is_empty(),
        };
        if !scheme_ok || endpoint.chars().any(char::is_whitespace) {
            out.add(
                "registry.endpoints",
                format!("`{endpoint}` is not an etcd endpoint; write http://HOST:2379 or https://HOST:2379"),
            );
        }
    }
    if !r.prefix.starts_with('/') {
        out.add(
            "registry.prefix",
            format!("`{}` must start with `/`, e.g. \"/orca\"", r.prefix),
        );
    }
    out.positive("registry.lease_ttl", r.lease_ttl);
    out.positive("registry.keepalive_interval", r.keepalive_interval);
    out.positive("registry.fence_margin", r.fence_margin);
    if !r.fence_margin.is_zero() && r.fence_margin >= r.lease_ttl {
        out.add(
            "registry.fence_margin",
            format!(
                "{} must be less than registry.lease_ttl ({}): a leader must stop acting before its lease can expire",
                format_duration(r.fence_margin),
                format_duration(r.lease_ttl)
            ),
        );
    } else if !r.keepalive_interval.is_zero()
        && r.keepalive_interval >= r.lease_ttl.saturating_sub(r.fence_margin)
    {
        out.add(
            "registry.keepalive_interval",
            format!(
                "{} must be less than registry.lease_ttl - registry.fence_margin ({} - {}), or a late renewal fences a healthy leader; e.g. a third of lease_ttl",
                format_duration(r.keepalive_interval),
                format_duration(r.lease_ttl),
                format_duration(r.fence_margin)
            ),
        );
    }
}

fn master(cfg: &OrcaConfig, out: &mut Problems) {
    let m = &cfg.master;
    out.name("master.id", &m.id, "master id");
    out.name("master.advertise_host", &m.advertise_host, "host name");
    if m.listen == m.http_listen {
        out.add(
            "master.http_listen",
            format!(
                "{} is the same address as master.listen; give /metrics its own port",
                m.http_listen
            ),
        );
    }
    out.positive("master.worker_loss_grace", m.worker_loss_grace);
    out.positive("master.command_poll_interval", m.command_poll_interval);
}

fn worker(cfg: &OrcaConfig, out: &mut Problems) {
    let w = &cfg.worker;
    out.name("worker.id", &w.id, "worker id");
    out.name("worker.advertise_host", &w.advertise_host, "host name");
    if w.listen == w.http_listen {
        out.add(
            "worker.http_listen",
            format!(
                "{} is the same address as worker.listen; give /metrics its own port",
                w.http_listen
            ),
        );
    }
    if w.group.trim().is_empty() {
        out.add("worker.group", "is empty; use \"default\" or a group name");
    }
    for label in &w.labels {
        if label.is_empty() || label.contains(',') || label.chars().any(char::is_whitespace) {
            out.add(
                "worker.labels",
                format!("label `{label}` must be non-empty, without spaces or commas"),
            );
        }
    }
    for module in &w.python_preload {
        let valid = !module.is_empty()
            && module.split('.').all(|part| {
                let mut chars = part.chars();
                chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
                    && chars.all(|c| c.is_alphanumeric() || c == '_')
            });
        if !valid {
            out.add(
                "worker.python_preload",
                format!("`{module}` is not a Python module name (e.g. \"numpy\" or \"sklearn.linear_model\")"),
            );
        }
    }
    if w.slots > MAX_SLOTS {
        out.add(
            "worker.slots",
            format!(
                "{} is more than {MAX_SLOTS}; use 0 for 4 per CPU, or a smaller number",
                w.slots
            ),
        );
    }
    if w.data_dir.as_os_str().is_empty() {
        out.add(
            "worker.data_dir",
            "is empty; give a directory, e.g. \"orca-worker-data\"",
        );
    }
    if w.python.trim().is_empty() {
        out.add(
            "worker.python",
            "is empty; give an interpreter, e.g. \"python3\"",
        );
    }
    out.positive("worker.kill_grace", w.kill_grace);
}

fn log_store(cfg: &OrcaConfig, out: &mut Problems) {
    let l = &cfg.log_store;
    let kind = l.kind.as_str();
    // Keys of another kind are a mistake (a forgotten `kind`, a typo'd
    // section): refuse them rather than silently keep logs elsewhere.
    let mut foreign = |key: &str, set: bool, belongs: LogStoreKind| {
        if set && l.kind != belongs {
            out.add(
                key,
                format!(
                    "is set but log_store.kind is \"{kind}\"; it only applies to kind = \"{}\" (set that kind, or remove the key)",
                    belongs.as_str()
                ),
            );
        }
    };
    foreign(
        "log_store.dir",
        !l.dir.as_os_str().is_empty(),
        LogStoreKind::Dir,
    );
    let s3_keys = [
        ("log_store.s3_bucket", !l.s3_bucket.is_empty()),
        ("log_store.s3_prefix", !l.s3_prefix.is_empty()),
        ("log_store.s3_endpoint", !l.s3_endpoint.is_empty()),
        ("log_store.s3_region", !l.s3_region.is_empty()),
        ("log_store.s3_allow_http", l.s3_allow_http),
        ("log_store.s3_access_key_id", !l.s3_access_key_id.is_empty()),
        (
            "log_store.s3_secret_access_key",
            !l.s3_secret_access_key.is_empty(),
        ),
    ];
    for (key, set) in s3_keys {
        foreign(key, set, LogStoreKind::S3);
    }
    match l.kind {
        LogStoreKind::Db => {}
        LogStoreKind::Dir => {
            if l.dir.as_os_str().is_empty() {
                out.add(
                    "log_store.dir",
                    "is empty but log_store.kind is \"dir\"; give the directory logs are kept in, e.g. \"/var/lib/orca/task-logs\"",
                );
            }
        }
        LogStoreKind::S3 => s3(l, out),
    }
}

fn s3(l: &super::LogStoreConfig, out: &mut Problems) {
    let bucket = &l.s3_bucket;
    if bucket.is_empty() {
        out.add(
            "log_store.s3_bucket",
            "is empty but log_store.kind is \"s3\"; give the bucket logs are kept in",
        );
    } else if bucket.len() < 3
        || bucket.len() > 63
        || !bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
    {
        out.add(
            "log_store.s3_bucket",
            format!(
                "`{bucket}` is not a bucket name: 3 to 63 lower-case letters, digits, `-` and `.`"
            ),
        );
    }
    let prefix = &l.s3_prefix;
    if prefix.starts_with('/')
        || prefix.ends_with('/')
        || prefix.split('/').any(|part| matches!(part, "." | ".."))
        || prefix.contains("//")
        || prefix.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        out.add(
            "log_store.s3_prefix",
            format!(
                "`{prefix}` is not a key prefix: no leading or trailing `/`, no empty, `.` or `..` parts, no spaces, e.g. \"orca/task-logs\""
            ),
        );
    }
    let endpoint = &l.s3_endpoint;
    if !endpoint.is_empty() {
        match endpoint.split_once("://") {
            Some(("https", host)) if !host.is_empty() => {}
            Some(("http", host)) if !host.is_empty() => {
                if !l.s3_allow_http {
                    out.add(
                        "log_store.s3_endpoint",
                        format!(
                            "`{endpoint}` is plain http; set log_store.s3_allow_http = true to allow it, or use https://"
                        ),
                    );
                }
            }
            _ => out.add(
                "log_store.s3_endpoint",
                format!("`{endpoint}` is not an endpoint URL; write https://HOST[:PORT] (or http:// with s3_allow_http)"),
            ),
        }
    }
    if l.s3_access_key_id.is_empty() != l.s3_secret_access_key.is_empty() {
        let (set, missing) = if l.s3_access_key_id.is_empty() {
            (
                "log_store.s3_secret_access_key",
                "log_store.s3_access_key_id",
            )
        } else {
            (
                "log_store.s3_access_key_id",
                "log_store.s3_secret_access_key",
            )
        };
        out.add(
            missing,
            format!("is empty but {set} is set; give both, or neither (then the AWS_* environment variables apply)"),
        );
    }
}
