//! Putting the run's turn on its OpenCode server: the admission slot it waits for, then either
//! re-attaching to the turn a previous owner started or creating the OpenCode session, recording
//! the dispatch, and sending the prompt.

use std::time::{Duration, Instant};

use chrono::Utc;
use domain::event_log::{AwaitingSlot, Dispatched, Reattached, SlotGranted};
use domain::SessionStatus;
use serde_json::json;
use tokio::sync::watch;

use super::lease::interruption;
use super::{after, Run, Stop, Unprepared};
use crate::admission::{Permit, DEFAULT_POOL};
use crate::engine::EngineStats;
use crate::ports::{
    AgentServerError, ChangeSet, CreateSession, MessageId, ModelRef, NewEvent, PromptRequest,
    QueueOp, RemoteRef,
};

/// Most often a session waiting for an admission slot logs its new position.
const AWAITING_SLOT_LOG_EVERY: Duration = Duration::from_secs(1);

impl Run<'_> {
    /// Takes over a turn a previous owner dispatched: it already runs, so it counts in its pool
    /// without waiting.
    pub(super) async fn reattach(&mut self, remote: RemoteRef) -> Result<(), Stop> {
        let pool = self.admission_pool().await;
        self.slot = Some(self.shared.admission.occupy(&pool));
        self.log(Reattached {
            server: remote.server.clone(),
            remote_session: remote.session.clone(),
            fence: self.lease.fence,
        })
        .await?;
        self.remote = Some(remote);
        Ok(())
    }

    /// Creates the OpenCode session in the worktree, records where it runs (`queued ->
    /// running`, fenced), and sends the prompt under our own message id.
    pub(super) async fn dispatch(&mut self) -> Result<(), DispatchError> {
        let workspace = self.workspace.clone().expect("prepared before dispatch");
        let directory = workspace.path.display().to_string();
        let created = self
            .server
            .create_session(&CreateSession {
                title: Some(self.session.title().as_str().to_owned()),
                directory: Some(directory.clone()),
                agent: self.session.agent().map(|a| a.as_str().to_owned()),
                metadata: Some(json!({
                    "oio_session": self.session.id().to_string(),
                    "attempt": self.session.attempt(),
                    "fence": self.lease.fence,
                })),
                ..CreateSession::default()
            })
            .await
            .map_err(DispatchError::Server)?;
        let message_id = MessageId::generate();
        let remote = RemoteRef {
            server: self.claim.server.clone(),
            session: created.id.as_str().to_owned(),
            directory: directory.clone(),
            message_id: message_id.as_str().to_owned(),
        };
        let now = Utc::now();
        let deadline = after(now, self.shared.config.session_timeout);
        let mut changes = ChangeSet::new();
        if self.session.status() == SessionStatus::Queued {
            let started = self
                .session
                .start(now)
                .map_err(|e| DispatchError::Stop(e.into()))?;
            changes.event(&started);
        }
        changes
            .event(NewEvent::session_log(
                self.session.id(),
                &Dispatched {
                    server: remote.server.clone(),
                    remote_session: remote.session.clone(),
                    directory: directory.clone(),
                    branch: workspace.branch.clone(),
                    base_commit: workspace.base_commit.clone(),
                    attempt: self.session.attempt(),
                    fence: self.lease.fence,
                    recovered: self.claim.recovered,
                }
                .into(),
                now,
            ))
            .update_session(&self.session)
            .queue(QueueOp::Attach {
                lease: self.lease.clone(),
                remote: remote.clone(),
                deadline: Some(deadline),
            });
        self.commit(changes).await.map_err(DispatchError::Stop)?;
        tracing::info!(to = "running", remote_session = %remote.session, "session dispatched");
        self.remote = Some(remote);

        self.send_prompt().await.map_err(DispatchError::Server)?;
        let latency = (Utc::now() - self.claim.available_at)
            .to_std()
            .unwrap_or(Duration::ZERO);
        EngineStats::record(
            &self.shared.stats.dispatch_latency_ms,
            latency.as_secs_f64() * 1000.0,
        );
        Ok(())
    }

    /// The model the prompt names: a registered agent runs on its own model; any other agent
    /// name (or none) on the server's default (`None`).
    async fn model(&self) -> Option<ModelRef> {
        match self.session.agent() {
            Some(name) => match self.shared.deps.agents.get_by_name(name).await {
                Ok(agent) => agent.map(|a| a.model().clone()),
                Err(error) => {
                    tracing::warn!(%error, "agent registry unreadable; the server's model is used");
                    None
                }
            },
            None => None,
        }
    }

    /// The admission pool of this session's turn: `provider/model`, or the default pool.
    async fn admission_pool(&self) -> String {
        self.model()
            .await
            .map_or_else(|| DEFAULT_POOL.to_owned(), |m| m.to_string())
    }

    /// Waits for a slot of the session's admission pool, logging `awaiting_slot` (pool, position,
    /// limit) as the position changes — at most every [`AWAITING_SLOT_LOG_EVERY`] — and
    /// `slot_granted` once admitted after a wait. The session stays `queued` meanwhile, its lease
    /// renewed; cancellation, a lost lease and shutdown (lease handed back) end the wait.
    pub(super) async fn await_slot(
        &mut self,
        cancel: &mut watch::Receiver<bool>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Permit, Unprepared> {
        let pool = self.admission_pool().await;
        let mut waiter = self
            .shared
            .admission
            .enqueue(&pool, self.session.id().to_string());
        let waiting = Instant::now();
        let mut logged: Option<(usize, Instant)> = None;
        let mut tick = tokio::time::interval(AWAITING_SLOT_LOG_EVERY);
        loop {
            if let Some(permit) = waiter.try_admit() {
                if logged.is_some() {
                    let waited_ms =
                        u64::try_from(waiting.elapsed().as_millis()).unwrap_or(u64::MAX);
                    tracing::info!(pool, waited_ms, "admission slot granted");
                    self.log(SlotGranted {
                        pool: pool.clone(),
                        waited_ms,
                    })
                    .await
                    .map_err(Unprepared::Stop)?;
                }
                return Ok(permit);
            }
            if let Some(status) = waiter.status() {
                let due = logged.is_none_or(|(position, at)| {
                    position != status.position && at.elapsed() >= AWAITING_SLOT_LOG_EVERY
                });
                if due {
                    if logged.is_none() {
                        tracing::info!(
                            pool,
                            position = status.position,
                            limit = status.limit,
                            "awaiting an admission slot"
                        );
                    }
                    self.log(AwaitingSlot {
                        pool: pool.clone(),
                        position: status.position as u64,
                        limit: status.limit,
                        in_use: status.in_use,
                    })
                    .await
                    .map_err(Unprepared::Stop)?;
                    logged = Some((status.position, Instant::now()));
                }
            }
            tokio::select! {
                () = waiter.changed() => {}
                _ = tick.tick() => {}
                interrupt = interruption(&mut self.lease_state, cancel, shutdown) => {
                    // Leave the queue before handing the lease back.
                    drop(waiter);
                    return Err(self.unprepared(interrupt).await);
                }
            }
        }
    }

    pub(super) async fn send_prompt(&self) -> Result<(), AgentServerError> {
        let remote = self.remote.as_ref().expect("attached before prompting");
        let model = self.model().await;
        let message_id = MessageId::parse(remote.message_id.clone())
            .map_err(|e| AgentServerError::Decode(e.to_string()))?;
        self.server
            .prompt_async(
                &self.address().expect("attached"),
                &PromptRequest {
                    message_id,
                    text: self.session.prompt().as_str().to_owned(),
                    agent: self.session.agent().map(|a| a.as_str().to_owned()),
                    model,
                },
            )
            .await
    }
}

/// Why a dispatch did not put the turn on its server.
pub(super) enum DispatchError {
    Stop(Stop),
    Server(AgentServerError),
}
