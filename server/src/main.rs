use anyhow::Context;
use clap::Parser;
use server::cli::{Cli, Command};
use server::config::Settings;
use server::startup::Application;
use server::{storage, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut settings = Settings::load(cli.config.as_deref()).context("loading settings")?;
    telemetry::init(&settings.log);

    match cli.command.unwrap_or(Command::Serve { listen: None }) {
        Command::Serve { listen } => {
            if let Some(addr) = listen {
                settings.listen = addr;
            }
            let app = Application::build(&settings).await?;
            println!("oio: dashboard on http://{}/", app.local_addr());
            app.run_until(shutdown_signal()).await?;
        }
        Command::Migrate => {
            storage::connect(&settings).await?;
            println!("oio: migrations applied");
        }
        Command::Config => {
            println!("{}", serde_json::to_string_pretty(&settings.redacted())?);
        }
    }
    Ok(())
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
