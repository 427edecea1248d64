//! The run's lease: the keeper that renews it while the run lasts, and what interrupts a run's
//! waits — cancellation, a lost lease, shutdown — including handing the lease back on shutdown.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use tracing::Instrument;

use super::{Run, Stop, Unprepared};
use crate::engine::Shared;
use crate::ports::{QueueLease, RepositoryError};

/// What the lease keeper knows about the lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LeaseState {
    Held,
    CancelRequested,
    Lost,
}

/// What ends a run's wait before its own work does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Interrupt {
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
pub(super) async fn interruption(
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
pub(super) struct LeaseKeeper {
    task: tokio::task::JoinHandle<()>,
    pub(super) state: watch::Receiver<LeaseState>,
}

impl LeaseKeeper {
    pub(super) fn start(shared: &Arc<Shared>, lease: QueueLease) -> Self {
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

impl Run<'_> {
    /// Hands the lease back on shutdown (the session keeps running on its server; the next
    /// owner re-attaches): `Shutdown`, or the storage error that prevented it.
    pub(super) async fn hand_back(&self) -> Stop {
        match self.shared.deps.queue.release(&self.lease).await {
            Ok(()) => Stop::Shutdown,
            Err(error) => error.into(),
        }
    }

    /// What an interruption means for a run that has not dispatched yet.
    pub(super) async fn unprepared(&self, interrupt: Interrupt) -> Unprepared {
        match interrupt {
            Interrupt::Cancelled => Unprepared::Cancelled,
            Interrupt::LeaseLost => Unprepared::Stop(Stop::LeaseLost),
            Interrupt::Shutdown => Unprepared::Stop(self.hand_back().await),
        }
    }
}
