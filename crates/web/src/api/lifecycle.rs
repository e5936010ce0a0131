//! A change's way through its states: submit (approvers frozen, content
//! fingerprinted), decide (approve or reject, bound to the revision),
//! start, complete, fail or roll back, review and close, cancel.

use axum::Json;
use axum::extract::{Path, State};

use changegate_core::Role;
use changegate_core::approval::{PlanStatus, Vote};
use changegate_core::authz::Action;
use changegate_core::board::Decision;
use changegate_core::change::{self, ChangeState, ChangeType};
use changegate_core::window::{self, WindowVerdict};
use changegate_store::{Change, ChangeWrite, Channel, NewApproval, NewEvent, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use super::changes::{load, view};
use super::{Body, ChangePath};
use crate::AppState;
use crate::dto::{ApprovalView, ChangeView, DecisionBody, ReviewBody, TransitionBody, email_field};
use crate::error::{ApiError, ApiResult};
use crate::tenant::InTenant;
use crate::workflow::{self, Emails};

pub(crate) fn event(
    t: &InTenant,
    c: &Change,
    action: &str,
    detail: serde_json::Value,
    at: DateTime<Utc>,
) -> NewEvent {
    NewEvent {
        actor: t.actor(),
        action: action.into(),
        subject: c.number.to_string(),
        detail,
        at,
    }
}

pub(crate) fn move_to(c: &mut Change, to: ChangeState) -> ApiResult<()> {
    if !change::allowed(c.state, to) {
        return Err(ApiError::state(format!(
            "{} is {}; it cannot become {to}",
            c.number, c.state
        )));
    }
    c.state = to;
    Ok(())
}

/// Save, turning a lost optimistic race into a clear 409.
pub(crate) async fn save(
    state: &AppState,
    c: &Change,
    expected: i64,
    write: ChangeWrite,
) -> ApiResult<Change> {
    // Reminders and escalation concern a change awaiting approval only.
    let cleared;
    let c = if c.state != ChangeState::AwaitingApproval
        && (c.remind_at.is_some() || c.escalate_at.is_some())
    {
        cleared = Change {
            remind_at: None,
            escalate_at: None,
            ..c.clone()
        };
        &cleared
    } else {
        c
    };
    state
        .store
        .save_change(c, expected, write, state.now())
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => {
                ApiError::conflict(format!("{} changed meanwhile; reload and retry", c.number))
            }
            other => other.into(),
        })
}

fn approval_expiry(c: &mut Change, hours: Option<u32>, now: DateTime<Utc>) {
    c.decided_at = Some(now);
    c.approval_expires_at = hours.map(|h| now + TimeDelta::hours(i64::from(h)));
}

/// Submit a draft (or a rejected change, as a new revision): the risk is
/// assessed, the boards routed and their approvers frozen, the content
/// fingerprinted, and the policy version recorded. A standard change from
/// a current template is approved at once.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/changes/{number}/submit", tag = "lifecycle",
    params(("tenant" = String, Path), ("number" = String, Path)), responses((status = 200, body = ChangeView)))]
pub async fn submit(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<ChangePath>,
) -> ApiResult<Json<ChangeView>> {
    t.authorize(Action::RequestChange)?;
    let saved = submit_change(&state, &t, &p.number).await?;
    Ok(Json(view(&state, &t, &saved).await?))
}

/// Submit change `n` (a draft, or a rejected change as a new revision):
/// assess it, freeze its approvers and ask them, or approve it at once
/// when no board is routed. The API and the portal's change form call it.
pub(crate) async fn submit_change(state: &AppState, t: &InTenant, n: &str) -> ApiResult<Change> {
    let store = state.store.as_ref();
    let mut c = load(store, t.tenant.id, n).await?;
    if c.requester != t.caller.user
        && !t.caller.has_role(t.tenant.id, Role::ChangeManager)
        && !t.caller.admin
    {
        return Err(ApiError::forbidden(
            "only the requester or a change manager submits a change",
        ));
    }
    let expected = c.version;
    let now = state.now();
    let resubmission = c.state == ChangeState::Rejected;
    if resubmission {
        move_to(&mut c, ChangeState::Draft)?;
        c.revision += 1;
    }
    move_to(&mut c, ChangeState::Submitted)?;
    let workflow::Assessment {
        policy_version: version,
        policy,
        level,
        score,
        routed,
        plan,
    } = workflow::assess(
        store,
        t.tenant.id,
        c.kind,
        &c.content,
        c.requester,
        c.implementer,
        now.date_naive(),
    )
    .await?;
    c.risk_score = Some(score);
    c.risk_level = Some(level);
    c.plan = plan;
    c.fingerprint = Some(c.content.fingerprint());
    c.policy_version = Some(version);
    c.submitted_at = Some(now);
    c.decided_at = None;
    c.approval_expires_at = None;
    let mut events = vec![event(
        t,
        &c,
        "change.submitted",
        json!({ "revision": c.revision, "fingerprint": c.fingerprint, "policy_version": version,
                "risk": { "level": level.as_str(), "score": c.risk_score }, "boards": routed }),
        now,
    )];
    if c.plan.is_empty() {
        move_to(&mut c, ChangeState::Approved)?;
        approval_expiry(&mut c, policy.approval_expiry_hours, now);
        let why = if c.kind == ChangeType::Standard {
            "pre-approved template"
        } else {
            "no board is routed"
        };
        events.push(event(t, &c, "change.approved", json!({ "by": why }), now));
    } else {
        move_to(&mut c, ChangeState::AwaitingApproval)?;
        nudges(&mut c, &policy, now);
    }
    let mut write = ChangeWrite {
        record_revision: Some(t.caller.user),
        events,
        ..ChangeWrite::default()
    };
    if c.state == ChangeState::AwaitingApproval {
        (write.messages, write.links) = crate::mail::approval_requests(
            store,
            &state.public_url,
            &t.tenant.name,
            &c,
            &policy,
            now,
        )
        .await?;
    }
    save(state, &c, expected, write).await
}

#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/changes/{number}/cancel", tag = "lifecycle",
    params(("tenant" = String, Path), ("number" = String, Path)), request_body = TransitionBody,
    responses((status = 200, body = ChangeView)))]
pub async fn cancel(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<ChangePath>,
    Body(body): Body<TransitionBody>,
) -> ApiResult<Json<ChangeView>> {
    let n = p.number;
    t.authorize(Action::RequestChange)?;
    let mut c = load(state.store.as_ref(), t.tenant.id, &n).await?;
    if c.requester != t.caller.user
        && !t.caller.has_role(t.tenant.id, Role::ChangeManager)
        && !t.caller.admin
    {
        return Err(ApiError::forbidden(
            "only the requester or a change manager cancels a change",
        ));
    }
    let expected = c.version;
    move_to(&mut c, ChangeState::Cancelled)?;
    let now = state.now();
    let write = ChangeWrite {
        events: vec![event(
            &t,
            &c,
            "change.cancelled",
            json!({ "note": body.note }),
            now,
        )],
        ..Default::default()
    };
    let saved = save(&state, &c, expected, write).await?;
    Ok(Json(view(&state, &t, &saved).await?))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/changes/{number}/approvals", tag = "lifecycle",
    params(("tenant" = String, Path), ("number" = String, Path)), responses((status = 200, body = [ApprovalView])))]
pub async fn approvals(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<ChangePath>,
) -> ApiResult<Json<Vec<ApprovalView>>> {
    let n = p.number;
    t.authorize(Action::Read)?;
    let c = load(state.store.as_ref(), t.tenant.id, &n).await?;
    let list = state.store.approvals(t.tenant.id, c.number).await?;
    let emails = Emails::load(
        state.store.as_ref(),
        list.iter().filter_map(|a| a.on_behalf_of),
    )
    .await?;
    Ok(Json(
        list.iter()
            .map(|a| ApprovalView::from(a, &|u| emails.of(u)))
            .collect(),
    ))
}

/// Whether the change takes decisions now: awaiting approval, or an
/// emergency change implemented first whose retrospective approval is owed.
fn takes_decisions(c: &Change) -> bool {
    c.state.takes_decisions()
        || (c.retrospective_due_at.is_some() && c.decided_at.is_none() && !c.state.is_final())
}

/// Approve or reject, as yourself or in the seat of an approver who
/// delegated to you. Bound to the change's current revision: a decision
/// on an older revision is refused.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/changes/{number}/decisions", tag = "lifecycle",
    params(("tenant" = String, Path), ("number" = String, Path)), request_body = DecisionBody,
    responses((status = 200, body = ChangeView), (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn decide(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<ChangePath>,
    Body(body): Body<DecisionBody>,
) -> ApiResult<Json<ChangeView>> {
    t.authorize(Action::Decide)?;
    let saved = record_decision(&state, &t, &p.number, &body, Channel::Api, None).await?;
    Ok(Json(view(&state, &t, &saved).await?))
}

/// An approval link a decision uses up, with what to record of its use.
pub(crate) struct LinkUse {
    pub token_hash: String,
    pub detail: serde_json::Value,
}

/// Record `t.caller`'s decision on change `n` through `channel` (the
/// caller has been authorized to decide): eligibility against the frozen
/// plan, the resulting state, and the approval with its audit events in
/// one write.
pub(crate) async fn record_decision(
    state: &AppState,
    t: &InTenant,
    n: &str,
    body: &DecisionBody,
    channel: Channel,
    link: Option<LinkUse>,
) -> ApiResult<Change> {
    let decision: Decision = body.decision.parse()?;
    let store = state.store.as_ref();
    let now = state.now();
    let on_behalf_of = match &body.on_behalf_of {
        None => None,
        Some(e) => {
            let email = email_field("on_behalf_of", e)?;
            let people = workflow::People::load(store, t.tenant.id).await?;
            let principal = people.id_of(email.as_str()).ok_or_else(|| {
                ApiError::invalid(
                    "on_behalf_of",
                    format!("{email} is not a user of this tenant"),
                )
            })?;
            let delegated = store
                .delegation_active(t.tenant.id, principal, t.caller.user, now)
                .await?;
            Some((principal, email, delegated))
        }
    };
    // Concurrent decisions on one change race on its version; the loser
    // re-reads and decides again, so none is lost.
    for _ in 0..200 {
        let mut c = load(store, t.tenant.id, n).await?;
        if !takes_decisions(&c) {
            return Err(ApiError::state(format!(
                "{} is {}; it is not awaiting approval",
                c.number, c.state
            )));
        }
        if let Some(r) = body.revision
            && r != c.revision
        {
            return Err(ApiError::state(format!(
                "{} has a newer revision ({}) than the one you reviewed ({r}); review it again",
                c.number, c.revision
            ))
            .with_field("revision"));
        }
        // On someone's behalf: by their delegation, or as the backup this
        // change was escalated to; never as the change's implementer where
        // the policy keeps implementers from approving.
        let on_behalf_of = match &on_behalf_of {
            None => None,
            Some((principal, email, delegated)) => {
                if !delegated && c.escalated_to != Some(t.caller.user) {
                    return Err(ApiError::forbidden(format!(
                        "{email} has no active delegation to you, and {} was not escalated to you",
                        c.number
                    )));
                }
                if c.implementer == Some(t.caller.user)
                    && workflow::policy(store, t.tenant.id)
                        .await?
                        .1
                        .implementer_may_not_approve
                {
                    return Err(ApiError::forbidden(format!(
                        "you implement {}; the policy keeps implementers from approving",
                        c.number
                    )));
                }
                Some(*principal)
            }
        };
        let mut votes = workflow::votes(store, &c).await?;
        let seat = c
            .plan
            .check_decision(&votes, c.requester, t.caller.user, on_behalf_of, decision)
            .map_err(|e| ApiError::forbidden(e.to_string()))?;
        votes.push(Vote { seat, decision });
        let expected = c.version;
        let mut events = vec![event(
            t,
            &c,
            "approval.recorded",
            json!({ "decision": decision.as_str(), "comment": body.comment, "channel": channel.as_str(), "revision": c.revision,
                    "fingerprint": c.fingerprint, "on_behalf_of": body.on_behalf_of, "policy_version": c.policy_version }),
            now,
        )];
        let retrospective =
            c.retrospective_due_at.is_some() && c.state != ChangeState::AwaitingApproval;
        match c.plan.status(&votes) {
            PlanStatus::Approved if retrospective => {
                c.decided_at = Some(now);
                events.push(event(
                    t,
                    &c,
                    "change.retrospectively-approved",
                    json!({}),
                    now,
                ));
            }
            PlanStatus::Approved => {
                move_to(&mut c, ChangeState::Approved)?;
                let (_, policy) = workflow::policy(store, t.tenant.id).await?;
                approval_expiry(&mut c, policy.approval_expiry_hours, now);
                events.push(event(
                    t,
                    &c,
                    "change.approved",
                    json!({ "revision": c.revision }),
                    now,
                ));
            }
            PlanStatus::Rejected { board, reason } if retrospective => {
                c.decided_at = Some(now);
                events.push(event(
                    t,
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
                    t,
                    &c,
                    "change.rejected",
                    json!({ "board": board, "reason": reason }),
                    now,
                ));
            }
            PlanStatus::Pending { .. } => {}
        }
        if let Some(l) = &link {
            events.push(event(t, &c, "approval-link.used", l.detail.clone(), now));
        }
        let messages = match c.state {
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
        let write = ChangeWrite {
            messages,
            use_link: link.as_ref().map(|l| l.token_hash.clone()),
            approval: Some(NewApproval {
                approver: t.caller.user,
                on_behalf_of,
                decision,
                comment: body.comment.clone(),
                channel,
                at: now,
            }),
            events,
            ..ChangeWrite::default()
        };
        if c.state != ChangeState::AwaitingApproval {
            (c.remind_at, c.escalate_at) = (None, None);
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

/// What the tenant's windows say about implementing `c` now.
async fn window_verdict(
    state: &AppState,
    t: &InTenant,
    c: &Change,
    requires_window: bool,
    now: DateTime<Utc>,
) -> ApiResult<WindowVerdict> {
    let compiled = workflow::windows(state.store.as_ref(), t.tenant.id).await?;
    Ok(window::evaluate(
        &compiled,
        t.tenant.slug.as_str(),
        c.kind,
        requires_window,
        now,
    ))
}

/// Start implementing: the change is approved (or an emergency whose
/// policy allows retrospective approval), its approval has not expired,
/// and the tenant's windows allow it now. The caller is recorded as the
/// implementer.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/changes/{number}/start", tag = "lifecycle",
    params(("tenant" = String, Path), ("number" = String, Path)), request_body = TransitionBody,
    responses((status = 200, body = ChangeView), (status = 409, body = crate::error::ErrorBody)))]
pub async fn start(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<ChangePath>,
    Body(body): Body<TransitionBody>,
) -> ApiResult<Json<ChangeView>> {
    let n = p.number;
    t.authorize(Action::Implement)?;
    let store = state.store.as_ref();
    let mut c = load(store, t.tenant.id, &n).await?;
    if c.implementer.is_some_and(|i| i != t.caller.user) {
        return Err(ApiError::forbidden(format!(
            "{} names another implementer",
            c.number
        )));
    }
    let expected = c.version;
    let now = state.now();
    let (_, policy) = workflow::policy(store, t.tenant.id).await?;
    let mut events = Vec::new();
    if c.state == ChangeState::AwaitingApproval {
        if c.kind != ChangeType::Emergency || !policy.emergency.retrospective {
            return Err(ApiError::state(format!(
                "{} awaits approval; it cannot start yet",
                c.number
            )));
        }
        let due = now + TimeDelta::hours(i64::from(policy.emergency.deadline_hours));
        c.retrospective_due_at = Some(due);
        events.push(event(
            &t,
            &c,
            "change.retrospective-approval-owed",
            json!({ "due": due }),
            now,
        ));
    } else if c.approval_expires_at.is_some_and(|e| e <= now) {
        return Err(ApiError::state(format!(
            "the approval of {} expired; submit it again",
            c.number
        )));
    }
    let requires_window = policy.window_required.contains(&c.kind);
    let verdict = window_verdict(&state, &t, &c, requires_window, now).await?;
    if !verdict.permits() {
        return Err(ApiError::state(format!(
            "{} cannot start now: {}",
            c.number,
            verdict.explain()
        )));
    }
    move_to(&mut c, ChangeState::Implementing)?;
    c.implementer = Some(t.caller.user);
    let window = match &verdict {
        WindowVerdict::Open { window, .. } => Some(window.clone()),
        _ => None,
    };
    events.push(event(
        &t,
        &c,
        "change.started",
        json!({ "note": body.note, "window": window }),
        now,
    ));
    let saved = save(
        &state,
        &c,
        expected,
        ChangeWrite {
            events,
            ..Default::default()
        },
    )
    .await?;
    Ok(Json(view(&state, &t, &saved).await?))
}

fn implementer_only(t: &InTenant, c: &Change) -> ApiResult<()> {
    if c.implementer != Some(t.caller.user) {
        return Err(ApiError::forbidden(format!(
            "only the implementer who started {} records its outcome",
            c.number
        )));
    }
    Ok(())
}

/// Record the implementation as done, with what was updated in the
/// configuration items' documentation. Changes whose type needs no
/// post-implementation review close at once.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/changes/{number}/complete", tag = "lifecycle",
    params(("tenant" = String, Path), ("number" = String, Path)), request_body = TransitionBody,
    responses((status = 200, body = ChangeView)))]
pub async fn complete(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<ChangePath>,
    Body(body): Body<TransitionBody>,
) -> ApiResult<Json<ChangeView>> {
    let n = p.number;
    t.authorize(Action::Implement)?;
    let store = state.store.as_ref();
    let mut c = load(store, t.tenant.id, &n).await?;
    implementer_only(&t, &c)?;
    if !c.content.configuration_items.is_empty() && body.documentation.trim().is_empty() {
        return Err(ApiError::invalid(
            "documentation",
            format!(
                "say what was updated in the documentation of {}",
                c.content.configuration_items.join(", ")
            ),
        ));
    }
    let expected = c.version;
    let now = state.now();
    move_to(&mut c, ChangeState::Implemented)?;
    let mut events = vec![event(
        &t,
        &c,
        "change.implemented",
        json!({ "note": body.note, "documentation": body.documentation, "configuration_items": c.content.configuration_items }),
        now,
    )];
    let (_, policy) = workflow::policy(store, t.tenant.id).await?;
    if !policy.needs_review(c.kind) {
        move_to(&mut c, ChangeState::Closed)?;
        events.push(event(
            &t,
            &c,
            "change.closed",
            json!({ "review": "not required" }),
            now,
        ));
    }
    let messages = crate::mail::outcome_notices(
        state.store.as_ref(),
        &state.public_url,
        &t.tenant,
        &c,
        "implemented",
        now,
    )
    .await?;
    let saved = save(
        &state,
        &c,
        expected,
        ChangeWrite {
            events,
            messages,
            ..Default::default()
        },
    )
    .await?;
    Ok(Json(view(&state, &t, &saved).await?))
}

/// Record a failed implementation; with `rolled_back`, that the backout
/// plan was executed and what was restored.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/changes/{number}/fail", tag = "lifecycle",
    params(("tenant" = String, Path), ("number" = String, Path)), request_body = TransitionBody,
    responses((status = 200, body = ChangeView)))]
pub async fn fail(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<ChangePath>,
    Body(body): Body<TransitionBody>,
) -> ApiResult<Json<ChangeView>> {
    let n = p.number;
    t.authorize(Action::Implement)?;
    let mut c = load(state.store.as_ref(), t.tenant.id, &n).await?;
    implementer_only(&t, &c)?;
    if body.rolled_back && body.restored.trim().is_empty() {
        return Err(ApiError::invalid(
            "restored",
            "say what the rollback restored, e.g. payments-api 1.4.2",
        ));
    }
    let expected = c.version;
    let now = state.now();
    let (to, action) = if body.rolled_back {
        (ChangeState::RolledBack, "change.rolled-back")
    } else {
        (ChangeState::Failed, "change.failed")
    };
    move_to(&mut c, to)?;
    let events = vec![event(
        &t,
        &c,
        action,
        json!({ "note": body.note, "restored": body.restored }),
        now,
    )];
    let messages = crate::mail::outcome_notices(
        state.store.as_ref(),
        &state.public_url,
        &t.tenant,
        &c,
        to.as_str(),
        now,
    )
    .await?;
    let saved = save(
        &state,
        &c,
        expected,
        ChangeWrite {
            events,
            messages,
            ..Default::default()
        },
    )
    .await?;
    Ok(Json(view(&state, &t, &saved).await?))
}

/// The post-implementation review: outcome, notes, lessons; then the change closes.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/changes/{number}/review", tag = "lifecycle",
    params(("tenant" = String, Path), ("number" = String, Path)), request_body = ReviewBody,
    responses((status = 200, body = ChangeView)))]
pub async fn review(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<ChangePath>,
    Body(body): Body<ReviewBody>,
) -> ApiResult<Json<ChangeView>> {
    let n = p.number;
    t.authorize(Action::Implement)?;
    const OUTCOMES: [&str; 3] = ["succeeded", "failed", "rolled-back"];
    if !OUTCOMES.contains(&body.outcome.as_str()) {
        return Err(ApiError::invalid(
            "outcome",
            format!("use one of {}", OUTCOMES.join(", ")),
        ));
    }
    let mut c = load(state.store.as_ref(), t.tenant.id, &n).await?;
    let expected = c.version;
    let now = state.now();
    move_to(&mut c, ChangeState::InReview)?;
    let mut events = vec![event(
        &t,
        &c,
        "change.reviewed",
        json!({ "outcome": body.outcome, "notes": body.notes, "lessons": body.lessons }),
        now,
    )];
    move_to(&mut c, ChangeState::Closed)?;
    events.push(event(&t, &c, "change.closed", json!({}), now));
    let saved = save(
        &state,
        &c,
        expected,
        ChangeWrite {
            events,
            ..Default::default()
        },
    )
    .await?;
    Ok(Json(view(&state, &t, &saved).await?))
}

/// When a change that starts awaiting approval at `now` reminds its
/// approvers and is escalated, by the policy's delays; never for a change
/// in any other state.
pub(crate) fn nudges(
    c: &mut Change,
    policy: &changegate_core::policy::PolicySpec,
    now: DateTime<Utc>,
) {
    c.escalated_to = None;
    if c.state != ChangeState::AwaitingApproval {
        (c.remind_at, c.escalate_at) = (None, None);
        return;
    }
    c.remind_at = policy
        .reminder_hours
        .map(|h| now + TimeDelta::hours(i64::from(h)));
    c.escalate_at = policy
        .escalation
        .as_ref()
        .map(|e| now + TimeDelta::hours(i64::from(e.after_hours)));
}
