//! The ChangeRequest lifecycle: phase transitions and the hash-chained history.
//! `transitions` says which phase moves exist, `lifecycle` when to take them,
//! `conditions` what the status conditions say, `history` the audit trail.

pub mod conditions;
pub mod history;
pub mod lifecycle;
pub mod transitions;

pub use history::{ChainBroken, append, is_append_only, verify};
pub use lifecycle::{Facts, Rollback, Rollout, Transition, next_phase};
pub use transitions::{IllegalTransition, allowed, allowed_for};
