//! The Unit of Work: apply the changes in order with optimistic locking, check task references,
//! then store the events — all in one transaction per change set.
//!
//! SQLite: `BEGIN IMMEDIATE` takes the database's write lock up front. A plain (deferred) `BEGIN`
//! would start as a reader and try to upgrade at its first write, and SQLite fails such an upgrade
//! at once with `SQLITE_BUSY` when another writer got there first, ignoring the busy timeout. Taken
//! up front, concurrent commits queue on the busy timeout instead.
//!
//! PostgreSQL: READ COMMITTED is enough for optimistic locking: a racing
//! `UPDATE … WHERE version = $n` waits for the winner's row lock, then re-checks the row and
//! matches nothing.

use std::collections::BTreeSet;

use async_trait::async_trait;
use domain::{SessionId, TaskId};

use super::decode::Columns;
use super::driver::{Backend, Exec, Sql, Tx};
use super::{
    agents, dispatch_queue, map_sqlx_error, outbox, sessions, table_of, tasks, uuid_of, SqlStore,
};
use oio_application::ports::{
    Aggregate, Change, ChangeSet, Committed, EntityKey, QueueOp, QueueSignal, RepositoryError,
    UnitOfWork,
};

/// The transaction-scoped advisory lock that event-writing commits take in turn on PostgreSQL
/// ("oio:outbox").
const OUTBOX_LOCK: i64 = 0x6f69_6f3a_6f75_7462;

#[async_trait]
impl UnitOfWork for SqlStore {
    #[tracing::instrument(
        skip_all,
        fields(changes = changes.changes().len(), events = changes.events().len())
    )]
    async fn commit(&self, changes: ChangeSet) -> Result<Committed, RepositoryError> {
        if changes.is_empty() {
            return Ok(Committed::default());
        }
        let mut tx = self.pool.begin_write().await.map_err(map_sqlx_error)?;
        // On any error `tx` is dropped unfinished, which rolls it back (also when COMMIT itself
        // fails, e.g. on a deferred foreign key: SQLite then keeps the transaction open).
        let committed = apply(&mut tx, &changes).await?;
        self.commit_announcing(tx, &signals_of(&changes)).await?;
        Ok(committed)
    }
}

/// The version stored for `key`, live or soft-deleted; `None` if there is no such row.
async fn stored_version(tx: &mut Tx, key: EntityKey) -> Result<Option<u64>, RepositoryError> {
    let sql = format!("SELECT version FROM {} WHERE id = $1", table_of(key));
    let Some(row) = tx
        .fetch_optional(Sql::new(sql).bind(uuid_of(key)))
        .await
        .map_err(map_sqlx_error)?
    else {
        return Ok(None);
    };
    let corrupt = |message: String| RepositoryError::Corrupt {
        entity: table_of(key),
        id: uuid_of(key).to_string(),
        message: format!("version: {message}"),
    };
    let version = row.int("version").map_err(corrupt)?;
    u64::try_from(version)
        .map(Some)
        .map_err(|_| corrupt(format!("negative value {version}")))
}

/// Those of `ids` that have no `tasks` row (as this transaction sees it).
async fn missing_tasks(tx: &mut Tx, ids: &[TaskId]) -> Result<Vec<TaskId>, RepositoryError> {
    let sql = format!(
        "SELECT r.id FROM {} AS r WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = r.id)",
        tx.backend().id_rows(1)
    );
    let ids: Vec<uuid::Uuid> = ids.iter().map(TaskId::as_uuid).collect();
    tx.fetch_all(Sql::new(sql).bind(ids))
        .await
        .map_err(map_sqlx_error)?
        .iter()
        .map(|row| {
            row.uuid("id")
                .map(TaskId::from_uuid)
                .map_err(|e| RepositoryError::Unavailable(format!("reference check returned {e}")))
        })
        .collect()
}

/// Locks the session's row until commit, so that its event log grows one writer at a time;
/// `false` if the session does not exist. PostgreSQL takes `FOR NO KEY UPDATE` (what an UPDATE of
/// the row takes, so foreign-key checks still pass); SQLite's write lock already serialises
/// commits.
async fn lock_session(tx: &mut Tx, id: SessionId) -> Result<bool, RepositoryError> {
    let sql = format!(
        "SELECT 1 FROM sessions WHERE id = $1{}",
        tx.backend().lock_row()
    );
    let row = tx
        .fetch_optional(Sql::new(sql).bind(id))
        .await
        .map_err(map_sqlx_error)?;
    Ok(row.is_some())
}

/// Makes event-writing commits take turns until they end, so that outbox ids increase in commit
/// order. PostgreSQL's BIGSERIAL hands out ids at insert time, not at commit, so two overlapping
/// commits could publish ids out of order and a relay would see 11 before 10; the advisory lock,
/// taken after every row lock of the commit, cannot take part in a deadlock. SQLite's commits
/// already take turns (`BEGIN IMMEDIATE`).
async fn lock_outbox(tx: &mut Tx) -> Result<(), RepositoryError> {
    if tx.backend() == Backend::Postgres {
        tx.execute(Sql::new("SELECT pg_advisory_xact_lock($1)").bind(OUTBOX_LOCK))
            .await
            .map_err(map_sqlx_error)?;
    }
    Ok(())
}

/// Applies every change and then every event. The first error stops the batch; the caller rolls
/// the transaction back and returns it.
async fn apply(writer: &mut Tx, changes: &ChangeSet) -> Result<Committed, RepositoryError> {
    let mut versions = Vec::with_capacity(changes.changes().len());
    for change in changes.changes() {
        versions.push((change.key(), write(writer, change).await?));
    }

    check_task_references(writer, changes.changes()).await?;

    for op in changes.queue_ops() {
        if !dispatch_queue::apply_op(writer, op).await? {
            let fence = match op {
                QueueOp::Attach { lease, .. }
                | QueueOp::Requeue { lease, .. }
                | QueueOp::Remove { lease }
                | QueueOp::Guard { lease } => lease.fence,
                QueueOp::Enqueue { .. } | QueueOp::RemoveWaiting { .. } => 0,
            };
            return Err(RepositoryError::FenceLost {
                session: op.session(),
                fence,
            });
        }
    }

    let events = changes.events();
    let sessions: BTreeSet<SessionId> = events
        .iter()
        .filter(|e| e.aggregate == Aggregate::Session)
        .map(|e| SessionId::from_uuid(e.aggregate_id))
        .collect();
    // In id order, so that two commits touching the same sessions cannot deadlock here.
    for &id in &sessions {
        if !lock_session(writer, id).await? {
            return Err(RepositoryError::NotFound(EntityKey::Session(id)));
        }
    }
    if !events.is_empty() {
        lock_outbox(writer).await?;
    }
    for event in events {
        outbox::append(writer, event).await?;
        if event.aggregate == Aggregate::Session {
            outbox::append_session_event(writer, SessionId::from_uuid(event.aggregate_id), event)
                .await?;
        }
    }
    Ok(Committed { versions })
}

/// What a batch's queue ops tell other replicas: a claim may now succeed (a row was added or
/// freed). Attach and Guard change nothing a dispatcher waits for.
fn signals_of(changes: &ChangeSet) -> Vec<QueueSignal> {
    let changed = changes.queue_ops().iter().any(|op| {
        matches!(
            op,
            QueueOp::Enqueue { .. }
                | QueueOp::Requeue { .. }
                | QueueOp::Remove { .. }
                | QueueOp::RemoveWaiting { .. }
        )
    });
    if changed {
        vec![QueueSignal::Changed]
    } else {
        Vec::new()
    }
}

/// Writes one change and returns the version now stored: 1 for an insert, one more than the
/// writer read for an update.
async fn write(writer: &mut Tx, change: &Change) -> Result<u64, RepositoryError> {
    let (read, matched) = match change {
        Change::InsertSession(s) => {
            return sessions::insert(writer, &s.to_record()).await.map(|()| 1)
        }
        Change::InsertTask(t) => return tasks::insert(writer, &t.to_record()).await.map(|()| 1),
        Change::InsertAgent(a) => return agents::insert(writer, &a.to_record()).await.map(|()| 1),
        Change::UpdateSession(s) => (s.version(), sessions::update(writer, &s.to_record()).await?),
        Change::UpdateTask(t) => (t.version(), tasks::update(writer, &t.to_record()).await?),
        Change::UpdateAgent(a) => (a.version(), agents::update(writer, &a.to_record()).await?),
    };
    if matched {
        // The row matched `version = read`, so `read` fit a BIGINT and `read + 1` cannot wrap.
        Ok(read + 1)
    } else {
        Err(stale(writer, change.key(), read).await)
    }
}

/// Why an update matched no row: someone else's newer version, or no such entity.
async fn stale(writer: &mut Tx, key: EntityKey, expected: u64) -> RepositoryError {
    match stored_version(writer, key).await {
        Ok(Some(actual)) => RepositoryError::Conflict {
            key,
            expected,
            actual,
        },
        Ok(None) => RepositoryError::NotFound(key),
        Err(e) => e,
    }
}

/// Every parent, subtask and dependency the batch's tasks name must exist once the batch is
/// applied (it may insert them in any order). Checked here, before COMMIT runs the deferred
/// foreign keys, so that a dangling edge is reported as `NotFound` of the missing task on every
/// backend rather than as an anonymous constraint failure.
async fn check_task_references(writer: &mut Tx, changes: &[Change]) -> Result<(), RepositoryError> {
    let mut seen = BTreeSet::new();
    let mut referenced = Vec::new();
    for change in changes {
        if let Change::InsertTask(t) | Change::UpdateTask(t) = change {
            let edges = t.parent().into_iter().chain(t.subtasks().iter().copied());
            for id in edges.chain(t.dependencies().iter().copied()) {
                if seen.insert(id) {
                    referenced.push(id);
                }
            }
        }
    }
    if referenced.is_empty() {
        return Ok(());
    }
    let missing: BTreeSet<TaskId> = missing_tasks(writer, &referenced)
        .await?
        .into_iter()
        .collect();
    match referenced.into_iter().find(|id| missing.contains(id)) {
        Some(id) => Err(RepositoryError::NotFound(EntityKey::Task(id))),
        None => Ok(()),
    }
}
