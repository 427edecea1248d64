//! One store fixture per backend: a fresh, migrated [`Store`] on SQLite (a temp file) or on
//! PostgreSQL (a fresh database, see [`TestDatabase`]), or on a database a test already has (the
//! one a spawned binary uses, a private PostgreSQL).
//!
//! The only place the tests name the storage adapter (`SqlStore`): everything else asks for a
//! `Store`.

use std::path::Path;
use std::time::Duration;

use server::adapters::sql::SqlStore;
use server::storage::{PoolSettings, Store};
use tempfile::TempDir;

use super::postgres::TestDatabase;

/// The pool most tests use.
pub const POOL: PoolSettings = PoolSettings {
    max_connections: 8,
    acquire_timeout: Duration::from_secs(10),
};

/// A fresh SQLite store with [`POOL`]; the temp dir lives as long as the returned guard.
pub async fn sqlite() -> (Store, TempDir) {
    sqlite_with(POOL).await
}

/// A fresh SQLite store with its own pool settings.
pub async fn sqlite_with(pool: PoolSettings) -> (Store, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = sqlite_at(&dir.path().join("store.db"), pool).await;
    (store, dir)
}

/// The SQLite database at `path` (created if missing), migrated.
pub async fn sqlite_at(path: &Path, pool: PoolSettings) -> Store {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let store = SqlStore::sqlite(&url, pool)
        .await
        .unwrap_or_else(|e| panic!("SQLite store at {}: {e}", path.display()));
    store.migrate().await.expect("SQLite migrations");
    Store::from_adapter(store)
}

/// A store on a fresh PostgreSQL database with [`POOL`], or `None` where PostgreSQL is not
/// available (never under CI=true: there it panics). The database is dropped with the guard.
pub async fn postgres() -> Option<(Store, TestDatabase)> {
    postgres_with(POOL).await
}

/// A store on a fresh PostgreSQL database with its own pool settings.
pub async fn postgres_with(pool: PoolSettings) -> Option<(Store, TestDatabase)> {
    let database = TestDatabase::create().await?;
    let store = postgres_at(&database.url, pool)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL store on a fresh database: {e}"));
    Some((store, database))
}

/// The PostgreSQL database at `url`, migrated; the connection error as text.
pub async fn postgres_at(url: &str, pool: PoolSettings) -> Result<Store, String> {
    let store = SqlStore::postgres(url, pool)
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.expect("PostgreSQL migrations");
    Ok(Store::from_adapter(store))
}
