//! Commits: one `BEGIN IMMEDIATE` transaction per change set.
//!
//! `BEGIN IMMEDIATE` takes the database's write lock up front. A plain (deferred) `BEGIN` would
//! start as a reader and try to upgrade at its first write, and SQLite fails such an upgrade at
//! once with `SQLITE_BUSY` when another writer got there first, ignoring the busy timeout. Taken
//! up front, concurrent commits queue on the busy timeout instead, and every commit sees the
//! latest committed state.

use async_trait::async_trait;
use domain::{AgentRecord, SessionId, SessionRecord, TaskId, TaskRecord};
use sqlx::{Row, SqliteConnection};

use super::{agents, json_array, outbox, queue, sessions, tasks, SqliteStore};
use crate::adapters::sql::{self, map_sqlx_error, table_of, uuid_of, ChangeWriter};
use crate::ports::{
    ChangeSet, Committed, EntityKey, NewEvent, QueueOp, QueueSignal, RepositoryError, UnitOfWork,
};

impl ChangeWriter for SqliteConnection {
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
        let sql = format!("SELECT version FROM {} WHERE id = ?", table_of(key));
        let Some(row) = sqlx::query(&sql)
            .bind(uuid_of(key).to_string())
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
        let rows = sqlx::query(
            "SELECT j.value AS id FROM json_each(?) j
             WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = j.value)",
        )
        .bind(json_array(ids))
        .fetch_all(self)
        .await
        .map_err(map_sqlx_error)?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id").map_err(map_sqlx_error)?;
                id.parse().map_err(|e| {
                    RepositoryError::Unavailable(format!("reference check returned {id:?}: {e}"))
                })
            })
            .collect()
    }

    /// The write lock of `BEGIN IMMEDIATE` already serialises commits; this only checks existence.
    async fn lock_session(&mut self, id: SessionId) -> Result<bool, RepositoryError> {
        let row = sqlx::query("SELECT 1 FROM sessions WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(self)
            .await
            .map_err(map_sqlx_error)?;
        Ok(row.is_some())
    }

    /// Commits already take turns (`BEGIN IMMEDIATE`), so AUTOINCREMENT ids follow commit order.
    async fn lock_outbox(&mut self) -> Result<(), RepositoryError> {
        Ok(())
    }

    async fn append_outbox(&mut self, event: &NewEvent) -> Result<(), RepositoryError> {
        outbox::append(self, event).await
    }

    async fn apply_queue_op(&mut self, op: &QueueOp) -> Result<bool, RepositoryError> {
        queue::apply_op(self, op).await
    }

    async fn announce(&mut self, signals: &[QueueSignal]) -> Result<(), RepositoryError> {
        // Sent by the store after COMMIT (see `UnitOfWork::commit`).
        let _ = signals;
        Ok(())
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
impl UnitOfWork for SqliteStore {
    #[tracing::instrument(
        skip_all,
        fields(changes = changes.changes().len(), events = changes.events().len())
    )]
    async fn commit(&self, changes: ChangeSet) -> Result<Committed, RepositoryError> {
        if changes.is_empty() {
            return Ok(Committed::default());
        }
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_sqlx_error)?;
        // On any error `tx` is dropped unfinished, which rolls it back (also when COMMIT itself
        // fails, e.g. on a deferred foreign key: SQLite then keeps the transaction open).
        let committed = sql::apply(&mut *tx, &changes).await?;
        tx.commit().await.map_err(map_sqlx_error)?;
        for signal in sql::signals_of(&changes) {
            let _ = self.signals.send(signal);
        }
        Ok(committed)
    }
}
