//! Driven adapters, one folder per technology: each implements ports of `oio-application`
//! (SQL storage, git worktrees, OpenCode servers, Redis locks). Nothing inside the application
//! can name them: it does not depend on this crate.

pub mod git;
pub mod memory_lock;
pub mod opencode;
pub mod redact;
pub mod redis;
pub mod sql;

pub use redact::redact_url;
