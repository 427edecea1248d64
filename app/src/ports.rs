//! Driving ports: what the server functions need from the application layer.
//!
//! The server binary implements these traits with its application services and places an
//! [`AppServices`] in the Leptos context; server-function bodies only call through them, so the
//! app holds no SQL and knows no adapter.

use std::sync::Arc;

use async_trait::async_trait;
use domain::{Page, PageRequest, Session, SessionFilter};

/// Why a query could not be answered. Carries no adapter types across the boundary.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// Read side of sessions, as the dashboard sees it.
#[async_trait]
pub trait SessionQueries: Send + Sync + 'static {
    async fn list_sessions(
        &self,
        filter: SessionFilter,
        page: PageRequest,
    ) -> Result<Page<Session>, QueryError>;
}

/// Everything the server functions may call, provided once per request through context.
#[derive(Clone)]
pub struct AppServices {
    pub sessions: Arc<dyn SessionQueries>,
}

impl AppServices {
    /// The services in context, or an error naming what is missing (a wiring bug, not a panic).
    pub fn from_context() -> Result<Self, leptos::prelude::ServerFnError> {
        leptos::prelude::use_context::<Self>().ok_or_else(|| {
            leptos::prelude::ServerFnError::ServerError(
                "application services are not wired into the Leptos context".into(),
            )
        })
    }
}
