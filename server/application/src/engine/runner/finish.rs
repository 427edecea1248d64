//! Ending a run: the attempt's usage and closing text read from the server, the workspace's diff
//! and snapshot, and the terminal transition (or retry) committed in one fenced batch together
//! with the agent's track record; then the worktree's server instance and worktree let go.

use chrono::Utc;
use domain::event_log::{GuardrailStopped, SessionResult};
use domain::session::ChangedFileRecord;
use domain::{MetricsDelta, SessionStatus, WorkspaceRecord};

use super::{after, Outcome, Run, Stop};
use crate::ports::workspaces::CleanupPolicy;
use crate::ports::{ChangeSet, NewEvent, PartContent, QueueOp, RepositoryError};

impl Run<'_> {
    /// Consumption of this attempt, read from the server (every reply to our prompt), and the
    /// agent's closing text (the text parts of its last reply), shortened to [`SUMMARY_CHARS`].
    async fn read_turn(&self) -> (MetricsDelta, Option<String>) {
        let mut delta = MetricsDelta {
            duration_ms: u64::try_from(self.attempt_started.elapsed().as_millis())
                .unwrap_or(u64::MAX),
            ..MetricsDelta::default()
        };
        let (Some(address), Some(remote)) = (self.address(), self.remote.as_ref()) else {
            return (delta, None);
        };
        let mut summary = None;
        match self.server.messages(&address).await {
            Ok(messages) => {
                let mut cost = 0.0f64;
                let replies = messages.iter().filter(|m| {
                    m.message.as_assistant().is_some_and(|a| {
                        a.parent_id
                            .as_ref()
                            .is_some_and(|p| p.as_str() == remote.message_id)
                    })
                });
                if let Some(last) = replies.clone().next_back() {
                    let text: Vec<&str> = last
                        .parts
                        .iter()
                        .filter_map(|p| match &p.content {
                            PartContent::Text { text } => Some(text.trim()),
                            _ => None,
                        })
                        .filter(|t| !t.is_empty())
                        .collect();
                    if !text.is_empty() {
                        summary = Some(shorten(&text.join("\n"), SUMMARY_CHARS));
                    }
                }
                for reply in replies.filter_map(|m| m.message.as_assistant()) {
                    delta.tokens_input += reply.tokens.input;
                    delta.tokens_output += reply.tokens.output;
                    delta.tokens_reasoning += reply.tokens.reasoning;
                    delta.tokens_cache_read += reply.tokens.cache_read;
                    delta.tokens_cache_write += reply.tokens.cache_write;
                    cost += reply.cost.max(0.0);
                }
                delta.cost_micro_usd = (cost * 1_000_000.0).round() as u64;
            }
            Err(error) => tracing::warn!(%error, "cannot read the replies' usage"),
        }
        (delta, summary)
    }

    /// The workspace's record for the log — its branch, diff (bounded) and snapshot commit — and
    /// the count of changed files into the attempt's metrics; `None` without a workspace or diff.
    async fn workspace_record(&self, delta: Option<&mut MetricsDelta>) -> Option<WorkspaceRecord> {
        let workspace = self.workspace.as_ref()?;
        match self.shared.deps.workspaces.diff(workspace).await {
            Ok(diff) => {
                if let Some(delta) = delta {
                    delta.files_changed = u32::try_from(diff.files.len()).unwrap_or(u32::MAX);
                }
                let snapshot = self
                    .shared
                    .deps
                    .workspaces
                    .snapshot(
                        workspace,
                        &format!(
                            "oio: session {} attempt {}",
                            self.session.id(),
                            self.session.attempt()
                        ),
                    )
                    .await
                    .unwrap_or_else(|error| {
                        tracing::warn!(%error, "snapshot failed");
                        None
                    });
                Some(WorkspaceRecord {
                    branch: workspace.branch.clone(),
                    path: workspace.path.display().to_string(),
                    base_commit: workspace.base_commit.clone(),
                    snapshot,
                    files: diff
                        .files
                        .iter()
                        .map(|f| ChangedFileRecord {
                            path: f.path.clone(),
                            additions: f.additions,
                            deletions: f.deletions,
                        })
                        .collect(),
                    // The unified diff itself, bounded: the dashboard shows it (escaped) even
                    // after the worktree is cleaned up.
                    patch: shorten_bytes(&diff.patch, PATCH_BYTES).to_owned(),
                    patch_truncated: diff.patch.len() > PATCH_BYTES,
                })
            }
            Err(error) => {
                tracing::warn!(%error, "workspace diff failed");
                None
            }
        }
    }

    /// The terminal commit: metrics, transition(s), workspace summary, queue row removed or
    /// re-queued for a retry — one fenced commit.
    pub(super) async fn finish(&mut self, outcome: Outcome) -> Result<(), Stop> {
        let running = matches!(
            self.session.status(),
            SessionStatus::Running | SessionStatus::Paused
        );
        let (mut delta, summary) = if running {
            let (delta, summary) = self.read_turn().await;
            (Some(delta), summary)
        } else {
            (None, None)
        };
        let workspace_event = self.workspace_record(delta.as_mut()).await;

        let now = Utc::now();
        let mut changes = ChangeSet::new();
        if let Some(delta) = delta {
            let event = self.session.record_metrics(delta, now)?;
            changes.event(&event);
        }
        if let Some(record) = workspace_event {
            changes.event(NewEvent::session_log(
                self.session.id(),
                &record.into(),
                now,
            ));
        }
        if let Some(summary) = summary {
            // What the agent said it did: dependents of a task read it (untrusted text).
            changes.event(NewEvent::session_log(
                self.session.id(),
                &SessionResult { summary }.into(),
                now,
            ));
        }
        let mut requeue_after = None;
        let to = match outcome {
            Outcome::Stopped(reason) => {
                let report = self
                    .guard
                    .as_ref()
                    .map(|guard| guard.report(&reason))
                    .unwrap_or_else(|| GuardrailStopped::new(&reason));
                changes.event(NewEvent::session_log(
                    self.session.id(),
                    &report.into(),
                    now,
                ));
                crate::metrics::record_guardrail_stop(reason.code());
                changes.event(&self.session.stop(reason, now)?);
                "failed"
            }
            Outcome::Completed => {
                changes.event(&self.session.complete(now)?);
                "completed"
            }
            Outcome::Cancelled => {
                changes.event(
                    &self
                        .session
                        .cancel(Some("cancelled on request".into()), now)?,
                );
                "cancelled"
            }
            Outcome::Failed { reason, retryable } => {
                changes.event(&self.session.fail(reason, now)?);
                if retryable && self.session.can_retry() {
                    requeue_after = Some(self.shared.config.backoff(self.session.attempt()));
                    changes.event(&self.session.retry(now)?);
                }
                "failed"
            }
            Outcome::TimedOut => {
                if running {
                    changes.event(&self.session.time_out(now)?);
                } else {
                    changes.event(
                        &self
                            .session
                            .fail("timed out before it started".into(), now)?,
                    );
                }
                if self.session.can_retry() {
                    requeue_after = Some(self.shared.config.backoff(self.session.attempt()));
                    changes.event(&self.session.retry(now)?);
                }
                "timed_out"
            }
        };
        changes.update_session(&self.session);
        match requeue_after {
            Some(delay) => changes.queue(QueueOp::Requeue {
                lease: self.lease.clone(),
                available_at: after(now, delay),
            }),
            None => changes.queue(QueueOp::Remove {
                lease: self.lease.clone(),
            }),
        };
        self.commit_with_track_record(changes, requeue_after.is_none(), now)
            .await?;
        match requeue_after {
            Some(delay) => tracing::info!(
                to,
                then = "queued",
                attempt = self.session.attempt(),
                backoff_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "attempt ended; retrying"
            ),
            None => tracing::info!(to = %self.session.status(), "session finished"),
        }

        // The worktree's server instance (OpenCode: file watcher, project state — about a second
        // of CPU to create and tens of MB to keep) is not needed between attempts or after the
        // last one; a long-lived server would otherwise grow by one per session.
        if let Some(directory) = self.remote.as_ref().map(|r| r.directory.clone()) {
            if let Err(error) = self.server.dispose_directory(&directory).await {
                tracing::warn!(%error, "disposing the worktree's server instance failed");
            }
        }
        if requeue_after.is_none() && self.shared.config.cleanup != CleanupPolicy::Keep {
            if let Some(workspace) = &self.workspace {
                if let Err(error) = self
                    .shared
                    .deps
                    .workspaces
                    .remove(workspace, self.shared.config.cleanup)
                    .await
                {
                    tracing::warn!(%error, "workspace cleanup failed");
                }
            }
        }
        Ok(())
    }

    /// The terminal commit, plus — when the session is finished for good and names an agent —
    /// the agent's track record, in the same transaction. Two sessions of one agent finishing
    /// together conflict on the agent's version: the loser re-reads the agent and tries again.
    async fn commit_with_track_record(
        &mut self,
        changes: ChangeSet,
        finished: bool,
        now: chrono::DateTime<Utc>,
    ) -> Result<(), Stop> {
        let outcome = self.session.outcome().filter(|_| finished);
        let Some((outcome, name)) = outcome.zip(self.session.agent().cloned()) else {
            return self.commit(changes).await;
        };
        // The capabilities the session's task asked for: the record is kept per capability too.
        let capabilities = match self.session.parent_task() {
            Some(task) => match self.shared.deps.tasks.get(task).await {
                Ok(task) => task
                    .map(|t| t.required_capabilities().clone())
                    .unwrap_or_default(),
                Err(error) => {
                    tracing::warn!(%error, "task unreadable; the track record skips capabilities");
                    Default::default()
                }
            },
            None => Default::default(),
        };
        for _ in 0..8 {
            let mut batch = changes.clone();
            let agent = match self.shared.deps.agents.get_by_name(&name).await? {
                Some(mut agent) => {
                    agent.record_outcome_for(outcome, self.session.metrics(), &capabilities, now);
                    batch.update_agent(&agent);
                    Some(agent)
                }
                // Not registered: sessions may name any OpenCode agent.
                None => None,
            };
            match self.commit(batch).await {
                Err(Stop::Storage(RepositoryError::Conflict {
                    key: crate::ports::EntityKey::Agent(_),
                    ..
                })) if agent.is_some() => continue,
                other => return other,
            }
        }
        Err(Stop::Storage(RepositoryError::Unavailable(format!(
            "agent {name}'s track record kept changing; gave up recording this session"
        ))))
    }
}

/// Most bytes of a session's unified diff kept in its log.
const PATCH_BYTES: usize = 256 * 1024;

/// `text` cut to at most `max` bytes, on a character boundary.
fn shorten_bytes(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Longest closing text kept for a session's result.
const SUMMARY_CHARS: usize = 2_000;

/// `text` cut to at most `max` characters (on a character boundary), marked when cut.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}
