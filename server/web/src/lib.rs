//! The web layer (driving adapters): health probes, the REST API and its event stream, the
//! `/status` wall, sign-in and sessions, request limits, the metrics endpoint, and the services
//! the Leptos pages call. It reaches the application through `oio-application` only; no storage
//! or OpenCode adapter is in its dependencies.

pub mod api;
pub mod app_services;
pub mod auth;
mod fleet;
mod health;
pub mod limits;
pub mod metrics;
pub mod settings;
mod status;

pub use health::routes as health_routes;
pub use status::routes as status_routes;
