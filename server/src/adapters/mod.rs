//! Driven adapters, one folder per technology.

pub mod git;
pub mod memory_lock;
pub mod opencode;
pub mod postgres;
pub mod redis;
mod sql;
pub mod sqlite;
