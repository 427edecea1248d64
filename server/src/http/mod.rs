//! Inbound HTTP: health probes beside the Leptos routes. REST and SSE routes join here.

pub mod api;
pub mod app_services;
pub mod auth;
mod health;
pub mod limits;
pub mod metrics;

pub use health::routes as health_routes;
