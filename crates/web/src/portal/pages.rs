//! The pages: sign-in and out, the inbox, a tenant's changes, a change
//! with its approvals, timeline and comments, and the decision form.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use changegate_core::approval::PlanStatus;
use changegate_core::authz::Action;
use changegate_core::change::ChangeState;
use changegate_core::{ChangeNumber, TenantId, UserId};
use changegate_store::{Change, ChangeContent, ChangeFilter, Channel, Store};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

use super::viewer::{Viewer, same};
use super::{PageError, PageResult};
use crate::AppState;
use crate::api::session;
use crate::app::decide::{Decide, record_decision, seat_for};
use crate::auth::{cookie, new_token};
use crate::dto::DecisionBody;
use crate::error::ApiError;
use crate::tenant::InTenant;
use crate::workflow::Emails;

/// What the header shows of the signed-in person.
pub struct Nav {
    pub email: String,
    /// The viewer's name (their address when they have none).
    pub name: String,
    /// An installation admin: the tenants page is theirs.
    pub admin: bool,
    /// (slug, name) of each tenant the viewer sees.
    pub tenants: Vec<(String, String)>,
    pub csrf: String,
}

/// A tenant's name for a page's heading, from the viewer's menu (its slug
/// when the menu does not list it).
pub(crate) fn client_name(viewer: &Option<Nav>, slug: &str) -> String {
    viewer
        .iter()
        .flat_map(|n| n.tenants.iter())
        .find(|(s, _)| s == slug)
        .map_or_else(|| slug.to_string(), |(_, name)| name.clone())
}

pub(crate) fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page did not render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be shown",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "problem.html")]
struct ProblemPage {
    viewer: Option<Nav>,
    title: &'static str,
    message: String,
}

/// An error as a page, with the API's status.
pub fn problem(e: ApiError) -> Response {
    let title = match e.status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::UNAUTHORIZED => "Sign in first",
        StatusCode::SERVICE_UNAVAILABLE => "Unavailable for a moment",
        s if s.is_server_error() => "Something went wrong",
        _ => "That cannot be done",
    };
    let page = ProblemPage {
        viewer: None,
        title,
        message: e.message.clone(),
    };
    let mut response = render(&page);
    *response.status_mut() = e.status;
    if e.is_unavailable() {
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("2"),
        );
    }
    response
}

pub(crate) async fn nav(state: &AppState, v: &Viewer) -> PageResult<Nav> {
    let tenants = state
        .store
        .tenants(v.principal.visible_tenants().as_ref())
        .await?;
    Ok(Nav {
        email: v.principal.email.to_string(),
        name: if v.principal.name.trim().is_empty() {
            v.principal.email.to_string()
        } else {
            v.principal.name.clone()
        },
        admin: v.principal.admin,
        tenants: tenants
            .into_iter()
            .map(|t| (t.slug.to_string(), t.name))
            .collect(),
        csrf: v.csrf.clone(),
    })
}

pub async fn home(viewer: Option<Viewer>) -> Redirect {
    match viewer {
        Some(_) => Redirect::to("/inbox"),
        None => Redirect::to("/sign-in"),
    }
}

pub async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../static/app.css"),
    )
        .into_response()
}

// ---- signing in and out ----------------------------------------------------

/// The sign-in form's CSRF token lives in a cookie of its own (there is no
/// session yet) and must come back in the form: another site can make a
/// browser post, but cannot read or set the cookie.
const SIGN_IN_CSRF: &str = "changegate_sign_in";

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    viewer: Option<Nav>,
    csrf: String,
    email: String,
    problem: Option<String>,
}

fn sign_in_page(state: &AppState, email: String, problem: Option<String>) -> Response {
    let (csrf, _) = new_token();
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let page = SignInPage {
        viewer: None,
        csrf: csrf.clone(),
        email,
        problem,
    };
    let mut response = render(&page);
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{SIGN_IN_CSRF}={csrf}; Path=/sign-in; HttpOnly; SameSite=Strict; Max-Age=3600{secure}"
    )) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

pub async fn sign_in_form(State(state): State<AppState>, viewer: Option<Viewer>) -> Response {
    if viewer.is_some() {
        return Redirect::to("/inbox").into_response();
    }
    sign_in_page(&state, String::new(), None)
}

#[derive(Deserialize)]
pub struct SignInForm {
    csrf: String,
    email: String,
    password: String,
}

pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> PageResult<Response> {
    let expected = cookie(&headers, SIGN_IN_CSRF).unwrap_or_default();
    if expected.is_empty() || !same(expected, &form.csrf) {
        return Err(PageError(ApiError::forbidden(
            "this sign-in form has expired or came from another site; open the sign-in page again",
        )));
    }
    let user = match session::authenticate(&state, &form.email, form.password).await {
        Ok(u) => u,
        Err(e) => {
            let mut page = sign_in_page(&state, form.email, Some(e.message));
            *page.status_mut() = e.status;
            return Ok(page);
        }
    };
    let cookie = session::start(&state, &user).await?;
    let mut response = Redirect::to("/inbox").into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn sign_out(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    state.store.delete_session(&viewer.session).await?;
    let mut response = Redirect::to("/sign-in").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, session::clear(&state)?);
    Ok(response)
}

// ---- lists -------------------------------------------------------------------

/// One line of a change table.
pub struct Row {
    pub number: String,
    /// The tenant's slug (for links) and name (to read).
    pub tenant: String,
    pub client: String,
    pub title: String,
    pub kind: String,
    pub state: String,
    /// The state as people read it, and its colour.
    pub state_words: String,
    pub tone: &'static str,
    pub planned: String,
}

/// A hash as people compare it: `sha256:` and its first 12 hex digits.
pub(crate) fn short_hash(hash: &str) -> String {
    let (algorithm, hex) = hash.split_once(':').unwrap_or(("", hash));
    let head: String = hex.chars().take(12).collect();
    match (algorithm, head.len() < hex.len()) {
        ("", true) => format!("{head}…"),
        ("", false) => head,
        (a, true) => format!("{a}:{head}…"),
        (a, false) => format!("{a}:{head}"),
    }
}

pub(crate) fn when(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%a %Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

fn row(c: &Change, slugs: &BTreeMap<TenantId, (String, String)>) -> Row {
    let (slug, name) = slugs.get(&c.tenant).cloned().unwrap_or_default();
    Row {
        number: c.number.to_string(),
        tenant: slug,
        client: name,
        title: c.content.title.clone(),
        kind: c.kind.as_str().to_string(),
        state: c.state.as_str().to_string(),
        state_words: super::words::state(c.state, None).0,
        tone: super::words::state(c.state, None).1.class(),
        planned: when(c.content.planned_start),
    }
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage {
    viewer: Option<Nav>,
    /// (slug, name) of the tenants where the viewer has a seat to hand
    /// over when away, or administers seats.
    seats: Vec<(String, String)>,
    waiting: Vec<Row>,
    mine: Vec<Row>,
    week: Vec<Row>,
}

/// Has `me` a decision to make on `c` now (see `app::decide::seat_for`)?
pub(crate) async fn waits_for(
    store: &dyn Store,
    c: &Change,
    me: UserId,
    now: DateTime<Utc>,
) -> PageResult<bool> {
    Ok(seat_for(store, c, me, now).await?.is_some())
}

pub async fn inbox(State(state): State<AppState>, viewer: Viewer) -> PageResult<Response> {
    let store = state.store.as_ref();
    let me = viewer.principal.user;
    let visible = viewer.principal.visible_tenants();
    let slugs: BTreeMap<TenantId, (String, String)> = store
        .tenants(visible.as_ref())
        .await?
        .into_iter()
        .map(|t| (t.id, (t.slug.to_string(), t.name)))
        .collect();
    let tenants: BTreeSet<TenantId> = slugs.keys().copied().collect();
    let list = |state: Option<ChangeState>, requester: Option<UserId>| ChangeFilter {
        tenants: Some(tenants.clone()),
        state,
        requester,
        limit: 200,
        ..ChangeFilter::default()
    };
    // Only where the viewer may decide can a change wait for them.
    let deciding: BTreeSet<TenantId> = tenants
        .iter()
        .copied()
        .filter(|t| {
            changegate_core::authz::authorize(&viewer.principal, *t, Action::Decide).is_ok()
        })
        .collect();
    let mut waiting = Vec::new();
    let awaiting = if deciding.is_empty() {
        Vec::new()
    } else {
        store
            .list_changes(&ChangeFilter {
                tenants: Some(deciding),
                ..list(Some(ChangeState::AwaitingApproval), None)
            })
            .await?
    };
    for c in awaiting {
        if waits_for(store, &c, me, state.now()).await? {
            waiting.push(row(&c, &slugs));
        }
    }
    let mine = store
        .list_changes(&ChangeFilter {
            limit: 20,
            ..list(None, Some(me))
        })
        .await?
        .iter()
        .map(|c| row(c, &slugs))
        .collect();
    let now = state.now();
    let week = store
        .changes_starting_between(
            Some(&tenants),
            &[
                ChangeState::Approved,
                ChangeState::Scheduled,
                ChangeState::Implementing,
            ],
            now - TimeDelta::days(1),
            now + TimeDelta::days(7),
            200,
        )
        .await?
        .iter()
        .map(|c| row(c, &slugs))
        .collect();
    let seats = store
        .tenants(visible.as_ref())
        .await?
        .into_iter()
        .filter(|t| {
            [Action::Decide, Action::AdministerTenant]
                .iter()
                .any(|a| changegate_core::authz::authorize(&viewer.principal, t.id, *a).is_ok())
        })
        .map(|t| (t.slug.to_string(), t.name))
        .collect();
    let page = InboxPage {
        viewer: Some(nav(&state, &viewer).await?),
        seats,
        waiting,
        mine,
        week,
    };
    Ok(render(&page))
}

#[derive(Template)]
#[template(path = "changes.html")]
struct ChangesPage {
    viewer: Option<Nav>,
    tenant: String,
    q: String,
    state: String,
    states: Vec<String>,
    rows: Vec<Row>,
    /// Whether the viewer may raise changes here.
    can_raise: bool,
    /// Where the next page starts, when there is one.
    older: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct ChangesQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    state: String,
    /// The page after the change numbered so (the previous page's last).
    #[serde(default)]
    before: String,
}

/// Changes a list page shows.
const PAGE_ROWS: usize = 50;
/// Changes a search looks through, newest first, for its page of matches.
const SEARCHED: u32 = 1_000;

pub(crate) async fn in_tenant(
    state: &AppState,
    viewer: &Viewer,
    slug: &str,
) -> PageResult<InTenant> {
    Ok(InTenant::resolve(state, viewer.principal.clone(), slug).await?)
}

/// A form posted in tenant `slug`: its fields, once its CSRF token is
/// checked and the viewer may do `action` there (the handler it goes to
/// authorizes again, as for any caller).
pub(crate) async fn tenant_form(
    state: &AppState,
    viewer: &Viewer,
    slug: &str,
    body: &[u8],
    action: Action,
) -> PageResult<(super::Fields, InTenant)> {
    let fields = super::Fields::parse(body);
    viewer.check_csrf(&fields.one("csrf"))?;
    let t = in_tenant(state, viewer, slug).await?;
    t.authorize(action)?;
    Ok((fields, t))
}

pub async fn changes(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    Query(query): Query<ChangesQuery>,
) -> PageResult<Response> {
    let t = in_tenant(&state, &viewer, &slug).await?;
    t.authorize(Action::Read)?;
    let wanted = match query.state.as_str() {
        "" => None,
        s => Some(s.parse::<ChangeState>().map_err(ApiError::from)?),
    };
    let before = match query.before.trim() {
        "" => None,
        n => Some(n.parse::<ChangeNumber>().map_err(ApiError::from)?),
    };
    let needle = query.q.trim().to_lowercase();
    let found = state
        .store
        .list_changes(&ChangeFilter {
            tenants: Some(BTreeSet::from([t.tenant.id])),
            state: wanted,
            before,
            limit: if needle.is_empty() {
                PAGE_ROWS as u32 + 1
            } else {
                SEARCHED
            },
            ..ChangeFilter::default()
        })
        .await?;
    let slugs = BTreeMap::from([(
        t.tenant.id,
        (t.tenant.slug.to_string(), t.tenant.name.clone()),
    )]);
    let mut matching = found.iter().filter(|c| {
        needle.is_empty()
            || c.content.title.to_lowercase().contains(&needle)
            || c.number.to_string().to_lowercase() == needle
    });
    let shown: Vec<&Change> = matching.by_ref().take(PAGE_ROWS).collect();
    // The next page starts after the last change shown when another
    // matches; a search that found fewer goes on after what it read.
    let older = if matching.next().is_some() {
        shown.last().map(|c| c.number.to_string())
    } else if !needle.is_empty() && found.len() == SEARCHED as usize {
        found.last().map(|c| c.number.to_string())
    } else {
        None
    };
    let rows = shown.into_iter().map(|c| row(c, &slugs)).collect();
    let page = ChangesPage {
        viewer: Some(nav(&state, &viewer).await?),
        tenant: t.tenant.slug.to_string(),
        q: query.q,
        state: query.state,
        states: ChangeState::ALL
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
        rows,
        can_raise: t.authorize(Action::RequestChange).is_ok(),
        older,
    };
    Ok(render(&page))
}

// ---- one change ----------------------------------------------------------------

pub struct ChangeModel {
    pub number: String,
    /// The authorized proposal it was raised under (`PRP-<n>`), or empty.
    pub proposal: String,
    pub tenant: String,
    /// The tenant's name, as people call the client.
    pub tenant_name: String,
    pub title: String,
    pub kind: String,
    pub state: String,
    /// The state as people read it, with a closed change's outcome.
    pub state_words: String,
    /// Its colour class.
    pub tone: &'static str,
    /// The releases it was or is in: (number, name).
    pub releases: Vec<(String, String)>,
    /// The questionnaire's answers behind the risk level.
    pub risk_answers: Vec<(String, String)>,
    pub requester: String,
    pub risk: Option<String>,
    pub revision: i64,
    pub description: String,
    pub justification: String,
    pub configuration_items: String,
    pub artifacts: String,
    pub planned: String,
    /// When it actually ran (from its start to how it ended), once started.
    pub actual: String,
    pub implementation_plan: String,
    pub test_plan: String,
    pub test_evidence: String,
    pub backout_plan: String,
    pub fingerprint: String,
    /// Its first characters, as people compare it (the whole in a tooltip).
    pub fingerprint_short: String,
}

pub struct ApprovalRow {
    pub approver: String,
    pub decision: String,
    pub channel: String,
    pub at: String,
    pub revision: i64,
    pub comment: String,
}

pub struct EventRow {
    pub at: String,
    /// What happened, in words, with who by name.
    pub sentence: String,
}

pub struct CommentRow {
    pub author: String,
    pub at: String,
    pub body: String,
}

#[derive(Template)]
#[template(path = "change.html")]
struct ChangePage {
    viewer: Option<Nav>,
    c: ChangeModel,
    waiting: Option<String>,
    /// What the gate answers a deployment under it now, as the gate says
    /// it; `None` where the gate holds no such change (a draft, closed,
    /// rejected, cancelled).
    gate: Option<GateLine>,
    can_decide: bool,
    /// The outcome to review, when the viewer may record the
    /// post-implementation review now.
    review_outcome: Option<String>,
    /// The viewer may comment.
    can_comment: bool,
    /// The viewer may withdraw it now (its requester or a change
    /// manager, before it started).
    can_withdraw: bool,
    /// The viewer may edit it now (requester or change manager, while its
    /// state allows edits); `can_submit`: and submit it (a draft or rejected).
    can_edit: bool,
    can_submit: bool,
    /// The viewer may start it here (an implementer; approved; not
    /// delivered by a release, whose deploy phase starts it).
    can_start: bool,
    /// The viewer started it and records how it went.
    can_finish: bool,
    /// The viewer may deliver it in a release: the releases being planned
    /// it may join (number, name); `None` when it may not.
    packaging: Option<Vec<(String, String)>>,
    /// The client's acceptance, when the policy asks for it.
    acceptance: Option<AcceptanceModel>,
    csrf: String,
    approvals: Vec<ApprovalRow>,
    timeline: Vec<EventRow>,
    chain: String,
    comments: Vec<CommentRow>,
    revisions: Vec<RevisionRow>,
}

/// The change header's line on what the gate answers now.
pub struct GateLine {
    /// `ok`, `held` or `warn`: how the line is marked.
    pub tone: &'static str,
    pub label: &'static str,
    pub said: String,
}

/// What the gate of `snapshot` answers a deployment under `c` at `now`,
/// in its own words, as the tenant's enforcement makes it count.
fn gate_line(
    snapshot: &crate::snapshot::TenantSnapshot,
    c: &Change,
    now: DateTime<Utc>,
) -> Option<GateLine> {
    use changegate_core::policy::Enforcement;
    let held = snapshot.gate.holds_back(c.number, now);
    let enforcement = snapshot.policy.enforcement;
    match held {
        Some((_, why)) => Some(match enforcement {
            Enforcement::Enforce => GateLine {
                tone: "held",
                label: "What blocks it now",
                said: why,
            },
            Enforcement::Warn => GateLine {
                tone: "warn",
                label: "The gate warns",
                said: format!(
                    "{why} (this client's enforcement is set to warn: a deployment goes ahead with a warning)"
                ),
            },
            Enforcement::Off => GateLine {
                tone: "warn",
                label: "Not enforced",
                said: format!(
                    "the gate does not enforce approvals for this client (enforcement is off); it would say: {why}"
                ),
            },
        }),
        None if matches!(
            snapshot.gate.state_of(c.number),
            Some(ChangeState::Approved | ChangeState::Implementing)
        ) =>
        {
            let mut inside = Vec::new();
            if c.content.planned_start.is_some() || c.content.planned_end.is_some() {
                inside.push("inside its planned slot");
            }
            if snapshot.policy.window_required.contains(&c.kind) {
                inside.push("inside an open maintenance window");
            }
            let mut said = format!("{} may ship its approved content now", c.number);
            if !inside.is_empty() {
                said.push_str(&format!(": {}", inside.join(" and ")));
            }
            Some(GateLine {
                tone: "ok",
                label: "The gate lets it ship",
                said,
            })
        }
        None => None,
    }
}

/// Where a change stands with the client's acceptance.
pub struct AcceptanceModel {
    /// Who accepted, when, through what (once accepted).
    pub said: Option<String>,
    /// What it waits for (until accepted).
    pub waiting: Option<String>,
    /// The viewer may accept it now.
    pub can_accept: bool,
}

/// A revision of a change and what it changed from the one before.
pub struct RevisionRow {
    pub revision: i64,
    pub at: String,
    pub by: String,
    pub fingerprint: String,
    pub fingerprint_short: String,
    /// The content fields that differ from the previous revision.
    pub changed: String,
}

/// The content fields of `now` that differ from `before`, by name.
fn changed_fields(before: &ChangeContent, now: &ChangeContent) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(before), serde_json::to_value(now))
    else {
        return Vec::new();
    };
    b.iter()
        .filter(|(k, v)| a.get(*k) != Some(*v))
        .map(|(k, _)| k.replace('_', " "))
        .collect()
}

/// People's names by the address the record names them with, each read
/// once per page; what is not an address of a user (a cluster's operator,
/// the scheduler) stays as the record says it.
#[derive(Default)]
pub(crate) struct Names(BTreeMap<String, String>);

impl Names {
    pub(crate) async fn of(
        &mut self,
        store: &dyn changegate_store::Store,
        who: &str,
    ) -> PageResult<String> {
        if let Some(name) = self.0.get(who) {
            return Ok(name.clone());
        }
        let name = match changegate_core::Email::parse(who) {
            Ok(email) => match store.user_by_email(&email).await {
                Ok(user) if !user.name.trim().is_empty() => user.name,
                Ok(_) | Err(changegate_store::StoreError::NotFound { .. }) => who.to_string(),
                Err(e) => return Err(crate::error::ApiError::from(e).into()),
            },
            Err(_) => who.to_string(),
        };
        self.0.insert(who.to_string(), name.clone());
        Ok(name)
    }
}

#[derive(Deserialize)]
pub struct ChangePath {
    pub(crate) tenant: String,
    pub(crate) number: String,
}

pub async fn change(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(p): Path<ChangePath>,
) -> PageResult<Response> {
    let t = in_tenant(&state, &viewer, &p.tenant).await?;
    t.authorize(Action::Read)?;
    let store = state.store.as_ref();
    let c = crate::api::changes::load(store, t.tenant.id, &p.number).await?;
    let emails = Emails::load(store, crate::workflow::ids_in(&c)).await?;
    let approvals = store.approvals(t.tenant.id, c.number).await?;
    let votes: Vec<_> = approvals
        .iter()
        .filter(|a| a.revision == c.revision)
        .map(|a| changegate_core::approval::Vote {
            seat: a.seat(),
            by: a.approver,
            decision: a.decision,
        })
        .collect();
    let waiting = match c.plan.status(&votes) {
        PlanStatus::Pending { boards } if c.state == ChangeState::AwaitingApproval => Some(
            boards
                .iter()
                .map(|b| {
                    let who: Vec<String> = b.awaiting.iter().map(|u| emails.of(*u)).collect();
                    format!(
                        "Waiting for {} from {} ({})",
                        if b.needed == 1 {
                            "1 approval".to_string()
                        } else {
                            format!("{} approvals", b.needed)
                        },
                        b.board,
                        who.join(", ")
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        ),
        _ => None,
    };
    let can_decide = t.authorize(Action::Decide).is_ok()
        && waits_for(store, &c, viewer.principal.user, state.now()).await?;
    let releases = store.releases_of_change(t.tenant.id, c.number).await?;
    let releases_of = &releases;
    let review_outcome = match c.state {
        ChangeState::Implemented => Some("succeeded"),
        ChangeState::Failed => Some("failed"),
        ChangeState::RolledBack => Some("rolled-back"),
        _ => None,
    }
    .filter(|_| t.authorize(Action::Implement).is_ok())
    .map(str::to_string);
    let can_comment = t.authorize(Action::Comment).is_ok();
    let can_edit =
        t.authorize(Action::RequestChange).is_ok() && crate::app::submit::may_edit(&t, &c).is_ok();
    let can_submit = can_edit && matches!(c.state, ChangeState::Draft | ChangeState::Rejected);
    let can_implement = t.authorize(Action::Implement).is_ok();
    // A change in a release is started by the release's deploy phase.
    let in_release = releases_of.iter().any(|r| {
        !matches!(
            r.state,
            changegate_core::release::ReleaseState::Cancelled
                | changegate_core::release::ReleaseState::Closed
        )
    });
    let can_start = can_implement && c.state.is_approved() && !in_release;
    let packaging = if c.state == ChangeState::Approved
        && !in_release
        && t.authorize(Action::Release).is_ok()
    {
        Some(super::package::planning_releases(&state, &viewer.principal).await?)
    } else {
        None
    };
    // The client's acceptance, where the policy asks for it (the policy
    // from the tenant's shared snapshot, renewed after every write).
    let snapshot = state.snapshots.of(&state, &t.tenant).await?;
    let policy = &snapshot.policy;
    // What the gate says to a deployment under this change now: the same
    // next-step sentence a pipeline or the agent is given, as the
    // tenant's enforcement makes it count.
    let gate = gate_line(&snapshot, &c, state.now());
    let acceptance = match crate::app::accept::covering(policy, &c) {
        None => None,
        Some(_) => {
            let done = crate::app::accept::accepted(store, &c).await?;
            let said = match &done {
                Some(a) => Some(format!(
                    "{} accepted revision {} on {} ({}){}",
                    Names::default().of(store, &a.by).await?,
                    c.revision,
                    when(Some(a.at)),
                    a.channel,
                    if a.comment.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", a.comment)
                    }
                )),
                None => None,
            };
            let waiting = match done {
                Some(_) => None,
                None => crate::app::accept::missing(store, &c, policy).await?,
            };
            let can_accept = crate::app::accept::refusal(store, &c, policy, viewer.principal.user)
                .await?
                .is_none();
            Some(AcceptanceModel {
                said,
                waiting,
                can_accept,
            })
        }
    };
    let can_finish = can_implement
        && c.state == ChangeState::Implementing
        && c.implementer == Some(viewer.principal.user);
    // Offered exactly when the cancel handler would take it: a state that
    // may become cancelled, and a person who may cancel.
    let can_withdraw = changegate_core::change::allowed(c.state, ChangeState::Cancelled)
        && t.authorize(Action::RequestChange).is_ok()
        && crate::api::lifecycle::may_cancel(&t, &c);
    let report = state.snapshots.chain(&state, &t.tenant).await?;
    let events = store
        .audit_events_about(t.tenant.id, &c.number.to_string())
        .await?;
    let details: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::from_str(&e.body.detail).unwrap_or_default())
        .collect();
    let outcome = super::words::outcome_of(
        events
            .iter()
            .zip(&details)
            .map(|(e, d)| (e.body.action.as_str(), d)),
    );
    let mut names = Names::default();
    let mut timeline = Vec::with_capacity(events.len());
    for (e, detail) in events.iter().zip(&details) {
        let who = names.of(store, &e.body.actor).await?;
        timeline.push(EventRow {
            at: when(Some(e.body.at)),
            sentence: super::words::event(&e.body.action, &who, detail),
        });
    }
    let stored = store.revisions(t.tenant.id, c.number).await?;
    let authors = Emails::load(store, stored.iter().map(|r| r.created_by)).await?;
    let mut by = Vec::with_capacity(stored.len());
    for r in &stored {
        by.push(names.of(store, &authors.of(r.created_by)).await?);
    }
    let revisions = stored
        .iter()
        .enumerate()
        .zip(by)
        .map(|((i, r), by)| RevisionRow {
            revision: r.revision,
            at: when(Some(r.created_at)),
            by,
            fingerprint: r.fingerprint.clone(),
            fingerprint_short: short_hash(&r.fingerprint),
            changed: match i.checked_sub(1).map(|j| &stored[j]) {
                None => "first submitted".into(),
                Some(prev) => match changed_fields(&prev.content, &r.content) {
                    f if f.is_empty() => "nothing in its content".into(),
                    f => f.join(", "),
                },
            },
        })
        .collect();
    let mut comments = Vec::new();
    for m in store.comments(t.tenant.id, c.number).await? {
        comments.push(CommentRow {
            author: names.of(store, m.author_email.as_str()).await?,
            at: when(Some(m.at)),
            body: m.body,
        });
    }
    let content = &c.content;
    let (state_words, tone) = super::words::state(c.state, outcome);
    let zone: chrono_tz::Tz = t.tenant.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let local = |at: DateTime<Utc>| changegate_core::window::format_instant(at, zone);
    // Its own slot, else the slot of the release that ran (or runs) it.
    let slot = match (content.planned_start, content.planned_end) {
        (None, None) => releases
            .iter()
            .rev()
            .find_map(|r| Some((r.planned_start?, r.planned_end?))),
        (Some(s), Some(e)) => Some((s, e)),
        (Some(s), None) => Some((s, s)),
        (None, Some(e)) => Some((e, e)),
    };
    let model = ChangeModel {
        number: c.number.to_string(),
        tenant: t.tenant.slug.to_string(),
        tenant_name: t.tenant.name.clone(),
        title: content.title.clone(),
        kind: c.kind.as_str().to_string(),
        state: c.state.as_str().to_string(),
        state_words,
        tone: tone.class(),
        releases: releases
            .iter()
            .map(|r| (r.number.to_string(), r.name.clone()))
            .collect(),
        // Each answer under the question as the client's questionnaire
        // asks it (a key it no longer has, as the key).
        risk_answers: content
            .risk_answers
            .iter()
            .map(|(key, a)| {
                let asked = snapshot
                    .policy
                    .questionnaire
                    .questions
                    .iter()
                    .find(|q| &q.key == key)
                    .map_or_else(|| key.replace('-', " "), |q| q.text.clone());
                (asked, a.clone())
            })
            .collect(),
        requester: names.of(store, &emails.of(c.requester)).await?,
        risk: c.risk_level.map(|l| l.as_str().to_string()),
        revision: c.revision,
        description: content.description.clone(),
        justification: content.justification.clone(),
        configuration_items: content.configuration_items.join(", "),
        artifacts: content.artifacts.join(", "),
        planned: match slot {
            None => String::new(),
            Some((s, e)) if s == e => local(s),
            Some((s, e)) => format!("{} to {}", local(s), local(e)),
        },
        actual: match super::words::actual_of(
            events.iter().map(|e| (e.body.action.as_str(), e.body.at)),
        ) {
            None => String::new(),
            Some((s, None)) => format!("started {}, still running", local(s)),
            Some((s, Some(e))) => format!("{} to {}", local(s), local(e)),
        },
        implementation_plan: content.implementation_plan.clone(),
        test_plan: content.test_plan.clone(),
        test_evidence: content.test_evidence.clone(),
        backout_plan: content.backout_plan.clone(),
        proposal: content.proposal.clone().unwrap_or_default(),
        fingerprint: c.fingerprint.clone().unwrap_or_default(),
        fingerprint_short: short_hash(c.fingerprint.as_deref().unwrap_or_default()),
    };
    let page = ChangePage {
        viewer: Some(nav(&state, &viewer).await?),
        c: model,
        waiting,
        gate,
        can_decide,
        review_outcome,
        can_comment,
        can_withdraw,
        can_edit,
        can_submit,
        can_start,
        can_finish,
        packaging,
        acceptance,
        csrf: viewer.csrf.clone(),
        approvals: {
            let mut rows = Vec::with_capacity(approvals.len());
            for a in &approvals {
                let by = names.of(store, a.approver_email.as_str()).await?;
                rows.push(ApprovalRow {
                    approver: match a.on_behalf_of {
                        Some(seat) => {
                            format!("{by} for {}", names.of(store, &emails.of(seat)).await?)
                        }
                        None => by,
                    },
                    decision: a.decision.as_str().to_string(),
                    channel: a.channel.as_str().to_string(),
                    at: when(Some(a.at)),
                    revision: a.revision,
                    comment: a.comment.clone(),
                });
            }
            rows
        },
        timeline,
        chain: if report.report.intact {
            format!(
                "intact ({} events, verified {})",
                report.report.events,
                when(Some(report.at))
            )
        } else {
            format!(
                "broken: {} (verified {})",
                report
                    .report
                    .first_break
                    .as_ref()
                    .map_or_else(|| "no break named".to_string(), ToString::to_string),
                when(Some(report.at))
            )
        },
        comments,
        revisions,
    };
    Ok(render(&page))
}

#[derive(Deserialize)]
pub struct DecideForm {
    csrf: String,
    decision: String,
    #[serde(default)]
    comment: String,
    revision: i64,
    /// Where to return: the board agenda the decision was made in.
    #[serde(default)]
    back: String,
}

/// Approve or reject from the change page: recorded with channel `portal`.
pub async fn decide(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(p): Path<ChangePath>,
    Form(form): Form<DecideForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let t = in_tenant(&state, &viewer, &p.tenant).await?;
    t.authorize(Action::Decide)?;
    // In an undecided seat of a change escalated to the viewer, on its holder's behalf.
    let c = crate::api::changes::load(state.store.as_ref(), t.tenant.id, &p.number).await?;
    let on_behalf_of = match seat_for(state.store.as_ref(), &c, t.caller.user, state.now()).await? {
        Some(Some(from)) => Some(state.store.user(from).await?.email.to_string()),
        _ => None,
    };
    let body = DecisionBody {
        decision: form.decision,
        comment: form.comment,
        on_behalf_of,
        revision: Some(form.revision),
    };
    let d = Decide::from_body(&body, Channel::Portal, None)?;
    let saved = record_decision(&state, &t, &p.number, d).await?;
    // Only back to an agenda of this tenant: never an open redirect.
    let agenda = format!("/t/{}/boards/", t.tenant.slug);
    let back = form
        .back
        .strip_prefix(&agenda)
        .filter(|board| {
            !board.is_empty() && board.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        .map(|board| format!("{agenda}{board}"));
    let to = back.unwrap_or_else(|| format!("/t/{}/changes/{}", t.tenant.slug, saved.number));
    Ok(Redirect::to(&to).into_response())
}

#[derive(Deserialize)]
pub struct ReviewForm {
    csrf: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    notes: String,
    #[serde(default)]
    lessons: String,
}

/// The post-implementation review from the change page, through the
/// API's handler: the change closes.
pub async fn review(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(p): Path<ChangePath>,
    Form(form): Form<ReviewForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let t = in_tenant(&state, &viewer, &p.tenant).await?;
    t.authorize(Action::Implement)?;
    let slug = t.tenant.slug.to_string();
    let axum::Json(saved) = crate::api::lifecycle::review(
        State(state.clone()),
        t,
        Path(crate::api::ChangePath {
            tenant: slug.clone(),
            number: p.number.clone(),
        }),
        crate::api::Body(crate::dto::ReviewBody {
            outcome: form.outcome,
            notes: form.notes,
            lessons: form.lessons,
        }),
    )
    .await?;
    Ok(Redirect::to(&format!("/t/{slug}/changes/{}", saved.number)).into_response())
}

#[derive(Deserialize)]
pub struct CommentForm {
    csrf: String,
    #[serde(default)]
    body: String,
}

/// A comment from the change page, through the API's handler.
pub async fn comment(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(p): Path<ChangePath>,
    Form(form): Form<CommentForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let t = in_tenant(&state, &viewer, &p.tenant).await?;
    let slug = t.tenant.slug.to_string();
    let (_, axum::Json(_)) = crate::api::changes::comment(
        State(state.clone()),
        t,
        Path(crate::api::ChangePath {
            tenant: slug.clone(),
            number: p.number.clone(),
        }),
        crate::api::Body(crate::dto::CommentBody { body: form.body }),
    )
    .await?;
    Ok(Redirect::to(&format!("/t/{slug}/changes/{}#comments", p.number)).into_response())
}

#[derive(Deserialize)]
pub struct WithdrawForm {
    csrf: String,
    #[serde(default)]
    note: String,
}

/// The requester (or a change manager) withdraws a change that has not
/// started, from its page, through the API's cancel handler.
pub async fn withdraw(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(p): Path<ChangePath>,
    Form(form): Form<WithdrawForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let t = in_tenant(&state, &viewer, &p.tenant).await?;
    let slug = t.tenant.slug.to_string();
    let axum::Json(saved) = crate::api::lifecycle::cancel(
        State(state.clone()),
        t,
        Path(crate::api::ChangePath {
            tenant: slug.clone(),
            number: p.number.clone(),
        }),
        crate::api::Body(crate::dto::TransitionBody {
            note: form.note,
            ..crate::dto::TransitionBody::default()
        }),
    )
    .await?;
    Ok(Redirect::to(&format!("/t/{slug}/changes/{}", saved.number)).into_response())
}

#[derive(Deserialize)]
pub struct TransitionForm {
    csrf: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    documentation: String,
    /// A checkbox: present when the backout plan was executed.
    #[serde(default)]
    rolled_back: Option<String>,
    #[serde(default)]
    restored: String,
}

impl TransitionForm {
    fn body(self) -> crate::dto::TransitionBody {
        crate::dto::TransitionBody {
            note: self.note,
            documentation: self.documentation,
            rolled_back: self.rolled_back.is_some(),
            restored: self.restored,
        }
    }
}

/// Which of the API's lifecycle handlers a change page form calls.
#[derive(Clone, Copy)]
enum Step {
    Submit,
    Start,
    Complete,
    Fail,
}

/// Submit, start, complete or fail a change from its page, through the
/// API's handler (its authorization, its rules, its audit event); a
/// refusal is shown with the API's message and status.
async fn transition(
    state: AppState,
    viewer: Viewer,
    p: ChangePath,
    form: TransitionForm,
    step: Step,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let t = in_tenant(&state, &viewer, &p.tenant).await?;
    let slug = t.tenant.slug.to_string();
    let path = Path(crate::api::ChangePath {
        tenant: slug.clone(),
        number: p.number.clone(),
    });
    let body = crate::api::Body(form.body());
    use crate::api::lifecycle;
    let axum::Json(saved) = match step {
        Step::Submit => lifecycle::submit(State(state.clone()), t, path).await?,
        Step::Start => lifecycle::start(State(state.clone()), t, path, body).await?,
        Step::Complete => lifecycle::complete(State(state.clone()), t, path, body).await?,
        Step::Fail => lifecycle::fail(State(state.clone()), t, path, body).await?,
    };
    Ok(Redirect::to(&format!("/t/{slug}/changes/{}", saved.number)).into_response())
}

#[derive(Deserialize)]
pub struct AcceptForm {
    csrf: String,
    #[serde(default)]
    comment: String,
}

/// The client accepts the tested change from its page, through the API's
/// handler, with channel `portal`.
pub async fn accept(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(p): Path<ChangePath>,
    Form(form): Form<AcceptForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let t = in_tenant(&state, &viewer, &p.tenant).await?;
    let axum::Json(saved) = crate::api::lifecycle::accept_via(
        &state,
        &t,
        &p.number,
        crate::dto::AcceptanceBody {
            comment: form.comment,
        },
        crate::app::accept::Channel::Portal,
    )
    .await?;
    Ok(Redirect::to(&format!("/t/{}/changes/{}", t.tenant.slug, saved.number)).into_response())
}

pub async fn submit(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(p): Path<ChangePath>,
    Form(form): Form<TransitionForm>,
) -> PageResult<Response> {
    transition(state, viewer, p, form, Step::Submit).await
}

pub async fn start(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(p): Path<ChangePath>,
    Form(form): Form<TransitionForm>,
) -> PageResult<Response> {
    transition(state, viewer, p, form, Step::Start).await
}

pub async fn complete(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(p): Path<ChangePath>,
    Form(form): Form<TransitionForm>,
) -> PageResult<Response> {
    transition(state, viewer, p, form, Step::Complete).await
}

pub async fn fail(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(p): Path<ChangePath>,
    Form(form): Form<TransitionForm>,
) -> PageResult<Response> {
    transition(state, viewer, p, form, Step::Fail).await
}

#[cfg(test)]
mod tests {
    use super::short_hash;

    #[test]
    fn a_hash_is_shown_by_its_first_digits() {
        let full = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(short_hash(&full), "sha256:abababababab…");
        assert_eq!(short_hash("sha256:abc"), "sha256:abc");
        assert_eq!(short_hash(""), "");
    }
}
