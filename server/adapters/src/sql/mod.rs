//! The SQL store: ONE implementation of every storage port (repositories, unit of work, outbox,
//! dispatch queue, credentials, inbox) for both SQLite and PostgreSQL.
//!
//! Statements are written once with `$n` placeholders and run through [`driver`], which encodes
//! values in each backend's storage format. What truly differs between the two databases lives in
//! [`Backend`] (a few SQL fragments), [`sqlite`] and [`postgres`] (connecting, reading a row's
//! values, waking other replicas), and the queue's claim lock.

mod agents;
mod commit;
mod credentials;
mod decode;
mod dispatch_queue;
mod driver;
mod filter;
mod inbox;
mod outbox;
mod placement;
mod postgres;
mod sessions;
mod sqlite;
mod tasks;

use std::collections::BTreeSet;
use std::time::Duration;

use domain::{AgentCapability, Cursor, Page, PageRequest};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use uuid::Uuid;

use driver::{Backend, Exec, Pool, Row, Sql, Tx};
use filter::{fetch_limit, push_where, Term};
use oio_application::ports::{EntityKey, QueueSignal, RepositoryError};

/// Connection-pool settings, the same for both backends.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

/// Every storage port over one database, SQLite or PostgreSQL.
pub struct SqlStore {
    pool: Pool,
    /// Queue signals of this process's subscribers: on SQLite sent after the commit that caused
    /// them; on PostgreSQL forwarded from LISTEN, so they come from every replica.
    signals: broadcast::Sender<QueueSignal>,
    /// PostgreSQL's LISTEN task; stopped with the store.
    listener: Option<JoinHandle<()>>,
}

impl Drop for SqlStore {
    fn drop(&mut self) {
        if let Some(listener) = &self.listener {
            listener.abort();
        }
    }
}

impl SqlStore {
    /// The embedded store: one SQLite file (WAL journal), created if missing.
    pub async fn sqlite(url: &str, pool: PoolSettings) -> Result<Self, sqlx::Error> {
        let (signals, _) = broadcast::channel(1024);
        Ok(Self {
            pool: Pool::Sqlite(sqlite::connect(url, pool).await?),
            signals,
            listener: None,
        })
    }

    /// The shared store of several replicas.
    pub async fn postgres(url: &str, pool: PoolSettings) -> Result<Self, sqlx::Error> {
        let (signals, _) = broadcast::channel(1024);
        let pg = postgres::connect(url, pool).await?;
        let listener = postgres::spawn_listener(pg.clone(), signals.clone());
        Ok(Self {
            pool: Pool::Postgres(pg),
            signals,
            listener: Some(listener),
        })
    }

    /// Brings the schema up to date with the backend's migrations.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match &self.pool {
            Pool::Sqlite(pool) => sqlx::migrate!("../../migrations/sqlite").run(pool).await,
            Pool::Postgres(pool) => sqlx::migrate!("../../migrations/postgres").run(pool).await,
        }
    }

    /// A handle to run statements on any pooled connection.
    fn db(&self) -> Pool {
        self.pool.clone()
    }

    fn backend(&self) -> Backend {
        self.pool.backend()
    }

    /// One keyset page of `select`: filtered by `terms`, newest first (creation time, then id),
    /// fetched one row past the limit to know whether a next page exists.
    async fn list_page<T>(
        &self,
        select: String,
        terms: Vec<Term>,
        page: &PageRequest,
        decode: impl Fn(&Row) -> Result<T, RepositoryError>,
        key: impl Fn(&T) -> Cursor,
    ) -> Result<Page<T>, RepositoryError> {
        let mut sql = Sql::new(select);
        push_where(&mut sql, terms);
        sql.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(fetch_limit(page));
        let rows = self.db().fetch_all(sql).await.map_err(map_sqlx_error)?;
        let items = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit(), key))
    }

    /// Commits `tx` and lets every dispatcher know about `signals`: PostgreSQL NOTIFYs inside the
    /// transaction (delivered at commit, to every replica); SQLite, whose only process is this
    /// one, sends after the commit.
    async fn commit_announcing(
        &self,
        mut tx: Tx,
        signals: &[QueueSignal],
    ) -> Result<(), RepositoryError> {
        if self.backend() == Backend::Postgres {
            postgres::notify(&mut tx, signals).await?;
        }
        tx.commit().await.map_err(map_sqlx_error)?;
        if self.backend() == Backend::Sqlite {
            for signal in signals {
                // No receiver is not an error: nobody dispatches in this process.
                let _ = self.signals.send(*signal);
            }
        }
        Ok(())
    }
}

/// Any driver failure nothing more specific was found for. Foreign-key violations only reach
/// here if a row changed behind the adapter's own reference checks (see [`commit::apply`]).
fn map_sqlx_error(e: sqlx::Error) -> RepositoryError {
    match e.as_database_error() {
        Some(db) if db.is_foreign_key_violation() => {
            RepositoryError::Unavailable(format!("a referenced row does not exist: {db}"))
        }
        _ => RepositoryError::Unavailable(e.to_string()),
    }
}

/// An insert's unique violation names the entity that already exists.
fn map_insert_error(e: sqlx::Error, entity: &'static str, id: String) -> RepositoryError {
    match e.as_database_error() {
        Some(db) if db.is_unique_violation() => RepositoryError::Duplicate { entity, id },
        _ => map_sqlx_error(e),
    }
}

/// Capabilities are stored as a JSON array of their names (sorted: it is a set).
fn capabilities_json(capabilities: &BTreeSet<AgentCapability>) -> serde_json::Value {
    let names: Vec<&str> = capabilities.iter().map(|c| c.as_str()).collect();
    serde_json::Value::from(names)
}

/// The table holding the entity a key names; never user input.
fn table_of(key: EntityKey) -> &'static str {
    match key {
        EntityKey::Session(_) => "sessions",
        EntityKey::Task(_) => "tasks",
        EntityKey::Agent(_) => "agents",
        EntityKey::InboxItem(_) => "inbox_items",
    }
}

fn uuid_of(key: EntityKey) -> Uuid {
    match key {
        EntityKey::Session(id) => id.as_uuid(),
        EntityKey::Task(id) => id.as_uuid(),
        EntityKey::Agent(id) => id.as_uuid(),
        EntityKey::InboxItem(id) => id.as_uuid(),
    }
}
