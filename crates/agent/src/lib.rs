//! changegate: ITIL change and release management for Kubernetes.
//!
//! `api` holds the resource types; the engines (`window`, `policy`,
//! `change`, `admission`) are pure functions over them; Kubernetes I/O lives
//! only at the edges.

pub mod admission;
pub mod api;
pub mod change;
pub mod operator;
pub mod policy;
pub mod time;
pub mod webhook;
pub mod window;
