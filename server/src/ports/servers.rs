//! The agent servers a replica can place sessions on, as the engine sees them: which ones take
//! work now, and a handle to each by name (the name is what the dispatch queue stores).

use std::sync::Arc;

use super::{AgentServer, ServerCapacity};

pub trait AgentServers: Send + Sync + 'static {
    /// Servers that can take new sessions now (reachable, breaker not open), with the number of
    /// sessions each may run at once across every replica.
    fn available(&self) -> Vec<ServerCapacity>;

    /// The server of that name, reachable or not (a running session may need to be aborted or
    /// re-attached on it).
    fn get(&self, name: &str) -> Option<Arc<dyn AgentServer>>;
}
