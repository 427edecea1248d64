//! The API's one error shape, `{"error": {"field": <name or null>, "message": "..."}}`, and how
//! every application error maps onto an HTTP status. Storage details are logged, never returned.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::ValidationError;

use super::dto::{ErrorBody, ErrorDetail};
use oio_application::ports::RepositoryError;
use oio_application::{AgentServiceError, DecompositionError, ExecutionError, LifecycleError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or a value is out of bounds; `field` names it when known.
    #[error("{message}")]
    Invalid {
        field: Option<String>,
        message: String,
    },
    /// 404: the id names nothing.
    #[error("{0}")]
    NotFound(String),
    /// 409: a version conflict, or the command does not apply in the current state.
    #[error("{0}")]
    Conflict(String),
    /// 413: the request body is over the configured limit (the field is `body`).
    #[error("{0}")]
    TooLarge(String),
    /// 429: this client made too many requests; answered with `Retry-After`.
    #[error("too many requests: retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// 503: storage cannot be reached. The detail is logged, not returned.
    #[error("storage is unavailable")]
    Unavailable(String),
    /// 500: a bug or corrupt data. The detail is logged, not returned.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// A body over `max` bytes.
    pub fn too_large(max: usize) -> Self {
        ApiError::TooLarge(format!("request body is over the limit of {max} bytes"))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Unavailable(detail) => {
                tracing::warn!(%detail, "API request failed: storage unavailable")
            }
            ApiError::Internal(detail) => tracing::error!(%detail, "API request failed"),
            _ => {}
        }
        let field = match &self {
            ApiError::Invalid { field, .. } => field.clone(),
            ApiError::TooLarge(_) => Some("body".to_owned()),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                field,
                message: self.to_string(),
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let ApiError::RateLimited { retry_after_secs } = self {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        ApiError::invalid(error.field, error.message)
    }
}

impl From<RepositoryError> for ApiError {
    fn from(error: RepositoryError) -> Self {
        match error {
            RepositoryError::Unavailable(detail) => ApiError::Unavailable(detail),
            RepositoryError::NotFound(key) => ApiError::NotFound(format!("{key} does not exist")),
            e @ (RepositoryError::Conflict { .. }
            | RepositoryError::Duplicate { .. }
            | RepositoryError::FenceLost { .. }) => ApiError::Conflict(e.to_string()),
            RepositoryError::OutOfRange(message) => ApiError::Invalid {
                field: None,
                message: format!("value out of range: {message}"),
            },
            e @ RepositoryError::Corrupt { .. } => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<LifecycleError> for ApiError {
    fn from(error: LifecycleError) -> Self {
        match error {
            LifecycleError::Invalid(e) => e.into(),
            e @ LifecycleError::NotFound(_) => ApiError::NotFound(e.to_string()),
            LifecycleError::NotAllowed(message) => ApiError::Conflict(message),
            LifecycleError::Storage(e) => e.into(),
        }
    }
}

impl From<AgentServiceError> for ApiError {
    fn from(error: AgentServiceError) -> Self {
        match error {
            AgentServiceError::Invalid(e) => e.into(),
            e @ AgentServiceError::NotFound(_) => ApiError::NotFound(e.to_string()),
            e @ AgentServiceError::Conflict { .. } => ApiError::Conflict(e.to_string()),
            AgentServiceError::Storage(e) => e.into(),
        }
    }
}

impl From<ExecutionError> for ApiError {
    fn from(error: ExecutionError) -> Self {
        match error {
            ExecutionError::Invalid(e) => e.into(),
            e @ ExecutionError::NotFound(_) => ApiError::NotFound(e.to_string()),
            ExecutionError::NotAllowed(message) => ApiError::Conflict(message),
            ExecutionError::Storage(e) => e.into(),
        }
    }
}

impl From<DecompositionError> for ApiError {
    fn from(error: DecompositionError) -> Self {
        match error {
            DecompositionError::Invalid(e) => e.into(),
            e @ DecompositionError::Graph(_) => ApiError::Internal(e.to_string()),
            DecompositionError::Storage(e) => e.into(),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::Invalid {
            field: None,
            message: rejection.body_text(),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::Invalid {
            field: None,
            message: rejection.body_text(),
        }
    }
}
