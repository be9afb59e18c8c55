//! `orca admin bootstrap`, and the credentials a local server keeps for
//! the local CLI (`<data-dir>/cli.json`: a personal access token of an
//! admin, mode 0600). There are no default credentials: the first admin
//! gets a generated password, printed once, or one read from stdin.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use orca_api::auth::{
    check_password_policy, generate_password, generate_token, hash_password, hash_token,
};
use orca_store::{BootstrapOutcome, NewToken, Store, TokenKind, UserRow};

use crate::args::{AdminCommand, BootstrapArgs};
use crate::client::{CREDENTIALS_FILE, CliCredentials};

/// Username of the admin a standalone server creates on first start.
pub const DEFAULT_ADMIN: &str = "admin";
/// Name of the personal access token kept for the local CLI.
pub const CLI_TOKEN_NAME: &str = "local-cli";

/// A first admin just created.
#[derive(Debug)]
pub struct NewAdmin {
    pub user: UserRow,
    /// The generated password (`None` when the caller supplied one).
    pub generated_password: Option<String>,
}

/// Creates the first admin `username` unless an admin exists (then
/// `Ok(None)`). Without `password` one is generated.
pub async fn bootstrap_admin(
    store: &Store,
    username: &str,
    password: Option<String>,
) -> anyhow::Result<Option<NewAdmin>> {
    orca_api::routes::users::check_username(username)
        .map_err(|e| anyhow::anyhow!("--username: {e}"))?;
    let (password, generated) = match password {
        Some(p) => {
            check_password_policy(&p).map_err(|e| anyhow::anyhow!("{e}"))?;
            (p, false)
        }
        None => (generate_password(), true),
    };
    let hash = hash_password(password.clone())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    match store.bootstrap_admin(username, &hash).await? {
        BootstrapOutcome::Created(user) => Ok(Some(NewAdmin {
            user,
            generated_password: generated.then_some(password),
        })),
        BootstrapOutcome::AdminExists => Ok(None),
        BootstrapOutcome::UsernameTaken => {
            bail!("user {username:?} exists but is not an admin; choose another --username")
        }
    }
}

/// What [`ensure_cli_token`] did.
#[derive(Debug)]
pub struct CliToken {
    pub token: String,
    /// A new token was minted (the old one was missing or invalid).
    pub created: bool,
    /// Set when this call created the first admin.
    pub new_admin: Option<NewAdmin>,
}

/// Keeps a valid personal access token of an admin in
/// `<dir>/cli.json` (mode 0600, rewritten with the current `url`): reuses
/// the one there if it still authenticates an enabled user; otherwise
/// creates the first admin ([`DEFAULT_ADMIN`], generated password) if
/// there is none, and mints a token for user `admin` (or the first enabled
/// admin).
pub async fn ensure_cli_token(store: &Store, dir: &Path, url: &str) -> anyhow::Result<CliToken> {
    let path = dir.join(CREDENTIALS_FILE);
    let existing = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str::<CliCredentials>(&t).ok());
    if let Some(c) = existing
        && let Some(owner) = store.token_owner(&hash_token(&c.token)).await?
        && !owner.user.disabled
        && !owner.token.is_expired(chrono::Utc::now())
    {
        write_credentials(&path, url, &c.token)?;
        return Ok(CliToken {
            token: c.token,
            created: false,
            new_admin: None,
        });
    }
    let new_admin = bootstrap_admin(store, DEFAULT_ADMIN, None).await?;
    let admin = match &new_admin {
        Some(a) => a.user.clone(),
        None => pick_admin(store).await?,
    };
    let token = generate_token(TokenKind::PersonalAccess);
    store
        .insert_token(&NewToken {
            user_id: admin.id,
            kind: TokenKind::PersonalAccess,
            name: CLI_TOKEN_NAME.into(),
            token_hash: hash_token(&token),
            expires_at: None,
        })
        .await?;
    write_credentials(&path, url, &token)?;
    Ok(CliToken {
        token,
        created: true,
        new_admin,
    })
}

/// User `admin` if it is an enabled admin, else the first enabled admin.
async fn pick_admin(store: &Store) -> anyhow::Result<UserRow> {
    let users = store.list_users().await?;
    let usable = |u: &&UserRow| u.admin && !u.disabled;
    users
        .iter()
        .filter(usable)
        .find(|u| u.username == DEFAULT_ADMIN)
        .or_else(|| users.iter().find(usable))
        .cloned()
        .context(
            "every admin is disabled; enable one (PATCH /api/v1/users/NAME) to get a CLI token",
        )
}

fn write_credentials(path: &Path, url: &str, token: &str) -> anyhow::Result<()> {
    let creds = CliCredentials {
        url: url.to_string(),
        token: token.to_string(),
    };
    write_private(path, &serde_json::to_vec_pretty(&creds)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Writes a file readable only by its owner (atomically, via a temp file).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// `orca admin …`.
pub async fn run_admin(cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AdminCommand::Bootstrap(a) => bootstrap(a).await,
    }
}

async fn bootstrap(args: BootstrapArgs) -> anyhow::Result<ExitCode> {
    let url = match (&args.store_url, &args.data_dir) {
        (Some(url), _) => url.clone(),
        (None, dir) => {
            let dir = dir.clone().unwrap_or_else(|| "orca-data".into());
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create data dir {}", dir.display()))?;
            format!("sqlite://{}?mode=rwc", dir.join("orca.db").display())
        }
    };
    let password = if args.password_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the password from stdin")?;
        Some(text.trim_end_matches(['\r', '\n']).to_string())
    } else {
        None
    };
    let store = Store::connect(&url)
        .await
        .context("cannot open the metadata store")?;
    match bootstrap_admin(&store, &args.username, password).await? {
        Some(a) => {
            println!("created admin {:?}", a.user.username);
            if let Some(p) = a.generated_password {
                println!("password (shown once, store it now): {p}");
            }
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!(
                "error: an admin exists already; nothing was created (admins manage users with /api/v1/users)"
            );
            Ok(ExitCode::from(2))
        }
    }
}
