//! A change proposal (seed 001): before a major change is built, its
//! business case, description, risks, alternatives, budget, schedule and
//! affected services go to the boards the policy names for proposals.
//! Authorizing a proposal authorizes the work to be planned, not its
//! implementation: each change raised under it still needs its own
//! approval. Pure: the proposal as raised, and where it stands from the
//! decisions recorded on it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::approval::{ApprovalPlan, PlanStatus, Vote};
use crate::ids::{InvalidValue, UserId};

/// What the requester writes, with the plan frozen when it was raised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Proposal {
    pub title: String,
    /// Why the organisation wants it: the value, the cost of not doing it.
    pub business_case: String,
    /// What would change, at a high level.
    pub description: String,
    #[serde(default)]
    pub risks: String,
    #[serde(default)]
    pub alternatives: String,
    #[serde(default)]
    pub budget: String,
    #[serde(default)]
    pub schedule_start: Option<DateTime<Utc>>,
    #[serde(default)]
    pub schedule_end: Option<DateTime<Utc>>,
    /// The configuration items (services) it would affect.
    #[serde(default)]
    pub services: Vec<String>,
    pub requester: UserId,
    /// The boards that authorize it, frozen when it was raised.
    pub plan: ApprovalPlan,
}

impl Proposal {
    /// What a proposal must say before it goes to the boards.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        for (field, value, hint) in [
            ("title", &self.title, "give the proposal a title"),
            (
                "businessCase",
                &self.business_case,
                "say why it is wanted: the value it brings, what not doing it costs",
            ),
            (
                "description",
                &self.description,
                "describe what would change, at a high level",
            ),
        ] {
            if value.trim().is_empty() {
                return Err(InvalidValue::new(field, hint));
            }
        }
        if let (Some(start), Some(end)) = (self.schedule_start, self.schedule_end)
            && end <= start
        {
            return Err(InvalidValue::new(
                "scheduleEnd",
                "the schedule must end after it starts",
            ));
        }
        Ok(())
    }
}

/// Where a proposal stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Some board has yet to decide.
    Awaiting(PlanStatus),
    Authorized,
    Rejected {
        board: String,
    },
    /// Its requester withdrew it before it was decided.
    Withdrawn,
}

/// Where `p` stands after `votes` (in the order recorded); `withdrawn`
/// when its requester withdrew it first.
pub fn standing(p: &Proposal, votes: &[Vote], withdrawn: bool) -> Standing {
    match p.plan.status(votes) {
        PlanStatus::Approved => Standing::Authorized,
        PlanStatus::Rejected { board, .. } => Standing::Rejected { board },
        _ if withdrawn => Standing::Withdrawn,
        pending => Standing::Awaiting(pending),
    }
}

impl Standing {
    pub fn as_str(&self) -> &'static str {
        match self {
            Standing::Awaiting(_) => "awaiting-authorization",
            Standing::Authorized => "authorized",
            Standing::Rejected { .. } => "rejected",
            Standing::Withdrawn => "withdrawn",
        }
    }

    /// Decisions are still taken.
    pub fn open(&self) -> bool {
        matches!(self, Standing::Awaiting(_))
    }
}

/// The seats `who` may decide in now: each board of the plan they sit on.
pub fn may_decide(p: &Proposal, who: UserId) -> bool {
    p.plan.seats().contains(&who)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::{Decision, FrozenBoard, Rule};

    fn proposal(boards: Vec<FrozenBoard>) -> Proposal {
        Proposal {
            title: "Move the data centre".into(),
            business_case: "the lease ends".into(),
            description: "move every workload".into(),
            risks: String::new(),
            alternatives: String::new(),
            budget: String::new(),
            schedule_start: None,
            schedule_end: None,
            services: vec![],
            requester: UserId(1),
            plan: ApprovalPlan { boards },
        }
    }

    fn board(name: &str, members: &[i64], rule: Rule) -> FrozenBoard {
        FrozenBoard {
            name: name.into(),
            members: members.iter().map(|m| UserId(*m)).collect(),
            rule,
            mandatory: vec![],
            chair: None,
        }
    }

    fn vote(by: i64, decision: Decision) -> Vote {
        Vote {
            seat: UserId(by),
            by: UserId(by),
            decision,
        }
    }

    #[test]
    fn every_board_authorizes_it_one_rejection_ends_it() {
        let p = proposal(vec![
            board("cab", &[2, 3], Rule::Any),
            board("client", &[4], Rule::All),
        ]);
        assert!(standing(&p, &[], false).open());
        assert!(standing(&p, &[vote(2, Decision::Approve)], false).open());
        assert_eq!(
            standing(
                &p,
                &[vote(2, Decision::Approve), vote(4, Decision::Approve)],
                false
            ),
            Standing::Authorized
        );
        assert_eq!(
            standing(&p, &[vote(4, Decision::Reject)], false),
            Standing::Rejected {
                board: "client".into()
            }
        );
        assert_eq!(standing(&p, &[], true), Standing::Withdrawn);
        assert!(may_decide(&p, UserId(4)) && !may_decide(&p, UserId(1)));
    }

    #[test]
    fn a_proposal_says_why_and_what() {
        let mut p = proposal(vec![]);
        assert!(p.validate().is_ok());
        p.business_case = " ".into();
        assert_eq!(p.validate().unwrap_err().field, "businessCase");
    }
}
