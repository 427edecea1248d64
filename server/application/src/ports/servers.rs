//! The agent servers a replica can place sessions on, as the engine sees them: which ones take
//! work now, and a handle to each by name (the name is what the dispatch queue stores).

use std::sync::Arc;

use super::{AgentServer, ServerCapacity};

/// A server's circuit breaker: closed (calls go through), open (calls refused until a probe is
/// due), half-open (one probe call at a time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// The state's name in reports and on pages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// A server's standing, as operators and routing see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerReport {
    pub server: String,
    pub healthy: bool,
    pub breaker: BreakerState,
    pub in_flight: u32,
    pub capacity: u32,
}

pub trait AgentServers: Send + Sync + 'static {
    /// Servers that can take new sessions now (reachable, breaker not open), with the number of
    /// sessions each may run at once across every replica.
    fn available(&self) -> Vec<ServerCapacity>;

    /// The server of that name, reachable or not (a running session may need to be aborted or
    /// re-attached on it).
    fn get(&self, name: &str) -> Option<Arc<dyn AgentServer>>;

    /// Every server's standing, for operators (health, breaker, load).
    fn report(&self) -> Vec<ServerReport>;
}
