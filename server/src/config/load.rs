//! Loading: built-in defaults, then an optional TOML file, then the environment (with
//! `OIO_OPENCODE_URLS`, `DATABASE_URL` and `REDIS_URL` read by hand), then [`Settings::validate`].

use std::collections::HashMap;
use std::path::Path;

use secrecy::SecretString;
use url::Url;

use super::{default_capacity, invalid, redact_url, ConfigError, OpenCodeServerSettings, Settings};

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
        let env: HashMap<String, String> = env.into_iter().collect();
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
    use crate::config::test_env as env;
    use secrecy::ExposeSecret;
    use std::path::PathBuf;

    use crate::config::{
        AdmissionSettings, Backend, HttpSettings, WorktreeCleanup, WorktreeSettings,
    };

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
    fn a_bad_opencode_url_is_rejected_naming_the_variable() {
        let err =
            Settings::load_from(None, env(&[("OIO_OPENCODE_URLS", "not a url")])).unwrap_err();
        assert!(err.to_string().contains("OIO_OPENCODE_URLS"), "{err}");
        let err =
            Settings::load_from(None, env(&[("OIO_OPENCODE_URLS", "ftp://host")])).unwrap_err();
        assert!(err.to_string().contains("opencode.servers.url"), "{err}");
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
