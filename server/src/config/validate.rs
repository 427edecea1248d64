//! The whole settings' checks: each section's own (beside the section, in the crate that owns
//! it) and those that need more than one section. The error names the field, never a secret.

use super::sections::validate_redis_url;
use super::{invalid, ConfigError, Settings};

impl Settings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.backend()?;
        self.database.validate()?;
        validate_redis_url(self.redis_url.as_ref())?;
        self.engine.validate()?;
        self.auth.validate()?;
        self.opencode.validate()?;
        self.worktrees.validate()?;
        self.http.validate()?;
        self.admission.validate()?;
        self.guardrails
            .validate()
            .map_err(|e| invalid(e.field, e.message))?;
        self.inbox.policies()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_env as env;

    #[test]
    fn an_unknown_database_scheme_is_rejected_naming_the_field() {
        let err = Settings::load_from(None, env(&[("DATABASE_URL", "mysql://u:secret@h/db")]))
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("database.url"), "{msg}");
        assert!(!msg.contains("secret"), "password leaked: {msg}");
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
}
