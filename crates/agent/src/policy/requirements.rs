//! The approvals a change owes under a policy, by change type and risk:
//! the type's rules plus risk routing, and for emergencies which of them are
//! owed up front and which retrospectively.

use crate::api::{ChangePolicySpec, ChangeType, GroupCount, Risk};

/// `count` distinct members of `group` must approve; `retrospective` rules
/// are owed after implementation and do not hold the change back.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Requirement {
    pub group: String,
    pub count: u32,
    pub retrospective: bool,
}

/// The approval rules for a change of `change_type` and `risk`.
///
/// - Standard: `approvals.standard` only (usually empty); a catalogue item is
///   pre-approved, so risk routing does not apply.
/// - Normal: `approvals.normal` plus every `riskRouting` route with
///   `minRisk <= risk`, all up front.
/// - Emergency: `approvals.emergency` up front (the emergency change
///   authority); `approvals.retrospective.rules` plus the matching risk
///   routes retrospectively, because the full CAB reviews an emergency after
///   the fact instead of delaying the fix.
///
/// Within the up-front set and within the retrospective set a group named
/// twice keeps the larger count. A group in both sets is two separate rules:
/// the retrospective look is meant to be a second pair of eyes, so under
/// separation of duties it needs different people. Rules asking for zero
/// approvals are dropped. Order is stable: up-front rules before
/// retrospective ones, each in policy order (type rules, then routes).
pub fn required_approvals(
    policy: &ChangePolicySpec,
    change_type: ChangeType,
    risk: Risk,
) -> Vec<Requirement> {
    let routed = policy
        .risk_routing
        .iter()
        .filter(|route| route.min_risk <= risk)
        .flat_map(|route| &route.require);
    let approvals = &policy.approvals;
    let (upfront, retrospective): (Vec<&GroupCount>, Vec<&GroupCount>) = match change_type {
        ChangeType::Standard => (approvals.standard.iter().collect(), Vec::new()),
        ChangeType::Normal => (approvals.normal.iter().chain(routed).collect(), Vec::new()),
        ChangeType::Emergency => (
            approvals.emergency.iter().collect(),
            approvals
                .retrospective
                .iter()
                .flat_map(|r| &r.rules)
                .chain(routed)
                .collect(),
        ),
    };
    let mut out = merge(upfront, false);
    out.extend(merge(retrospective, true));
    out
}

/// Rules in first-seen order, one per group, keeping the larger count.
fn merge(rules: Vec<&GroupCount>, retrospective: bool) -> Vec<Requirement> {
    let mut out: Vec<Requirement> = Vec::new();
    for rule in rules.into_iter().filter(|r| r.count > 0) {
        match out.iter_mut().find(|q| q.group == rule.group) {
            Some(existing) => existing.count = existing.count.max(rule.count),
            None => out.push(Requirement {
                group: rule.group.clone(),
                count: rule.count,
                retrospective,
            }),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::{Approvals, Retrospective, RiskRoute};
    use std::time::Duration;

    pub(crate) fn gc(group: &str, count: u32) -> GroupCount {
        GroupCount {
            group: group.into(),
            count,
        }
    }

    pub(crate) fn req(group: &str, count: u32, retrospective: bool) -> Requirement {
        Requirement {
            group: group.into(),
            count,
            retrospective,
        }
    }

    /// The shape of `examples/policy-client-a.yaml`.
    pub(crate) fn client_a() -> ChangePolicySpec {
        ChangePolicySpec {
            tenants: vec!["client-a".into()],
            approvals: Approvals {
                standard: vec![],
                normal: vec![gc("client-a:approvers", 1)],
                emergency: vec![],
                retrospective: Some(Retrospective {
                    rules: vec![gc("msp:cab", 1)],
                    within: Duration::from_secs(24 * 3600).into(),
                }),
            },
            risk_routing: vec![RiskRoute {
                min_risk: Risk::High,
                require: vec![gc("msp:cab", 1)],
            }],
            approval_timeout: Some(Duration::from_secs(168 * 3600).into()),
            ..ChangePolicySpec::default()
        }
    }

    #[test]
    fn low_risk_normal_change_needs_the_client_only() {
        assert_eq!(
            required_approvals(&client_a(), ChangeType::Normal, Risk::Low),
            vec![req("client-a:approvers", 1, false)]
        );
    }

    #[test]
    fn high_risk_routes_to_the_cab() {
        let expected = vec![
            req("client-a:approvers", 1, false),
            req("msp:cab", 1, false),
        ];
        assert_eq!(
            required_approvals(&client_a(), ChangeType::Normal, Risk::High),
            expected
        );
        assert_eq!(
            required_approvals(&client_a(), ChangeType::Normal, Risk::Critical),
            expected
        );
    }

    #[test]
    fn a_group_in_two_rules_keeps_the_larger_count() {
        let mut policy = client_a();
        policy.risk_routing.push(RiskRoute {
            min_risk: Risk::Medium,
            require: vec![gc("client-a:approvers", 2)],
        });
        assert_eq!(
            required_approvals(&policy, ChangeType::Normal, Risk::High),
            vec![
                req("client-a:approvers", 2, false),
                req("msp:cab", 1, false)
            ]
        );
    }

    #[test]
    fn standard_changes_ignore_risk_routing() {
        assert!(required_approvals(&client_a(), ChangeType::Standard, Risk::Critical).is_empty());
    }

    #[test]
    fn emergency_owes_the_cab_retrospectively() {
        let mut policy = client_a();
        policy.approvals.emergency = vec![gc("msp:oncall-leads", 1)];
        assert_eq!(
            required_approvals(&policy, ChangeType::Emergency, Risk::High),
            vec![req("msp:oncall-leads", 1, false), req("msp:cab", 1, true)]
        );
    }

    #[test]
    fn a_group_owed_up_front_and_afterwards_is_two_rules() {
        let mut policy = client_a();
        policy.approvals.emergency = vec![gc("msp:cab", 1)];
        assert_eq!(
            required_approvals(&policy, ChangeType::Emergency, Risk::Low),
            vec![req("msp:cab", 1, false), req("msp:cab", 1, true)]
        );
    }

    #[test]
    fn zero_count_rules_ask_for_nothing() {
        let mut policy = client_a();
        policy.approvals.normal.push(gc("nobody", 0));
        assert_eq!(
            required_approvals(&policy, ChangeType::Normal, Risk::Low),
            vec![req("client-a:approvers", 1, false)]
        );
    }
}
