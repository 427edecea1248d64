//! Reading sessions and their event log.

use async_trait::async_trait;
use domain::{Page, PageRequest, Session, SessionFilter, SessionId};

use super::{RepositoryError, StoredSessionEvent};

/// Timestamps round-trip at microsecond precision (what both SQL stores keep).
#[async_trait]
pub trait SessionRepository: Send + Sync + 'static {
    /// A live session; `None` if it does not exist or is soft-deleted.
    async fn get(&self, id: SessionId) -> Result<Option<Session>, RepositoryError>;
    /// A session whether or not it is soft-deleted (to restore it, or audit it).
    async fn get_including_deleted(
        &self,
        id: SessionId,
    ) -> Result<Option<Session>, RepositoryError>;
    /// Live sessions matching `filter`, newest first (creation time, then id, both descending),
    /// one keyset page at a time.
    async fn list(
        &self,
        filter: &SessionFilter,
        page: &PageRequest,
    ) -> Result<Page<Session>, RepositoryError>;
    /// The session's events in the order they were committed (`seq` 1, 2, …).
    async fn events(&self, id: SessionId) -> Result<Vec<StoredSessionEvent>, RepositoryError>;
    /// Whether the store answers at all: the readiness probe.
    async fn ping(&self) -> Result<(), RepositoryError>;
}
