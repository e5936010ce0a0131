//! The confirm page of an e-mail approval link. GET (and HEAD) show the
//! change and decide nothing, so a mail scanner following the link, or
//! every link on the page, changes nothing; each opening is recorded on the
//! audit chain with its address and user agent. The POST decides: it needs
//! the page's nonce, and at or above the policy's risk level the one-time
//! code from the message (or the approver signed in). The link is bound to
//! its approver and revision, works once and expires.
//!
//! An acceptance link (`/accept/{token}`) works the same way for the
//! client user the policy names: the page shows the tested change with its
//! test evidence, and the POST records the acceptance (channel `email`).
//! Each kind of link opens only its own page.

use askama::Template;
use axum::Form;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use changegate_core::authz::Action;
use changegate_store::{ApprovalLink, Change, Channel, LinkPurpose, NewEvent, StoreError, Tenant};
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

/// A link that can decide no more, said as a page (410 Gone): who used
/// it and when, or why it is spent, and where the change is now.
#[derive(Template)]
#[template(path = "link_spent.html")]
struct SpentPage {
    viewer: Option<Nav>,
    title: String,
    message: String,
    number: String,
    link: String,
}

fn spent(tenant: &Tenant, c: &Change, title: &str, message: String) -> Response {
    let page = SpentPage {
        viewer: None,
        title: title.to_string(),
        message,
        number: c.number.to_string(),
        link: format!("/t/{}/changes/{}", tenant.slug, c.number),
    };
    let mut response = render(&page);
    *response.status_mut() = StatusCode::GONE;
    response
}

/// The link of `purpose` behind `token`, with its tenant and change; a
/// link of the other purpose opens nothing here (`what` names the kind in
/// the not-found answer).
async fn open(
    state: &AppState,
    token: &str,
    purpose: LinkPurpose,
    what: &str,
) -> PageResult<(ApprovalLink, Tenant, Change)> {
    let link = match state.store.approval_link(&token_hash(token)).await {
        Ok(l) if l.purpose == purpose => l,
        Ok(_) | Err(StoreError::NotFound { .. }) => {
            return Err(PageError(ApiError::not_found(&format!(
                "{what} (check that the whole link was copied, or sign in to the portal)"
            ))));
        }
        Err(e) => return Err(e.into()),
    };
    let tenant = state.store.tenant(link.tenant).await?;
    let c = state.store.change(link.tenant, link.change).await?;
    Ok((link, tenant, c))
}

/// The page for a link past its time, or sent for a revision the change
/// has left (`to_do`: what the portal still lets its holder do; `newer`:
/// what happens for the new revision), if it is either.
fn lapsed(
    state: &AppState,
    link: &ApprovalLink,
    tenant: &Tenant,
    c: &Change,
    to_do: &str,
    newer: &str,
) -> Option<Response> {
    let zone: chrono_tz::Tz = tenant.time_zone.parse().unwrap_or(chrono_tz::UTC);
    if link.expires_at <= state.now() {
        return Some(spent(
            tenant,
            c,
            "This link has expired",
            format!(
                "It expired on {}; sign in to the portal to {to_do} {}.",
                changegate_core::window::format_instant(link.expires_at, zone),
                c.number
            ),
        ));
    }
    (c.revision != link.revision).then(|| {
        spent(
            tenant,
            c,
            "This change has changed since",
            format!(
                "{} is at revision {} now, not the revision {} this link was sent for; {newer}.",
                c.number, c.revision, link.revision
            ),
        )
    })
}

/// The link, its tenant and change, if the link can still decide; else
/// the page that says why not.
async fn usable(
    state: &AppState,
    token: &str,
) -> PageResult<Result<(ApprovalLink, Tenant, Change), Response>> {
    let (link, tenant, c) = open(state, token, LinkPurpose::Approve, "approval link").await?;
    let zone: chrono_tz::Tz = tenant.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let local = |at| changegate_core::window::format_instant(at, zone);
    let (state_words, _) = super::words::state(c.state, None);
    if let Some(at) = link.used_at {
        let approver = state.store.user(link.approver).await?;
        let decided = state
            .store
            .approvals(link.tenant, link.change)
            .await?
            .into_iter()
            .rev()
            .find(|a| {
                a.approver == link.approver
                    && a.revision == link.revision
                    && a.channel == Channel::Email
            })
            .map(|a| match a.decision {
                changegate_core::board::Decision::Approve => "approved",
                changegate_core::board::Decision::Reject => "rejected",
            })
            .unwrap_or("decided on");
        return Ok(Err(spent(
            &tenant,
            &c,
            "This link has been used",
            format!(
                "{} {decided} {} revision {} with this link on {}; a link decides once. {} is now: {}.",
                approver.name_or_email(),
                c.number,
                link.revision,
                local(at),
                c.number,
                state_words.to_lowercase()
            ),
        )));
    }
    if let Some(page) = lapsed(
        state,
        &link,
        &tenant,
        &c,
        "decide on",
        "a new request went to you for the new revision",
    ) {
        return Ok(Err(page));
    }
    if !takes_decisions(&c) {
        return Ok(Err(spent(
            &tenant,
            &c,
            "This change no longer awaits approval",
            format!("{} is now: {}.", c.number, state_words.to_lowercase()),
        )));
    }
    Ok(Ok((link, tenant, c)))
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

/// A link's form posted back: it carries the nonce of the page the link
/// opened (a scanner that posts without opening it has none), and the
/// one-time code from the message where the link was sent with one and
/// its holder is not signed in.
fn check_form(
    link: &ApprovalLink,
    token: &str,
    nonce: &str,
    code: &str,
    viewer: &Option<Viewer>,
    page: &str,
) -> PageResult<()> {
    if !same(&nonce_of(token), nonce) {
        return Err(PageError(ApiError::forbidden(format!(
            "this form did not come from the {page}; open the link from the e-mail again"
        ))));
    }
    if code_required(link, viewer)
        && link.code_hash.as_deref() != Some(code_hash(&token_hash(token), code).as_str())
    {
        return Err(PageError(
            ApiError::forbidden(
                "the one-time code does not match the one in the e-mail; check it and try again",
            )
            .with_field("code"),
        ));
    }
    Ok(())
}

pub async fn show(
    State(state): State<AppState>,
    Path(token): Path<String>,
    viewer: Option<Viewer>,
    client: Client,
) -> PageResult<Response> {
    let (link, tenant, c) = match usable(&state, &token).await? {
        Ok(usable) => usable,
        Err(page) => return Ok(page),
    };
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
    let (link, tenant, c) = match usable(&state, &token).await? {
        Ok(usable) => usable,
        Err(page) => return Ok(page),
    };
    check_form(
        &link,
        &token,
        &form.nonce,
        &form.code,
        &viewer,
        "confirm page",
    )?;
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

// ---- acceptance links -----------------------------------------------------------

/// The acceptance link, its tenant and change, if it can still accept;
/// else the page that says why not.
async fn acceptable(
    state: &AppState,
    token: &str,
) -> PageResult<Result<(ApprovalLink, Tenant, Change), Response>> {
    let (link, tenant, c) = open(state, token, LinkPurpose::Accept, "acceptance link").await?;
    let zone: chrono_tz::Tz = tenant.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let local = |at| changegate_core::window::format_instant(at, zone);
    let (state_words, _) = super::words::state(c.state, None);
    if let Some(at) = link.used_at {
        let who = state.store.user(link.approver).await?;
        return Ok(Err(spent(
            &tenant,
            &c,
            "This link has been used",
            format!(
                "{} accepted {} revision {} with this link on {}; a link works once. {} is now: {}.",
                who.name_or_email(),
                c.number,
                link.revision,
                local(at),
                c.number,
                state_words.to_lowercase()
            ),
        )));
    }
    if let Some(page) = lapsed(
        state,
        &link,
        &tenant,
        &c,
        "accept",
        "it is approved again before you accept it",
    ) {
        return Ok(Err(page));
    }
    let (_, policy) = workflow::policy(state.store.as_ref(), tenant.id).await?;
    if let Some(e) =
        crate::app::accept::refusal(state.store.as_ref(), &c, &policy, link.approver).await?
    {
        return Ok(Err(spent(
            &tenant,
            &c,
            "This change does not wait for your acceptance",
            format!("{} (it is now: {}).", e.message, state_words.to_lowercase()),
        )));
    }
    Ok(Ok((link, tenant, c)))
}

#[derive(Template)]
#[template(path = "accept.html")]
struct AcceptPage {
    viewer: Option<Nav>,
    token: String,
    nonce: String,
    needs_code: bool,
    number: String,
    title: String,
    tenant_name: String,
    acceptor: String,
    revision: i64,
    description: String,
    configuration_items: String,
    planned: String,
    test_plan: String,
    test_evidence: String,
    backout_plan: String,
}

/// The acceptance page: the tested change; nothing accepted by opening it.
pub async fn show_acceptance(
    State(state): State<AppState>,
    Path(token): Path<String>,
    viewer: Option<Viewer>,
    client: Client,
) -> PageResult<Response> {
    let (link, tenant, c) = match acceptable(&state, &token).await? {
        Ok(ok) => ok,
        Err(page) => return Ok(page),
    };
    state
        .store
        .record_events(
            tenant.id,
            vec![NewEvent {
                actor: "acceptance-link".into(),
                action: "acceptance-link.opened".into(),
                subject: c.number.to_string(),
                detail: json!({ "revision": link.revision, "address": client.address,
                                "user_agent": client.user_agent }),
                at: state.now(),
            }],
        )
        .await?;
    let acceptor = state.store.user(link.approver).await?;
    let content = &c.content;
    let zone: chrono_tz::Tz = tenant.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let local = |at| changegate_core::window::format_instant(at, zone);
    let page = AcceptPage {
        viewer: None,
        nonce: nonce_of(&token),
        needs_code: code_required(&link, &viewer),
        token,
        number: c.number.to_string(),
        title: content.title.clone(),
        tenant_name: tenant.name.clone(),
        acceptor: acceptor.name_or_email().to_string(),
        revision: c.revision,
        description: content.description.clone(),
        configuration_items: content.configuration_items.join(", "),
        planned: match (content.planned_start, content.planned_end) {
            (Some(s), Some(e)) => format!("{} to {}", local(s), local(e)),
            _ => "not planned yet".into(),
        },
        test_plan: content.test_plan.clone(),
        test_evidence: content.test_evidence.clone(),
        backout_plan: content.backout_plan.clone(),
    };
    Ok(render(&page))
}

#[derive(Deserialize)]
pub struct AcceptLinkForm {
    nonce: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    code: String,
}

/// Accept from the link: the page's nonce, the code where the policy asks
/// for it, then the acceptance as the link's holder, channel `email`.
pub async fn accept(
    State(state): State<AppState>,
    Path(token): Path<String>,
    viewer: Option<Viewer>,
    client: Client,
    Form(form): Form<AcceptLinkForm>,
) -> PageResult<Response> {
    let (link, tenant, c) = match acceptable(&state, &token).await? {
        Ok(ok) => ok,
        Err(page) => return Ok(page),
    };
    check_form(
        &link,
        &token,
        &form.nonce,
        &form.code,
        &viewer,
        "acceptance page",
    )?;
    // The link is its holder's signed identity.
    let who = state.store.user(link.approver).await?;
    let used = LinkUse {
        token_hash: token_hash(&token),
        detail: json!({ "revision": link.revision, "address": client.address,
                        "user_agent": client.user_agent }),
    };
    let by = crate::app::accept::By {
        who: who.id,
        actor: who.email.as_str(),
        channel: crate::app::accept::Channel::Email,
        link: Some(used),
    };
    let saved =
        crate::app::accept::accept(&state, &tenant, &c.number.to_string(), by, &form.comment)
            .await?;
    let page = NoticePage {
        viewer: None,
        title: format!("Thank you: your acceptance of {} is recorded", saved.number),
        message: format!(
            "{} ({}) may now be scheduled and started. You can close this page.",
            saved.number, saved.content.title
        ),
    };
    Ok(render(&page))
}
