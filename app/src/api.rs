//! Server functions and the plain serde types they exchange with the browser.

use domain::{Cursor, Page, PageRequest, Session, SessionFilter, SessionStatus};
use leptos::prelude::*;

/// The page size the dashboard asks for when none is given.
pub const DEFAULT_LIST_LIMIT: u32 = 100;

/// Parses the raw list parameters a browser sends; errors name the offending field.
pub fn parse_session_list(
    status: Option<&str>,
    limit: Option<u32>,
    after: Option<&str>,
) -> Result<(SessionFilter, PageRequest), (&'static str, String)> {
    let status = match status.map(str::trim).filter(|s| !s.is_empty()) {
        None | Some("all") => None,
        Some(raw) => Some(
            raw.parse::<SessionStatus>()
                .map_err(|e| ("status", e.to_string()))?,
        ),
    };
    let after = after
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|raw| raw.parse::<Cursor>().map_err(|e| (e.field, e.message)))
        .transpose()?;
    let page = PageRequest::new(limit.unwrap_or(DEFAULT_LIST_LIMIT), after)
        .map_err(|e| (e.field, e.message))?;
    let filter = SessionFilter {
        status,
        ..SessionFilter::default()
    };
    Ok((filter, page))
}

/// One page of the newest sessions, optionally only those in one status (`"all"` or empty for
/// every one), starting after the `after` cursor.
#[server(prefix = "/api/sf", endpoint = "list_sessions")]
pub async fn list_sessions(
    status: Option<String>,
    limit: Option<u32>,
    after: Option<String>,
) -> Result<Page<Session>, ServerFnError> {
    use crate::ports::{AppServices, QueryError};

    let (filter, page) = parse_session_list(status.as_deref(), limit, after.as_deref())
        .map_err(|(field, message)| bad_argument(field, &message))?;
    let services = AppServices::from_context()?;
    services
        .sessions
        .list_sessions(filter, page)
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
        for raw in [None, Some("all"), Some("  ")] {
            let (filter, _) = parse_session_list(raw, None, None).unwrap();
            assert_eq!(filter.status, None);
        }
    }

    #[test]
    fn known_status_and_limit_are_parsed() {
        let (filter, page) = parse_session_list(Some("running"), Some(10), None).unwrap();
        assert_eq!(filter.status, Some(SessionStatus::Running));
        assert_eq!(page.limit(), 10);
        assert_eq!(page.after, None);
    }

    #[test]
    fn unknown_status_names_the_field() {
        let (field, message) = parse_session_list(Some("sleeping"), None, None).unwrap_err();
        assert_eq!(field, "status");
        assert!(message.contains("sleeping"), "{message}");
    }

    #[test]
    fn limit_out_of_range_names_the_field() {
        assert_eq!(
            parse_session_list(None, Some(0), None).unwrap_err().0,
            "limit"
        );
        assert_eq!(
            parse_session_list(None, Some(100_000), None).unwrap_err().0,
            "limit"
        );
        let (_, page) = parse_session_list(None, None, None).unwrap();
        assert_eq!(page.limit(), DEFAULT_LIST_LIMIT);
    }

    #[test]
    fn a_cursor_is_parsed_and_a_bad_one_names_the_field() {
        let (_, page) = parse_session_list(
            None,
            None,
            Some("1764000000000000.00000000000000000000000000001234"),
        )
        .unwrap();
        assert!(page.after.is_some());
        assert_eq!(
            parse_session_list(None, None, Some("nope")).unwrap_err().0,
            "cursor"
        );
    }
}
