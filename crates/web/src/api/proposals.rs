//! Change proposals: raised with their business case, authorized by the
//! boards the tenant's policy names, and the changes raised under them
//! followed to the end (each still approved on its own).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use changegate_core::authz::Action;
use changegate_core::board::Decision;
use changegate_core::change::ChangeState;
use changegate_store::Store;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Body, ChangePath};
use crate::AppState;
use crate::app::proposal::{self, Draft, Loaded};
use crate::error::{ApiError, ApiResult};
use crate::tenant::InTenant;
use crate::workflow::Emails;

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct NewProposalBody {
    pub title: String,
    /// Why it is wanted: the value it brings, what not doing it costs.
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
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposalDecisionBody {
    /// `approve` (authorize) or `reject`.
    pub decision: String,
    #[serde(default)]
    pub comment: String,
}

#[derive(Serialize, ToSchema)]
pub struct ProposalBoardView {
    pub name: String,
    pub rule: String,
    /// Members frozen when the proposal was raised (e-mail addresses).
    pub members: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ProposalDecisionView {
    pub by: String,
    pub decision: String,
    pub comment: String,
    pub channel: String,
    pub at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct ProposalChangeView {
    pub number: String,
    pub title: String,
    pub state: String,
}

#[derive(Serialize, ToSchema)]
pub struct ProposalView {
    /// `PRP-<n>`
    pub number: String,
    pub tenant: String,
    /// `awaiting-authorization`, `authorized`, `rejected` or `withdrawn`.
    pub state: String,
    pub title: String,
    pub business_case: String,
    pub description: String,
    pub risks: String,
    pub alternatives: String,
    pub budget: String,
    pub schedule_start: Option<DateTime<Utc>>,
    pub schedule_end: Option<DateTime<Utc>>,
    pub services: Vec<String>,
    pub requester: String,
    pub created_at: DateTime<Utc>,
    pub boards: Vec<ProposalBoardView>,
    pub decisions: Vec<ProposalDecisionView>,
    /// Changes booked on its services within its schedule: what the
    /// boards weigh it against.
    pub conflicts: Vec<String>,
    /// The changes raised under it, oldest first, with where each stands.
    pub changes: Vec<ProposalChangeView>,
}

/// Changes in flight on `l`'s services whose planned slot overlaps its
/// schedule, as sentences: read by planned slot, not by listing every
/// change in flight.
pub async fn conflicts(store: &dyn Store, t: &InTenant, l: &Loaded) -> ApiResult<Vec<String>> {
    let p = &l.proposal;
    let (Some(start), Some(end)) = (p.schedule_start, p.schedule_end) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for c in store
        .changes_planned_between(t.tenant.id, start, end)
        .await?
    {
        if !matches!(
            c.state,
            ChangeState::AwaitingApproval
                | ChangeState::Approved
                | ChangeState::Scheduled
                | ChangeState::Implementing
        ) {
            continue;
        }
        let (Some(s), Some(e)) = (c.content.planned_start, c.content.planned_end) else {
            continue;
        };
        let shared: Vec<&str> = c
            .content
            .configuration_items
            .iter()
            .filter(|i| p.services.contains(i))
            .map(String::as_str)
            .collect();
        if s < end && start < e && !shared.is_empty() {
            out.push(format!(
                "{} {} ({}) on {}, {} to {}",
                c.number,
                c.content.title,
                c.state.as_str().replace('-', " "),
                shared.join(", "),
                s.format("%Y-%m-%d %H:%M UTC"),
                e.format("%Y-%m-%d %H:%M UTC")
            ));
        }
    }
    Ok(out)
}

/// The proposal as the API and the portal show it.
pub async fn view(state: &AppState, t: &InTenant, l: &Loaded) -> ApiResult<ProposalView> {
    let store = state.store.as_ref();
    let p = &l.proposal;
    let ids = p
        .plan
        .seats()
        .into_iter()
        .chain([p.requester])
        .chain(l.decisions.iter().map(|d| d.by));
    let emails = Emails::load(store, ids).await?;
    let changes = proposal::changes_under(store, t.tenant.id, l)
        .await?
        .into_iter()
        .map(|c| ProposalChangeView {
            number: c.number.to_string(),
            title: c.content.title,
            state: c.state.as_str().to_string(),
        })
        .collect();
    Ok(ProposalView {
        number: l.label(),
        tenant: t.tenant.slug.to_string(),
        state: l.standing.as_str().to_string(),
        title: p.title.clone(),
        business_case: p.business_case.clone(),
        description: p.description.clone(),
        risks: p.risks.clone(),
        alternatives: p.alternatives.clone(),
        budget: p.budget.clone(),
        schedule_start: p.schedule_start,
        schedule_end: p.schedule_end,
        services: p.services.clone(),
        requester: emails.of(p.requester),
        created_at: l.created_at,
        boards: p
            .plan
            .boards
            .iter()
            .map(|b| ProposalBoardView {
                name: b.name.clone(),
                rule: b.rule.to_string(),
                members: b.members.iter().map(|m| emails.of(*m)).collect(),
            })
            .collect(),
        decisions: l
            .decisions
            .iter()
            .map(|d| ProposalDecisionView {
                by: d.actor.clone(),
                decision: d.decision.as_str().to_string(),
                comment: d.comment.clone(),
                channel: d.channel.clone(),
                at: d.at,
            })
            .collect(),
        conflicts: conflicts(store, t, l).await?,
        changes,
    })
}

/// A proposal as a list shows it: where it stands and how many changes
/// were raised under it (the full view, with its conflicts and changes,
/// is `GET …/proposals/{number}`).
#[derive(Serialize, ToSchema)]
pub struct ProposalSummaryView {
    /// `PRP-<n>`
    pub number: String,
    pub tenant: String,
    /// `awaiting-authorization`, `authorized`, `rejected` or `withdrawn`.
    pub state: String,
    pub title: String,
    pub requester: String,
    pub created_at: DateTime<Utc>,
    pub schedule_start: Option<DateTime<Utc>>,
    pub schedule_end: Option<DateTime<Utc>>,
    pub services: Vec<String>,
    /// How many changes were raised under it.
    pub change_count: i64,
}

/// The tenant's proposals, newest first, each summarized: three reads
/// however many there are.
pub async fn summaries(state: &AppState, t: &InTenant) -> ApiResult<Vec<ProposalSummaryView>> {
    let store = state.store.as_ref();
    let all = proposal::load_all(store, t.tenant.id).await?;
    let counts = store.proposal_change_counts(t.tenant.id).await?;
    let emails = Emails::load(store, all.iter().map(|l| l.proposal.requester)).await?;
    Ok(all
        .into_iter()
        .map(|l| ProposalSummaryView {
            number: l.label(),
            tenant: t.tenant.slug.to_string(),
            state: l.standing.as_str().to_string(),
            change_count: counts.get(&l.label()).copied().unwrap_or(0),
            title: l.proposal.title,
            requester: emails.of(l.proposal.requester),
            created_at: l.created_at,
            schedule_start: l.proposal.schedule_start,
            schedule_end: l.proposal.schedule_end,
            services: l.proposal.services,
        })
        .collect())
}

/// The tenant's proposals, newest first.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/proposals", tag = "proposals",
    params(("tenant" = String, Path)), responses((status = 200, body = [ProposalSummaryView])))]
pub async fn list(
    State(state): State<AppState>,
    t: InTenant,
) -> ApiResult<Json<Vec<ProposalSummaryView>>> {
    t.authorize(Action::Read)?;
    Ok(Json(summaries(&state, &t).await?))
}

/// Raise a change proposal: the boards the policy's `proposals.boards`
/// names are frozen (the requester never among them) and asked to
/// authorize it.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/proposals", tag = "proposals",
    params(("tenant" = String, Path)), request_body = NewProposalBody,
    responses((status = 201, body = ProposalView), (status = 409, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    t: InTenant,
    Body(body): Body<NewProposalBody>,
) -> ApiResult<(StatusCode, Json<ProposalView>)> {
    t.authorize(Action::RequestChange)?;
    let n = proposal::raise(
        &state,
        &t,
        Draft {
            title: body.title,
            business_case: body.business_case,
            description: body.description,
            risks: body.risks,
            alternatives: body.alternatives,
            budget: body.budget,
            schedule_start: body.schedule_start,
            schedule_end: body.schedule_end,
            services: body.services,
        },
    )
    .await?;
    let l = proposal::load(state.store.as_ref(), t.tenant.id, &proposal::label(n)).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &t, &l).await?)))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/proposals/{number}", tag = "proposals",
    params(("tenant" = String, Path), ("number" = String, Path)),
    responses((status = 200, body = ProposalView)))]
pub async fn show(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<ChangePath>,
) -> ApiResult<Json<ProposalView>> {
    t.authorize(Action::Read)?;
    let l = proposal::load(state.store.as_ref(), t.tenant.id, &p.number).await?;
    Ok(Json(view(&state, &t, &l).await?))
}

/// Authorize or reject a proposal, as a member of a board frozen when it
/// was raised. Authorizing it is not approving any change raised under it.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/proposals/{number}/decisions", tag = "proposals",
    params(("tenant" = String, Path), ("number" = String, Path)), request_body = ProposalDecisionBody,
    responses((status = 200, body = ProposalView), (status = 403, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
pub async fn decide(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<ChangePath>,
    Body(body): Body<ProposalDecisionBody>,
) -> ApiResult<Json<ProposalView>> {
    decide_via(&state, &t, &p.number, body, "api").await
}

/// [`decide`] through `channel` (the portal calls it with its own).
pub(crate) async fn decide_via(
    state: &AppState,
    t: &InTenant,
    number: &str,
    body: ProposalDecisionBody,
    channel: &str,
) -> ApiResult<Json<ProposalView>> {
    t.authorize(Action::Decide)?;
    let decision = match body.decision.as_str() {
        "approve" => Decision::Approve,
        "reject" => Decision::Reject,
        _ => {
            return Err(ApiError::invalid(
                "decision",
                "use approve (authorize) or reject",
            ));
        }
    };
    let l = proposal::decide(state, t, number, decision, &body.comment, channel).await?;
    Ok(Json(view(state, t, &l).await?))
}

/// The requester withdraws a proposal still awaiting authorization.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/proposals/{number}/withdraw", tag = "proposals",
    params(("tenant" = String, Path), ("number" = String, Path)),
    responses((status = 200, body = ProposalView), (status = 409, body = crate::error::ErrorBody)))]
pub async fn withdraw(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<ChangePath>,
) -> ApiResult<Json<ProposalView>> {
    t.authorize(Action::RequestChange)?;
    let l = proposal::withdraw(&state, &t, &p.number).await?;
    Ok(Json(view(&state, &t, &l).await?))
}
