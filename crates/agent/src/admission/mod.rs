//! Admission decisions, as pure functions: whether a workload change is
//! covered by an approved change in an open window, and the
//! pieces that decision is built from (spec diffs, path patterns, selectors).

pub mod candidates;
pub mod change_state;
pub mod decision;
pub mod selector;
pub mod workload;

/// Spec diffs and path patterns are the domain's (`changegate_core::gate`).
pub use changegate_core::gate::{diff, paths};

pub use decision::{Decision, Operation, Reason, TenantView, WorkloadRequest, decide};

#[cfg(test)]
mod tests;
