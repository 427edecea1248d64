//! Typed, layered settings: built-in defaults, then an optional TOML file, then the environment.
//!
//! Environment: `OIO_LISTEN`, `OIO_DATA_DIR`, `OIO_DATABASE__MAX_CONNECTIONS`,
//! `OIO_DATABASE__ACQUIRE_TIMEOUT_SECS`, `OIO_LOG__FORMAT` (`pretty` | `json`), `OIO_OPENCODE_URLS`
//! (comma-separated), `OIO_WORKTREES__ROOT`, `OIO_WORKTREES__CLEANUP` (`keep` | `remove_worktree` |
//! `remove_all`), and the conventional `DATABASE_URL` and `REDIS_URL`. Secrets (database and
//! Redis URLs, OpenCode passwords) are held in [`SecretString`] so they never print.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

pub use oio_adapters::opencode::settings::default_capacity;
pub use oio_adapters::opencode::settings::{
    OpenCodeResilienceSettings, OpenCodeServerSettings, OpenCodeSettings, SupervisedServerSettings,
};
pub use oio_adapters::redact_url;
pub use oio_application::settings::{
    invalid, AdmissionPoolSettings, AdmissionSettings, ConfigError, EngineSettings,
};
pub use oio_web::settings::{AuthSettings, HttpSettings};

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Address the HTTP server (dashboard, API, health) listens on. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Where the embedded database and other local state live.
    pub data_dir: PathBuf,
    pub database: DatabaseSettings,
    pub redis_url: Option<SecretString>,
    #[serde(default)]
    pub opencode: OpenCodeSettings,
    #[serde(default)]
    pub worktrees: WorktreeSettings,
    #[serde(default)]
    pub engine: EngineSettings,
    #[serde(default)]
    pub auth: AuthSettings,
    pub log: LogSettings,
    #[serde(default)]
    pub http: HttpSettings,
    #[serde(default)]
    pub admission: AdmissionSettings,
    /// Budgets and the runaway guard (`[guardrails]`; see [`crate::application::guardrails`]).
    #[serde(default)]
    pub guardrails: crate::application::GuardrailSettings,
    /// The human-in-the-loop inbox: escalation and auto-answer rules (`[inbox]`; see
    /// [`crate::application::inbox`] for the rules and examples).
    #[serde(default)]
    pub inbox: crate::application::InboxSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// `sqlite://…` or `postgres://…`; when absent, a SQLite file under `data_dir`.
    pub url: Option<SecretString>,
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
}

/// Where sessions' git worktrees live and what happens to them after a session (`[worktrees]`,
/// `OIO_WORKTREES__ROOT`, `OIO_WORKTREES__CLEANUP`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
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
}

/// What to remove once a session is done; see [`CleanupPolicy`](crate::ports::workspaces::CleanupPolicy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub format: LogFormat,
    /// An `EnvFilter` directive; `RUST_LOG` overrides it.
    pub filter: String,
}

/// Which storage backend a database URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Settings {
    /// Loads settings from defaults, `file` (required when given, else `oio.toml` if present) and
    /// the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// As [`Settings::load`], with the environment passed in (so tests need not touch the process).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: std::collections::HashMap<String, String> = env.into_iter().collect();
        let mut builder = config::Config::builder()
            .set_default("listen", "127.0.0.1:3000")?
            .set_default("data_dir", "./data")?
            .set_default("database.max_connections", 10)?
            .set_default("database.acquire_timeout_secs", 5)?
            .set_default("log.format", "pretty")?
            .set_default("log.filter", "info,server=debug,app=debug")?;
        builder = match file {
            Some(path) => builder.add_source(config::File::from(path).required(true)),
            None => builder.add_source(config::File::with_name("oio.toml").required(false)),
        };
        builder = builder.add_source(
            config::Environment::with_prefix("OIO")
                .prefix_separator("_")
                .separator("__")
                .source(Some(
                    env.iter()
                        .filter(|(k, _)| k.as_str() != "OIO_OPENCODE_URLS")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                )),
        );
        if let Some(url) = env.get("DATABASE_URL").filter(|v| !v.is_empty()) {
            builder = builder.set_override("database.url", url.as_str())?;
        }
        if let Some(url) = env.get("REDIS_URL").filter(|v| !v.is_empty()) {
            builder = builder.set_override("redis_url", url.as_str())?;
        }
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        if let Some(urls) = env.get("OIO_OPENCODE_URLS") {
            settings.opencode.servers = parse_opencode_urls(urls)?;
        }
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.backend()?;
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        if self.database.acquire_timeout_secs == 0 {
            return Err(invalid(
                "database.acquire_timeout_secs",
                "must be at least 1",
            ));
        }
        if let Some(redis) = &self.redis_url {
            let url = Url::parse(redis.expose_secret())
                .map_err(|e| invalid("redis_url", e.to_string()))?;
            if !matches!(url.scheme(), "redis" | "rediss") {
                return Err(invalid("redis_url", "scheme must be redis:// or rediss://"));
            }
        }
        let e = &self.engine;
        for (field, value) in [
            ("engine.lease_ttl_ms", e.lease_ttl_ms),
            ("engine.session_timeout_secs", e.session_timeout_secs),
            (
                "engine.default_max_attempts",
                u64::from(e.default_max_attempts),
            ),
            (
                "engine.retry_backoff_initial_ms",
                e.retry_backoff_initial_ms,
            ),
            ("engine.max_running", u64::from(e.max_running)),
            ("engine.task_tick_ms", e.task_tick_ms),
            ("engine.task_max_parallel", u64::from(e.task_max_parallel)),
        ] {
            if value == 0 {
                return Err(invalid(field, "must be at least 1"));
            }
        }
        if self.auth.session_ttl_hours == 0 || self.auth.session_ttl_hours > 24 * 30 {
            return Err(invalid(
                "auth.session_ttl_hours",
                "must be between 1 and 720",
            ));
        }
        if e.lease_ttl_ms < 300 {
            return Err(invalid(
                "engine.lease_ttl_ms",
                "must be at least 300 (renewals happen every third of it)",
            ));
        }
        if e.task_max_parallel > domain::task::execution::MAX_PARALLEL {
            return Err(invalid(
                "engine.task_max_parallel",
                format!("must be at most {}", domain::task::execution::MAX_PARALLEL),
            ));
        }
        if e.retry_backoff_max_ms < e.retry_backoff_initial_ms {
            return Err(invalid(
                "engine.retry_backoff_max_ms",
                "must not be below engine.retry_backoff_initial_ms",
            ));
        }
        if matches!(&e.replica_id, Some(id) if id.trim().is_empty()) {
            return Err(invalid("engine.replica_id", "must not be blank"));
        }
        let r = &self.opencode.resilience;
        for (field, value) in [
            (
                "opencode.resilience.request_timeout_secs",
                r.request_timeout_secs,
            ),
            (
                "opencode.resilience.connect_timeout_secs",
                r.connect_timeout_secs,
            ),
            (
                "opencode.resilience.breaker_failure_threshold",
                u64::from(r.breaker_failure_threshold),
            ),
            ("opencode.resilience.breaker_open_secs", r.breaker_open_secs),
            (
                "opencode.resilience.health_check_interval_secs",
                r.health_check_interval_secs,
            ),
        ] {
            if value == 0 {
                return Err(invalid(field, "must be at least 1"));
            }
        }
        if self
            .worktrees
            .root
            .as_ref()
            .is_some_and(|root| root.as_os_str().is_empty())
        {
            return Err(invalid("worktrees.root", "must not be empty"));
        }
        self.http.validate()?;
        self.admission.validate()?;
        self.guardrails
            .validate()
            .map_err(|e| invalid(e.field, e.message))?;
        self.inbox.policies()?;
        for server in &self.opencode.servers {
            validate_opencode_url("opencode.servers.url", &server.url)?;
            if server.capacity == 0 {
                return Err(invalid("opencode.servers.capacity", "must be at least 1"));
            }
        }
        let mut names = std::collections::HashSet::new();
        for server in &self.opencode.supervised {
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

    /// The database URL in force: the configured one, or the embedded SQLite file.
    pub fn database_url(&self) -> SecretString {
        match &self.database.url {
            Some(url) => url.clone(),
            None => {
                let path = self.data_dir.join("oio.db");
                SecretString::from(format!("sqlite://{}?mode=rwc", path.display()))
            }
        }
    }

    pub fn backend(&self) -> Result<Backend, ConfigError> {
        let url = self.database_url();
        let url = url.expose_secret();
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(invalid(
                "database.url",
                format!("{} is neither sqlite:// nor postgres://", redact_url(url)),
            ))
        }
    }

    /// The settings as an operator may see them: every secret redacted.
    pub fn redacted(&self) -> serde_json::Value {
        serde_json::json!({
            "listen": self.listen.to_string(),
            "data_dir": self.data_dir.display().to_string(),
            "database": {
                "url": redact_url(self.database_url().expose_secret()),
                "max_connections": self.database.max_connections,
                "acquire_timeout_secs": self.database.acquire_timeout_secs,
            },
            "redis_url": self.redis_url.as_ref().map(|u| redact_url(u.expose_secret())),
            "opencode": {
                "servers": self.opencode.servers.iter().map(|s| serde_json::json!({
                    "url": redact_url(s.url.as_str()),
                    "password": s.password.as_ref().map(|_| "***"),
                    "capacity": s.capacity,
                })).collect::<Vec<_>>(),
                "supervised": self.opencode.supervised.iter().map(|s| serde_json::json!({
                    "name": s.name,
                    "directory": s.directory.as_ref().map(|d| d.display().to_string()),
                    "capacity": s.capacity,
                    "max_rss_mb": s.max_rss_mb,
                    "health_interval_ms": s.health_interval_ms,
                })).collect::<Vec<_>>(),
                "binary": self.opencode.binary.as_ref().map(|b| b.display().to_string()),
                "version": self.opencode.version(),
                "resilience": {
                    "request_timeout_secs": self.opencode.resilience.request_timeout_secs,
                    "connect_timeout_secs": self.opencode.resilience.connect_timeout_secs,
                    "max_retries": self.opencode.resilience.max_retries,
                    "rate_limit_per_second": self.opencode.resilience.rate_limit_per_second,
                    "breaker_failure_threshold": self.opencode.resilience.breaker_failure_threshold,
                    "breaker_open_secs": self.opencode.resilience.breaker_open_secs,
                    "health_check_interval_secs": self.opencode.resilience.health_check_interval_secs,
                },
            },
            "worktrees": {
                "root": self.worktrees.root(&self.data_dir).display().to_string(),
                "cleanup": format!("{:?}", self.worktrees.cleanup),
            },
            "auth": {
                "session_ttl_hours": self.auth.session_ttl_hours,
                "secure_cookie": self.auth.secure_cookie,
                "public_status": self.auth.public_status,
            },
            "log": { "format": format!("{:?}", self.log.format).to_lowercase(), "filter": self.log.filter },
            "admission": {
                "default_max": self.admission.default_max,
                "min": self.admission.min,
                "cooldown_ms": self.admission.cooldown_ms,
                "grow_after_ms": self.admission.grow_after_ms,
                "pools": self.admission.pools.iter().map(|(key, pool)| (key.clone(), serde_json::json!({
                    "max": pool.max,
                    "min": pool.min,
                }))).collect::<serde_json::Map<_, _>>(),
            },
            "inbox": self.inbox,
            "http": {
                "max_body_bytes": self.http.max_body_bytes,
                "rate_limit_per_second": self.http.rate_limit_per_second,
                "rate_limit_burst": self.http.rate_limit_burst,
            },
        })
    }
}

fn parse_opencode_urls(raw: &str) -> Result<Vec<OpenCodeServerSettings>, ConfigError> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let mut url = Url::parse(s)
                .map_err(|e| invalid("OIO_OPENCODE_URLS", format!("{}: {e}", redact_url(s))))?;
            // The variable has no password field of its own: a password written into the URL
            // (`http://:pw@host`) moves to the secret one, since a `Url` prints in full. (The
            // user name is OpenCode's fixed one.) Anything else wrong is refused by `validate`.
            let password = url
                .password()
                .map(|p| SecretString::from(percent_decode(p)));
            if password.is_some() {
                // Cannot fail: an http(s) URL with a password can drop its credentials.
                let _ = url.set_password(None);
                let _ = url.set_username("");
            }
            Ok(OpenCodeServerSettings {
                url,
                password,
                capacity: default_capacity(),
            })
        })
        .collect()
}

/// Refuses an OpenCode server URL that is not plain `http(s)://host[:port][/path]`: another
/// scheme, no host, embedded credentials (the password has its own setting, held as a secret),
/// a query or a fragment. The error names `field` and never shows the credentials.
fn validate_opencode_url(field: &'static str, url: &Url) -> Result<(), ConfigError> {
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

/// `%XX` escapes of a URL component decoded (invalid UTF-8 replaced).
fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_select_the_embedded_sqlite_file_under_the_data_dir() {
        let s = Settings::load_from(None, env(&[("OIO_DATA_DIR", "/var/lib/oio")])).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(s.backend().unwrap(), Backend::Sqlite);
        assert_eq!(
            s.database_url().expose_secret(),
            "sqlite:///var/lib/oio/oio.db?mode=rwc"
        );
        assert!(s.redis_url.is_none());
        assert!(s.opencode.servers.is_empty());
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("oio.toml");
        std::fs::write(
            &file,
            r#"
listen = "127.0.0.1:4000"
data_dir = "/from/file"
[database]
max_connections = 3
[[opencode.servers]]
url = "http://127.0.0.1:4096"
password = "hunter2"
capacity = 2
"#,
        )
        .unwrap();
        let s = Settings::load_from(Some(&file), env(&[("OIO_LISTEN", "0.0.0.0:5000")])).unwrap();
        assert_eq!(s.listen.to_string(), "0.0.0.0:5000");
        assert_eq!(s.data_dir, PathBuf::from("/from/file"));
        assert_eq!(s.database.max_connections, 3);
        assert_eq!(s.opencode.servers.len(), 1);
        assert_eq!(s.opencode.servers[0].capacity, 2);
        assert_eq!(
            s.opencode.servers[0]
                .password
                .as_ref()
                .unwrap()
                .expose_secret(),
            "hunter2"
        );
    }

    #[test]
    fn database_and_redis_urls_come_from_conventional_variables() {
        let s = Settings::load_from(
            None,
            env(&[
                ("DATABASE_URL", "postgres://postgres:pw@127.0.0.1:5432/oio"),
                ("REDIS_URL", "redis://127.0.0.1:6379"),
                (
                    "OIO_OPENCODE_URLS",
                    "http://127.0.0.1:4096, http://127.0.0.1:4097",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(s.backend().unwrap(), Backend::Postgres);
        assert!(s.redis_url.is_some());
        let urls: Vec<_> = s.opencode.servers.iter().map(|s| s.url.as_str()).collect();
        assert_eq!(urls, ["http://127.0.0.1:4096/", "http://127.0.0.1:4097/"]);
    }

    #[test]
    fn an_unknown_database_scheme_is_rejected_naming_the_field() {
        let err = Settings::load_from(None, env(&[("DATABASE_URL", "mysql://u:secret@h/db")]))
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("database.url"), "{msg}");
        assert!(!msg.contains("secret"), "password leaked: {msg}");
    }

    #[test]
    fn a_bad_opencode_url_is_rejected_naming_the_variable() {
        let err =
            Settings::load_from(None, env(&[("OIO_OPENCODE_URLS", "not a url")])).unwrap_err();
        assert!(err.to_string().contains("OIO_OPENCODE_URLS"), "{err}");
        let err =
            Settings::load_from(None, env(&[("OIO_OPENCODE_URLS", "ftp://host")])).unwrap_err();
        assert!(err.to_string().contains("opencode.servers.url"), "{err}");
    }

    #[test]
    fn opencode_resilience_comes_from_the_environment_and_zero_is_rejected() {
        let s = Settings::load_from(
            None,
            env(&[("OIO_OPENCODE__RESILIENCE__BREAKER_FAILURE_THRESHOLD", "2")]),
        )
        .unwrap();
        assert_eq!(s.opencode.resilience.breaker_failure_threshold, 2);
        assert_eq!(s.opencode.resilience.breaker_open_secs, 30, "defaults kept");
        let err = Settings::load_from(
            None,
            env(&[("OIO_OPENCODE__RESILIENCE__BREAKER_OPEN_SECS", "0")]),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("opencode.resilience.breaker_open_secs"),
            "{err}"
        );
    }

    #[test]
    fn worktrees_default_under_the_data_dir_and_come_from_file_and_environment() {
        use crate::ports::workspaces::CleanupPolicy;

        let s = Settings::load_from(None, env(&[("OIO_DATA_DIR", "/var/lib/oio")])).unwrap();
        assert_eq!(s.worktrees, WorktreeSettings::default());
        assert_eq!(
            s.worktrees.root(&s.data_dir),
            PathBuf::from("/var/lib/oio/worktrees")
        );
        assert_eq!(
            CleanupPolicy::from(s.worktrees.cleanup),
            CleanupPolicy::Keep
        );

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("oio.toml");
        std::fs::write(
            &file,
            "[worktrees]\nroot = \"/srv/worktrees\"\ncleanup = \"remove_worktree\"\n",
        )
        .unwrap();
        let s = Settings::load_from(Some(&file), env(&[])).unwrap();
        assert_eq!(
            s.worktrees.root(&s.data_dir),
            PathBuf::from("/srv/worktrees")
        );
        assert_eq!(
            CleanupPolicy::from(s.worktrees.cleanup),
            CleanupPolicy::RemoveWorktreeKeepBranch
        );

        let s = Settings::load_from(
            Some(&file),
            env(&[("OIO_WORKTREES__CLEANUP", "remove_all")]),
        )
        .unwrap();
        assert_eq!(s.worktrees.cleanup, WorktreeCleanup::RemoveAll);
    }

    #[test]
    fn bad_worktree_settings_are_rejected_naming_the_field() {
        let err =
            Settings::load_from(None, env(&[("OIO_WORKTREES__CLEANUP", "sometimes")])).unwrap_err();
        assert!(err.to_string().contains("worktrees.cleanup"), "{err}");
        let err = Settings::load_from(None, env(&[("OIO_WORKTREES__ROOT", "")])).unwrap_err();
        assert!(err.to_string().contains("worktrees.root"), "{err}");
    }

    #[test]
    fn zero_pool_size_is_rejected() {
        let err =
            Settings::load_from(None, env(&[("OIO_DATABASE__MAX_CONNECTIONS", "0")])).unwrap_err();
        assert!(
            err.to_string().contains("database.max_connections"),
            "{err}"
        );
    }

    #[test]
    fn redacted_settings_never_contain_secrets() {
        let s = Settings::load_from(
            None,
            env(&[
                (
                    "DATABASE_URL",
                    "postgres://postgres:topsecret@127.0.0.1/oio",
                ),
                ("REDIS_URL", "redis://:alsosecret@127.0.0.1:6379"),
            ]),
        )
        .unwrap();
        let shown = s.redacted().to_string();
        assert!(!shown.contains("topsecret"), "{shown}");
        assert!(!shown.contains("alsosecret"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
        assert!(!format!("{s:?}").contains("topsecret"));
    }

    #[test]
    fn redact_url_hides_passwords_but_keeps_the_rest() {
        assert_eq!(
            redact_url("postgres://user:pw@db.example:5432/x"),
            "postgres://user:***@db.example:5432/x"
        );
        assert_eq!(redact_url("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
    }

    #[test]
    fn opencode_urls_must_be_plain_http_without_credentials_query_or_fragment() {
        for (url, problem) in [
            ("ftp://h:1", "http:// or https://"),
            ("file:///tmp/x", "http:// or https://"),
            ("http://user:topsecret@h:1", "credentials"),
            ("http://user@h:1", "credentials"),
            ("http://h:1/?token=x", "query"),
            ("http://h:1/#frag", "fragment"),
        ] {
            let toml = format!("[[opencode.servers]]\nurl = \"{url}\"\n");
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("oio.toml");
            std::fs::write(&file, toml).unwrap();
            let err = Settings::load_from(Some(&file), env(&[])).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("opencode.servers.url"), "{url}: {msg}");
            assert!(msg.contains(problem), "{url}: {msg}");
            assert!(!msg.contains("topsecret"), "{url}: {msg}");
        }
        let err =
            Settings::load_from(None, env(&[("OIO_OPENCODE_URLS", "http://h:1?a=b")])).unwrap_err();
        assert!(err.to_string().contains("query"), "{err}");
    }

    #[test]
    fn a_password_in_oio_opencode_urls_moves_to_the_secret_field() {
        let s = Settings::load_from(
            None,
            env(&[(
                "OIO_OPENCODE_URLS",
                "http://opencode:s3cr%40t@127.0.0.1:4096",
            )]),
        )
        .unwrap();
        let server = &s.opencode.servers[0];
        assert_eq!(server.url.as_str(), "http://127.0.0.1:4096/");
        assert_eq!(server.password.as_ref().unwrap().expose_secret(), "s3cr@t");
        assert!(!format!("{s:?}").contains("s3cr"), "{s:?}");
    }

    #[test]
    fn http_limits_have_defaults_and_come_from_the_environment() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.http, HttpSettings::default());
        assert_eq!(s.http.max_body_bytes, 1024 * 1024);
        assert!(s.http.rate_limited());
        let s = Settings::load_from(
            None,
            env(&[
                ("OIO_HTTP__MAX_BODY_BYTES", "2048"),
                ("OIO_HTTP__RATE_LIMIT_PER_SECOND", "0"),
            ]),
        )
        .unwrap();
        assert_eq!(s.http.max_body_bytes, 2048);
        assert!(!s.http.rate_limited());
        assert_eq!(s.redacted()["http"]["max_body_bytes"], 2048);
        let err = Settings::load_from(None, env(&[("OIO_HTTP__MAX_BODY_BYTES", "0")])).unwrap_err();
        assert!(err.to_string().contains("http.max_body_bytes"), "{err}");
    }

    #[test]
    fn admission_pools_come_from_the_file_and_bad_bounds_are_rejected_naming_the_field() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.admission, AdmissionSettings::default());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("oio.toml");
        std::fs::write(
            &file,
            r#"
[admission]
default_max = 8
cooldown_ms = 500
[admission.pools."fake/fake-coder"]
max = 4
[admission.pools."OpenAI/gpt-4.1"]
max = 2
min = 2
"#,
        )
        .unwrap();
        let s = Settings::load_from(Some(&file), env(&[("OIO_ADMISSION__MIN", "2")])).unwrap();
        assert_eq!((s.admission.default_max, s.admission.min), (8, 2));
        assert_eq!(s.admission.cooldown_ms, 500);
        let keys: Vec<_> = s.admission.pools.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["OpenAI/gpt-4.1", "fake/fake-coder"],
            "keys kept verbatim"
        );
        assert_eq!(s.admission.pools["fake/fake-coder"].max, 4);
        assert_eq!(
            s.redacted()["admission"]["pools"]["fake/fake-coder"]["max"],
            4
        );

        for (toml, field) in [
            ("[admission]\ndefault_max = 0", "admission.default_max"),
            ("[admission]\nmin = 9\ndefault_max = 8", "admission.min"),
            ("[admission]\ngrow_after_ms = 0", "admission.grow_after_ms"),
            ("[admission.pools.\"nomodel\"]\nmax = 2", "admission.pools"),
            ("[admission.pools.\"a/b\"]\nmax = 0", "admission.pools"),
            (
                "[admission.pools.\"a/b\"]\nmax = 2\nmin = 3",
                "admission.pools",
            ),
        ] {
            std::fs::write(&file, toml).unwrap();
            let err = Settings::load_from(Some(&file), env(&[])).unwrap_err();
            assert!(err.to_string().contains(field), "{toml}: {err}");
        }
    }

    #[test]
    fn supervised_servers_come_from_the_file_with_defaults_and_bad_ones_are_refused() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert!(s.opencode.supervised.is_empty());
        assert_eq!(s.opencode.version(), "1.18.33");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("oio.toml");
        std::fs::write(
            &file,
            r#"
[opencode]
binary = "/opt/opencode"
version = "1.18.34"
[[opencode.supervised]]
name = "local-1"
directory = "/srv/work"
max_rss_mb = 512
[[opencode.supervised]]
name = "local-2"
"#,
        )
        .unwrap();
        let s = Settings::load_from(Some(&file), env(&[])).unwrap();
        assert_eq!(s.opencode.binary, Some(PathBuf::from("/opt/opencode")));
        assert_eq!(s.opencode.version(), "1.18.34");
        let [one, two] = s.opencode.supervised.as_slice() else {
            panic!("two supervised servers: {:?}", s.opencode.supervised);
        };
        assert_eq!(one.directory, Some(PathBuf::from("/srv/work")));
        assert_eq!((one.max_rss_mb, one.capacity), (512, 4));
        assert_eq!((two.directory.clone(), two.max_rss_mb), (None, 2048));
        assert_eq!(two.health_interval_ms, 5000);
        assert_eq!(s.redacted()["opencode"]["supervised"][1]["name"], "local-2");

        for (toml, field) in [
            (
                "[[opencode.supervised]]\nname = \"a\"\n[[opencode.supervised]]\nname = \"a\"",
                "opencode.supervised.name",
            ),
            (
                "[[opencode.supervised]]\nname = \" \"",
                "opencode.supervised.name",
            ),
            (
                "[[opencode.supervised]]\nname = \"a\"\ncapacity = 0",
                "opencode.supervised.capacity",
            ),
            (
                "[[opencode.supervised]]\nname = \"a\"\nhealth_interval_ms = 5",
                "opencode.supervised.health_interval_ms",
            ),
        ] {
            std::fs::write(&file, toml).unwrap();
            let err = Settings::load_from(Some(&file), env(&[])).unwrap_err();
            assert!(err.to_string().contains(field), "{toml}: {err}");
        }
    }
}
