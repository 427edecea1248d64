//! The distributed lock port: fair (FIFO) mutual exclusion on a named key with a time-to-live,
//! renewal and fencing tokens. Used to serialise work on one repository/workspace and for leader
//! duties. Adapters: in-process (`adapters::memory_lock`, the embedded single-node default) and
//! Redis (`adapters::redis`); both run the contract suite in `server/tests/it/contract/lock.rs`.
//!
//! # Leases, not guards
//! Acquiring returns a [`Lease`], not an RAII guard: releasing is I/O and cannot run in `Drop`.
//! A holder must [`release`](DistributedLock::release) when done; one that crashes or forgets
//! simply loses the lock when the TTL runs out, and the next waiter gets it.
//!
//! # Fencing tokens
//! A TTL lock alone cannot guarantee exclusion: a holder that pauses (GC, swap, a slow network)
//! past its TTL still *believes* it holds the lock while a new holder already does. Every lease
//! therefore carries a fencing token that strictly increases per key across all holders. A store
//! guarded by the lock should remember the highest token it has seen for the key and refuse
//! writes carrying a lower one — the stale holder's late writes are then rejected instead of
//! silently overwriting the new holder's work.

use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;

/// The longest accepted lock key, in characters.
pub const MAX_LOCK_KEY_LEN: usize = 200;

/// The name of the thing locked, e.g. `repo:acme/widgets` or `leader:outbox-relay`.
///
/// Validated: non-empty, at most [`MAX_LOCK_KEY_LEN`] characters, no whitespace (keys end up in
/// Redis key and channel names, where whitespace invites quoting bugs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockKey(String);

/// Why a string is not a valid [`LockKey`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidLockKey {
    #[error("lock key is empty")]
    Empty,
    #[error("lock key is {0} characters long; the maximum is {MAX_LOCK_KEY_LEN}")]
    TooLong(usize),
    #[error("lock key contains whitespace")]
    Whitespace,
}

impl LockKey {
    pub fn new(key: impl Into<String>) -> Result<Self, InvalidLockKey> {
        let key = key.into();
        let len = key.chars().count();
        if len == 0 {
            Err(InvalidLockKey::Empty)
        } else if len > MAX_LOCK_KEY_LEN {
            Err(InvalidLockKey::TooLong(len))
        } else if key.chars().any(char::is_whitespace) {
            Err(InvalidLockKey::Whitespace)
        } else {
            Ok(Self(key))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for LockKey {
    type Error = InvalidLockKey;
    fn try_from(key: &str) -> Result<Self, Self::Error> {
        Self::new(key)
    }
}

/// Proof of holding the lock on `key` until `expires_at` (unless renewed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub key: LockKey,
    /// The fencing token: strictly increasing per key across all holders (see the module docs).
    /// It also identifies this lease to `renew` and `release`.
    pub token: u64,
    /// A local, conservative estimate of when the lock lapses: taken *before* the request that
    /// granted or renewed the lease, plus the TTL, so the backend's own expiry is never earlier.
    /// Treat the lock as lost from this instant on unless renewed before it.
    pub expires_at: Instant,
}

impl Lease {
    /// Time left before the lease lapses (zero once it has).
    pub fn remaining(&self) -> Duration {
        self.expires_at.saturating_duration_since(Instant::now())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// `acquire` waited its full `wait` without reaching the head of the queue with the lock free.
    #[error("timed out waiting for the lock")]
    Timeout,
    /// The lease expired or another holder has the lock now.
    #[error("the lock was lost: the lease expired or was taken over")]
    Lost,
    /// A TTL too short for the backend to represent (under one millisecond).
    #[error("invalid lock ttl {0:?}: must be at least 1ms")]
    InvalidTtl(Duration),
    /// The backend failed or is unreachable.
    #[error("lock backend unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A fair (FIFO) lock with TTL, renewal and fencing tokens; see the module docs.
#[async_trait]
pub trait DistributedLock: Send + Sync + 'static {
    /// Waits, in arrival order behind earlier waiters, for the lock on `key`, for at most `wait`;
    /// then gives up with [`LockError::Timeout`]. The lease lapses after `ttl` unless renewed.
    ///
    /// Dropping the returned future while it waits gives up the place in the queue. (Should the
    /// whole process die instead, the Redis adapter drops the waiter once its heartbeat lapses.)
    async fn acquire(
        &self,
        key: &LockKey,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Lease, LockError>;

    /// Takes the lock only if it is free *and* nobody is queued for it (it never jumps the
    /// queue); `Ok(None)` otherwise.
    async fn try_acquire(&self, key: &LockKey, ttl: Duration) -> Result<Option<Lease>, LockError>;

    /// Extends the lease to `ttl` from now. [`LockError::Lost`] if it already lapsed or another
    /// holder has the lock; the caller must then stop work guarded by the lock.
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, LockError>;

    /// Gives the lock up and wakes the next waiter. Idempotent: releasing a lease that no longer
    /// holds the lock (released before, expired, taken over) is a no-op returning `Ok(())` — there
    /// is nothing left to give up. To learn whether the lease still held, `renew` first or rely
    /// on fencing tokens.
    async fn release(&self, lease: &Lease) -> Result<(), LockError>;

    /// How many contenders are queued for `key` (not counting the holder). For observability,
    /// and for tests that need to know a contender has taken its place in the queue.
    async fn waiting(&self, key: &LockKey) -> Result<usize, LockError>;
}

/// `wait` from now, saturating at a far-future instant for absurdly long waits.
pub fn deadline_after(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// Rejects TTLs the backends cannot represent.
pub fn check_ttl(ttl: Duration) -> Result<(), LockError> {
    if ttl < Duration::from_millis(1) {
        Err(LockError::InvalidTtl(ttl))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_validated() {
        assert_eq!(LockKey::new(""), Err(InvalidLockKey::Empty));
        assert_eq!(LockKey::new("a b"), Err(InvalidLockKey::Whitespace));
        assert_eq!(LockKey::new("a\tb"), Err(InvalidLockKey::Whitespace));
        assert_eq!(
            LockKey::new("x".repeat(201)),
            Err(InvalidLockKey::TooLong(201))
        );
        assert!(LockKey::new("x".repeat(200)).is_ok());
        assert_eq!(
            LockKey::new("repo:acme/widgets").map(|k| k.to_string()),
            Ok("repo:acme/widgets".to_string())
        );
    }
}
