//! The human-in-the-loop inbox as stored: one row per permission request or question an agent
//! server raised, keyed by (server, request id) so an event seen twice (streams repeat after a
//! reconnect) is recorded once.
//!
//! Writes use optimistic locking like the rest of the store: an insert stores version 1; an
//! update carries the version it read and fails with [`RepositoryError::Conflict`] (changing
//! nothing) when the stored one differs.

use async_trait::async_trait;
use domain::{InboxItem, InboxItemId};

use super::RepositoryError;

/// Which items a list returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InboxFilter {
    /// Items still waiting for an answer (pending or escalated).
    #[default]
    Open,
    /// Every item, closed ones included.
    All,
}

/// What [`InboxRepository::insert_if_new`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The stored item: the new one, or the one recorded earlier for the same request.
    pub item: InboxItem,
    /// Whether this call stored it.
    pub new: bool,
}

#[async_trait]
pub trait InboxRepository: Send + Sync + 'static {
    /// Stores `item` (at version 1) unless an item for the same `(server, request_id)` exists,
    /// in which case that one is returned unchanged. Two callers racing on one request both get
    /// the single stored item; exactly one sees `new`.
    async fn insert_if_new(&self, item: &InboxItem) -> Result<Recorded, RepositoryError>;

    async fn get(&self, id: InboxItemId) -> Result<Option<InboxItem>, RepositoryError>;

    /// The item recorded for a server's request, if any.
    async fn find(
        &self,
        server: &str,
        request_id: &str,
    ) -> Result<Option<InboxItem>, RepositoryError>;

    /// Items newest first (creation time, then id), at most `limit`.
    async fn list(
        &self,
        filter: InboxFilter,
        limit: u32,
    ) -> Result<Vec<InboxItem>, RepositoryError>;

    /// Writes the item's mutable fields (status, escalation and resolution times, resolution,
    /// our session) where the stored version is still `item.version`, and returns the item at
    /// its new version. `NotFound` for an unknown id; `Conflict` when changed since it was read;
    /// either way nothing is written.
    async fn update(&self, item: &InboxItem) -> Result<InboxItem, RepositoryError>;
}
