//! End-to-end tests against the local control plane (`make test-e2e`).
//! Each test uses its own namespace and cleans up after itself.

mod chart;
mod enforcement;
mod install;
mod leader;
mod resources;
mod smoke;
mod staleness;
mod support;
mod tls;
