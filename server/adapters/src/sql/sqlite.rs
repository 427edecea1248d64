//! SQLite: the embedded default. One file, WAL journal, no server to run; values in the text
//! formats described in [`super::driver`].

use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

use super::decode::Columns;
use super::PoolSettings;

pub(super) async fn connect(url: &str, pool: PoolSettings) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        // Writers queue on the database lock for as long as they would wait for a connection.
        .busy_timeout(pool.acquire_timeout)
        .foreign_keys(true);
    SqlitePoolOptions::new()
        .max_connections(pool.max_connections)
        .acquire_timeout(pool.acquire_timeout)
        .connect_with(options)
        .await
}

fn parse_time(raw: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{raw:?}: {e}"))
}

fn parse_uuid(raw: &str) -> Result<Uuid, String> {
    Uuid::parse_str(raw).map_err(|e| format!("{raw:?}: {e}"))
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
        parse_time(&self.text(column)?)
    }

    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>, String> {
        self.opt_text(column)?
            .as_deref()
            .map(parse_time)
            .transpose()
    }

    fn int(&self, column: &str) -> Result<i64, String> {
        self.try_get(column).map_err(|e| e.to_string())
    }

    /// Lists arrive as a JSON array of uuid text (`json_group_array`).
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

    /// JSON is stored as text.
    fn opt_json_text(&self, column: &str) -> Result<Option<String>, String> {
        self.opt_text(column)
    }
}
