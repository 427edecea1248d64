//! Storage failures in the application's words; no driver type crosses this boundary.

use domain::SessionId;

use super::EntityKey;

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
    /// An insert named an entity (or a unique name) that already exists; nothing was written.
    #[error("{entity} {id} already exists")]
    Duplicate { entity: &'static str, id: String },
    /// An update named an entity that does not exist, or a change referred to one (a task's
    /// parent, subtask or dependency; a session event's session); nothing was written.
    #[error("{0} does not exist")]
    NotFound(EntityKey),
    /// Optimistic locking: the entity was changed since it was read (its stored version is not the
    /// one the writer read); nothing was written. Re-read and decide again.
    #[error("{key} was changed concurrently: expected version {expected}, found {actual}")]
    Conflict {
        key: EntityKey,
        expected: u64,
        actual: u64,
    },
    /// Fencing: the write came from a replica whose lease on the session is no longer current
    /// (another replica claimed it, or the row is gone); nothing was written.
    #[error("the lease on session {session} is no longer held (fence {fence})")]
    FenceLost { session: SessionId, fence: u64 },
}
