//! Test support for the orchestrator, shared by every crate's tests:
//!
//! - [`fake_llm`]: a scripted OpenAI-compatible LLM server, so OpenCode can run without a real
//!   model and tests decide exactly what "the model" answers;
//! - [`opencode`]: runs the real OpenCode server (the pinned npm package) against that fake, in
//!   an isolated home, and tears it down;
//! - [`git`]: throwaway git repositories for OpenCode to work in.
//!
//! Test support, not product: errors are `anyhow`, and a missing OpenCode binary is a skip outside
//! CI but a failure under `CI=true`.

pub mod fake_llm;
pub mod git;
pub mod opencode;

pub use fake_llm::{FakeLlm, Reply};
pub use opencode::OpenCodeServer;
