//! Driven ports: what the application layer needs from the outside world. One trait per concern,
//! each with one contract test suite that every adapter of it runs.

mod session_repository;

pub use session_repository::{RepositoryError, SessionRepository};
