//! The command line: `serve` (the default), `migrate`, `config`, `bench`, and the operator
//! commands `session`, `task` and `agent`, which call the application services directly on the
//! configured store (see [`commands`]; output in [`output`]).

pub mod access;
pub mod commands;
pub mod inbox;
pub mod output;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use commands::{CliError, Console};

#[derive(Debug, Parser)]
#[command(name = "server", version, about = "OpenCode Industrial Orchestrator")]
pub struct Cli {
    /// A TOML settings file (default: ./oio.toml when present). Env vars override it.
    #[arg(long, global = true, env = "OIO_CONFIG")]
    pub config: Option<PathBuf>,
    /// Machine-readable JSON on stdout instead of tables (session, task and agent commands).
    #[arg(long, global = true)]
    pub json: bool,
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
    /// Create, list, show, cancel and retry sessions.
    Session {
        #[command(subcommand)]
        command: SessionCommand,
    },
    /// Decompose requirements into task trees, start and show them.
    Task {
        #[command(subcommand)]
        command: TaskCommand,
    },
    /// List and register agents.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// Create, list and revoke API tokens (bearer credentials for scripts).
    Token {
        #[command(subcommand)]
        command: access::TokenCommand,
    },
    /// Add dashboard users, change their password or role, list them.
    User {
        #[command(subcommand)]
        command: access::UserCommand,
    },
    /// List and answer agents' permission requests and questions.
    Inbox {
        #[command(subcommand)]
        command: inbox::InboxCommand,
    },
}

impl Command {
    /// Whether this is an operator command (`session`, `task`, `agent`): short-lived, its output
    /// on stdout, logs kept to warnings on stderr.
    pub fn is_operator_command(&self) -> bool {
        matches!(
            self,
            Command::Session { .. }
                | Command::Task { .. }
                | Command::Agent { .. }
                | Command::Token { .. }
                | Command::User { .. }
                | Command::Inbox { .. }
        )
    }
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Create a session; it is queued for a running `server serve` to pick up.
    Create(CreateSessionArgs),
    /// List sessions, newest first.
    List(ListSessionsArgs),
    /// A session's fields, metrics and event log.
    Show {
        /// The session id.
        id: String,
    },
    /// Cancel a waiting session, or ask the replica running it to stop.
    Cancel {
        /// The session id.
        id: String,
        /// Why (kept in the event log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Queue a failed or timed-out session for another attempt.
    Retry {
        /// The session id.
        id: String,
        /// Queue priority (higher runs first).
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        priority: i32,
    },
}

#[derive(Debug, Args)]
pub struct CreateSessionArgs {
    /// A one-line title.
    #[arg(long)]
    pub title: String,
    /// What the agent is asked to do.
    #[arg(long)]
    pub prompt: String,
    /// The git repository the session works on.
    #[arg(long)]
    pub workspace: String,
    /// The OpenCode agent to run it (any agent when absent).
    #[arg(long)]
    pub agent: Option<String>,
    /// Queue priority (higher runs first).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i32,
    /// First run plus retries (the engine's default when absent).
    #[arg(long)]
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Args)]
pub struct ListSessionsArgs {
    /// Only sessions in this status (pending, queued, running, paused, completed, failed,
    /// cancelled, timed_out).
    #[arg(long)]
    pub status: Option<String>,
    /// Only sessions run by this agent.
    #[arg(long)]
    pub agent: Option<String>,
    /// Sessions per page.
    #[arg(long, default_value_t = domain::query::DEFAULT_PAGE_SIZE)]
    pub limit: u32,
    /// Continue after this cursor (printed as `next` by the previous page).
    #[arg(long)]
    pub after: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Decompose a requirement into a task tree, store it, print it; `--start` also runs it.
    Create(CreateTaskArgs),
    /// A task tree: each task's status, assigned agent and score, note and sessions.
    Show {
        /// The root (or any) task id.
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateTaskArgs {
    /// What to build.
    #[arg(long)]
    pub requirement: String,
    /// Use this decomposition template for the root instead of choosing by keywords.
    #[arg(long)]
    pub template: Option<String>,
    /// Levels of subtasks below the root.
    #[arg(long)]
    pub max_depth: Option<u32>,
    /// Start running the tree once stored (needs --workspace).
    #[arg(long, requires = "workspace")]
    pub start: bool,
    /// The git repository the tree's sessions work on.
    #[arg(long, requires = "start")]
    pub workspace: Option<String>,
    /// Leaves running at once (the configured default when absent).
    #[arg(long, requires = "start")]
    pub max_parallel: Option<u32>,
    /// What a failed leaf does to the tree.
    #[arg(long, value_enum, requires = "start")]
    pub policy: Option<PolicyArg>,
    /// Extra attempts of a failed leaf, with `--policy retry`.
    #[arg(long, requires = "start")]
    pub retries: Option<u32>,
}

/// `--policy` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    #[value(name = "fail_fast")]
    FailFast,
    #[value(name = "continue")]
    Continue,
    #[value(name = "retry")]
    Retry,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Every registered agent, by name.
    List,
    /// Register an agent.
    Add(AddAgentArgs),
}

#[derive(Debug, Args)]
pub struct AddAgentArgs {
    /// The OpenCode agent name (`build`, `plan`, or a custom one).
    #[arg(long)]
    pub name: String,
    /// Comma-separated: backend, frontend, database, security, testing, docs, devops, refactor.
    #[arg(long, value_delimiter = ',', required = true)]
    pub capabilities: Vec<String>,
    /// `provider/model`.
    #[arg(long)]
    pub model: String,
    /// Sessions it runs at once.
    #[arg(long, default_value_t = 1)]
    pub max_concurrency: u32,
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
    fn operator_commands_parse_with_a_global_json_flag() {
        let cli = Cli::try_parse_from([
            "server",
            "session",
            "create",
            "--title",
            "T",
            "--prompt",
            "P",
            "--workspace",
            "/repo",
            "--priority",
            "-5",
            "--json",
        ])
        .unwrap();
        assert!(cli.json);
        let command = cli.command.unwrap();
        assert!(command.is_operator_command());
        match command {
            Command::Session {
                command: SessionCommand::Create(args),
            } => assert_eq!((args.title.as_str(), args.priority), ("T", -5)),
            other => panic!("unexpected {other:?}"),
        }
        assert!(!Command::Migrate.is_operator_command());
    }

    #[test]
    fn agent_capabilities_are_comma_separated() {
        let cli = Cli::try_parse_from([
            "server",
            "agent",
            "add",
            "--name",
            "api",
            "--capabilities",
            "backend,database",
            "--model",
            "p/m",
        ])
        .unwrap();
        match cli.command {
            Some(Command::Agent {
                command: AgentCommand::Add(args),
            }) => {
                assert_eq!(args.capabilities, ["backend", "database"]);
                assert_eq!(args.max_concurrency, 1);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn task_start_options_need_start_and_a_workspace() {
        let cli = Cli::try_parse_from([
            "server",
            "task",
            "create",
            "--requirement",
            "r",
            "--start",
            "--workspace",
            "/repo",
            "--policy",
            "fail_fast",
        ])
        .unwrap();
        match cli.command {
            Some(Command::Task {
                command: TaskCommand::Create(args),
            }) => assert_eq!(args.policy, Some(PolicyArg::FailFast)),
            other => panic!("unexpected {other:?}"),
        }
        let err =
            Cli::try_parse_from(["server", "task", "create", "--requirement", "r", "--start"])
                .unwrap_err();
        assert!(err.to_string().contains("--workspace"), "{err}");
        let err = Cli::try_parse_from([
            "server",
            "task",
            "create",
            "--requirement",
            "r",
            "--workspace",
            "/repo",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("--start"), "{err}");
    }

    #[test]
    fn a_bad_listen_address_is_a_usage_error_naming_the_flag() {
        let err = Cli::try_parse_from(["server", "serve", "--listen", "nowhere"]).unwrap_err();
        assert!(err.to_string().contains("--listen"), "{err}");
    }
}
