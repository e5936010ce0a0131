//! Approval policy: which approvals a change needs and which it has received.
//! Pure functions over the API types, no Kubernetes I/O: the controller and
//! the admission webhook fetch the objects and call in here.

pub mod deadlines;
pub mod eligibility;
mod matching;
pub mod requirements;
pub mod select;
pub mod tally;

pub use deadlines::{approval_expires_at, retrospective_due_at, retrospective_overdue};
pub use eligibility::{Caller, Ineligible, check_decision};
pub use requirements::{Requirement, required_approvals};
pub use select::{Ambiguity, Scope, Selection, select_policy};
pub use tally::{IgnoreReason, Ignored, Rejection, Tally, tally};
