//! Redis adapters. Today: the fair distributed lock ([`RedisLock`]).

mod lock;

pub use lock::{RedisLock, RedisLockConfig};
