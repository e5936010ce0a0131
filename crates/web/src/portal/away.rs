//! Out of office: an approver hands their seat to another approver of the
//! tenant for a period, and sees who decides for them and for whom they
//! decide; a tenant's administrator hands over the seat of someone who
//! cannot (on leave, gone), saying why. Both forms call the API's own
//! delegation handler, whose rules (one's own seat; an administrator never
//! to themselves; MSP staff's seats only by an installation admin) and
//! audit event are the API's.

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use changegate_core::authz::Action;
use serde::Deserialize;

use super::pages::{Nav, in_tenant, nav, render};
use super::{PageResult, Viewer};
use crate::AppState;
use crate::error::ApiError;
use crate::tenant::InTenant;

/// A person of the tenant, as a form offers them.
pub struct Person {
    pub email: String,
    pub label: String,
}

/// A delegation as the page lists it.
pub struct Handover {
    pub sentence: String,
    pub period: String,
}

#[derive(Template)]
#[template(path = "away.html")]
struct AwayPage {
    viewer: Option<Nav>,
    csrf: String,
    tenant: String,
    tenant_name: String,
    /// The viewer decides here, so has a seat to hand over.
    has_seat: bool,
    /// The viewer administers the tenant: hands over others' seats.
    administers: bool,
    /// Who may decide in a seat: the tenant's approvers, the viewer aside.
    deputies: Vec<Person>,
    /// Whose seat an administrator may hand over: every approver.
    approvers: Vec<Person>,
    handovers: Vec<Handover>,
    problem: Option<String>,
    /// What was typed, shown again after a refusal.
    typed: Typed,
}

#[derive(Default, Deserialize)]
pub struct Typed {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    starts_at: String,
    #[serde(default)]
    ends_at: String,
    #[serde(default)]
    reason: String,
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
) -> PageResult<Response> {
    let t = in_tenant(&state, &viewer, &slug).await?;
    t.authorize(Action::Read)?;
    page(&state, &viewer, &t, None, Typed::default()).await
}

async fn page(
    state: &AppState,
    viewer: &Viewer,
    t: &InTenant,
    problem: Option<ApiError>,
    typed: Typed,
) -> PageResult<Response> {
    let store = state.store.as_ref();
    let me = viewer.principal.user;
    let people = store.users_in_tenant(t.tenant.id).await?;
    let deciders = Action::Decide.granted_by();
    let label = |name: &str, email: &str| {
        if name.trim().is_empty() {
            email.to_string()
        } else {
            format!("{name} <{email}>")
        }
    };
    let approvers: Vec<Person> = people
        .iter()
        .filter(|(_, roles)| roles.iter().any(|r| deciders.contains(r)))
        .map(|(u, _)| Person {
            email: u.email.to_string(),
            label: label(&u.name, u.email.as_str()),
        })
        .collect();
    let deputies = approvers
        .iter()
        .filter(|p| p.email != viewer.principal.email.as_str())
        .map(|p| Person {
            email: p.email.clone(),
            label: p.label.clone(),
        })
        .collect();
    let name_of = |id| {
        people.iter().find(|(u, _)| u.id == id).map_or_else(
            || "someone".to_string(),
            |(u, _)| {
                if u.name.trim().is_empty() {
                    u.email.to_string()
                } else {
                    u.name.clone()
                }
            },
        )
    };
    let zone: chrono_tz::Tz = t.tenant.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let handovers = store
        .delegations_of(t.tenant.id, me, state.now())
        .await?
        .into_iter()
        .map(|d| Handover {
            sentence: if d.from == me {
                format!("{} decides in your seat", name_of(d.to))
            } else {
                format!("You decide in the seat of {}", name_of(d.from))
            },
            period: format!(
                "{} to {}",
                changegate_core::window::format_instant(d.starts_at, zone),
                changegate_core::window::format_instant(d.ends_at, zone)
            ),
        })
        .collect();
    let status = problem.as_ref().map_or(StatusCode::OK, |p| p.status);
    let page = AwayPage {
        viewer: Some(nav(state, viewer).await?),
        csrf: viewer.csrf.clone(),
        tenant: t.tenant.slug.to_string(),
        tenant_name: t.tenant.name.clone(),
        has_seat: t.authorize(Action::Decide).is_ok(),
        administers: t.authorize(Action::AdministerTenant).is_ok(),
        deputies,
        approvers,
        handovers,
        problem: problem.map(|p| p.message),
        typed,
    };
    let mut response = render(&page);
    *response.status_mut() = status;
    Ok(response)
}

#[derive(Deserialize)]
pub struct HandOverForm {
    csrf: String,
    #[serde(flatten)]
    typed: Typed,
}

/// Hand a seat over through `POST …/delegations`' handler: one's own
/// (no `from`), or, for an administrator, someone else's with a reason.
pub async fn hand_over(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    Form(form): Form<HandOverForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let t = in_tenant(&state, &viewer, &slug).await?;
    let typed = form.typed;
    let outcome = async {
        let starts_at = super::raise::instant("start", &typed.starts_at)?
            .ok_or_else(|| ApiError::invalid("starts_at", "say when you are away from"))?;
        let ends_at = super::raise::instant("end", &typed.ends_at)?
            .ok_or_else(|| ApiError::invalid("ends_at", "say when you are back"))?;
        let from = if typed.from.is_empty() {
            viewer.principal.email.to_string()
        } else {
            typed.from.clone()
        };
        crate::api::policy::delegate(
            State(state.clone()),
            t.clone(),
            crate::api::Body(crate::dto::DelegationBody {
                from,
                to: typed.to.clone(),
                starts_at,
                ends_at,
                reason: (!typed.reason.trim().is_empty()).then(|| typed.reason.clone()),
            }),
        )
        .await
    }
    .await;
    match outcome {
        Ok(_) => Ok(Redirect::to(&format!("/t/{}/delegations", t.tenant.slug)).into_response()),
        Err(e) if e.status == StatusCode::NOT_FOUND && e.field.is_none() => Err(e.into()),
        Err(e) => page(&state, &viewer, &t, Some(e), typed).await,
    }
}
