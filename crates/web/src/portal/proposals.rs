//! Change proposal pages: a tenant's proposals, the form to raise one,
//! and one proposal with its business case, the changes booked on its
//! services in its schedule, the boards that authorize it and their
//! decisions, and the changes raised under it with where each stands.
//! Every form calls the API's own handler; a refusal shows the page again
//! with the API's message and what was typed.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use changegate_core::authz::Action;
use serde::Deserialize;

use super::pages::{ChangePath, Nav, in_tenant, nav, render, tenant_form, when};
use super::{PageResult, Viewer};
use crate::AppState;
use crate::api::proposals::{self, NewProposalBody, ProposalDecisionBody, ProposalView};
use crate::error::ApiError;
use crate::tenant::InTenant;

#[derive(Template)]
#[template(path = "proposals.html")]
struct ListPage {
    viewer: Option<Nav>,
    tenant: String,
    proposals: Vec<proposals::ProposalSummaryView>,
    can_raise: bool,
}

pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
) -> PageResult<Response> {
    let t = in_tenant(&state, &viewer, &slug).await?;
    let axum::Json(mut proposals) = proposals::list(State(state.clone()), t.clone()).await?;
    // People by name, as every page names them.
    let mut names = super::pages::Names::default();
    for p in &mut proposals {
        p.requester = names.of(state.store.as_ref(), &p.requester).await?;
    }
    let page = ListPage {
        viewer: Some(nav(&state, &viewer).await?),
        tenant: t.tenant.slug.to_string(),
        proposals,
        can_raise: t.authorize(Action::RequestChange).is_ok(),
    };
    Ok(render(&page))
}

/// The form as typed.
#[derive(Default)]
pub struct Typed {
    pub title: String,
    pub business_case: String,
    pub description: String,
    pub risks: String,
    pub alternatives: String,
    pub budget: String,
    pub schedule_start: String,
    pub schedule_end: String,
    pub services: Vec<String>,
}

#[derive(Template)]
#[template(path = "proposal_new.html")]
struct NewPage {
    viewer: Option<Nav>,
    tenant: String,
    csrf: String,
    f: Typed,
    /// The tenant's configuration items, ticked when chosen.
    items: Vec<(String, bool)>,
    problem: Option<String>,
}

async fn new_page(
    state: &AppState,
    viewer: &Viewer,
    t: &InTenant,
    f: Typed,
    problem: Option<ApiError>,
) -> PageResult<Response> {
    let items = crate::workflow::configuration_items(state.store.as_ref(), t.tenant.id)
        .await?
        .into_iter()
        .map(|(name, _)| {
            let on = f.services.contains(&name);
            (name, on)
        })
        .collect();
    let status = problem.as_ref().map_or(StatusCode::OK, |p| p.status);
    let page = NewPage {
        viewer: Some(nav(state, viewer).await?),
        tenant: t.tenant.slug.to_string(),
        csrf: viewer.csrf.clone(),
        f,
        items,
        problem: problem.map(|p| p.message),
    };
    let mut response = render(&page);
    *response.status_mut() = status;
    Ok(response)
}

pub async fn new_form(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
) -> PageResult<Response> {
    let t = in_tenant(&state, &viewer, &slug).await?;
    t.authorize(Action::RequestChange)?;
    new_page(&state, &viewer, &t, Typed::default(), None).await
}

/// Raise it through `POST …/proposals`' handler.
pub async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    body: Bytes,
) -> PageResult<Response> {
    let (fields, t) = tenant_form(&state, &viewer, &slug, &body, Action::RequestChange).await?;
    let f = Typed {
        title: fields.one("title"),
        business_case: fields.one("business_case"),
        description: fields.one("description"),
        risks: fields.one("risks"),
        alternatives: fields.one("alternatives"),
        budget: fields.one("budget"),
        schedule_start: fields.one("schedule_start"),
        schedule_end: fields.one("schedule_end"),
        services: fields.all("service"),
    };
    let outcome = async {
        let body = NewProposalBody {
            title: f.title.clone(),
            business_case: f.business_case.clone(),
            description: f.description.clone(),
            risks: f.risks.clone(),
            alternatives: f.alternatives.clone(),
            budget: f.budget.clone(),
            schedule_start: super::raise::instant("schedule start", &f.schedule_start)?,
            schedule_end: super::raise::instant("schedule end", &f.schedule_end)?,
            services: f.services.clone(),
        };
        proposals::create(State(state.clone()), t.clone(), crate::api::Body(body)).await
    }
    .await;
    match outcome {
        Ok((_, axum::Json(v))) => {
            let to = format!("/t/{}/proposals/{}", t.tenant.slug, v.number);
            Ok(Redirect::to(&to).into_response())
        }
        Err(e) => new_page(&state, &viewer, &t, f, Some(e)).await,
    }
}

#[derive(Template)]
#[template(path = "proposal.html")]
struct ShowPage {
    viewer: Option<Nav>,
    csrf: String,
    p: ProposalView,
    schedule: String,
    can_decide: bool,
    can_withdraw: bool,
    can_raise_under: bool,
    problem: Option<String>,
}

async fn show_page(
    state: &AppState,
    viewer: &Viewer,
    t: &InTenant,
    number: &str,
    problem: Option<ApiError>,
) -> PageResult<Response> {
    let store = state.store.as_ref();
    let l = crate::app::proposal::load(store, t.tenant.id, number).await?;
    let mut p = proposals::view(state, t, &l).await?;
    // People by name on the page (the API keeps their addresses).
    let mut names = super::pages::Names::default();
    p.requester = names.of(store, &p.requester).await?;
    for d in &mut p.decisions {
        d.by = names.of(store, &d.by).await?;
    }
    for b in &mut p.boards {
        for m in &mut b.members {
            *m = names.of(store, m).await?;
        }
    }
    let me = viewer.principal.user;
    let can_decide =
        t.authorize(Action::Decide).is_ok() && crate::app::proposal::refusal(&l, me).is_none();
    let can_withdraw = (l.proposal.requester == me
        || viewer
            .principal
            .has_role(t.tenant.id, changegate_core::Role::ChangeManager))
        && l.standing.open();
    let can_raise_under = t.authorize(Action::RequestChange).is_ok()
        && l.standing == changegate_core::proposal::Standing::Authorized;
    let status = problem.as_ref().map_or(StatusCode::OK, |p| p.status);
    let page = ShowPage {
        viewer: Some(nav(state, viewer).await?),
        csrf: viewer.csrf.clone(),
        schedule: match (p.schedule_start, p.schedule_end) {
            (Some(s), Some(e)) => format!("{} to {}", when(Some(s)), when(Some(e))),
            (Some(s), None) => format!("from {}", when(Some(s))),
            _ => String::new(),
        },
        p,
        can_decide,
        can_withdraw,
        can_raise_under,
        problem: problem.map(|p| p.message),
    };
    let mut response = render(&page);
    *response.status_mut() = status;
    Ok(response)
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(p): Path<ChangePath>,
) -> PageResult<Response> {
    let t = in_tenant(&state, &viewer, &p.tenant).await?;
    t.authorize(Action::Read)?;
    show_page(&state, &viewer, &t, &p.number, None).await
}

#[derive(Deserialize)]
pub struct DecideForm {
    csrf: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    comment: String,
}

/// Authorize or reject through the API's handler, channel `portal`.
pub async fn decide(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(p): Path<ChangePath>,
    Form(form): Form<DecideForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let t = in_tenant(&state, &viewer, &p.tenant).await?;
    let outcome = proposals::decide_via(
        &state,
        &t,
        &p.number,
        ProposalDecisionBody {
            decision: form.decision,
            comment: form.comment,
        },
        "portal",
    )
    .await;
    after(&state, &viewer, &t, &p.number, outcome.map(|_| ())).await
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn withdraw(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(p): Path<ChangePath>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let t = in_tenant(&state, &viewer, &p.tenant).await?;
    let outcome = proposals::withdraw(
        State(state.clone()),
        t.clone(),
        Path(crate::api::ChangePath {
            tenant: t.tenant.slug.to_string(),
            number: p.number.clone(),
        }),
    )
    .await;
    after(&state, &viewer, &t, &p.number, outcome.map(|_| ())).await
}

async fn after(
    state: &AppState,
    viewer: &Viewer,
    t: &InTenant,
    number: &str,
    outcome: Result<(), ApiError>,
) -> PageResult<Response> {
    match outcome {
        Ok(()) => {
            let to = format!("/t/{}/proposals/{number}", t.tenant.slug);
            Ok(Redirect::to(&to).into_response())
        }
        Err(e) if e.status == StatusCode::NOT_FOUND && e.field.is_none() => Err(e.into()),
        Err(e) => show_page(state, viewer, t, number, Some(e)).await,
    }
}
