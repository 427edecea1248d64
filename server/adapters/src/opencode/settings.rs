//! The OpenCode adapter's settings: the servers to reach (`[[opencode.servers]]`), the servers to
//! start and supervise (`[[opencode.supervised]]`) and how every call is made resilient
//! (`[opencode.resilience]`), with the checks of each.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use url::Url;

use oio_application::settings::{invalid, ConfigError};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
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

    /// Every server reachable by a plain URL, every supervised one named once, every figure in
    /// range; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.resilience.validate()?;
        for server in &self.servers {
            validate_server_url("opencode.servers.url", &server.url)?;
            if server.capacity == 0 {
                return Err(invalid("opencode.servers.capacity", "must be at least 1"));
            }
        }
        let mut names = std::collections::HashSet::new();
        for server in &self.supervised {
            if server.name.trim().is_empty() || !names.insert(server.name.as_str()) {
                return Err(invalid(
                    "opencode.supervised.name",
                    "must be given, and unique among supervised servers",
                ));
            }
            if server.capacity == 0 {
                return Err(invalid(
                    "opencode.supervised.capacity",
                    "must be at least 1",
                ));
            }
            if server.health_interval_ms < 100 {
                return Err(invalid(
                    "opencode.supervised.health_interval_ms",
                    "must be at least 100",
                ));
            }
        }
        Ok(())
    }
}

/// Refuses an OpenCode server URL that is not plain `http(s)://host[:port][/path]`: another
/// scheme, no host, embedded credentials (the password has its own setting, held as a secret),
/// a query or a fragment. The error names `field` and never shows the credentials.
pub fn validate_server_url(field: &'static str, url: &Url) -> Result<(), ConfigError> {
    let has_credentials = !url.username().is_empty() || url.password().is_some();
    let problem = if !matches!(url.scheme(), "http" | "https") {
        "must be http:// or https://"
    } else if matches!(url.host_str(), None | Some("")) {
        "must name a host"
    } else if has_credentials {
        "must not embed credentials: give the password in the server's `password` setting"
    } else if url.query().is_some() {
        "must not have a query string"
    } else if url.fragment().is_some() {
        "must not have a fragment"
    } else {
        return Ok(());
    };
    let mut shown = url.clone();
    if has_credentials {
        // Cannot fail for a URL that has credentials (it has a host).
        let _ = shown.set_password(None);
        let _ = shown.set_username("");
    }
    Err(invalid(field, format!("{shown} {problem}")))
}

/// One OpenCode server this process starts and supervises (`[[opencode.supervised]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
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

impl OpenCodeResilienceSettings {
    /// Every timeout and threshold at least 1 (0 would disable the call or the breaker).
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            (
                "opencode.resilience.request_timeout_secs",
                self.request_timeout_secs,
            ),
            (
                "opencode.resilience.connect_timeout_secs",
                self.connect_timeout_secs,
            ),
            (
                "opencode.resilience.breaker_failure_threshold",
                u64::from(self.breaker_failure_threshold),
            ),
            (
                "opencode.resilience.breaker_open_secs",
                self.breaker_open_secs,
            ),
            (
                "opencode.resilience.health_check_interval_secs",
                self.health_check_interval_secs,
            ),
        ] {
            if value == 0 {
                return Err(invalid(field, "must be at least 1"));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OpenCodeServerSettings {
    pub url: Url,
    /// HTTP basic-auth password (`OPENCODE_SERVER_PASSWORD` of that server), if it has one.
    #[serde(serialize_with = "crate::redact::secret")]
    pub password: Option<SecretString>,
    #[serde(default = "default_capacity")]
    pub capacity: u32,
}

/// Sessions a server runs at once unless its settings say otherwise.
pub fn default_capacity() -> u32 {
    4
}
