use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use secrecy::ExposeSecret;
use server::bench::engine::EngineBench;
use server::bench::{self, StorageBench};
use server::cli::{commands, BenchTarget, Cli, Command};
use server::config::Settings;
use server::startup::Application;
use server::{storage, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let mut settings = Settings::load(cli.config.as_deref()).context("loading settings")?;
    if cli
        .command
        .as_ref()
        .is_some_and(Command::is_operator_command)
    {
        // Short-lived and read by people or scripts: stdout carries only the result; warnings
        // and errors go to stderr.
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .try_init();
        let command = cli.command.expect("checked above");
        return match commands::execute(&settings, command, cli.json).await {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(error) => {
                eprintln!("error: {error}");
                Ok(ExitCode::from(error.exit_code()))
            }
        };
    }
    if matches!(
        cli.command,
        Some(Command::Bench {
            target: BenchTarget::Engine { .. }
        })
    ) {
        // Hundreds of sessions a second: per-session info logs would drown the figures.
        settings.log.filter = "warn".into();
    }
    telemetry::init(&settings.log);

    match cli.command.unwrap_or(Command::Serve { listen: None }) {
        Command::Serve { listen } => {
            if let Some(addr) = listen {
                settings.listen = addr;
            }
            let app = Application::build(&settings).await?;
            let addr = app.local_addr();
            if let Some(password) = app.auth().ensure_first_admin().await? {
                let path = server::data_dir::first_admin_password_file(&settings.data_dir);
                server::data_dir::write_private_file(&path, password.expose_secret())
                    .with_context(|| format!("writing {}", path.display()))?;
                println!(
                    "oio: first run: created user `admin`; its password is in {} (readable by \
                     this user only). Sign in at http://{addr}/login, then change it with \
                     `server user passwd admin --password-stdin`.",
                    path.display()
                );
            }
            println!("oio: dashboard on http://{addr}/");
            app.run_until(shutdown_signal()).await?;
        }
        Command::Migrate => {
            storage::connect(&settings).await?;
            println!("oio: migrations applied");
        }
        Command::Config => {
            println!("{}", serde_json::to_string_pretty(&settings.redacted())?);
        }
        Command::Bench {
            target:
                BenchTarget::Storage {
                    scratch,
                    rows,
                    batch,
                    updates,
                },
        } => {
            let scratch_dir = tempfile::tempdir()?;
            if scratch {
                settings.database.url = None;
                settings.data_dir = scratch_dir.path().to_path_buf();
            }
            let backend = format!("{:?}", settings.backend()?).to_lowercase();
            let store = storage::connect(&settings).await?;
            let figures = bench::run(
                &store,
                StorageBench {
                    rows,
                    batch,
                    updates,
                },
            )
            .await?;
            println!("storage benchmark ({backend})");
            println!(
                "  bulk insert   {rows} sessions in batches of {batch}: {:.0} rows/s ({:.2?})",
                figures.rows_per_second(),
                figures.insert_elapsed
            );
            println!(
                "  versioned update (read + commit), {updates} sequential: p50 {:.2?}  p99 {:.2?}  max {:.2?}",
                figures.update_p50, figures.update_p99, figures.update_max
            );
        }
        Command::Bench {
            target:
                BenchTarget::Engine {
                    sessions,
                    contenders,
                    lock_rounds,
                    max_running,
                    paced,
                },
        } => {
            let mut bench = EngineBench::new(sessions, contenders, lock_rounds);
            bench.max_running = max_running as usize;
            bench.paced = paced;
            bench.database_url = Some(settings.database_url().expose_secret().to_owned())
                .filter(|url| url.starts_with("postgres://") || url.starts_with("postgresql://"));
            bench.redis_url = settings
                .redis_url
                .as_ref()
                .map(|url| url.expose_secret().to_owned());
            let report = bench::engine::run(&bench).await?;
            print!("{report}");
        }
        Command::Session { .. }
        | Command::Task { .. }
        | Command::Agent { .. }
        | Command::Token { .. }
        | Command::User { .. }
        | Command::Inbox { .. } => {
            unreachable!("operator commands return above")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM, whichever comes first.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received; draining");
}
