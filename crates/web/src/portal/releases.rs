//! Release pages: the releases the viewer sees, and one release with its
//! changes, phase authorizations, conflicts, runbook, rollback and
//! outcome. Every form calls the API's own handler, so the rules, the
//! authorization and the audit chain are the API's; a refusal shows the
//! page again with the API's message and status.

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::pages::{Nav, nav, render};
use super::{PageResult, Viewer};
use crate::AppState;
use crate::api::Body;
use crate::api::releases::{
    self, OverrideBody, PhaseBody, ReleasePath, ReleaseSummary, ReleaseView, RollbackBody,
    StepPath, StepRecordBody,
};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

#[derive(Template)]
#[template(path = "releases.html")]
struct ListPage {
    viewer: Option<Nav>,
    releases: Vec<ReleaseSummary>,
    /// The viewer packages releases in some tenant.
    can_package: bool,
}

pub async fn list(State(state): State<AppState>, viewer: Viewer) -> PageResult<Response> {
    let axum::Json(releases) =
        releases::list(State(state.clone()), Caller(viewer.principal.clone())).await?;
    let can_package = viewer.principal.admin
        || viewer.principal.roles.iter().any(|(tenant, _)| {
            changegate_core::authz::authorize(
                &viewer.principal,
                *tenant,
                changegate_core::authz::Action::Release,
            )
            .is_ok()
        });
    let page = ListPage {
        viewer: Some(nav(&state, &viewer).await?),
        releases,
        can_package,
    };
    Ok(render(&page))
}

#[derive(Template)]
#[template(path = "release.html")]
struct ReleasePage {
    viewer: Option<Nav>,
    csrf: String,
    r: ReleaseView,
    /// The phase the release may be authorized into next.
    next_phase: Option<&'static str>,
    /// The viewer's e-mail address: a step's owner records it.
    me: String,
    problem: Option<String>,
    /// Approved changes it may take in (while planning, for who may edit it).
    candidates: Vec<super::package::Candidate>,
    /// Its own changes, for a new runbook step.
    own: Vec<String>,
}

impl ReleasePage {
    fn when(t: &Option<chrono::DateTime<chrono::Utc>>) -> String {
        super::pages::when(*t)
    }
}

async fn show_page(
    state: &AppState,
    viewer: &Viewer,
    number: &str,
    problem: Option<ApiError>,
) -> PageResult<Response> {
    let axum::Json(r) = releases::show(
        State(state.clone()),
        Caller(viewer.principal.clone()),
        Path(ReleasePath {
            number: number.to_string(),
        }),
    )
    .await?;
    let next_phase = match r.state.as_str() {
        "planning" => Some("plan"),
        "build-and-test" => Some("build-and-test"),
        "ready" => Some("deploy"),
        _ => None,
    };
    let status = problem.as_ref().map_or(StatusCode::OK, |p| p.status);
    let candidates = if r.state == "planning" && r.can_release {
        super::package::candidates(state, &viewer.principal).await?
    } else {
        Vec::new()
    };
    let own = r.changes.iter().map(|c| c.number.clone()).collect();
    let page = ReleasePage {
        candidates,
        own,
        viewer: Some(nav(state, viewer).await?),
        csrf: viewer.csrf.clone(),
        r,
        next_phase,
        me: viewer.principal.email.to_string(),
        problem: problem.map(|p| p.message),
    };
    let mut response = render(&page);
    *response.status_mut() = status;
    Ok(response)
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(number): Path<String>,
) -> PageResult<Response> {
    show_page(&state, &viewer, &number, None).await
}

/// Back to the release after an action, or the page with the refusal.
pub(crate) async fn after<T>(
    state: &AppState,
    viewer: &Viewer,
    number: &str,
    outcome: ApiResult<T>,
) -> PageResult<Response> {
    match outcome {
        Ok(_) => Ok(Redirect::to(&format!("/releases/{number}")).into_response()),
        // Not the release's at all: the same 404 as its page.
        Err(e) if e.status == StatusCode::NOT_FOUND && e.field.is_none() => Err(e.into()),
        Err(e) => show_page(state, viewer, number, Some(e)).await,
    }
}

#[derive(Deserialize)]
pub struct PhaseForm {
    csrf: String,
    #[serde(default)]
    phase: String,
    #[serde(default)]
    note: String,
}

pub async fn authorize_phase(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(number): Path<String>,
    Form(form): Form<PhaseForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let outcome = releases::authorize_phase(
        State(state.clone()),
        Caller(viewer.principal.clone()),
        Path(ReleasePath {
            number: number.clone(),
        }),
        Body(PhaseBody {
            phase: form.phase,
            note: form.note,
            at_planned_start: false,
        }),
    )
    .await;
    after(&state, &viewer, &number, outcome).await
}

#[derive(Deserialize)]
pub struct StepForm {
    csrf: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    evidence: String,
}

pub async fn record_step(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((number, step)): Path<(String, String)>,
    Form(form): Form<StepForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let outcome = releases::record_step(
        State(state.clone()),
        Caller(viewer.principal.clone()),
        Path(StepPath {
            number: number.clone(),
            step,
        }),
        Body(StepRecordBody {
            status: form.status,
            evidence: form.evidence,
        }),
    )
    .await;
    after(&state, &viewer, &number, outcome).await
}

#[derive(Deserialize)]
pub struct ReasonForm {
    csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    conflict: String,
}

pub async fn rollback(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(number): Path<String>,
    Form(form): Form<ReasonForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let outcome = releases::rollback(
        State(state.clone()),
        Caller(viewer.principal.clone()),
        Path(ReleasePath {
            number: number.clone(),
        }),
        Body(RollbackBody {
            reason: form.reason,
        }),
    )
    .await;
    after(&state, &viewer, &number, outcome).await
}

pub async fn override_conflict(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(number): Path<String>,
    Form(form): Form<ReasonForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let outcome = releases::override_conflict(
        State(state.clone()),
        Caller(viewer.principal.clone()),
        Path(ReleasePath {
            number: number.clone(),
        }),
        Body(OverrideBody {
            conflict: form.conflict,
            reason: form.reason,
        }),
    )
    .await;
    after(&state, &viewer, &number, outcome).await
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn finish(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(number): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let path = Path(ReleasePath {
        number: number.clone(),
    });
    let outcome =
        releases::finish(State(state.clone()), Caller(viewer.principal.clone()), path).await;
    after(&state, &viewer, &number, outcome).await
}

pub async fn close(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(number): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let path = Path(ReleasePath {
        number: number.clone(),
    });
    let outcome =
        releases::close(State(state.clone()), Caller(viewer.principal.clone()), path).await;
    after(&state, &viewer, &number, outcome).await
}
