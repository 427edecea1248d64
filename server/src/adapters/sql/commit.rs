//! The Unit of Work's algorithm, once for every SQL backend: apply the changes in order with
//! optimistic locking, check task references, then store the events. The backend supplies the
//! statements ([`ChangeWriter`]) and owns the transaction around [`apply`].

use std::collections::BTreeSet;
use std::future::Future;

use domain::{AgentRecord, SessionId, SessionRecord, TaskId, TaskRecord};

use crate::ports::{
    Aggregate, Change, ChangeSet, Committed, EntityKey, NewEvent, QueueOp, QueueSignal,
    RepositoryError,
};

/// One backend's statements, run inside the open transaction of a commit.
pub(crate) trait ChangeWriter: Send {
    /// Inserts at version 1; an existing id is [`RepositoryError::Duplicate`].
    fn insert_session(
        &mut self,
        session: &SessionRecord,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    /// Overwrites the row where its stored version is still `session.version`, bumping it by one.
    /// `false` when no row matched.
    fn update_session(
        &mut self,
        session: &SessionRecord,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;

    /// Inserts the task at version 1 with its subtask and dependency edges.
    fn insert_task(
        &mut self,
        task: &TaskRecord,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    /// Like [`Self::update_session`]; when the row matched, its edges are replaced too.
    fn update_task(
        &mut self,
        task: &TaskRecord,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;

    /// Inserts at version 1; a taken id or name is [`RepositoryError::Duplicate`].
    fn insert_agent(
        &mut self,
        agent: &AgentRecord,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    /// Like [`Self::update_session`].
    fn update_agent(
        &mut self,
        agent: &AgentRecord,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;

    /// The version stored for `key`, live or soft-deleted; `None` if there is no such row.
    fn stored_version(
        &mut self,
        key: EntityKey,
    ) -> impl Future<Output = Result<Option<u64>, RepositoryError>> + Send;

    /// Those of `ids` that have no `tasks` row (as this transaction sees it).
    fn missing_tasks(
        &mut self,
        ids: &[TaskId],
    ) -> impl Future<Output = Result<Vec<TaskId>, RepositoryError>> + Send;

    /// Locks the session's row until commit, so that its event log grows one writer at a time;
    /// `false` if the session does not exist.
    fn lock_session(
        &mut self,
        id: SessionId,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;

    /// Makes event-writing commits take turns until they end, so that outbox ids increase in
    /// commit order. Called after every row lock of the commit has been taken.
    fn lock_outbox(&mut self) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    fn append_outbox(
        &mut self,
        event: &NewEvent,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    /// Applies one dispatch-queue change. `false` when a lease-guarded op found the row gone or
    /// owned under another fence (or a `RemoveWaiting` found it owned).
    fn apply_queue_op(
        &mut self,
        op: &QueueOp,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;

    /// Announces the batch's queue changes to every replica once the transaction commits
    /// (PostgreSQL: NOTIFY, which is delivered at commit). Backends that announce after commit
    /// themselves do nothing here.
    fn announce(
        &mut self,
        signals: &[QueueSignal],
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    /// Appends to the session's log with the next `seq` (max + 1). The session row is locked.
    fn append_session_event(
        &mut self,
        session: SessionId,
        event: &NewEvent,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;
}

/// Applies every change and then every event. The first error stops the batch; the caller rolls
/// the transaction back and returns it.
pub(crate) async fn apply<W: ChangeWriter>(
    writer: &mut W,
    changes: &ChangeSet,
) -> Result<Committed, RepositoryError> {
    let mut versions = Vec::with_capacity(changes.changes().len());
    for change in changes.changes() {
        versions.push((change.key(), write(writer, change).await?));
    }

    check_task_references(writer, changes.changes()).await?;

    for op in changes.queue_ops() {
        if !writer.apply_queue_op(op).await? {
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
    let signals = signals_of(changes);
    if !signals.is_empty() {
        writer.announce(&signals).await?;
    }

    let events = changes.events();
    let sessions: BTreeSet<SessionId> = events
        .iter()
        .filter(|e| e.aggregate == Aggregate::Session)
        .map(|e| SessionId::from_uuid(e.aggregate_id))
        .collect();
    // In id order, so that two commits touching the same sessions cannot deadlock here.
    for &id in &sessions {
        if !writer.lock_session(id).await? {
            return Err(RepositoryError::NotFound(EntityKey::Session(id)));
        }
    }
    if !events.is_empty() {
        writer.lock_outbox().await?;
    }
    for event in events {
        writer.append_outbox(event).await?;
        if event.aggregate == Aggregate::Session {
            writer
                .append_session_event(SessionId::from_uuid(event.aggregate_id), event)
                .await?;
        }
    }
    Ok(Committed { versions })
}

/// What a batch's queue ops tell other replicas: a claim may now succeed (a row was added or
/// freed). Attach and Guard change nothing a dispatcher waits for.
pub(crate) fn signals_of(changes: &ChangeSet) -> Vec<QueueSignal> {
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
async fn write<W: ChangeWriter>(writer: &mut W, change: &Change) -> Result<u64, RepositoryError> {
    let (read, matched) = match change {
        Change::InsertSession(s) => return writer.insert_session(&s.to_record()).await.map(|()| 1),
        Change::InsertTask(t) => return writer.insert_task(&t.to_record()).await.map(|()| 1),
        Change::InsertAgent(a) => return writer.insert_agent(&a.to_record()).await.map(|()| 1),
        Change::UpdateSession(s) => (s.version(), writer.update_session(&s.to_record()).await?),
        Change::UpdateTask(t) => (t.version(), writer.update_task(&t.to_record()).await?),
        Change::UpdateAgent(a) => (a.version(), writer.update_agent(&a.to_record()).await?),
    };
    if matched {
        // The row matched `version = read`, so `read` fit a BIGINT and `read + 1` cannot wrap.
        Ok(read + 1)
    } else {
        Err(stale(writer, change.key(), read).await)
    }
}

/// Why an update matched no row: someone else's newer version, or no such entity.
async fn stale<W: ChangeWriter>(writer: &mut W, key: EntityKey, expected: u64) -> RepositoryError {
    match writer.stored_version(key).await {
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
async fn check_task_references<W: ChangeWriter>(
    writer: &mut W,
    changes: &[Change],
) -> Result<(), RepositoryError> {
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
    let missing: BTreeSet<TaskId> = writer
        .missing_tasks(&referenced)
        .await?
        .into_iter()
        .collect();
    match referenced.into_iter().find(|id| missing.contains(id)) {
        Some(id) => Err(RepositoryError::NotFound(EntityKey::Task(id))),
        None => Ok(()),
    }
}
