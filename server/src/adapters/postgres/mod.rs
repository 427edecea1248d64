//! PostgreSQL: the production store, for several orchestrator replicas sharing one database.

use std::str::FromStr;

use app::api::SessionListQuery;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{ExecutionMetrics, Session, SessionId, SessionRecord, SessionStatus, TaskId};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::ports::{RepositoryError, SessionRepository};
use crate::storage::PoolSettings;

use super::sql::{from_i64, map_insert_error, map_sqlx_error, to_i64};

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub async fn connect(url: &str, pool: PoolSettings) -> Result<Self, sqlx::Error> {
        let options = PgConnectOptions::from_str(url)?.application_name("oio");
        let pool = PgPoolOptions::new()
            .max_connections(pool.max_connections)
            .acquire_timeout(pool.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        sqlx::migrate!("../migrations/postgres")
            .run(&self.pool)
            .await
    }
}

fn corrupt(id: &str, message: String) -> RepositoryError {
    RepositoryError::Corrupt {
        entity: "session",
        id: id.to_string(),
        message,
    }
}

fn session_from_row(row: &PgRow) -> Result<Session, RepositoryError> {
    let uuid: Uuid = row.try_get("id").map_err(map_sqlx_error)?;
    let id = uuid.to_string();
    let get = |column: &str| -> Result<i64, RepositoryError> {
        row.try_get::<i64, _>(column).map_err(map_sqlx_error)
    };
    let get_i32 = |column: &str| -> Result<i32, RepositoryError> {
        row.try_get::<i32, _>(column).map_err(map_sqlx_error)
    };
    let num = |column: &'static str| -> Result<u64, RepositoryError> {
        from_i64(get(column)?).map_err(|m| corrupt(&id, format!("{column}: {m}")))
    };
    let small = |column: &'static str| -> Result<u32, RepositoryError> {
        u32::try_from(get_i32(column)?).map_err(|e| corrupt(&id, format!("{column}: {e}")))
    };
    let text = |column: &str| -> Result<String, RepositoryError> {
        row.try_get::<String, _>(column).map_err(map_sqlx_error)
    };
    let opt_text = |column: &str| -> Result<Option<String>, RepositoryError> {
        row.try_get::<Option<String>, _>(column)
            .map_err(map_sqlx_error)
    };
    let time = |column: &str| -> Result<DateTime<Utc>, RepositoryError> {
        row.try_get::<DateTime<Utc>, _>(column)
            .map_err(map_sqlx_error)
    };
    let opt_time = |column: &str| -> Result<Option<DateTime<Utc>>, RepositoryError> {
        row.try_get::<Option<DateTime<Utc>>, _>(column)
            .map_err(map_sqlx_error)
    };
    let record = SessionRecord {
        id: SessionId::from_uuid(uuid),
        title: text("title")?,
        prompt: text("prompt")?,
        workspace: text("workspace")?,
        agent: opt_text("agent")?,
        parent_task: row
            .try_get::<Option<Uuid>, _>("parent_task")
            .map_err(map_sqlx_error)?
            .map(TaskId::from_uuid),
        status: SessionStatus::from_str(&text("status")?)
            .map_err(|e| corrupt(&id, format!("status: {e}")))?,
        attempt: small("attempt")?,
        max_attempts: small("max_attempts")?,
        created_at: time("created_at")?,
        updated_at: time("updated_at")?,
        started_at: opt_time("started_at")?,
        finished_at: opt_time("finished_at")?,
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
        last_error: opt_text("last_error")?,
        version: num("version")?,
        deleted_at: opt_time("deleted_at")?,
    };
    Session::rehydrate(record).map_err(|e| corrupt(&id, e.to_string()))
}

fn to_i32(value: u32) -> Result<i32, RepositoryError> {
    i32::try_from(value)
        .map_err(|_| RepositoryError::OutOfRange(format!("{value} exceeds INTEGER")))
}

#[async_trait]
impl SessionRepository for PostgresStore {
    #[tracing::instrument(skip_all, fields(session_id = %session.id()))]
    async fn insert(&self, session: &Session) -> Result<(), RepositoryError> {
        let r = session.to_record();
        let m = &r.metrics;
        sqlx::query(
            "INSERT INTO sessions (id, title, prompt, workspace, agent, parent_task, status, attempt,
                max_attempts, created_at, updated_at, started_at, finished_at, tokens_input,
                tokens_output, tokens_reasoning, tokens_cache_read, tokens_cache_write,
                cost_micro_usd, duration_ms, files_changed, retries, last_error, version, deleted_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                $18, $19, $20, $21, $22, $23, 1, $24)",
        )
        .bind(r.id.as_uuid())
        .bind(&r.title)
        .bind(&r.prompt)
        .bind(&r.workspace)
        .bind(&r.agent)
        .bind(r.parent_task.map(|t| t.as_uuid()))
        .bind(r.status.as_str())
        .bind(to_i32(r.attempt)?)
        .bind(to_i32(r.max_attempts)?)
        .bind(r.created_at)
        .bind(r.updated_at)
        .bind(r.started_at)
        .bind(r.finished_at)
        .bind(to_i64(m.tokens_input)?)
        .bind(to_i64(m.tokens_output)?)
        .bind(to_i64(m.tokens_reasoning)?)
        .bind(to_i64(m.tokens_cache_read)?)
        .bind(to_i64(m.tokens_cache_write)?)
        .bind(to_i64(m.cost_micro_usd)?)
        .bind(to_i64(m.duration_ms)?)
        .bind(to_i32(m.files_changed)?)
        .bind(to_i32(m.retries)?)
        .bind(&r.last_error)
        .bind(r.deleted_at)
        .execute(&self.pool)
        .await
        .map_err(|e| map_insert_error(e, "session", r.id.to_string()))?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(status = ?query.status, limit = query.limit))]
    async fn list(&self, query: &SessionListQuery) -> Result<Vec<Session>, RepositoryError> {
        let rows = sqlx::query(
            "SELECT * FROM sessions
             WHERE deleted_at IS NULL AND ($1::text IS NULL OR status = $1)
             ORDER BY created_at DESC, id DESC
             LIMIT $2",
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
