//! Text fit for logs and error messages, and the serialisers that keep secrets out of anything
//! derived from the settings (`Settings::redacted`).
//!
//! Every [`SecretString`] field of a settings section is written through [`secret`] or
//! [`secret_url`]. `SecretString` is not `Serialize`, so a new secret field without one of them
//! does not compile:
//!
//! ```compile_fail
//! #[derive(serde::Serialize)]
//! struct Leaky {
//!     password: Option<secrecy::SecretString>,
//! }
//! ```

use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, Serializer};
use url::Url;

/// A URL fit for logs and error messages: any password replaced by `***`.
pub fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            // Cannot fail: a URL that already has a password can hold another.
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(url) => url.to_string(),
        // Unparseable: show only the scheme, since a password could be anywhere in it.
        Err(_) => match raw.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://<unparseable>"),
            None => "<unparseable>".to_string(),
        },
    }
}

/// `#[serde(serialize_with = "…::secret")]`: a secret written as `"***"` (absent: `null`), so an
/// operator sees that it is set and nothing of it.
pub fn secret<S: Serializer>(
    value: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    value.as_ref().map(|_| "***").serialize(serializer)
}

/// `#[serde(serialize_with = "…::secret_url")]`: a URL that may carry a password, written through
/// [`redact_url`] (absent: `null`), so the host and database still show.
pub fn secret_url<S: Serializer>(
    value: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    value
        .as_ref()
        .map(|url| redact_url(url.expose_secret()))
        .serialize(serializer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Section {
        #[serde(serialize_with = "secret")]
        password: Option<SecretString>,
        #[serde(serialize_with = "secret_url")]
        url: Option<SecretString>,
    }

    #[test]
    fn secrets_serialise_as_stars_and_urls_without_their_password() {
        let shown = serde_json::to_value(Section {
            password: Some(SecretString::from("hunter2")),
            url: Some(SecretString::from("postgres://u:hunter3@db:5432/x")),
        })
        .unwrap();
        assert_eq!(
            shown,
            serde_json::json!({ "password": "***", "url": "postgres://u:***@db:5432/x" })
        );
        let absent = serde_json::to_value(Section {
            password: None,
            url: None,
        })
        .unwrap();
        assert_eq!(absent, serde_json::json!({ "password": null, "url": null }));
    }
}
