//! A change's phase as admission must see it *now*: the controller's
//! recorded phase, advanced by the lifecycle's own `next_phase` when
//! approvals, a rejection, a timeout or a cancel have happened since the
//! controller last wrote. Admission never waits for a reconcile, and it
//! never decides a phase differently from the controller.

use crate::api::{BackoutStrategy, ChangePhase, ChangePolicySpec, ChangeRequest};
use crate::change::{Facts, Rollback, Rollout, next_phase};
use crate::policy::{required_approvals, tally};
use chrono::{DateTime, Utc};

pub struct ChangeState {
    pub phase: ChangePhase,
    /// What up-front approvals are missing, e.g. `1 of 1 from group g still needed`.
    pub outstanding: Option<String>,
    /// Why the change was rejected or expired, e.g. `rejected by bob: not now`.
    pub reason: Option<String>,
}

pub fn effective(
    change: &ChangeRequest,
    policy: &ChangePolicySpec,
    now: DateTime<Utc>,
) -> ChangeState {
    let recorded = change.phase();
    let status = change.status.as_ref();
    let requirements = required_approvals(policy, change.spec.change_type, change.spec.risk);
    let t = tally(
        &requirements,
        change.approvals(),
        change.requested_by(),
        policy.separation_of_duties(),
    );
    let facts = Facts {
        phase: recorded,
        change_type: change.spec.change_type,
        created_at: change
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(now, |t| crate::time::to_chrono(&t.0)),
        not_after: change.spec.schedule.and_then(|s| s.not_after),
        cancel: change.spec.cancel == Some(true),
        backout: change
            .spec
            .backout
            .as_ref()
            .map_or(BackoutStrategy::Manual, |b| b.strategy),
        policy,
        tally: &t,
        implemented_at: status.and_then(|s| s.implementations.iter().map(|i| i.at).min()),
        // Rollouts, rollbacks and reviews are the controller's to observe;
        // admission only needs the decisions made before implementation.
        rollout: Rollout::None,
        rollback: Rollback::None,
        review: None,
        now,
    };
    let step = next_phase(&facts).filter(|step| {
        use ChangePhase::{Approved, Cancelled, Expired, Implementing, Rejected};
        matches!(
            step.to,
            Approved | Implementing | Rejected | Expired | Cancelled
        )
    });
    let (phase, reason) = step.map_or((recorded, None), |step| (step.to, Some(step.reason)));
    let outstanding = (phase == ChangePhase::PendingApproval)
        .then(|| t.outstanding())
        .flatten();
    ChangeState {
        phase,
        outstanding,
        reason,
    }
}
