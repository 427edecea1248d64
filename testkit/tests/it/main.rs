//! The testkit's integration tests: one binary, a module per harness.

mod fake_llm;
mod real_opencode;
