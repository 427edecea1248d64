//! The `DistributedLock` contract: fairness, exclusion, expiry, renewal and fencing, the same for
//! every adapter. Each check gets a fresh lock (fresh key namespace) and uses its own keys.
//!
//! Timings: TTLs here are a few hundred milliseconds so expiry is observable quickly; waits that
//! are expected to succeed are generous (seconds) so a slow machine does not make them flaky.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use server::ports::lock::{DistributedLock, LockError, LockKey};

pub type Lock = Arc<dyn DistributedLock>;

const LONG_TTL: Duration = Duration::from_secs(30);
const LONG_WAIT: Duration = Duration::from_secs(20);

fn key(name: &str) -> LockKey {
    LockKey::new(format!("{name}-{}", uuid::Uuid::new_v4().simple())).expect("valid key")
}

/// Polls until `n` contenders are queued on `key`, so a test knows a spawned waiter has taken
/// its place before doing the next thing.
async fn until_waiting(lock: &Lock, key: &LockKey, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now_waiting = lock.waiting(key).await.expect("waiting");
        if now_waiting == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} waiters on {key}, saw {now_waiting}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

pub async fn only_one_holder_at_a_time(lock: Lock) {
    let key = key("exclusion");
    let inside = Arc::new(AtomicUsize::new(0));
    let entries = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (lock, key, inside, entries) =
                (lock.clone(), key.clone(), inside.clone(), entries.clone());
            tokio::spawn(async move {
                for _ in 0..3 {
                    let lease = lock
                        .acquire(&key, LONG_TTL, LONG_WAIT)
                        .await
                        .expect("acquire");
                    assert_eq!(
                        inside.fetch_add(1, Ordering::SeqCst),
                        0,
                        "two holders at once"
                    );
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    entries.fetch_add(1, Ordering::SeqCst);
                    lock.release(&lease).await.expect("release");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("contender");
    }
    assert_eq!(entries.load(Ordering::SeqCst), 30);
}

pub async fn try_acquire_fails_while_held(lock: Lock) {
    let key = key("try");
    let lease = lock
        .try_acquire(&key, LONG_TTL)
        .await
        .expect("try")
        .expect("free");
    assert!(lock
        .try_acquire(&key, LONG_TTL)
        .await
        .expect("try")
        .is_none());
    lock.release(&lease).await.expect("release");
    let again = lock.try_acquire(&key, LONG_TTL).await.expect("try");
    assert!(again.is_some(), "free again after release");
}

pub async fn try_acquire_does_not_jump_the_queue(lock: Lock) {
    let key = key("no-jump");
    let holder = lock
        .acquire(&key, LONG_TTL, LONG_WAIT)
        .await
        .expect("acquire");
    let waiter = {
        let (lock, key) = (lock.clone(), key.clone());
        tokio::spawn(async move { lock.acquire(&key, LONG_TTL, LONG_WAIT).await })
    };
    until_waiting(&lock, &key, 1).await;
    lock.release(&holder).await.expect("release");
    // Whether or not the waiter has taken it yet, try_acquire must not get it before the waiter.
    assert!(lock
        .try_acquire(&key, LONG_TTL)
        .await
        .expect("try")
        .is_none());
    let lease = waiter.await.expect("task").expect("waiter gets it");
    assert!(lease.token > holder.token);
}

pub async fn release_lets_the_next_waiter_in(lock: Lock) {
    let key = key("handoff");
    let holder = lock
        .acquire(&key, LONG_TTL, LONG_WAIT)
        .await
        .expect("acquire");
    let waiter = {
        let (lock, key) = (lock.clone(), key.clone());
        tokio::spawn(async move { lock.acquire(&key, LONG_TTL, LONG_WAIT).await })
    };
    until_waiting(&lock, &key, 1).await;
    assert!(
        !waiter.is_finished(),
        "the waiter must wait while the lock is held"
    );
    let released_at = Instant::now();
    lock.release(&holder).await.expect("release");
    let lease = waiter.await.expect("task").expect("waiter gets the lock");
    assert!(lease.token > holder.token);
    // Woken by the release, not by some far-off poll.
    assert!(
        released_at.elapsed() < Duration::from_secs(2),
        "handoff took {:?}",
        released_at.elapsed()
    );
    assert_eq!(lock.waiting(&key).await.expect("waiting"), 0);
}

pub async fn fifo_order_under_50_contenders(lock: Lock) {
    let key = key("fifo");
    let holder = lock
        .acquire(&key, LONG_TTL, LONG_WAIT)
        .await
        .expect("acquire");
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (l, k, order) = (lock.clone(), key.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let lease = l
                .acquire(&k, LONG_TTL, Duration::from_secs(60))
                .await
                .expect("acquire");
            order.lock().expect("order").push((i, lease.token));
            l.release(&lease).await.expect("release");
        }));
        // Contender i+1 arrives only once contender i is queued: arrival order is 0..50.
        until_waiting(&lock, &key, i + 1).await;
    }
    lock.release(&holder).await.expect("release");
    for t in tasks {
        t.await.expect("contender");
    }
    let order = order.lock().expect("order").clone();
    let arrivals: Vec<usize> = order.iter().map(|&(i, _)| i).collect();
    assert_eq!(
        arrivals,
        (0..50).collect::<Vec<_>>(),
        "acquired out of arrival order"
    );
    assert!(
        order.windows(2).all(|w| w[0].1 < w[1].1),
        "tokens not increasing"
    );
    assert!(order[0].1 > holder.token);
}

pub async fn fencing_tokens_strictly_increase(lock: Lock) {
    let key = key("fence");
    let mut last = 0;
    for round in 0..6 {
        let lease = if round % 2 == 0 {
            lock.acquire(&key, LONG_TTL, LONG_WAIT)
                .await
                .expect("acquire")
        } else {
            lock.try_acquire(&key, LONG_TTL)
                .await
                .expect("try")
                .expect("free")
        };
        assert!(lease.token > last, "token {} after {last}", lease.token);
        last = lease.token;
        lock.release(&lease).await.expect("release");
    }
}

pub async fn a_crashed_holder_loses_the_lock_after_its_ttl(lock: Lock) {
    let key = key("crash");
    let ttl = Duration::from_millis(300);
    let started = Instant::now();
    // The "crashed" holder: never renews, never releases.
    let crashed = lock.acquire(&key, ttl, LONG_WAIT).await.expect("acquire");
    let lease = lock
        .acquire(&key, LONG_TTL, LONG_WAIT)
        .await
        .expect("a waiter takes over after the ttl");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "taken over after only {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "taken over only after {waited:?}"
    );
    assert!(
        lease.token > crashed.token,
        "the new holder fences the crashed one out"
    );
    assert!(matches!(
        lock.renew(&crashed, LONG_TTL).await,
        Err(LockError::Lost)
    ));
}

pub async fn renew_extends_the_lease(lock: Lock) {
    let key = key("renew");
    let lease = lock
        .acquire(&key, Duration::from_millis(400), LONG_WAIT)
        .await
        .expect("acquire");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let renewed = lock
        .renew(&lease, Duration::from_secs(5))
        .await
        .expect("renew");
    assert_eq!(
        renewed.token, lease.token,
        "renewal keeps the fencing token"
    );
    assert!(renewed.expires_at > lease.expires_at);
    // Past the original ttl: still held.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(lock
        .try_acquire(&key, LONG_TTL)
        .await
        .expect("try")
        .is_none());
    lock.renew(&renewed, LONG_TTL).await.expect("renew again");
    lock.release(&renewed).await.expect("release");
}

pub async fn renew_after_expiry_is_lost(lock: Lock) {
    let key = key("renew-expired");
    let lease = lock
        .acquire(&key, Duration::from_millis(100), LONG_WAIT)
        .await
        .expect("acquire");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(matches!(
        lock.renew(&lease, LONG_TTL).await,
        Err(LockError::Lost)
    ));
}

pub async fn a_taken_over_lease_cannot_renew_or_release(lock: Lock) {
    let key = key("takeover");
    let stale = lock
        .acquire(&key, Duration::from_millis(100), LONG_WAIT)
        .await
        .expect("acquire");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let current = lock
        .acquire(&key, LONG_TTL, LONG_WAIT)
        .await
        .expect("take over");
    assert!(matches!(
        lock.renew(&stale, LONG_TTL).await,
        Err(LockError::Lost)
    ));
    // Releasing the stale lease is a no-op: it must not free the current holder's lock.
    lock.release(&stale)
        .await
        .expect("stale release is a no-op");
    assert!(lock
        .try_acquire(&key, LONG_TTL)
        .await
        .expect("try")
        .is_none());
    lock.renew(&current, LONG_TTL)
        .await
        .expect("the current holder still holds");
}

pub async fn release_is_idempotent(lock: Lock) {
    let key = key("release-twice");
    let lease = lock
        .acquire(&key, LONG_TTL, LONG_WAIT)
        .await
        .expect("acquire");
    lock.release(&lease).await.expect("release");
    lock.release(&lease).await.expect("release again");
    assert!(matches!(
        lock.renew(&lease, LONG_TTL).await,
        Err(LockError::Lost)
    ));
}

pub async fn a_wait_timeout_returns_timeout_and_leaves_the_queue(lock: Lock) {
    let key = key("timeout");
    let holder = lock
        .acquire(&key, LONG_TTL, LONG_WAIT)
        .await
        .expect("acquire");
    let started = Instant::now();
    let result = lock
        .acquire(&key, LONG_TTL, Duration::from_millis(300))
        .await;
    let waited = started.elapsed();
    assert!(matches!(result, Err(LockError::Timeout)), "{result:?}");
    assert!(
        waited >= Duration::from_millis(300),
        "gave up after {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "gave up only after {waited:?}"
    );
    assert_eq!(lock.waiting(&key).await.expect("waiting"), 0);
    // The lock itself is untouched.
    lock.renew(&holder, LONG_TTL).await.expect("still held");
}

pub async fn an_abandoned_waiter_does_not_block_the_queue(lock: Lock) {
    let key = key("abandoned");
    let holder = lock
        .acquire(&key, LONG_TTL, LONG_WAIT)
        .await
        .expect("acquire");
    let abandoned = {
        let (lock, key) = (lock.clone(), key.clone());
        tokio::spawn(async move { lock.acquire(&key, LONG_TTL, LONG_WAIT).await })
    };
    until_waiting(&lock, &key, 1).await;
    abandoned.abort();
    let next = {
        let (lock, key) = (lock.clone(), key.clone());
        tokio::spawn(async move { lock.acquire(&key, LONG_TTL, LONG_WAIT).await })
    };
    lock.release(&holder).await.expect("release");
    let lease = tokio::time::timeout(Duration::from_secs(10), next)
        .await
        .expect("the next waiter is not blocked by the abandoned one")
        .expect("task")
        .expect("acquire");
    assert!(lease.token > holder.token);
}

pub async fn independent_keys_do_not_block_each_other(lock: Lock) {
    let (a, b) = (key("a"), key("b"));
    let held = lock
        .acquire(&a, LONG_TTL, LONG_WAIT)
        .await
        .expect("acquire a");
    let other = lock
        .acquire(&b, LONG_TTL, Duration::from_millis(500))
        .await
        .expect("b is free while a is held");
    assert!(lock.try_acquire(&a, LONG_TTL).await.expect("try").is_none());
    lock.release(&held).await.expect("release");
    lock.release(&other).await.expect("release");
}

pub async fn a_zero_ttl_is_refused(lock: Lock) {
    let key = key("zero-ttl");
    assert!(matches!(
        lock.acquire(&key, Duration::ZERO, LONG_WAIT).await,
        Err(LockError::InvalidTtl(_))
    ));
    assert!(matches!(
        lock.try_acquire(&key, Duration::ZERO).await,
        Err(LockError::InvalidTtl(_))
    ));
}
