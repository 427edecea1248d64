//! Port contracts: each written once and run by every adapter of the port.

pub mod session_repository;
