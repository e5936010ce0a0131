//! Test support for end-to-end tests against the local control plane:
//! attach (starting it when needed), a fresh namespace per test, impersonated
//! clients, and waits that fail with what they last saw.

pub mod cluster;
pub mod namespace;
pub mod wait;

pub use cluster::{admin, client_as, ensure_crds, kubectl};
pub use namespace::TestNamespace;
pub use wait::{wait_for, wait_until};
