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
    /// Measure and print performance figures (nothing is asserted).
    Bench {
        #[command(subcommand)]
        target: BenchTarget,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchTarget {
    /// Bulk-insert rows/s and versioned-update latency of the configured store
    /// (DATABASE_URL, or a throw-away SQLite file with --scratch).
    Storage {
        /// Use a fresh SQLite file in a temp dir instead of the configured database.
        #[arg(long)]
        scratch: bool,
        /// Sessions to bulk-insert.
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..))]
        rows: u32,
        /// Sessions per insert transaction.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
        batch: u32,
        /// Versioned updates to time.
        #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(1..))]
        updates: u32,
    },
    /// The session engine's overhead per session on an instant in-process agent (SQLite and
    /// PostgreSQL: DATABASE_URL, or a scratch database on the local server), git worktree
    /// preparation, and lock latency (in-process and Redis), each next to the machine's limits
    /// (pgbench, raw Redis round trips).
    Engine {
        /// Sessions to create and run to completion, per backend.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
        sessions: u32,
        /// Contenders queued on one lock key.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
        contenders: u32,
        /// Uncontended acquire+release rounds (and raw Redis round trips).
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
        lock_rounds: u32,
        /// Sessions the engine runs at once (1 measures the overhead of one session alone).
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
        max_running: u32,
        /// Create each session only after the previous one finished (latency without backlog).
        #[arg(long)]
        paced: bool,
    },
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
    fn bench_storage_takes_counts_and_refuses_zero() {
        let cli = Cli::try_parse_from(["server", "bench", "storage", "--rows", "10", "--scratch"])
            .unwrap();
        match cli.command {
            Some(Command::Bench {
                target:
                    BenchTarget::Storage {
                        scratch,
                        rows,
                        batch,
                        updates,
                    },
            }) => {
                assert!(scratch);
                assert_eq!((rows, batch, updates), (10, 500, 2_000));
            }
            other => panic!("unexpected {other:?}"),
        }
        let err = Cli::try_parse_from(["server", "bench", "storage", "--rows", "0"]).unwrap_err();
        assert!(err.to_string().contains("--rows"), "{err}");
    }

    #[test]
    fn bench_engine_has_defaults_and_takes_counts() {
        let cli = Cli::try_parse_from(["server", "bench", "engine"]).unwrap();
        match cli.command {
            Some(Command::Bench {
                target:
                    BenchTarget::Engine {
                        sessions,
                        contenders,
                        lock_rounds,
                        max_running,
                        paced: false,
                    },
            }) => assert_eq!(
                (sessions, contenders, lock_rounds, max_running),
                (500, 50, 200, 64)
            ),
            other => panic!("unexpected {other:?}"),
        }
        let cli = Cli::try_parse_from([
            "server",
            "bench",
            "engine",
            "--sessions",
            "20",
            "--contenders",
            "5",
            "--lock-rounds",
            "10",
            "--max-running",
            "1",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Bench {
                target: BenchTarget::Engine {
                    sessions: 20,
                    contenders: 5,
                    lock_rounds: 10,
                    max_running: 1,
                    paced: false,
                }
            })
        ));
        let err =
            Cli::try_parse_from(["server", "bench", "engine", "--sessions", "0"]).unwrap_err();
        assert!(err.to_string().contains("--sessions"), "{err}");
    }

    #[test]
    fn a_bad_listen_address_is_a_usage_error_naming_the_flag() {
        let err = Cli::try_parse_from(["server", "serve", "--listen", "nowhere"]).unwrap_err();
        assert!(err.to_string().contains("--listen"), "{err}");
    }
}
