//! Session commands: create (validated, queued in the same commit), cancel and retry. Every
//! transition goes through the domain state machine and one Unit of Work commit that carries the
//! new state, its event and the dispatch-queue change together.

use std::sync::Arc;

use chrono::Utc;
use domain::{
    AgentName, NewSession, Prompt, Session, SessionError, SessionId, SessionStatus, SessionTitle,
    TaskId, ValidationError, WorkspacePath,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::metrics::CommittedFacts;
use crate::ports::{
    ChangeSet, DispatchQueue, QueueOp, RepositoryError, SessionRepository, UnitOfWork,
};

/// Highest and lowest priority a caller may give.
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i32> = -1000..=1000;
/// Most attempts a caller may allow.
pub const MAX_ATTEMPTS: u32 = 20;

/// What a caller asks for. Everything is validated before anything is stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateSessionRequest {
    pub title: String,
    pub prompt: String,
    /// The git repository the session works on (a worktree of it is created for the session).
    pub workspace: String,
    #[serde(default)]
    pub agent: Option<String>,
    /// Higher runs first; default 0.
    #[serde(default)]
    pub priority: i32,
    /// First run plus retries; the engine's default when absent.
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("session {0} does not exist")]
    NotFound(SessionId),
    /// The command does not apply in the session's current state.
    #[error("{0}")]
    NotAllowed(String),
    #[error(transparent)]
    Storage(#[from] RepositoryError),
}

impl From<SessionError> for LifecycleError {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::Invalid { field, message } => {
                LifecycleError::Invalid(ValidationError::new(field, message))
            }
            other => LifecycleError::NotAllowed(other.to_string()),
        }
    }
}

/// What `cancel` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The session was waiting; it is cancelled now.
    Cancelled,
    /// A replica runs it: it aborts the OpenCode session and records the cancellation.
    Requested,
}

pub struct SessionLifecycle {
    sessions: Arc<dyn SessionRepository>,
    unit_of_work: Arc<dyn UnitOfWork>,
    queue: Arc<dyn DispatchQueue>,
    default_max_attempts: u32,
}

impl SessionLifecycle {
    pub fn new(
        sessions: Arc<dyn SessionRepository>,
        unit_of_work: Arc<dyn UnitOfWork>,
        queue: Arc<dyn DispatchQueue>,
        default_max_attempts: u32,
    ) -> Self {
        Self {
            sessions,
            unit_of_work,
            queue,
            default_max_attempts,
        }
    }

    /// Validates, creates and queues a session in one commit: `pending -> queued`, both events,
    /// and its queue row.
    #[tracing::instrument(skip_all, fields(session_id))]
    pub async fn create(&self, request: CreateSessionRequest) -> Result<Session, LifecycleError> {
        let (mut session, changes) = self.plan_create(request, None)?;
        tracing::Span::current().record("session_id", tracing::field::display(session.id()));
        let facts = CommittedFacts::of(changes.events());
        self.unit_of_work.commit(changes).await?;
        facts.record();
        session.set_version(1);
        tracing::info!(to = "queued", "session created");
        Ok(session)
    }

    /// Validates a new session (for `parent_task`, when a task tree runs it) and returns it
    /// queued, with the changes that store it: the caller adds its own and commits them together.
    pub fn plan_create(
        &self,
        request: CreateSessionRequest,
        parent_task: Option<TaskId>,
    ) -> Result<(Session, ChangeSet), LifecycleError> {
        let now = Utc::now();
        if !PRIORITY_RANGE.contains(&request.priority) {
            return Err(ValidationError::new(
                "priority",
                format!(
                    "must be between {} and {}",
                    PRIORITY_RANGE.start(),
                    PRIORITY_RANGE.end()
                ),
            )
            .into());
        }
        let max_attempts = request.max_attempts.unwrap_or(self.default_max_attempts);
        if !(1..=MAX_ATTEMPTS).contains(&max_attempts) {
            return Err(ValidationError::new(
                "max_attempts",
                format!("must be between 1 and {MAX_ATTEMPTS}"),
            )
            .into());
        }
        let agent = request
            .agent
            .filter(|a| !a.trim().is_empty())
            .map(AgentName::new)
            .transpose()?;
        let new = NewSession {
            id: SessionId::from_uuid(Uuid::new_v4()),
            title: SessionTitle::new(request.title)?,
            prompt: Prompt::new(request.prompt)?,
            workspace: WorkspacePath::new(request.workspace)?,
            agent: agent.clone(),
            parent_task,
            max_attempts,
        };
        let mut session = Session::new(new, now)?;
        let created = session.created_event();
        let enqueued = session.enqueue(now)?;
        let mut changes = ChangeSet::new();
        changes
            .insert_session(&session)
            .event(&created)
            .event(&enqueued)
            .queue(QueueOp::Enqueue {
                session: session.id(),
                priority: request.priority,
                agent: agent.map(|a| a.into_inner()),
                available_at: now,
            });
        Ok((session, changes))
    }

    /// Cancels a session: at once if it waits in the queue, else by asking its runner (which
    /// aborts the OpenCode session and records `cancelled`).
    #[tracing::instrument(skip(self, reason))]
    pub async fn cancel(
        &self,
        id: SessionId,
        reason: Option<String>,
    ) -> Result<CancelOutcome, LifecycleError> {
        // Two rounds: a claim may slip in between reading the row and removing it.
        for _ in 0..2 {
            let mut session = self.get(id).await?;
            if !session.status().can_transition_to(SessionStatus::Cancelled) {
                return Err(LifecycleError::NotAllowed(format!(
                    "session {id} is {} and cannot be cancelled",
                    session.status()
                )));
            }
            let entry = self.queue.entry(id).await?;
            match entry {
                Some(entry) if entry.owner.is_some() => {
                    self.queue.request_cancel(id).await?;
                    tracing::info!("cancellation requested from the running replica");
                    return Ok(CancelOutcome::Requested);
                }
                _ => {
                    let now = Utc::now();
                    let event = session.cancel(reason.clone(), now)?;
                    let mut changes = ChangeSet::new();
                    changes.update_session(&session).event(&event);
                    if entry.is_some() {
                        changes.queue(QueueOp::RemoveWaiting { session: id });
                    }
                    let facts = CommittedFacts::of(changes.events());
                    match self.unit_of_work.commit(changes).await {
                        Ok(_) => {
                            facts.record();
                            tracing::info!(to = "cancelled", "session cancelled while waiting");
                            return Ok(CancelOutcome::Cancelled);
                        }
                        // Claimed (or changed) meanwhile: look again.
                        Err(
                            RepositoryError::FenceLost { .. } | RepositoryError::Conflict { .. },
                        ) => continue,
                        Err(other) => return Err(other.into()),
                    }
                }
            }
        }
        // Still racing a claim: the runner will see the flag.
        if self.queue.request_cancel(id).await? {
            Ok(CancelOutcome::Requested)
        } else {
            Err(LifecycleError::NotAllowed(format!(
                "session {id} changed while cancelling; try again"
            )))
        }
    }

    /// Puts a failed or timed-out session back in the queue for another attempt.
    #[tracing::instrument(skip(self))]
    pub async fn retry(&self, id: SessionId, priority: i32) -> Result<Session, LifecycleError> {
        let mut session = self.get(id).await?;
        if !session.status().is_failure() {
            return Err(LifecycleError::NotAllowed(format!(
                "session {id} is {}; only failed or timed-out sessions can be retried",
                session.status()
            )));
        }
        let now = Utc::now();
        let event = session.retry(now)?;
        let mut changes = ChangeSet::new();
        changes
            .update_session(&session)
            .event(&event)
            .queue(QueueOp::Enqueue {
                session: id,
                priority,
                agent: session.agent().map(|a| a.as_str().to_owned()),
                available_at: now,
            });
        let facts = CommittedFacts::of(changes.events());
        let committed = self.unit_of_work.commit(changes).await?;
        facts.record();
        if let Some(version) = committed.version_of(crate::ports::EntityKey::Session(id)) {
            session.set_version(version);
        }
        tracing::info!(
            to = "queued",
            attempt = session.attempt(),
            "session retried"
        );
        Ok(session)
    }

    pub async fn get(&self, id: SessionId) -> Result<Session, LifecycleError> {
        self.sessions
            .get(id)
            .await?
            .ok_or(LifecycleError::NotFound(id))
    }
}
