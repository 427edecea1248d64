//! The durable dispatch queue: sessions waiting for an OpenCode slot, and the leases of the
//! replicas running them.
//!
//! A session is in the queue from the moment it is enqueued until it reaches a terminal state;
//! both ends happen inside a Unit of Work commit (a [`QueueOp`] in the [`ChangeSet`], next to the
//! session's transition and event). In between, replicas [`DispatchQueue::claim`] waiting rows
//! (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: its single writer), keep them by renewing their
//! lease, and lose them when the lease lapses: another replica then claims the row again and
//! recovers the session (re-attaching to its OpenCode session when it can).
//!
//! Fencing: every claim increments the row's `fence`. Every write a runner makes carries its
//! [`QueueLease`] (owner + fence) and is refused with [`RepositoryError::FenceLost`] once someone
//! else has claimed the row, so a replica that stalled past its lease cannot overwrite the work of
//! its successor.
//!
//! Wake-ups: every committed change to the queue is announced on [`DispatchQueue::signals`]
//! (PostgreSQL: `LISTEN/NOTIFY`, so every replica hears it; SQLite: in process). Dispatchers wait
//! on signals and on the next known deadline ([`DispatchQueue::next_due`]), never on a poll loop.
//!
//! [`ChangeSet`]: super::ChangeSet

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::SessionId;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::RepositoryError;

/// A replica's claim on one session: valid while `fence` is still the row's fence.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QueueLease {
    pub session: SessionId,
    pub owner: String,
    pub fence: u64,
}

/// An OpenCode server a replica may place sessions on, with how many it may run at once (across
/// every replica).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCapacity {
    pub server: String,
    pub capacity: u32,
}

/// What a dispatcher asks for.
#[derive(Clone, Debug)]
pub struct ClaimRequest {
    /// The replica's id; it becomes the row's owner.
    pub owner: String,
    pub lease_ttl: Duration,
    /// The servers this replica can reach now (healthy, breaker closed). A waiting session goes
    /// to the least loaded one with room; a recovered one stays on its server when listed.
    pub servers: Vec<ServerCapacity>,
}

/// Where a dispatched session runs on its OpenCode server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteRef {
    pub server: String,
    /// OpenCode's session id (`ses…`).
    pub session: String,
    /// The worktree the OpenCode session works in.
    pub directory: String,
    /// Our id of the prompt (`msg…`), so a re-attaching replica can find the reply.
    pub message_id: String,
}

/// A claimed session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub lease: QueueLease,
    /// The server the session is placed on (counted against its capacity from now on).
    pub server: String,
    /// Set when an earlier owner had already started the session on `server`: re-attach to it.
    pub remote: Option<RemoteRef>,
    /// The previous owner's lease had lapsed: this claim is a recovery.
    pub recovered: bool,
    pub cancel_requested: bool,
    pub priority: i32,
    pub enqueued_at: DateTime<Utc>,
    /// When the session became claimable (enqueue, or the end of a retry backoff).
    pub available_at: DateTime<Utc>,
    pub deadline: Option<DateTime<Utc>>,
}

/// A queue change, committed with the session transition it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueOp {
    /// Adds a waiting row (the session has just been enqueued).
    Enqueue {
        session: SessionId,
        priority: i32,
        agent: Option<String>,
        available_at: DateTime<Utc>,
    },
    /// Records where the leased session now runs, and its deadline.
    Attach {
        lease: QueueLease,
        remote: RemoteRef,
        deadline: Option<DateTime<Utc>>,
    },
    /// Gives the row back to the queue (a retry): no owner, no server, claimable from
    /// `available_at`. The fence stays, so the former owner's writes are refused from now on.
    Requeue {
        lease: QueueLease,
        available_at: DateTime<Utc>,
    },
    /// Removes the leased row (the session has reached a terminal state).
    Remove { lease: QueueLease },
    /// Removes a row nobody has claimed (a queued session cancelled before dispatch).
    /// `FenceLost` when the row has an owner by now.
    RemoveWaiting { session: SessionId },
    /// Changes nothing; fails the batch unless `lease` is still current.
    Guard { lease: QueueLease },
}

impl QueueOp {
    pub fn session(&self) -> SessionId {
        match self {
            QueueOp::Enqueue { session, .. } | QueueOp::RemoveWaiting { session } => *session,
            QueueOp::Attach { lease, .. }
            | QueueOp::Requeue { lease, .. }
            | QueueOp::Remove { lease }
            | QueueOp::Guard { lease } => lease.session,
        }
    }
}

/// What a lease renewal learnt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Renewal {
    /// Someone asked for the session to be cancelled.
    pub cancel_requested: bool,
}

/// Announced after every committed queue change, to every replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueSignal {
    /// Rows were added, freed or removed: a claim may now succeed.
    Changed,
    /// Cancellation was requested for this session.
    Cancel(SessionId),
}

/// Counts for operators and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDepth {
    /// Rows without an owner (including those still in backoff).
    pub waiting: u64,
    /// Rows with a fresh lease.
    pub leased: u64,
    /// Rows whose lease has lapsed and that nobody has recovered yet.
    pub expired: u64,
}

/// A row as stored, for inspection (operators, tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueEntry {
    pub session: SessionId,
    pub priority: i32,
    pub agent: Option<String>,
    pub owner: Option<String>,
    pub fence: u64,
    pub server: Option<String>,
    pub remote: Option<RemoteRef>,
    pub cancel_requested: bool,
    pub enqueued_at: DateTime<Utc>,
    pub available_at: DateTime<Utc>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub deadline: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait DispatchQueue: Send + Sync + 'static {
    /// Leases the next session to run, or `None` when nothing is claimable now: nothing waiting
    /// and due, every candidate's agent at its limit, or no listed server with room.
    ///
    /// Order: lapsed leases first (recovery), then priority (high first), then enqueue time.
    async fn claim(&self, request: &ClaimRequest) -> Result<Option<Claim>, RepositoryError>;

    /// Extends the lease by `ttl` from now. [`RepositoryError::FenceLost`] when the row was
    /// claimed by someone else or is gone: the caller must stop acting for the session.
    async fn renew(&self, lease: &QueueLease, ttl: Duration) -> Result<Renewal, RepositoryError>;

    /// Gives up a lease without changing the session (graceful shutdown): the row waits again at
    /// once, keeping its remote, so the next owner re-attaches. `FenceLost` as for `renew`.
    async fn release(&self, lease: &QueueLease) -> Result<(), RepositoryError>;

    /// Flags the session for cancellation and announces it. `false` when it is not in the queue.
    async fn request_cancel(&self, session: SessionId) -> Result<bool, RepositoryError>;

    /// The earliest instant something becomes claimable without a signal: the end of a backoff
    /// or the lapse of a lease. `None` when the queue is empty.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, RepositoryError>;

    async fn entry(&self, session: SessionId) -> Result<Option<QueueEntry>, RepositoryError>;

    async fn depth(&self) -> Result<QueueDepth, RepositoryError>;

    /// Leased sessions per agent name (routing's load figure), agents without any left out.
    async fn leased_by_agent(
        &self,
    ) -> Result<std::collections::BTreeMap<String, u64>, RepositoryError>;

    /// Every committed queue change, from every replica. A lagging receiver misses signals, never
    /// rows: treat `Lagged` as `Changed`.
    fn signals(&self) -> broadcast::Receiver<QueueSignal>;
}
