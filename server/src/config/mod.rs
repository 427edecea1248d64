//! Typed, layered settings: built-in defaults, then an optional TOML file, then the environment.
//! This module owns [`Settings`] (every section assembled) and how it is shown; loading is in
//! [`load`], the checks in [`validate`], this binary's own sections in [`sections`] (the others
//! live in the crates that use them and are re-exported here).
//!
//! Environment: `OIO_LISTEN`, `OIO_DATA_DIR`, `OIO_DATABASE__MAX_CONNECTIONS`,
//! `OIO_DATABASE__ACQUIRE_TIMEOUT_SECS`, `OIO_LOG__FORMAT` (`pretty` | `json`), `OIO_OPENCODE_URLS`
//! (comma-separated), `OIO_WORKTREES__ROOT`, `OIO_WORKTREES__CLEANUP` (`keep` | `remove_worktree` |
//! `remove_all`), and the conventional `DATABASE_URL` and `REDIS_URL`. Secrets (database and
//! Redis URLs, OpenCode passwords) are held in [`SecretString`] so they never print, and are
//! serialised only through `oio_adapters::redact` (see [`Settings::redacted`]).

mod load;
mod sections;
mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

pub use oio_adapters::opencode::settings::default_capacity;
pub use oio_adapters::opencode::settings::{
    OpenCodeResilienceSettings, OpenCodeServerSettings, OpenCodeSettings, SupervisedServerSettings,
};
pub use oio_adapters::redact_url;
pub use oio_application::settings::{
    invalid, AdmissionPoolSettings, AdmissionSettings, ConfigError, EngineSettings,
};
pub use oio_web::settings::{AuthSettings, HttpSettings};
pub use sections::{DatabaseSettings, LogFormat, LogSettings, WorktreeCleanup, WorktreeSettings};

/// Every section. `Serialize` is what operators see (`Settings::redacted`): each secret field
/// carries its redacting serialiser, and one without it does not compile.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Settings {
    /// Address the HTTP server (dashboard, API, health) listens on. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Where the embedded database and other local state live.
    pub data_dir: PathBuf,
    pub database: DatabaseSettings,
    #[serde(serialize_with = "oio_adapters::redact::secret_url")]
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

/// Which storage backend a database URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Settings {
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

    /// The settings as an operator may see them: every section, every secret redacted (by the
    /// serialisers on the secret fields), and where a setting defaults from another, the value in
    /// force rather than `null`.
    pub fn redacted(&self) -> serde_json::Value {
        let mut shown = match serde_json::to_value(self) {
            Ok(shown) => shown,
            // Only a path that is not UTF-8 gets here; the message names no value.
            Err(e) => return serde_json::json!({ "error": format!("settings not shown: {e}") }),
        };
        shown["database"]["url"] = redact_url(self.database_url().expose_secret()).into();
        shown["worktrees"]["root"] = self
            .worktrees
            .root(&self.data_dir)
            .display()
            .to_string()
            .into();
        shown["opencode"]["version"] = self.opencode.version().into();
        shown
    }
}

/// The environment as `Settings::load_from` takes it, for the tests of every config module.
#[cfg(test)]
fn test_env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::test_env as env;
    use super::*;

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
    fn every_section_is_shown_and_no_secret_is() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("oio.toml");
        std::fs::write(
            &file,
            r#"
[[opencode.servers]]
url = "http://127.0.0.1:4096"
password = "opencode-secret"
[engine]
max_running = 7
[guardrails]
max_steps = 42
[guardrails.session]
max_cost_usd = 5.0
[inbox]
escalate_after_secs = 60
"#,
        )
        .unwrap();
        let s = Settings::load_from(
            Some(&file),
            env(&[
                ("DATABASE_URL", "postgres://oio:db-secret@127.0.0.1/oio"),
                ("REDIS_URL", "redis://:redis-secret@127.0.0.1:6379"),
            ]),
        )
        .unwrap();
        let shown = s.redacted();
        let sections: Vec<&str> = shown
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for section in [
            "listen",
            "data_dir",
            "database",
            "redis_url",
            "opencode",
            "worktrees",
            "engine",
            "auth",
            "log",
            "http",
            "admission",
            "guardrails",
            "inbox",
        ] {
            assert!(sections.contains(&section), "{section} missing: {shown}");
        }
        assert_eq!(shown["engine"]["max_running"], 7);
        assert_eq!(shown["guardrails"]["max_steps"], 42);
        assert_eq!(shown["guardrails"]["session"]["max_cost_usd"], 5.0);
        assert_eq!(shown["inbox"]["escalate_after_secs"], 60);
        assert_eq!(shown["log"]["format"], "pretty");
        assert_eq!(shown["worktrees"]["cleanup"], "keep");
        // Secrets: URLs keep everything but the password, passwords show only that they are set.
        assert_eq!(shown["database"]["url"], "postgres://oio:***@127.0.0.1/oio");
        assert_eq!(shown["redis_url"], "redis://:***@127.0.0.1:6379");
        assert_eq!(shown["opencode"]["servers"][0]["password"], "***");
        assert_eq!(
            shown["opencode"]["servers"][0]["url"],
            "http://127.0.0.1:4096/"
        );
        let text = shown.to_string();
        for secret in ["db-secret", "redis-secret", "opencode-secret"] {
            assert!(!text.contains(secret), "{secret} shown: {text}");
        }
    }

    #[test]
    fn defaults_in_force_are_shown_rather_than_null() {
        let s = Settings::load_from(None, env(&[("OIO_DATA_DIR", "/var/lib/oio")])).unwrap();
        let shown = s.redacted();
        assert_eq!(
            shown["database"]["url"],
            "sqlite:///var/lib/oio/oio.db?mode=rwc"
        );
        assert_eq!(shown["worktrees"]["root"], "/var/lib/oio/worktrees");
        assert_eq!(shown["opencode"]["version"], s.opencode.version());
        assert!(shown["redis_url"].is_null());
    }
}
