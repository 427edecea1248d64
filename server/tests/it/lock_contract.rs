//! Runs the `DistributedLock` contract against every adapter: the in-process lock and Redis
//! (`OIO_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`), each check under its own random key
//! prefix. Where Redis is unreachable the Redis checks are skipped with a message — except under
//! `CI=true`, where they fail: CI must never pass by skipping the real backend.

use crate::contract;

use std::sync::Arc;
use std::time::Duration;

use server::adapters::memory_lock::MemoryLock;
use server::adapters::redis::{RedisLock, RedisLockConfig};
use server::ports::lock::LockKey;

fn redis_url() -> String {
    std::env::var("OIO_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

/// A Redis lock under a fresh prefix, or `None` where Redis is unavailable outside CI.
async fn redis() -> Option<(RedisLock, String)> {
    let prefix = format!("oio-test:{}", uuid::Uuid::new_v4().simple());
    let config = RedisLockConfig::new(redis_url()).with_key_prefix(&prefix);
    match RedisLock::connect(config).await {
        Ok(lock) => Some((lock, prefix)),
        Err(e) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("Redis unreachable under CI=true ({e}); refusing to skip");
            }
            eprintln!("SKIPPED: Redis unreachable ({e})");
            None
        }
    }
}

/// Deletes every key a check left under its prefix (fence counters outlive their locks).
async fn clean_up(prefix: &str) {
    let Ok(client) = redis::Client::open(redis_url()) else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
    }
}

macro_rules! contract_on_every_adapter {
    ($($check:ident),* $(,)?) => {
        mod memory_adapter {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    crate::contract::lock::$check(super::Arc::new(super::MemoryLock::new())).await;
                }
            )*
        }
        mod redis_adapter {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let Some((lock, prefix)) = super::redis().await else { return };
                    crate::contract::lock::$check(super::Arc::new(lock)).await;
                    super::clean_up(&prefix).await;
                }
            )*
        }
    };
}

contract_on_every_adapter!(
    only_one_holder_at_a_time,
    try_acquire_fails_while_held,
    try_acquire_does_not_jump_the_queue,
    release_lets_the_next_waiter_in,
    fifo_order_under_50_contenders,
    fencing_tokens_strictly_increase,
    a_crashed_holder_loses_the_lock_after_its_ttl,
    renew_extends_the_lease,
    renew_after_expiry_is_lost,
    a_taken_over_lease_cannot_renew_or_release,
    release_is_idempotent,
    a_wait_timeout_returns_timeout_and_leaves_the_queue,
    an_abandoned_waiter_does_not_block_the_queue,
    independent_keys_do_not_block_each_other,
    a_zero_ttl_is_refused,
);

/// Two handles on one Redis prefix behave as one lock: what two orchestrator nodes see.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_nodes_sharing_a_prefix_share_the_lock() {
    let Some((node_a, prefix)) = redis().await else {
        return;
    };
    let node_b = RedisLock::connect(RedisLockConfig::new(redis_url()).with_key_prefix(&prefix))
        .await
        .expect("second node connects");
    let (a, b): (contract::lock::Lock, contract::lock::Lock) = (Arc::new(node_a), Arc::new(node_b));
    let key = LockKey::new("shared").expect("key");
    let held = a
        .acquire(&key, Duration::from_secs(30), Duration::from_secs(5))
        .await
        .expect("a acquires");
    assert!(b
        .try_acquire(&key, Duration::from_secs(30))
        .await
        .expect("try")
        .is_none());
    let waiter = {
        let b = b.clone();
        let key = key.clone();
        tokio::spawn(async move {
            b.acquire(&key, Duration::from_secs(30), Duration::from_secs(10))
                .await
        })
    };
    while b.waiting(&key).await.expect("waiting") == 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    a.release(&held).await.expect("release");
    let lease = waiter.await.expect("task").expect("b gets it");
    assert!(lease.token > held.token);
    clean_up(&prefix).await;
}
