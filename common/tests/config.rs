//! Layered configuration: precedence, env parsing, error reporting,
//! validation, explain, the shipped examples and docs/CONFIG.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use orca_common::config::{
    self, ConfigError, ConfigSources, DispatchPolicy, LogFormat, OrcaConfig, ValueSource,
    reference::reference_markdown,
};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

struct TomlFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn toml_file(text: &str) -> TomlFile {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orca.toml");
    std::fs::write(&path, text).unwrap();
    TomlFile { _dir: dir, path }
}

fn with_file(file: &TomlFile) -> ConfigSources {
    ConfigSources {
        file: Some(file.path.clone()),
        overrides: vec![],
    }
}

fn overrides(items: &[&str]) -> ConfigSources {
    ConfigSources {
        file: None,
        overrides: items.iter().map(|s| s.to_string()).collect(),
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn file_line(err: &ConfigError) -> (String, Option<usize>) {
    let origin = match err {
        ConfigError::UnknownKey { origin, .. } | ConfigError::InvalidValue { origin, .. } => origin,
        other => panic!("no origin in {other:?}"),
    };
    match origin {
        ValueSource::File { path, line } => (path.display().to_string(), *line),
        other => panic!("expected a file origin, got {other:?}"),
    }
}

// ---- defaults and precedence -------------------------------------------

#[test]
fn defaults_alone_give_the_documented_values_and_validate() {
    let cfg = config::load_with_env(&ConfigSources::default(), &[]).unwrap();
    assert_eq!(cfg, OrcaConfig::default());
    assert_eq!(cfg.store.url, "postgres://orca:orca@127.0.0.1:5432/orca");
    assert_eq!(cfg.registry.endpoints, vec!["http://127.0.0.1:2379"]);
    assert_eq!(cfg.registry.lease_ttl, Duration::from_secs(10));
    assert_eq!(cfg.registry.keepalive_interval, Duration::from_secs(3));
    assert_eq!(cfg.registry.fence_margin, Duration::from_secs(2));
    assert_eq!(cfg.master.listen, addr("0.0.0.0:5678"));
    assert_eq!(cfg.master.http_listen, addr("0.0.0.0:9101"));
    assert_eq!(cfg.master.dispatch_policy, DispatchPolicy::LowestWeight);
    assert_eq!(cfg.worker.listen, addr("0.0.0.0:5679"));
    assert_eq!(cfg.worker.slots, 0);
    assert_eq!(cfg.worker.data_dir, PathBuf::from("orca-worker-data"));
    assert_eq!(cfg.api.listen, addr("0.0.0.0:8080"));
    assert_eq!(cfg.log.format, LogFormat::Text);
    config::validate(&cfg).unwrap();
}

#[test]
fn each_layer_overrides_the_one_before() {
    let file = toml_file(
        "[master]\nlisten = \"10.0.0.1:1001\"\n\n[worker]\nslots = 3\n\n[log]\nlevel = \"debug\"\n",
    );
    let vars = env(&[
        ("ORCA_MASTER__LISTEN", "10.0.0.2:1002"),
        ("ORCA_WORKER__SLOTS", "5"),
    ]);
    let mut sources = with_file(&file);

    // file over defaults
    let cfg = config::load_with_env(&sources, &[]).unwrap();
    assert_eq!(cfg.master.listen, addr("10.0.0.1:1001"));
    assert_eq!(cfg.worker.slots, 3);
    assert_eq!(cfg.log.level, "debug");
    assert_eq!(
        cfg.api.listen,
        addr("0.0.0.0:8080"),
        "untouched key keeps its default"
    );

    // env over file
    let cfg = config::load_with_env(&sources, &vars).unwrap();
    assert_eq!(cfg.master.listen, addr("10.0.0.2:1002"));
    assert_eq!(cfg.worker.slots, 5);
    assert_eq!(
        cfg.log.level, "debug",
        "file value not overridden by env stays"
    );

    // override over env; later override over earlier one
    sources.overrides = vec![
        "master.listen=10.0.0.3:1003".into(),
        "master.listen=10.0.0.4:1004".into(),
    ];
    let cfg = config::load_with_env(&sources, &vars).unwrap();
    assert_eq!(cfg.master.listen, addr("10.0.0.4:1004"));
    assert_eq!(cfg.worker.slots, 5);

    let explained = config::explain_with_env(&sources, &vars).unwrap();
    let source_of = |key: &str| {
        explained
            .iter()
            .find(|v| v.key == key)
            .map(|v| (v.value.clone(), v.source.clone()))
            .unwrap()
    };
    let file_label = format!("file {}", file.path.display());
    assert_eq!(
        source_of("master.listen"),
        ("\"10.0.0.4:1004\"".into(), "override".into())
    );
    assert_eq!(
        source_of("worker.slots"),
        ("5".into(), "env ORCA_WORKER__SLOTS".into())
    );
    assert_eq!(source_of("log.level"), ("\"debug\"".into(), file_label));
    assert_eq!(
        source_of("api.listen"),
        ("\"0.0.0.0:8080\"".into(), "default".into())
    );
}

// ---- environment -----------------------------------------------------------

#[test]
fn env_lists_numbers_and_durations_are_typed() {
    let vars = env(&[
        ("ORCA_REGISTRY__ENDPOINTS", "http://a:2379, http://b:2379,"),
        ("ORCA_WORKER__LABELS", "[\"gpu\", \"cuda12\"]"),
        ("ORCA_WORKER__SLOTS", " 12 "),
        ("ORCA_REGISTRY__LEASE_TTL", "30s"),
        ("ORCA_MASTER__DISPATCH_POLICY", "round_robin"),
        ("ORCA_LOG__FORMAT", "json"),
        ("orca_master__id", "not-a-config-var (lowercase prefix)"),
    ]);
    let cfg = config::load_with_env(&ConfigSources::default(), &vars).unwrap();
    assert_eq!(
        cfg.registry.endpoints,
        vec!["http://a:2379", "http://b:2379"]
    );
    assert_eq!(cfg.worker.labels, vec!["gpu", "cuda12"]);
    assert_eq!(cfg.worker.slots, 12);
    assert_eq!(cfg.registry.lease_ttl, Duration::from_secs(30));
    assert_eq!(cfg.master.dispatch_policy, DispatchPolicy::RoundRobin);
    assert_eq!(cfg.log.format, LogFormat::Json);
    assert_eq!(cfg.master.id, "");

    let cleared = env(&[("ORCA_WORKER__LABELS", "")]);
    let file = toml_file("[worker]\nlabels = [\"a\"]\n");
    let cfg = config::load_with_env(&with_file(&file), &cleared).unwrap();
    assert!(
        cfg.worker.labels.is_empty(),
        "an empty variable clears the list"
    );
}

#[test]
fn cli_owned_orca_variables_are_not_configuration() {
    let vars = env(&[
        ("ORCA_SERVER", "http://x"),
        ("ORCA_TOKEN", "t"),
        ("ORCA_DATA_DIR", "d"),
        ("ORCA_LOG", "debug"),
        ("ORCA_HTTP", "127.0.0.1:1"),
        ("PATH", "/bin"),
    ]);
    let cfg = config::load_with_env(&ConfigSources::default(), &vars).unwrap();
    assert_eq!(cfg, OrcaConfig::default());
}

#[test]
fn unknown_env_key_names_variable_and_suggests_the_variable() {
    let vars = env(&[("ORCA_MASTER__LISTN", "0.0.0.0:1")]);
    let err = config::load_with_env(&ConfigSources::default(), &vars).unwrap_err();
    let ConfigError::UnknownKey {
        key,
        origin,
        suggestion,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(key, "master.listn");
    assert_eq!(
        origin,
        &ValueSource::Env {
            var: "ORCA_MASTER__LISTN".into()
        }
    );
    assert_eq!(suggestion.as_deref(), Some("master.listen"));
    let msg = err.to_string();
    assert!(msg.starts_with("ORCA-CONFIG-UNKNOWN-KEY"), "{msg}");
    assert!(
        msg.contains("ORCA_MASTER__LISTN") && msg.contains("did you mean ORCA_MASTER__LISTEN?"),
        "{msg}"
    );

    let err = config::load_with_env(
        &ConfigSources::default(),
        &env(&[("ORCA_STORAGE__URL", "x")]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("ORCA_STORE__URL"), "{err}");
}

#[test]
fn single_underscore_env_typo_is_an_error() {
    let vars = env(&[("ORCA_WORKER_SLOTS", "4")]);
    let err = config::load_with_env(&ConfigSources::default(), &vars).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.code(), "ORCA-CONFIG-UNKNOWN-KEY");
    assert!(
        msg.contains("ORCA_WORKER_SLOTS") && msg.contains("ORCA_WORKER__SLOTS"),
        "{msg}"
    );
}

#[test]
fn wrong_type_from_env_names_the_variable() {
    let vars = env(&[("ORCA_WORKER__SLOTS", "many")]);
    let err = config::load_with_env(&ConfigSources::default(), &vars).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, ConfigError::InvalidValue { key, .. } if key == "worker.slots"),
        "{err:?}"
    );
    assert!(
        msg.contains("ORCA_WORKER__SLOTS") && msg.contains("many"),
        "{msg}"
    );
}

// ---- file errors -----------------------------------------------------------

#[test]
fn unknown_key_in_file_names_key_file_line_and_suggestion() {
    let file = toml_file("[master]\nlisten = \"0.0.0.0:1\"\nlistn = \"0.0.0.0:2\"\n");
    let err = config::load_with_env(&with_file(&file), &[]).unwrap_err();
    assert!(
        matches!(&err, ConfigError::UnknownKey { key, suggestion: Some(s), .. }
            if key == "master.listn" && s == "master.listen"),
        "{err:?}"
    );
    assert_eq!(file_line(&err), (file.path.display().to_string(), Some(3)));
    let msg = err.to_string();
    assert!(
        msg.contains(&file.path.display().to_string()) && msg.contains("line 3"),
        "{msg}"
    );
    assert!(msg.contains("did you mean `listen` in [master]"), "{msg}");
}

#[test]
fn unknown_section_and_misplaced_key_in_file_are_errors() {
    let file = toml_file("# comment\n[mastr]\nlisten = \"0.0.0.0:1\"\n");
    let err = config::load_with_env(&with_file(&file), &[]).unwrap_err();
    assert!(
        matches!(&err, ConfigError::UnknownKey { key, suggestion: Some(s), .. } if key == "mastr" && s == "master"),
        "{err:?}"
    );
    assert_eq!(file_line(&err).1, Some(2));

    let file = toml_file("[master]\nslots = 4\n");
    let err = config::load_with_env(&with_file(&file), &[]).unwrap_err();
    assert!(err.to_string().contains("worker.slots"), "{err}");

    let file = toml_file("listen = \"0.0.0.0:1\"\n");
    let err = config::load_with_env(&with_file(&file), &[]).unwrap_err();
    assert_eq!(err.code(), "ORCA-CONFIG-UNKNOWN-KEY", "{err}");

    let file = toml_file("master = 5\n");
    let err = config::load_with_env(&with_file(&file), &[]).unwrap_err();
    assert!(err.to_string().contains("[master]"), "{err}");
}

#[test]
fn wrong_type_in_file_names_key_and_file() {
    let file = toml_file("[worker]\n\nslots = \"many\"\n");
    let err = config::load_with_env(&with_file(&file), &[]).unwrap_err();
    assert!(
        matches!(&err, ConfigError::InvalidValue { key, .. } if key == "worker.slots"),
        "{err:?}"
    );
    assert_eq!(file_line(&err), (file.path.display().to_string(), Some(3)));
    let msg = err.to_string();
    assert!(
        msg.starts_with("ORCA-CONFIG-INVALID-VALUE: `worker.slots`"),
        "{msg}"
    );
    assert!(msg.contains("many") && msg.contains("line 3"), "{msg}");

    for (text, key, expect) in [
        (
            "[master]\nlisten = \"localhost\"\n",
            "master.listen",
            "socket address",
        ),
        (
            "[master]\ndispatch_policy = \"fastest\"\n",
            "master.dispatch_policy",
            "round_robin",
        ),
        ("[log]\nformat = \"xml\"\n", "log.format", "json"),
        (
            "[registry]\nendpoints = \"http://a:2379\"\n",
            "registry.endpoints",
            "sequence",
        ),
    ] {
        let file = toml_file(text);
        let err = config::load_with_env(&with_file(&file), &[]).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(&err, ConfigError::InvalidValue { key: k, .. } if k == key),
            "{text}: {err:?}"
        );
        assert!(msg.contains(expect), "{text}: {msg}");
    }
}

#[test]
fn bad_durations_name_the_key() {
    for (text, expect) in [
        ("lease_ttl = \"10x\"", "invalid duration `10x`"),
        ("lease_ttl = \"ten seconds\"", "invalid duration"),
        ("lease_ttl = 10", "\"10s\""),
    ] {
        let file = toml_file(&format!("[registry]\n{text}\n"));
        let err = config::load_with_env(&with_file(&file), &[]).unwrap_err();
        assert!(
            matches!(&err, ConfigError::InvalidValue { key, .. } if key == "registry.lease_ttl"),
            "{text}: {err:?}"
        );
        assert!(err.to_string().contains(expect), "{text}: {err}");
    }
    let err = config::load_with_env(&overrides(&["worker.kill_grace=5"]), &[]).unwrap_err();
    assert!(
        err.to_string().contains("override `worker.kill_grace=5`"),
        "{err}"
    );
}

#[test]
fn toml_syntax_error_and_missing_file() {
    let file = toml_file("[master]\nlisten = \n");
    let err = config::load_with_env(&with_file(&file), &[]).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Parse { line: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&file.path.display().to_string()));

    let sources = ConfigSources {
        file: Some(PathBuf::from("/nonexistent/orca.toml")),
        overrides: vec![],
    };
    let err = config::load_with_env(&sources, &[]).unwrap_err();
    assert_eq!(err.code(), "ORCA-CONFIG-READ");
    assert!(err.to_string().contains("/nonexistent/orca.toml"), "{err}");
}

// ---- overrides -----------------------------------------------------------

#[test]
fn override_errors() {
    let err = config::load_with_env(&overrides(&["master.listn=0.0.0.0:1"]), &[]).unwrap_err();
    assert!(
        matches!(&err, ConfigError::UnknownKey { origin: ValueSource::Override { .. }, suggestion: Some(s), .. } if s == "master.listen"),
        "{err:?}"
    );
    for bad in ["master.listen", "=x", "master=x"] {
        let err = config::load_with_env(&overrides(&[bad]), &[]).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::OverrideSyntax { .. } | ConfigError::UnknownKey { .. }
            ),
            "{bad}: {err:?}"
        );
    }
    let err = config::load_with_env(&overrides(&["master.listen"]), &[]).unwrap_err();
    assert_eq!(err.code(), "ORCA-CONFIG-OVERRIDE-SYNTAX");

    let cfg = config::load_with_env(
        &overrides(&["registry.endpoints=http://a:1,http://b:2", "worker.slots=7"]),
        &[],
    )
    .unwrap();
    assert_eq!(cfg.registry.endpoints, vec!["http://a:1", "http://b:2"]);
    assert_eq!(cfg.worker.slots, 7);
}

// ---- validate ------------------------------------------------------------

fn problem_keys(err: ConfigError) -> Vec<String> {
    match err {
        ConfigError::Invalid { problems } => problems.into_iter().map(|p| p.key).collect(),
        other => panic!("expected ORCA-CONFIG-INVALID, got {other:?}"),
    }
}

#[test]
fn validate_reports_every_problem_by_key() {
    let mut cfg = OrcaConfig::default();
    cfg.store.url = "mysql://u:secret@h/db".into();
    cfg.registry.endpoints.clear();
    cfg.registry.prefix = "orca".into();
    cfg.master.command_poll_interval = Duration::ZERO;
    cfg.master.http_listen = cfg.master.listen;
    cfg.worker.slots = 1_000_000;
    cfg.worker.labels = vec!["a b".into()];
    cfg.worker.python_preload = vec![
        "numpy".into(),
        "sklearn.linear_model".into(),
        "os; rm".into(),
    ];
    cfg.worker.id = "w/1".into();
    let err = config::validate(&cfg).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("ORCA-CONFIG-INVALID"), "{msg}");
    assert!(!msg.contains("secret"), "password leaked: {msg}");
    assert_eq!(
        problem_keys(err),
        vec![
            "store.url",
            "registry.endpoints",
            "registry.prefix",
            "master.http_listen",
            "master.command_poll_interval",
            "worker.id",
            "worker.labels",
            "worker.python_preload",
            "worker.slots",
        ]
    );
}

#[test]
fn validate_lease_timing() {
    let mut cfg = OrcaConfig::default();
    cfg.registry.fence_margin = Duration::from_secs(10);
    let err = config::validate(&cfg).unwrap_err();
    assert!(
        err.to_string().contains("registry.lease_ttl (10s)"),
        "{err}"
    );
    assert_eq!(problem_keys(err), vec!["registry.fence_margin"]);

    let mut cfg = OrcaConfig::default();
    cfg.registry.keepalive_interval = Duration::from_secs(8); // 10s - 2s = 8s
    assert_eq!(
        problem_keys(config::validate(&cfg).unwrap_err()),
        vec!["registry.keepalive_interval"]
    );
    cfg.registry.keepalive_interval = Duration::from_millis(7_999);
    config::validate(&cfg).unwrap();

    let mut cfg = OrcaConfig::default();
    cfg.registry.lease_ttl = Duration::ZERO;
    let keys = problem_keys(config::validate(&cfg).unwrap_err());
    assert!(keys.contains(&"registry.lease_ttl".to_string()), "{keys:?}");

    let mut cfg = OrcaConfig::default();
    cfg.store.url = "sqlite:///tmp/orca.db?mode=rwc".into();
    cfg.registry.endpoints = vec!["https://etcd:2379".into(), "etcd2:2379".into()];
    config::validate(&cfg).unwrap();
    cfg.registry.endpoints = vec!["ftp://etcd:2379".into()];
    assert_eq!(
        problem_keys(config::validate(&cfg).unwrap_err()),
        vec!["registry.endpoints"]
    );
}

#[test]
fn check_names_where_a_bad_value_came_from() {
    let file = toml_file("[registry]\nlease_ttl = \"2s\"\n");
    let err = config::check_with_env(
        &with_file(&file),
        &env(&[("ORCA_REGISTRY__FENCE_MARGIN", "3s")]),
    )
    .unwrap_err();
    let ConfigError::Invalid { problems } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(problems[0].key, "registry.fence_margin");
    assert_eq!(
        problems[0].origin,
        Some(ValueSource::Env {
            var: "ORCA_REGISTRY__FENCE_MARGIN".into()
        })
    );
    assert!(
        err.to_string()
            .contains("environment variable ORCA_REGISTRY__FENCE_MARGIN"),
        "{err}"
    );

    let ok = config::check_with_env(
        &with_file(&file),
        &env(&[
            ("ORCA_REGISTRY__FENCE_MARGIN", "1s"),
            ("ORCA_REGISTRY__KEEPALIVE_INTERVAL", "500ms"),
        ]),
    )
    .unwrap();
    assert_eq!(ok.registry.keepalive_interval, Duration::from_millis(500));
}

// ---- explain -------------------------------------------------------------

#[test]
fn explain_lists_every_key_in_order_and_masks_the_password() {
    let sources = overrides(&["store.url=postgres://orca:s3cret@db:5432/orca"]);
    let explained =
        config::explain_with_env(&sources, &env(&[("ORCA_REGISTRY__LEASE_TTL", "90000ms")]))
            .unwrap();
    let keys: Vec<&str> = explained.iter().map(|v| v.key.as_str()).collect();
    let documented: Vec<&str> = config::reference::KEY_DOCS
        .iter()
        .map(|(k, _)| *k)
        .collect();
    assert_eq!(keys, documented);
    let url = explained.iter().find(|v| v.key == "store.url").unwrap();
    assert_eq!(url.value, "\"postgres://orca:***@db:5432/orca\"");
    assert_eq!(url.source, "override");
    let ttl = explained
        .iter()
        .find(|v| v.key == "registry.lease_ttl")
        .unwrap();
    assert_eq!(
        (ttl.value.as_str(), ttl.source.as_str()),
        ("\"1m30s\"", "env ORCA_REGISTRY__LEASE_TTL")
    );
    let endpoints = explained
        .iter()
        .find(|v| v.key == "registry.endpoints")
        .unwrap();
    assert_eq!(endpoints.value, "[\"http://127.0.0.1:2379\"]");
}

// ---- derived values ------------------------------------------------------

#[test]
fn empty_ids_hosts_and_slots_have_derived_values() {
    let cfg = OrcaConfig::default();
    assert_eq!(cfg.master.effective_id("box"), "master-box-5678");
    assert_eq!(cfg.master.effective_advertise_host("box"), "box");
    assert_eq!(cfg.worker.effective_advertise_host("box"), "box");
    assert_eq!(cfg.worker.effective_slots(3), 12);
    let mut cfg = cfg;
    cfg.master.id = "m1".into();
    cfg.worker.slots = 2;
    assert_eq!(cfg.master.effective_id("box"), "m1");
    assert_eq!(cfg.worker.effective_slots(3), 2);
    assert_eq!(
        cfg.worker.effective_attempt_retention(),
        Some(std::time::Duration::from_secs(24 * 3600))
    );
    cfg.worker.attempt_retention = std::time::Duration::ZERO;
    assert_eq!(cfg.worker.effective_attempt_retention(), None);
}

// ---- shipped examples and docs ------------------------------------------

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn every_example_loads_and_validates() {
    let dir = repo_root().join("deploy/examples");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let sources = ConfigSources {
                file: Some(path.clone()),
                overrides: vec![],
            };
            let cfg = config::check_with_env(&sources, &[])
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen.push((path.file_name().unwrap().to_string_lossy().to_string(), cfg));
        }
    }
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "api.toml",
            "cluster-local.toml",
            "master.toml",
            "worker.toml"
        ]
    );
    let local = &seen[1].1;
    assert_eq!(local.master.listen, addr("127.0.0.1:5678"));
    assert_eq!(local.worker.slots, 8);
    assert_eq!(local.registry.prefix, "/orca-local");
    // master/worker/api examples show the defaults.
    assert_eq!(seen[2].1, OrcaConfig::default());
    assert_eq!(seen[3].1, OrcaConfig::default());
}

#[test]
fn docs_config_md_is_generated_and_names_every_key() {
    let path = repo_root().join("docs/CONFIG.md");
    let expected = reference_markdown();
    if std::env::var_os("ORCA_BLESS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    // Every key with its default (unmasked) and variable, whatever the prose.
    let defaults = toml::Value::try_from(OrcaConfig::default()).unwrap();
    for key in config::reference::KEY_DOCS.iter().map(|(k, _)| *k) {
        let (section, leaf) = key.split_once('.').unwrap();
        let default = defaults[section][leaf].to_string();
        let row = format!(
            "| `{key}` | `{default}` | `{}` |",
            config::env_var_name(key)
        );
        assert!(actual.contains(&row), "docs/CONFIG.md lacks {row}");
    }
    assert!(
        actual == expected,
        "docs/CONFIG.md is out of date; run ORCA_BLESS=1 cargo test -p orca-common --test config"
    );
}

// ---- [log_store] ---------------------------------------------------------

#[test]
fn log_store_defaults_to_the_database_and_loads_from_every_layer() {
    use orca_common::config::LogStoreKind;
    assert_eq!(OrcaConfig::default().log_store.kind, LogStoreKind::Db);
    let file = toml_file(
        "[log_store]\nkind = \"s3\"\ns3_bucket = \"orca-logs\"\ns3_prefix = \"orca/logs\"\n",
    );
    let cfg = config::check_with_env(
        &ConfigSources {
            overrides: vec!["log_store.s3_allow_http=true".into()],
            ..with_file(&file)
        },
        &env(&[("ORCA_LOG_STORE__S3_ENDPOINT", "http://127.0.0.1:9000")]),
    )
    .unwrap();
    let l = &cfg.log_store;
    assert_eq!(l.kind, LogStoreKind::S3);
    assert_eq!(
        (
            l.s3_bucket.as_str(),
            l.s3_prefix.as_str(),
            l.s3_endpoint.as_str()
        ),
        ("orca-logs", "orca/logs", "http://127.0.0.1:9000")
    );
    assert!(l.s3_allow_http);
    let dir = config::check_with_env(
        &overrides(&["log_store.kind=dir", "log_store.dir=/var/lib/orca/logs"]),
        &[],
    )
    .unwrap();
    assert_eq!(dir.log_store.dir, Path::new("/var/lib/orca/logs"));
}

#[test]
fn log_store_unknown_keys_and_kinds_name_the_key() {
    let file = toml_file("[log_store]\nkind = \"dir\"\ndirectory = \"/x\"\n");
    let err = config::load_with_env(&with_file(&file), &[]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("log_store.directory"), "{msg}");
    assert_eq!(file_line(&err).1, Some(3));
    let err = config::load_with_env(&overrides(&["log_store.kind=ftp"]), &[]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("log_store.kind") && msg.contains("ftp"),
        "{msg}"
    );
    let err = config::load_with_env(
        &ConfigSources::default(),
        &env(&[("ORCA_LOG_STORE__BUCKET", "b")]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("ORCA_LOG_STORE__BUCKET"), "{err}");
}

#[test]
fn log_store_invalid_combinations_are_reported_by_key() {
    let check = |items: &[&str]| {
        config::check_with_env(&overrides(items), &[])
            .map(|_| ())
            .map_err(|e| {
                let msg = e.to_string();
                (problem_keys(e), msg)
            })
    };
    // A kind without what it needs.
    let (keys, msg) = check(&["log_store.kind=dir"]).unwrap_err();
    assert_eq!(keys, vec!["log_store.dir"]);
    assert!(
        msg.contains("override log_store.kind=dir") || msg.contains("log_store.dir"),
        "{msg}"
    );
    let (keys, _) = check(&["log_store.kind=s3"]).unwrap_err();
    assert_eq!(keys, vec!["log_store.s3_bucket"]);
    // Keys of another kind.
    let (keys, msg) = check(&["log_store.dir=/x", "log_store.s3_bucket=logs"]).unwrap_err();
    assert_eq!(keys, vec!["log_store.dir", "log_store.s3_bucket"]);
    assert!(msg.contains("kind is \"db\""), "{msg}");
    // S3 details.
    let (keys, _) = check(&[
        "log_store.kind=s3",
        "log_store.s3_bucket=Bad_Bucket",
        "log_store.s3_prefix=/abs/",
        "log_store.s3_endpoint=http://127.0.0.1:9000",
        "log_store.s3_access_key_id=AKIA",
    ])
    .unwrap_err();
    assert_eq!(
        keys,
        vec![
            "log_store.s3_bucket",
            "log_store.s3_prefix",
            "log_store.s3_endpoint",
            "log_store.s3_secret_access_key",
        ]
    );
    check(&[
        "log_store.kind=s3",
        "log_store.s3_bucket=orca-logs",
        "log_store.s3_endpoint=https://s3.example.com",
        "log_store.s3_access_key_id=AKIA",
        "log_store.s3_secret_access_key=shh",
    ])
    .unwrap();
}

#[test]
fn log_store_secret_is_masked_by_explain() {
    let explained = config::explain_with_env(
        &overrides(&[
            "log_store.kind=s3",
            "log_store.s3_secret_access_key=hunter2",
        ]),
        &[],
    )
    .unwrap();
    let secret = explained
        .iter()
        .find(|v| v.key == "log_store.s3_secret_access_key")
        .unwrap();
    assert_eq!(secret.value, "\"***\"");
    assert!(explained.iter().all(|v| !v.value.contains("hunter2")));
}
