//! Test support for end-to-end tests against the local control plane:
//! attach (starting it when needed), a fresh namespace or tenant per test,
//! impersonated kubectl, and waits that fail with what they last saw.

pub mod cluster;
pub mod namespace;
pub mod scratch;
pub mod server;
pub mod tenant;
pub mod wait;

pub use cluster::{admin, kubectl, kubectl_plugin, kubectl_stdin};
pub use namespace::TestNamespace;
pub use scratch::Scratch;
pub use tenant::{Setup, Tenant};
pub use wait::{wait_for, wait_until};
