//! The orchestrator: application services, driven ports and their adapters, inbound HTTP, settings
//! and wiring. `main.rs` is only the command line around [`startup::Application`].

pub mod adapters;
pub mod application;
pub mod bench;
pub mod cli;
pub mod config;
pub mod http;
pub mod metrics;
pub mod ports;
pub mod startup;
pub mod storage;
pub mod telemetry;
