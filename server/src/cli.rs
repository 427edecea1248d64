//! The command line: `serve` (the default), `migrate`, `config`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "server", version, about = "OpenCode Industrial Orchestrator")]
pub struct Cli {
    /// A TOML settings file (default: ./oio.toml when present). Env vars override it.
    #[arg(long, global = true, env = "OIO_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the dashboard, the API and the health probes (the default).
    Serve {
        /// Listen address, overriding the settings (e.g. 127.0.0.1:0 for any free port).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Print the effective settings as JSON, secrets redacted.
    Config,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_subcommand_means_serve() {
        let cli = Cli::try_parse_from(["server"]).unwrap();
        assert!(cli.command.is_none());
    }

    #[test]
    fn serve_accepts_a_listen_address() {
        let cli = Cli::try_parse_from(["server", "serve", "--listen", "127.0.0.1:0"]).unwrap();
        match cli.command {
            Some(Command::Serve { listen }) => assert_eq!(listen.unwrap().port(), 0),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_bad_listen_address_is_a_usage_error_naming_the_flag() {
        let err = Cli::try_parse_from(["server", "serve", "--listen", "nowhere"]).unwrap_err();
        assert!(err.to_string().contains("--listen"), "{err}");
    }
}
