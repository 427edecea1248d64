//! What the SQL adapters share: integer range checks and driver-error translation.

use crate::ports::RepositoryError;

/// Counters are u64 in the domain and BIGINT/INTEGER (i64) in SQL; values past i64::MAX are refused
/// rather than wrapped.
pub fn to_i64(value: u64) -> Result<i64, RepositoryError> {
    i64::try_from(value).map_err(|_| RepositoryError::OutOfRange(format!("{value} exceeds BIGINT")))
}

pub fn from_i64(value: i64) -> Result<u64, String> {
    u64::try_from(value).map_err(|_| format!("negative value {value}"))
}

pub fn map_sqlx_error(e: sqlx::Error) -> RepositoryError {
    RepositoryError::Unavailable(e.to_string())
}

pub fn map_insert_error(e: sqlx::Error, entity: &'static str, id: String) -> RepositoryError {
    match e.as_database_error() {
        Some(db) if db.is_unique_violation() => RepositoryError::Duplicate { entity, id },
        _ => map_sqlx_error(e),
    }
}
