//! Whether a new approval or rejection may be recorded on a change: the check
//! the admission webhook runs on a status update, from the caller's userInfo,
//! with messages that say what to do next.

use super::requirements::required_approvals;
use crate::api::{ChangePolicySpec, ChangeRequestSpec, ChangeType, Decision};

/// The identity the API server reports for the request (`userInfo`).
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    pub username: &'a str,
    pub groups: &'a [String],
}

/// Why a decision may not be recorded. The messages are shown to the
/// caller as the admission denial.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Ineligible {
    #[error(
        "changegate: {user} requested this change and may not approve it (separation of duties); \
         ask a member of {groups} to approve it"
    )]
    SelfApproval { user: String, groups: String },
    #[error(
        "changegate: {user} requested this change and may not reject it (separation of duties); \
         set spec.cancel: true to withdraw it"
    )]
    SelfRejection { user: String },
    #[error(
        "changegate: {user} is not a member of any group that decides on this change; \
         it needs decisions from {groups}: ask a member of one of them"
    )]
    NotInRequiredGroup { user: String, groups: String },
    #[error(
        "changegate: this {change_type} change needs no approvals; \
         to stop it, its requester sets spec.cancel: true"
    )]
    NothingToDecide { change_type: ChangeType },
}

/// Whether `caller` may record `decision` on a change with `spec`, requested
/// by `requester`, under `policy`. A caller may decide when they are in a
/// group the policy asks for this change (up front or retrospectively) and,
/// under separation of duties, are not the requester. Deciding again is
/// allowed: a person's latest decision replaces their earlier one.
pub fn check_decision(
    policy: &ChangePolicySpec,
    spec: &ChangeRequestSpec,
    requester: Option<&str>,
    caller: Caller<'_>,
    decision: Decision,
) -> Result<(), Ineligible> {
    let mut groups: Vec<String> = Vec::new();
    for rule in required_approvals(policy, spec.change_type, spec.risk) {
        if !groups.contains(&rule.group) {
            groups.push(rule.group);
        }
    }
    if groups.is_empty() {
        return Err(Ineligible::NothingToDecide {
            change_type: spec.change_type,
        });
    }
    let user = caller.username.to_string();
    if policy.separation_of_duties() && requester == Some(caller.username) {
        return Err(match decision {
            Decision::Approved => Ineligible::SelfApproval {
                user,
                groups: groups.join(" or "),
            },
            Decision::Rejected => Ineligible::SelfRejection { user },
        });
    }
    if !groups.iter().any(|g| caller.groups.contains(g)) {
        return Err(Ineligible::NotInRequiredGroup {
            user,
            groups: groups.join(", "),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Risk, Target, WorkloadKind};
    use crate::policy::requirements::tests::client_a;

    fn change(change_type: ChangeType, risk: Risk) -> ChangeRequestSpec {
        ChangeRequestSpec {
            change_type,
            standard_change: None,
            title: "bump payments-api".into(),
            description: None,
            justification: None,
            risk,
            impact: None,
            targets: vec![Target {
                kind: WorkloadKind::Deployment,
                name: Some("payments-api".into()),
                selector: None,
                images: vec![],
            }],
            schedule: None,
            backout: None,
            cancel: None,
        }
    }

    fn check(
        user: &str,
        groups: &[&str],
        change: &ChangeRequestSpec,
        decision: Decision,
    ) -> Result<(), Ineligible> {
        let groups: Vec<String> = groups.iter().map(ToString::to_string).collect();
        let caller = Caller {
            username: user,
            groups: &groups,
        };
        check_decision(&client_a(), change, Some("alice"), caller, decision)
    }

    #[test]
    fn a_member_of_a_required_group_may_approve_and_reject() {
        let normal = change(ChangeType::Normal, Risk::Low);
        for decision in [Decision::Approved, Decision::Rejected] {
            assert_eq!(
                check("bob", &["client-a:approvers"], &normal, decision),
                Ok(())
            );
        }
    }

    #[test]
    fn the_requester_may_not_approve_their_own_change() {
        let normal = change(ChangeType::Normal, Risk::High);
        let Err(denied) = check(
            "alice",
            &["client-a:approvers"],
            &normal,
            Decision::Approved,
        ) else {
            panic!("self-approval must be denied");
        };
        assert_eq!(
            denied.to_string(),
            "changegate: alice requested this change and may not approve it (separation of \
             duties); ask a member of client-a:approvers or msp:cab to approve it"
        );
        assert!(matches!(
            check("alice", &["msp:cab"], &normal, Decision::Rejected),
            Err(Ineligible::SelfRejection { .. })
        ));
    }

    #[test]
    fn outsiders_are_told_which_groups_decide() {
        let normal = change(ChangeType::Normal, Risk::High);
        let Err(denied) = check(
            "mallory",
            &["client-b:approvers"],
            &normal,
            Decision::Approved,
        ) else {
            panic!("an outsider must be denied");
        };
        assert!(
            denied
                .to_string()
                .contains("it needs decisions from client-a:approvers, msp:cab")
        );
    }

    #[test]
    fn retrospective_approvers_may_decide_on_an_emergency() {
        let emergency = change(ChangeType::Emergency, Risk::Low);
        assert_eq!(
            check("cab", &["msp:cab"], &emergency, Decision::Approved),
            Ok(())
        );
    }

    #[test]
    fn standard_changes_have_nothing_to_decide() {
        let standard = change(ChangeType::Standard, Risk::Low);
        assert_eq!(
            check(
                "bob",
                &["client-a:approvers"],
                &standard,
                Decision::Approved
            ),
            Err(Ineligible::NothingToDecide {
                change_type: ChangeType::Standard
            })
        );
    }
}
