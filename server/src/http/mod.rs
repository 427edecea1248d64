//! Inbound HTTP: health probes beside the Leptos routes. REST and SSE routes join here.

mod health;

pub use health::routes as health_routes;
