//! The Unit of Work: a batch of entity changes and their domain events, committed in ONE
//! transaction. Either every change and every event is stored, or nothing is.
//!
//! Optimistic locking: an update carries the version the writer read (`entity.version()`); the
//! store writes `version + 1` only where the stored version still equals it, and otherwise fails
//! the whole batch with [`RepositoryError::Conflict`]. Inserts store version 1.

use std::fmt;

use async_trait::async_trait;
use domain::{Agent, AgentId, InboxItemId, Session, SessionId, Task, TaskId};
use serde::{Deserialize, Serialize};

use super::{NewEvent, QueueLease, QueueOp, RepositoryError};

/// Which entity a change or error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntityKey {
    Session(SessionId),
    Task(TaskId),
    Agent(AgentId),
    /// An item of the human-in-the-loop inbox (written by [`super::InboxRepository`]).
    InboxItem(InboxItemId),
}

impl fmt::Display for EntityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntityKey::Session(id) => write!(f, "session {id}"),
            EntityKey::Task(id) => write!(f, "task {id}"),
            EntityKey::Agent(id) => write!(f, "agent {id}"),
            EntityKey::InboxItem(id) => write!(f, "inbox item {id}"),
        }
    }
}

/// One entity write. Soft delete and restore are updates (the entity's `deleted_at` changes).
#[derive(Clone, Debug)]
pub enum Change {
    InsertSession(Session),
    UpdateSession(Session),
    InsertTask(Task),
    UpdateTask(Task),
    InsertAgent(Agent),
    UpdateAgent(Agent),
}

impl Change {
    pub fn key(&self) -> EntityKey {
        match self {
            Change::InsertSession(s) | Change::UpdateSession(s) => EntityKey::Session(s.id()),
            Change::InsertTask(t) | Change::UpdateTask(t) => EntityKey::Task(t.id()),
            Change::InsertAgent(a) | Change::UpdateAgent(a) => EntityKey::Agent(a.id()),
        }
    }
}

/// Changes and events to commit together, applied in the order they were added.
#[derive(Clone, Debug, Default)]
pub struct ChangeSet {
    changes: Vec<Change>,
    events: Vec<NewEvent>,
    queue: Vec<QueueOp>,
}

impl ChangeSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn change(&mut self, change: Change) -> &mut Self {
        self.changes.push(change);
        self
    }

    pub fn event(&mut self, event: impl Into<NewEvent>) -> &mut Self {
        self.events.push(event.into());
        self
    }

    pub fn insert_session(&mut self, session: &Session) -> &mut Self {
        self.change(Change::InsertSession(session.clone()))
    }

    pub fn update_session(&mut self, session: &Session) -> &mut Self {
        self.change(Change::UpdateSession(session.clone()))
    }

    pub fn insert_task(&mut self, task: &Task) -> &mut Self {
        self.change(Change::InsertTask(task.clone()))
    }

    pub fn update_task(&mut self, task: &Task) -> &mut Self {
        self.change(Change::UpdateTask(task.clone()))
    }

    pub fn insert_agent(&mut self, agent: &Agent) -> &mut Self {
        self.change(Change::InsertAgent(agent.clone()))
    }

    pub fn update_agent(&mut self, agent: &Agent) -> &mut Self {
        self.change(Change::UpdateAgent(agent.clone()))
    }

    /// A dispatch-queue change to commit with the rest (see [`super::DispatchQueue`]).
    pub fn queue(&mut self, op: QueueOp) -> &mut Self {
        self.queue.push(op);
        self
    }

    /// Commits only while `lease` is still the session's current lease (fencing): otherwise the
    /// whole batch fails with [`RepositoryError::FenceLost`].
    pub fn guard(&mut self, lease: &QueueLease) -> &mut Self {
        self.queue(QueueOp::Guard {
            lease: lease.clone(),
        })
    }

    pub fn queue_ops(&self) -> &[QueueOp] {
        &self.queue
    }

    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    pub fn events(&self) -> &[NewEvent] {
        &self.events
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.events.is_empty() && self.queue.is_empty()
    }
}

/// What a successful commit stored: each changed entity's new version, in change order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Committed {
    pub versions: Vec<(EntityKey, u64)>,
}

impl Committed {
    /// The version now stored for `key`, if this commit wrote it.
    pub fn version_of(&self, key: EntityKey) -> Option<u64> {
        self.versions
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }
}

#[async_trait]
pub trait UnitOfWork: Send + Sync + 'static {
    /// Commits every change and event in one transaction, or none of them.
    async fn commit(&self, changes: ChangeSet) -> Result<Committed, RepositoryError>;
}
