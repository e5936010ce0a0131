//! Approval boards (a tenant's virtual CAB): members, a rule
//! (`all | any | majority | quorum N`), mandatory members and a chair who
//! may veto and break ties. Evaluated in that order: veto, rule, tie-break;
//! mandatory members must approve whatever the rule says.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::ids::{Email, InvalidValue, UserId};
use crate::role::Role;

/// How many of a board's members must approve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    All,
    Any,
    Majority,
    Quorum(u32),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::All => f.write_str("all"),
            Rule::Any => f.write_str("any"),
            Rule::Majority => f.write_str("majority"),
            Rule::Quorum(n) => write!(f, "quorum {n}"),
        }
    }
}

impl FromStr for Rule {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            InvalidValue::new(
                "rule",
                format!(
                    "{s:?} is not a board rule; use all, any, majority or quorum N (e.g. quorum 2)"
                ),
            )
        };
        match s.trim() {
            "all" => Ok(Rule::All),
            "any" => Ok(Rule::Any),
            "majority" => Ok(Rule::Majority),
            other => {
                let n = other
                    .strip_prefix("quorum")
                    .map(|n| n.trim_start_matches([' ', ':']))
                    .ok_or_else(bad)?;
                match n.parse::<u32>() {
                    Ok(n) if n > 0 => Ok(Rule::Quorum(n)),
                    _ => Err(bad()),
                }
            }
        }
    }
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: InvalidValue| serde::de::Error::custom(e.message))
    }
}

/// A board member as written by a change manager: a person by e-mail, or
/// everyone holding a role in the tenant (`role:business-approver`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Member {
    Person(Email),
    Role(Role),
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Member::Person(e) => e.fmt(f),
            Member::Role(r) => write!(f, "role:{r}"),
        }
    }
}

impl FromStr for Member {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("role:") {
            Some(role) => Ok(Member::Role(role.trim().parse()?)),
            None => Email::parse(s).map(Member::Person).map_err(|_| {
                InvalidValue::new(
                    "members",
                    format!("{s:?} is neither an e-mail address nor role:<role> (e.g. role:business-approver)"),
                )
            }),
        }
    }
}

impl Serialize for Member {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: InvalidValue| serde::de::Error::custom(e.message))
    }
}

/// A board as configured (policy as code, `changegate apply`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub members: Vec<Member>,
    pub rule: Rule,
    #[serde(default)]
    pub mandatory: Vec<Email>,
    #[serde(default)]
    pub chair: Option<Email>,
}

impl BoardSpec {
    pub fn validate(&self) -> Result<(), InvalidValue> {
        if self.name.trim().is_empty() {
            return Err(InvalidValue::new("name", "a board needs a name"));
        }
        if self.members.is_empty() {
            return Err(InvalidValue::new(
                "members",
                "a board needs at least one member (an e-mail address or role:<role>)",
            ));
        }
        if let Rule::Quorum(n) = self.rule {
            let people = self
                .members
                .iter()
                .filter(|m| matches!(m, Member::Person(_)))
                .count();
            let has_roles = self.members.iter().any(|m| matches!(m, Member::Role(_)));
            if !has_roles && n as usize > people {
                return Err(InvalidValue::new(
                    "rule",
                    format!("quorum {n} can never be reached by {people} members"),
                ));
            }
        }
        Ok(())
    }
}

/// A board's approvers as frozen at submission: editing the board later
/// changes no pending change. Members are distinct people; the requester
/// is never among them (separation of duties).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrozenBoard {
    pub name: String,
    pub rule: Rule,
    pub members: Vec<UserId>,
    pub mandatory: Vec<UserId>,
    pub chair: Option<UserId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    Approve,
    Reject,
}

impl FromStr for Decision {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "approve" | "approved" => Ok(Decision::Approve),
            "reject" | "rejected" => Ok(Decision::Reject),
            _ => Err(InvalidValue::new(
                "decision",
                format!("{s:?} is not a decision; use approve or reject"),
            )),
        }
    }
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        }
    }
}

/// Why a board rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum RejectReason {
    /// The chair vetoed.
    Veto { chair: UserId },
    /// A mandatory member rejected.
    Mandatory { member: UserId },
    /// The rule can no longer be met.
    Rule,
    /// A majority vote tied and the chair did not break it in favour.
    Tie,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum BoardStatus {
    Approved,
    Rejected(RejectReason),
    /// `needed` more approvals; `awaiting` lists who can still give them.
    Pending {
        needed: u32,
        awaiting: Vec<UserId>,
    },
}

/// The board's status given each member's latest decision. Votes from
/// people who are not members (or the chair) are ignored.
pub fn evaluate(board: &FrozenBoard, votes: &BTreeMap<UserId, Decision>) -> BoardStatus {
    let counts = |d: Decision| {
        board
            .members
            .iter()
            .filter(|m| votes.get(m) == Some(&d))
            .count() as u32
    };
    let n = board.members.len() as u32;
    let (approvals, rejections) = (counts(Decision::Approve), counts(Decision::Reject));
    let not_voted: Vec<UserId> = board
        .members
        .iter()
        .filter(|m| !votes.contains_key(m))
        .copied()
        .collect();

    // 1. Veto.
    if let Some(chair) = board.chair
        && votes.get(&chair) == Some(&Decision::Reject)
    {
        return BoardStatus::Rejected(RejectReason::Veto { chair });
    }
    if let Some(member) = board
        .mandatory
        .iter()
        .find(|m| votes.get(m) == Some(&Decision::Reject))
    {
        return BoardStatus::Rejected(RejectReason::Mandatory { member: *member });
    }

    // 2. The rule; 3. the tie-break.
    let rule_met = match board.rule {
        Rule::All => {
            if rejections > 0 {
                return BoardStatus::Rejected(RejectReason::Rule);
            }
            approvals == n
        }
        Rule::Any => {
            if n > 0 && rejections == n {
                return BoardStatus::Rejected(RejectReason::Rule);
            }
            approvals >= 1
        }
        Rule::Majority => {
            if rejections * 2 > n {
                return BoardStatus::Rejected(RejectReason::Rule);
            }
            if approvals * 2 > n {
                true
            } else if approvals + rejections == n && approvals == rejections {
                match board.chair.and_then(|c| votes.get(&c)) {
                    Some(Decision::Approve) => true,
                    Some(Decision::Reject) => return BoardStatus::Rejected(RejectReason::Tie),
                    None if board.chair.is_some() => {
                        return BoardStatus::Pending {
                            needed: 1,
                            awaiting: board.chair.into_iter().collect(),
                        };
                    }
                    None => return BoardStatus::Rejected(RejectReason::Tie),
                }
            } else {
                false
            }
        }
        Rule::Quorum(q) => {
            if n.saturating_sub(rejections) < q {
                return BoardStatus::Rejected(RejectReason::Rule);
            }
            approvals >= q
        }
    };

    let mandatory_missing: Vec<UserId> = board
        .mandatory
        .iter()
        .filter(|m| votes.get(m) != Some(&Decision::Approve))
        .copied()
        .collect();
    if rule_met && mandatory_missing.is_empty() {
        return BoardStatus::Approved;
    }
    let rule_needed = if rule_met {
        0
    } else {
        match board.rule {
            Rule::All => n - approvals,
            Rule::Any => 1,
            Rule::Majority => (n / 2 + 1).saturating_sub(approvals),
            Rule::Quorum(q) => q - approvals,
        }
    };
    let needed = rule_needed.max(mandatory_missing.len() as u32);
    let mut awaiting = mandatory_missing;
    if rule_needed > 0 {
        for m in not_voted {
            if !awaiting.contains(&m) {
                awaiting.push(m);
            }
        }
    }
    BoardStatus::Pending { needed, awaiting }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(rule: Rule, n: i64) -> FrozenBoard {
        FrozenBoard {
            name: "cab".into(),
            rule,
            members: (1..=n).map(UserId).collect(),
            mandatory: vec![],
            chair: None,
        }
    }

    fn votes(v: &[(i64, Decision)]) -> BTreeMap<UserId, Decision> {
        v.iter().map(|(u, d)| (UserId(*u), *d)).collect()
    }

    use Decision::{Approve as A, Reject as R};

    #[test]
    fn all_needs_everyone_and_fails_on_one_rejection() {
        let b = board(Rule::All, 3);
        assert!(matches!(
            evaluate(&b, &votes(&[(1, A), (2, A)])),
            BoardStatus::Pending { needed: 1, .. }
        ));
        assert_eq!(
            evaluate(&b, &votes(&[(1, A), (2, A), (3, A)])),
            BoardStatus::Approved
        );
        assert_eq!(
            evaluate(&b, &votes(&[(1, A), (2, R)])),
            BoardStatus::Rejected(RejectReason::Rule)
        );
    }

    #[test]
    fn any_needs_one_and_fails_when_all_reject() {
        let b = board(Rule::Any, 2);
        assert_eq!(evaluate(&b, &votes(&[(2, A)])), BoardStatus::Approved);
        assert!(matches!(
            evaluate(&b, &votes(&[(1, R)])),
            BoardStatus::Pending { .. }
        ));
        assert_eq!(
            evaluate(&b, &votes(&[(1, R), (2, R)])),
            BoardStatus::Rejected(RejectReason::Rule)
        );
    }

    #[test]
    fn majority_of_three_is_two() {
        let b = board(Rule::Majority, 3);
        assert_eq!(
            evaluate(&b, &votes(&[(1, A), (3, A)])),
            BoardStatus::Approved
        );
        assert_eq!(
            evaluate(&b, &votes(&[(1, R), (3, R)])),
            BoardStatus::Rejected(RejectReason::Rule)
        );
        assert!(matches!(
            evaluate(&b, &votes(&[(1, A), (3, R)])),
            BoardStatus::Pending { needed: 1, .. }
        ));
    }

    #[test]
    fn a_tie_is_broken_by_the_chair() {
        let mut b = board(Rule::Majority, 4);
        b.chair = Some(UserId(1));
        // 2 to 2 with the chair on the approving side: approved.
        assert_eq!(
            evaluate(&b, &votes(&[(1, A), (2, A), (3, R), (4, R)])),
            BoardStatus::Approved
        );
        // Without a chair the tie rejects.
        b.chair = None;
        assert_eq!(
            evaluate(&b, &votes(&[(1, A), (2, A), (3, R), (4, R)])),
            BoardStatus::Rejected(RejectReason::Tie)
        );
    }

    #[test]
    fn a_chair_outside_the_members_is_awaited_on_a_tie() {
        let mut b = board(Rule::Majority, 2);
        b.chair = Some(UserId(9));
        assert_eq!(
            evaluate(&b, &votes(&[(1, A), (2, R)])),
            BoardStatus::Pending {
                needed: 1,
                awaiting: vec![UserId(9)]
            }
        );
        assert_eq!(
            evaluate(&b, &votes(&[(1, A), (2, R), (9, A)])),
            BoardStatus::Approved
        );
    }

    #[test]
    fn the_chair_vetoes_even_a_met_rule() {
        let mut b = board(Rule::Any, 3);
        b.chair = Some(UserId(3));
        assert_eq!(
            evaluate(&b, &votes(&[(1, A), (2, A), (3, R)])),
            BoardStatus::Rejected(RejectReason::Veto { chair: UserId(3) })
        );
    }

    #[test]
    fn quorum_counts_approvals_and_fails_when_unreachable() {
        let b = board(Rule::Quorum(2), 3);
        assert!(matches!(
            evaluate(&b, &votes(&[(1, A)])),
            BoardStatus::Pending { needed: 1, .. }
        ));
        assert_eq!(
            evaluate(&b, &votes(&[(1, A), (2, A)])),
            BoardStatus::Approved
        );
        assert_eq!(
            evaluate(&b, &votes(&[(1, R), (2, R)])),
            BoardStatus::Rejected(RejectReason::Rule)
        );
    }

    #[test]
    fn a_mandatory_member_must_approve_whatever_the_rule() {
        let mut b = board(Rule::Any, 3);
        b.mandatory = vec![UserId(3)];
        assert_eq!(
            evaluate(&b, &votes(&[(1, A)])),
            BoardStatus::Pending {
                needed: 1,
                awaiting: vec![UserId(3)]
            }
        );
        assert_eq!(
            evaluate(&b, &votes(&[(1, A), (3, A)])),
            BoardStatus::Approved
        );
        assert_eq!(
            evaluate(&b, &votes(&[(1, A), (3, R)])),
            BoardStatus::Rejected(RejectReason::Mandatory { member: UserId(3) })
        );
    }

    #[test]
    fn votes_from_outsiders_do_not_count() {
        let b = board(Rule::Any, 2);
        assert!(matches!(
            evaluate(&b, &votes(&[(7, A)])),
            BoardStatus::Pending { .. }
        ));
    }

    #[test]
    fn rules_parse_from_their_contract_spelling() {
        assert_eq!("quorum 2".parse::<Rule>(), Ok(Rule::Quorum(2)));
        assert_eq!("majority".parse::<Rule>(), Ok(Rule::Majority));
        assert!("quorum 0".parse::<Rule>().is_err());
        assert!("most".parse::<Rule>().is_err());
        assert_eq!(Rule::Quorum(3).to_string(), "quorum 3");
    }

    #[test]
    fn members_are_people_or_roles() {
        assert_eq!(
            "role:business-approver".parse::<Member>(),
            Ok(Member::Role(Role::BusinessApprover))
        );
        assert!(matches!(
            "bob@msp.example".parse::<Member>(),
            Ok(Member::Person(_))
        ));
        assert!("bob".parse::<Member>().is_err());
    }

    proptest::proptest! {
        /// Adding an approval never turns an approved board into anything else,
        /// and a board is never both approved and rejected.
        #[test]
        fn an_extra_approval_never_unapproves(n in 1i64..7, q in 1u32..7, rule_pick in 0u8..4,
                                               picks in proptest::collection::vec((1i64..8, proptest::bool::ANY), 0..10)) {
            let rule = match rule_pick { 0 => Rule::All, 1 => Rule::Any, 2 => Rule::Majority, _ => Rule::Quorum(q.min(n as u32)) };
            let b = board(rule, n);
            let mut v = BTreeMap::new();
            for (u, approve) in picks {
                v.insert(UserId(u), if approve { A } else { R });
            }
            let before = evaluate(&b, &v);
            if before == BoardStatus::Approved {
                let not_voted = (1..=n).map(UserId).find(|u| !v.contains_key(u));
                if let Some(u) = not_voted {
                    v.insert(u, A);
                    proptest::prop_assert_eq!(evaluate(&b, &v), BoardStatus::Approved);
                }
            }
        }
    }
}
