//! The Redis [`DistributedLock`]: a fair (FIFO) lock shared by every orchestrator node pointed at
//! the same Redis. Owns the lock's Redis keys (all under a configurable prefix) and one pub/sub
//! connection that relays release notifications to local waiters.
//!
//! # Algorithm
//! Per lock key `K`, under prefix `P`:
//!
//! | Redis key          | type   | meaning                                                     |
//! |--------------------|--------|-------------------------------------------------------------|
//! | `P:lock:K`         | string | the holder's fencing token, with `PX ttl`: ownership        |
//! | `P:fence:K`        | int    | `INCR`ed per grant: fencing tokens, strictly increasing     |
//! | `P:ticket:K`       | int    | `INCR`ed per arrival: queue tickets                         |
//! | `P:queue:K`        | zset   | waiter id scored by ticket: the FIFO queue                  |
//! | `P:alive:K`        | zset   | waiter id scored by heartbeat deadline (server ms)          |
//! | `P:released:K`     | channel| published on release and when a waiter leaves               |
//!
//! * **Acquire** runs one Lua script per attempt, atomically: drop waiters whose heartbeat
//!   lapsed (a crashed waiter must not block the queue), join the queue with a fresh ticket if not
//!   in it, refresh our heartbeat, and — only if we are the head of the queue and `P:lock:K` does
//!   not exist — `INCR` the fence, `SET P:lock:K token PX ttl`, and leave the queue. Otherwise it
//!   returns the holder's remaining TTL. The waiter then sleeps until a release is published for
//!   `K`, the holder's TTL runs out (a crashed holder publishes nothing), or a short re-check
//!   interval passes (the safety net for lost messages; it also renews the heartbeat), and tries
//!   again. Timing out leaves the queue and publishes, since the head may have changed.
//! * **Try-acquire** takes the lock only when it is free and the queue is empty: it never jumps
//!   the queue.
//! * **Renew** and **release** are compare-and-set scripts on the token: `PEXPIRE` or `DEL` only if
//!   `P:lock:K` still holds *our* token, so an expired holder can never extend or delete a
//!   successor's lock.
//!
//! Time comes from Redis (`TIME` in the scripts) for heartbeats, and from `PX` for the lock, so
//! node clocks need not agree. A lease's local `expires_at` is taken before the granting request,
//! so it is never later than the server-side expiry.
//!
//! No blocking Redis commands are used (waiting is pub/sub plus timers), so the connection's
//! response timeout bounds every call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use oio_application::ports::lock::{check_ttl, deadline_after};
use oio_application::ports::lock::{DistributedLock, Lease, LockError, LockKey};

/// How to reach Redis and how to behave there.
#[derive(Debug, Clone)]
pub struct RedisLockConfig {
    /// e.g. `redis://127.0.0.1:6379`.
    pub url: String,
    /// Prefix of every Redis key and channel the lock uses; distinct prefixes never interact.
    pub key_prefix: String,
    /// Longest a waiter sleeps between attempts when no release is published. Bounds the delay
    /// after a lost pub/sub message and how often waiters heartbeat.
    pub recheck_interval: Duration,
    /// A waiter that has not attempted for this long is presumed crashed and dropped from the
    /// queue. Must comfortably exceed `recheck_interval` plus a round trip.
    pub waiter_timeout: Duration,
    /// Upper bound on any single Redis call.
    pub response_timeout: Duration,
}

impl RedisLockConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: "oio:lock".to_string(),
            recheck_interval: Duration::from_millis(250),
            waiter_timeout: Duration::from_secs(3),
            response_timeout: Duration::from_secs(5),
        }
    }

    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }
}

/// Drops waiters whose heartbeat lapsed. Expects `now` (server ms) and the queue and alive keys as
/// KEYS[3] and KEYS[4].
const PURGE_DEAD_WAITERS: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, w in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)) do
  redis.call('ZREM', KEYS[3], w)
  redis.call('ZREM', KEYS[4], w)
end
";

/// KEYS: lock, fence, queue, alive, ticket. ARGV: waiter id, ttl ms, waiter timeout ms.
/// Returns {1, token} when granted, else {0, the lock's PTTL}.
const ATTEMPT: &str = r"
if not redis.call('ZSCORE', KEYS[3], ARGV[1]) then
  redis.call('ZADD', KEYS[3], redis.call('INCR', KEYS[5]), ARGV[1])
end
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), ARGV[1])
local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
if head == ARGV[1] and redis.call('EXISTS', KEYS[1]) == 0 then
  local token = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], token, 'PX', ARGV[2])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
  return {1, token}
end
return {0, redis.call('PTTL', KEYS[1])}
";

/// KEYS: lock, fence, queue, alive. ARGV: ttl ms. Returns the token, or 0 when not granted.
const TRY: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('ZCARD', KEYS[3]) > 0 then
  return 0
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token, 'PX', ARGV[1])
return token
";

/// KEYS: queue, alive. ARGV: waiter id, channel.
const LEAVE: &str = r"
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('PUBLISH', ARGV[2], 'left')
end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
";

/// KEYS: lock. ARGV: token, ttl ms. Returns 1 when renewed.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// KEYS: lock. ARGV: token, channel. Returns 1 when released.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], 'released')
  return 1
end
return 0
";

/// KEYS: lock, -, queue, alive. Returns the queue length after purging dead waiters.
const WAITING: &str = r"
return redis.call('ZCARD', KEYS[3])
";

/// The fair lock on Redis; cheap to clone (clones share connections).
#[derive(Clone)]
pub struct RedisLock {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    prefix: String,
    recheck_interval: Duration,
    waiter_timeout: Duration,
    /// Lock keys whose release was published, relayed from the pub/sub connection.
    released: broadcast::Sender<Arc<str>>,
    relay: JoinHandle<()>,
    attempt: Script,
    try_acquire: Script,
    leave: Script,
    renew: Script,
    release: Script,
    waiting: Script,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.relay.abort();
    }
}

/// The Redis names of one lock key.
struct Names {
    lock: String,
    fence: String,
    ticket: String,
    queue: String,
    alive: String,
    channel: String,
}

fn unavailable(e: redis::RedisError) -> LockError {
    LockError::Unavailable(Box::new(e))
}

fn millis(d: Duration) -> u64 {
    // `check_ttl` guarantees at least 1ms; saturate rather than wrap for absurd values.
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Escapes glob metacharacters so the prefix matches only itself in `PSUBSCRIBE`.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl RedisLock {
    /// Connects, and subscribes to release notifications before returning so no release
    /// published after `connect` is missed.
    pub async fn connect(config: RedisLockConfig) -> Result<Self, LockError> {
        let client = redis::Client::open(config.url.as_str()).map_err(unavailable)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.response_timeout))
            .set_connection_timeout(Some(config.response_timeout))
            .set_number_of_retries(3);
        let conn = client
            .get_connection_manager_with_config(manager_config)
            .await
            .map_err(unavailable)?;

        let channel_prefix = format!("{}:released:", config.key_prefix);
        let pattern = format!("{}*", glob_escape(&channel_prefix));
        let mut pubsub = client.get_async_pubsub().await.map_err(unavailable)?;
        pubsub.psubscribe(&pattern).await.map_err(unavailable)?;
        let (released, _) = broadcast::channel(1024);
        let relay = tokio::spawn(relay_releases(
            client,
            pubsub,
            pattern,
            channel_prefix,
            released.clone(),
        ));

        let script = |body: &str| Script::new(&format!("{PURGE_DEAD_WAITERS}{body}"));
        Ok(Self {
            inner: Arc::new(Inner {
                conn,
                prefix: config.key_prefix,
                recheck_interval: config.recheck_interval,
                waiter_timeout: config.waiter_timeout,
                released,
                relay,
                attempt: script(ATTEMPT),
                try_acquire: script(TRY),
                leave: Script::new(LEAVE),
                renew: Script::new(RENEW),
                release: Script::new(RELEASE),
                waiting: script(WAITING),
            }),
        })
    }

    fn names(&self, key: &LockKey) -> Names {
        let p = &self.inner.prefix;
        Names {
            lock: format!("{p}:lock:{key}"),
            fence: format!("{p}:fence:{key}"),
            ticket: format!("{p}:ticket:{key}"),
            queue: format!("{p}:queue:{key}"),
            alive: format!("{p}:alive:{key}"),
            channel: format!("{p}:released:{key}"),
        }
    }

    async fn leave_queue(inner: &Inner, names: &Names, waiter: &str) -> Result<(), LockError> {
        let mut conn = inner.conn.clone();
        inner
            .leave
            .key(&names.queue)
            .key(&names.alive)
            .arg(waiter)
            .arg(&names.channel)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(drop)
            .map_err(unavailable)
    }
}

/// Forwards `P:released:K` messages to local waiters as `K`, resubscribing after a lost
/// connection. While it is down waiters still make progress on their re-check interval.
async fn relay_releases(
    client: redis::Client,
    mut pubsub: redis::aio::PubSub,
    pattern: String,
    channel_prefix: String,
    released: broadcast::Sender<Arc<str>>,
) {
    loop {
        {
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                if let Some(key) = msg.get_channel_name().strip_prefix(&channel_prefix) {
                    // No receivers is fine: nobody is waiting.
                    let _ = released.send(Arc::from(key));
                }
            }
        }
        tracing::warn!("redis lock: release notifications lost; resubscribing");
        pubsub = loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            match client.get_async_pubsub().await {
                Ok(mut p) => match p.psubscribe(&pattern).await {
                    Ok(()) => break p,
                    Err(e) => tracing::warn!(error = %e, "redis lock: resubscribe failed"),
                },
                Err(e) => tracing::warn!(error = %e, "redis lock: reconnect failed"),
            }
        };
    }
}

/// Leaves the queue if `acquire` ends without the lock by an error or by being dropped; a clean
/// timeout leaves explicitly. Without it the abandoned waiter would block the queue until its
/// heartbeat lapsed.
struct QueuedWaiter {
    inner: Arc<Inner>,
    names: Option<Names>,
    id: String,
}

impl QueuedWaiter {
    fn done(&mut self) {
        self.names = None;
    }
}

impl Drop for QueuedWaiter {
    fn drop(&mut self) {
        let Some(names) = self.names.take() else {
            return;
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let inner = self.inner.clone();
            let id = std::mem::take(&mut self.id);
            rt.spawn(async move {
                // Best effort: failing, the heartbeat still lapses.
                let _ = RedisLock::leave_queue(&inner, &names, &id).await;
            });
        }
    }
}

#[async_trait]
impl DistributedLock for RedisLock {
    async fn acquire(
        &self,
        key: &LockKey,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Lease, LockError> {
        check_ttl(ttl)?;
        let inner = &self.inner;
        let deadline = deadline_after(wait);
        // Subscribe before the first attempt so a release between an attempt and the wait
        // after it is still seen.
        let mut released = inner.released.subscribe();
        let mut queued = QueuedWaiter {
            inner: inner.clone(),
            names: Some(self.names(key)),
            id: uuid::Uuid::new_v4().simple().to_string(),
        };
        let mut conn = inner.conn.clone();
        loop {
            let names = queued.names.as_ref().expect("set until done");
            let started = Instant::now();
            let (granted, value): (i64, i64) = inner
                .attempt
                .key(&names.lock)
                .key(&names.fence)
                .key(&names.queue)
                .key(&names.alive)
                .key(&names.ticket)
                .arg(&queued.id)
                .arg(millis(ttl))
                .arg(millis(inner.waiter_timeout))
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            if granted == 1 {
                queued.done();
                return Ok(Lease {
                    key: key.clone(),
                    token: u64::try_from(value).unwrap_or_default(),
                    expires_at: started + ttl,
                });
            }
            let now = Instant::now();
            if now >= deadline {
                let result = Self::leave_queue(inner, names, &queued.id).await;
                queued.done();
                result?;
                return Err(LockError::Timeout);
            }
            // `value` is the holder's remaining TTL in ms (negative when there is no holder):
            // a crashed holder publishes nothing, so wake when its TTL runs out.
            let mut nap = inner.recheck_interval.min(deadline - now);
            if let Ok(ms) = u64::try_from(value) {
                nap = nap.min(Duration::from_millis(ms));
            }
            let key = key.as_str();
            let _ = tokio::time::timeout(nap, async {
                loop {
                    match released.recv().await {
                        Ok(k) if &*k == key => return,
                        Ok(_) => {}
                        // Missed messages may include ours: look again.
                        Err(broadcast::error::RecvError::Lagged(_)) => return,
                        // The relay is gone: only the timeout wakes us.
                        Err(broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await
                        }
                    }
                }
            })
            .await;
        }
    }

    async fn try_acquire(&self, key: &LockKey, ttl: Duration) -> Result<Option<Lease>, LockError> {
        check_ttl(ttl)?;
        let names = self.names(key);
        let mut conn = self.inner.conn.clone();
        let started = Instant::now();
        let token: i64 = self
            .inner
            .try_acquire
            .key(&names.lock)
            .key(&names.fence)
            .key(&names.queue)
            .key(&names.alive)
            .arg(millis(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(u64::try_from(token)
            .ok()
            .filter(|&t| t > 0)
            .map(|token| Lease {
                key: key.clone(),
                token,
                expires_at: started + ttl,
            }))
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, LockError> {
        check_ttl(ttl)?;
        let names = self.names(&lease.key);
        let mut conn = self.inner.conn.clone();
        let started = Instant::now();
        let renewed: i64 = self
            .inner
            .renew
            .key(&names.lock)
            .arg(lease.token)
            .arg(millis(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if renewed == 1 {
            Ok(Lease {
                expires_at: started + ttl,
                ..lease.clone()
            })
        } else {
            Err(LockError::Lost)
        }
    }

    async fn release(&self, lease: &Lease) -> Result<(), LockError> {
        let names = self.names(&lease.key);
        let mut conn = self.inner.conn.clone();
        // 0 means the lease no longer held the lock: a no-op by the port's contract.
        let _released: i64 = self
            .inner
            .release
            .key(&names.lock)
            .arg(lease.token)
            .arg(&names.channel)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn waiting(&self, key: &LockKey) -> Result<usize, LockError> {
        let names = self.names(key);
        let mut conn = self.inner.conn.clone();
        let n: i64 = self
            .inner
            .waiting
            .key(&names.lock)
            .key(&names.fence)
            .key(&names.queue)
            .key(&names.alive)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(usize::try_from(n).unwrap_or_default())
    }
}
