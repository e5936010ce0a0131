//! Approval deadlines: when a pending change expires, and when an emergency
//! change's retrospective approvals fall due. Times in, times out; the
//! controller requeues itself at these instants.

use super::tally::Tally;
use crate::api::{ChangePolicySpec, ChangeType};
use chrono::{DateTime, Utc};

/// When a change created at `created` expires unless approved, or `None`
/// when the policy sets no `approvalTimeout`.
pub fn approval_expires_at(
    policy: &ChangePolicySpec,
    created: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    after(created, policy.approval_timeout?)
}

/// When the retrospective approvals of an emergency change implemented at
/// `implemented` are due, or `None` when the policy sets no deadline.
pub fn retrospective_due_at(
    policy: &ChangePolicySpec,
    implemented: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    after(implemented, policy.approvals.retrospective.as_ref()?.within)
}

/// An emergency change implemented at `implemented_at` (its first recorded
/// implementation) is still not ratified (retrospective approvals missing, or
/// rejected) at or after its due time. Other change types owe nothing
/// retrospectively; without a deadline nothing is ever overdue.
pub fn retrospective_overdue(
    policy: &ChangePolicySpec,
    change_type: ChangeType,
    implemented_at: Option<DateTime<Utc>>,
    tally: &Tally,
    now: DateTime<Utc>,
) -> bool {
    change_type == ChangeType::Emergency
        && !tally.is_ratified()
        && implemented_at
            .and_then(|at| retrospective_due_at(policy, at))
            .is_some_and(|due| now >= due)
}

/// `start + duration`. The schema forbids non-positive durations; a negative
/// one that slips through, or one beyond chrono's range, sets no deadline.
fn after(start: DateTime<Utc>, duration: kube::core::Duration) -> Option<DateTime<Utc>> {
    start.checked_add_signed(crate::time::to_time_delta(duration)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::requirements::tests::{client_a, req};
    use crate::policy::tally::tally;
    use crate::policy::tally::tests::approve;

    fn at(hours: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + chrono::TimeDelta::days(20_000) + chrono::TimeDelta::hours(hours)
    }

    #[test]
    fn approval_timeout_counts_from_creation() {
        assert_eq!(approval_expires_at(&client_a(), at(0)), Some(at(168)));
        let mut policy = client_a();
        policy.approval_timeout = None;
        assert_eq!(approval_expires_at(&policy, at(0)), None);
    }

    #[test]
    fn retrospective_deadline_counts_from_implementation() {
        assert_eq!(retrospective_due_at(&client_a(), at(5)), Some(at(29)));
    }

    #[test]
    fn overdue_retrospective_is_flagged() {
        let owed = tally(&[req("msp:cab", 1, true)], &[], None, true);
        let policy = client_a();
        let overdue =
            |now| retrospective_overdue(&policy, ChangeType::Emergency, Some(at(0)), &owed, now);
        assert!(!overdue(at(23)));
        assert!(overdue(at(24)));
        assert!(!retrospective_overdue(
            &policy,
            ChangeType::Emergency,
            None,
            &owed,
            at(100)
        ));
        assert!(!retrospective_overdue(
            &policy,
            ChangeType::Normal,
            Some(at(0)),
            &owed,
            at(100)
        ));
    }

    #[test]
    fn ratified_emergency_is_not_overdue() {
        let done = tally(
            &[req("msp:cab", 1, true)],
            &[approve("cab-member", &["msp:cab"])],
            None,
            true,
        );
        assert!(!retrospective_overdue(
            &client_a(),
            ChangeType::Emergency,
            Some(at(0)),
            &done,
            at(100)
        ));
    }

    #[test]
    fn negative_durations_set_no_deadline() {
        let mut policy = client_a();
        policy.approval_timeout = "-1h".parse().ok();
        assert!(policy.approval_timeout.is_some());
        assert_eq!(approval_expires_at(&policy, at(0)), None);
    }
}
