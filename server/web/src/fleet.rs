//! The fleet as every view shows it: the OpenCode servers' standing and the dispatch queue's
//! depth, read once here. `/readyz`, `/api/v1/fleet` and the dashboard format it each their own
//! way.

use std::time::Duration;

use oio_application::ports::{AgentServers, DispatchQueue, QueueDepth, ServerReport};

/// How long the queue depth may take before it is reported unavailable: every view of the fleet
/// is read on a request, and a stuck database must not hold it.
pub const QUEUE_TIMEOUT: Duration = Duration::from_secs(2);

/// The servers and, when a queue was asked for, its depth or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetView {
    /// Named by their base URL with any credentials redacted (see the adapters' fleet).
    pub servers: Vec<ServerReport>,
    pub queue: Option<Result<QueueDepth, String>>,
}

/// The fleet's standing now; the queue's depth too when `queue` is given.
pub async fn fleet_view(fleet: &dyn AgentServers, queue: Option<&dyn DispatchQueue>) -> FleetView {
    let servers = fleet.report();
    let queue = match queue {
        None => None,
        Some(queue) => Some(
            match tokio::time::timeout(QUEUE_TIMEOUT, queue.depth()).await {
                Ok(Ok(depth)) => Ok(depth),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {QUEUE_TIMEOUT:?}")),
            },
        ),
    };
    FleetView { servers, queue }
}
