//! One claimed session, driven to a terminal state: workspace, OpenCode session, prompt, events
//! into the session's log, metrics, diff, and the terminal transition — every write fenced by the
//! claim's lease, so a runner that lost its lease stops writing.
//!
//! The run is a sequence of phases, one module each: [`lease`] (kept for the whole run, and what
//! interrupts its waits), [`workspace`], [`dispatch`] (admission slot, then the turn started or
//! re-attached), [`follow`] (the turn's events and reconciliation) and [`finish`] (the terminal
//! commit). This module holds the shared [`Run`] context, the sequence itself, and the fenced
//! writes every phase makes.

mod dispatch;
mod finish;
mod follow;
mod lease;
mod workspace;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use domain::{Session, SessionLogEvent, StopReason};
use tokio::sync::watch;
use tracing::Instrument;

use super::guardrails::RunGuard;
use super::{EngineStats, Shared};
use crate::admission::Permit;
use crate::ports::workspaces::Workspace;
use crate::ports::{
    AgentServer, AgentServerError, AgentSessionId, ChangeSet, Claim, NewEvent, QueueLease, QueueOp,
    RemoteRef, RepositoryError, SessionAddress,
};
use dispatch::DispatchError;
use lease::{LeaseKeeper, LeaseState};

/// How a run ended.
#[derive(Debug)]
enum Outcome {
    Completed,
    Failed {
        reason: String,
        retryable: bool,
    },
    TimedOut,
    Cancelled,
    /// A guardrail (budget or runaway guard) stopped it: failed for good, not retried.
    Stopped(StopReason),
}

/// Why a run stopped without a terminal transition.
#[derive(Debug, thiserror::Error)]
enum Stop {
    /// Another replica holds the session now (or it is gone): write nothing more.
    #[error("lease lost")]
    LeaseLost,
    /// This replica is shutting down: the lease was handed back.
    #[error("shutting down")]
    Shutdown,
    #[error(transparent)]
    Storage(RepositoryError),
    #[error("{0}")]
    Domain(#[from] domain::SessionError),
}

impl From<RepositoryError> for Stop {
    fn from(error: RepositoryError) -> Self {
        match error {
            RepositoryError::FenceLost { .. } => Stop::LeaseLost,
            other => Stop::Storage(other),
        }
    }
}

/// Why a run got no workspace or no admission slot, so never dispatched.
enum Unprepared {
    Stop(Stop),
    Cancelled,
    /// Permanent: not a repository, an invalid key, a lock wait that timed out.
    Failed(String),
}

pub(super) async fn run(
    shared: &Arc<Shared>,
    claim: Claim,
    cancel: watch::Receiver<bool>,
    shutdown: watch::Receiver<bool>,
) {
    let span = tracing::info_span!(
        "session_run",
        session_id = %claim.lease.session,
        fence = claim.lease.fence,
        server = %claim.server,
        recovered = claim.recovered,
    );
    async move {
        let claimed_at = Instant::now();
        // Queued (or out of backoff) -> claimed; a recovery's wait is the dead replica's lease.
        if !claim.recovered {
            crate::metrics::record_dispatch_latency(
                (Utc::now() - claim.available_at)
                    .to_std()
                    .unwrap_or(Duration::ZERO),
            );
        }
        let session = match shared.deps.sessions.get(claim.lease.session).await {
            Ok(Some(session)) => session,
            Ok(None) => {
                tracing::error!("claimed a queue entry whose session does not exist");
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot load the claimed session; its lease will lapse");
                return;
            }
        };
        let Some(server) = shared.deps.servers.get(&claim.server) else {
            tracing::warn!("claimed for an unknown server; handing the lease back");
            let _ = shared.deps.queue.release(&claim.lease).await;
            return;
        };
        let keeper = LeaseKeeper::start(shared, claim.lease.clone());
        let mut run = Run {
            shared,
            lease_state: keeper.state.clone(),
            lease: claim.lease.clone(),
            claim,
            session,
            server,
            workspace: None,
            remote: None,
            logged: HashSet::new(),
            attempt_started: claimed_at,
            slot: None,
            guard: None,
            stopped: None,
        };
        match run.drive(cancel, shutdown).await {
            Ok(()) => EngineStats::record(
                &shared.stats.run_ms,
                claimed_at.elapsed().as_secs_f64() * 1000.0,
            ),
            Err(Stop::Shutdown) => tracing::info!("lease handed back on shutdown"),
            Err(Stop::LeaseLost) => {
                tracing::warn!("lease lost: another replica owns the session now; stopping")
            }
            Err(error) => tracing::error!(%error, "run stopped; the lease will lapse and the session be recovered"),
        }
        drop(keeper);
    }
    .instrument(span)
    .await
}

struct Run<'a> {
    shared: &'a Shared,
    lease_state: watch::Receiver<LeaseState>,
    lease: QueueLease,
    claim: Claim,
    session: Session,
    server: Arc<dyn AgentServer>,
    workspace: Option<Workspace>,
    remote: Option<RemoteRef>,
    /// Message and part ids already written to the event log.
    logged: HashSet<String>,
    attempt_started: Instant,
    /// The admission slot of this run's turn; dropped (freed) when the run ends.
    slot: Option<Permit>,
    /// Budgets and runaway limits, from the moment the run follows its turn.
    guard: Option<RunGuard>,
    /// Set when a guardrail trips on an event; `follow` then ends the turn.
    stopped: Option<StopReason>,
}

impl Run<'_> {
    async fn drive(
        &mut self,
        mut cancel: watch::Receiver<bool>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), Stop> {
        let status = self.session.status();
        if status.is_terminal() {
            // Cannot normally happen (terminal commits remove the row); heal the queue.
            let mut changes = ChangeSet::new();
            changes.queue(QueueOp::Remove {
                lease: self.lease.clone(),
            });
            self.shared.deps.unit_of_work.commit(changes).await?;
            return Ok(());
        }
        if self.claim.cancel_requested || *cancel.borrow() {
            return self.finish(Outcome::Cancelled).await;
        }

        let workspace = match self.prepare_workspace(&mut cancel, &mut shutdown).await {
            Ok(workspace) => workspace,
            Err(Unprepared::Stop(stop)) => return Err(stop),
            Err(Unprepared::Cancelled) => return self.finish(Outcome::Cancelled).await,
            Err(Unprepared::Failed(reason)) => {
                return self
                    .finish(Outcome::Failed {
                        reason,
                        retryable: false,
                    })
                    .await
            }
        };
        self.workspace = Some(workspace);

        match self.claim.remote.clone() {
            Some(remote) => self.reattach(remote).await?,
            None => {
                match self.await_slot(&mut cancel, &mut shutdown).await {
                    Ok(permit) => self.slot = Some(permit),
                    Err(Unprepared::Stop(stop)) => return Err(stop),
                    Err(Unprepared::Cancelled) => return self.finish(Outcome::Cancelled).await,
                    Err(Unprepared::Failed(reason)) => {
                        return self
                            .finish(Outcome::Failed {
                                reason,
                                retryable: true,
                            })
                            .await
                    }
                }
                if let Err(error) = self.dispatch().await {
                    return match error {
                        DispatchError::Stop(stop) => Err(stop),
                        DispatchError::Server(error) => {
                            if let (AgentServerError::RateLimited { .. }, Some(slot)) =
                                (&error, &self.slot)
                            {
                                slot.rate_limited();
                            }
                            self.finish(Outcome::Failed {
                                reason: format!(
                                    "dispatch to {} failed: {error}",
                                    self.claim.server
                                ),
                                retryable: error.is_transient(),
                            })
                            .await
                        }
                    };
                }
            }
        }

        let outcome = self.follow(&mut cancel, &mut shutdown).await?;
        if let (Outcome::Completed, Some(slot)) = (&outcome, &self.slot) {
            slot.succeeded();
        }
        // A failed turn may still run on the server (a lost turn that was only late): stop it, so
        // a retry never works next to it.
        if matches!(
            outcome,
            Outcome::Cancelled | Outcome::TimedOut | Outcome::Failed { .. } | Outcome::Stopped(_)
        ) {
            if let Some(address) = self.address() {
                if let Err(error) = self.server.abort(&address).await {
                    tracing::warn!(%error, "abort failed; the OpenCode session may still run");
                }
            }
        }
        self.finish(outcome).await
    }

    /// Where the run's turn runs, once dispatched or re-attached.
    fn address(&self) -> Option<SessionAddress> {
        self.remote.as_ref().map(|r| {
            SessionAddress::new(AgentSessionId::new(&r.session), Some(r.directory.clone()))
        })
    }

    /// A fenced append to the session's event log.
    async fn log(&self, event: impl Into<SessionLogEvent>) -> Result<(), Stop> {
        let mut changes = ChangeSet::new();
        changes.guard(&self.lease).event(NewEvent::session_log(
            self.session.id(),
            &event.into(),
            Utc::now(),
        ));
        self.shared.deps.unit_of_work.commit(changes).await?;
        Ok(())
    }

    /// Commits a batch that carries a fenced queue op (Attach, Requeue or Remove), and keeps the
    /// session's version current.
    async fn commit(&mut self, changes: ChangeSet) -> Result<(), Stop> {
        let facts = crate::metrics::CommittedFacts::of(changes.events());
        let committed = self.shared.deps.unit_of_work.commit(changes).await?;
        facts.record();
        if let Some(version) =
            committed.version_of(crate::ports::EntityKey::Session(self.session.id()))
        {
            self.session.set_version(version);
        }
        Ok(())
    }
}

/// `now + delay` in wall-clock time.
fn after(now: chrono::DateTime<Utc>, delay: Duration) -> chrono::DateTime<Utc> {
    now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX)
}
