//! When a ChangeRequest moves to its next phase: a pure function of what the
//! controller observed (approvals tally, rollout, rollback, review, clock).
//! The controller records each returned transition in the history.

use crate::api::{
    BackoutStrategy, ChangePhase, ChangePolicySpec, ChangeType, ReviewOutcome, RolloutState,
    TargetRollout,
};
use crate::policy::{Tally, approval_expires_at};
use chrono::{DateTime, SecondsFormat, Utc};

/// The observed rollout of the change's targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rollout {
    /// Nothing observed yet.
    None,
    Progressing,
    Succeeded,
    Failed {
        reason: String,
    },
}

impl Rollout {
    /// One verdict for all targets: any failure fails the change (the
    /// rollback decision must not wait for the others), success needs every
    /// target to succeed, anything else is still progressing.
    pub fn from_targets(targets: &[TargetRollout]) -> Self {
        if let Some(failed) = targets.iter().find(|t| t.state == RolloutState::Failed) {
            let detail = failed.message.as_deref().unwrap_or("rollout failed");
            return Self::Failed {
                reason: format!("{} {}: {detail}", failed.kind, failed.name),
            };
        }
        if targets.is_empty() {
            Self::None
        } else if targets.iter().all(|t| t.state == RolloutState::Succeeded) {
            Self::Succeeded
        } else {
            Self::Progressing
        }
    }
}

/// The observed rollback, if one was triggered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rollback {
    None,
    InProgress,
    Completed,
    Failed { reason: String },
}

/// Everything `next_phase` looks at. The controller fills it from the
/// ChangeRequest, its policy and what it observed of the workloads.
#[derive(Clone, Debug)]
pub struct Facts<'a> {
    pub phase: ChangePhase,
    pub change_type: ChangeType,
    /// `metadata.creationTimestamp`: the approval timeout counts from here.
    pub created_at: DateTime<Utc>,
    /// `spec.schedule.notAfter`. `notBefore` only delays implementation,
    /// which admission enforces and this function sees as an implementation
    /// record, so it is not needed here.
    pub not_after: Option<DateTime<Utc>>,
    /// `spec.cancel`.
    pub cancel: bool,
    /// `spec.backout.strategy` (Manual when absent).
    pub backout: BackoutStrategy,
    pub policy: &'a ChangePolicySpec,
    pub tally: &'a Tally,
    /// The first `status.implementations` entry: when a workload change was
    /// first admitted under this change.
    pub implemented_at: Option<DateTime<Utc>>,
    pub rollout: Rollout,
    pub rollback: Rollback,
    /// `status.review`, if recorded.
    pub review: Option<ReviewOutcome>,
    pub now: DateTime<Utc>,
}

/// A phase change to record, with the reason written to the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub to: ChangePhase,
    pub reason: String,
}

/// The next phase the facts call for, or `None` to stay. Rules, in priority
/// order (the first that applies wins):
///
/// 1. **Cancel**: `spec.cancel` before implementation → Cancelled.
/// 2. **Rejection**: an eligible rejection before implementation → Rejected.
/// 3. **Expiry**: PendingApproval past the approval timeout, or
///    PendingApproval/Approved past `notAfter`, → Expired.
/// 4. **Approval**: PendingApproval with its up-front approvals → Approved;
///    an emergency that already has an implementation goes straight to
///    Implementing (its retrospective approvals are still owed).
/// 5. **Start**: Approved with an implementation recorded → Implementing.
/// 6. **Rollout**: Implementing → Implemented or Failed.
/// 7. **Rollback**: Failed with a completed rollback → RolledBack.
/// 8. **Closure**: Implemented, Failed or RolledBack → Closed once the review
///    the policy requires is recorded, an emergency is ratified, and a
///    Failed change is not waiting for its rollback.
///
/// Rules 1–3 hold only while no implementation is recorded: once admission
/// let a workload change through, the work has happened and the phase must
/// say so; a later rejection then keeps the change from closing instead.
/// Every transition returned passes [`super::allowed_for`]; the chain of
/// transitions is acyclic, so repeated calls settle.
pub fn next_phase(f: &Facts<'_>) -> Option<Transition> {
    use ChangePhase::{
        Approved, Cancelled, Closed, Expired, Failed, Implemented, Implementing, PendingApproval,
        Rejected, RolledBack,
    };
    let before_implementation = matches!(f.phase, PendingApproval | Approved);
    if before_implementation && f.implemented_at.is_none() {
        if f.cancel {
            return go(Cancelled, "withdrawn by its requester (spec.cancel)");
        }
        if let Some(rejection) = &f.tally.rejection {
            return go(Rejected, rejection.to_string());
        }
        if let Some(reason) = expiry(f) {
            return go(Expired, reason);
        }
    }
    match f.phase {
        // Rejections were handled above unless an implementation exists; an
        // admitted implementation was approved when it was admitted.
        PendingApproval if f.tally.upfront_satisfied => match f.implemented_at {
            Some(at) if f.change_type == ChangeType::Emergency => {
                let implemented = format!("emergency change implemented at {}", rfc3339(at));
                go(
                    Implementing,
                    match f.tally.outstanding_retrospective() {
                        Some(owed) => {
                            format!("{implemented}; retrospective approvals owed: {owed}")
                        }
                        None => implemented,
                    },
                )
            }
            _ => go(Approved, approval_reason(f)),
        },
        Approved => f.implemented_at.and_then(|at| {
            go(
                Implementing,
                format!("a workload change was admitted at {}", rfc3339(at)),
            )
        }),
        Implementing => match &f.rollout {
            Rollout::Succeeded => go(Implemented, "rollout succeeded"),
            Rollout::Failed { reason } => go(Failed, format!("rollout failed: {reason}")),
            Rollout::None | Rollout::Progressing => None,
        },
        Failed if f.rollback == Rollback::Completed => {
            go(RolledBack, "rollback completed per the backout plan")
        }
        Implemented | Failed | RolledBack => closure(f).and_then(|reason| go(Closed, reason)),
        PendingApproval | Closed | Rejected | Expired | Cancelled => None,
    }
}

fn go(to: ChangePhase, reason: impl Into<String>) -> Option<Transition> {
    Some(Transition {
        to,
        reason: reason.into(),
    })
}

fn expiry(f: &Facts<'_>) -> Option<String> {
    if f.phase == ChangePhase::PendingApproval
        && let Some(deadline) = approval_expires_at(f.policy, f.created_at)
    {
        // Approvals complete by the deadline count even when the phase
        // was not recorded in time; later ones do not.
        let approved_in_time = f.tally.upfront_complete_at.is_some_and(|t| t <= deadline);
        if f.now >= deadline && !approved_in_time {
            return Some(format!(
                "not approved by {} (approvalTimeout)",
                rfc3339(deadline)
            ));
        }
    }
    let not_after = f.not_after.filter(|&t| f.now >= t)?;
    Some(format!(
        "schedule.notAfter {} passed before implementation started",
        rfc3339(not_after)
    ))
}

fn approval_reason(f: &Facts<'_>) -> String {
    let upfront = f.tally.rules.iter().any(|r| !r.retrospective);
    match (upfront, f.change_type) {
        (true, _) => format!("approvals complete ({})", f.tally.summary()),
        (false, ChangeType::Emergency) => {
            "no up-front approvals required for an Emergency change; \
             retrospective approvals are owed after implementation"
                .into()
        }
        (false, t) => format!("pre-approved: {t} changes need no approvals under this policy"),
    }
}

/// Why the change may close now, or `None` while something is outstanding.
fn closure(f: &Facts<'_>) -> Option<String> {
    // Closing a Failed change while its rollback runs, or before an
    // automatic one is triggered, would lose the rollback's outcome.
    let awaiting_rollback = f.rollback == Rollback::InProgress
        || (f.backout == BackoutStrategy::Automatic && f.rollback == Rollback::None);
    if f.phase == ChangePhase::Failed && awaiting_rollback {
        return None;
    }
    // A rejection recorded after implementation holds the change open,
    // whatever its type, until that person decides again.
    if f.tally.rejection.is_some() {
        return None;
    }
    if f.change_type == ChangeType::Emergency && !f.tally.is_ratified() {
        return None;
    }
    let review = if f.policy.requires_review(f.change_type) {
        format!("post-implementation review recorded ({:?})", f.review?)
    } else {
        format!(
            "{} changes need no post-implementation review",
            f.change_type
        )
    };
    Some(if f.change_type == ChangeType::Emergency {
        format!("retrospective approvals complete; {review}")
    } else {
        review
    })
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::WorkloadKind;
    use crate::api::{ApprovalRecord, Risk};
    use crate::change::transitions::allowed_for;
    use crate::change::transitions::tests::ALL;
    use crate::policy::requirements::tests::client_a;
    use crate::policy::tally::tests::{approve, reject};
    use crate::policy::{Rejection, required_approvals, tally};
    use ChangePhase::*;
    use chrono::TimeDelta;
    use proptest::prelude::*;

    pub(crate) fn at(hours: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + TimeDelta::days(20_000) + TimeDelta::hours(hours)
    }

    fn tally_for(
        policy: &ChangePolicySpec,
        t: ChangeType,
        risk: Risk,
        approvals: &[ApprovalRecord],
    ) -> Tally {
        tally(
            &required_approvals(policy, t, risk),
            approvals,
            Some("alice"),
            policy.separation_of_duties(),
        )
    }

    pub(crate) fn facts<'a>(
        phase: ChangePhase,
        change_type: ChangeType,
        policy: &'a ChangePolicySpec,
        tally: &'a Tally,
    ) -> Facts<'a> {
        Facts {
            phase,
            change_type,
            created_at: at(0),
            not_after: None,
            cancel: false,
            backout: BackoutStrategy::Manual,
            policy,
            tally,
            implemented_at: None,
            rollout: Rollout::None,
            rollback: Rollback::None,
            review: None,
            now: at(1),
        }
    }

    fn to(f: &Facts<'_>) -> Option<ChangePhase> {
        next_phase(f).map(|t| t.to)
    }

    #[test]
    fn normal_change_walks_the_happy_path() {
        let policy = client_a();
        let pending = tally_for(&policy, ChangeType::Normal, Risk::Low, &[]);
        let f = facts(PendingApproval, ChangeType::Normal, &policy, &pending);
        assert_eq!(to(&f), None);

        let approved = tally_for(
            &policy,
            ChangeType::Normal,
            Risk::Low,
            &[approve("bob", &["client-a:approvers"])],
        );
        let mut f = facts(PendingApproval, ChangeType::Normal, &policy, &approved);
        assert_eq!(
            next_phase(&f),
            Some(Transition {
                to: Approved,
                reason: "approvals complete (1/1)".into()
            })
        );
        f.phase = Approved;
        assert_eq!(to(&f), None, "approved, waiting for a workload change");
        f.implemented_at = Some(at(2));
        assert_eq!(to(&f), Some(Implementing));
        f.phase = Implementing;
        f.rollout = Rollout::Progressing;
        assert_eq!(to(&f), None);
        f.rollout = Rollout::Succeeded;
        assert_eq!(to(&f), Some(Implemented));
        f.phase = Implemented;
        assert_eq!(to(&f), None, "a Normal change needs its review");
        f.review = Some(ReviewOutcome::Successful);
        assert_eq!(to(&f), Some(Closed));
    }

    #[test]
    fn standard_change_is_approved_without_approvals() {
        let policy = client_a();
        let none = tally_for(&policy, ChangeType::Standard, Risk::High, &[]);
        let mut f = facts(PendingApproval, ChangeType::Standard, &policy, &none);
        assert_eq!(
            next_phase(&f).map(|t| t.reason),
            Some("pre-approved: Standard changes need no approvals under this policy".into())
        );
        f.phase = Implemented;
        assert_eq!(to(&f), Some(Closed), "Standard changes need no review");
    }

    #[test]
    fn emergency_implements_before_retrospective_approvals() {
        let policy = client_a();
        let owed = tally_for(&policy, ChangeType::Emergency, Risk::High, &[]);
        assert!(owed.upfront_satisfied && !owed.retrospective_satisfied);
        let mut f = facts(PendingApproval, ChangeType::Emergency, &policy, &owed);
        f.implemented_at = Some(at(1));
        assert_eq!(
            next_phase(&f).map(|t| t.reason),
            Some(
                "emergency change implemented at 2024-10-04T01:00:00Z; retrospective approvals \
                 owed: 1 of 1 from group msp:cab still needed"
                    .into()
            )
        );
        assert_eq!(allowed_for(f.change_type, f.phase, Implementing), Ok(()));

        f.phase = Implemented;
        f.review = Some(ReviewOutcome::Successful);
        assert_eq!(to(&f), None, "not closed before the CAB ratifies it");

        let ratified = tally_for(
            &policy,
            ChangeType::Emergency,
            Risk::High,
            &[approve("cab-member", &["msp:cab"])],
        );
        f.tally = &ratified;
        assert_eq!(to(&f), Some(Closed));
    }

    #[test]
    fn emergency_without_implementation_is_approved_first() {
        let policy = client_a();
        let owed = tally_for(&policy, ChangeType::Emergency, Risk::Low, &[]);
        let f = facts(PendingApproval, ChangeType::Emergency, &policy, &owed);
        assert_eq!(to(&f), Some(Approved));
    }

    #[test]
    fn pending_change_expires_after_the_timeout() {
        let policy = client_a();
        let pending = tally_for(&policy, ChangeType::Normal, Risk::Low, &[]);
        let mut f = facts(PendingApproval, ChangeType::Normal, &policy, &pending);
        f.now = at(167);
        assert_eq!(to(&f), None);
        f.now = at(168);
        let Some(expired) = next_phase(&f) else {
            panic!("the timeout has passed");
        };
        assert_eq!(expired.to, Expired);
        assert!(
            expired.reason.contains("approvalTimeout"),
            "{}",
            expired.reason
        );
    }

    #[test]
    fn approved_change_expires_when_not_after_passes_unimplemented() {
        let policy = client_a();
        let none = tally_for(&policy, ChangeType::Standard, Risk::Low, &[]);
        let mut f = facts(Approved, ChangeType::Standard, &policy, &none);
        f.not_after = Some(at(10));
        f.now = at(10);
        assert_eq!(to(&f), Some(Expired));
        f.implemented_at = Some(at(9));
        assert_eq!(
            to(&f),
            Some(Implementing),
            "work that started does not expire"
        );
    }

    #[test]
    fn cancel_is_honoured_before_implementation_only() {
        let policy = client_a();
        let none = tally_for(&policy, ChangeType::Standard, Risk::Low, &[]);
        for phase in [PendingApproval, Approved] {
            let mut f = facts(phase, ChangeType::Standard, &policy, &none);
            f.cancel = true;
            assert_eq!(to(&f), Some(Cancelled));
        }
        let mut f = facts(Implementing, ChangeType::Standard, &policy, &none);
        f.cancel = true;
        assert_eq!(to(&f), None);
    }

    #[test]
    fn an_eligible_rejection_rejects_the_change() {
        let policy = client_a();
        let rejected = tally_for(
            &policy,
            ChangeType::Normal,
            Risk::Low,
            &[reject("bob", &["client-a:approvers"])],
        );
        for phase in [PendingApproval, Approved] {
            let f = facts(phase, ChangeType::Normal, &policy, &rejected);
            assert_eq!(
                next_phase(&f),
                Some(Transition {
                    to: Rejected,
                    reason: "rejected by bob".into()
                })
            );
        }
    }

    #[test]
    fn a_rejection_after_implementation_blocks_closure() {
        let policy = client_a();
        let rejected = Tally {
            rejection: Some(Rejection {
                by: "cab-member".into(),
                comment: None,
                at: None,
            }),
            ..tally_for(&policy, ChangeType::Emergency, Risk::Low, &[])
        };
        let mut f = facts(Approved, ChangeType::Emergency, &policy, &rejected);
        f.implemented_at = Some(at(1));
        assert_eq!(to(&f), Some(Implementing));
        f.phase = Implemented;
        f.review = Some(ReviewOutcome::Successful);
        assert_eq!(to(&f), None);

        // The same for a Normal change whose approver rejects afterwards.
        let rejected = Tally {
            rejection: rejected.rejection.clone(),
            ..tally_for(
                &policy,
                ChangeType::Normal,
                Risk::Low,
                &[approve("bob", &["client-a:approvers"])],
            )
        };
        let mut f = facts(Implemented, ChangeType::Normal, &policy, &rejected);
        f.implemented_at = Some(at(1));
        f.review = Some(ReviewOutcome::Successful);
        assert_eq!(to(&f), None);
        let decided_again = Tally {
            rejection: None,
            ..rejected.clone()
        };
        f.tally = &decided_again;
        assert_eq!(to(&f), Some(Closed), "closes once nobody rejects");
    }

    #[test]
    fn failed_rollout_waits_for_an_automatic_rollback() {
        let policy = client_a();
        let ok = tally_for(
            &policy,
            ChangeType::Normal,
            Risk::Low,
            &[approve("bob", &["client-a:approvers"])],
        );
        let mut f = facts(Implementing, ChangeType::Normal, &policy, &ok);
        f.backout = BackoutStrategy::Automatic;
        f.review = Some(ReviewOutcome::Failed);
        f.rollout = Rollout::Failed {
            reason: "ProgressDeadlineExceeded".into(),
        };
        assert_eq!(
            next_phase(&f).map(|t| t.reason),
            Some("rollout failed: ProgressDeadlineExceeded".into())
        );
        f.phase = Failed;
        assert_eq!(to(&f), None, "the rollback has not started yet");
        f.rollback = Rollback::InProgress;
        assert_eq!(to(&f), None);
        f.rollback = Rollback::Completed;
        assert_eq!(to(&f), Some(RolledBack));
        f.phase = RolledBack;
        assert_eq!(to(&f), Some(Closed));
    }

    #[test]
    fn a_failed_rollback_leaves_the_change_failed_until_reviewed() {
        let policy = client_a();
        let none = tally_for(&policy, ChangeType::Normal, Risk::Low, &[]);
        let mut f = facts(Failed, ChangeType::Normal, &policy, &none);
        f.backout = BackoutStrategy::Automatic;
        f.rollback = Rollback::Failed {
            reason: "previous revision unhealthy".into(),
        };
        assert_eq!(to(&f), None);
        f.review = Some(ReviewOutcome::Failed);
        assert_eq!(to(&f), Some(Closed));
    }

    #[test]
    fn final_phases_stay() {
        let policy = client_a();
        let none = tally_for(&policy, ChangeType::Standard, Risk::Low, &[]);
        for phase in [Closed, Rejected, Expired, Cancelled] {
            let mut f = facts(phase, ChangeType::Standard, &policy, &none);
            f.cancel = true;
            f.now = at(10_000);
            assert_eq!(to(&f), None);
        }
    }

    #[test]
    fn one_failed_target_fails_the_rollout() {
        let target = |name: &str, state| TargetRollout {
            kind: WorkloadKind::Deployment,
            name: name.into(),
            state,
            revision: None,
            message: None,
            updated_at: None,
        };
        assert_eq!(Rollout::from_targets(&[]), Rollout::None);
        let ok = target("a", RolloutState::Succeeded);
        let busy = target("b", RolloutState::Progressing);
        let bad = target("c", RolloutState::Failed);
        assert_eq!(
            Rollout::from_targets(std::slice::from_ref(&ok)),
            Rollout::Succeeded
        );
        assert_eq!(
            Rollout::from_targets(&[ok.clone(), busy.clone()]),
            Rollout::Progressing
        );
        assert_eq!(
            Rollout::from_targets(&[ok, busy, bad]),
            Rollout::Failed {
                reason: "Deployment c: rollout failed".into()
            }
        );
    }

    fn phase() -> impl Strategy<Value = ChangePhase> {
        proptest::sample::select(ALL.to_vec())
    }

    fn change_type() -> impl Strategy<Value = ChangeType> {
        proptest::sample::select(ChangeType::ALL.to_vec())
    }

    fn hour() -> impl Strategy<Value = DateTime<Utc>> {
        (0i64..400).prop_map(at)
    }

    fn rollout() -> impl Strategy<Value = Rollout> {
        prop_oneof![
            Just(Rollout::None),
            Just(Rollout::Progressing),
            Just(Rollout::Succeeded),
            Just(Rollout::Failed {
                reason: "ProgressDeadlineExceeded".into()
            }),
        ]
    }

    fn rollback() -> impl Strategy<Value = Rollback> {
        prop_oneof![
            Just(Rollback::None),
            Just(Rollback::InProgress),
            Just(Rollback::Completed),
            Just(Rollback::Failed {
                reason: "unhealthy".into()
            }),
        ]
    }

    fn tally_outcome() -> impl Strategy<Value = Tally> {
        (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(upfront, retro, rejected)| Tally {
            rules: vec![],
            upfront_satisfied: upfront,
            upfront_complete_at: None,
            retrospective_satisfied: retro,
            rejection: rejected.then(|| Rejection {
                by: "bob".into(),
                comment: None,
                at: None,
            }),
            ignored: vec![],
        })
    }

    fn policy() -> impl Strategy<Value = ChangePolicySpec> {
        (
            proptest::option::of(1u64..200),
            proptest::option::of(proptest::sample::subsequence(
                ChangeType::ALL.to_vec(),
                0..=3,
            )),
        )
            .prop_map(|(timeout_hours, review)| ChangePolicySpec {
                approval_timeout: timeout_hours
                    .map(|h| std::time::Duration::from_secs(h * 3600).into()),
                require_review: review,
                ..client_a()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn every_transition_next_phase_returns_is_allowed(
            phase in phase(),
            change_type in change_type(),
            policy in policy(),
            tally in tally_outcome(),
            (created_at, now) in (hour(), hour()),
            not_after in proptest::option::of(hour()),
            cancel in any::<bool>(),
            backout in proptest::sample::select(vec![
                BackoutStrategy::Automatic, BackoutStrategy::Manual, BackoutStrategy::None,
            ]),
            implemented_at in proptest::option::of(hour()),
            rollout in rollout(),
            rollback in rollback(),
            review in proptest::option::of(proptest::sample::select(vec![
                ReviewOutcome::Successful, ReviewOutcome::PartiallySuccessful, ReviewOutcome::Failed,
            ])),
        ) {
            let mut f = Facts {
                phase, change_type, created_at, not_after, cancel, backout,
                policy: &policy, tally: &tally, implemented_at, rollout, rollback, review, now,
            };
            // Follow the transitions under unchanged facts: each must be
            // allowed, and they must settle (the graph has no cycles).
            for _ in 0..ALL.len() {
                let Some(t) = next_phase(&f) else { break };
                prop_assert!(
                    allowed_for(f.change_type, f.phase, t.to).is_ok(),
                    "{} -> {} ({})", f.phase, t.to, t.reason
                );
                prop_assert!(!t.reason.is_empty());
                f.phase = t.to;
            }
            prop_assert!(next_phase(&f).is_none(), "did not settle at {}", f.phase);
        }
    }
}
