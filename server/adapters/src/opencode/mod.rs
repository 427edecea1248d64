//! The OpenCode adapter: the [`AgentServer`](oio_application::ports::AgentServer) port over OpenCode's
//! HTTP API (`opencode serve`, observed at version 1.18.33), and the [`Fleet`] of servers the
//! orchestrator spreads sessions over.
//!
//! - `client`: [`OpenCodeClient`], one server: requests, retries, rate limit, breaker.
//! - `events`: the SSE event stream, decoded and kept alive across drops and silences.
//! - `fleet`: several servers, health-checked, with least-loaded placement.
//! - `supervisor`: [`Supervisor`], `opencode serve` processes this orchestrator starts, watches
//!   (exit, health, memory) and restarts under a stable name.
//! - `breaker`, `policy`: the circuit breaker and the tunables.
//! - `wire`: OpenCode's JSON shapes, translated into the port's types.

mod breaker;
mod client;
pub mod events;
mod fleet;
mod policy;
pub mod settings;
pub mod supervisor;
mod wire;

pub use breaker::BreakerState;
pub use client::OpenCodeClient;
pub use events::{
    decode_events, decode_frame, measure_decode, DecodeFigures, DecodedEvent, FrameError,
};
pub use fleet::{Fleet, HealthChecks, ServerReport, ServerSlot};
pub use policy::{BreakerPolicy, EventStreamPolicy, RateLimit, ResiliencePolicy, RetryPolicy};
pub use supervisor::{RestartReason, SupervisedSpec, Supervisor, SupervisorError};
