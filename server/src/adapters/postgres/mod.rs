//! PostgreSQL: the production store, for several orchestrator replicas sharing one database.
//!
//! Storage formats are the native ones: UUID, TIMESTAMPTZ (microseconds), JSONB. JSON crosses the
//! driver as text (`$n::jsonb` in, `col::text` out), so no JSON codec is needed in the driver.

mod agents;
mod credentials;
mod inbox;
mod outbox;
mod queue;
mod sessions;
mod tasks;
mod unit_of_work;

use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use domain::{Cursor, Page, PageRequest};

use super::sql::{fetch_limit, map_sqlx_error, push_where, Columns, Term, Value};
use crate::ports::RepositoryError;
use crate::storage::PoolSettings;

pub struct PostgresStore {
    pool: PgPool,
    signals: tokio::sync::broadcast::Sender<crate::ports::QueueSignal>,
    /// Forwards NOTIFYs on the queue channel to `signals`; stopped with the store.
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl PostgresStore {
    pub async fn connect(url: &str, pool: PoolSettings) -> Result<Self, sqlx::Error> {
        let options = PgConnectOptions::from_str(url)?.application_name("oio");
        let pool = PgPoolOptions::new()
            .max_connections(pool.max_connections)
            .acquire_timeout(pool.acquire_timeout)
            .connect_with(options)
            .await?;
        let (signals, _) = tokio::sync::broadcast::channel(1024);
        let listener = queue::spawn_listener(pool.clone(), signals.clone());
        Ok(Self {
            pool,
            signals,
            listener,
        })
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        sqlx::migrate!("../migrations/postgres")
            .run(&self.pool)
            .await
    }
}

fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T, String>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(column).map_err(|e| e.to_string())
}

impl PostgresStore {
    /// One keyset page of `select`: filtered by `terms`, newest first (creation time, then id),
    /// fetched one row past the limit to know whether a next page exists.
    pub(super) async fn list_page<T>(
        &self,
        select: &str,
        terms: Vec<Term>,
        page: &PageRequest,
        decode: impl Fn(&PgRow) -> Result<T, RepositoryError>,
        key: impl Fn(&T) -> Cursor,
    ) -> Result<Page<T>, RepositoryError> {
        let mut query = QueryBuilder::new(select);
        push_where(&mut query, terms, push_value);
        query
            .push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(fetch_limit(page));
        let rows = query
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        let items = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit(), key))
    }
}

impl Columns for PgRow {
    fn text(&self, column: &str) -> Result<String, String> {
        get(self, column)
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>, String> {
        get(self, column)
    }

    fn uuid(&self, column: &str) -> Result<Uuid, String> {
        get(self, column)
    }

    fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>, String> {
        get(self, column)
    }

    fn time(&self, column: &str) -> Result<DateTime<Utc>, String> {
        get(self, column)
    }

    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>, String> {
        get(self, column)
    }

    fn int(&self, column: &str) -> Result<i64, String> {
        get(self, column)
    }

    fn small_int(&self, column: &str) -> Result<i64, String> {
        get::<i32>(self, column).map(i64::from)
    }

    /// Edges arrive as `uuid[]` (`ARRAY(SELECT …)`).
    fn uuids(&self, column: &str) -> Result<Vec<Uuid>, String> {
        get(self, column)
    }

    fn flag(&self, column: &str) -> Result<bool, String> {
        get(self, column)
    }
}

/// Binds a list filter's value in this store's format (for `sql::push_where`).
fn push_value(query: &mut QueryBuilder<'_, Postgres>, value: Value) {
    match value {
        Value::Text(text) => query.push_bind(text),
        Value::Uuid(id) => query.push_bind(id),
        Value::Time(at) => query.push_bind(at),
    };
}
