//! Runs the one `SessionRepository` contract against every adapter: SQLite in a temp file and
//! PostgreSQL in a fresh database per check.

mod contract;
mod support;

use std::sync::Arc;

use server::adapters::{postgres::PostgresStore, sqlite::SqliteStore};
use server::ports::SessionRepository;
use server::storage::PoolSettings;

const POOL: PoolSettings = PoolSettings {
    max_connections: 5,
    acquire_timeout: std::time::Duration::from_secs(5),
};

/// A fresh SQLite store; the temp dir lives as long as the returned guard.
async fn sqlite() -> (Arc<dyn SessionRepository>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("contract.db").display()
    );
    let store = SqliteStore::connect(&url, POOL).await.unwrap();
    store.migrate().await.unwrap();
    (Arc::new(store), dir)
}

/// A fresh PostgreSQL store, or `None` where PostgreSQL is unavailable outside CI.
async fn postgres() -> Option<(Arc<dyn SessionRepository>, support::postgres::TestDatabase)> {
    let db = support::postgres::TestDatabase::create().await?;
    let store = PostgresStore::connect(&db.url, POOL).await.unwrap();
    store.migrate().await.unwrap();
    Some((Arc::new(store), db))
}

macro_rules! contract_on_every_backend {
    ($($check:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test]
                async fn $check() {
                    let (repo, _guard) = super::sqlite().await;
                    crate::contract::session_repository::$check(&*repo).await;
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test]
                async fn $check() {
                    let Some((repo, _guard)) = super::postgres().await else { return };
                    crate::contract::session_repository::$check(&*repo).await;
                }
            )*
        }
    };
}

contract_on_every_backend!(
    a_stored_session_reads_back_equal_at_version_1,
    every_field_round_trips,
    the_list_is_newest_first_with_ties_broken_by_id,
    the_list_filters_by_status,
    the_list_honours_its_limit,
    soft_deleted_sessions_are_not_listed,
    a_duplicate_id_is_refused_and_the_original_kept,
    a_value_beyond_the_column_range_is_refused_and_nothing_written,
    ping_answers,
);
