//! Port contracts: each written once and run by every adapter of the port
//! (see `storage_contract.rs` and `lock_contract.rs`). Every check gets a fresh, empty store.

pub mod agent_repository;
pub mod credential_store;
pub mod dispatch_queue;
pub mod inbox;
pub mod lock;
pub mod session_repository;
pub mod task_repository;
pub mod unit_of_work;

use server::ports::NewEvent;

pub use crate::support::{seed_agents, seed_sessions, seed_tasks};

/// A session event as the outbox stores it, for comparisons.
pub fn event_of(event: &domain::SessionEvent) -> NewEvent {
    NewEvent::from(event)
}
