//! Packaging approved changes into releases from the portal: a new
//! release (its changes, slot and runbook) on `/releases/new`, a change
//! or a runbook step added to a release still being planned, and the
//! change page's "deliver it in a release". Every form calls the API's
//! own release handlers (`create`, `edit`), so the rules (release-manager
//! role in every tenant involved, approved changes only, steps about the
//! release's own changes), the authorization and the audit events are the
//! API's; a refusal shows the form again with what was typed.

use std::collections::BTreeSet;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use changegate_core::authz::{self, Action, Principal};
use changegate_core::change::ChangeState;
use changegate_core::release::ReleaseState;
use changegate_store::{ChangeFilter, Release};
use serde::Deserialize;

use super::pages::{Nav, nav, render, when};
use super::{Fields, PageResult, Viewer};
use crate::AppState;
use crate::api::Body;
use crate::api::releases::{
    self, EditReleaseBody, NewReleaseBody, ReleaseChangeRef, ReleasePath, StepBody,
};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// Empty runbook rows the new-release form offers.
const STEP_ROWS: usize = 4;

/// An approved change the viewer may package: not in a release that is
/// still to run or running.
pub struct Candidate {
    /// `tenant/CHG-<n>`, the form's value.
    pub key: String,
    pub tenant_name: String,
    pub number: String,
    pub title: String,
    pub planned: String,
    pub chosen: bool,
}

/// The approved changes of every tenant where the viewer may package
/// releases, oldest first, less those a release still to run delivers.
pub async fn candidates(state: &AppState, caller: &Principal) -> ApiResult<Vec<Candidate>> {
    let tenants: Vec<_> = state
        .snapshots
        .tenants(state)
        .await?
        .iter()
        .filter(|t| authz::authorize(caller, t.id, Action::Release).is_ok())
        .cloned()
        .collect();
    if tenants.is_empty() {
        return Ok(Vec::new());
    }
    let ids: BTreeSet<_> = tenants.iter().map(|t| t.id).collect();
    let booked: BTreeSet<_> = state
        .store
        .active_releases(Some(&ids))
        .await?
        .iter()
        .flat_map(|r| r.changes.iter().map(|i| (i.tenant, i.change)))
        .collect();
    let mut out = Vec::new();
    for tenant in &tenants {
        let changes = state
            .store
            .list_changes(&ChangeFilter {
                tenants: Some([tenant.id].into()),
                state: Some(ChangeState::Approved),
                limit: 200,
                ..ChangeFilter::default()
            })
            .await?;
        for c in changes.iter().rev() {
            if booked.contains(&(c.tenant, c.number)) {
                continue;
            }
            out.push(Candidate {
                key: format!("{}/{}", tenant.slug, c.number),
                tenant_name: tenant.name.clone(),
                number: c.number.to_string(),
                title: c.content.title.clone(),
                planned: match (c.content.planned_start, c.content.planned_end) {
                    (Some(s), Some(e)) => format!("{} to {}", when(Some(s)), when(Some(e))),
                    (Some(s), None) => when(Some(s)),
                    _ => String::new(),
                },
                chosen: false,
            });
        }
    }
    Ok(out)
}

/// A runbook row of the form, as typed.
#[derive(Default, Clone)]
pub struct StepRow {
    pub kind: String,
    pub title: String,
    pub owner: String,
    pub change: String,
}

impl StepRow {
    fn is_empty(&self) -> bool {
        self.title.trim().is_empty() && self.owner.trim().is_empty() && self.change.is_empty()
    }

    fn body(&self) -> StepBody {
        StepBody {
            kind: self.kind.clone(),
            title: self.title.trim().to_string(),
            owner: self.owner.trim().to_string(),
            change: (!self.change.is_empty()).then(|| self.change.clone()),
        }
    }

    fn read(fields: &Fields, prefix: &str) -> Self {
        StepRow {
            kind: fields.one(&format!("{prefix}kind")),
            title: fields.one(&format!("{prefix}title")),
            owner: fields.one(&format!("{prefix}owner")),
            change: fields.one(&format!("{prefix}change")),
        }
    }
}

#[derive(Template)]
#[template(path = "release_new.html")]
struct NewPage {
    viewer: Option<Nav>,
    csrf: String,
    candidates: Vec<Candidate>,
    name: String,
    description: String,
    planned_start: String,
    planned_end: String,
    steps: Vec<StepRow>,
    /// The viewer's address: the default owner of a step.
    me: String,
    problem: Option<String>,
}

#[derive(Deserialize)]
pub struct NewQuery {
    /// `tenant/CHG-<n>` to tick from the start (the change page's link).
    #[serde(default)]
    change: String,
}

/// The form to package a new release.
pub async fn new_form(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<NewQuery>,
) -> PageResult<Response> {
    let chosen: Vec<String> = (!q.change.is_empty())
        .then_some(q.change)
        .into_iter()
        .collect();
    let page = NewPage {
        viewer: Some(nav(&state, &viewer).await?),
        csrf: viewer.csrf.clone(),
        candidates: ticked(candidates(&state, &viewer.principal).await?, &chosen),
        name: String::new(),
        description: String::new(),
        planned_start: String::new(),
        planned_end: String::new(),
        steps: vec![StepRow::default(); STEP_ROWS],
        me: viewer.principal.email.to_string(),
        problem: None,
    };
    Ok(render(&page))
}

fn ticked(mut all: Vec<Candidate>, chosen: &[String]) -> Vec<Candidate> {
    for c in &mut all {
        c.chosen = chosen.contains(&c.key);
    }
    all
}

fn change_ref(key: &str) -> ReleaseChangeRef {
    let (tenant, change) = key.split_once('/').unwrap_or(("", key));
    ReleaseChangeRef {
        tenant: tenant.to_string(),
        change: change.to_string(),
    }
}

/// Create the release through `POST /api/v1/releases`'s handler.
pub async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    body: Bytes,
) -> PageResult<Response> {
    let fields = Fields::parse(&body);
    viewer.check_csrf(&fields.one("csrf"))?;
    let chosen = fields.all("change");
    let steps: Vec<StepRow> = (0..STEP_ROWS)
        .map(|i| StepRow::read(&fields, &format!("step{i}.")))
        .collect();
    let (name, description) = (fields.one("name"), fields.one("description"));
    let (start, end) = (fields.one("planned_start"), fields.one("planned_end"));
    let outcome = async {
        let body = NewReleaseBody {
            name: name.trim().to_string(),
            description: description.clone(),
            changes: chosen.iter().map(|k| change_ref(k)).collect(),
            planned_start: super::raise::instant("planned start", &start)?,
            planned_end: super::raise::instant("planned end", &end)?,
            runbook: steps
                .iter()
                .filter(|s| !s.is_empty())
                .map(StepRow::body)
                .collect(),
        };
        if body.name.is_empty() {
            return Err(ApiError::invalid("name", "give the release a name"));
        }
        if body.changes.is_empty() {
            return Err(ApiError::invalid(
                "changes",
                "tick at least one approved change",
            ));
        }
        releases::create(
            State(state.clone()),
            Caller(viewer.principal.clone()),
            Body(body),
        )
        .await
    }
    .await;
    match outcome {
        Ok((_, axum::Json(created))) => {
            Ok(Redirect::to(&format!("/releases/{}", created.number)).into_response())
        }
        Err(e) => {
            let page = NewPage {
                viewer: Some(nav(&state, &viewer).await?),
                csrf: viewer.csrf.clone(),
                candidates: ticked(candidates(&state, &viewer.principal).await?, &chosen),
                name,
                description,
                planned_start: start,
                planned_end: end,
                steps,
                me: viewer.principal.email.to_string(),
                problem: Some(refusal(&e)),
            };
            let mut response = render(&page);
            *response.status_mut() = if e.status.is_server_error() {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                e.status
            };
            Ok(response)
        }
    }
}

/// The API's message, with the field it is about when it names one.
fn refusal(e: &ApiError) -> String {
    match &e.field {
        Some(field) if !e.message.contains(field.as_str()) => format!("{field}: {}", e.message),
        _ => e.message.clone(),
    }
}

/// What a planned release is now, as an edit body names it.
async fn as_planned(
    state: &AppState,
    caller: &Principal,
    number: &str,
) -> ApiResult<(Release, Vec<ReleaseChangeRef>, Vec<StepBody>)> {
    let loaded = crate::app::release::load(state, caller, number).await?;
    // Who may not edit it learns nothing more from a form's errors.
    crate::app::release::authorize_all(caller, loaded.tenants.keys().copied(), Action::Release)?;
    let changes = loaded
        .release
        .changes
        .iter()
        .map(|i| ReleaseChangeRef {
            tenant: loaded
                .tenants
                .get(&i.tenant)
                .map(|t| t.slug.to_string())
                .unwrap_or_default(),
            change: i.change.to_string(),
        })
        .collect();
    let steps = loaded
        .release
        .record
        .runbook
        .iter()
        .map(|s| StepBody {
            kind: s.kind.as_str().to_string(),
            title: s.title.clone(),
            owner: s.owner.clone(),
            change: s.change.clone(),
        })
        .collect();
    Ok((loaded.release, changes, steps))
}

async fn edit(
    state: &AppState,
    viewer: &Viewer,
    number: &str,
    body: EditReleaseBody,
) -> ApiResult<()> {
    releases::edit(
        State(state.clone()),
        Caller(viewer.principal.clone()),
        Path(ReleasePath {
            number: number.to_string(),
        }),
        Body(body),
    )
    .await
    .map(|_| ())
}

#[derive(Deserialize)]
pub struct AddChangeForm {
    csrf: String,
    /// `tenant/CHG-<n>`.
    #[serde(default)]
    change: String,
    /// Where to go back to: `change` for the change's page.
    #[serde(default)]
    back: String,
}

/// Add an approved change to a release still being planned.
pub async fn add_change(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(number): Path<String>,
    axum::extract::Form(form): axum::extract::Form<AddChangeForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let added = change_ref(&form.change);
    let outcome = async {
        let (_, mut changes, _) = as_planned(&state, &viewer.principal, &number).await?;
        if added.tenant.is_empty() || added.change.is_empty() {
            return Err(ApiError::invalid(
                "change",
                "choose an approved change to add",
            ));
        }
        changes.push(ReleaseChangeRef {
            tenant: added.tenant.clone(),
            change: added.change.clone(),
        });
        edit(
            &state,
            &viewer,
            &number,
            EditReleaseBody {
                changes: Some(changes),
                ..EditReleaseBody::default()
            },
        )
        .await
    }
    .await;
    if outcome.is_ok() && form.back == "change" {
        let to = format!("/t/{}/changes/{}", added.tenant, added.change);
        return Ok(Redirect::to(&to).into_response());
    }
    super::releases::after(&state, &viewer, &number, outcome).await
}

#[derive(Deserialize)]
pub struct AddStepForm {
    csrf: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    change: String,
}

/// Add a step at the end of a planned release's runbook.
pub async fn add_step(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(number): Path<String>,
    axum::extract::Form(form): axum::extract::Form<AddStepForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let row = StepRow {
        kind: form.kind,
        title: form.title,
        owner: form.owner,
        change: form.change,
    };
    let outcome = async {
        let (_, _, mut steps) = as_planned(&state, &viewer.principal, &number).await?;
        if row.title.trim().is_empty() {
            return Err(ApiError::invalid("title", "say what the step does"));
        }
        steps.push(row.body());
        edit(
            &state,
            &viewer,
            &number,
            EditReleaseBody {
                runbook: Some(steps),
                ..EditReleaseBody::default()
            },
        )
        .await
    }
    .await;
    super::releases::after(&state, &viewer, &number, outcome).await
}

/// The releases still being planned that `caller` may edit (the
/// release-manager role in each of their tenants): (number, name).
pub async fn planning_releases(
    state: &AppState,
    caller: &Principal,
) -> ApiResult<Vec<(String, String)>> {
    let mine: BTreeSet<_> = state
        .snapshots
        .tenants(state)
        .await?
        .iter()
        .filter(|t| authz::authorize(caller, t.id, Action::Release).is_ok())
        .map(|t| t.id)
        .collect();
    let mut out = Vec::new();
    for r in state.store.active_releases(Some(&mine)).await? {
        if r.state != ReleaseState::Planning {
            continue;
        }
        let involved = r.changes.iter().map(|i| i.tenant);
        if crate::app::release::authorize_all(caller, involved, Action::Release).is_ok() {
            out.push((r.number.to_string(), r.name.clone()));
        }
    }
    Ok(out)
}
