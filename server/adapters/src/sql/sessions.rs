//! Sessions: one row each, metrics inline; their event log in `session_events`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use domain::SessionStatus;
use domain::{Cursor, Page, PageRequest, Session, SessionFilter, SessionId, SessionRecord};

use super::decode::{session_event_from_row, session_from_row};
use super::driver::{Arg, Exec, Sql, Tx};
use super::filter::session_terms;
use super::{map_insert_error, map_sqlx_error, SqlStore};
use oio_application::ports::{RepositoryError, SessionRepository, StoredSessionEvent};

const INSERT: &str = "INSERT INTO sessions (title, prompt, workspace, agent, parent_task, status,
        attempt, max_attempts, created_at, updated_at, started_at, finished_at, tokens_input,
        tokens_output, tokens_reasoning, tokens_cache_read, tokens_cache_write, cost_micro_usd,
        duration_ms, files_changed, retries, last_error, deleted_at, stop_reason, id, version)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
        $20, $21, $22, $23, $24, $25, 1)";

const UPDATE: &str = "UPDATE sessions SET title = $1, prompt = $2, workspace = $3, agent = $4,
        parent_task = $5, status = $6, attempt = $7, max_attempts = $8, created_at = $9,
        updated_at = $10, started_at = $11, finished_at = $12, tokens_input = $13,
        tokens_output = $14, tokens_reasoning = $15, tokens_cache_read = $16,
        tokens_cache_write = $17, cost_micro_usd = $18, duration_ms = $19, files_changed = $20,
        retries = $21, last_error = $22, deleted_at = $23, stop_reason = $24,
        version = version + 1
    WHERE id = $25 AND version = $26";

/// Binds every column but `id` and `version` as `$1..=$24`, in the order [`INSERT`] and
/// [`UPDATE`] list them.
fn bind_fields(sql: &'static str, r: &SessionRecord) -> Result<Sql, RepositoryError> {
    let m = &r.metrics;
    Ok(Sql::new(sql)
        .bind(&r.title)
        .bind(&r.prompt)
        .bind(&r.workspace)
        .bind(&r.agent)
        .bind(r.parent_task)
        .bind(r.status.as_str())
        .bind(r.attempt)
        .bind(r.max_attempts)
        .bind(r.created_at)
        .bind(r.updated_at)
        .bind(r.started_at)
        .bind(r.finished_at)
        .bind(Arg::count(m.tokens_input)?)
        .bind(Arg::count(m.tokens_output)?)
        .bind(Arg::count(m.tokens_reasoning)?)
        .bind(Arg::count(m.tokens_cache_read)?)
        .bind(Arg::count(m.tokens_cache_write)?)
        .bind(Arg::count(m.cost_micro_usd)?)
        .bind(Arg::count(m.duration_ms)?)
        .bind(m.files_changed)
        .bind(m.retries)
        .bind(&r.last_error)
        .bind(r.deleted_at)
        .bind(Arg::opt_json(r.stop_reason.as_ref(), "stop reason")?))
}

#[tracing::instrument(level = "debug", skip_all, fields(session_id = %r.id))]
pub(super) async fn insert(tx: &mut Tx, r: &SessionRecord) -> Result<(), RepositoryError> {
    tx.execute(bind_fields(INSERT, r)?.bind(r.id))
        .await
        .map_err(|e| map_insert_error(e, "session", r.id.to_string()))?;
    Ok(())
}

/// `false` when no row has this id at the version the writer read.
#[tracing::instrument(level = "debug", skip_all, fields(session_id = %r.id, version = r.version))]
pub(super) async fn update(tx: &mut Tx, r: &SessionRecord) -> Result<bool, RepositoryError> {
    let changed = tx
        .execute(
            bind_fields(UPDATE, r)?
                .bind(r.id)
                .bind(Arg::count(r.version)?),
        )
        .await
        .map_err(map_sqlx_error)?;
    Ok(changed == 1)
}

impl SqlStore {
    async fn fetch_session(
        &self,
        sql: &'static str,
        id: SessionId,
    ) -> Result<Option<Session>, RepositoryError> {
        self.db()
            .fetch_optional(Sql::new(sql).bind(id))
            .await
            .map_err(map_sqlx_error)?
            .map(|row| session_from_row(&row))
            .transpose()
    }
}

#[async_trait]
impl SessionRepository for SqlStore {
    async fn get(&self, id: SessionId) -> Result<Option<Session>, RepositoryError> {
        self.fetch_session(
            "SELECT * FROM sessions WHERE id = $1 AND deleted_at IS NULL",
            id,
        )
        .await
    }

    async fn get_including_deleted(
        &self,
        id: SessionId,
    ) -> Result<Option<Session>, RepositoryError> {
        self.fetch_session("SELECT * FROM sessions WHERE id = $1", id)
            .await
    }

    async fn list(
        &self,
        filter: &SessionFilter,
        page: &PageRequest,
    ) -> Result<Page<Session>, RepositoryError> {
        self.list_page(
            "SELECT * FROM sessions".to_owned(),
            session_terms(filter, page),
            page,
            session_from_row,
            |s| Cursor::new(s.created_at(), s.id().as_uuid()),
        )
        .await
    }

    async fn events(&self, id: SessionId) -> Result<Vec<StoredSessionEvent>, RepositoryError> {
        self.db()
            .fetch_all(
                Sql::new(
                    "SELECT session_id, seq, event_type, payload, occurred_at FROM session_events
                     WHERE session_id = $1 ORDER BY seq",
                )
                .bind(id),
            )
            .await
            .map_err(map_sqlx_error)?
            .iter()
            .map(session_event_from_row)
            .collect()
    }

    async fn ping(&self) -> Result<(), RepositoryError> {
        self.db()
            .execute(Sql::new("SELECT 1"))
            .await
            .map(|_| ())
            .map_err(map_sqlx_error)
    }

    async fn count_by_status(&self) -> Result<BTreeMap<SessionStatus, u64>, RepositoryError> {
        let rows = self
            .db()
            .fetch_all(Sql::new(
                "SELECT status, COUNT(*) AS n FROM sessions WHERE deleted_at IS NULL GROUP BY status",
            ))
            .await
            .map_err(map_sqlx_error)?;
        super::decode::counts_from_rows(&rows, "session status count", "status")?
            .into_iter()
            .map(|(status, count)| {
                let parsed =
                    status
                        .parse::<SessionStatus>()
                        .map_err(|e| RepositoryError::Corrupt {
                            entity: "session status count",
                            id: status.clone(),
                            message: e.to_string(),
                        })?;
                Ok((parsed, count))
            })
            .collect()
    }
}
