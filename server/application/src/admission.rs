//! Admission control: one concurrency pool per provider/model, so a replica never sends a
//! provider more turns at once than it currently accepts.
//!
//! Each pool's limit moves between its `min` and `max` by AIMD: a rate-limit signal (an HTTP 429
//! from a call, OpenCode reporting a `retry` status for a session) halves it — at most once per
//! cool-down window, so one storm counts once however many sessions report it — and it grows back
//! by one per quiet period (`grow_after` without a signal) and per successful turn once the
//! cool-down is over. Turns already running keep their slot when the limit drops (nothing is
//! revoked); new ones wait until `in_use < limit`.
//!
//! Waiters queue first-in first-out and can read their position at any time; positions move up
//! as others are admitted or give up (a dropped [`Waiter`] leaves the queue, and gives a slot
//! granted to it back). Admission is an RAII [`Permit`]: dropping it frees the slot.
//!
//! In the engine a session waits here after it is claimed (so it holds a place of its server's
//! capacity and of `engine.max_running` meanwhile, its lease renewed) and its worktree prepared,
//! and before its prompt is sent; see `engine::runner`.
//!
//! Why not `tokio::sync::Semaphore`: its permits cannot be taken back, so shrinking below the
//! permits handed out needs "forgotten" permits and debt bookkeeping next to it, and it cannot
//! tell a waiter its position or list the waiters. A small pool under a `std` mutex (no await
//! while it is held) with a `watch` channel per pool to wake waiters does all of it in one
//! place. Growth is computed lazily from timestamps on every access (no background task);
//! a waiter sleeps at most until the next growth step is due. Time is `tokio::time`, so tests
//! run with a paused clock.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

/// The pool of turns on a server's default model (sessions naming no registered agent). One pool
/// for every server: a fleet normally shares one OpenCode configuration.
pub const DEFAULT_POOL: &str = "default";

/// The bounds of one pool's limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolLimits {
    /// The limit never drops below this (at least 1, so a pool never stops for good).
    pub min: u32,
    /// The limit a healthy pool runs at, and never exceeds.
    pub max: u32,
}

/// How pools behave; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Bounds of a pool without an entry in `pools`.
    pub default: PoolLimits,
    /// A rate-limit signal within this long of the last shrink does not shrink again.
    pub cooldown: Duration,
    /// Without a rate-limit signal for this long, the limit grows by one (repeatedly).
    pub grow_after: Duration,
    /// Per-pool bounds, by key (`provider/model`).
    pub pools: BTreeMap<String, PoolLimits>,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            default: PoolLimits { min: 1, max: 16 },
            cooldown: Duration::from_secs(10),
            grow_after: Duration::from_secs(30),
            pools: BTreeMap::new(),
        }
    }
}

impl AdmissionConfig {
    /// The pools as configured (`[admission]`, validated on load).
    pub fn from_settings(settings: &crate::settings::AdmissionSettings) -> Self {
        Self {
            default: PoolLimits {
                min: settings.min,
                max: settings.default_max,
            },
            cooldown: Duration::from_millis(settings.cooldown_ms),
            grow_after: Duration::from_millis(settings.grow_after_ms),
            pools: settings
                .pools
                .iter()
                .map(|(key, pool)| {
                    let limits = PoolLimits {
                        min: pool.min.unwrap_or(settings.min).min(pool.max),
                        max: pool.max,
                    };
                    (key.clone(), limits)
                })
                .collect(),
        }
    }

    fn limits(&self, key: &str) -> PoolLimits {
        let limits = self.pools.get(key).copied().unwrap_or(self.default);
        // Guard against settings built in code (the config file is validated on load).
        let max = limits.max.max(1);
        PoolLimits {
            min: limits.min.clamp(1, max),
            max,
        }
    }
}

/// One pool as an operator sees it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PoolSnapshot {
    /// `provider/model`, or [`DEFAULT_POOL`] for the servers' default model.
    pub key: String,
    pub limit: u32,
    pub min: u32,
    pub max: u32,
    /// Slots held now (may exceed `limit` right after a shrink).
    pub in_use: u32,
    /// Waiters in admission order.
    pub waiting: Vec<WaitingSnapshot>,
    /// When a rate-limit signal last halved the limit.
    pub last_shrink: Option<DateTime<Utc>>,
    /// Rate-limit signals received, counted or not.
    pub signals: u64,
    /// Times the limit was halved.
    pub shrinks: u64,
}

/// One waiter of a pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WaitingSnapshot {
    /// What waits (the orchestrator's session id).
    pub label: String,
    /// 1 is next in line.
    pub position: usize,
    pub since: DateTime<Utc>,
}

/// Where a waiter stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitStatus {
    /// 1 is next in line.
    pub position: usize,
    pub limit: u32,
    pub in_use: u32,
}

/// The admission pools of this replica. Cheap to clone (shared).
#[derive(Clone)]
pub struct Admission {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

struct Inner {
    settings: AdmissionConfig,
    pools: Mutex<HashMap<String, Pool>>,
    next_id: std::sync::atomic::AtomicU64,
}

struct Entry {
    id: u64,
    label: String,
    since: DateTime<Utc>,
}

struct Pool {
    limits: PoolLimits,
    limit: u32,
    in_use: u32,
    waiting: VecDeque<Entry>,
    /// Waiters given a slot (counted in `in_use`) that have not collected it yet.
    granted: HashSet<u64>,
    /// The last rate-limit signal, or the last growth step: growth counts from here.
    quiet_since: Instant,
    last_signal: Option<Instant>,
    last_shrink: Option<Instant>,
    last_shrink_at: Option<DateTime<Utc>>,
    signals: u64,
    shrinks: u64,
    /// Bumped on every change waiters may care about.
    changed: watch::Sender<u64>,
}

impl Pool {
    fn new(limits: PoolLimits, now: Instant) -> Self {
        Self {
            limits,
            limit: limits.max,
            in_use: 0,
            waiting: VecDeque::new(),
            granted: HashSet::new(),
            quiet_since: now,
            last_signal: None,
            last_shrink: None,
            last_shrink_at: None,
            signals: 0,
            shrinks: 0,
            changed: watch::channel(0).0,
        }
    }

    /// Applies due growth, then hands free slots to the head of the queue.
    fn pump(&mut self, key: &str, settings: &AdmissionConfig, now: Instant) {
        let before = (self.limit, self.in_use, self.waiting.len());
        if self.limit >= self.limits.max {
            self.quiet_since = now;
        }
        while self.limit < self.limits.max
            && now.saturating_duration_since(self.quiet_since) >= settings.grow_after
        {
            self.limit += 1;
            self.quiet_since += settings.grow_after;
            tracing::info!(
                pool = key,
                limit = self.limit,
                "admission limit grows after a quiet period"
            );
        }
        while self.in_use < self.limit {
            let Some(entry) = self.waiting.pop_front() else {
                break;
            };
            self.granted.insert(entry.id);
            self.in_use += 1;
        }
        if before != (self.limit, self.in_use, self.waiting.len()) {
            self.touch(key);
        }
    }

    /// Wakes the waiters and updates the pool's gauges.
    fn touch(&self, key: &str) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
        crate::metrics::record_admission(key, self.limit, self.waiting.len());
    }

    /// When the next growth step is due, if the limit can grow.
    fn next_growth(&self, settings: &AdmissionConfig) -> Option<Instant> {
        (self.limit < self.limits.max).then(|| self.quiet_since + settings.grow_after)
    }

    fn position(&self, id: u64) -> Option<usize> {
        self.waiting.iter().position(|e| e.id == id).map(|i| i + 1)
    }
}

impl Admission {
    pub fn new(settings: AdmissionConfig) -> Self {
        let admission = Self {
            inner: Arc::new(Inner {
                settings,
                pools: Mutex::new(HashMap::new()),
                next_id: std::sync::atomic::AtomicU64::new(1),
            }),
        };
        // The default pool and configured ones are visible (API, gauges) before their first
        // session.
        let keys: Vec<String> = std::iter::once(DEFAULT_POOL.to_owned())
            .chain(admission.inner.settings.pools.keys().cloned())
            .collect();
        {
            let mut pools = admission.pools();
            for key in keys {
                admission.pool(&mut pools, &key);
            }
        }
        admission
    }

    pub fn settings(&self) -> &AdmissionConfig {
        &self.inner.settings
    }

    /// The pool map. Every change is made under the lock and leaves a pool consistent (no await,
    /// no user code inside), so a poisoned lock is used as is.
    fn pools(&self) -> MutexGuard<'_, HashMap<String, Pool>> {
        self.inner.pools.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pool<'p>(&self, pools: &'p mut HashMap<String, Pool>, key: &str) -> &'p mut Pool {
        pools.entry(key.to_owned()).or_insert_with(|| {
            let pool = Pool::new(self.inner.settings.limits(key), Instant::now());
            crate::metrics::record_admission(key, pool.limit, 0);
            pool
        })
    }

    /// Joins the queue of pool `key` as `label`. Poll the waiter with [`Waiter::try_admit`] and
    /// [`Waiter::changed`] (or just [`Waiter::admitted`]); dropping it leaves the queue.
    pub fn enqueue(&self, key: &str, label: impl Into<String>) -> Waiter {
        let id = self
            .inner
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut pools = self.pools();
        let pool = self.pool(&mut pools, key);
        pool.waiting.push_back(Entry {
            id,
            label: label.into(),
            since: Utc::now(),
        });
        pool.touch(key);
        pool.pump(key, &self.inner.settings, Instant::now());
        let changes = pool.changed.subscribe();
        drop(pools);
        Waiter {
            admission: self.clone(),
            key: key.to_owned(),
            id,
            changes,
            done: false,
        }
    }

    /// A slot taken without waiting, even beyond the limit: for a turn that already runs (a
    /// session re-attached after a replica restart), so the pool counts it.
    pub fn occupy(&self, key: &str) -> Permit {
        let mut pools = self.pools();
        let pool = self.pool(&mut pools, key);
        pool.in_use += 1;
        pool.touch(key);
        Permit {
            admission: self.clone(),
            key: key.to_owned(),
        }
    }

    /// A rate-limit signal for pool `key`: halves its limit unless it shrank within the
    /// cool-down; either way growth waits for a new quiet period. `true` when the limit shrank.
    pub fn rate_limited(&self, key: &str) -> bool {
        let now = Instant::now();
        let settings = &self.inner.settings;
        let mut pools = self.pools();
        let pool = self.pool(&mut pools, key);
        pool.pump(key, settings, now);
        pool.signals += 1;
        pool.last_signal = Some(now);
        pool.quiet_since = now;
        let cooling = pool
            .last_shrink
            .is_some_and(|at| now.saturating_duration_since(at) < settings.cooldown);
        if cooling || pool.limit <= pool.limits.min {
            return false;
        }
        let from = pool.limit;
        pool.limit = (pool.limit / 2).max(pool.limits.min);
        pool.last_shrink = Some(now);
        pool.last_shrink_at = Some(Utc::now());
        pool.shrinks += 1;
        pool.touch(key);
        tracing::warn!(
            pool = key,
            from,
            to = pool.limit,
            "rate limited: admission limit halved"
        );
        true
    }

    /// A turn of pool `key` completed: the limit grows by one, unless a rate-limit signal came
    /// within the cool-down.
    pub fn succeeded(&self, key: &str) {
        let now = Instant::now();
        let settings = &self.inner.settings;
        let mut pools = self.pools();
        let pool = self.pool(&mut pools, key);
        let recent_signal = pool
            .last_signal
            .is_some_and(|at| now.saturating_duration_since(at) < settings.cooldown);
        if !recent_signal && pool.limit < pool.limits.max {
            pool.limit += 1;
            pool.quiet_since = now;
            pool.touch(key);
            tracing::info!(
                pool = key,
                limit = pool.limit,
                "admission limit grows after a successful turn"
            );
        }
        pool.pump(key, settings, now);
    }

    /// Every pool, by key.
    pub fn snapshot(&self) -> Vec<PoolSnapshot> {
        let now = Instant::now();
        let mut pools = self.pools();
        let mut list: Vec<PoolSnapshot> = pools
            .iter_mut()
            .map(|(key, pool)| {
                pool.pump(key, &self.inner.settings, now);
                PoolSnapshot {
                    key: key.clone(),
                    limit: pool.limit,
                    min: pool.limits.min,
                    max: pool.limits.max,
                    in_use: pool.in_use,
                    waiting: pool
                        .waiting
                        .iter()
                        .enumerate()
                        .map(|(i, e)| WaitingSnapshot {
                            label: e.label.clone(),
                            position: i + 1,
                            since: e.since,
                        })
                        .collect(),
                    last_shrink: pool.last_shrink_at,
                    signals: pool.signals,
                    shrinks: pool.shrinks,
                }
            })
            .collect();
        list.sort_by(|a, b| a.key.cmp(&b.key));
        list
    }

    /// One pool, if it exists.
    pub fn pool_snapshot(&self, key: &str) -> Option<PoolSnapshot> {
        self.snapshot().into_iter().find(|p| p.key == key)
    }

    fn release(&self, key: &str) {
        let mut pools = self.pools();
        let pool = self.pool(&mut pools, key);
        pool.in_use = pool.in_use.saturating_sub(1);
        pool.touch(key);
        pool.pump(key, &self.inner.settings, Instant::now());
    }
}

/// What the API shows of admission control (a driving port, so handlers need not know the
/// engine).
pub trait AdmissionStatus: Send + Sync + 'static {
    /// Every pool, by key.
    fn pools(&self) -> Vec<PoolSnapshot>;
}

impl AdmissionStatus for Admission {
    fn pools(&self) -> Vec<PoolSnapshot> {
        self.snapshot()
    }
}

/// A place in a pool's queue. Dropping it leaves the queue (and gives back a slot granted but
/// not collected).
pub struct Waiter {
    admission: Admission,
    key: String,
    id: u64,
    changes: watch::Receiver<u64>,
    /// Admitted: the slot now belongs to a [`Permit`].
    done: bool,
}

impl Waiter {
    /// The pool's key.
    pub fn pool(&self) -> &str {
        &self.key
    }

    /// The slot, once this waiter's turn has come.
    pub fn try_admit(&mut self) -> Option<Permit> {
        if self.done {
            return None;
        }
        // Marks the current version seen before reading the state: a change made after this
        // line wakes the next `changed()`.
        self.changes.borrow_and_update();
        let mut pools = self.admission.pools();
        let pool = self.admission.pool(&mut pools, &self.key);
        pool.pump(&self.key, &self.admission.inner.settings, Instant::now());
        if !pool.granted.remove(&self.id) {
            return None;
        }
        self.done = true;
        Some(Permit {
            admission: self.admission.clone(),
            key: self.key.clone(),
        })
    }

    /// Where this waiter stands; `None` once a slot is granted to it.
    pub fn status(&self) -> Option<WaitStatus> {
        let mut pools = self.admission.pools();
        let pool = self.admission.pool(&mut pools, &self.key);
        pool.pump(&self.key, &self.admission.inner.settings, Instant::now());
        pool.position(self.id).map(|position| WaitStatus {
            position,
            limit: pool.limit,
            in_use: pool.in_use,
        })
    }

    /// Resolves when the pool changed (or the limit may have grown) since the last
    /// [`Waiter::try_admit`]: try again then.
    pub async fn changed(&mut self) {
        let growth = {
            let mut pools = self.admission.pools();
            let pool = self.admission.pool(&mut pools, &self.key);
            pool.next_growth(&self.admission.inner.settings)
        };
        match growth {
            Some(at) => {
                tokio::select! {
                    _ = self.changes.changed() => {}
                    () = tokio::time::sleep_until(at) => {}
                }
            }
            // The sender lives as long as the pool (for good): an error cannot happen.
            None => {
                let _ = self.changes.changed().await;
            }
        }
    }

    /// Waits for the slot.
    pub async fn admitted(&mut self) -> Permit {
        loop {
            if let Some(permit) = self.try_admit() {
                return permit;
            }
            self.changed().await;
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut pools = self.admission.pools();
        let pool = self.admission.pool(&mut pools, &self.key);
        if pool.granted.remove(&self.id) {
            pool.in_use = pool.in_use.saturating_sub(1);
        } else if let Some(index) = pool.waiting.iter().position(|e| e.id == self.id) {
            pool.waiting.remove(index);
        }
        pool.touch(&self.key);
        pool.pump(&self.key, &self.admission.inner.settings, Instant::now());
    }
}

/// A slot of a pool; dropping it frees the slot.
pub struct Permit {
    admission: Admission,
    key: String,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit").field("pool", &self.key).finish()
    }
}

impl Permit {
    /// The pool's key.
    pub fn pool(&self) -> &str {
        &self.key
    }

    /// A rate-limit signal from the turn holding this slot; see [`Admission::rate_limited`].
    pub fn rate_limited(&self) -> bool {
        self.admission.rate_limited(&self.key)
    }

    /// The turn holding this slot completed; see [`Admission::succeeded`].
    pub fn succeeded(&self) {
        self.admission.succeeded(&self.key)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.admission.release(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "fake/fake-coder";

    fn admission(max: u32) -> Admission {
        Admission::new(AdmissionConfig {
            default: PoolLimits { min: 1, max },
            cooldown: Duration::from_secs(10),
            grow_after: Duration::from_secs(30),
            pools: BTreeMap::new(),
        })
    }

    fn limit(admission: &Admission) -> u32 {
        admission.pool_snapshot(KEY).unwrap().limit
    }

    fn position(waiter: &Waiter) -> usize {
        waiter.status().expect("still waiting").position
    }

    #[tokio::test(start_paused = true)]
    async fn admits_up_to_the_limit_then_queues_in_arrival_order() {
        let admission = admission(2);
        let _a = admission.enqueue(KEY, "a").try_admit().unwrap();
        let b = admission.enqueue(KEY, "b").try_admit().unwrap();
        let mut c = admission.enqueue(KEY, "c");
        let mut d = admission.enqueue(KEY, "d");
        assert!(c.try_admit().is_none());
        assert!(d.try_admit().is_none());
        assert_eq!((position(&c), position(&d)), (1, 2));
        let snapshot = admission.pool_snapshot(KEY).unwrap();
        assert_eq!(snapshot.in_use, 2);
        let labels: Vec<_> = snapshot
            .waiting
            .iter()
            .map(|w| (w.label.as_str(), w.position))
            .collect();
        assert_eq!(labels, [("c", 1), ("d", 2)]);

        drop(b);
        // The freed slot goes to the head of the queue, not to whoever asks first.
        assert!(d.try_admit().is_none());
        assert_eq!(position(&d), 1);
        let _c = c.try_admit().expect("c was first in line");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_is_woken_when_a_slot_frees() {
        let admission = admission(1);
        let held = admission.enqueue(KEY, "a").try_admit().unwrap();
        let mut waiter = admission.enqueue(KEY, "b");
        let task = tokio::spawn(async move { waiter.admitted().await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!task.is_finished());
        drop(held);
        let permit = tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(permit.pool(), KEY);
        assert_eq!(admission.pool_snapshot(KEY).unwrap().in_use, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn positions_move_up_as_waiters_ahead_leave() {
        let admission = admission(1);
        let _held = admission.enqueue(KEY, "a").try_admit().unwrap();
        let b = admission.enqueue(KEY, "b");
        let c = admission.enqueue(KEY, "c");
        let mut d = admission.enqueue(KEY, "d");
        assert_eq!(position(&d), 3);
        d.changes.borrow_and_update();
        drop(b);
        // The waiter is told something changed, and its position is one closer.
        tokio::time::timeout(Duration::from_millis(10), d.changed())
            .await
            .expect("a departure wakes the others");
        assert_eq!(position(&d), 2);
        drop(c);
        assert_eq!(position(&d), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_waiter_frees_its_place_and_any_slot_granted_to_it() {
        let admission = admission(1);
        let held = admission.enqueue(KEY, "a").try_admit().unwrap();
        let granted_but_gone = admission.enqueue(KEY, "b");
        let mut next = admission.enqueue(KEY, "c");
        drop(held);
        // "b" was granted the slot but never collected it: cancelling hands it on.
        assert!(next.try_admit().is_none());
        drop(granted_but_gone);
        assert!(next.try_admit().is_some());

        // A waiter cancelled while queued (a dropped `admitted()` future) leaves the queue.
        let admission = self::admission(1);
        let _held = admission.enqueue(KEY, "a").try_admit().unwrap();
        let mut waiter = admission.enqueue(KEY, "b");
        let wait = tokio::time::timeout(Duration::from_millis(5), waiter.admitted()).await;
        assert!(wait.is_err());
        drop(waiter);
        assert!(admission.pool_snapshot(KEY).unwrap().waiting.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limit_halves_the_limit_once_per_cooldown() {
        let admission = admission(8);
        assert!(admission.rate_limited(KEY));
        assert_eq!(limit(&admission), 4);
        // The rest of the same storm: counted, not shrinking again.
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(!admission.rate_limited(KEY));
        assert!(!admission.rate_limited(KEY));
        assert_eq!(limit(&admission), 4);
        let snapshot = admission.pool_snapshot(KEY).unwrap();
        assert_eq!((snapshot.signals, snapshot.shrinks), (3, 1));
        assert!(snapshot.last_shrink.is_some());
        // A new storm after the cool-down halves again, down to the minimum and no further.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(admission.rate_limited(KEY));
        assert_eq!(limit(&admission), 2);
        for _ in 0..3 {
            tokio::time::advance(Duration::from_secs(11)).await;
            admission.rate_limited(KEY);
        }
        assert_eq!(limit(&admission), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_shrunk_limit_holds_back_new_turns_without_revoking_running_ones() {
        let admission = admission(4);
        let held: Vec<_> = (0..4)
            .map(|i| admission.enqueue(KEY, format!("s{i}")).try_admit().unwrap())
            .collect();
        held[0].rate_limited();
        assert_eq!(limit(&admission), 2);
        let mut waiter = admission.enqueue(KEY, "late");
        let mut held = held;
        held.pop();
        held.pop();
        // in_use 2 == limit 2: still full.
        assert!(waiter.try_admit().is_none());
        held.pop();
        assert!(waiter.try_admit().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn the_limit_grows_back_one_step_per_quiet_period() {
        let admission = admission(8);
        admission.rate_limited(KEY);
        assert_eq!(limit(&admission), 4);
        // A signal within the cool-down does not shrink, but restarts the quiet period.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(!admission.rate_limited(KEY));
        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(limit(&admission), 4);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(limit(&admission), 5);
        tokio::time::advance(Duration::from_secs(30 * 5)).await;
        assert_eq!(limit(&admission), 8, "back to max and no further");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_is_admitted_when_the_limit_grows_back() {
        let admission = admission(2);
        let a = admission.enqueue(KEY, "a").try_admit().unwrap();
        a.rate_limited();
        assert_eq!(limit(&admission), 1);
        let mut waiter = admission.enqueue(KEY, "b");
        let started = Instant::now();
        let _b = waiter.admitted().await;
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(30),
            "woken by growth, not a release"
        );
        drop(a);
    }

    #[tokio::test(start_paused = true)]
    async fn successful_turns_grow_the_limit_once_the_cooldown_is_over() {
        let admission = admission(8);
        let permit = admission.enqueue(KEY, "a").try_admit().unwrap();
        permit.rate_limited();
        permit.succeeded();
        assert_eq!(limit(&admission), 4, "too soon after the storm");
        tokio::time::advance(Duration::from_secs(10)).await;
        permit.succeeded();
        permit.succeeded();
        assert_eq!(limit(&admission), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn pools_are_separate_and_configured_ones_exist_from_the_start() {
        let mut settings = AdmissionConfig::default();
        settings
            .pools
            .insert("a/x".into(), PoolLimits { min: 2, max: 3 });
        let admission = Admission::new(settings);
        let pools = admission.snapshot();
        let keys: Vec<_> = pools.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["a/x", DEFAULT_POOL]);
        assert_eq!((pools[0].limit, pools[0].min), (3, 2));
        admission.rate_limited("a/x");
        assert_eq!(
            admission.pool_snapshot("a/x").unwrap().limit,
            2,
            "not below min"
        );
        let other = admission.occupy("b/y");
        assert_eq!(admission.pool_snapshot("b/y").unwrap().limit, 16);
        assert_eq!(admission.pool_snapshot("b/y").unwrap().in_use, 1);
        drop(other);
        assert_eq!(admission.pool_snapshot("b/y").unwrap().in_use, 0);
    }
}
