//! SQLite: the embedded default. One file, WAL journal, no server to run.
//!
//! Timestamps are stored as fixed-width RFC 3339 text in UTC with microseconds, so text order is
//! time order and they round-trip exactly at the precision PostgreSQL keeps too.

use std::str::FromStr;

use app::api::SessionListQuery;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{ExecutionMetrics, Session, SessionId, SessionRecord, SessionStatus, TaskId};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};

use crate::ports::{RepositoryError, SessionRepository};
use crate::storage::PoolSettings;

use super::sql::{from_i64, map_sqlx_error, to_i64};

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(url: &str, pool: PoolSettings) -> Result<Self, sqlx::Error> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(pool.acquire_timeout)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(pool.max_connections)
            .acquire_timeout(pool.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        sqlx::migrate!("../migrations/sqlite").run(&self.pool).await
    }
}

/// The one text form of a timestamp in this store.
fn ts(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn parse_ts(id: &str, column: &str, raw: &str) -> Result<DateTime<Utc>, RepositoryError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| corrupt(id, format!("{column} {raw:?}: {e}")))
}

fn parse_opt_ts(
    id: &str,
    column: &str,
    raw: Option<String>,
) -> Result<Option<DateTime<Utc>>, RepositoryError> {
    raw.map(|r| parse_ts(id, column, &r)).transpose()
}

fn corrupt(id: &str, message: String) -> RepositoryError {
    RepositoryError::Corrupt {
        entity: "session",
        id: id.to_string(),
        message,
    }
}

fn session_from_row(row: &SqliteRow) -> Result<Session, RepositoryError> {
    let id: String = row.try_get("id").map_err(map_sqlx_error)?;
    let get_i64 = |column: &str| -> Result<i64, RepositoryError> {
        row.try_get::<i64, _>(column).map_err(map_sqlx_error)
    };
    let get_text = |column: &str| -> Result<String, RepositoryError> {
        row.try_get::<String, _>(column).map_err(map_sqlx_error)
    };
    let get_opt_text = |column: &str| -> Result<Option<String>, RepositoryError> {
        row.try_get::<Option<String>, _>(column)
            .map_err(map_sqlx_error)
    };
    let num = |column: &'static str| -> Result<u64, RepositoryError> {
        from_i64(get_i64(column)?).map_err(|m| corrupt(&id, format!("{column}: {m}")))
    };
    let small = |column: &'static str| -> Result<u32, RepositoryError> {
        u32::try_from(num(column)?).map_err(|e| corrupt(&id, format!("{column}: {e}")))
    };
    let record = SessionRecord {
        id: SessionId::from_str(&id).map_err(|e| corrupt(&id, format!("id: {e}")))?,
        title: get_text("title")?,
        prompt: get_text("prompt")?,
        workspace: get_text("workspace")?,
        agent: get_opt_text("agent")?,
        parent_task: get_opt_text("parent_task")?
            .map(|t| TaskId::from_str(&t).map_err(|e| corrupt(&id, format!("parent_task: {e}"))))
            .transpose()?,
        status: SessionStatus::from_str(&get_text("status")?)
            .map_err(|e| corrupt(&id, format!("status: {e}")))?,
        attempt: small("attempt")?,
        max_attempts: small("max_attempts")?,
        created_at: parse_ts(&id, "created_at", &get_text("created_at")?)?,
        updated_at: parse_ts(&id, "updated_at", &get_text("updated_at")?)?,
        started_at: parse_opt_ts(&id, "started_at", get_opt_text("started_at")?)?,
        finished_at: parse_opt_ts(&id, "finished_at", get_opt_text("finished_at")?)?,
        metrics: ExecutionMetrics {
            tokens_input: num("tokens_input")?,
            tokens_output: num("tokens_output")?,
            tokens_reasoning: num("tokens_reasoning")?,
            tokens_cache_read: num("tokens_cache_read")?,
            tokens_cache_write: num("tokens_cache_write")?,
            cost_micro_usd: num("cost_micro_usd")?,
            duration_ms: num("duration_ms")?,
            files_changed: small("files_changed")?,
            retries: small("retries")?,
        },
        last_error: get_opt_text("last_error")?,
        version: num("version")?,
        deleted_at: parse_opt_ts(&id, "deleted_at", get_opt_text("deleted_at")?)?,
    };
    Session::rehydrate(record).map_err(|e| corrupt(&id, e.to_string()))
}

#[async_trait]
impl SessionRepository for SqliteStore {
    #[tracing::instrument(skip_all, fields(session_id = %session.id()))]
    async fn insert(&self, session: &Session) -> Result<(), RepositoryError> {
        let r = session.to_record();
        let m = &r.metrics;
        sqlx::query(
            "INSERT INTO sessions (id, title, prompt, workspace, agent, parent_task, status, attempt,
                max_attempts, created_at, updated_at, started_at, finished_at, tokens_input,
                tokens_output, tokens_reasoning, tokens_cache_read, tokens_cache_write,
                cost_micro_usd, duration_ms, files_changed, retries, last_error, version, deleted_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)",
        )
        .bind(r.id.to_string())
        .bind(&r.title)
        .bind(&r.prompt)
        .bind(&r.workspace)
        .bind(&r.agent)
        .bind(r.parent_task.map(|t| t.to_string()))
        .bind(r.status.as_str())
        .bind(i64::from(r.attempt))
        .bind(i64::from(r.max_attempts))
        .bind(ts(r.created_at))
        .bind(ts(r.updated_at))
        .bind(r.started_at.map(ts))
        .bind(r.finished_at.map(ts))
        .bind(to_i64(m.tokens_input)?)
        .bind(to_i64(m.tokens_output)?)
        .bind(to_i64(m.tokens_reasoning)?)
        .bind(to_i64(m.tokens_cache_read)?)
        .bind(to_i64(m.tokens_cache_write)?)
        .bind(to_i64(m.cost_micro_usd)?)
        .bind(to_i64(m.duration_ms)?)
        .bind(i64::from(m.files_changed))
        .bind(i64::from(m.retries))
        .bind(&r.last_error)
        .bind(r.deleted_at.map(ts))
        .execute(&self.pool)
        .await
        .map_err(|e| super::sql::map_insert_error(e, "session", r.id.to_string()))?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(status = ?query.status, limit = query.limit))]
    async fn list(&self, query: &SessionListQuery) -> Result<Vec<Session>, RepositoryError> {
        let rows = sqlx::query(
            "SELECT * FROM sessions
             WHERE deleted_at IS NULL AND (?1 IS NULL OR status = ?1)
             ORDER BY created_at DESC, id DESC
             LIMIT ?2",
        )
        .bind(query.status.map(|s| s.as_str()))
        .bind(i64::from(query.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        rows.iter().map(session_from_row).collect()
    }

    async fn ping(&self) -> Result<(), RepositoryError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(map_sqlx_error)
    }
}
