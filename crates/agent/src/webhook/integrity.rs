//! Integrity of changegate's own request objects: approvals and
//! history are append-only, decisions come only from eligible people, the
//! spec freezes after the first decision, `requested-by` never changes, and
//! no Release ships another tenant's change. Pure functions; the handler
//! supplies the old and new objects, the caller and the tenant's policy.

use super::stamp::Identity;
use crate::api::{
    ApprovalRecord, ChangePolicySpec, ChangeRequest, Decision, REQUESTED_BY, Release,
};
use crate::change::history::is_append_only;
use crate::policy::{Caller, check_decision};

/// UPDATE of a ChangeRequest (main resource or status subresource).
pub fn check_change_update(
    old: &ChangeRequest,
    new: &ChangeRequest,
    who: &Identity,
    policy: Option<&ChangePolicySpec>,
    controller_user: &str,
) -> Result<(), String> {
    if old.requested_by() != new.requested_by() {
        return Err(format!(
            "changegate: the {REQUESTED_BY} annotation is immutable (it is {:?}); it records who created the change",
            old.requested_by().unwrap_or_default()
        ));
    }
    let (old_approvals, new_approvals) = (old.approvals(), new.approvals());
    if !is_append_only(old_approvals, new_approvals) {
        return Err(format!(
            "changegate: status.approvals is append-only: keep all {} existing entries exactly as they are and add yours \
             after them (a JSON patch that adds to /status/approvals/-, or a merge patch listing every entry)",
            old_approvals.len()
        ));
    }
    let history = |c: &ChangeRequest| {
        c.status
            .as_ref()
            .map(|s| s.history.clone())
            .unwrap_or_default()
    };
    let (old_history, new_history) = (history(old), history(new));
    if !is_append_only(&old_history, &new_history) {
        return Err("changegate: status.history is append-only and hash-chained; existing entries cannot be edited or removed: leave status.history out of your patch".into());
    }
    // The chain has no secret: only the controller may extend it.
    if new_history.len() > old_history.len() && who.username != controller_user {
        return Err(format!(
            "changegate: only the changegate controller appends to status.history, not {}",
            who.username
        ));
    }
    let old_review = old.status.as_ref().and_then(|s| s.review.as_ref());
    let new_review = new.status.as_ref().and_then(|s| s.review.as_ref());
    if old_review.is_some() && old_review != new_review {
        return Err("changegate: status.review is written once; the post-implementation review cannot be changed".into());
    }
    if who.username != controller_user {
        check_status_written_by_people(old, new, who)?;
    }
    let added = &new_approvals[old_approvals.len()..];
    if added.len() > 1 {
        return Err("changegate: record one decision per request".into());
    }
    if let Some(decision) = added.first() {
        // The mutating webhook stamped these from userInfo; anything else
        // means it did not run, and an unstamped decision is refused.
        if decision.approver.as_deref() != Some(who.username.as_str())
            || decision.groups != who.groups
        {
            return Err("changegate: the decision is not stamped with the caller's identity; is the changegate mutating webhook installed?".into());
        }
        let Some(policy) = policy else {
            return Err("changegate: no ChangePolicy governs this tenant, so nobody can approve its changes; ask the platform team to create one".into());
        };
        let caller = Caller {
            username: &who.username,
            groups: &who.groups,
        };
        check_decision(
            policy,
            &new.spec,
            new.requested_by(),
            caller,
            decision.decision,
        )
        .map_err(|e| e.to_string())?;
        check_redecision(old_approvals, decision.decision, &who.username)?;
    }
    let decided =
        !old_approvals.is_empty() || old.phase() != crate::api::ChangePhase::PendingApproval;
    if decided && !same_spec_except_cancel(old, new) {
        return Err(
            "changegate: the spec of a ChangeRequest is frozen after its first decision (only spec.cancel may change): \
             a changed change is a new ChangeRequest"
                .into(),
        );
    }
    if old.spec.cancel == Some(true) && new.spec.cancel != Some(true) {
        return Err(
            "changegate: a cancelled change cannot be revived; create a new ChangeRequest".into(),
        );
    }
    Ok(())
}

/// Decisions one person may record on one change: enough to change one's
/// mind twice, few enough that nobody can fill `status.approvals` (64
/// entries) and lock everyone else out.
pub const DECISIONS_PER_PERSON: usize = 3;

/// Deciding again is allowed, within [`DECISIONS_PER_PERSON`]; repeating
/// one's standing decision records nothing and is refused.
fn check_redecision(
    earlier: &[ApprovalRecord],
    decision: Decision,
    who: &str,
) -> Result<(), String> {
    let mine: Vec<&ApprovalRecord> = earlier
        .iter()
        .filter(|a| a.approver.as_deref() == Some(who))
        .collect();
    if mine.last().is_some_and(|a| a.decision == decision) {
        return Err(format!(
            "changegate: {who} already {decision:?} this change; a decision that changes nothing is not recorded"
        ));
    }
    if mine.len() >= DECISIONS_PER_PERSON {
        return Err(format!(
            "changegate: {who} has recorded {DECISIONS_PER_PERSON} decisions on this change, the most one person may; \
             ask another approver, or file a new ChangeRequest"
        ));
    }
    Ok(())
}

/// People add approvals and the review to status; the phase, conditions,
/// implementations, rollout, rollback and the rest are the controller's.
/// Admission starts from the recorded phase, so a phase written by an
/// approver would admit workloads without the approvals it needs.
fn check_status_written_by_people(
    old: &ChangeRequest,
    new: &ChangeRequest,
    who: &Identity,
) -> Result<(), String> {
    let old_review = old.status.as_ref().and_then(|s| s.review.as_ref());
    let new_review = new.status.as_ref().and_then(|s| s.review.as_ref());
    if let (None, Some(review)) = (old_review, new_review)
        && review.reviewer.as_deref() != Some(who.username.as_str())
    {
        return Err("changegate: the review is not stamped with the caller's identity; is the changegate mutating webhook installed?".into());
    }
    let controllers_part = |c: &ChangeRequest| {
        let mut status = c.status.clone().unwrap_or_default();
        status.approvals.clear();
        status.review = None;
        status
    };
    if controllers_part(old) != controllers_part(new) {
        return Err(format!(
            "changegate: {} may add an approval or the review to status; everything else in status \
             (phase, conditions, implementations, rollout, ...) is written by the changegate controller only",
            who.username
        ));
    }
    Ok(())
}

fn same_spec_except_cancel(old: &ChangeRequest, new: &ChangeRequest) -> bool {
    let mut a = old.spec.clone();
    let mut b = new.spec.clone();
    a.cancel = None;
    b.cancel = None;
    a == b
}

/// CREATE or UPDATE of a Release in `namespace`: cross-namespace change
/// references only from the operations namespace.
pub fn check_release(
    release: &Release,
    namespace: &str,
    operations_namespace: &str,
) -> Result<(), String> {
    if namespace == operations_namespace {
        return Ok(());
    }
    match release
        .spec
        .changes
        .iter()
        .find(|c| c.namespace.as_deref().is_some_and(|ns| ns != namespace))
    {
        Some(c) => Err(format!(
            "changegate: spec.changes references ChangeRequest {}/{}, but a Release outside the operations namespace {operations_namespace} \
             may only reference changes in its own namespace {namespace}",
            c.namespace.as_deref().unwrap_or_default(),
            c.name
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::fixtures::change;
    use serde_json::{Value, json};

    fn policy() -> ChangePolicySpec {
        serde_json::from_value(json!({"tenants": ["client-a"], "approvals": {"normal": [{"group": "client-a:approvers", "count": 1}]}}))
            .expect("policy")
    }

    const CONTROLLER: &str = "system:serviceaccount:changegate-system:changegate";

    fn who(user: &str, groups: &[&str]) -> Identity {
        Identity {
            username: user.into(),
            groups: groups.iter().map(ToString::to_string).collect(),
        }
    }

    fn approval(user: &str, groups: &[&str]) -> Value {
        json!({"decision": "Approved", "approver": user, "groups": groups, "at": "2026-11-22T10:00:00Z"})
    }

    #[test]
    fn an_eligible_approval_is_accepted() {
        let new = change(json!({"approvals": [approval("alice", &["client-a:approvers"])]}));
        check_change_update(
            &change(json!({})),
            &new,
            &who("alice", &["client-a:approvers"]),
            Some(&policy()),
            CONTROLLER,
        )
        .expect("accepted");
    }

    #[test]
    fn self_approval_is_refused() {
        let new = change(json!({"approvals": [approval("bob", &["client-a:approvers"])]}));
        let err = check_change_update(
            &change(json!({})),
            &new,
            &who("bob", &["client-a:approvers"]),
            Some(&policy()),
            CONTROLLER,
        )
        .expect_err("refused");
        assert!(err.contains("separation of duties"), "{err}");
    }

    #[test]
    fn another_tenants_approver_is_refused() {
        let new = change(json!({"approvals": [approval("zoe", &["client-b:approvers"])]}));
        let err = check_change_update(
            &change(json!({})),
            &new,
            &who("zoe", &["client-b:approvers"]),
            Some(&policy()),
            CONTROLLER,
        )
        .expect_err("refused");
        assert!(err.contains("not a member of any group"), "{err}");
    }

    #[test]
    fn removing_or_editing_an_approval_is_refused() {
        let old = change(json!({"approvals": [approval("alice", &["client-a:approvers"])]}));
        let removed = change(json!({}));
        assert!(
            check_change_update(
                &old,
                &removed,
                &who("alice", &[]),
                Some(&policy()),
                CONTROLLER
            )
            .is_err()
        );
        let edited = change(
            json!({"approvals": [{"decision": "Approved", "approver": "mallory", "groups": ["client-a:approvers"], "at": "2026-11-22T10:00:00Z"}]}),
        );
        let err = check_change_update(
            &old,
            &edited,
            &who("mallory", &[]),
            Some(&policy()),
            CONTROLLER,
        )
        .expect_err("refused");
        assert!(err.contains("append-only"), "{err}");
    }

    #[test]
    fn an_unstamped_decision_is_refused() {
        let new = change(json!({"approvals": [approval("carol", &["client-a:approvers"])]}));
        assert!(
            check_change_update(
                &change(json!({})),
                &new,
                &who("alice", &["client-a:approvers"]),
                Some(&policy()),
                CONTROLLER
            )
            .is_err()
        );
    }

    #[test]
    fn the_spec_freezes_after_the_first_decision_except_cancel() {
        let old = change(json!({"approvals": [approval("alice", &["client-a:approvers"])]}));
        let mut edited = old.clone();
        edited.spec.title = "something else".into();
        let err = check_change_update(&old, &edited, &who("bob", &[]), Some(&policy()), CONTROLLER)
            .expect_err("frozen");
        assert!(err.contains("frozen"), "{err}");
        let mut cancelled = old.clone();
        cancelled.spec.cancel = Some(true);
        check_change_update(
            &old,
            &cancelled,
            &who("bob", &[]),
            Some(&policy()),
            CONTROLLER,
        )
        .expect("cancel is allowed");
    }

    #[test]
    fn requested_by_is_immutable() {
        let old = change(json!({}));
        let mut new = old.clone();
        new.metadata
            .annotations
            .as_mut()
            .expect("annotations")
            .insert(REQUESTED_BY.into(), "mallory".into());
        assert!(
            check_change_update(
                &old,
                &new,
                &who("mallory", &[]),
                Some(&policy()),
                CONTROLLER
            )
            .is_err()
        );
    }

    #[test]
    fn only_the_controller_extends_history() {
        let entry = json!({"phase": "Approved", "at": "2026-11-22T10:00:00Z", "by": "x", "reason": "r", "hash": "h"});
        let new = change(json!({"history": [entry]}));
        let err = check_change_update(
            &change(json!({})),
            &new,
            &who("mallory", &[]),
            Some(&policy()),
            CONTROLLER,
        )
        .expect_err("refused");
        assert!(err.contains("only the changegate controller"), "{err}");
        check_change_update(
            &change(json!({})),
            &new,
            &who(CONTROLLER, &[]),
            Some(&policy()),
            CONTROLLER,
        )
        .expect("controller may");
    }

    #[test]
    fn a_person_may_change_their_mind_but_not_repeat_it_or_flip_without_end() {
        let alice = who("alice", &["client-a:approvers"]);
        let decide = |d: &str| json!({"decision": d, "approver": "alice", "groups": ["client-a:approvers"], "at": "2026-11-22T10:00:00Z"});
        let mut record: Vec<Value> = Vec::new();
        let mut step = |d: &str| {
            let old = change(json!({"approvals": record.clone()}));
            let mut next = record.clone();
            next.push(decide(d));
            let verdict = check_change_update(
                &old,
                &change(json!({"approvals": next.clone()})),
                &alice,
                Some(&policy()),
                CONTROLLER,
            );
            if verdict.is_ok() {
                record = next;
            }
            verdict
        };
        step("Approved").expect("first decision");
        let err = step("Approved").expect_err("the same again");
        assert!(err.contains("already Approved"), "{err}");
        step("Rejected").expect("a change of mind");
        step("Approved").expect("and back");
        let err = step("Rejected").expect_err("a fourth decision");
        assert!(err.contains("the most one person may"), "{err}");
    }

    #[test]
    fn only_the_controller_writes_the_rest_of_status() {
        let approver = who("alice", &["client-a:approvers"]);
        for forged in [
            json!({"phase": "Approved"}),
            json!({"implementations": [{"kind": "Deployment", "name": "web", "user": "alice", "at": "2026-11-22T10:00:00Z"}]}),
            json!({"approvalSummary": "1/1", "window": "open"}),
            // An approval does not carry a phase change along with it.
            json!({"phase": "Approved", "approvals": [approval("alice", &["client-a:approvers"])]}),
        ] {
            let new = change(forged.clone());
            let err = check_change_update(
                &change(json!({"phase": "PendingApproval"})),
                &new,
                &approver,
                Some(&policy()),
                CONTROLLER,
            )
            .expect_err(&forged.to_string());
            assert!(
                err.contains("written by the changegate controller only"),
                "{forged}: {err}"
            );
            if forged.get("approvals").is_none() {
                check_change_update(
                    &change(json!({"phase": "PendingApproval"})),
                    &new,
                    &who(CONTROLLER, &[]),
                    Some(&policy()),
                    CONTROLLER,
                )
                .expect("the controller may");
            }
        }
    }

    #[test]
    fn a_review_is_accepted_only_in_the_callers_name() {
        let old = change(json!({"phase": "Implemented"}));
        let reviewed = |reviewer: &str| {
            change(json!({"phase": "Implemented",
                "review": {"outcome": "Successful", "reviewer": reviewer, "at": "2026-11-22T10:00:00Z"}}))
        };
        let cab = who("carol", &["msp:cab"]);
        check_change_update(&old, &reviewed("carol"), &cab, Some(&policy()), CONTROLLER)
            .expect("her own review");
        let err = check_change_update(&old, &reviewed("dave"), &cab, Some(&policy()), CONTROLLER)
            .expect_err("someone else's");
        assert!(
            err.contains("not stamped with the caller's identity"),
            "{err}"
        );
    }

    #[test]
    fn only_the_operations_namespace_references_other_namespaces() {
        let release: Release = serde_json::from_value(json!({
            "apiVersion": "changegate.dev/v1alpha1", "kind": "Release", "metadata": {"name": "r"},
            "spec": {"changes": [{"name": "chg-9", "namespace": "client-b-prod"}]}
        }))
        .expect("release");
        let err = check_release(&release, "client-a-prod", "changegate-system")
            .expect_err("cross-tenant");
        assert!(err.contains("client-b-prod/chg-9"), "{err}");
        check_release(&release, "changegate-system", "changegate-system")
            .expect("operations namespace may");
    }
}
