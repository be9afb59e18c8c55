//! Where a client verb finds its server and token.
//!
//! The server: `--server`/`ORCA_SERVER`, else the one `orca login` saved in
//! `$XDG_CONFIG_HOME/orca/config.toml` (default `~/.config/orca/config.toml`),
//! else the local standalone's `<data-dir>/cli.json`. The token:
//! `--token`/`ORCA_TOKEN`, else the one saved for that same server (a token
//! is never sent to a server it was not issued for).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::client::{CREDENTIALS_FILE, read_credentials};

/// The keys of the config file the CLI reads (others are kept as they are).
#[derive(Debug, Default, Deserialize)]
pub struct ClientConfig {
    pub server: Option<String>,
    pub token: Option<String>,
    /// PEM file of extra CA certificates trusted for `https://` servers
    /// (e.g. a self-signed server certificate); `ORCA_CA_CERT` overrides.
    pub ca_cert: Option<String>,
}

/// The CA file a client trusts besides the public roots: `ORCA_CA_CERT`,
/// else `ca_cert` of the config file.
pub fn ca_cert_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ORCA_CA_CERT").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let cfg = config_path().and_then(|p| load(&p).ok().flatten())?;
    cfg.ca_cert
        .filter(|c| !c.trim().is_empty())
        .map(PathBuf::from)
}

/// The HTTP client of the client verbs: public roots plus the certificates
/// of [`ca_cert_path`].
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder();
    if let Some(path) = ca_cert_path() {
        let pem = std::fs::read(&path)
            .with_context(|| format!("cannot read the CA certificate {}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{} is not a PEM certificate (bundle)", path.display()))?;
        if certs.is_empty() {
            bail!("{} holds no PEM certificate", path.display());
        }
        for c in certs {
            builder = builder.add_root_certificate(c);
        }
    }
    builder.build().context("cannot set up the HTTP client")
}

/// The config file path: `$XDG_CONFIG_HOME/orca/config.toml`, else
/// `$HOME/.config/orca/config.toml`; `None` when neither variable is set.
pub fn config_path() -> Option<PathBuf> {
    let non_empty = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    // The XDG spec says relative values are to be ignored.
    let base = non_empty("XDG_CONFIG_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| non_empty("HOME").map(|h| h.join(".config")))?;
    Some(base.join("orca").join("config.toml"))
}

/// Reads the config file; `Ok(None)` when it does not exist.
pub fn load(path: &Path) -> anyhow::Result<Option<ClientConfig>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    toml::from_str(&text).map(Some).with_context(|| {
        format!(
            "{} is not a valid Orca client config (expected `server = \"…\"` and `token = \"…\"`); fix it or run `orca login` again",
            path.display()
        )
    })
}

/// Stores `server` and `token` in the config file (mode 0600, directory
/// 0700 when created), keeping any other keys. Written to a temporary file
/// and renamed, so a crash never leaves half a file.
pub fn save(path: &Path, server: &str, token: &str) -> anyhow::Result<()> {
    let mut table = match std::fs::read_to_string(path) {
        Ok(text) => text.parse::<toml::Table>().with_context(|| {
            format!(
                "{} is not valid TOML; fix or remove it, then log in again",
                path.display()
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    table.insert("server".into(), toml::Value::String(server.into()));
    table.insert("token".into(), toml::Value::String(token.into()));
    let text = toml::to_string(&table).context("cannot encode the client config as TOML")?;

    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(".config.toml.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // An earlier leftover may have other permissions.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::Error::new(e).context(format!("cannot write {}", path.display()))
    })
}

/// A resolved server and token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub server: String,
    pub token: String,
}

/// Resolves the server and token from every source (see the module doc).
/// `server`/`token` are the flag-or-env values; `data_dir` is where a local
/// standalone keeps its `cli.json`.
pub fn resolve(
    server: Option<&str>,
    token: Option<&str>,
    data_dir: &Path,
) -> anyhow::Result<Endpoint> {
    resolve_from(config_path().as_deref(), server, token, data_dir)
}

/// [`resolve`] with the config file path given (`None`: no config file).
pub fn resolve_from(
    config: Option<&Path>,
    server: Option<&str>,
    token: Option<&str>,
    data_dir: &Path,
) -> anyhow::Result<Endpoint> {
    let file = match config {
        Some(p) => load(p)?.map(|c| (p, c)),
        None => None,
    };
    let local = if data_dir.join(CREDENTIALS_FILE).exists() {
        Some(read_credentials(data_dir)?)
    } else {
        None
    };
    // The server: flag/env, else the one `orca login` saved, else a local
    // standalone's. The token: flag/env, else the one saved for that same
    // server (a token is never sent to a server it was not issued for).
    let file_server = file.as_ref().and_then(|(_, c)| c.server.as_deref());
    let file_token = file.as_ref().and_then(|(_, c)| c.token.as_deref());
    let local_server = local.as_ref().map(|c| c.url.as_str());
    let local_token = local.as_ref().map(|c| c.token.as_str());
    let server_v = server.or(file_server).or(local_server).map(str::to_string);
    let same = |a: Option<&str>, b: &str| {
        a.is_some_and(|a| a.trim_end_matches('/') == b.trim_end_matches('/'))
    };
    let token_v = token.map(str::to_string).or_else(|| {
        let chosen = server_v.as_deref()?;
        if same(file_server, chosen) {
            file_token.map(str::to_string)
        } else if same(local_server, chosen) {
            local_token.map(str::to_string)
        } else {
            None
        }
    });
    let config_hint = match &file {
        Some((p, _)) => format!("{} has none", p.display()),
        None => match config {
            Some(p) => format!("{} does not exist", p.display()),
            None => "neither $XDG_CONFIG_HOME nor $HOME is set".into(),
        },
    };
    match (server_v, token_v) {
        (Some(server), Some(token)) => Ok(Endpoint { server, token }),
        (None, _) => bail!(
            "no Orca server configured ({config_hint}, and there is no {}): run `orca login --server URL`, pass --server URL (or ORCA_SERVER), or start `orca standalone --data-dir {}`",
            data_dir.join(CREDENTIALS_FILE).display(),
            data_dir.display()
        ),
        (Some(server), None) => bail!(
            "no API token for {server} ({config_hint}): run `orca login --server {server}` or pass --token (or ORCA_TOKEN)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_keeps_other_keys_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orca").join("config.toml");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "server = \"http://old\"\ncolor = true\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        save(&path, "http://new:8080", "orca_pat_x").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let table: toml::Table = text.parse().unwrap();
        assert_eq!(table["server"].as_str(), Some("http://new:8080"));
        assert_eq!(table["token"].as_str(), Some("orca_pat_x"));
        assert_eq!(table["color"].as_bool(), Some(true));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let c = load(&path).unwrap().unwrap();
        assert_eq!(c.token.as_deref(), Some("orca_pat_x"));
    }

    #[test]
    fn flags_win_and_tokens_only_go_to_their_own_server() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.toml");
        std::fs::write(&cfg, "server = \"http://file\"\ntoken = \"file-token\"\n").unwrap();
        let data = dir.path().join("data");
        let r = resolve_from(Some(&cfg), None, None, &data).unwrap();
        assert_eq!(
            (r.server.as_str(), r.token.as_str()),
            ("http://file", "file-token")
        );
        // Another server by flag: the saved token is not sent there.
        let e = resolve_from(Some(&cfg), Some("http://flag"), None, &data).unwrap_err();
        assert!(
            format!("{e}").contains("no API token for http://flag"),
            "{e}"
        );
        let r = resolve_from(Some(&cfg), Some("http://file/"), None, &data).unwrap();
        assert_eq!(r.token, "file-token");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(
            data.join(CREDENTIALS_FILE),
            r#"{"url":"http://local","token":"local-token"}"#,
        )
        .unwrap();
        // The login wins over a local standalone's credentials...
        let r = resolve_from(Some(&cfg), None, None, &data).unwrap();
        assert_eq!(
            (r.server.as_str(), r.token.as_str()),
            ("http://file", "file-token")
        );
        // ...which still serve their own server, and the token flag wins.
        let r = resolve_from(Some(&cfg), Some("http://local"), None, &data).unwrap();
        assert_eq!(r.token, "local-token");
        let r = resolve_from(None, None, Some("flag-token"), &data).unwrap();
        assert_eq!(
            (r.server.as_str(), r.token.as_str()),
            ("http://local", "flag-token")
        );
    }

    #[test]
    fn nothing_configured_says_how_to_fix_it() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.toml");
        let e = resolve_from(Some(&cfg), None, None, dir.path()).unwrap_err();
        assert!(format!("{e}").contains("orca login --server"), "{e}");
        let e = resolve_from(Some(&cfg), Some("http://x"), None, dir.path()).unwrap_err();
        assert!(format!("{e}").contains("no API token for http://x"), "{e}");
    }

    #[test]
    fn missing_file_loads_as_none_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(&dir.path().join("nope.toml")).unwrap().is_none());
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "server = [").unwrap();
        let e = load(&bad).unwrap_err();
        assert!(format!("{e:#}").contains("bad.toml"), "{e:#}");
    }
}
