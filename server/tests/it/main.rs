//! The server's integration tests: one binary (one link of the whole server) with a module per
//! area. Shared fixtures live in `support` (the app on a random port, one store fixture per
//! backend, the engine rig, private services) and `contract` (port contracts run by every
//! adapter).

mod contract;
mod support;

mod admission;
mod agents;
mod api;
mod api_fuzz;
mod auth;
mod cli;
mod decomposition;
mod engine;
mod faults;
mod guardrails;
mod http;
mod inbox;
mod inbox_cli;
mod lock_contract;
mod metrics;
mod opencode_faults;
mod opencode_real;
mod pages;
mod routing;
mod scale_out;
mod storage_contract;
mod supervision;
mod task_execution;
mod task_trees;
mod worktrees;
