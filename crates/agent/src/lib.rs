//! changegate's Kubernetes enforcement agent (DESIGN §7): it long-polls
//! the server for its cluster's bundle (`bundle`), and its admission
//! webhook decides governed workloads from it in memory (`enforce`, over
//! the core's gate decision). Kubernetes I/O lives only at the edges
//! (`webhook`, `operator`).

pub mod bundle;
pub mod enforce;
pub mod operator;
pub mod webhook;
