//! Text fit for logs and error messages.

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
