//! Commits: one READ COMMITTED transaction per change set. Optimistic locking needs no stronger
//! isolation: a racing `UPDATE … WHERE version = $n` waits for the winner's row lock and then
//! re-checks the row, matching nothing.

use async_trait::async_trait;
use domain::{AgentRecord, SessionId, SessionRecord, TaskId, TaskRecord};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{agents, outbox, queue, sessions, tasks, PostgresStore};
use crate::adapters::sql::{self, map_sqlx_error, table_of, uuid_of, ChangeWriter};
use crate::ports::{
    ChangeSet, Committed, EntityKey, NewEvent, QueueOp, QueueSignal, RepositoryError, UnitOfWork,
};

/// The transaction-scoped advisory lock that event-writing commits take in turn ("oio:outbox").
const OUTBOX_LOCK: i64 = 0x6f69_6f3a_6f75_7462;

impl ChangeWriter for PgConnection {
    async fn insert_session(&mut self, session: &SessionRecord) -> Result<(), RepositoryError> {
        sessions::insert(self, session).await
    }

    async fn update_session(&mut self, session: &SessionRecord) -> Result<bool, RepositoryError> {
        sessions::update(self, session).await
    }

    async fn insert_task(&mut self, task: &TaskRecord) -> Result<(), RepositoryError> {
        tasks::insert(self, task).await
    }

    async fn update_task(&mut self, task: &TaskRecord) -> Result<bool, RepositoryError> {
        tasks::update(self, task).await
    }

    async fn insert_agent(&mut self, agent: &AgentRecord) -> Result<(), RepositoryError> {
        agents::insert(self, agent).await
    }

    async fn update_agent(&mut self, agent: &AgentRecord) -> Result<bool, RepositoryError> {
        agents::update(self, agent).await
    }

    async fn stored_version(&mut self, key: EntityKey) -> Result<Option<u64>, RepositoryError> {
        let sql = format!("SELECT version FROM {} WHERE id = $1", table_of(key));
        let Some(row) = sqlx::query(&sql)
            .bind(uuid_of(key))
            .fetch_optional(self)
            .await
            .map_err(map_sqlx_error)?
        else {
            return Ok(None);
        };
        let version: i64 = row.try_get("version").map_err(map_sqlx_error)?;
        u64::try_from(version)
            .map(Some)
            .map_err(|_| RepositoryError::Corrupt {
                entity: table_of(key),
                id: uuid_of(key).to_string(),
                message: format!("version: negative value {version}"),
            })
    }

    async fn missing_tasks(&mut self, ids: &[TaskId]) -> Result<Vec<TaskId>, RepositoryError> {
        let ids: Vec<Uuid> = ids.iter().map(TaskId::as_uuid).collect();
        let rows = sqlx::query(
            "SELECT r.id FROM unnest($1::uuid[]) AS r (id)
             WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = r.id)",
        )
        .bind(ids)
        .fetch_all(self)
        .await
        .map_err(map_sqlx_error)?;
        rows.iter()
            .map(|row| {
                row.try_get("id")
                    .map(TaskId::from_uuid)
                    .map_err(map_sqlx_error)
            })
            .collect()
    }

    /// `FOR NO KEY UPDATE`: the same lock an UPDATE of the row takes, so appenders and updaters of
    /// one session queue behind each other, while foreign-key checks still pass.
    async fn lock_session(&mut self, id: SessionId) -> Result<bool, RepositoryError> {
        let row = sqlx::query("SELECT 1 FROM sessions WHERE id = $1 FOR NO KEY UPDATE")
            .bind(id.as_uuid())
            .fetch_optional(self)
            .await
            .map_err(map_sqlx_error)?;
        Ok(row.is_some())
    }

    /// BIGSERIAL hands out ids at insert time, not at commit, so two overlapping commits could
    /// publish ids out of order and a relay would see 11 before 10. Held until the transaction
    /// ends, this lock makes event-writing commits take turns from here on (after every row lock
    /// of the commit, so it cannot take part in a deadlock).
    async fn lock_outbox(&mut self) -> Result<(), RepositoryError> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(OUTBOX_LOCK)
            .execute(self)
            .await
            .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn append_outbox(&mut self, event: &NewEvent) -> Result<(), RepositoryError> {
        outbox::append(self, event).await
    }

    async fn apply_queue_op(&mut self, op: &QueueOp) -> Result<bool, RepositoryError> {
        queue::apply_op(self, op).await
    }

    async fn announce(&mut self, signals: &[QueueSignal]) -> Result<(), RepositoryError> {
        queue::notify(self, signals).await
    }

    async fn append_session_event(
        &mut self,
        session: SessionId,
        event: &NewEvent,
    ) -> Result<(), RepositoryError> {
        outbox::append_session_event(self, session, event).await
    }
}

#[async_trait]
impl UnitOfWork for PostgresStore {
    #[tracing::instrument(
        skip_all,
        fields(changes = changes.changes().len(), events = changes.events().len())
    )]
    async fn commit(&self, changes: ChangeSet) -> Result<Committed, RepositoryError> {
        if changes.is_empty() {
            return Ok(Committed::default());
        }
        let mut tx = self.pool.begin().await.map_err(map_sqlx_error)?;
        // On any error `tx` is dropped unfinished, which rolls it back.
        let committed = sql::apply(&mut *tx, &changes).await?;
        tx.commit().await.map_err(map_sqlx_error)?;
        Ok(committed)
    }
}
