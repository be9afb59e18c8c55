//! The configuration reference (`docs/CONFIG.md`), generated from the
//! defaults and the per-key descriptions below so it cannot drift: a test
//! compares the file with [`reference_markdown`].

use toml::Value;

use super::layers::known_keys;
use super::{OrcaConfig, env_var_name};

/// What a section is for and which commands read it.
pub const SECTION_DOCS: &[(&str, &str)] = &[
    (
        "store",
        "The metadata database. Read by `orca master` and `orca api`.",
    ),
    (
        "registry",
        "etcd, where masters elect a leader and workers register with a lease. Read by every component (standalone uses an in-process registry instead).",
    ),
    ("master", "The scheduler. Read by `orca master`."),
    (
        "worker",
        "The task runner. Read by `orca worker`; `orca standalone` takes `python_fork`, `python_preload`, `labels`, `kill_grace` and `attempt_retention` from it for its embedded worker (its slots and interpreter come from `--worker-slots` and `--python`).",
    ),
    (
        "api",
        "The REST and public gRPC servers. Read by `orca api`.",
    ),
    ("log", "Logging. Read by every component."),
    (
        "log_store",
        "Where the logs of finished attempts are kept, so they stay readable after their worker is gone: the metadata database (default), a directory, or an S3-compatible object store. Written by `orca master` (workers ship logs to the leader), read by `orca api`; `orca standalone` does both and reads this section from `ORCA_LOG_STORE__*` variables. Size, truncation and ship time stay in the database whatever the kind; a log keeps the backend it was written to, so after switching `kind` the older logs are read from where they are (the old backend must stay configured to read them, except `db`, always readable).",
    ),
];

/// The meaning of every key, in declaration order.
pub const KEY_DOCS: &[(&str, &str)] = &[
    (
        "store.url",
        "Database URL: `postgres://USER:PASSWORD@HOST:PORT/DB`, or `sqlite://PATH?mode=rwc` (single host only).",
    ),
    (
        "registry.endpoints",
        "etcd endpoints (`http://` or `https://`). In the environment: comma-separated.",
    ),
    (
        "registry.prefix",
        "Key prefix of Orca's registry keys in etcd; starts with `/`.",
    ),
    (
        "registry.lease_ttl",
        "Time-to-live of master and worker leases: how long a crashed process stays registered.",
    ),
    (
        "registry.keepalive_interval",
        "How often leases are renewed; must be less than `lease_ttl - fence_margin`.",
    ),
    (
        "registry.fence_margin",
        "A leader stops acting this long before its lease could expire; must be less than `lease_ttl`.",
    ),
    (
        "master.id",
        "Master id in the registry; empty: `master-<hostname>-<listen port>`.",
    ),
    ("master.listen", "gRPC address workers report to."),
    (
        "master.advertise_host",
        "Host workers use to reach this master; empty: this machine's hostname.",
    ),
    ("master.http_listen", "Address of `/health` and `/metrics`."),
    (
        "master.dispatch_policy",
        "How a worker is picked among those that fit: `lowest_weight`, `round_robin` or `random`.",
    ),
    (
        "master.worker_loss_grace",
        "How long a worker may be missing from the registry before its running attempts are treated as lost.",
    ),
    (
        "master.command_poll_interval",
        "Safety-net poll for commands written without a nudge.",
    ),
    (
        "worker.id",
        "Worker id; empty: generated on first start and kept in `data_dir`.",
    ),
    ("worker.listen", "gRPC address masters dispatch to."),
    (
        "worker.advertise_host",
        "Host masters use to reach this worker; empty: this machine's hostname.",
    ),
    ("worker.http_listen", "Address of `/health` and `/metrics`."),
    (
        "worker.group",
        "Worker group; tasks name the group they run in.",
    ),
    (
        "worker.labels",
        "Labels for dispatch routing. In the environment: comma-separated.",
    ),
    ("worker.slots", "Attempts run at once; `0`: 4 per CPU."),
    (
        "worker.data_dir",
        "Attempt directories, task logs, the outbox and the persisted worker id.",
    ),
    (
        "worker.python",
        "Interpreter of PYTHON tasks; resolved once, by the first PYTHON task, to the executable it runs (`sys.executable`), past launchers such as pyenv shims.",
    ),
    (
        "worker.python_fork",
        "Fork PYTHON tasks from a warm interpreter (one per worker, started by the first PYTHON task) instead of starting an interpreter per task: a few ms instead of tens. Each task is still its own process and process group. Tasks run as a tenant's user always start a fresh interpreter.",
    ),
    (
        "worker.python_preload",
        "Modules the fork server imports once so forked PYTHON tasks find them loaded (e.g. `[\"numpy\", \"pandas\"]`). In the environment: comma-separated. Only modules that start no threads at import are safe to preload.",
    ),
    (
        "worker.kill_grace",
        "Time between SIGTERM and SIGKILL when a task is killed or times out.",
    ),
    (
        "worker.attempt_retention",
        "How long a finished attempt's dir (script, log, records; a tenant's work dir) is kept once its report is acknowledged and its log shipped to the log store; `0s` keeps them forever.",
    ),
    (
        "api.listen",
        "REST address (`/api/v1`, `/health`, `/metrics`).",
    ),
    (
        "api.grpc_listen",
        "Public gRPC API address (`orca.v1.OrcaApi`, gRPC health, server reflection).",
    ),
    (
        "api.tls_cert",
        "PEM certificate (chain) file: with `tls_key`, REST and gRPC are served over TLS (rustls); both or neither. Empty: plain text.",
    ),
    (
        "api.tls_key",
        "PEM private key file of `tls_cert` (PKCS#8, PKCS#1 or SEC1).",
    ),
    (
        "log.level",
        "`tracing` EnvFilter directives, e.g. `info` or `info,orca_master=debug`.",
    ),
    (
        "log.format",
        "`text` (human-readable) or `json` (one object per line).",
    ),
    (
        "log_store.kind",
        "`db` (the `task_logs` table), `dir` (files under `dir`) or `s3` (an S3-compatible object store, `s3_*` keys).",
    ),
    (
        "log_store.dir",
        "Root directory of `kind = \"dir\"`: one file per attempt, `<dir>/<run id>/<task instance id>.<attempt>.log`, written atomically (temporary file, fsync, rename). Must be shared by the masters and the API server (e.g. a network file system).",
    ),
    (
        "log_store.s3_bucket",
        "Bucket of `kind = \"s3\"` (required there); objects are `<s3_prefix>/<run id>/<task instance id>.<attempt>.log`.",
    ),
    (
        "log_store.s3_prefix",
        "Key prefix inside the bucket, without leading or trailing `/`; empty: none.",
    ),
    (
        "log_store.s3_endpoint",
        "Endpoint URL of an S3-compatible server (MinIO, Ceph, ...), e.g. `http://127.0.0.1:9000`; empty: AWS S3 (or `AWS_ENDPOINT_URL`).",
    ),
    (
        "log_store.s3_region",
        "Region; empty: `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.",
    ),
    (
        "log_store.s3_allow_http",
        "Allow an `http://` endpoint (otherwise only `https://`).",
    ),
    (
        "log_store.s3_access_key_id",
        "Access key id; empty: `AWS_ACCESS_KEY_ID` (the standard AWS variables and instance credentials apply). Give it together with `s3_secret_access_key`.",
    ),
    (
        "log_store.s3_secret_access_key",
        "Secret access key (masked by `orca config check`); empty: `AWS_SECRET_ACCESS_KEY`.",
    ),
];

const INTRO: &str = r#"# Orca configuration reference

<!-- Generated from common/src/config (reference.rs and the defaults).
     Do not edit: change the code, then run
     ORCA_BLESS=1 cargo test -p orca-common --test config -->

`orca master`, `orca worker`, `orca api` and `orca standalone` read one
configuration, built in layers where a later layer wins:

1. the built-in defaults listed below, which make `orca master` work against
   a local etcd and PostgreSQL;
2. a TOML file given with `--config FILE` (every section and key optional);
3. environment variables `ORCA_<SECTION>__<KEY>` (two underscores between
   section and key), e.g. `ORCA_MASTER__LISTEN=0.0.0.0:5678`; lists are
   comma-separated, `ORCA_REGISTRY__ENDPOINTS=http://a:2379,http://b:2379`
   (a TOML array `[...]` works too);
4. `section.key=value` overrides on the command line, e.g.
   `--set master.listen=0.0.0.0:5678`.

Rules:

- Unknown keys are errors, never ignored: a misspelt key in the file, in an
  `ORCA_<SECTION>__<KEY>` variable or in an override stops the start with
  the key, where it was given (file and line, variable, override) and the
  closest known key. `ORCA_` variables without `__` (`ORCA_SERVER`,
  `ORCA_TOKEN`, ...) belong to the CLI and are not configuration, unless
  they look like a key with one underscore (`ORCA_WORKER_SLOTS`), which is an
  error suggesting `ORCA_WORKER__SLOTS`.
- Durations are strings with a unit: `"500ms"`, `"10s"`, `"2m"`, `"1h"`,
  `"1d"`, or combined, `"1m30s"`. A bare number is an error.
- Addresses are `IP:PORT` (`"0.0.0.0:5678"`); numbers are TOML numbers
  (`slots = 8`, not `"8"`).
- `orca config check` prints every key with its effective value and where it
  came from (the `store.url` password and `log_store.s3_secret_access_key`
  masked), then runs the semantic checks (URL scheme, endpoints,
  `fence_margin < lease_ttl`, `keepalive_interval < lease_ttl -
  fence_margin`, durations > 0, the keys a `log_store.kind` needs and
  refuses, ...).

Commented examples: `deploy/examples/master.toml`, `worker.toml`, `api.toml`
and `cluster-local.toml`.
"#;

/// `docs/CONFIG.md`: every key with its default, environment variable and
/// meaning, grouped by section.
pub fn reference_markdown() -> String {
    let mut out = String::from(INTRO);
    let defaults = match Value::try_from(OrcaConfig::default()) {
        Ok(Value::Table(table)) => table,
        _ => toml::Table::new(),
    };
    let keys = known_keys().unwrap_or_default();
    for (section, about) in SECTION_DOCS {
        out.push_str(&format!("\n## `[{section}]`\n\n{about}\n\n"));
        out.push_str("| Key | Default | Environment variable | Meaning |\n");
        out.push_str("|---|---|---|---|\n");
        for key in keys
            .iter()
            .filter(|k| k.split_once('.').map(|(s, _)| s) == Some(section))
        {
            let default = key
                .split_once('.')
                .and_then(|(s, k)| defaults.get(s)?.get(k))
                .map_or_else(String::new, Value::to_string);
            let meaning = KEY_DOCS
                .iter()
                .find(|(k, _)| k == key)
                .map_or("(undocumented)", |(_, meaning)| meaning);
            out.push_str(&format!(
                "| `{key}` | `{default}` | `{}` | {meaning} |\n",
                env_var_name(key)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_and_section_is_documented_exactly_once() {
        let keys = known_keys().unwrap();
        let documented: Vec<String> = KEY_DOCS.iter().map(|(k, _)| k.to_string()).collect();
        assert_eq!(
            documented, keys,
            "KEY_DOCS must list every key in declaration order"
        );
        let sections: Vec<&str> = SECTION_DOCS.iter().map(|(s, _)| *s).collect();
        let mut from_keys: Vec<&str> = keys
            .iter()
            .filter_map(|k| k.split_once('.'))
            .map(|(s, _)| s)
            .collect();
        from_keys.dedup();
        assert_eq!(sections, from_keys);
        assert!(!reference_markdown().contains("(undocumented)"));
    }
}
