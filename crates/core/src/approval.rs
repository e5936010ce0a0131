//! The approvals a submitted change needs: boards frozen at submission
//! (people resolved, the requester and, when the policy says so, the
//! implementer removed), who may decide, and the change's overall status
//! from every seat's latest decision.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::board::{self, BoardSpec, BoardStatus, Decision, FrozenBoard, Member, RejectReason};
use crate::ids::UserId;

/// The boards a revision needs, frozen when it was submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ApprovalPlan {
    pub boards: Vec<FrozenBoard>,
}

/// Why a plan could not be frozen: the change cannot be approved as routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FreezeError {
    #[error(
        "board {board:?} has no member who may approve this change (the requester cannot approve their own change)"
    )]
    NoMembers { board: String },
    #[error(
        "board {board:?} needs {needed} approvals but only {members} of its members may approve this change"
    )]
    Unreachable {
        board: String,
        needed: u32,
        members: u32,
    },
    #[error(
        "{person} is a mandatory member of board {board:?} but may not approve this change (separation of duties)"
    )]
    MandatoryExcluded { board: String, person: UserId },
    #[error("routing names board {board:?}, which does not exist in this tenant")]
    UnknownBoard { board: String },
}

/// Resolve each routed board's members to people, drop `excluded` (the
/// requester, and the implementer when the policy says so), and freeze.
/// `resolve` returns the people behind a member (one person for an
/// e-mail, every holder for a role); unknown e-mails resolve to nobody.
pub fn freeze(
    routed: &[String],
    boards: &[BoardSpec],
    resolve: impl Fn(&Member) -> Vec<UserId>,
    excluded: &[UserId],
) -> Result<ApprovalPlan, FreezeError> {
    let mut frozen = Vec::new();
    for name in routed {
        let spec =
            boards
                .iter()
                .find(|b| &b.name == name)
                .ok_or_else(|| FreezeError::UnknownBoard {
                    board: name.clone(),
                })?;
        let mut members: Vec<UserId> = Vec::new();
        for m in &spec.members {
            for u in resolve(m) {
                if !excluded.contains(&u) && !members.contains(&u) {
                    members.push(u);
                }
            }
        }
        let mut mandatory = Vec::new();
        for email in &spec.mandatory {
            for u in resolve(&Member::Person(email.clone())) {
                if excluded.contains(&u) {
                    return Err(FreezeError::MandatoryExcluded {
                        board: name.clone(),
                        person: u,
                    });
                }
                if !members.contains(&u) {
                    members.push(u);
                }
                mandatory.push(u);
            }
        }
        let chair = spec
            .chair
            .as_ref()
            .and_then(|c| resolve(&Member::Person(c.clone())).into_iter().next())
            .filter(|c| !excluded.contains(c));
        if members.is_empty() {
            return Err(FreezeError::NoMembers {
                board: name.clone(),
            });
        }
        let n = members.len() as u32;
        if let board::Rule::Quorum(q) = spec.rule
            && q > n
        {
            return Err(FreezeError::Unreachable {
                board: name.clone(),
                needed: q,
                members: n,
            });
        }
        frozen.push(FrozenBoard {
            name: name.clone(),
            rule: spec.rule,
            members,
            mandatory,
            chair,
        });
    }
    Ok(ApprovalPlan { boards: frozen })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum PlanStatus {
    Approved,
    Rejected { board: String, reason: RejectReason },
    Pending { boards: Vec<PendingBoard> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingBoard {
    pub board: String,
    pub needed: u32,
    pub awaiting: Vec<UserId>,
}

/// One recorded decision: `seat` is whose vote it counts as (the approver,
/// or the person they decided on behalf of), `by` who gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vote {
    pub seat: UserId,
    pub by: UserId,
    pub decision: Decision,
}

fn latest(votes: &[Vote]) -> BTreeMap<UserId, Decision> {
    votes.iter().map(|v| (v.seat, v.decision)).collect()
}

impl ApprovalPlan {
    pub fn is_empty(&self) -> bool {
        self.boards.is_empty()
    }

    /// Everyone who holds a seat on some board.
    pub fn seats(&self) -> Vec<UserId> {
        let mut all: Vec<UserId> = self
            .boards
            .iter()
            .flat_map(|b| b.members.iter().copied().chain(b.chair))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Rejected as soon as one board rejects; approved once every board has.
    pub fn status(&self, votes: &[Vote]) -> PlanStatus {
        let latest = latest(votes);
        let mut pending = Vec::new();
        for b in &self.boards {
            match board::evaluate(b, &latest) {
                BoardStatus::Approved => {}
                BoardStatus::Rejected(reason) => {
                    return PlanStatus::Rejected {
                        board: b.name.clone(),
                        reason,
                    };
                }
                BoardStatus::Pending { needed, awaiting } => {
                    pending.push(PendingBoard {
                        board: b.name.clone(),
                        needed,
                        awaiting,
                    });
                }
            }
        }
        if pending.is_empty() {
            PlanStatus::Approved
        } else {
            PlanStatus::Pending { boards: pending }
        }
    }

    /// May `actor` decide now, for themselves or on behalf of a member
    /// whose delegation (or escalation) the caller has checked? Returns
    /// the seat the decision counts for.
    ///
    /// One person, one seat: on every board, a person decides in one seat
    /// only, as themselves, as a delegate or as the escalation backup. A
    /// decision on someone else's behalf goes only into a seat nobody has
    /// decided yet; a recorded decision is changed only by its holder.
    pub fn check_decision(
        &self,
        votes: &[Vote],
        requester: UserId,
        actor: UserId,
        on_behalf_of: Option<UserId>,
        decision: Decision,
    ) -> Result<UserId, NotEligible> {
        if actor == requester || on_behalf_of == Some(requester) {
            return Err(NotEligible::OwnChange);
        }
        let seats = self.seats();
        let seat = on_behalf_of.unwrap_or(actor);
        if !seats.contains(&seat) {
            return Err(NotEligible::NotAnApprover);
        }
        let boards_of = |u: UserId| {
            self.boards
                .iter()
                .filter(move |b| b.members.contains(&u) || b.chair == Some(u))
        };
        if on_behalf_of.is_some() {
            // A delegate who holds a seat on a board of the delegator
            // would vote twice there.
            if boards_of(seat).any(|b| b.members.contains(&actor) || b.chair == Some(actor)) {
                return Err(NotEligible::DelegateHoldsSeat);
            }
            if votes.iter().any(|v| v.seat == seat) {
                return Err(NotEligible::SeatDecided);
            }
        }
        // Already decided in another seat of a board this seat is on.
        let elsewhere = votes.iter().any(|v| {
            v.by == actor
                && v.seat != seat
                && boards_of(seat).any(|b| b.members.contains(&v.seat) || b.chair == Some(v.seat))
        });
        if elsewhere {
            return Err(NotEligible::SecondSeat);
        }
        if latest(votes).get(&seat) == Some(&decision) {
            return Err(NotEligible::Repeated);
        }
        Ok(seat)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotEligible {
    #[error("the requester cannot approve or reject their own change (separation of duties)")]
    OwnChange,
    #[error("you are not among the approvers frozen for this revision of the change")]
    NotAnApprover,
    #[error("you already gave this decision; a decision can be changed, not repeated")]
    Repeated,
    #[error("you hold a seat on the same board as the person you act for; one person counts once")]
    DelegateHoldsSeat,
    #[error(
        "that seat has a decision already; only its holder changes it, nobody decides over it on their behalf"
    )]
    SeatDecided,
    #[error(
        "you decided in another seat of the same board already; one person holds one seat on a board"
    )]
    SecondSeat,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::Rule;
    use crate::ids::Email;
    use crate::role::Role;

    fn email(s: &str) -> Email {
        Email::parse(s).expect("valid")
    }

    /// alice=1, bob=2, carol=3, dave=4 (client approvers: 3 and 4).
    fn resolve(m: &Member) -> Vec<UserId> {
        match m {
            Member::Person(e) => match e.as_str() {
                "alice@msp.example" => vec![UserId(1)],
                "bob@msp.example" => vec![UserId(2)],
                "carol@client-a.example" => vec![UserId(3)],
                _ => vec![],
            },
            Member::Role(Role::BusinessApprover) => vec![UserId(3), UserId(4)],
            Member::Role(_) => vec![],
        }
    }

    fn boards() -> Vec<BoardSpec> {
        vec![
            BoardSpec {
                name: "tech".into(),
                description: String::new(),
                members: vec![
                    Member::Person(email("alice@msp.example")),
                    Member::Person(email("bob@msp.example")),
                ],
                rule: Rule::Any,
                mandatory: vec![],
                chair: None,
            },
            BoardSpec {
                name: "client".into(),
                description: String::new(),
                members: vec![
                    Member::Role(Role::BusinessApprover),
                    Member::Person(email("carol@client-a.example")),
                ],
                rule: Rule::All,
                mandatory: vec![],
                chair: None,
            },
        ]
    }

    #[test]
    fn freezing_resolves_roles_once_per_person_and_drops_the_requester() {
        let plan = freeze(
            &["tech".into(), "client".into()],
            &boards(),
            resolve,
            &[UserId(1)],
        )
        .expect("freezes");
        assert_eq!(plan.boards[0].members, vec![UserId(2)]);
        assert_eq!(plan.boards[1].members, vec![UserId(3), UserId(4)]);
    }

    #[test]
    fn a_board_left_empty_by_separation_of_duties_refuses_submission() {
        let mut b = boards();
        b[0].members.truncate(1);
        assert_eq!(
            freeze(&["tech".into()], &b, resolve, &[UserId(1)]),
            Err(FreezeError::NoMembers {
                board: "tech".into()
            })
        );
    }

    #[test]
    fn every_board_must_approve_and_one_rejection_rejects() {
        let plan = freeze(
            &["tech".into(), "client".into()],
            &boards(),
            resolve,
            &[UserId(1)],
        )
        .expect("freezes");
        let approve = |u| Vote {
            seat: UserId(u),
            by: UserId(u),
            decision: Decision::Approve,
        };
        assert!(matches!(
            plan.status(&[approve(2)]),
            PlanStatus::Pending { .. }
        ));
        assert_eq!(
            plan.status(&[approve(2), approve(3), approve(4)]),
            PlanStatus::Approved
        );
        let rejected = plan.status(&[
            approve(2),
            Vote {
                seat: UserId(4),
                by: UserId(4),
                decision: Decision::Reject,
            },
        ]);
        assert!(matches!(rejected, PlanStatus::Rejected { ref board, .. } if board == "client"));
    }

    #[test]
    fn the_latest_decision_of_a_seat_counts() {
        let plan = freeze(&["tech".into()], &boards(), resolve, &[]).expect("freezes");
        let v = [
            Vote {
                seat: UserId(2),
                by: UserId(2),
                decision: Decision::Approve,
            },
            Vote {
                seat: UserId(2),
                by: UserId(2),
                decision: Decision::Reject,
            },
        ];
        assert!(matches!(plan.status(&v), PlanStatus::Pending { .. }));
    }

    #[test]
    fn the_requester_never_decides_their_own_change() {
        let plan = freeze(&["tech".into()], &boards(), resolve, &[]).expect("freezes");
        assert_eq!(
            plan.check_decision(&[], UserId(1), UserId(1), None, Decision::Approve),
            Err(NotEligible::OwnChange)
        );
        assert_eq!(
            plan.check_decision(&[], UserId(1), UserId(2), None, Decision::Approve),
            Ok(UserId(2))
        );
    }

    #[test]
    fn outsiders_repeats_and_double_seats_are_refused() {
        let plan = freeze(
            &["tech".into(), "client".into()],
            &boards(),
            resolve,
            &[UserId(9)],
        )
        .expect("freezes");
        assert_eq!(
            plan.check_decision(&[], UserId(9), UserId(7), None, Decision::Approve),
            Err(NotEligible::NotAnApprover)
        );
        let voted = [Vote {
            seat: UserId(2),
            by: UserId(2),
            decision: Decision::Approve,
        }];
        assert_eq!(
            plan.check_decision(&voted, UserId(9), UserId(2), None, Decision::Approve),
            Err(NotEligible::Repeated)
        );
        // carol (3) deciding for dave (4): both sit on the client board.
        assert_eq!(
            plan.check_decision(
                &[],
                UserId(9),
                UserId(3),
                Some(UserId(4)),
                Decision::Approve
            ),
            Err(NotEligible::DelegateHoldsSeat)
        );
        // bob (2) deciding for dave (4): counts as dave's seat.
        assert_eq!(
            plan.check_decision(
                &[],
                UserId(9),
                UserId(2),
                Some(UserId(4)),
                Decision::Approve
            ),
            Ok(UserId(4))
        );
    }

    #[test]
    fn one_person_holds_one_seat_on_a_board() {
        let plan = freeze(
            &["tech".into(), "client".into()],
            &boards(),
            resolve,
            &[UserId(9)],
        )
        .expect("freezes");
        let by = |seat, by, decision| Vote {
            seat: UserId(seat),
            by: UserId(by),
            decision,
        };
        // bob (2) approved for dave (4) on the client board; he cannot
        // also approve for carol (3) there: that would be a second seat.
        let voted = [by(4, 2, Decision::Approve)];
        assert_eq!(
            plan.check_decision(
                &voted,
                UserId(9),
                UserId(2),
                Some(UserId(3)),
                Decision::Approve
            ),
            Err(NotEligible::SecondSeat)
        );
        // His own tech seat is another board: he may decide there.
        assert_eq!(
            plan.check_decision(&voted, UserId(9), UserId(2), None, Decision::Approve),
            Ok(UserId(2))
        );
        // Nobody decides over a recorded decision on its holder's behalf.
        let carol_rejected = [by(3, 3, Decision::Reject)];
        assert_eq!(
            plan.check_decision(
                &carol_rejected,
                UserId(9),
                UserId(2),
                Some(UserId(3)),
                Decision::Approve
            ),
            Err(NotEligible::SeatDecided)
        );
        // The holder changes their own decision.
        assert_eq!(
            plan.check_decision(
                &carol_rejected,
                UserId(9),
                UserId(3),
                None,
                Decision::Approve
            ),
            Ok(UserId(3))
        );
    }
}
