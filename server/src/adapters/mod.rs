//! Driven adapters, one folder per technology.

pub mod git;
pub mod memory_lock;
pub mod opencode;
pub mod redis;
pub mod sql;
