//! The in-process [`DistributedLock`]: the embedded single-node default. Owns per-key holder and
//! FIFO waiter queue state in one mutex-guarded map; nothing survives a restart (neither does
//! anything a single-node lock protects).
//!
//! Fencing tokens come from one counter shared by all keys: strictly increasing per key as the
//! port requires, and it lets idle keys be forgotten without ever reissuing a token.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;

use oio_application::ports::lock::{check_ttl, deadline_after};
use oio_application::ports::lock::{DistributedLock, Lease, LockError, LockKey};

/// In-process fair lock; cheap to clone (clones share state).
#[derive(Clone, Default)]
pub struct MemoryLock {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    keys: Mutex<HashMap<LockKey, KeyState>>,
    fence: AtomicU64,
    next_waiter: AtomicU64,
}

struct KeyState {
    holder: Option<Holder>,
    /// Waiter ids in arrival order; only the head may take a free lock.
    queue: VecDeque<u64>,
    /// Woken on every change that might let a waiter in: release, a waiter leaving.
    changed: Arc<Notify>,
}

#[derive(Clone, Copy)]
struct Holder {
    token: u64,
    expires_at: Instant,
}

impl KeyState {
    fn new() -> Self {
        Self {
            holder: None,
            queue: VecDeque::new(),
            changed: Arc::new(Notify::new()),
        }
    }

    /// The live holder, forgetting one whose TTL ran out (the crashed-holder case).
    fn live_holder(&mut self, now: Instant) -> Option<Holder> {
        if self.holder.is_some_and(|h| h.expires_at <= now) {
            self.holder = None;
        }
        self.holder
    }

    fn is_idle(&self) -> bool {
        self.holder.is_none() && self.queue.is_empty()
    }
}

impl MemoryLock {
    pub fn new() -> Self {
        Self::default()
    }

    fn keys(&self) -> MutexGuard<'_, HashMap<LockKey, KeyState>> {
        // A panic while holding this mutex cannot leave the map half-updated in a way that
        // matters more than losing the lock service, so recover the guard rather than propagate.
        self.inner
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn grant(&self, key: &LockKey, state: &mut KeyState, now: Instant, ttl: Duration) -> Lease {
        let token = self.inner.fence.fetch_add(1, Ordering::Relaxed) + 1;
        let expires_at = now + ttl;
        state.holder = Some(Holder { token, expires_at });
        Lease {
            key: key.clone(),
            token,
            expires_at,
        }
    }
}

/// Takes a waiter out of the queue when `acquire` returns or its future is dropped, so an
/// abandoned waiter never blocks the ones behind it.
struct QueuedWaiter<'a> {
    lock: &'a MemoryLock,
    key: &'a LockKey,
    id: u64,
}

impl Drop for QueuedWaiter<'_> {
    fn drop(&mut self) {
        let mut keys = self.lock.keys();
        if let Some(state) = keys.get_mut(self.key) {
            if let Some(pos) = state.queue.iter().position(|&w| w == self.id) {
                state.queue.remove(pos);
                // The head may have changed: let the new head look.
                state.changed.notify_waiters();
            }
            if state.is_idle() {
                keys.remove(self.key);
            }
        }
    }
}

#[async_trait]
impl DistributedLock for MemoryLock {
    async fn acquire(
        &self,
        key: &LockKey,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Lease, LockError> {
        check_ttl(ttl)?;
        let deadline = deadline_after(wait);
        let id = self.inner.next_waiter.fetch_add(1, Ordering::Relaxed);
        // While we are queued the key's state is not idle, so it is never removed and this
        // `Notify` stays the one every change on the key signals.
        let changed = {
            let mut keys = self.keys();
            let state = keys.entry(key.clone()).or_insert_with(KeyState::new);
            state.queue.push_back(id);
            state.changed.clone()
        };
        let _queued = QueuedWaiter {
            lock: self,
            key,
            id,
        };
        loop {
            // Register for wake-ups *before* looking at the state, so a release between the look
            // and the wait cannot be missed.
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let holder_expiry = {
                let mut keys = self.keys();
                let state = keys.entry(key.clone()).or_insert_with(KeyState::new);
                let now = Instant::now();
                let holder = state.live_holder(now);
                if holder.is_none() && state.queue.front() == Some(&id) {
                    state.queue.pop_front();
                    // The next waiter is now the head, but the lock is held: nobody to wake.
                    return Ok(self.grant(key, state, now, ttl));
                }
                if now >= deadline {
                    return Err(LockError::Timeout);
                }
                holder.map(|h| h.expires_at)
            };
            // A crashed holder signals nothing: wake at its expiry to take over.
            let wake_at = holder_expiry.map_or(deadline, |e| e.min(deadline));
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(wake_at.into()) => {}
            }
        }
    }

    async fn try_acquire(&self, key: &LockKey, ttl: Duration) -> Result<Option<Lease>, LockError> {
        check_ttl(ttl)?;
        let mut keys = self.keys();
        let state = keys.entry(key.clone()).or_insert_with(KeyState::new);
        let now = Instant::now();
        if state.live_holder(now).is_none() && state.queue.is_empty() {
            return Ok(Some(self.grant(key, state, now, ttl)));
        }
        Ok(None)
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, LockError> {
        check_ttl(ttl)?;
        let mut keys = self.keys();
        let state = keys.get_mut(&lease.key).ok_or(LockError::Lost)?;
        let now = Instant::now();
        match state.live_holder(now) {
            Some(h) if h.token == lease.token => {
                let expires_at = now + ttl;
                state.holder = Some(Holder {
                    token: h.token,
                    expires_at,
                });
                Ok(Lease {
                    expires_at,
                    ..lease.clone()
                })
            }
            _ => Err(LockError::Lost),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<(), LockError> {
        let mut keys = self.keys();
        let Some(state) = keys.get_mut(&lease.key) else {
            return Ok(());
        };
        if state.holder.is_some_and(|h| h.token == lease.token) {
            state.holder = None;
            state.changed.notify_waiters();
        }
        if state.is_idle() {
            keys.remove(&lease.key);
        }
        Ok(())
    }

    async fn waiting(&self, key: &LockKey) -> Result<usize, LockError> {
        Ok(self.keys().get(key).map_or(0, |s| s.queue.len()))
    }
}
