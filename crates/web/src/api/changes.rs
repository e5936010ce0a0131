//! Change requests: raise, list (filtered, paginated), show, edit (a
//! material edit after submission is a new revision that re-opens
//! approval), revisions with what changed, and comments.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use changegate_core::authz::Action;
use changegate_core::change::{ChangeState, ChangeType};
use changegate_core::{ChangeNumber, TenantId};
use changegate_store::{Change, ChangeFilter, ChangeWrite, NewChange, NewEvent, StoreError};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use utoipa::IntoParams;

use super::{Body, ChangePath, Params};
pub(crate) use crate::app::change::{check_planned, load, new_change};
use crate::auth::Caller;
use crate::dto::{
    self, ChangePage, ChangeView, CommentBody, CommentView, EditChangeBody, NewChangeBody,
    RevisionView, email_field,
};
use crate::error::{ApiError, ApiResult};
use crate::preview::Preview;
use crate::tenant::InTenant;
use crate::workflow::{self, Emails};
use crate::{AppState, NothingWritten};

/// Filters and pagination of change lists.
#[derive(Deserialize, IntoParams, Default)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this tenant (slug); cross-tenant list only.
    pub tenant: Option<String>,
    pub state: Option<String>,
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// Requester's e-mail.
    pub requester: Option<String>,
    /// Created at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// The previous page's `next_before`.
    pub before: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
}

async fn filter(state: &AppState, q: &ListQuery) -> ApiResult<ChangeFilter> {
    let mut f = ChangeFilter {
        limit: q.limit.unwrap_or(50),
        ..ChangeFilter::default()
    };
    if q.limit.is_some_and(|l| l == 0 || l > 500) {
        return Err(ApiError::invalid("limit", "use a page size from 1 to 500"));
    }
    f.state = q
        .state
        .as_deref()
        .map(str::parse::<ChangeState>)
        .transpose()
        .map_err(|e| ApiError::invalid("state", e.message))?;
    f.kind = q
        .kind
        .as_deref()
        .map(str::parse::<ChangeType>)
        .transpose()
        .map_err(|e| ApiError::invalid("type", e.message))?;
    if let Some(r) = &q.requester {
        let email = email_field("requester", r)?;
        f.requester = match state.store.user_by_email(&email).await {
            Ok(u) => Some(u.id),
            // Nobody by that address: an empty page, not an error that tells who exists.
            Err(StoreError::NotFound { .. }) => Some(changegate_core::UserId(-1)),
            Err(e) => return Err(e.into()),
        };
    }
    f.created_from = q.from;
    f.created_to = q.to;
    f.before = q
        .before
        .as_deref()
        .map(|b| {
            b.parse::<ChangeNumber>()
                .map_err(|e| ApiError::invalid("before", e.message))
        })
        .transpose()?;
    Ok(f)
}

async fn page(state: &AppState, f: &ChangeFilter) -> ApiResult<Json<ChangePage>> {
    let changes = state.store.list_changes(f).await?;
    let emails = Emails::load(
        state.store.as_ref(),
        changes
            .iter()
            .flat_map(|c| [c.requester].into_iter().chain(c.implementer)),
    )
    .await?;
    let mut slugs: BTreeMap<TenantId, String> = BTreeMap::new();
    let mut items = Vec::with_capacity(changes.len());
    for c in &changes {
        let slug = match slugs.get(&c.tenant) {
            Some(s) => s.clone(),
            None => {
                let s = state.store.tenant(c.tenant).await?.slug.to_string();
                slugs.insert(c.tenant, s.clone());
                s
            }
        };
        items.push(dto::change_view(c, &slug, &|u| emails.of(u), None));
    }
    let full = changes.len() as u32 == f.limit.clamp(1, 500);
    let next_before = if full {
        changes.last().map(|c| c.number.to_string())
    } else {
        None
    };
    Ok(Json(ChangePage { items, next_before }))
}

/// Changes across every tenant the caller may see.
#[utoipa::path(get, path = "/api/v1/changes", tag = "changes", params(ListQuery),
    responses((status = 200, body = ChangePage)))]
pub async fn list_all(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Params(q): Params<ListQuery>,
) -> ApiResult<Json<ChangePage>> {
    let mut f = filter(&state, &q).await?;
    f.tenants = caller.visible_tenants();
    if let Some(slug) = &q.tenant {
        let tenant = match state.store.tenant_by_slug(slug).await {
            Ok(t) if caller.sees(t.id) => t,
            Ok(_) | Err(StoreError::NotFound { .. }) => return Err(ApiError::not_found("tenant")),
            Err(e) => return Err(e.into()),
        };
        f.tenants = Some([tenant.id].into());
    }
    page(&state, &f).await
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/changes", tag = "changes",
    params(("tenant" = String, Path), ListQuery), responses((status = 200, body = ChangePage)))]
pub async fn list(
    State(state): State<AppState>,
    t: InTenant,
    Params(q): Params<ListQuery>,
) -> ApiResult<Json<ChangePage>> {
    t.authorize(Action::Read)?;
    if q.tenant.is_some() {
        return Err(ApiError::invalid(
            "tenant",
            "the tenant is in the URL here; use /api/v1/changes?tenant= to filter across tenants",
        ));
    }
    let mut f = filter(&state, &q).await?;
    f.tenants = Some([t.tenant.id].into());
    page(&state, &f).await
}

/// Raise a change as a draft.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/changes", tag = "changes",
    params(("tenant" = String, Path)), request_body = NewChangeBody, responses((status = 201, body = ChangeView)))]
pub async fn create(
    State(state): State<AppState>,
    t: InTenant,
    Body(body): Body<serde_json::Value>,
) -> ApiResult<(StatusCode, Json<ChangeView>)> {
    t.authorize(Action::RequestChange)?;
    let (kind, implementer, content) = new_change(&state, &t, body).await?;
    if content.title.trim().is_empty() {
        return Err(ApiError::invalid("title", "give the change a title"));
    }
    crate::app::proposal::check_link(state.store.as_ref(), t.tenant.id, &content).await?;
    let change = state
        .store
        .create_change(
            NewChange {
                tenant: t.tenant.id,
                kind,
                requester: t.caller.user,
                implementer,
                content,
            },
            &t.actor(),
            state.now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view(&state, &t, &change).await?)))
}

/// What raising a change with `body` would decide, without raising it:
/// the risk, the approvers by name, the windows around its slot, other
/// changes booked on its configuration items then, and the earliest slot
/// allowed. What would stop its submission is listed, not refused.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/changes/preview", tag = "changes",
    params(("tenant" = String, Path)), request_body = NewChangeBody, responses((status = 200, body = Preview)))]
pub async fn preview(
    State(state): State<AppState>,
    t: InTenant,
    Body(body): Body<serde_json::Value>,
) -> ApiResult<Response> {
    t.authorize(Action::RequestChange)?;
    let (kind, implementer, content) = new_change(&state, &t, body).await?;
    let preview = crate::preview::preview(
        &state,
        &t.tenant,
        kind,
        &content,
        t.caller.user,
        implementer,
    )
    .await?;
    let mut response = Json(preview).into_response();
    response.extensions_mut().insert(NothingWritten);
    Ok(response)
}

/// A change with its approval status, approvers shown by e-mail.
pub(crate) async fn view(state: &AppState, t: &InTenant, c: &Change) -> ApiResult<ChangeView> {
    let emails = Emails::load(state.store.as_ref(), workflow::ids_in(c)).await?;
    let approval = if c.plan.is_empty() {
        None
    } else {
        let votes = workflow::votes(state.store.as_ref(), c).await?;
        let status = dto::PlanStatusView::from(c.plan.status(&votes), &|u| emails.of(u));
        let boards = c
            .plan
            .boards
            .iter()
            .map(|b| dto::FrozenBoardView {
                name: b.name.clone(),
                rule: b.rule.to_string(),
                members: b.members.iter().map(|u| emails.of(*u)).collect(),
                mandatory: b.mandatory.iter().map(|u| emails.of(*u)).collect(),
                chair: b.chair.map(|u| emails.of(u)),
            })
            .collect();
        serde_json::to_value(dto::ApprovalStatusView { status, boards }).ok()
    };
    Ok(dto::change_view(
        c,
        t.tenant.slug.as_str(),
        &|u| emails.of(u),
        approval,
    ))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/changes/{number}", tag = "changes",
    params(("tenant" = String, Path), ("number" = String, Path, description = "CHG-<n>")),
    responses((status = 200, body = ChangeView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<ChangePath>,
) -> ApiResult<Json<ChangeView>> {
    let n = p.number;
    t.authorize(Action::Read)?;
    let c = load(state.store.as_ref(), t.tenant.id, &n).await?;
    Ok(Json(view(&state, &t, &c).await?))
}

/// Edit the content. After submission, an edit that changes what the
/// fingerprint covers is a new revision: approval re-opens with approvers
/// frozen anew, and earlier approvals no longer count.
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant}/changes/{number}", tag = "changes",
    params(("tenant" = String, Path), ("number" = String, Path)), request_body = EditChangeBody,
    responses((status = 200, body = ChangeView)))]
pub async fn edit(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<ChangePath>,
    Body(body): Body<EditChangeBody>,
) -> ApiResult<Json<ChangeView>> {
    t.authorize(Action::RequestChange)?;
    let saved = crate::app::submit::edit(&state, &t, &p.number, body.fields).await?;
    Ok(Json(view(&state, &t, &saved).await?))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/changes/{number}/revisions", tag = "changes",
    params(("tenant" = String, Path), ("number" = String, Path)), responses((status = 200, body = [RevisionView])))]
pub async fn revisions(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<ChangePath>,
) -> ApiResult<Json<Vec<RevisionView>>> {
    let n = p.number;
    t.authorize(Action::Read)?;
    let c = load(state.store.as_ref(), t.tenant.id, &n).await?;
    let revs = state.store.revisions(t.tenant.id, c.number).await?;
    let emails = Emails::load(state.store.as_ref(), revs.iter().map(|r| r.created_by)).await?;
    Ok(Json(
        revs.iter()
            .enumerate()
            .map(|(i, r)| {
                RevisionView::from(r, i.checked_sub(1).and_then(|p| revs.get(p)), &|u| {
                    emails.of(u)
                })
            })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/changes/{number}/comments", tag = "changes",
    params(("tenant" = String, Path), ("number" = String, Path)), responses((status = 200, body = [CommentView])))]
pub async fn comments(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<ChangePath>,
) -> ApiResult<Json<Vec<CommentView>>> {
    let n = p.number;
    t.authorize(Action::Read)?;
    let c = load(state.store.as_ref(), t.tenant.id, &n).await?;
    let comments = state.store.comments(t.tenant.id, c.number).await?;
    Ok(Json(comments.iter().map(CommentView::from).collect()))
}

#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/changes/{number}/comments", tag = "changes",
    params(("tenant" = String, Path), ("number" = String, Path)), request_body = CommentBody,
    responses((status = 201, body = CommentView)))]
pub async fn comment(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<ChangePath>,
    Body(body): Body<CommentBody>,
) -> ApiResult<(StatusCode, Json<CommentView>)> {
    let n = p.number;
    t.authorize(Action::Comment)?;
    let text = body.body.trim().to_string();
    if text.is_empty() {
        return Err(ApiError::invalid("body", "write something"));
    }
    let now = state.now();
    // @-mentions: people of this tenant only, told by e-mail (not the author).
    let people: Vec<(changegate_core::UserId, changegate_core::Email, String)> = state
        .store
        .users_in_tenant(t.tenant.id)
        .await?
        .into_iter()
        .map(|(u, _)| (u.id, u.email, u.name))
        .collect();
    let mentioned: Vec<_> = crate::mail::mentioned(&text, &people)
        .into_iter()
        .filter(|p| p.0 != t.caller.user)
        .cloned()
        .collect();
    for _ in 0..20 {
        let c = load(state.store.as_ref(), t.tenant.id, &n).await?;
        let messages = mentioned
            .iter()
            .map(|(_, email, _)| changegate_store::NewMessage {
                recipient: email.clone(),
                subject: format!(
                    "[changegate] {} mentioned you on {}: {}",
                    t.caller.name_or_email(),
                    c.number,
                    c.content.title
                ),
                body: format!(
                    "{} mentioned you in a comment on {} ({}) for {}:\n\n{text}\n\n{}/t/{}/changes/{}#comments\n",
                    t.caller.name_or_email(),
                    c.number,
                    c.content.title,
                    t.tenant.name,
                    state.public_url,
                    t.tenant.slug,
                    c.number
                ),
                at: now,
            })
            .collect();
        let write = ChangeWrite {
            comment: Some((t.caller.user, text.clone(), now)),
            events: vec![NewEvent {
                actor: t.actor(),
                action: "change.commented".into(),
                subject: c.number.to_string(),
                detail: json!({ "body": text,
                                "mentioned": mentioned.iter().map(|p| p.1.as_str()).collect::<Vec<_>>() }),
                at: now,
            }],
            messages,
            ..ChangeWrite::default()
        };
        match state.store.save_change(&c, c.version, write, now).await {
            Ok(_) => {
                return Ok((
                    StatusCode::CREATED,
                    Json(CommentView {
                        author: t.actor(),
                        body: text,
                        at: now,
                    }),
                ));
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict("the change is busy; retry"))
}
