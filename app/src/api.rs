//! Server functions and the plain serde types they exchange with the browser.

use domain::{Session, SessionStatus};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The most sessions one list call returns; bounds the page the dashboard renders.
pub const MAX_LIST_LIMIT: u32 = 500;

/// Filters for listing sessions, as sent over the wire.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionListQuery {
    pub status: Option<SessionStatus>,
    pub limit: u32,
}

impl SessionListQuery {
    /// Parses the raw filter values a browser sends; errors name the offending field.
    pub fn parse(status: Option<&str>, limit: Option<u32>) -> Result<Self, (&'static str, String)> {
        let status = match status.map(str::trim).filter(|s| !s.is_empty()) {
            None | Some("all") => None,
            Some(raw) => Some(
                raw.parse::<SessionStatus>()
                    .map_err(|e| ("status", e.to_string()))?,
            ),
        };
        let limit = limit.unwrap_or(100);
        if limit == 0 || limit > MAX_LIST_LIMIT {
            return Err(("limit", format!("must be between 1 and {MAX_LIST_LIMIT}")));
        }
        Ok(Self { status, limit })
    }
}

/// Lists the newest sessions, optionally only those in one status (`"all"` or empty for every one).
#[server(prefix = "/api/sf", endpoint = "list_sessions")]
pub async fn list_sessions(
    status: Option<String>,
    limit: Option<u32>,
) -> Result<Vec<Session>, ServerFnError> {
    use crate::ports::{AppServices, QueryError};

    let query = SessionListQuery::parse(status.as_deref(), limit)
        .map_err(|(field, message)| bad_argument(field, &message))?;
    let services = AppServices::from_context()?;
    services
        .sessions
        .list_sessions(query)
        .await
        .map_err(|e| match e {
            QueryError::Invalid { field, message } => bad_argument(field, &message),
            QueryError::Unavailable(message) => {
                tracing::warn!(%message, "session list unavailable");
                ServerFnError::ServerError("session storage is unavailable".into())
            }
        })
}

/// A rejected argument, naming the field, as server functions report it.
#[cfg(feature = "ssr")]
fn bad_argument(field: &str, message: &str) -> ServerFnError {
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::BAD_REQUEST);
    }
    ServerFnError::Args(format!("{field}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_or_all_status_means_no_filter() {
        assert_eq!(SessionListQuery::parse(None, None).unwrap().status, None);
        assert_eq!(
            SessionListQuery::parse(Some("all"), None).unwrap().status,
            None
        );
        assert_eq!(
            SessionListQuery::parse(Some("  "), None).unwrap().status,
            None
        );
    }

    #[test]
    fn known_status_is_parsed() {
        let q = SessionListQuery::parse(Some("running"), Some(10)).unwrap();
        assert_eq!(q.status, Some(SessionStatus::Running));
        assert_eq!(q.limit, 10);
    }

    #[test]
    fn unknown_status_names_the_field() {
        let (field, message) = SessionListQuery::parse(Some("sleeping"), None).unwrap_err();
        assert_eq!(field, "status");
        assert!(message.contains("sleeping"), "{message}");
    }

    #[test]
    fn limit_out_of_range_names_the_field() {
        assert_eq!(
            SessionListQuery::parse(None, Some(0)).unwrap_err().0,
            "limit"
        );
        assert_eq!(
            SessionListQuery::parse(None, Some(MAX_LIST_LIMIT + 1))
                .unwrap_err()
                .0,
            "limit"
        );
        assert_eq!(SessionListQuery::parse(None, None).unwrap().limit, 100);
    }
}
