//! The web layer's settings sections: `[http]` (request limits) and `[auth]` (sign-in).

use serde::{Deserialize, Serialize};

use oio_application::settings::{invalid, ConfigError};

/// Limits on inbound HTTP requests, every route (`[http]`, `OIO_HTTP__…`); see
/// [`crate::limits`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct HttpSettings {
    /// Largest request body accepted, in bytes; a larger one is refused with 413.
    pub max_body_bytes: usize,
    /// Requests per second one client (API token, else peer IP) may make; 0 disables the limit.
    pub rate_limit_per_second: u32,
    /// Requests one client may make at once before the rate applies; 0 disables the limit.
    pub rate_limit_burst: u32,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            rate_limit_per_second: 50,
            rate_limit_burst: 100,
        }
    }
}

impl HttpSettings {
    /// Whether requests are rate limited at all.
    pub fn rate_limited(&self) -> bool {
        self.rate_limit_per_second > 0 && self.rate_limit_burst > 0
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes == 0 {
            return Err(invalid("http.max_body_bytes", "must be at least 1"));
        }
        Ok(())
    }
}

/// Sign-in and API tokens (`[auth]`, `OIO_AUTH__…`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct AuthSettings {
    /// How long a dashboard sign-in lasts.
    pub session_ttl_hours: u64,
    /// Mark the session cookie `Secure` (set it when the dashboard is served over HTTPS, e.g.
    /// behind a TLS-terminating load balancer).
    pub secure_cookie: bool,
    /// Serve `/status` (the wall screen: counts, fleet health, recent failures) without sign-in,
    /// for a screen on a trusted network. Everything else still needs a role.
    pub public_status: bool,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            session_ttl_hours: 12,
            secure_cookie: false,
            public_status: false,
        }
    }
}

impl AuthSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        // A sign-in longer than a month is a token nobody remembers handing out.
        if self.session_ttl_hours == 0 || self.session_ttl_hours > 24 * 30 {
            return Err(invalid(
                "auth.session_ttl_hours",
                "must be between 1 and 720",
            ));
        }
        Ok(())
    }
}
