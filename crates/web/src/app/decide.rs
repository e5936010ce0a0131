//! Recording a decision: the one path every channel takes (the API, the
//! portal's change page and CAB agenda, e-mail links). A decision names
//! the revision it judges; the decider must hold a seat of the frozen
//! plan (their own, a delegated one, or one the change was escalated to
//! them for), one seat per board; a seat decided by its holder is never
//! decided over on their behalf; the requester never decides.

use axum::http::StatusCode;
use changegate_core::approval::PlanStatus;
use changegate_core::board::Decision;
use changegate_core::change::ChangeState;
use changegate_core::policy::PolicySpec;
use changegate_core::{Email, UserId};
use changegate_store::{Change, ChangeWrite, Channel, NewApproval, Store, StoreError, User};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::change::{approve, event, load, move_to};
use crate::AppState;
use crate::dto::{DecisionBody, email_field};
use crate::error::{ApiError, ApiResult};
use crate::tenant::InTenant;
use crate::workflow;

/// What someone decides.
pub struct Decide<'a> {
    pub decision: Decision,
    pub comment: &'a str,
    /// The revision they reviewed: a decision on any other is refused.
    pub revision: i64,
    /// Deciding in this approver's seat (by delegation or escalation).
    pub on_behalf_of: Option<&'a str>,
    pub channel: Channel,
    /// The approval link the decision uses up (e-mail).
    pub link: Option<LinkUse>,
    /// Where it came from, for the audit chain (kubectl: the cluster and
    /// the Kubernetes user name).
    pub via: Option<serde_json::Value>,
    /// Judge it and answer what would happen; record nothing.
    pub dry_run: bool,
}

impl<'a> Decide<'a> {
    /// A decision as a request body states it. Which revision was
    /// reviewed is required: a decision binds to what was read.
    pub fn from_body(
        body: &'a DecisionBody,
        channel: Channel,
        link: Option<LinkUse>,
    ) -> ApiResult<Self> {
        let decision: Decision = body.decision.parse()?;
        let revision = body.revision.ok_or_else(|| {
            ApiError::invalid(
                "revision",
                "say which revision of the change you reviewed (its `revision`); a decision binds to it",
            )
        })?;
        Ok(Decide {
            decision,
            comment: &body.comment,
            revision,
            on_behalf_of: body.on_behalf_of.as_deref(),
            channel,
            link,
            via: None,
            dry_run: false,
        })
    }
}

/// An approval link a decision uses up, with what to record of its use.
pub struct LinkUse {
    pub token_hash: String,
    pub detail: serde_json::Value,
}

/// Whether the policy's escalation delay has passed for `c` at `now`.
fn escalation_due(c: &Change, policy: &PolicySpec, now: DateTime<Utc>) -> bool {
    match (&policy.escalation, c.submitted_at) {
        (Some(e), Some(submitted)) => {
            now >= submitted + chrono::TimeDelta::hours(i64::from(e.after_hours))
        }
        _ => false,
    }
}

/// Whether the change takes decisions now: awaiting approval, or an
/// emergency change implemented first whose retrospective approval is owed.
pub fn takes_decisions(c: &Change) -> bool {
    c.state.takes_decisions()
        || (c.retrospective_due_at.is_some() && c.decided_at.is_none() && !c.state.is_final())
}

/// The policy's rules on who sits where, before the plan's own (one seat
/// per board, no decision over a recorded one): `caller` decides in
/// `holder`'s seat (their own when `None`) only by the holder's active
/// delegation, or as the backup the change was escalated to once the
/// escalation delay has passed (before that, only in a disabled holder's
/// seat); and where the policy keeps implementers from approving, the
/// change's implementer neither decides nor has their seat decided for
/// them.
async fn may_sit(
    store: &dyn Store,
    c: &Change,
    policy: &PolicySpec,
    caller: UserId,
    holder: Option<&User>,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    if let Some(h) = holder {
        let delegated = store.delegation_active(c.tenant, h.id, caller, now).await?;
        let escalated = c.escalated_to == Some(caller)
            && (escalation_due(c, policy, now) || disabled(store, h).await?);
        if !delegated && !escalated {
            return Err(ApiError::forbidden(format!(
                "{} has no active delegation to you, and {}'s seat was not escalated to you",
                h.email, c.number
            )));
        }
    }
    if policy.implementer_may_not_approve {
        if c.implementer == Some(caller) {
            return Err(ApiError::forbidden(format!(
                "you implement {}; the policy keeps implementers from approving",
                c.number
            )));
        }
        if let Some(h) = holder.filter(|h| c.implementer == Some(h.id)) {
            return Err(ApiError::forbidden(format!(
                "{} implements {}; the policy keeps implementers from approving, through a delegate or backup too",
                h.email, c.number
            )));
        }
    }
    Ok(())
}

/// Whether `u` was disabled (no longer found by address).
async fn disabled(store: &dyn Store, u: &User) -> ApiResult<bool> {
    match store.user_by_email(&u.email).await {
        Ok(_) => Ok(false),
        Err(StoreError::NotFound { .. }) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// The seat `caller` would decide `c` in now, by the rules
/// [`record_decision`] applies: `Some(None)` their own, undecided;
/// `Some(Some(holder))` an undecided seat of a board still waiting, on a
/// change escalated to them; `None` when they have no decision to make.
/// (A delegate names the seat through the API's `on_behalf_of`.)
pub async fn seat_for(
    store: &dyn Store,
    c: &Change,
    caller: UserId,
    now: DateTime<Utc>,
) -> ApiResult<Option<Option<UserId>>> {
    let seats = c.plan.seats();
    let escalated = c.escalated_to == Some(caller);
    if !takes_decisions(c) || c.requester == caller || !(seats.contains(&caller) || escalated) {
        return Ok(None);
    }
    let (_, policy) = workflow::policy(store, c.tenant).await?;
    let votes = workflow::votes(store, c).await?;
    let mut candidates = Vec::new();
    if seats.contains(&caller) && !votes.iter().any(|v| v.seat == caller) {
        candidates.push(None);
    }
    if escalated && let PlanStatus::Pending { boards } = c.plan.status(&votes) {
        for seat in boards.iter().flat_map(|b| b.awaiting.iter().copied()) {
            if seat != caller && !candidates.contains(&Some(seat)) {
                candidates.push(Some(seat));
            }
        }
    }
    for holder in candidates {
        let holder_user = match holder {
            Some(h) => Some(store.user(h).await?),
            None => None,
        };
        match may_sit(store, c, &policy, caller, holder_user.as_ref(), now).await {
            Ok(()) => {}
            Err(e) if e.status == StatusCode::FORBIDDEN => continue,
            Err(e) => return Err(e),
        }
        if c.plan
            .check_decision(&votes, c.requester, caller, holder, Decision::Approve)
            .is_ok()
        {
            return Ok(Some(holder));
        }
    }
    Ok(None)
}

/// Record `t.caller`'s decision on change `n` (the caller has been
/// authorized to decide in the tenant): eligibility against the frozen
/// plan, the resulting state, and the approval with its audit events in
/// one write. Concurrent decisions race on the change's version; the
/// loser reads again and decides again, so none is lost or doubled.
pub async fn record_decision(
    state: &AppState,
    t: &InTenant,
    n: &str,
    d: Decide<'_>,
) -> ApiResult<Change> {
    let store = state.store.as_ref();
    let now = state.now();
    let actor = t.actor();
    let on_behalf_of: Option<Email> = d
        .on_behalf_of
        .map(|e| email_field("on_behalf_of", e))
        .transpose()?;
    for _ in 0..200 {
        let mut c = load(store, t.tenant.id, n).await?;
        if !takes_decisions(&c) {
            return Err(ApiError::state(format!(
                "{} is {}; it is not awaiting approval",
                c.number, c.state
            )));
        }
        if d.revision != c.revision {
            return Err(ApiError::state(format!(
                "{} is at revision {}, not the revision {} you reviewed; review it again",
                c.number, c.revision, d.revision
            ))
            .with_field("revision"));
        }
        if t.caller.user != c.requester
            && store
                .revisions(t.tenant.id, c.number)
                .await?
                .iter()
                .any(|r| r.revision == c.revision && r.created_by == t.caller.user)
        {
            return Err(ApiError::forbidden(format!(
                "you edited or submitted revision {} of {}; someone else approves it",
                c.revision, c.number
            )));
        }
        let (_, policy) = workflow::policy(store, t.tenant.id).await?;
        // Among the seats frozen for this change (a seat holder disabled
        // since holds it still, for a backup to fill).
        let holder = match &on_behalf_of {
            None => None,
            Some(email) => {
                let mut found = None;
                for seat in c.plan.seats() {
                    let u = store.user(seat).await?;
                    if u.email == *email {
                        found = Some(u);
                        break;
                    }
                }
                Some(found.ok_or_else(|| {
                    ApiError::invalid(
                        "on_behalf_of",
                        format!("{email} holds no seat on {}", c.number),
                    )
                })?)
            }
        };
        may_sit(store, &c, &policy, t.caller.user, holder.as_ref(), now).await?;
        let seat_holder = holder.as_ref().map(|u| u.id);
        let mut votes = workflow::votes(store, &c).await?;
        let seat = c
            .plan
            .check_decision(&votes, c.requester, t.caller.user, seat_holder, d.decision)
            .map_err(|e| ApiError::forbidden(e.to_string()))?;
        votes.push(changegate_core::approval::Vote {
            seat,
            by: t.caller.user,
            decision: d.decision,
        });
        let expected = c.version;
        let mut detail = json!({ "decision": d.decision.as_str(), "comment": d.comment, "channel": d.channel.as_str(), "revision": c.revision,
                "fingerprint": c.fingerprint, "on_behalf_of": d.on_behalf_of, "policy_version": c.policy_version });
        if let Some(via) = &d.via {
            detail["via"] = via.clone();
        }
        let mut events = vec![event(&actor, &c, "approval.recorded", detail, now)];
        let retrospective =
            c.retrospective_due_at.is_some() && c.state != ChangeState::AwaitingApproval;
        match c.plan.status(&votes) {
            PlanStatus::Approved if retrospective => {
                c.decided_at = Some(now);
                events.push(event(
                    &actor,
                    &c,
                    "change.retrospectively-approved",
                    json!({}),
                    now,
                ));
            }
            PlanStatus::Approved => {
                approve(&mut c, &policy, now)?;
                events.push(event(
                    &actor,
                    &c,
                    "change.approved",
                    json!({ "revision": c.revision, "expires_at": c.approval_expires_at }),
                    now,
                ));
            }
            PlanStatus::Rejected { board, reason } if retrospective => {
                c.decided_at = Some(now);
                events.push(event(
                    &actor,
                    &c,
                    "change.retrospectively-rejected",
                    json!({ "board": board, "reason": reason }),
                    now,
                ));
            }
            PlanStatus::Rejected { board, reason } => {
                move_to(&mut c, ChangeState::Rejected)?;
                c.decided_at = Some(now);
                events.push(event(
                    &actor,
                    &c,
                    "change.rejected",
                    json!({ "board": board, "reason": reason }),
                    now,
                ));
            }
            PlanStatus::Pending { .. } => {}
        }
        if let Some(l) = &d.link {
            events.push(event(
                &actor,
                &c,
                "approval-link.used",
                l.detail.clone(),
                now,
            ));
        }
        let mut messages = match c.state {
            ChangeState::Approved | ChangeState::Rejected if !retrospective => {
                crate::mail::outcome_notices(
                    store,
                    &state.public_url,
                    &t.tenant,
                    &c,
                    c.state.as_str(),
                    now,
                )
                .await?
            }
            _ => Vec::new(),
        };
        // Approved and tested: the client accepts it, where the policy asks.
        let (acceptance, links) = if c.state == ChangeState::Approved && !retrospective {
            super::accept::requests(store, &state.public_url, &t.tenant, &c, &policy, now).await?
        } else {
            (Vec::new(), Vec::new())
        };
        messages.extend(acceptance);
        let write = ChangeWrite {
            messages,
            links,
            use_link: d.link.as_ref().map(|l| l.token_hash.clone()),
            approval: Some(NewApproval {
                approver: t.caller.user,
                on_behalf_of: seat_holder,
                decision: d.decision,
                comment: d.comment.to_string(),
                channel: d.channel,
                at: now,
            }),
            events,
            ..ChangeWrite::default()
        };
        if c.state != ChangeState::AwaitingApproval {
            (c.remind_at, c.escalate_at) = (None, None);
        }
        if d.dry_run {
            return Ok(c);
        }
        match store.save_change(&c, expected, write, now).await {
            Ok(saved) => return Ok(saved),
            Err(StoreError::Conflict { constraint }) if constraint == "approval_links.used_at" => {
                return Err(ApiError::new(
                    axum::http::StatusCode::GONE,
                    "link-used",
                    "this approval link has been used already",
                ));
            }
            Err(StoreError::Conflict { .. }) => {
                tokio::task::yield_now().await;
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict(
        "the change is busy with other decisions; retry",
    ))
}

/// The seats `user` (just disabled) holds undecided on the changes of
/// `tenants` that take decisions (awaiting approval, or owing a
/// retrospective one): each change is escalated to its tenant's backup
/// approver (the policy's `escalation.to`), who may then decide in it, or
/// flagged where the tenant has none. A change written meanwhile is read
/// again. The changes moved and those flagged, by number.
pub async fn reassign_seats_of(
    state: &AppState,
    user: &User,
    actor: &Email,
    tenants: &[changegate_core::TenantId],
) -> ApiResult<(Vec<String>, Vec<String>)> {
    let store = state.store.as_ref();
    let now = state.now();
    let (mut moved, mut flagged) = (Vec::new(), Vec::new());
    for tenant in tenants {
        let (_, policy) = workflow::policy(store, *tenant).await?;
        let people = workflow::People::load(store, *tenant).await?;
        let backup = policy
            .escalation
            .as_ref()
            .and_then(|e| people.id_of(e.to.as_str()).map(|id| (id, e.to.to_string())))
            .filter(|(b, _)| *b != user.id);
        // Every change of the tenant, a page at a time: those owing a
        // retrospective approval are past awaiting approval.
        let mut filter = changegate_store::ChangeFilter {
            tenants: Some([*tenant].into()),
            limit: 500,
            ..Default::default()
        };
        loop {
            let page = store.list_changes(&filter).await?;
            let Some(last) = page.last().map(|c| c.number) else {
                break;
            };
            for mut c in page {
                let mut tries = 0;
                loop {
                    if !takes_decisions(&c) || !c.plan.seats().contains(&user.id) {
                        break;
                    }
                    let votes = workflow::votes(store, &c).await?;
                    if votes.iter().any(|v| v.seat == user.id) {
                        break; // decided already: the decision stands
                    }
                    let mut next = c.clone();
                    if let Some((b, _)) = &backup {
                        next.escalated_to = Some(*b);
                    }
                    let write = ChangeWrite {
                        events: vec![event(
                            actor.as_str(),
                            &next,
                            "change.approver-disabled",
                            json!({ "approver": user.email, "moved_to": backup.as_ref().map(|(_, e)| e),
                                    "flagged": backup.is_none() }),
                            now,
                        )],
                        ..ChangeWrite::default()
                    };
                    match store.save_change(&next, c.version, write, now).await {
                        Ok(_) if backup.is_some() => moved.push(c.number.to_string()),
                        Ok(_) => flagged.push(c.number.to_string()),
                        Err(StoreError::Conflict { .. }) if tries < 50 => {
                            tries += 1;
                            c = store.change(*tenant, c.number).await?;
                            continue;
                        }
                        Err(StoreError::Conflict { .. }) => flagged.push(c.number.to_string()),
                        Err(e) => return Err(e.into()),
                    }
                    break;
                }
            }
            filter.before = Some(last);
        }
    }
    Ok((moved, flagged))
}
