//! Counting recorded decisions against the requirements: each person's
//! latest decision, separation of duties, group membership and rejections,
//! plus the progress texts that `kubectl get` and admission messages show.

use super::matching;
use super::requirements::Requirement;
use crate::api::{ApprovalRecord, Decision, RuleProgress};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::fmt;

/// Why a recorded decision does not count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IgnoreReason {
    /// No `approver`: the mutating webhook did not stamp it, so nobody vouches
    /// for who made it.
    Unstamped,
    /// The requester decided on their own change under separation of duties.
    SelfApproval,
    /// The approver is in none of the groups this change needs.
    NotInRequiredGroup,
    /// The same person decided again later; only their latest decision counts.
    Superseded,
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unstamped => "it was not stamped with an approver by the webhook",
            Self::SelfApproval => {
                "the requester's own decision does not count (separation of duties)"
            }
            Self::NotInRequiredGroup => "the approver is in none of the groups this change needs",
            Self::Superseded => "a later decision by the same person replaces it",
        })
    }
}

/// A recorded decision that does not count, by its position in `status.approvals`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ignored {
    pub index: usize,
    pub approver: Option<String>,
    pub decision: Decision,
    pub reason: IgnoreReason,
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = self.approver.as_deref().unwrap_or("an unknown user");
        write!(
            f,
            "{:?} #{} by {who} ignored: {}",
            self.decision, self.index, self.reason
        )
    }
}

/// An eligible person's standing rejection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub by: String,
    pub comment: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rejected by {}", self.by)?;
        match self.comment.as_deref().filter(|c| !c.is_empty()) {
            Some(comment) => write!(f, ": {comment}"),
            None => Ok(()),
        }
    }
}

/// Where a change stands against its requirements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    /// One entry per requirement, in the requirements' order.
    pub rules: Vec<RuleProgress>,
    /// Every up-front rule has its count (rejections not considered).
    pub upfront_satisfied: bool,
    /// When the up-front count was first complete: the stamped time of the
    /// decision that completed it (approvals are append-only, so in order).
    pub upfront_complete_at: Option<DateTime<Utc>>,
    /// Every retrospective rule has its count (rejections not considered).
    pub retrospective_satisfied: bool,
    /// The earliest standing rejection by an eligible person.
    pub rejection: Option<Rejection>,
    /// Decisions that do not count, in record order.
    pub ignored: Vec<Ignored>,
}

impl Tally {
    /// Up-front approvals are complete and nobody eligible rejects.
    pub fn is_approved(&self) -> bool {
        self.upfront_satisfied && self.rejection.is_none()
    }

    /// Retrospective approvals are complete and nobody eligible rejects:
    /// the emergency change has been ratified.
    pub fn is_ratified(&self) -> bool {
        self.retrospective_satisfied && self.rejection.is_none()
    }

    /// `received/required` over the up-front slots, e.g. `1/3`, for
    /// `status.approvalSummary`; when retrospective rules exist their
    /// progress follows, e.g. `0/0, retro 0/1`. A change with no rules at all
    /// shows `0/0`.
    pub fn summary(&self) -> String {
        let (got, need) = self.slots(false);
        if self.rules.iter().any(|r| r.retrospective) {
            let (retro_got, retro_need) = self.slots(true);
            format!("{got}/{need}, retro {retro_got}/{retro_need}")
        } else {
            format!("{got}/{need}")
        }
    }

    /// What up-front approvals are missing, e.g. `1 of 1 from group
    /// client-a:approvers still needed`, several joined with `; `; `None`
    /// when nothing is missing.
    pub fn outstanding(&self) -> Option<String> {
        self.missing(false)
    }

    /// The same for the retrospective rules.
    pub fn outstanding_retrospective(&self) -> Option<String> {
        self.missing(true)
    }

    fn slots(&self, retrospective: bool) -> (u32, u32) {
        self.rules
            .iter()
            .filter(|r| r.retrospective == retrospective)
            .fold((0, 0), |(got, need), r| {
                (
                    got.saturating_add(r.received.min(r.count)),
                    need.saturating_add(r.count),
                )
            })
    }

    fn missing(&self, retrospective: bool) -> Option<String> {
        let parts: Vec<String> = self
            .rules
            .iter()
            .filter(|r| r.retrospective == retrospective && r.received < r.count)
            .map(|r| {
                format!(
                    "{} of {} from group {} still needed",
                    r.count - r.received,
                    r.count,
                    r.group
                )
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Counts `approvals` (in record order, which the append-only list makes
/// chronological) against `requirements`.
///
/// Only stamped records count, only a person's latest decision counts, and
/// an approval counts for a rule only if the stamped `groups` contain the
/// rule's group. A rejection from an eligible person (in some required
/// group, and not the requester under separation of duties) rejects.
///
/// With separation of duties the requester never counts and each person
/// fills at most one slot across all rules; slots are assigned by maximum
/// matching, up-front rules first. Without it, the requester counts and a
/// person counts once toward every rule whose group they are in.
///
/// `requester` is the `changegate.dev/requested-by` annotation; when it is
/// missing nobody is excluded as the requester.
pub fn tally(
    requirements: &[Requirement],
    approvals: &[ApprovalRecord],
    requester: Option<&str>,
    separation_of_duties: bool,
) -> Tally {
    let mut t = count(requirements, approvals, requester, separation_of_duties);
    if t.upfront_satisfied {
        // The shortest prefix of the record that already satisfies the rules.
        t.upfront_complete_at = (1..=approvals.len())
            .find(|&n| {
                count(
                    requirements,
                    &approvals[..n],
                    requester,
                    separation_of_duties,
                )
                .upfront_satisfied
            })
            .and_then(|n| approvals[n - 1].at);
    }
    t
}

fn count(
    requirements: &[Requirement],
    approvals: &[ApprovalRecord],
    requester: Option<&str>,
    separation_of_duties: bool,
) -> Tally {
    let mut ignored = Vec::new();
    let ignore = |index: usize, reason| {
        let record: &ApprovalRecord = &approvals[index];
        Ignored {
            index,
            approver: record.approver.clone(),
            decision: record.decision,
            reason,
        }
    };

    let mut latest: HashMap<&str, usize> = HashMap::new();
    for (index, record) in approvals.iter().enumerate() {
        match record.approver.as_deref().filter(|a| !a.is_empty()) {
            Some(person) => {
                if let Some(earlier) = latest.insert(person, index) {
                    ignored.push(ignore(earlier, IgnoreReason::Superseded));
                }
            }
            None => ignored.push(ignore(index, IgnoreReason::Unstamped)),
        }
    }
    let mut decisive: Vec<(usize, &str)> = latest.into_iter().map(|(p, i)| (i, p)).collect();
    decisive.sort_unstable();

    let mut approvers: Vec<&[String]> = Vec::new();
    let mut rejection = None;
    for (index, person) in decisive {
        let record = &approvals[index];
        let in_required_group = requirements
            .iter()
            .any(|q| record.groups.contains(&q.group));
        if separation_of_duties && requester == Some(person) {
            ignored.push(ignore(index, IgnoreReason::SelfApproval));
        } else if !in_required_group {
            ignored.push(ignore(index, IgnoreReason::NotInRequiredGroup));
        } else if record.decision == Decision::Rejected {
            rejection.get_or_insert_with(|| Rejection {
                by: person.to_string(),
                comment: record.comment.clone(),
                at: record.at,
            });
        } else {
            approvers.push(&record.groups);
        }
    }
    ignored.sort_by_key(|i| i.index);

    let received = if separation_of_duties {
        matched_counts(requirements, &approvers)
    } else {
        requirements
            .iter()
            .map(|q| approvers.iter().filter(|g| g.contains(&q.group)).count())
            .collect()
    };
    let rules: Vec<RuleProgress> = requirements
        .iter()
        .zip(received)
        .map(|(q, n)| RuleProgress {
            group: q.group.clone(),
            count: q.count,
            received: u32::try_from(n).unwrap_or(u32::MAX).min(q.count),
            retrospective: q.retrospective,
        })
        .collect();
    let satisfied = |retrospective: bool| {
        rules
            .iter()
            .filter(|r| r.retrospective == retrospective)
            .all(|r| r.received >= r.count)
    };
    Tally {
        upfront_satisfied: satisfied(false),
        upfront_complete_at: None,
        retrospective_satisfied: satisfied(true),
        rules,
        rejection,
        ignored,
    }
}

/// Received approvals per requirement when each person fills one slot.
fn matched_counts(requirements: &[Requirement], approvers: &[&[String]]) -> Vec<usize> {
    // One slot per required approval; a rule never needs more slots than
    // there are approvers, which also bounds the work for absurd counts.
    let upfront_first = requirements
        .iter()
        .enumerate()
        .filter(|(_, q)| !q.retrospective)
        .chain(
            requirements
                .iter()
                .enumerate()
                .filter(|(_, q)| q.retrospective),
        );
    let mut slot_rule = Vec::new();
    let mut candidates = Vec::new();
    for (rule, q) in upfront_first {
        let members: Vec<usize> = (0..approvers.len())
            .filter(|&p| approvers[p].contains(&q.group))
            .collect();
        let slots = usize::try_from(q.count)
            .unwrap_or(usize::MAX)
            .min(members.len());
        for _ in 0..slots {
            slot_rule.push(rule);
            candidates.push(members.clone());
        }
    }
    let mut received = vec![0; requirements.len()];
    for (slot, person) in matching::assign(&candidates, approvers.len())
        .into_iter()
        .enumerate()
    {
        if person.is_some() {
            received[slot_rule[slot]] += 1;
        }
    }
    received
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::policy::requirements::tests::req;

    pub(crate) fn record(decision: Decision, who: &str, groups: &[&str]) -> ApprovalRecord {
        ApprovalRecord {
            decision,
            approver: Some(who.into()),
            groups: groups.iter().map(ToString::to_string).collect(),
            comment: None,
            at: None,
        }
    }

    pub(crate) fn approve(who: &str, groups: &[&str]) -> ApprovalRecord {
        record(Decision::Approved, who, groups)
    }

    pub(crate) fn reject(who: &str, groups: &[&str]) -> ApprovalRecord {
        record(Decision::Rejected, who, groups)
    }

    const CLIENT: &str = "client-a:approvers";
    const CAB: &str = "msp:cab";

    fn received(t: &Tally) -> Vec<u32> {
        t.rules.iter().map(|r| r.received).collect()
    }

    #[test]
    fn the_count_is_complete_when_its_last_needed_decision_was_stamped() {
        let at = |h: u32| {
            chrono::DateTime::parse_from_rfc3339(&format!("2026-11-20T{h:02}:00:00Z"))
                .expect("time")
                .with_timezone(&Utc)
        };
        let stamped = |mut r: ApprovalRecord, h| {
            r.at = Some(at(h));
            r
        };
        let rules = [req(CLIENT, 1, false), req(CAB, 1, false)];
        let approvals = [
            stamped(approve("dave", &[CLIENT]), 10),
            stamped(approve("erin", &[CLIENT]), 11),
            stamped(approve("carol", &[CAB]), 12),
            stamped(approve("frank", &[CAB]), 13),
        ];
        let t = tally(&rules, &approvals, None, true);
        assert_eq!(t.upfront_complete_at, Some(at(12)));
        let t = tally(&rules, &approvals[..2], None, true);
        assert!(!t.upfront_satisfied);
        assert_eq!(t.upfront_complete_at, None);
    }

    #[test]
    fn requester_approval_never_counts() {
        let rules = [req(CLIENT, 1, false)];
        let t = tally(&rules, &[approve("alice", &[CLIENT])], Some("alice"), true);
        assert!(!t.upfront_satisfied);
        assert_eq!(t.ignored.len(), 1);
        assert_eq!(t.ignored[0].reason, IgnoreReason::SelfApproval);
    }

    #[test]
    fn requester_counts_without_separation_of_duties() {
        let rules = [req(CLIENT, 1, false)];
        let t = tally(&rules, &[approve("alice", &[CLIENT])], Some("alice"), false);
        assert!(t.is_approved());
    }

    #[test]
    fn one_person_in_two_groups_counts_once() {
        let rules = [req(CLIENT, 1, false), req(CAB, 1, false)];
        let t = tally(&rules, &[approve("carol", &[CLIENT, CAB])], None, true);
        assert_eq!(received(&t), vec![1, 0]);
        assert!(!t.upfront_satisfied);
        assert_eq!(
            t.outstanding().as_deref(),
            Some("1 of 1 from group msp:cab still needed")
        );
    }

    #[test]
    fn without_separation_of_duties_a_person_counts_toward_each_of_their_groups() {
        let rules = [req(CLIENT, 1, false), req(CAB, 1, false)];
        let t = tally(&rules, &[approve("carol", &[CLIENT, CAB])], None, false);
        assert_eq!(received(&t), vec![1, 1]);
    }

    #[test]
    fn matching_assigns_people_so_that_most_slots_are_filled() {
        // carol is in both groups, dave only in the client's: carol must go
        // to the CAB slot even though she approved first.
        let rules = [req(CLIENT, 1, false), req(CAB, 1, false)];
        let approvals = [approve("carol", &[CLIENT, CAB]), approve("dave", &[CLIENT])];
        let t = tally(&rules, &approvals, None, true);
        assert_eq!(received(&t), vec![1, 1]);
        assert!(t.is_approved());
        assert_eq!(t.summary(), "2/2");
    }

    #[test]
    fn up_front_rules_are_served_before_retrospective_ones() {
        let rules = [req("msp:oncall", 1, false), req(CAB, 1, true)];
        let t = tally(&rules, &[approve("erin", &[CAB, "msp:oncall"])], None, true);
        assert!(t.upfront_satisfied);
        assert!(!t.retrospective_satisfied);
        assert_eq!(t.summary(), "1/1, retro 0/1");
    }

    #[test]
    fn the_same_person_approving_twice_counts_once() {
        let rules = [req(CLIENT, 2, false)];
        let approvals = [approve("bob", &[CLIENT]), approve("bob", &[CLIENT])];
        let t = tally(&rules, &approvals, None, true);
        assert_eq!(received(&t), vec![1]);
        assert_eq!(t.ignored[0].reason, IgnoreReason::Superseded);
        assert_eq!(t.ignored[0].index, 0);
    }

    #[test]
    fn latest_decision_of_a_person_wins() {
        let rules = [req(CLIENT, 1, false)];
        let withdrawn = tally(
            &rules,
            &[approve("bob", &[CLIENT]), reject("bob", &[CLIENT])],
            None,
            true,
        );
        assert!(!withdrawn.upfront_satisfied);
        assert_eq!(withdrawn.rejection.map(|r| r.by).as_deref(), Some("bob"));

        let reconsidered = tally(
            &rules,
            &[reject("bob", &[CLIENT]), approve("bob", &[CLIENT])],
            None,
            true,
        );
        assert!(reconsidered.is_approved());
    }

    #[test]
    fn an_eligible_rejection_rejects_the_change() {
        let rules = [req(CLIENT, 1, false)];
        let mut no = reject("bob", &[CLIENT]);
        no.comment = Some("not during the sale".into());
        let t = tally(&rules, &[approve("dave", &[CLIENT]), no], None, true);
        assert!(t.upfront_satisfied);
        assert!(!t.is_approved());
        assert_eq!(
            t.rejection.map(|r| r.to_string()).as_deref(),
            Some("rejected by bob: not during the sale")
        );
    }

    #[test]
    fn rejections_from_outsiders_and_the_requester_are_ignored() {
        let rules = [req(CLIENT, 1, false)];
        let approvals = [reject("mallory", &["other"]), reject("alice", &[CLIENT])];
        let t = tally(&rules, &approvals, Some("alice"), true);
        assert!(t.rejection.is_none());
        let reasons: Vec<IgnoreReason> = t.ignored.iter().map(|i| i.reason).collect();
        assert_eq!(
            reasons,
            vec![IgnoreReason::NotInRequiredGroup, IgnoreReason::SelfApproval]
        );
    }

    #[test]
    fn unstamped_records_never_count() {
        let rules = [req(CLIENT, 1, false)];
        let mut forged = approve("x", &[CLIENT]);
        forged.approver = None;
        let t = tally(&rules, &[forged], None, true);
        assert!(!t.upfront_satisfied);
        assert_eq!(t.ignored[0].reason, IgnoreReason::Unstamped);
        assert_eq!(
            t.ignored[0].to_string(),
            "Approved #0 by an unknown user ignored: it was not stamped with an approver by the webhook"
        );
    }

    #[test]
    fn outstanding_text_lists_every_missing_rule() {
        let rules = [req(CLIENT, 1, false), req(CAB, 2, false), req("x", 1, true)];
        let t = tally(&rules, &[approve("f", &[CAB])], None, true);
        assert_eq!(
            t.outstanding().as_deref(),
            Some(
                "1 of 1 from group client-a:approvers still needed; \
                 1 of 2 from group msp:cab still needed"
            )
        );
        assert_eq!(
            t.outstanding_retrospective().as_deref(),
            Some("1 of 1 from group x still needed")
        );
        assert_eq!(t.summary(), "1/3, retro 0/1");
    }

    #[test]
    fn no_rules_means_approved() {
        let t = tally(&[], &[], None, true);
        assert!(t.is_approved() && t.is_ratified());
        assert_eq!(t.summary(), "0/0");
        assert_eq!(t.outstanding(), None);
    }

    #[test]
    fn surplus_approvals_do_not_overflow_the_count() {
        let rules = [req(CLIENT, 1, false)];
        let approvals = [approve("a", &[CLIENT]), approve("b", &[CLIENT])];
        for sod in [true, false] {
            let t = tally(&rules, &approvals, None, sod);
            assert_eq!(received(&t), vec![1]);
            assert!(t.ignored.is_empty());
        }
    }

    /// The best number of filled slots over every way of giving each
    /// approver at most one rule (only rules counting toward `score`).
    fn best(
        rules: &[Requirement],
        approvers: &[Vec<String>],
        score: &dyn Fn(&Requirement) -> bool,
    ) -> u32 {
        fn go(
            rules: &[Requirement],
            approvers: &[Vec<String>],
            score: &dyn Fn(&Requirement) -> bool,
            used: &mut Vec<u32>,
        ) -> u32 {
            let Some((first, rest)) = approvers.split_first() else {
                return rules
                    .iter()
                    .zip(used.iter())
                    .filter(|(q, _)| score(q))
                    .map(|(q, &n)| n.min(q.count))
                    .sum();
            };
            let mut top = go(rules, rest, score, used);
            for (i, q) in rules.iter().enumerate() {
                if first.contains(&q.group) {
                    used[i] += 1;
                    top = top.max(go(rules, rest, score, used));
                    used[i] -= 1;
                }
            }
            top
        }
        go(rules, approvers, score, &mut vec![0; rules.len()])
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

        /// The matching fills as many up-front slots as any assignment
        /// could, and then as many slots overall.
        #[test]
        fn separation_of_duties_assignment_is_optimal(
            rules in proptest::collection::vec((0usize..3, 1u32..=2, proptest::bool::ANY), 1..4),
            people in proptest::collection::vec(proptest::collection::vec(proptest::bool::ANY, 3), 0..5),
        ) {
            const GROUPS: [&str; 3] = ["a", "b", "c"];
            let mut requirements: Vec<Requirement> = Vec::new();
            for (g, count, retrospective) in rules {
                if !requirements.iter().any(|q| q.group == GROUPS[g] && q.retrospective == retrospective) {
                    requirements.push(req(GROUPS[g], count, retrospective));
                }
            }
            let approvers: Vec<Vec<String>> = people
                .iter()
                .map(|member| GROUPS.iter().zip(member).filter(|(_, m)| **m).map(|(g, _)| g.to_string()).collect())
                .collect();
            let records: Vec<ApprovalRecord> = approvers
                .iter()
                .enumerate()
                .map(|(i, groups)| ApprovalRecord { groups: groups.clone(), ..approve(&format!("p{i}"), &[]) })
                .collect();
            let t = tally(&requirements, &records, None, true);
            let filled = |retro: Option<bool>| -> u32 {
                t.rules.iter().filter(|r| retro.is_none_or(|x| r.retrospective == x)).map(|r| r.received).sum()
            };
            proptest::prop_assert_eq!(filled(Some(false)), best(&requirements, &approvers, &|q| !q.retrospective));
            proptest::prop_assert_eq!(filled(None), best(&requirements, &approvers, &|_| true));
        }
    }
}
