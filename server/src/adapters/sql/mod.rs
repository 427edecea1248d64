//! What the SQL adapters share: value range checks, driver-error translation, row decoding, list
//! filters and the commit algorithm. SQL text and value encodings differ per backend and stay in
//! each backend's folder.

mod commit;
mod decode;
mod filter;
mod queue;

pub(crate) use commit::{apply, signals_of, ChangeWriter};
pub(crate) use decode::{
    agent_from_row, assignment_json, counts_from_rows, execution_json, outbox_message_from_row,
    queue_depth_from_row, queue_entry_from_row, session_event_from_row, session_from_row,
    task_from_row, Columns,
};
pub(crate) use filter::{fetch_limit, push_where, session_terms, task_terms, Term, Value};
pub(crate) use queue::{claim_of, place, QUEUE_COLUMNS};

use std::collections::BTreeSet;

use domain::AgentCapability;
use uuid::Uuid;

use crate::ports::{EntityKey, RepositoryError};

/// Counters are u64 in the domain and BIGINT (i64) in SQL; values past i64::MAX are refused
/// rather than wrapped.
pub(crate) fn to_i64(value: u64) -> Result<i64, RepositoryError> {
    i64::try_from(value).map_err(|_| RepositoryError::OutOfRange(format!("{value} exceeds BIGINT")))
}

/// PostgreSQL's INTEGER is signed 32-bit; SQLite's INTEGER takes every u32.
pub(crate) fn to_i32(value: u32) -> Result<i32, RepositoryError> {
    i32::try_from(value)
        .map_err(|_| RepositoryError::OutOfRange(format!("{value} exceeds INTEGER")))
}

/// Any driver failure nothing more specific was found for. Foreign-key violations only reach
/// here if a row changed behind the adapter's own reference checks (see [`apply`]).
pub(crate) fn map_sqlx_error(e: sqlx::Error) -> RepositoryError {
    match e.as_database_error() {
        Some(db) if db.is_foreign_key_violation() => {
            RepositoryError::Unavailable(format!("a referenced row does not exist: {db}"))
        }
        _ => RepositoryError::Unavailable(e.to_string()),
    }
}

/// An insert's unique violation names the entity that already exists.
pub(crate) fn map_insert_error(
    e: sqlx::Error,
    entity: &'static str,
    id: String,
) -> RepositoryError {
    match e.as_database_error() {
        Some(db) if db.is_unique_violation() => RepositoryError::Duplicate { entity, id },
        _ => map_sqlx_error(e),
    }
}

/// Capabilities are stored as a JSON array of their names (sorted: it is a set).
pub(crate) fn capabilities_json(capabilities: &BTreeSet<AgentCapability>) -> String {
    let names: Vec<&str> = capabilities.iter().map(|c| c.as_str()).collect();
    serde_json::Value::from(names).to_string()
}

/// The table holding the entity a key names; never user input.
/// A session's typed stop reason as the JSON text both backends store in `stop_reason`.
pub(crate) fn stop_reason_json(
    r: &domain::SessionRecord,
) -> Result<Option<String>, RepositoryError> {
    r.stop_reason
        .as_ref()
        .map(|reason| {
            serde_json::to_string(reason)
                .map_err(|e| RepositoryError::Unavailable(format!("stop reason: {e}")))
        })
        .transpose()
}

pub(crate) fn table_of(key: EntityKey) -> &'static str {
    match key {
        EntityKey::Session(_) => "sessions",
        EntityKey::Task(_) => "tasks",
        EntityKey::Agent(_) => "agents",
        EntityKey::InboxItem(_) => "inbox_items",
    }
}

pub(crate) fn uuid_of(key: EntityKey) -> Uuid {
    match key {
        EntityKey::Session(id) => id.as_uuid(),
        EntityKey::Task(id) => id.as_uuid(),
        EntityKey::Agent(id) => id.as_uuid(),
        EntityKey::InboxItem(id) => id.as_uuid(),
    }
}
