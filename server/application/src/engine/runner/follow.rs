//! Following the run's turn: the OpenCode event stream written to the session's log as progress,
//! guardrails checked on every event and poll, and reconciliation with the server's own state to
//! tell a finished turn from a working, lost or interrupted one.
//!
//! Completion is read from the server, not assumed: on every idle status, stream (re)connect and
//! lease renewal the runner reconciles with `status()` and `messages()`; a turn is over when the
//! session is not busy and the last reply to our prompt is complete.

use std::time::{Duration, Instant};

use chrono::Utc;
use domain::event_log::{
    AgentErrorReported, AgentMessage, AgentRetry, AgentStreamResynced, PermissionAsked,
    QuestionAsked, ToolFinished, ToolOutcome,
};
use futures_util::StreamExt;
use tokio::sync::watch;

use super::lease::{interruption, Interrupt};
use super::{Outcome, Run, Stop};
use crate::engine::guardrails::RunGuard;
use crate::ports::{
    AgentEvent, AgentServerError, AgentSessionId, AgentSessionStatus, EventScope, Message,
    PartContent, ToolCallState,
};

/// Reconciliations in a row that find the session idle with no reply before the turn counts as
/// lost (the server restarted, or the prompt never started).
const LOST_TURN_CHECKS: u32 = 3;
/// ... and for at least this long: a loaded server can take seconds to start a turn it accepted.
const LOST_TURN_AFTER: Duration = Duration::from_secs(30);
/// Reconciliations in a row that find the session idle while its last reply never finished, and
/// for at least how long, before the turn counts as interrupted. A live server never shows that
/// for long (a reply completes before the session goes idle); a restarted one shows it for ever.
const INTERRUPTED_CHECKS: u32 = 2;
const INTERRUPTED_AFTER: Duration = Duration::from_secs(5);
/// Failed status checks in a row before the server counts as gone for this attempt.
const UNREACHABLE_CHECKS: u32 = 6;

impl Run<'_> {
    /// Follows the OpenCode session until its turn ends, the deadline passes, or someone cancels.
    pub(super) async fn follow(
        &mut self,
        cancel: &mut watch::Receiver<bool>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Outcome, Stop> {
        let remote = self.remote.clone().expect("attached");
        let remote_id = AgentSessionId::new(&remote.session);
        let mut events = self
            .server
            .events(EventScope::Directory(remote.directory.clone()));
        let deadline = self
            .claim
            .deadline
            .filter(|_| self.claim.remote.is_some())
            .and_then(|d| (d - Utc::now()).to_std().ok())
            .unwrap_or(self.shared.config.session_timeout);
        let timeout = tokio::time::sleep(deadline);
        tokio::pin!(timeout);
        // Polling fallback for missed events; the lease keeper renews on its own schedule.
        let period = self.shared.config.lease_ttl / 3;
        let mut poll = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut lost = LostTurn::default();
        let mut interrupted = LostTurn::default();
        // Prompts this runner sent were accepted by the server: if they are not listed yet, the
        // server is slow, not missing them. Only a re-attaching runner sends a missing prompt.
        let mut prompt_sent = self.claim.remote.is_none();
        let mut unreachable = 0u32;
        // Budgets and runaway limits: baselines read once here, then refreshed on polls.
        let guard =
            RunGuard::start(&self.shared.guardrails, &self.session, self.attempt_started).await;
        let wall = guard.wall_deadline();
        self.guard = Some(guard);
        let wall_time = tokio::time::sleep_until(
            wall.map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400 * 365)),
        );
        tokio::pin!(wall_time);

        loop {
            let mut check = false;
            tokio::select! {
                event = events.next() => {
                    let Some(event) = event else { continue };
                    check = self.on_event(&remote_id, event).await?;
                }
                _ = poll.tick() => {
                    check = true;
                    if let Some(guard) = self.guard.as_mut() {
                        guard.refresh_if_due(&self.shared.guardrails).await;
                        if let Some(reason) = guard.breach() {
                            self.stopped.get_or_insert(reason);
                        }
                    }
                }
                () = &mut wall_time, if wall.is_some() => {
                    if let Some(reason) = self.guard.as_ref().and_then(RunGuard::elapsed) {
                        self.stopped.get_or_insert(reason);
                    }
                }
                interrupt = interruption(&mut self.lease_state, cancel, shutdown) => {
                    return match interrupt {
                        Interrupt::Cancelled => Ok(Outcome::Cancelled),
                        Interrupt::LeaseLost => Err(Stop::LeaseLost),
                        Interrupt::Shutdown => Err(self.hand_back().await),
                    };
                }
                () = &mut timeout => return Ok(Outcome::TimedOut),
            }
            if let Some(reason) = self.stopped.take() {
                tracing::warn!(code = reason.code(), %reason, "guardrail tripped; stopping the session");
                return Ok(Outcome::Stopped(reason));
            }
            if !check {
                continue;
            }
            match self.reconcile(&remote_id).await {
                Ok(Turn::Done(outcome)) => return Ok(outcome),
                Ok(Turn::Working) => {
                    lost = LostTurn::default();
                    interrupted = LostTurn::default();
                    unreachable = 0;
                }
                Ok(Turn::Interrupted) => {
                    unreachable = 0;
                    if interrupted.persists_for(INTERRUPTED_CHECKS, INTERRUPTED_AFTER) {
                        return Ok(Outcome::Failed {
                            reason: "the agent server is idle but the turn never finished \
                                     (the server restarted mid-turn)"
                                .into(),
                            retryable: true,
                        });
                    }
                }
                Ok(Turn::IdleWithoutReply) => {
                    unreachable = 0;
                    if lost.persists() {
                        return Ok(Outcome::Failed {
                            reason: "the agent server holds no reply to the prompt and is idle \
                                     (restarted, or the turn never started)"
                                .into(),
                            retryable: true,
                        });
                    }
                }
                Ok(Turn::PromptMissing) if prompt_sent => {
                    // Accepted but not listed yet; lost if it stays that way (as above).
                    unreachable = 0;
                    if lost.persists() {
                        return Ok(Outcome::Failed {
                            reason: "the agent server lost the prompt it had accepted".into(),
                            retryable: true,
                        });
                    }
                }
                Ok(Turn::PromptMissing) => {
                    tracing::info!("prompt not on the server (lost before it arrived); sending it");
                    match self.send_prompt().await {
                        Ok(()) => prompt_sent = true,
                        Err(error) => tracing::warn!(%error, "re-sending the prompt failed"),
                    }
                }
                Err(error) => {
                    unreachable += 1;
                    tracing::warn!(%error, unreachable, "cannot read the session's state");
                    if unreachable >= UNREACHABLE_CHECKS {
                        return Ok(Outcome::Failed {
                            reason: format!("agent server {} unreachable: {error}", remote.server),
                            retryable: true,
                        });
                    }
                }
            }
        }
    }

    /// Writes what matters of an event to the session's log. `true` when the turn may be over
    /// (or events may have been missed): reconcile.
    async fn on_event(&mut self, remote: &AgentSessionId, event: AgentEvent) -> Result<bool, Stop> {
        // Live spend and runaway counts: every report of the attempt's messages and parts.
        if let Some(guard) = self.guard.as_mut() {
            let tripped = match &event {
                AgentEvent::MessageUpdated {
                    session_id,
                    message: Message::Assistant(message),
                } if session_id == remote => guard.message(message),
                AgentEvent::MessagePartUpdated { session_id, part } if session_id == remote => {
                    guard.part(part)
                }
                _ => None,
            };
            if let Some(reason) = tripped {
                self.stopped.get_or_insert(reason);
            }
        }
        match event {
            AgentEvent::ServerConnected => Ok(true),
            AgentEvent::Resynced => {
                // Events may be missing (a dropped stream, or a restarted server): reconcile.
                self.log(AgentStreamResynced {}).await?;
                Ok(true)
            }
            AgentEvent::SessionStatus {
                session_id,
                status: AgentSessionStatus::Idle,
            }
            | AgentEvent::SessionIdle { session_id } => Ok(&session_id == remote),
            AgentEvent::SessionStatus {
                session_id,
                status:
                    AgentSessionStatus::Retry {
                        attempt, message, ..
                    },
            } if &session_id == remote => {
                // OpenCode retries a rate-limited (or overloaded) provider call itself and says so
                // here: the pool's signal to admit fewer turns for a while.
                if let Some(slot) = &self.slot {
                    slot.rate_limited();
                }
                self.log(AgentRetry { attempt, message }).await?;
                Ok(false)
            }
            AgentEvent::SessionError {
                session_id: Some(session_id),
                error,
            } if &session_id == remote => {
                self.log(AgentErrorReported {
                    error: error.map(Into::into),
                })
                .await?;
                Ok(true)
            }
            AgentEvent::MessageUpdated {
                session_id,
                message: Message::Assistant(message),
            } if &session_id == remote && message.completed_at.is_some() => {
                if self.logged.insert(message.id.as_str().to_owned()) {
                    self.log(AgentMessage {
                        message_id: message.id.as_str().to_owned(),
                        finish: message.finish.clone(),
                        tokens: message.tokens.into(),
                        cost: message.cost,
                        error: message.error.as_ref().map(|e| e.message.clone()),
                    })
                    .await?;
                }
                Ok(false)
            }
            AgentEvent::MessagePartUpdated { session_id, part } if &session_id == remote => {
                if let PartContent::Tool { tool, state, .. } = &part.content {
                    let done = matches!(
                        state,
                        ToolCallState::Completed { .. } | ToolCallState::Failed { .. }
                    );
                    if done && self.logged.insert(part.id.clone()) {
                        let status = match state {
                            ToolCallState::Completed { .. } => ToolOutcome::Completed,
                            _ => ToolOutcome::Error,
                        };
                        self.log(ToolFinished {
                            tool: tool.clone(),
                            status,
                        })
                        .await?;
                    }
                }
                Ok(false)
            }
            AgentEvent::PermissionAsked(request) if &request.session_id == remote => {
                self.log(PermissionAsked {
                    request_id: request.id,
                    permission: request.permission,
                    patterns: request.patterns,
                })
                .await?;
                Ok(false)
            }
            AgentEvent::QuestionAsked(request) if &request.session_id == remote => {
                self.log(QuestionAsked {
                    request_id: request.id,
                    questions: request.questions.into_iter().map(|q| q.question).collect(),
                })
                .await?;
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    async fn reconcile(&self, remote: &AgentSessionId) -> Result<Turn, AgentServerError> {
        let directory = self.remote.as_ref().map(|r| r.directory.as_str());
        let statuses = self.server.status(directory).await?;
        if matches!(
            statuses.get(remote),
            Some(AgentSessionStatus::Busy | AgentSessionStatus::Retry { .. })
        ) {
            return Ok(Turn::Working);
        }
        let ours = self.remote.as_ref().expect("attached").message_id.clone();
        let messages = self
            .server
            .messages(&self.address().expect("attached"))
            .await?;
        if !messages.iter().any(|m| m.message.id().as_str() == ours) {
            return Ok(Turn::PromptMissing);
        }
        let replies: Vec<_> = messages
            .iter()
            .filter_map(|m| m.message.as_assistant())
            .filter(|a| a.parent_id.as_ref().is_some_and(|p| p.as_str() == ours))
            .collect();
        let Some(last) = replies.last() else {
            return Ok(Turn::IdleWithoutReply);
        };
        if last.completed_at.is_none() && last.error.is_none() {
            // Not busy (checked above) yet unfinished: lost with a server restart, if it stays so.
            // (An error, finished or not, ends the turn: it is judged below.)
            return Ok(Turn::Interrupted);
        }
        let outcome = match &last.error {
            Some(error) => Outcome::Failed {
                reason: format!("agent error ({:?}): {}", error.kind, error.message),
                retryable: error.is_retryable(),
            },
            None => Outcome::Completed,
        };
        Ok(Turn::Done(outcome))
    }
}

/// Counts reconciliations in a row that find the turn neither running nor answered.
#[derive(Default)]
struct LostTurn {
    checks: u32,
    since: Option<Instant>,
}

impl LostTurn {
    /// Records one more such check; `true` once it has held for [`LOST_TURN_CHECKS`] checks
    /// and at least [`LOST_TURN_AFTER`].
    fn persists(&mut self) -> bool {
        self.persists_for(LOST_TURN_CHECKS, LOST_TURN_AFTER)
    }

    /// The same with other thresholds.
    fn persists_for(&mut self, checks: u32, after: Duration) -> bool {
        self.checks += 1;
        let since = *self.since.get_or_insert_with(Instant::now);
        self.checks >= checks && since.elapsed() >= after
    }
}

enum Turn {
    Working,
    /// Idle, but the last reply never finished: the turn died with its server.
    Interrupted,
    Done(Outcome),
    IdleWithoutReply,
    PromptMissing,
}
