//! The domain's integration tests: one binary, a module per area.

mod execution;
mod routing;
mod session_state_machine;
mod task_graph;
