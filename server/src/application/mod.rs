//! Application services: use cases over the domain, generic over the driven ports.

mod session_service;

pub use session_service::SessionService;
