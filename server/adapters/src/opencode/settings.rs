//! The OpenCode adapter's settings: the servers to reach (`[[opencode.servers]]`), the servers to
//! start and supervise (`[[opencode.supervised]]`) and how every call is made resilient
//! (`[opencode.resilience]`).

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct OpenCodeSettings {
    #[serde(default)]
    pub servers: Vec<OpenCodeServerSettings>,
    #[serde(default)]
    pub resilience: OpenCodeResilienceSettings,
    /// Servers this process starts and owns (`[[opencode.supervised]]`).
    #[serde(default)]
    pub supervised: Vec<SupervisedServerSettings>,
    /// The binary supervised servers run; when absent, `node_modules/opencode-<os>-<arch>/bin/
    /// opencode` under the current directory (or above it), else `opencode` on `PATH`.
    #[serde(default)]
    pub binary: Option<PathBuf>,
    /// The version supervised servers must have (`opencode --version`); default the one the
    /// orchestrator is written against.
    #[serde(default)]
    pub version: Option<String>,
}

impl OpenCodeSettings {
    /// The pinned version for supervised servers.
    pub fn version(&self) -> &str {
        self.version
            .as_deref()
            .unwrap_or(super::supervisor::PINNED_VERSION)
    }
}

/// One OpenCode server this process starts and supervises (`[[opencode.supervised]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SupervisedServerSettings {
    /// The server's stable name (how the fleet, the queue and the metrics name it).
    pub name: String,
    /// Its working directory; `data_dir` when absent.
    #[serde(default)]
    pub directory: Option<PathBuf>,
    #[serde(default = "default_capacity")]
    pub capacity: u32,
    /// Memory (RSS) past which the server is recycled between turns; 0 for no limit.
    #[serde(default = "default_max_rss_mb")]
    pub max_rss_mb: u64,
    /// How often its health and memory are checked.
    #[serde(default = "default_health_interval_ms")]
    pub health_interval_ms: u64,
}

fn default_max_rss_mb() -> u64 {
    2048
}

fn default_health_interval_ms() -> u64 {
    5000
}

/// How the orchestrator treats every OpenCode server (`[opencode.resilience]`,
/// `OIO_OPENCODE__RESILIENCE__…`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct OpenCodeResilienceSettings {
    /// Any call but the blocking prompt.
    pub request_timeout_secs: u64,
    pub connect_timeout_secs: u64,
    /// Retries of idempotent calls.
    pub max_retries: u32,
    /// Requests per second to one server from this process; 0 for no limit.
    pub rate_limit_per_second: u32,
    /// Consecutive failures that open a server's circuit breaker.
    pub breaker_failure_threshold: u32,
    /// How long an open breaker refuses calls before letting one probe through.
    pub breaker_open_secs: u64,
    pub health_check_interval_secs: u64,
}

impl Default for OpenCodeResilienceSettings {
    fn default() -> Self {
        Self {
            request_timeout_secs: 30,
            connect_timeout_secs: 5,
            max_retries: 3,
            rate_limit_per_second: 50,
            breaker_failure_threshold: 5,
            breaker_open_secs: 30,
            health_check_interval_secs: 15,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct OpenCodeServerSettings {
    pub url: Url,
    /// HTTP basic-auth password (`OPENCODE_SERVER_PASSWORD` of that server), if it has one.
    pub password: Option<SecretString>,
    #[serde(default = "default_capacity")]
    pub capacity: u32,
}

/// Sessions a server runs at once unless its settings say otherwise.
pub fn default_capacity() -> u32 {
    4
}
