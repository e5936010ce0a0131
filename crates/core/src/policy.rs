//! A tenant's change policy: routing, risk questionnaire, expiry,
//! emergency handling, separation of duties, window and review duties and
//! the enforcement mode. Policies are versioned; every change records the
//! version it was decided under.

use serde::{Deserialize, Serialize};

use crate::change::{ChangeType, RiskLevel};
use crate::ids::InvalidValue;
use crate::risk::Questionnaire;
use crate::routing::Routing;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Enforcement {
    #[default]
    Enforce,
    Warn,
    Off,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicySpec {
    #[serde(default)]
    pub routing: Routing,
    #[serde(default = "Questionnaire::default_for_msp")]
    pub questionnaire: Questionnaire,
    /// Hours an approval stays valid before implementation must start;
    /// left out, [`DEFAULT_APPROVAL_EXPIRY_HOURS`]. Every approval expires.
    #[serde(default)]
    pub approval_expiry_hours: Option<u32>,
    /// What a standard change that names more than its template
    /// pre-approves gets at submission: refused, or routed as a normal
    /// change (risk questionnaire, boards).
    #[serde(default)]
    pub standard_beyond_template: BeyondTemplate,
    #[serde(default)]
    pub emergency: EmergencyPolicy,
    /// Separation of duties beyond the requester: the named implementer
    /// may not approve either.
    #[serde(default)]
    pub implementer_may_not_approve: bool,
    /// Types that must be implemented inside a maintenance window.
    #[serde(default = "default_window_types")]
    pub window_required: Vec<ChangeType>,
    /// Types that need a post-implementation review before closing.
    #[serde(default = "default_review_types")]
    pub review_required: Vec<ChangeType>,
    #[serde(default)]
    pub enforcement: Enforcement,
    /// E-mail approval links of changes at or above this risk level also
    /// need the approver signed in or the one-time code from the message
    /// (a mail scanner can follow a link and press a button; it cannot
    /// read the code). `null`: never.
    #[serde(default = "high")]
    pub email_code_from: Option<RiskLevel>,
    /// Decisions written with kubectl (a patch of a ChangeRequest's
    /// `status.approvals`) are accepted on changes up to this risk level.
    /// `null` (the default): not accepted; approvers use the portal,
    /// e-mail or the API.
    #[serde(default)]
    pub kubernetes_approval_up_to: Option<RiskLevel>,
    /// Hours after submission before every approver who has not decided
    /// yet is reminded by e-mail, once. `null`: no reminder.
    #[serde(default)]
    pub reminder_hours: Option<u32>,
    /// A change still awaiting approval this long after submission is
    /// escalated: the backup approver may decide in every undecided seat
    /// (a delegation, on the audit chain) and is told by e-mail.
    #[serde(default)]
    pub escalation: Option<Escalation>,
    /// Client acceptance (the user entity control of seed 003): changes it
    /// covers need a named client user to accept the tested change before
    /// they may be scheduled in a release or started. `null`: none.
    #[serde(default)]
    pub acceptance: Option<Acceptance>,
    /// Change proposals (seed 001): the boards that authorize a proposal
    /// before its changes are raised. `null`: proposals are not used.
    #[serde(default)]
    pub proposals: Option<ProposalPolicy>,
}

/// Who authorizes change proposals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProposalPolicy {
    /// Boards (by name), every one of which must authorize a proposal.
    pub boards: Vec<String>,
}

/// Which changes need the client's acceptance, and who gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Acceptance {
    /// Who may accept: client users named by address, or `role:<role>`
    /// (the tenant's client users holding it).
    pub by: Vec<String>,
    /// Changes of these types need it.
    #[serde(default)]
    pub types: Vec<ChangeType>,
    /// Changes at or above this risk level need it.
    #[serde(default)]
    pub from: Option<RiskLevel>,
    /// Changes naming any of these configuration items need it.
    #[serde(default)]
    pub items: Vec<String>,
}

impl Acceptance {
    /// Does a change of `kind`, at `level`, naming `items`, need it? Any
    /// of type, risk or item is enough.
    pub fn covers(&self, kind: ChangeType, level: Option<RiskLevel>, items: &[String]) -> bool {
        self.types.contains(&kind)
            || matches!((self.from, level), (Some(from), Some(level)) if level >= from)
            || items.iter().any(|i| self.items.contains(i))
    }
}

/// How long an approval stays valid when the policy sets no expiry: 30
/// days. An approved change that has not started never waits forever.
pub const DEFAULT_APPROVAL_EXPIRY_HOURS: u32 = 30 * 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BeyondTemplate {
    /// Submission is refused, saying what lies outside the template.
    #[default]
    Refuse,
    /// The change becomes a normal change and is approved as one.
    RouteAsNormal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Escalation {
    pub after_hours: u32,
    /// The backup approver: a user of the tenant.
    pub to: crate::ids::Email,
}

fn high() -> Option<RiskLevel> {
    Some(RiskLevel::High)
}

fn default_window_types() -> Vec<ChangeType> {
    vec![ChangeType::Normal]
}

fn default_review_types() -> Vec<ChangeType> {
    vec![ChangeType::Normal, ChangeType::Emergency]
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EmergencyPolicy {
    /// Emergency changes may start before their approvals are in.
    #[serde(default = "yes")]
    pub retrospective: bool,
    /// Hours after implementation starts by which retrospective approvals are owed.
    #[serde(default = "day")]
    pub deadline_hours: u32,
}

fn yes() -> bool {
    true
}
fn day() -> u32 {
    24
}

impl Default for EmergencyPolicy {
    fn default() -> Self {
        EmergencyPolicy {
            retrospective: true,
            deadline_hours: 24,
        }
    }
}

impl Default for PolicySpec {
    fn default() -> Self {
        PolicySpec {
            routing: Routing::default(),
            questionnaire: Questionnaire::default_for_msp(),
            approval_expiry_hours: None,
            standard_beyond_template: BeyondTemplate::Refuse,
            emergency: EmergencyPolicy::default(),
            implementer_may_not_approve: false,
            window_required: default_window_types(),
            review_required: default_review_types(),
            enforcement: Enforcement::Enforce,
            email_code_from: high(),
            kubernetes_approval_up_to: None,
            reminder_hours: None,
            escalation: None,
            acceptance: None,
            proposals: None,
        }
    }
}

impl PolicySpec {
    pub fn validate(&self, board_exists: impl Fn(&str) -> bool) -> Result<(), InvalidValue> {
        self.routing.validate(&board_exists)?;
        self.questionnaire
            .validate()
            .map_err(|e| e.within("questionnaire"))?;
        if self.approval_expiry_hours == Some(0) {
            return Err(InvalidValue::new(
                "approvalExpiryHours",
                "must be at least 1 hour, or left out for no expiry",
            ));
        }
        if self.reminder_hours == Some(0) {
            return Err(InvalidValue::new(
                "reminderHours",
                "must be at least 1 hour, or left out for no reminder",
            ));
        }
        if let Some(e) = &self.escalation {
            if e.after_hours == 0 {
                return Err(InvalidValue::new(
                    "escalation.afterHours",
                    "must be at least 1 hour",
                ));
            }
            if self.reminder_hours.is_some_and(|r| r >= e.after_hours) {
                return Err(InvalidValue::new(
                    "escalation.afterHours",
                    "escalate after the reminder: make afterHours larger than reminderHours",
                ));
            }
        }
        if let Some(p) = &self.proposals {
            if p.boards.is_empty() {
                return Err(InvalidValue::new(
                    "proposals.boards",
                    "name the boards that authorize proposals",
                ));
            }
            if let Some(b) = p.boards.iter().find(|b| !board_exists(b)) {
                return Err(InvalidValue::new(
                    "proposals.boards",
                    format!("no board is named {b:?}; add it first"),
                ));
            }
        }
        if let Some(a) = &self.acceptance {
            if a.by.is_empty() {
                return Err(InvalidValue::new(
                    "acceptance.by",
                    "name who accepts: client users' addresses or role:<role>, e.g. role:business-approver",
                ));
            }
            if a.types.is_empty() && a.from.is_none() && a.items.is_empty() {
                return Err(InvalidValue::new(
                    "acceptance",
                    "say which changes need it: types, from (a risk level) or items",
                ));
            }
        }
        if self.emergency.deadline_hours == 0 {
            return Err(InvalidValue::new(
                "emergency.deadlineHours",
                "must be at least 1 hour",
            ));
        }
        Ok(())
    }

    pub fn needs_review(&self, kind: ChangeType) -> bool {
        self.review_required.contains(&kind)
    }

    /// How long an approval given now stays valid.
    pub fn approval_validity(&self) -> chrono::TimeDelta {
        chrono::TimeDelta::hours(i64::from(
            self.approval_expiry_hours
                .unwrap_or(DEFAULT_APPROVAL_EXPIRY_HOURS),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_document_is_the_default_policy() {
        let p: PolicySpec = serde_json::from_str("{}").expect("parses");
        assert_eq!(p, PolicySpec::default());
        assert!(p.validate(|_| false).is_ok());
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<PolicySpec>(r#"{"approvalExpiry": 3}"#).is_err());
    }

    #[test]
    fn zero_expiry_is_refused_with_the_field() {
        let p = PolicySpec {
            approval_expiry_hours: Some(0),
            ..PolicySpec::default()
        };
        assert_eq!(
            p.validate(|_| true).unwrap_err().field,
            "approvalExpiryHours"
        );
    }

    #[test]
    fn acceptance_covers_a_change_by_type_risk_or_item() {
        let a = Acceptance {
            by: vec!["role:business-approver".into()],
            types: vec![ChangeType::Emergency],
            from: Some(RiskLevel::High),
            items: vec!["payments-api".into()],
        };
        assert!(a.covers(ChangeType::Emergency, None, &[]));
        assert!(a.covers(ChangeType::Normal, Some(RiskLevel::High), &[]));
        assert!(!a.covers(ChangeType::Normal, Some(RiskLevel::Medium), &[]));
        assert!(a.covers(ChangeType::Standard, None, &["payments-api".into()]));
        assert!(!a.covers(ChangeType::Normal, Some(RiskLevel::Low), &["vpn".into()]));
        let mut p = PolicySpec {
            acceptance: Some(Acceptance {
                by: Vec::new(),
                ..a.clone()
            }),
            ..PolicySpec::default()
        };
        assert!(p.validate(|_| true).is_err(), "nobody to accept");
        p.acceptance = Some(Acceptance {
            types: Vec::new(),
            from: None,
            items: Vec::new(),
            ..a
        });
        assert!(p.validate(|_| true).is_err(), "covers nothing");
    }
}
