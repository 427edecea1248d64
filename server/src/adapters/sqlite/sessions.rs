//! Sessions: one row each, metrics inline; their event log in `session_events`.

use async_trait::async_trait;
use domain::{Cursor, Page, PageRequest, Session, SessionFilter, SessionId, SessionRecord};
use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Sqlite, SqliteConnection};

use super::{ts, SqliteStore};
use crate::adapters::sql::{
    map_insert_error, map_sqlx_error, session_event_from_row, session_from_row, session_terms,
    stop_reason_json, to_i64,
};
use crate::ports::{RepositoryError, SessionRepository, StoredSessionEvent};

type SqliteQuery<'q> = Query<'q, Sqlite, SqliteArguments<'q>>;

const INSERT: &str = "INSERT INTO sessions (id, title, prompt, workspace, agent, parent_task,
        status, attempt, max_attempts, created_at, updated_at, started_at, finished_at,
        tokens_input, tokens_output, tokens_reasoning, tokens_cache_read, tokens_cache_write,
        cost_micro_usd, duration_ms, files_changed, retries, last_error, deleted_at, stop_reason,
        version)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)";

const UPDATE: &str = "UPDATE sessions SET title = ?, prompt = ?, workspace = ?, agent = ?,
        parent_task = ?, status = ?, attempt = ?, max_attempts = ?, created_at = ?,
        updated_at = ?, started_at = ?, finished_at = ?, tokens_input = ?, tokens_output = ?,
        tokens_reasoning = ?, tokens_cache_read = ?, tokens_cache_write = ?, cost_micro_usd = ?,
        duration_ms = ?, files_changed = ?, retries = ?, last_error = ?, deleted_at = ?,
        stop_reason = ?, version = version + 1
    WHERE id = ? AND version = ?";

/// Binds every column but `id` and `version`, in the order [`INSERT`] and [`UPDATE`] list them.
fn bind_fields<'q>(
    query: SqliteQuery<'q>,
    r: &'q SessionRecord,
) -> Result<SqliteQuery<'q>, RepositoryError> {
    let m = &r.metrics;
    Ok(query
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
        .bind(stop_reason_json(r)?))
}

#[tracing::instrument(level = "debug", skip_all, fields(session_id = %r.id))]
pub(super) async fn insert(
    conn: &mut SqliteConnection,
    r: &SessionRecord,
) -> Result<(), RepositoryError> {
    bind_fields(sqlx::query(INSERT).bind(r.id.to_string()), r)?
        .execute(conn)
        .await
        .map_err(|e| map_insert_error(e, "session", r.id.to_string()))?;
    Ok(())
}

/// `false` when no row has this id at the version the writer read.
#[tracing::instrument(level = "debug", skip_all, fields(session_id = %r.id, version = r.version))]
pub(super) async fn update(
    conn: &mut SqliteConnection,
    r: &SessionRecord,
) -> Result<bool, RepositoryError> {
    let done = bind_fields(sqlx::query(UPDATE), r)?
        .bind(r.id.to_string())
        .bind(to_i64(r.version)?)
        .execute(conn)
        .await
        .map_err(map_sqlx_error)?;
    Ok(done.rows_affected() == 1)
}

impl SqliteStore {
    async fn fetch_session(
        &self,
        sql: &'static str,
        id: SessionId,
    ) -> Result<Option<Session>, RepositoryError> {
        sqlx::query(sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx_error)?
            .map(|row| session_from_row(&row))
            .transpose()
    }
}

#[async_trait]
impl SessionRepository for SqliteStore {
    async fn get(&self, id: SessionId) -> Result<Option<Session>, RepositoryError> {
        self.fetch_session(
            "SELECT * FROM sessions WHERE id = ? AND deleted_at IS NULL",
            id,
        )
        .await
    }

    async fn get_including_deleted(
        &self,
        id: SessionId,
    ) -> Result<Option<Session>, RepositoryError> {
        self.fetch_session("SELECT * FROM sessions WHERE id = ?", id)
            .await
    }

    async fn list(
        &self,
        filter: &SessionFilter,
        page: &PageRequest,
    ) -> Result<Page<Session>, RepositoryError> {
        self.list_page(
            "SELECT * FROM sessions",
            session_terms(filter, page),
            page,
            session_from_row,
            |s| Cursor::new(s.created_at(), s.id().as_uuid()),
        )
        .await
    }

    async fn events(&self, id: SessionId) -> Result<Vec<StoredSessionEvent>, RepositoryError> {
        sqlx::query(
            "SELECT session_id, seq, event_type, payload, occurred_at FROM session_events
             WHERE session_id = ? ORDER BY seq",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .iter()
        .map(session_event_from_row)
        .collect()
    }

    async fn ping(&self) -> Result<(), RepositoryError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(map_sqlx_error)
    }
    async fn count_by_status(
        &self,
    ) -> Result<std::collections::BTreeMap<domain::SessionStatus, u64>, RepositoryError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, COUNT(*) FROM sessions WHERE deleted_at IS NULL GROUP BY status",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        rows.into_iter()
            .map(|(status, count)| {
                let corrupt = |message: String| RepositoryError::Corrupt {
                    entity: "session status count",
                    id: status.clone(),
                    message,
                };
                let parsed = status
                    .parse::<domain::SessionStatus>()
                    .map_err(|e| corrupt(e.to_string()))?;
                let count = u64::try_from(count).map_err(|e| corrupt(e.to_string()))?;
                Ok((parsed, count))
            })
            .collect()
    }
}
