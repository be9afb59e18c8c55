//! `orca login`: trades a username and password for a personal access
//! token and stores it, with the server URL, in the client config file. The
//! password is never stored.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::args::LoginArgs;
use crate::client::Client;
use crate::config;

pub async fn login(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let path = config::config_path()
        .context("cannot tell where to store the login: set $HOME (or $XDG_CONFIG_HOME)")?;
    let server = match args.server {
        Some(s) => s,
        None => config::load(&path)?
            .and_then(|c| c.server)
            .with_context(|| {
                format!(
                    "which server? pass --server URL (or ORCA_SERVER); {} names none",
                    path.display()
                )
            })?,
    };
    let server = server.trim_end_matches('/').to_string();
    let username = match args.username {
        Some(u) => u,
        None => prompt_username()?,
    };
    let password = read_password(&username, &server, args.password_stdin)?;

    let anonymous = Client::new(&server, "");
    let session = anonymous.login(&username, &password).await?;
    drop(password);
    let session_client = Client::new(&server, &session.token);
    let name = format!("orca-cli@{}", crate::ops::hostname());
    let pat = session_client.create_token(&name).await?;
    // The session was only a step towards the token.
    if let Err(e) = session_client.logout().await {
        eprintln!("warning: could not end the login session (it expires by itself): {e:#}");
    }
    config::save(&path, &server, &pat.token)?;
    println!(
        "logged in to {server} as {}; token {name:?} stored in {}",
        session.user.username,
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn prompt_username() -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!("pass --username: stdin is not a terminal to ask on");
    }
    eprint!("Username: ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the username from stdin")?;
    let u = line.trim().to_string();
    if u.is_empty() {
        bail!("the username is empty");
    }
    Ok(u)
}

/// Asks on the terminal without echo, or reads the first line of stdin
/// (with --password-stdin, or when stdin is not a terminal).
fn read_password(username: &str, server: &str, from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        rpassword::prompt_password(format!("Password for {username} at {server}: "))
            .context("cannot read the password from the terminal")?
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password)
}
