//! The sections this binary owns (`[database]`, `[worktrees]`, `[log]`), each with its checks.
//! The others come from the crates that use them (see the re-exports in [`super`]).

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use super::{invalid, ConfigError};

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct DatabaseSettings {
    /// `sqlite://…` or `postgres://…`; when absent, a SQLite file under `data_dir`.
    #[serde(serialize_with = "oio_adapters::redact::secret_url")]
    pub url: Option<SecretString>,
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
}

impl DatabaseSettings {
    /// The pool's figures; the URL's scheme is checked by `Settings::backend` (it needs the
    /// data directory for the default).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        if self.acquire_timeout_secs == 0 {
            return Err(invalid(
                "database.acquire_timeout_secs",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// `redis_url`, when given: a `redis://` or `rediss://` URL. The error never shows the URL.
pub fn validate_redis_url(redis: Option<&SecretString>) -> Result<(), ConfigError> {
    let Some(redis) = redis else {
        return Ok(());
    };
    let url = Url::parse(redis.expose_secret()).map_err(|e| invalid("redis_url", e.to_string()))?;
    if !matches!(url.scheme(), "redis" | "rediss") {
        return Err(invalid("redis_url", "scheme must be redis:// or rediss://"));
    }
    Ok(())
}

/// Where sessions' git worktrees live and what happens to them after a session (`[worktrees]`,
/// `OIO_WORKTREES__ROOT`, `OIO_WORKTREES__CLEANUP`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct WorktreeSettings {
    /// The directory worktrees are created under; `<data_dir>/worktrees` when absent. Must not be
    /// inside a target repository.
    pub root: Option<PathBuf>,
    pub cleanup: WorktreeCleanup,
}

impl WorktreeSettings {
    /// The worktree root in force.
    pub fn root(&self, data_dir: &Path) -> PathBuf {
        self.root
            .clone()
            .unwrap_or_else(|| data_dir.join("worktrees"))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        // An empty path would put worktrees in the current directory, likely a repository.
        if self
            .root
            .as_ref()
            .is_some_and(|root| root.as_os_str().is_empty())
        {
            return Err(invalid("worktrees.root", "must not be empty"));
        }
        Ok(())
    }
}

/// What to remove once a session is done; see [`CleanupPolicy`](crate::ports::workspaces::CleanupPolicy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorktreeCleanup {
    /// Keep the worktree and its branch.
    #[default]
    Keep,
    /// Remove the worktree directory, keep the branch (and the work committed on it).
    RemoveWorktree,
    /// Remove the worktree and the branch.
    RemoveAll,
}

impl From<WorktreeCleanup> for crate::ports::workspaces::CleanupPolicy {
    fn from(cleanup: WorktreeCleanup) -> Self {
        match cleanup {
            WorktreeCleanup::Keep => Self::Keep,
            WorktreeCleanup::RemoveWorktree => Self::RemoveWorktreeKeepBranch,
            WorktreeCleanup::RemoveAll => Self::RemoveAll,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LogSettings {
    pub format: LogFormat,
    /// An `EnvFilter` directive; `RUST_LOG` overrides it.
    pub filter: String,
}
