//! The session engine of one replica: a dispatcher that claims queued sessions from the durable
//! queue when servers have room, and one runner per claimed session that drives it on its
//! OpenCode server to a terminal state (see [`runner`]).
//!
//! The dispatcher sleeps until something can have changed: a queue signal (another replica's
//! commit, over LISTEN/NOTIFY; or this process's), a local runner finishing, the next known
//! deadline in the queue (a retry's backoff ending, a lease lapsing), or — as a safety net for
//! lost notifications and servers coming back — a few seconds passing.

mod guardrails;
mod runner;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use domain::SessionId;
use tokio::sync::{broadcast, watch, Notify};
use tokio::task::JoinHandle;

use crate::admission::{Admission, AdmissionConfig};
use crate::guardrails::{GuardrailConfig, Guardrails};
use crate::ports::lock::DistributedLock;
use crate::ports::workspaces::{CleanupPolicy, Workspaces};
use crate::ports::{
    AgentRepository, AgentServers, ClaimRequest, DispatchQueue, QueueSignal, SessionRepository,
    TaskRepository, UnitOfWork,
};
use crate::settings::EngineSettings;

/// The longest the dispatcher sleeps without a reason (see the module docs).
const SAFETY_RECHECK: Duration = Duration::from_secs(2);

/// What the engine works with: driven ports only.
#[derive(Clone)]
pub struct EngineDeps {
    pub sessions: Arc<dyn SessionRepository>,
    /// Agents' track records are updated when their sessions finish.
    pub agents: Arc<dyn AgentRepository>,
    /// A session working on a task counts for the agent under the task's capabilities.
    pub tasks: Arc<dyn TaskRepository>,
    pub unit_of_work: Arc<dyn UnitOfWork>,
    pub queue: Arc<dyn DispatchQueue>,
    pub servers: Arc<dyn AgentServers>,
    pub workspaces: Arc<dyn Workspaces>,
    pub lock: Arc<dyn DistributedLock>,
}

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub replica_id: String,
    pub lease_ttl: Duration,
    pub session_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub max_running: usize,
    pub cleanup: CleanupPolicy,
}

impl EngineConfig {
    pub fn from_settings(settings: &EngineSettings, cleanup: CleanupPolicy) -> Self {
        Self {
            replica_id: settings.replica_id(),
            lease_ttl: Duration::from_millis(settings.lease_ttl_ms),
            session_timeout: Duration::from_secs(settings.session_timeout_secs),
            backoff_initial: Duration::from_millis(settings.retry_backoff_initial_ms),
            backoff_max: Duration::from_millis(settings.retry_backoff_max_ms),
            max_running: settings.max_running as usize,
            cleanup,
        }
    }

    /// The delay before attempt `attempt + 1` after `attempt` failed ones: exponential with
    /// jitter (backon's), capped.
    pub fn backoff(&self, failed_attempts: u32) -> Duration {
        use backon::BackoffBuilder;
        backon::ExponentialBuilder::default()
            .with_min_delay(self.backoff_initial)
            .with_max_delay(self.backoff_max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(failed_attempts.saturating_sub(1) as usize)
            .unwrap_or(self.backoff_max)
    }
}

/// Figures the engine measured, for operators and the benchmark.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Milliseconds from a session becoming claimable to its prompt being sent, per dispatch.
    pub dispatch_latency_ms: Mutex<Vec<f64>>,
    /// Milliseconds from claim to the terminal commit, per finished session.
    pub run_ms: Mutex<Vec<f64>>,
}

impl EngineStats {
    fn record(list: &Mutex<Vec<f64>>, value: f64) {
        let mut list = list.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: the newest 100 000 figures.
        if list.len() >= 100_000 {
            list.remove(0);
        }
        list.push(value);
    }
}

struct RunnerSlot {
    /// The fence of the claim this runner holds: a newer claim of the same session by this
    /// replica (its own lease had lapsed) replaces the slot, and the old runner must not remove it.
    fence: u64,
    cancel: watch::Sender<bool>,
    task: Option<tokio::task::AbortHandle>,
}

struct Shared {
    deps: EngineDeps,
    config: EngineConfig,
    /// Per provider/model slots: a claimed session waits here before its prompt is sent.
    admission: Admission,
    /// Budgets and runaway limits every run is held to.
    guardrails: Guardrails,
    stats: Arc<EngineStats>,
    /// Per running session: a sender that asks its runner to cancel, and the runner's task.
    running: Mutex<HashMap<SessionId, RunnerSlot>>,
    /// Rung when a runner ends, so the dispatcher can use the freed place.
    finished: Notify,
}

impl Shared {
    /// The runner map. A panic while holding it cannot leave it half-updated (every change is one
    /// map call), so a poisoned lock is used as is.
    fn runners(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, RunnerSlot>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn running_count(&self) -> usize {
        self.runners().len()
    }
}

/// A started engine. `stop` drains it gracefully; dropping it stops dispatching at once (the
/// runners' leases then lapse and another replica recovers their sessions).
pub struct Engine {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    dispatcher: Option<JoinHandle<()>>,
}

impl Engine {
    /// An engine whose admission pools have the default bounds (see [`AdmissionConfig`]).
    pub fn start(deps: EngineDeps, config: EngineConfig) -> Self {
        Self::start_with_admission(deps, config, Admission::new(AdmissionConfig::default()))
    }

    /// An engine that admits turns through `admission` (shared with whoever reports on it).
    pub fn start_with_admission(
        deps: EngineDeps,
        config: EngineConfig,
        admission: Admission,
    ) -> Self {
        Self::start_with(deps, config, admission, GuardrailConfig::default())
    }

    /// An engine with its admission pools and guardrails (budgets, runaway limits) given.
    pub fn start_with(
        deps: EngineDeps,
        config: EngineConfig,
        admission: Admission,
        guardrails: GuardrailConfig,
    ) -> Self {
        let (shutdown, shutdown_rx) = watch::channel(false);
        let guardrails = Guardrails::new(guardrails, deps.sessions.clone(), deps.tasks.clone());
        let shared = Arc::new(Shared {
            deps,
            config,
            admission,
            guardrails,
            stats: Arc::new(EngineStats::default()),
            running: Mutex::new(HashMap::new()),
            finished: Notify::new(),
        });
        tracing::info!(replica = %shared.config.replica_id, "session engine started");
        let dispatcher = tokio::spawn(dispatch_loop(shared.clone(), shutdown_rx));
        Self {
            shared,
            shutdown,
            dispatcher: Some(dispatcher),
        }
    }

    pub fn replica_id(&self) -> &str {
        &self.shared.config.replica_id
    }

    pub fn stats(&self) -> Arc<EngineStats> {
        self.shared.stats.clone()
    }

    /// The admission pools this engine's sessions wait in.
    pub fn admission(&self) -> &Admission {
        &self.shared.admission
    }

    /// Sessions this replica runs now.
    pub fn running(&self) -> usize {
        self.shared.running_count()
    }

    /// Stops claiming; every runner gives its lease back (the session keeps running on its
    /// OpenCode server and the next owner re-attaches). Waits up to `grace` for runners to leave.
    pub async fn stop(mut self, grace: Duration) {
        let _ = self.shutdown.send(true);
        if let Some(dispatcher) = self.dispatcher.take() {
            let _ = dispatcher.await;
        }
        let deadline = Instant::now() + grace;
        while self.shared.running_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::info!(replica = %self.shared.config.replica_id, "session engine stopped");
    }

    /// Simulates a crash (`kill -9` of this replica's engine): see the `Drop` impl.
    pub fn kill(self) {}
}

/// Dropping an engine is a crash as far as the queue is concerned: dispatcher and runners stop
/// where they are, nothing is handed back, and the leases lapse for another replica to recover.
/// Use [`Engine::stop`] for an orderly exit.
impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(dispatcher) = self.dispatcher.take() {
            dispatcher.abort();
        }
        for (_, slot) in self.shared.runners().drain() {
            if let Some(task) = slot.task {
                task.abort();
            }
        }
    }
}

async fn dispatch_loop(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut signals = shared.deps.queue.signals();
    loop {
        if *shutdown.borrow() {
            return;
        }
        claim_while_possible(&shared, &shutdown).await;

        let wait = match shared.deps.queue.next_due().await {
            Ok(Some(due)) => (due - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(SAFETY_RECHECK),
            Ok(None) => SAFETY_RECHECK,
            Err(error) => {
                tracing::warn!(%error, "queue unavailable; dispatch paused");
                SAFETY_RECHECK
            }
        };
        tokio::select! {
            signal = signals.recv() => match signal {
                Ok(QueueSignal::Cancel(id)) => forward_cancel(&shared, id),
                Ok(QueueSignal::Changed) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    signals = shared.deps.queue.signals();
                }
            },
            () = shared.finished.notified() => {}
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
}

fn forward_cancel(shared: &Shared, id: SessionId) {
    if let Some(cancel) = shared.runners().get(&id) {
        let _ = cancel.cancel.send(true);
    }
}

async fn claim_while_possible(shared: &Arc<Shared>, shutdown: &watch::Receiver<bool>) {
    while shared.running_count() < shared.config.max_running && !*shutdown.borrow() {
        let servers = shared.deps.servers.available();
        if servers.is_empty() {
            return;
        }
        let request = ClaimRequest {
            owner: shared.config.replica_id.clone(),
            lease_ttl: shared.config.lease_ttl,
            servers,
        };
        let claim = match shared.deps.queue.claim(&request).await {
            Ok(Some(claim)) => claim,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "claim failed");
                return;
            }
        };
        let id = claim.lease.session;
        let fence = claim.lease.fence;
        let (cancel, cancel_rx) = watch::channel(claim.cancel_requested);
        let replaced = shared.runners().insert(
            id,
            RunnerSlot {
                fence,
                cancel,
                task: None,
            },
        );
        if let Some(old) = replaced.and_then(|slot| slot.task) {
            // Its lease is gone (it would stop at its next fenced write); stop it now.
            old.abort();
        }
        let task = {
            let shared = shared.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                runner::run(&shared, claim, cancel_rx, shutdown).await;
                let mut running = shared.runners();
                if running.get(&id).is_some_and(|slot| slot.fence == fence) {
                    running.remove(&id);
                }
                drop(running);
                shared.finished.notify_one();
            })
        };
        // Absent if the runner has already finished.
        if let Some(slot) = shared
            .runners()
            .get_mut(&id)
            .filter(|slot| slot.fence == fence)
        {
            slot.task = Some(task.abort_handle());
        }
    }
}
