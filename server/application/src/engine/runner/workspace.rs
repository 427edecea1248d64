//! The run's workspace: its git worktree, prepared under a distributed lock on the repository,
//! and the wait for that lock, which outlasts an unreachable lock backend.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::lease::interruption;
use super::{Run, Unprepared};
use crate::ports::lock::{Lease, LockError, LockKey};
use crate::ports::workspaces::{path_hash, Workspace, WorkspaceRequest};

/// Retry delays while the lock backend is unreachable (doubling from the first to the second).
const LOCK_RETRY_MIN: Duration = Duration::from_millis(250);
const LOCK_RETRY_MAX: Duration = Duration::from_secs(2);

impl Run<'_> {
    /// The session's worktree, created while holding its repository's lock.
    pub(super) async fn prepare_workspace(
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
}
