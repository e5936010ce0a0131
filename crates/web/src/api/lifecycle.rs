//! A change's way through its states: submit (approvers frozen, content
//! fingerprinted), decide (approve or reject, bound to the revision),
//! start, complete, fail or roll back, review and close, cancel.

use axum::Json;
use axum::extract::{Path, State};

use changegate_core::Role;
use changegate_core::authz::Action;
use changegate_core::change::ChangeState;
use changegate_store::{Change, ChangeWrite, Channel};
use serde_json::json;

use super::changes::view;
use super::{Body, ChangePath};
use crate::AppState;
use crate::app::change::{event, load, move_to, save};
use crate::app::decide::{Decide, record_decision};
use crate::dto::{
    AcceptanceBody, ApprovalView, ChangeView, DecisionBody, ReviewBody, TransitionBody,
};
use crate::error::{ApiError, ApiResult};
use crate::tenant::InTenant;
use crate::workflow::{self, Emails};

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
    let saved = crate::app::submit::submit(&state, &t, &p.number).await?;
    Ok(Json(view(&state, &t, &saved).await?))
}

/// Who may cancel (withdraw) `c`: its requester, a change manager of its
/// tenant, an installation administrator. The change page offers the
/// control by the same rule.
pub(crate) fn may_cancel(t: &InTenant, c: &changegate_store::Change) -> bool {
    c.requester == t.caller.user
        || t.caller.has_role(t.tenant.id, Role::ChangeManager)
        || t.caller.admin
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
    if !may_cancel(&t, &c) {
        return Err(ApiError::forbidden(
            "only the requester or a change manager cancels a change",
        ));
    }
    let expected = c.version;
    move_to(&mut c, ChangeState::Cancelled)?;
    let now = state.now();
    let write = ChangeWrite {
        events: vec![event(
            &t.actor(),
            &c,
            "change.cancelled",
            json!({ "note": body.note }),
            now,
        )],
        ..Default::default()
    };
    let saved = save(&state, &c, expected, write, now).await?;
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
    let d = Decide::from_body(&body, Channel::Api, None)?;
    let saved = record_decision(&state, &t, &p.number, d).await?;
    Ok(Json(view(&state, &t, &saved).await?))
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
    t.authorize(Action::Implement)?;
    let saved = crate::app::implement::start(
        &state,
        &t.tenant,
        t.caller.user,
        &t.actor(),
        &p.number,
        &body.note,
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
        &t.actor(),
        &c,
        "change.implemented",
        json!({ "note": body.note, "documentation": body.documentation, "configuration_items": c.content.configuration_items }),
        now,
    )];
    let (_, policy) = workflow::policy(store, t.tenant.id).await?;
    if !policy.needs_review(c.kind) {
        move_to(&mut c, ChangeState::Closed)?;
        events.push(event(
            &t.actor(),
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
        now,
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
        &t.actor(),
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
        now,
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
        &t.actor(),
        &c,
        "change.reviewed",
        json!({ "outcome": body.outcome, "notes": body.notes, "lessons": body.lessons }),
        now,
    )];
    move_to(&mut c, ChangeState::Closed)?;
    events.push(event(&t.actor(), &c, "change.closed", json!({}), now));
    let saved = save(
        &state,
        &c,
        expected,
        ChangeWrite {
            events,
            ..Default::default()
        },
        now,
    )
    .await?;
    Ok(Json(view(&state, &t, &saved).await?))
}

/// The client accepts the tested change, where the policy's `acceptance`
/// covers it: a client user it names, once the change is approved and its
/// test evidence recorded, before it is scheduled or started. Recorded on
/// the audit chain (`change.accepted`) with who, channel and time; a new
/// revision needs a new acceptance.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/changes/{number}/acceptance", tag = "lifecycle",
    params(("tenant" = String, Path), ("number" = String, Path)), request_body = AcceptanceBody,
    responses((status = 200, body = ChangeView), (status = 403, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
pub async fn accept(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<ChangePath>,
    Body(body): Body<AcceptanceBody>,
) -> ApiResult<Json<ChangeView>> {
    accept_via(
        &state,
        &t,
        &p.number,
        body,
        crate::app::accept::Channel::Api,
    )
    .await
}

/// [`accept`] through `channel` (the portal calls it with its own).
pub(crate) async fn accept_via(
    state: &AppState,
    t: &InTenant,
    number: &str,
    body: AcceptanceBody,
    channel: crate::app::accept::Channel,
) -> ApiResult<Json<ChangeView>> {
    t.authorize(Action::Read)?;
    let actor = t.actor();
    let by = crate::app::accept::By {
        who: t.caller.user,
        actor: &actor,
        channel,
        link: None,
    };
    let saved = crate::app::accept::accept(state, &t.tenant, number, by, &body.comment).await?;
    Ok(Json(view(state, t, &saved).await?))
}
