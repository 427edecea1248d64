//! Extractors whose refusals are the API's JSON errors (axum's defaults answer in plain text).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::errors::ApiError;

/// Query parameters; a malformed query string is a 400 in the API's shape.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// Path parameters, refused the same way.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// A JSON body. An empty body reads as `{}` (so optional-only bodies may be left out, and a
/// missing required field is named); a bad body is a 400 naming the field at fault.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge(format!("request body is too large: {}", e.body_text()))
            } else {
                ApiError::Invalid {
                    field: Some("body".to_owned()),
                    message: e.body_text(),
                }
            }
        })?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        parse_json(text).map(ApiJson)
    }
}

/// Deserialises `bytes`, naming the field a failure is about: its path (`start.workspace`), or,
/// for a missing field, the missing one.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let message = inner.to_string();
        let field = missing_field(&message)
            .or_else(|| unknown_field(&message))
            .map(|name| {
                if path == "." {
                    name.to_owned()
                } else if path == name || path.ends_with(&format!(".{name}")) {
                    path.clone()
                } else {
                    format!("{path}.{name}")
                }
            })
            .or_else(|| (path != ".").then_some(path));
        ApiError::Invalid {
            field,
            message: format!("invalid JSON body: {message}"),
        }
    })
}

/// `unknown field `colour`, expected …` → `colour`.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split_once('`').map(|(name, _)| name)
}

/// `missing field `title`` → `title`.
fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split_once('`').map(|(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        title: String,
        #[serde(default)]
        priority: i32,
        nested: Option<Nested>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Nested {
        workspace: String,
    }

    fn field_of(json: &str) -> Option<String> {
        match parse_json::<Body>(json.as_bytes()) {
            Err(ApiError::Invalid { field, .. }) => field,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn a_bad_body_names_its_field() {
        assert_eq!(field_of(r#"{"title": 1}"#).as_deref(), Some("title"));
        assert_eq!(
            field_of(r#"{"title": "t", "priority": "high"}"#).as_deref(),
            Some("priority")
        );
        assert_eq!(field_of(r#"{"priority": 1}"#).as_deref(), Some("title"));
        assert_eq!(
            field_of(r#"{"title": "t", "nested": {}}"#).as_deref(),
            Some("nested.workspace")
        );
        assert_eq!(field_of("not json"), None);
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Strict {
        title: String,
        nested: Option<StrictNested>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct StrictNested {
        workspace: String,
    }

    #[test]
    fn an_unknown_field_is_named() {
        let field = |json: &str| match parse_json::<Strict>(json.as_bytes()) {
            Err(ApiError::Invalid { field, message }) => {
                assert!(message.contains("unknown field"), "{message}");
                field
            }
            other => panic!("expected a 400, got {other:?}"),
        };
        assert_eq!(
            field(r#"{"title": "t", "colour": 1}"#).as_deref(),
            Some("colour")
        );
        assert_eq!(
            field(r#"{"title": "t", "nested": {"workspace": "w", "extra": true}}"#).as_deref(),
            Some("nested.extra")
        );
    }
}
