//! The orchestrator binary's library: settings (`config`), storage and wiring (`startup`), the
//! command line (`cli`) and benchmarks (`bench`), around the crates that hold the hexagon —
//! `oio-application` (ports and use cases), `oio-adapters` (what implements the driven ports) and
//! `oio-web` (HTTP). Their modules are re-exported under their old names, so `server::ports`,
//! `server::adapters::sql` or `server::http::api` still name them.

pub use oio_adapters as adapters;
pub use oio_application as application;
pub use oio_application::{metrics, ports};
pub use oio_web as http;

pub mod bench;
pub mod cli;
pub mod config;
pub mod data_dir;
pub mod startup;
pub mod storage;
pub mod telemetry;
