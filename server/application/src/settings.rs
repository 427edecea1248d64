//! The application's own settings sections (`[engine]`, `[admission]`) and the error every
//! settings check reports. The binary's `config` module assembles them with the adapters' and the
//! web layer's sections into one `Settings`.

use serde::{Deserialize, Serialize};

/// A settings error, naming the field that is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration could not be read: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

pub fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.into(),
    }
}

/// Admission control: per provider/model concurrency pools that shrink on rate limits
/// (`[admission]`, `OIO_ADMISSION__…`; see [`crate::admission`]).
///
/// ```toml
/// [admission]
/// default_max = 16
/// [admission.pools."anthropic/claude-sonnet-4"]
/// max = 4
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct AdmissionSettings {
    /// Turns at once per pool (`provider/model`, or `default` for servers' default model)
    /// without an entry in `pools`.
    pub default_max: u32,
    /// The lowest a rate limit can push a pool's limit (at least 1).
    pub min: u32,
    /// Rate-limit signals within this long of a shrink do not shrink again (one storm, one halving).
    pub cooldown_ms: u64,
    /// Without a rate-limit signal for this long, a shrunk limit grows by one (repeatedly).
    pub grow_after_ms: u64,
    /// Per-pool bounds, keyed `provider/model` (or `default`).
    pub pools: std::collections::BTreeMap<String, AdmissionPoolSettings>,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        Self {
            default_max: 16,
            min: 1,
            cooldown_ms: 10_000,
            grow_after_ms: 30_000,
            pools: Default::default(),
        }
    }
}

/// One pool's bounds (`[admission.pools."provider/model"]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionPoolSettings {
    pub max: u32,
    /// `admission.min` when absent.
    pub min: Option<u32>,
}

impl AdmissionSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("admission.default_max", u64::from(self.default_max)),
            ("admission.min", u64::from(self.min)),
            ("admission.cooldown_ms", self.cooldown_ms),
            ("admission.grow_after_ms", self.grow_after_ms),
        ] {
            if value == 0 {
                return Err(invalid(field, "must be at least 1"));
            }
        }
        if self.min > self.default_max {
            return Err(invalid(
                "admission.min",
                "must not be above admission.default_max",
            ));
        }
        for (key, pool) in &self.pools {
            let valid_key = key == "default"
                || key
                    .split_once('/')
                    .is_some_and(|(provider, model)| !provider.is_empty() && !model.is_empty());
            if !valid_key {
                return Err(invalid(
                    "admission.pools",
                    format!("`{key}` is neither `provider/model` nor `default`"),
                ));
            }
            if pool.max == 0 {
                return Err(invalid(
                    "admission.pools",
                    format!("`{key}`: max must be at least 1"),
                ));
            }
            if pool.min.is_some_and(|min| min == 0 || min > pool.max) {
                return Err(invalid(
                    "admission.pools",
                    format!("`{key}`: min must be between 1 and max"),
                ));
            }
        }
        Ok(())
    }
}

/// The session engine of this replica (`[engine]`, `OIO_ENGINE__…`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct EngineSettings {
    /// Whether this process dispatches sessions at all (a read-only replica says false).
    pub enabled: bool,
    /// This replica's name in leases; `<host>-<pid>-<random>` when absent. Must be unique.
    pub replica_id: Option<String>,
    /// How long a lease lasts without renewal; renewed every third of it. A killed replica's
    /// sessions are recovered after at most this long.
    pub lease_ttl_ms: u64,
    /// Per-session wall-clock limit of one attempt.
    pub session_timeout_secs: u64,
    /// Attempts of a new session (first run plus retries) unless the request says otherwise.
    pub default_max_attempts: u32,
    /// Retry backoff: the first delay, doubled per attempt up to the maximum (with jitter).
    pub retry_backoff_initial_ms: u64,
    pub retry_backoff_max_ms: u64,
    /// Sessions this replica runs at once, whatever the servers' capacity.
    pub max_running: u32,
    /// How often the task scheduler advances running task trees (finished sessions -> next steps).
    pub task_tick_ms: u64,
    /// Leaves of one task tree running at once unless the start request says otherwise.
    pub task_max_parallel: u32,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            replica_id: None,
            lease_ttl_ms: 15_000,
            session_timeout_secs: 30 * 60,
            default_max_attempts: 3,
            retry_backoff_initial_ms: 1_000,
            retry_backoff_max_ms: 60_000,
            max_running: 64,
            task_tick_ms: 1_000,
            task_max_parallel: 4,
        }
    }
}

impl EngineSettings {
    /// Every period and count at least 1, the lease long enough to renew, the backoff ordered;
    /// the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("engine.lease_ttl_ms", self.lease_ttl_ms),
            ("engine.session_timeout_secs", self.session_timeout_secs),
            (
                "engine.default_max_attempts",
                u64::from(self.default_max_attempts),
            ),
            (
                "engine.retry_backoff_initial_ms",
                self.retry_backoff_initial_ms,
            ),
            ("engine.max_running", u64::from(self.max_running)),
            ("engine.task_tick_ms", self.task_tick_ms),
            (
                "engine.task_max_parallel",
                u64::from(self.task_max_parallel),
            ),
        ] {
            if value == 0 {
                return Err(invalid(field, "must be at least 1"));
            }
        }
        if self.lease_ttl_ms < 300 {
            return Err(invalid(
                "engine.lease_ttl_ms",
                "must be at least 300 (renewals happen every third of it)",
            ));
        }
        if self.task_max_parallel > domain::task::execution::MAX_PARALLEL {
            return Err(invalid(
                "engine.task_max_parallel",
                format!("must be at most {}", domain::task::execution::MAX_PARALLEL),
            ));
        }
        if self.retry_backoff_max_ms < self.retry_backoff_initial_ms {
            return Err(invalid(
                "engine.retry_backoff_max_ms",
                "must not be below engine.retry_backoff_initial_ms",
            ));
        }
        if matches!(&self.replica_id, Some(id) if id.trim().is_empty()) {
            return Err(invalid("engine.replica_id", "must not be blank"));
        }
        Ok(())
    }

    /// The replica id in force.
    pub fn replica_id(&self) -> String {
        self.replica_id.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "oio".into());
            let random = uuid::Uuid::new_v4().simple().to_string();
            format!("{host}-{}-{}", std::process::id(), &random[..8])
        })
    }
}
