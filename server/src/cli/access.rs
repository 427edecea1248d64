//! `token` and `user`: who may use the dashboard and the API. Run by whoever can reach the
//! database (the operator of the deployment), so these need no credential themselves.

use std::io::{BufRead, Write};

use clap::{Args, Subcommand};
use domain::Role;
use secrecy::ExposeSecret;
use serde::Serialize;

use super::commands::{Console, Services};
use super::CliError;
use crate::application::auth::{random_hex, AuthError, TokenInfo};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its value is printed once and cannot be shown again.
    Create(CreateTokenArgs),
    /// Every token (never their values), revoked ones included.
    List,
    /// Revoke a token at once.
    Revoke {
        /// The token id (the part after `oio_`, before the second `_`; see `token list`).
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateTokenArgs {
    /// What the token is for (e.g. "ci", "grafana").
    #[arg(long)]
    pub name: String,
    /// Its scope: viewer (read), operator (create/cancel/retry), admin (agents, fleet).
    #[arg(long)]
    pub role: String,
    /// Expire after this many days (never when absent).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub expires_days: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a dashboard user. The password is read from stdin with --password-stdin, else a random
    /// one is generated and printed once.
    Add(UserArgs),
    /// Set a user's password (and role with --role); signs the user out everywhere.
    Passwd(UserArgs),
    /// Every user and role.
    List,
}

#[derive(Debug, Args)]
pub struct UserArgs {
    pub username: String,
    /// viewer, operator or admin (required by `add`).
    #[arg(long)]
    pub role: Option<String>,
    /// Read the password from the first line of stdin (never from an argument: those show up in
    /// `ps` and shell history).
    #[arg(long)]
    pub password_stdin: bool,
}

impl From<AuthError> for CliError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Invalid { field, message } => CliError::invalid(field, message),
            AuthError::NotFound(what) => CliError::NotFound(format!("{what} does not exist")),
            AuthError::Duplicate(what) => CliError::NotAllowed(format!("{what} already exists")),
            AuthError::InvalidCredentials => CliError::Failed("invalid credentials".into()),
            AuthError::Unavailable(message) => CliError::Failed(message),
        }
    }
}

fn role(raw: &str) -> Result<Role, CliError> {
    Ok(raw.parse::<Role>()?)
}

#[derive(Serialize)]
struct CreatedToken<'a> {
    token: &'a str,
    #[serde(flatten)]
    info: &'a TokenInfo,
}

pub async fn token<W: Write>(
    services: &Services,
    command: TokenCommand,
    console: &mut Console<W>,
) -> Result<(), CliError> {
    match command {
        TokenCommand::Create(args) => {
            let role = role(&args.role)?;
            let expires = args
                .expires_days
                .map(|d| std::time::Duration::from_secs(u64::from(d) * 86_400));
            let issued = services
                .auth
                .issue_token(&args.name, role, "cli", expires)
                .await?;
            let value = issued.secret.expose_secret();
            console.emit(
                &CreatedToken {
                    token: value,
                    info: &issued.info,
                },
                || {
                    format!(
                        "token {id} ({role}) created; its value, shown only now:\n{value}\n\
                         send it as `Authorization: Bearer <value>`",
                        id = issued.info.id,
                    )
                },
            )
        }
        TokenCommand::List => {
            let tokens = services.auth.tokens().await?;
            console.emit(&tokens, || token_table(&tokens))
        }
        TokenCommand::Revoke { id } => {
            services.auth.revoke_token(id.trim()).await?;
            console.emit(&serde_json::json!({ "revoked": id }), || {
                format!("token {id} revoked")
            })
        }
    }
}

fn token_table(tokens: &[TokenInfo]) -> String {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(["ID", "NAME", "ROLE", "CREATED", "EXPIRES", "STATE"]);
    for t in tokens {
        table.add_row([
            t.id.clone(),
            t.name.clone(),
            t.role.to_string(),
            t.created_at.format("%Y-%m-%d %H:%M").to_string(),
            t.expires_at
                .map_or("never".into(), |at| at.format("%Y-%m-%d %H:%M").to_string()),
            match (t.active, t.revoked_at) {
                (true, _) => "active".into(),
                (false, Some(at)) => format!("revoked {}", at.format("%Y-%m-%d %H:%M")),
                (false, None) => "expired".into(),
            },
        ]);
    }
    format!("{table}\n")
}

fn read_password() -> Result<String, CliError> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

pub async fn user<W: Write>(
    services: &Services,
    command: UserCommand,
    console: &mut Console<W>,
) -> Result<(), CliError> {
    match command {
        UserCommand::Add(args) => {
            let role = role(args.role.as_deref().ok_or_else(|| {
                CliError::invalid("role", "required: viewer, operator or admin")
            })?)?;
            let (password, generated) = if args.password_stdin {
                (read_password()?, false)
            } else {
                (random_hex(12), true)
            };
            services
                .auth
                .add_user(&args.username, &password, role)
                .await?;
            let shown = generated.then_some(password.as_str());
            console.emit(
                &serde_json::json!({ "username": args.username, "role": role, "password": shown }),
                || match shown {
                    Some(p) => format!(
                        "user {} ({role}) added; password, shown only now: {p}",
                        args.username
                    ),
                    None => format!("user {} ({role}) added", args.username),
                },
            )
        }
        UserCommand::Passwd(args) => {
            let role = args.role.as_deref().map(role).transpose()?;
            if !args.password_stdin {
                return Err(CliError::invalid(
                    "password",
                    "pass --password-stdin and the new password on stdin",
                ));
            }
            let password = read_password()?;
            services
                .auth
                .set_password(&args.username, &password, role)
                .await?;
            // The first-run password no longer signs anyone in: its file goes.
            let forgot = args.username == crate::application::auth::FIRST_ADMIN
                && crate::data_dir::forget_first_admin_password(&services.data_dir)?;
            console.emit(&serde_json::json!({ "username": args.username }), || {
                let mut text = format!(
                    "user {}: password changed; signed out everywhere",
                    args.username
                );
                if forgot {
                    text.push_str("; the first-run password file is removed");
                }
                text
            })
        }
        UserCommand::List => {
            let users = services.auth.users().await?;
            let rows: Vec<_> = users
                .iter()
                .map(|(name, role)| serde_json::json!({ "username": name, "role": role }))
                .collect();
            console.emit(&rows, || {
                users
                    .iter()
                    .map(|(name, role)| format!("{name}\t{role}\n"))
                    .collect()
            })
        }
    }
}
