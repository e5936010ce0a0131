//! The period's changes read in order a page at a time, each made into
//! its evidence with its approvals and what the chain said of it, and
//! handed on: the period is never held as rows.

use changegate_core::ChangeNumber;
use changegate_store::{Approval, Change, Store, Tenant};
use std::collections::{BTreeSet, HashMap};

use super::chain::Facts;
use super::controls::Controls;
use super::{ApprovalEvidence, ChangeEvidence, Period};
use crate::error::ApiResult;
use crate::workflow::Emails;

/// Changes read at a time.
const PAGE: i64 = 500;

/// The evidence of `c` with its approvals, before the chain's facts. Pure.
pub fn evidence_of(c: &Change, approvals: &[Approval], emails: &Emails) -> ChangeEvidence {
    ChangeEvidence {
        number: c.number.to_string(),
        title: c.content.title.clone(),
        kind: c.kind.to_string(),
        state: c.state.to_string(),
        risk: c.risk_level.map(|l| l.to_string()),
        requester: emails.of(c.requester),
        created_at: c.created_at,
        submitted_at: c.submitted_at,
        decided_at: c.decided_at,
        planned_start: c.content.planned_start,
        planned_end: c.content.planned_end,
        policy_version: c.policy_version,
        fingerprint: c.fingerprint.clone(),
        approvals: approvals
            .iter()
            .map(|a| ApprovalEvidence {
                approver: a.approver_email.to_string(),
                on_behalf_of: a.on_behalf_of.map(|u| emails.of(u)),
                decision: a.decision.as_str().to_string(),
                channel: a.channel.as_str().to_string(),
                at: a.at,
                revision: a.revision,
                comment: a.comment.clone(),
            })
            .collect(),
        window: None,
        test_plan: c.content.test_plan.clone(),
        test_evidence: c.content.test_evidence.clone(),
        implementer: c.implementer.map(|u| emails.of(u)),
        started_at: None,
        finished_at: None,
        failed_at: None,
        deployments: Vec::new(),
        outcome: None,
        documentation: None,
        releases: Vec::new(),
        review: None,
        acceptance_required: false,
        acceptance: None,
        retrospective_due_at: c.retrospective_due_at,
        retrospective_overdue: c.retrospective_overdue,
    }
}

/// Every change of `tenant` raised in `period`, by number, made into its
/// evidence (approvals, and the chain's `facts`) and given to `each`;
/// the controls are taken in as they pass.
pub async fn each(
    store: &dyn Store,
    tenant: &Tenant,
    period: Period,
    mut facts: HashMap<String, Facts>,
    mut each: impl FnMut(ChangeEvidence) -> ApiResult<()>,
) -> ApiResult<Controls> {
    let (start, end) = (period.start(), period.end());
    let mut emails = Emails::default();
    let mut controls = Controls::default();
    let mut after = ChangeNumber(0);
    loop {
        let page = store
            .changes_created_page(tenant.id, start, end, after, PAGE)
            .await?;
        let (Some(first), Some(last)) = (page.first(), page.last()) else {
            break;
        };
        after = last.number;
        let mut approvals: HashMap<ChangeNumber, Vec<Approval>> = HashMap::new();
        for a in store
            .approvals_of_changes(tenant.id, first.number, last.number)
            .await?
        {
            approvals.entry(a.change).or_default().push(a);
        }
        let mut ids: BTreeSet<_> = page
            .iter()
            .flat_map(|c| [Some(c.requester), c.implementer])
            .flatten()
            .collect();
        ids.extend(
            page.iter()
                .filter_map(|c| approvals.get(&c.number))
                .flatten()
                .filter_map(|a| a.on_behalf_of),
        );
        emails.load_more(store, ids).await?;
        for c in &page {
            let mine = approvals.remove(&c.number).unwrap_or_default();
            let mut e = evidence_of(c, &mine, &emails);
            if let Some(f) = facts.remove(&e.number) {
                f.apply(&mut e);
            }
            controls.add(&e);
            each(e)?;
        }
    }
    Ok(controls)
}
