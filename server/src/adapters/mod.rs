//! Driven adapters, one folder per technology.

pub mod opencode;
pub mod postgres;
mod sql;
pub mod sqlite;
