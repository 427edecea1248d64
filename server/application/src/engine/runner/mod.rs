//! One claimed session, driven to a terminal state: workspace, OpenCode session, prompt, events
//! into the session's log, metrics, diff, and the terminal transition — every write fenced by the
//! claim's lease, so a runner that lost its lease stops writing.
//!
//! Completion is read from the server, not assumed: on every idle status, stream (re)connect and
//! lease renewal the runner reconciles with `status()` and `messages()`; a turn is over when the
//! session is not busy and the last reply to our prompt is complete.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use domain::session::ChangedFileRecord;
use domain::{MetricsDelta, Session, SessionStatus, StopReason, WorkspaceRecord};
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::watch;
use tracing::Instrument;

use super::guard::RunGuard;
use super::{EngineStats, Shared};
use crate::admission::{Permit, DEFAULT_POOL};
use crate::ports::lock::{Lease, LockError, LockKey};
use crate::ports::workspaces::{path_hash, CleanupPolicy, Workspace, WorkspaceRequest};
use crate::ports::{
    AgentEvent, AgentServer, AgentServerError, AgentSessionId, AgentSessionStatus, Aggregate,
    ChangeSet, Claim, CreateSession, EventScope, Message, MessageId, ModelRef, NewEvent,
    PartContent, PromptRequest, QueueLease, QueueOp, RemoteRef, RepositoryError, SessionAddress,
    ToolCallState,
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
/// Most often a session waiting for an admission slot logs its new position.
const AWAITING_SLOT_LOG_EVERY: Duration = Duration::from_secs(1);
/// Retry delays while the lock backend is unreachable (doubling from the first to the second).
const LOCK_RETRY_MIN: Duration = Duration::from_millis(250);
const LOCK_RETRY_MAX: Duration = Duration::from_secs(2);

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

/// Why a run has no workspace.
enum Unprepared {
    Stop(Stop),
    Cancelled,
    /// Permanent: not a repository, an invalid key, a lock wait that timed out.
    Failed(String),
}

/// What the lease keeper knows about the lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LeaseState {
    Held,
    CancelRequested,
    Lost,
}

/// What ends a run's wait before its own work does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Interrupt {
    /// Cancelled by an operator (through this replica or the queue).
    Cancelled,
    /// The lease is gone: another replica owns the session now.
    LeaseLost,
    /// This replica is shutting down.
    Shutdown,
}

/// Resolves when the run must stop waiting — the one place every wait (workspace lock,
/// admission slot, the turn itself) watches the lease, cancellation and shutdown. Changes that
/// call for nothing (a renewed lease, a cleared flag) are waited past. Cancel-safe: it only
/// awaits `watch` changes, so a `select!` may drop it at any point.
async fn interruption(
    lease_state: &mut watch::Receiver<LeaseState>,
    cancel: &mut watch::Receiver<bool>,
    shutdown: &mut watch::Receiver<bool>,
) -> Interrupt {
    loop {
        tokio::select! {
            changed = lease_state.changed() => {
                let state = *lease_state.borrow();
                match state {
                    _ if changed.is_err() => return Interrupt::LeaseLost,
                    LeaseState::Lost => return Interrupt::LeaseLost,
                    LeaseState::CancelRequested => return Interrupt::Cancelled,
                    LeaseState::Held => {}
                }
            }
            changed = cancel.changed() => {
                if changed.is_ok() && *cancel.borrow() {
                    return Interrupt::Cancelled;
                }
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    return Interrupt::Shutdown;
                }
            }
        }
    }
}

/// Renews the run's lease every third of its TTL from the moment of the claim until the run
/// ends (dropped), whatever the runner is doing — creating a worktree or an OpenCode instance
/// can take longer than a lease.
struct LeaseKeeper {
    task: tokio::task::JoinHandle<()>,
    state: watch::Receiver<LeaseState>,
}

impl LeaseKeeper {
    fn start(shared: &Arc<Shared>, lease: QueueLease) -> Self {
        let (tx, state) = watch::channel(LeaseState::Held);
        let queue = shared.deps.queue.clone();
        let ttl = shared.config.lease_ttl;
        let task = tokio::spawn(
            async move {
                let period = ttl / 3;
                let mut last_renewed = Instant::now();
                loop {
                    tokio::time::sleep(period).await;
                    match queue.renew(&lease, ttl).await {
                        Ok(renewal) => {
                            last_renewed = Instant::now();
                            if renewal.cancel_requested {
                                let _ = tx.send(LeaseState::CancelRequested);
                            }
                        }
                        Err(RepositoryError::FenceLost { .. }) => {
                            let _ = tx.send(LeaseState::Lost);
                            return;
                        }
                        Err(error) => {
                            tracing::warn!(%error, "lease renewal failed");
                            if last_renewed.elapsed() >= ttl {
                                let _ = tx.send(LeaseState::Lost);
                                return;
                            }
                        }
                    }
                }
            }
            .in_current_span(),
        );
        Self { task, state }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
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
            Some(remote) => {
                // The turn already runs: it counts in its pool without waiting.
                let pool = self.admission_pool().await;
                self.slot = Some(self.shared.admission.occupy(&pool));
                self.log(
                    "reattached",
                    json!({ "server": remote.server, "remote_session": remote.session,
                            "fence": self.lease.fence }),
                )
                .await?;
                self.remote = Some(remote);
            }
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

    /// Hands the lease back on shutdown (the session keeps running on its server; the next
    /// owner re-attaches): `Shutdown`, or the storage error that prevented it.
    async fn hand_back(&self) -> Stop {
        match self.shared.deps.queue.release(&self.lease).await {
            Ok(()) => Stop::Shutdown,
            Err(error) => error.into(),
        }
    }

    /// What an interruption means for a run that has not dispatched yet.
    async fn unprepared(&self, interrupt: Interrupt) -> Unprepared {
        match interrupt {
            Interrupt::Cancelled => Unprepared::Cancelled,
            Interrupt::LeaseLost => Unprepared::Stop(Stop::LeaseLost),
            Interrupt::Shutdown => Unprepared::Stop(self.hand_back().await),
        }
    }

    fn address(&self) -> Option<SessionAddress> {
        self.remote.as_ref().map(|r| {
            SessionAddress::new(AgentSessionId::new(&r.session), Some(r.directory.clone()))
        })
    }

    async fn prepare_workspace(
        &mut self,
        cancel: &mut watch::Receiver<bool>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Workspace, Unprepared> {
        let repository = PathBuf::from(self.session.workspace().as_str());
        // Every replica must derive the same key: a stable hash, not std's.
        let key = LockKey::new(format!("workspace:{:016x}", path_hash(&repository)))
            .map_err(|e| Unprepared::Failed(format!("workspace lock key: {e}")))?;
        // Serialises worktree creation in one repository across replicas.
        let waiting = Instant::now();
        let lease = self.workspace_lock(&key, cancel, shutdown).await?;
        crate::metrics::record_lock_wait(waiting.elapsed());
        let prepared = self
            .shared
            .deps
            .workspaces
            .prepare(&WorkspaceRequest {
                repository,
                session: self.session.id(),
                base: None,
            })
            .await;
        if let Err(error) = self.shared.deps.lock.release(&lease).await {
            tracing::warn!(%error, "workspace lock release failed; it expires on its own");
        }
        prepared.map_err(|e| Unprepared::Failed(format!("workspace: {e}")))
    }

    /// The workspace lock. While the lock backend (Redis) is unreachable this session's dispatch
    /// pauses: the runner keeps its queue lease (renewed as usual), retries with a capped backoff
    /// and goes on once the backend answers — nothing is failed for the outage. Cancellation, a
    /// lost lease and shutdown (which hands the lease back) still end the wait.
    async fn workspace_lock(
        &mut self,
        key: &LockKey,
        cancel: &mut watch::Receiver<bool>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Lease, Unprepared> {
        let mut pause = LOCK_RETRY_MIN;
        let mut paused_since: Option<Instant> = None;
        loop {
            let error = match self
                .shared
                .deps
                .lock
                .acquire(key, Duration::from_secs(30), Duration::from_secs(60))
                .await
            {
                Ok(lease) => {
                    if let Some(since) = paused_since {
                        tracing::info!(paused = ?since.elapsed(), "lock backend back; dispatch resumes");
                    }
                    return Ok(lease);
                }
                Err(LockError::Unavailable(error)) => error,
                Err(other) => return Err(Unprepared::Failed(format!("workspace lock: {other}"))),
            };
            if paused_since.is_none() {
                paused_since = Some(Instant::now());
                tracing::warn!(%error, "lock backend unreachable; dispatch paused until it answers");
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                interrupt = interruption(&mut self.lease_state, cancel, shutdown) => {
                    return Err(self.unprepared(interrupt).await);
                }
            }
            pause = (pause * 2).min(LOCK_RETRY_MAX);
        }
    }

    /// Creates the OpenCode session in the worktree, records where it runs (`queued ->
    /// running`, fenced), and sends the prompt under our own message id.
    async fn dispatch(&mut self) -> Result<(), DispatchError> {
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
            .event(NewEvent::new(
                Aggregate::Session,
                self.session.id().as_uuid(),
                "dispatched",
                json!({
                    "server": remote.server,
                    "remote_session": remote.session,
                    "directory": directory,
                    "branch": workspace.branch,
                    "base_commit": workspace.base_commit,
                    "attempt": self.session.attempt(),
                    "fence": self.lease.fence,
                    "recovered": self.claim.recovered,
                }),
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
                Ok(agent) => agent.map(|a| ModelRef {
                    provider_id: a.model().provider().to_owned(),
                    model_id: a.model().model().to_owned(),
                }),
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
        self.model().await.map_or_else(
            || DEFAULT_POOL.to_owned(),
            |m| format!("{}/{}", m.provider_id, m.model_id),
        )
    }

    /// Waits for a slot of the session's admission pool, logging `awaiting_slot` (pool, position,
    /// limit) as the position changes — at most every [`AWAITING_SLOT_LOG_EVERY`] — and
    /// `slot_granted` once admitted after a wait. The session stays `queued` meanwhile, its lease
    /// renewed; cancellation, a lost lease and shutdown (lease handed back) end the wait.
    async fn await_slot(
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
                    self.log(
                        "slot_granted",
                        json!({ "pool": pool, "waited_ms": waited_ms }),
                    )
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
                    self.log(
                        "awaiting_slot",
                        json!({ "pool": pool, "position": status.position,
                                "limit": status.limit, "in_use": status.in_use }),
                    )
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

    async fn send_prompt(&self) -> Result<(), AgentServerError> {
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

    /// Follows the OpenCode session until its turn ends, the deadline passes, or someone cancels.
    async fn follow(
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
                self.log("agent_stream_resynced", json!({})).await?;
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
                self.log(
                    "agent_retry",
                    json!({ "attempt": attempt, "message": message }),
                )
                .await?;
                Ok(false)
            }
            AgentEvent::SessionError {
                session_id: Some(session_id),
                error,
            } if &session_id == remote => {
                self.log(
                    "agent_error",
                    json!({ "error": error.map(|e| json!({ "kind": format!("{:?}", e.kind), "message": e.message })) }),
                )
                .await?;
                Ok(true)
            }
            AgentEvent::MessageUpdated {
                session_id,
                message: Message::Assistant(message),
            } if &session_id == remote && message.completed_at.is_some() => {
                if self.logged.insert(message.id.as_str().to_owned()) {
                    self.log(
                        "agent_message",
                        json!({
                            "message_id": message.id.as_str(),
                            "finish": message.finish,
                            "tokens": message.tokens,
                            "cost": message.cost,
                            "error": message.error.as_ref().map(|e| e.message.clone()),
                        }),
                    )
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
                            ToolCallState::Completed { .. } => "completed",
                            _ => "error",
                        };
                        self.log("tool", json!({ "tool": tool, "status": status }))
                            .await?;
                    }
                }
                Ok(false)
            }
            AgentEvent::PermissionAsked(request) if &request.session_id == remote => {
                self.log(
                    "permission_asked",
                    json!({ "request_id": request.id, "permission": request.permission,
                            "patterns": request.patterns }),
                )
                .await?;
                Ok(false)
            }
            AgentEvent::QuestionAsked(request) if &request.session_id == remote => {
                self.log(
                    "question_asked",
                    json!({ "request_id": request.id,
                            "questions": request.questions.iter().map(|q| q.question.clone()).collect::<Vec<_>>() }),
                )
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

    /// The terminal commit: metrics, transition(s), workspace summary, queue row removed or
    /// re-queued for a retry — one fenced commit.
    async fn finish(&mut self, outcome: Outcome) -> Result<(), Stop> {
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
        let mut workspace_event = None;
        if let Some(workspace) = &self.workspace {
            match self.shared.deps.workspaces.diff(workspace).await {
                Ok(diff) => {
                    if let Some(delta) = delta.as_mut() {
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
                    workspace_event = Some(WorkspaceRecord {
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
                    });
                }
                Err(error) => tracing::warn!(%error, "workspace diff failed"),
            }
        }

        let now = Utc::now();
        let mut changes = ChangeSet::new();
        if let Some(delta) = delta {
            let event = self.session.record_metrics(delta, now)?;
            changes.event(&event);
        }
        if let Some(record) = workspace_event {
            changes.event(NewEvent::new(
                Aggregate::Session,
                self.session.id().as_uuid(),
                WorkspaceRecord::KIND,
                // Plain data: serialising it cannot fail.
                serde_json::to_value(record).expect("workspace records serialise"),
                now,
            ));
        }
        if let Some(summary) = summary {
            // What the agent said it did: dependents of a task read it (untrusted text).
            changes.event(NewEvent::new(
                Aggregate::Session,
                self.session.id().as_uuid(),
                "result",
                json!({ "summary": summary }),
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
                    .unwrap_or_else(|| json!({ "code": reason.code(), "reason": reason, "message": reason.to_string() }));
                changes.event(NewEvent::new(
                    Aggregate::Session,
                    self.session.id().as_uuid(),
                    "guardrail_stopped",
                    report,
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

    /// A fenced append to the session's event log.
    async fn log(&self, kind: &str, payload: serde_json::Value) -> Result<(), Stop> {
        let mut changes = ChangeSet::new();
        changes.guard(&self.lease).event(NewEvent::new(
            Aggregate::Session,
            self.session.id().as_uuid(),
            kind,
            payload,
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

/// `now + delay` in wall-clock time.
fn after(now: chrono::DateTime<Utc>, delay: Duration) -> chrono::DateTime<Utc> {
    now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX)
}

enum Turn {
    Working,
    /// Idle, but the last reply never finished: the turn died with its server.
    Interrupted,
    Done(Outcome),
    IdleWithoutReply,
    PromptMissing,
}

enum DispatchError {
    Stop(Stop),
    Server(AgentServerError),
}
