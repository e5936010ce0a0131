//! The admission webhook: the HTTPS route over the in-memory namespace
//! store and the bundle, the self-managed TLS certificate and the webhook
//! configuration.

pub mod approval;
pub mod certs;
pub mod check;
pub mod metrics;
pub mod registration;
pub mod review;
pub mod server;
pub mod stamp;
pub mod stores;
pub mod tls_secret;
