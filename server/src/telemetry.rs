//! The process-wide `tracing` subscriber, set once at start-up.

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::{LogFormat, LogSettings};

/// Installs the subscriber; `RUST_LOG`, when set, replaces the configured filter.
/// Calling it again (tests start many apps in one process) is harmless.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match settings.format {
        LogFormat::Json => registry
            .with(fmt::layer().json().with_current_span(true))
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().with_target(true)).try_init(),
    };
    // Already installed (a second app in the same test process): keep the first.
    let _ = result;
}
