//! The confirm page of an e-mail approval link. GET (and HEAD) show the
//! change and decide nothing, so a mail scanner following the link, or
//! every link on the page, changes nothing; each opening is recorded on the
//! audit chain with its address and user agent. The POST decides: it needs
//! the page's nonce, and at or above the policy's risk level the one-time
//! code from the message (or the approver signed in). The link is bound to
//! its approver and revision, works once and expires.

use askama::Template;
use axum::Form;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use changegate_core::authz::Action;
use changegate_store::{ApprovalLink, Change, Channel, NewEvent, StoreError, Tenant};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::pages::{Nav, render};
use super::viewer::{Viewer, same};
use super::{PageError, PageResult};
use crate::AppState;
use crate::app::decide::{Decide, LinkUse, record_decision, takes_decisions};
use crate::auth::{principal_of, token_hash};
use crate::dto::DecisionBody;
use crate::error::ApiError;
use crate::mail::code_hash;
use crate::tenant::InTenant;
use crate::workflow;

/// Where a request came from, for the record.
pub struct Client {
    pub address: String,
    pub user_agent: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let address = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_else(|| "unknown".into());
        let user_agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .chars()
            .take(300)
            .collect();
        Ok(Client {
            address,
            user_agent,
        })
    }
}

/// The nonce the confirm page's form carries: derived from the link's
/// token, which only the e-mail and the page hold.
fn nonce_of(token: &str) -> String {
    hex::encode(Sha256::digest(
        format!("changegate-nonce\x1f{token}").as_bytes(),
    ))[..32]
        .to_string()
}

fn gone(message: String) -> PageError {
    PageError(ApiError::new(StatusCode::GONE, "link-gone", message))
}

/// The link, its tenant and change, if the link can still decide.
async fn usable(state: &AppState, token: &str) -> PageResult<(ApprovalLink, Tenant, Change)> {
    let hash = token_hash(token);
    let link = match state.store.approval_link(&hash).await {
        Ok(l) => l,
        Err(StoreError::NotFound { .. }) => {
            return Err(PageError(ApiError::not_found(
                "approval link (check that the whole link was copied, or sign in to the portal)",
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let tenant = state.store.tenant(link.tenant).await?;
    let c = state.store.change(link.tenant, link.change).await?;
    if let Some(at) = link.used_at {
        return Err(gone(format!(
            "This link was used on {}; a link decides once.",
            at.format("%Y-%m-%d %H:%M UTC")
        )));
    }
    if link.expires_at <= state.now() {
        return Err(gone(format!(
            "This link expired on {}; sign in to the portal to decide on {}.",
            link.expires_at.format("%Y-%m-%d %H:%M UTC"),
            c.number
        )));
    }
    if c.revision != link.revision {
        return Err(gone(format!(
            "{} has changed since this link was sent (now revision {}); a new request went to you for the new revision.",
            c.number, c.revision
        )));
    }
    if !takes_decisions(&c) {
        return Err(gone(format!(
            "{} is {}; it no longer awaits approval.",
            c.number, c.state
        )));
    }
    Ok((link, tenant, c))
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage {
    viewer: Option<Nav>,
    token: String,
    nonce: String,
    needs_code: bool,
    number: String,
    title: String,
    kind: String,
    tenant_name: String,
    requester: String,
    approver: String,
    risk: String,
    revision: i64,
    description: String,
    justification: String,
    configuration_items: String,
    planned: String,
    implementation_plan: String,
    test_plan: String,
    backout_plan: String,
}

#[derive(Template)]
#[template(path = "notice.html")]
struct NoticePage {
    viewer: Option<Nav>,
    title: String,
    message: String,
}

/// Does the code need asking for? When the link was sent with one (the
/// policy's risk level), unless the approver is signed in.
fn code_required(link: &ApprovalLink, viewer: &Option<Viewer>) -> bool {
    let approver_signed_in = viewer
        .as_ref()
        .is_some_and(|v| v.principal.user == link.approver);
    link.code_hash.is_some() && !approver_signed_in
}

pub async fn show(
    State(state): State<AppState>,
    Path(token): Path<String>,
    viewer: Option<Viewer>,
    client: Client,
) -> PageResult<Response> {
    let (link, tenant, c) = usable(&state, &token).await?;
    state
        .store
        .record_events(
            tenant.id,
            vec![NewEvent {
                actor: "approval-link".into(),
                action: "approval-link.opened".into(),
                subject: c.number.to_string(),
                detail: json!({ "revision": link.revision, "address": client.address,
                                "user_agent": client.user_agent }),
                at: state.now(),
            }],
        )
        .await?;
    let emails =
        workflow::Emails::load(state.store.as_ref(), vec![c.requester, link.approver]).await?;
    let content = &c.content;
    let page = ConfirmPage {
        viewer: None,
        nonce: nonce_of(&token),
        needs_code: code_required(&link, &viewer),
        token,
        number: c.number.to_string(),
        title: content.title.clone(),
        kind: c.kind.as_str().to_string(),
        tenant_name: tenant.name.clone(),
        requester: emails.of(c.requester),
        approver: emails.of(link.approver),
        risk: c
            .risk_level
            .map_or("not assessed".into(), |l| l.as_str().to_string()),
        revision: c.revision,
        description: content.description.clone(),
        justification: content.justification.clone(),
        configuration_items: content.configuration_items.join(", "),
        planned: match (content.planned_start, content.planned_end) {
            (Some(s), Some(e)) => format!(
                "{} to {}",
                s.format("%Y-%m-%d %H:%M UTC"),
                e.format("%Y-%m-%d %H:%M UTC")
            ),
            _ => "not planned yet".into(),
        },
        implementation_plan: content.implementation_plan.clone(),
        test_plan: content.test_plan.clone(),
        backout_plan: content.backout_plan.clone(),
    };
    Ok(render(&page))
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    nonce: String,
    decision: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    code: String,
}

pub async fn decide(
    State(state): State<AppState>,
    Path(token): Path<String>,
    viewer: Option<Viewer>,
    client: Client,
    Form(form): Form<ConfirmForm>,
) -> PageResult<Response> {
    let (link, tenant, c) = usable(&state, &token).await?;
    if !same(&nonce_of(&token), &form.nonce) {
        return Err(PageError(ApiError::forbidden(
            "this form did not come from the confirm page; open the link from the e-mail again",
        )));
    }
    if code_required(&link, &viewer)
        && link.code_hash.as_deref() != Some(code_hash(&token_hash(&token), &form.code).as_str())
    {
        return Err(PageError(
            ApiError::forbidden(
                "the one-time code does not match the one in the e-mail; check it and try again",
            )
            .with_field("code"),
        ));
    }
    // The link is the approver's signed identity.
    let approver = state.store.user(link.approver).await?;
    let principal = principal_of(state.store.as_ref(), approver).await?;
    let t = InTenant {
        caller: principal,
        tenant,
    };
    t.authorize(Action::Decide)?;
    let body = DecisionBody {
        decision: form.decision,
        comment: form.comment,
        on_behalf_of: None,
        revision: Some(link.revision),
    };
    let used = LinkUse {
        token_hash: token_hash(&token),
        detail: json!({ "revision": link.revision, "address": client.address,
                        "user_agent": client.user_agent }),
    };
    let d = Decide::from_body(&body, Channel::Email, Some(used))?;
    let saved = record_decision(&state, &t, &c.number.to_string(), d).await?;
    let page = NoticePage {
        viewer: None,
        title: format!("Thank you: your decision on {} is recorded", saved.number),
        message: format!(
            "{} ({}) is now {}. You can close this page.",
            saved.number, saved.content.title, saved.state
        ),
    };
    Ok(render(&page))
}
