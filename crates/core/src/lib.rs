//! changegate's domain: who may do what in which tenant, how approval
//! boards decide, how a change moves through its states, what approvals
//! sign, how the audit chain links, and when windows are open.
//!
//! Pure: no I/O, no clock (callers pass `now`), no web, database or
//! Kubernetes types. The server and the agent both build on it.

pub mod approval;
pub mod audit;
pub mod authz;
pub mod board;
pub mod catalogue;
pub mod change;
pub mod fingerprint;
pub mod gate;
pub mod ids;
pub mod policy;
pub mod risk;
pub mod role;
pub mod routing;
pub mod slot;
pub mod window;

pub use ids::{ChangeId, ChangeNumber, Email, Slug, TenantId, UserId};
pub use role::{Role, UserKind};
