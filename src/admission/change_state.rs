//! A change's phase as admission must see it *now*: the controller's
//! recorded phase, unless approvals, a rejection, a timeout or a cancel have
//! happened since it last wrote. Admission never waits for a reconcile.

use crate::api::{ChangePhase, ChangePolicySpec, ChangeRequest};
use crate::policy::{approval_expires_at, required_approvals, tally};
use chrono::{DateTime, Utc};

pub struct ChangeState {
    pub phase: ChangePhase,
    /// What up-front approvals are missing, e.g. `1 of 1 from group g still needed`.
    pub outstanding: Option<String>,
    /// `rejected by bob: reason`, when rejected.
    pub rejection: Option<String>,
}

pub fn effective(
    change: &ChangeRequest,
    policy: &ChangePolicySpec,
    now: DateTime<Utc>,
) -> ChangeState {
    let recorded = change.phase();
    let state = |phase| ChangeState {
        phase,
        outstanding: None,
        rejection: None,
    };
    if recorded != ChangePhase::PendingApproval {
        return state(recorded);
    }
    if change.spec.cancel == Some(true) {
        return state(ChangePhase::Cancelled);
    }
    let requirements = required_approvals(policy, change.spec.change_type, change.spec.risk);
    let t = tally(
        &requirements,
        change.approvals(),
        change.requested_by(),
        policy.separation_of_duties(),
    );
    if let Some(rejection) = &t.rejection {
        return ChangeState {
            rejection: Some(rejection.to_string()),
            ..state(ChangePhase::Rejected)
        };
    }
    if t.is_approved() {
        return state(ChangePhase::Approved);
    }
    let created = change
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| crate::time::to_chrono(&t.0));
    if created
        .and_then(|c| approval_expires_at(policy, c))
        .is_some_and(|at| at <= now)
    {
        return state(ChangePhase::Expired);
    }
    ChangeState {
        outstanding: t.outstanding(),
        ..state(ChangePhase::PendingApproval)
    }
}
