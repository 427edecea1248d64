//! SQLite: the embedded default. One file, WAL journal, no server to run.
//!
//! Storage formats: uuids as hyphenated lowercase text (whose text order is the uuid byte order),
//! timestamps as fixed-width RFC 3339 text in UTC with microseconds (so text order is time order,
//! and they round-trip exactly at the precision PostgreSQL keeps too), JSON as text.

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
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use uuid::Uuid;

use domain::{Cursor, Page, PageRequest};

use super::sql::{fetch_limit, map_sqlx_error, push_where, Columns, Term, Value};
use crate::ports::RepositoryError;
use crate::storage::PoolSettings;

pub struct SqliteStore {
    pool: SqlitePool,
    /// Queue signals, sent in process after the commit that caused them.
    signals: tokio::sync::broadcast::Sender<crate::ports::QueueSignal>,
}

impl SqliteStore {
    pub async fn connect(url: &str, pool: PoolSettings) -> Result<Self, sqlx::Error> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            // Writers queue on the database lock for as long as they would wait for a connection.
            .busy_timeout(pool.acquire_timeout)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(pool.max_connections)
            .acquire_timeout(pool.acquire_timeout)
            .connect_with(options)
            .await?;
        let (signals, _) = tokio::sync::broadcast::channel(1024);
        Ok(Self { pool, signals })
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        sqlx::migrate!("../migrations/sqlite").run(&self.pool).await
    }
}

/// The one text form of a timestamp in this store.
fn ts(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn parse_ts(raw: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{raw:?}: {e}"))
}

fn parse_uuid(raw: &str) -> Result<Uuid, String> {
    Uuid::parse_str(raw).map_err(|e| format!("{raw:?}: {e}"))
}

/// A JSON array to bind as one parameter and expand with `json_each`, for lists of any length.
fn json_array<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<serde_json::Value> = items
        .into_iter()
        .map(|i| serde_json::Value::String(i.to_string()))
        .collect();
    serde_json::Value::Array(items).to_string()
}

impl SqliteStore {
    /// One keyset page of `select`: filtered by `terms`, newest first (creation time, then id),
    /// fetched one row past the limit to know whether a next page exists.
    pub(super) async fn list_page<T>(
        &self,
        select: &str,
        terms: Vec<Term>,
        page: &PageRequest,
        decode: impl Fn(&SqliteRow) -> Result<T, RepositoryError>,
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

impl Columns for SqliteRow {
    fn text(&self, column: &str) -> Result<String, String> {
        self.try_get(column).map_err(|e| e.to_string())
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>, String> {
        self.try_get(column).map_err(|e| e.to_string())
    }

    fn uuid(&self, column: &str) -> Result<Uuid, String> {
        parse_uuid(&self.text(column)?)
    }

    fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>, String> {
        self.opt_text(column)?
            .as_deref()
            .map(parse_uuid)
            .transpose()
    }

    fn time(&self, column: &str) -> Result<DateTime<Utc>, String> {
        parse_ts(&self.text(column)?)
    }

    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>, String> {
        self.opt_text(column)?.as_deref().map(parse_ts).transpose()
    }

    fn int(&self, column: &str) -> Result<i64, String> {
        self.try_get(column).map_err(|e| e.to_string())
    }

    fn small_int(&self, column: &str) -> Result<i64, String> {
        self.int(column)
    }

    /// Edges arrive as a JSON array of uuid text (`json_group_array`).
    fn uuids(&self, column: &str) -> Result<Vec<Uuid>, String> {
        let raw = self.text(column)?;
        let ids: Vec<String> = serde_json::from_str(&raw).map_err(|e| format!("{raw:?}: {e}"))?;
        ids.iter().map(|id| parse_uuid(id)).collect()
    }

    fn flag(&self, column: &str) -> Result<bool, String> {
        match self.int(column)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(format!("{other} is not a boolean (0 or 1)")),
        }
    }
}

/// Binds a list filter's value in this store's format (for `sql::push_where`).
fn push_value(query: &mut QueryBuilder<'_, Sqlite>, value: Value) {
    match value {
        Value::Text(text) => query.push_bind(text),
        Value::Uuid(id) => query.push_bind(id.to_string()),
        Value::Time(at) => query.push_bind(ts(at)),
    };
}
