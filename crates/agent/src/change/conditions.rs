//! The status conditions a ChangeRequest carries besides its phase: whether
//! it is approved, whether retrospective approvals are overdue, and whether a
//! review is owed. Types and reasons are constants; the controller adds
//! `lastTransitionTime` and `observedGeneration` when it writes them.

use super::lifecycle::Facts;
use crate::api::{ChangePhase, ChangeType};
use crate::policy::{retrospective_due_at, retrospective_overdue};
use chrono::SecondsFormat;

/// Condition type: the up-front approvals are complete and nobody rejects.
pub const APPROVED: &str = "Approved";
/// Condition type: an emergency change's retrospective approvals are late.
pub const RETROSPECTIVE_APPROVAL_OVERDUE: &str = "RetrospectiveApprovalOverdue";
/// Condition type: the change waits for its post-implementation review.
pub const REVIEW_REQUIRED: &str = "ReviewRequired";

pub const REASON_APPROVALS_COMPLETE: &str = "ApprovalsComplete";
pub const REASON_NO_APPROVALS_REQUIRED: &str = "NoApprovalsRequired";
pub const REASON_APPROVALS_PENDING: &str = "ApprovalsPending";
pub const REASON_REJECTED: &str = "Rejected";
pub const REASON_NOT_OWED: &str = "NotOwed";
pub const REASON_RATIFIED: &str = "Ratified";
pub const REASON_WITHIN_DEADLINE: &str = "WithinDeadline";
pub const REASON_DEADLINE_PASSED: &str = "DeadlinePassed";
pub const REASON_NOT_IMPLEMENTED: &str = "NotImplemented";
pub const REASON_REVIEW_NOT_REQUIRED: &str = "ReviewNotRequired";
pub const REASON_REVIEW_RECORDED: &str = "ReviewRecorded";
pub const REASON_REVIEW_MISSING: &str = "ReviewMissing";

/// One condition's content, before the controller stamps times on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionState {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl ConditionState {
    /// `True` or `False`, as Kubernetes conditions spell it.
    pub fn status_str(&self) -> &'static str {
        if self.status { "True" } else { "False" }
    }
}

/// All conditions, in a stable order.
pub fn conditions(f: &Facts<'_>) -> Vec<ConditionState> {
    vec![
        approved(f),
        retrospective_approval_overdue(f),
        review_required(f),
    ]
}

/// `RetrospectiveApprovalOverdue` holds: an implemented emergency change is
/// past its `retrospective.within` deadline without being ratified.
pub fn is_retrospective_approval_overdue(f: &Facts<'_>) -> bool {
    retrospective_overdue(f.policy, f.change_type, f.implemented_at, f.tally, f.now)
}

pub fn approved(f: &Facts<'_>) -> ConditionState {
    let (status, reason, message) = match (&f.tally.rejection, f.tally.outstanding()) {
        (Some(rejection), _) => (false, REASON_REJECTED, rejection.to_string()),
        (None, Some(outstanding)) => (false, REASON_APPROVALS_PENDING, outstanding),
        (None, None) if f.tally.rules.iter().all(|r| r.retrospective) => (
            true,
            REASON_NO_APPROVALS_REQUIRED,
            format!("{} changes need no up-front approvals", f.change_type),
        ),
        (None, None) => (
            true,
            REASON_APPROVALS_COMPLETE,
            format!("approvals complete ({})", f.tally.summary()),
        ),
    };
    ConditionState {
        type_: APPROVED,
        status,
        reason,
        message,
    }
}

pub fn retrospective_approval_overdue(f: &Facts<'_>) -> ConditionState {
    let state = |status, reason, message: String| ConditionState {
        type_: RETROSPECTIVE_APPROVAL_OVERDUE,
        status,
        reason,
        message,
    };
    let owed = f.tally.rules.iter().any(|r| r.retrospective);
    let Some(implemented_at) = f.implemented_at.filter(|_| owed) else {
        return state(
            false,
            REASON_NOT_OWED,
            "no retrospective approvals are owed".into(),
        );
    };
    if f.change_type != ChangeType::Emergency {
        return state(
            false,
            REASON_NOT_OWED,
            "only Emergency changes owe retrospective approvals".into(),
        );
    }
    if f.tally.is_ratified() {
        return state(
            false,
            REASON_RATIFIED,
            "retrospective approvals complete".into(),
        );
    }
    let what = match (&f.tally.rejection, f.tally.outstanding_retrospective()) {
        (Some(rejection), _) => rejection.to_string(),
        (None, Some(outstanding)) => outstanding,
        (None, None) => "retrospective approvals incomplete".into(),
    };
    match retrospective_due_at(f.policy, implemented_at) {
        Some(due) => {
            let due = due.to_rfc3339_opts(SecondsFormat::Secs, true);
            if is_retrospective_approval_overdue(f) {
                state(
                    true,
                    REASON_DEADLINE_PASSED,
                    format!("retrospective approvals were due at {due}: {what}"),
                )
            } else {
                state(
                    false,
                    REASON_WITHIN_DEADLINE,
                    format!("retrospective approvals due by {due}: {what}"),
                )
            }
        }
        None => state(
            false,
            REASON_WITHIN_DEADLINE,
            format!("no retrospective deadline set: {what}"),
        ),
    }
}

pub fn review_required(f: &Facts<'_>) -> ConditionState {
    let state = |status, reason, message: String| ConditionState {
        type_: REVIEW_REQUIRED,
        status,
        reason,
        message,
    };
    if !f.policy.requires_review(f.change_type) {
        return state(
            false,
            REASON_REVIEW_NOT_REQUIRED,
            format!(
                "the policy requires no review for {} changes",
                f.change_type
            ),
        );
    }
    if let Some(outcome) = f.review {
        return state(
            false,
            REASON_REVIEW_RECORDED,
            format!("post-implementation review recorded ({outcome:?})"),
        );
    }
    let done = matches!(
        f.phase,
        ChangePhase::Implemented | ChangePhase::Failed | ChangePhase::RolledBack
    );
    if done {
        state(
            true,
            REASON_REVIEW_MISSING,
            "a post-implementation review is required before the change closes; \
             record it in status.review through the status subresource"
                .into(),
        )
    } else {
        state(
            false,
            REASON_NOT_IMPLEMENTED,
            format!("no review is due while the change is {}", f.phase),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ReviewOutcome, Risk};
    use crate::change::lifecycle::tests::{at, facts};
    use crate::policy::requirements::tests::client_a;
    use crate::policy::tally::tests::{approve, reject};
    use crate::policy::{Tally, required_approvals, tally};
    use ChangePhase::*;

    fn emergency(approvals: &[crate::api::ApprovalRecord]) -> Tally {
        let rules = required_approvals(&client_a(), ChangeType::Emergency, Risk::High);
        tally(&rules, approvals, Some("alice"), true)
    }

    #[test]
    fn overdue_retrospective_is_flagged() {
        let policy = client_a();
        let owed = emergency(&[]);
        let mut f = facts(Implemented, ChangeType::Emergency, &policy, &owed);
        f.implemented_at = Some(at(0));
        f.now = at(23);
        let c = retrospective_approval_overdue(&f);
        assert_eq!((c.status, c.reason), (false, REASON_WITHIN_DEADLINE));
        f.now = at(24);
        assert!(is_retrospective_approval_overdue(&f));
        let c = retrospective_approval_overdue(&f);
        assert_eq!((c.status_str(), c.reason), ("True", REASON_DEADLINE_PASSED));
        assert!(
            c.message
                .ends_with("1 of 1 from group msp:cab still needed"),
            "{}",
            c.message
        );
    }

    #[test]
    fn a_retrospective_rejection_stays_overdue() {
        let policy = client_a();
        let rejected = emergency(&[reject("cab-member", &["msp:cab"])]);
        let mut f = facts(Implemented, ChangeType::Emergency, &policy, &rejected);
        f.implemented_at = Some(at(0));
        f.now = at(48);
        let c = retrospective_approval_overdue(&f);
        assert!(c.status);
        assert!(c.message.contains("rejected by cab-member"));
    }

    #[test]
    fn a_ratified_emergency_is_not_overdue() {
        let policy = client_a();
        let ratified = emergency(&[approve("cab-member", &["msp:cab"])]);
        let mut f = facts(Implemented, ChangeType::Emergency, &policy, &ratified);
        f.implemented_at = Some(at(0));
        f.now = at(48);
        assert_eq!(retrospective_approval_overdue(&f).reason, REASON_RATIFIED);
    }

    #[test]
    fn nothing_is_owed_before_implementation() {
        let policy = client_a();
        let owed = emergency(&[]);
        let f = facts(Approved, ChangeType::Emergency, &policy, &owed);
        assert_eq!(retrospective_approval_overdue(&f).reason, REASON_NOT_OWED);
    }

    #[test]
    fn approved_condition_says_what_is_missing() {
        let policy = client_a();
        let rules = required_approvals(&policy, ChangeType::Normal, Risk::Low);
        let pending = tally(&rules, &[], Some("alice"), true);
        let f = facts(PendingApproval, ChangeType::Normal, &policy, &pending);
        assert_eq!(
            approved(&f),
            ConditionState {
                type_: APPROVED,
                status: false,
                reason: REASON_APPROVALS_PENDING,
                message: "1 of 1 from group client-a:approvers still needed".into(),
            }
        );

        let done = tally(
            &rules,
            &[approve("bob", &["client-a:approvers"])],
            Some("alice"),
            true,
        );
        let f = facts(Approved, ChangeType::Normal, &policy, &done);
        assert_eq!(approved(&f).reason, REASON_APPROVALS_COMPLETE);

        let owed = emergency(&[]);
        let f = facts(Approved, ChangeType::Emergency, &policy, &owed);
        assert_eq!(approved(&f).reason, REASON_NO_APPROVALS_REQUIRED);
    }

    #[test]
    fn review_is_required_once_implemented() {
        let policy = client_a();
        let none = Tally {
            rules: vec![],
            upfront_satisfied: true,
            upfront_complete_at: None,
            retrospective_satisfied: true,
            rejection: None,
            ignored: vec![],
        };
        let mut f = facts(Implementing, ChangeType::Normal, &policy, &none);
        assert_eq!(review_required(&f).reason, REASON_NOT_IMPLEMENTED);
        f.phase = RolledBack;
        let c = review_required(&f);
        assert_eq!((c.status, c.reason), (true, REASON_REVIEW_MISSING));
        f.review = Some(ReviewOutcome::PartiallySuccessful);
        assert_eq!(review_required(&f).reason, REASON_REVIEW_RECORDED);
        f.change_type = ChangeType::Standard;
        assert_eq!(review_required(&f).reason, REASON_REVIEW_NOT_REQUIRED);
        assert_eq!(
            conditions(&f).iter().map(|c| c.type_).collect::<Vec<_>>(),
            vec![APPROVED, RETROSPECTIVE_APPROVAL_OVERDUE, REVIEW_REQUIRED]
        );
    }
}
