//! The admission webhooks: HTTPS routes over in-memory stores,
//! identity stamping, integrity of changegate's own resources, the
//! self-managed TLS certificate and the webhook configurations.

pub mod certs;
#[cfg(test)]
mod fixtures;
pub mod governance;
pub mod integrity;
pub mod metrics;
pub mod registration;
pub mod review;
pub mod server;
pub mod stamp;
pub mod stores;
pub mod tls_secret;
