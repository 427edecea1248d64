//! Where sessions are stored.

use app::api::SessionListQuery;
use async_trait::async_trait;
use domain::Session;

/// A storage failure, in the application's words; no driver type crosses this boundary.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// The store could not be reached or refused the operation; the caller may try again later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A row exists but does not make a valid entity (written by something else, or a bug).
    #[error("stored {entity} {id} is invalid: {message}")]
    Corrupt {
        entity: &'static str,
        id: String,
        message: String,
    },
    /// A value does not fit the store's column type; nothing was written.
    #[error("value out of the store's range: {0}")]
    OutOfRange(String),
    /// The entity already exists.
    #[error("{entity} {id} already exists")]
    Duplicate { entity: &'static str, id: String },
}

/// Timestamps round-trip at microsecond precision (what both SQL backends keep).
#[async_trait]
pub trait SessionRepository: Send + Sync + 'static {
    /// Stores a new session at version 1.
    async fn insert(&self, session: &Session) -> Result<(), RepositoryError>;
    /// The newest sessions first (by creation time, then id), soft-deleted ones excluded.
    async fn list(&self, query: &SessionListQuery) -> Result<Vec<Session>, RepositoryError>;
    /// Whether the store answers at all: the readiness probe.
    async fn ping(&self) -> Result<(), RepositoryError>;
}
