//! The change form: raise a change, from one of the tenant's templates or
//! from scratch, answer the risk questionnaire, see what submitting would
//! decide (approvers by name, windows and blackouts, other changes on the
//! same items in the slot, the earliest slot allowed), then submit it for
//! approval or keep it as a draft. A plain form: "Preview" posts it back
//! and the page returns filled in, with the preview; nothing is written
//! until "Submit" or "Save draft", and a change whose preview lists what
//! stops its submission is not raised at all. (Should submission still
//! fail, say because the policy changed in between, the change stays a
//! draft and the page says so with its number.)

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use changegate_core::authz::Action;
use changegate_core::change::ChangeType;
use changegate_core::risk::Question;
use changegate_store::{ChangeContent, NewChange, ObjectKind};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

use super::pages::{Nav, in_tenant, nav, render, when};
use super::{Fields, PageError, PageResult, Viewer};
use crate::AppState;
use crate::app::submit::submit as submit_change;
use crate::error::ApiError;
use crate::preview::{self, Preview};
use crate::tenant::InTenant;
use crate::workflow;

/// The form as the requester filled it in, to show it again.
#[derive(Default)]
pub struct Filled {
    pub template: String,
    pub kind: String,
    pub title: String,
    pub description: String,
    pub justification: String,
    pub items: Vec<String>,
    pub artifacts: String,
    pub planned_start: String,
    pub planned_end: String,
    pub implementation_plan: String,
    pub test_plan: String,
    pub backout_plan: String,
    pub communication_plan: String,
    pub answers: Vec<(String, String)>,
}

impl Filled {
    fn answer(&self, key: &str) -> &str {
        self.answers
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// One question of the questionnaire, with the answer chosen so far.
pub struct Ask {
    pub key: String,
    pub text: String,
    pub options: Vec<String>,
    pub chosen: String,
}

/// A line of the preview, ready to show.
pub struct Shown {
    pub risk: String,
    pub approvers: Vec<(String, String, String)>,
    pub problems: Vec<String>,
    pub windows: Vec<(String, String, String)>,
    pub slot: Option<(String, Vec<String>)>,
    pub others: Vec<(String, String, String, String)>,
    pub earliest: String,
}

#[derive(Template)]
#[template(path = "raise.html")]
struct RaisePage {
    viewer: Option<Nav>,
    tenant: String,
    csrf: String,
    templates: Vec<String>,
    items: Vec<(String, bool)>,
    questions: Vec<Ask>,
    kinds: Vec<(String, bool)>,
    f: Filled,
    preview: Option<Shown>,
    problem: Option<String>,
}

#[derive(Deserialize)]
pub struct NewQuery {
    #[serde(default)]
    template: String,
}

/// The empty form, or filled from `?template=`.
pub async fn form(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    Query(q): Query<NewQuery>,
) -> PageResult<Response> {
    let t = in_tenant(&state, &viewer, &slug).await?;
    t.authorize(Action::RequestChange)?;
    let mut f = Filled {
        kind: "normal".into(),
        ..Filled::default()
    };
    if !q.template.is_empty() {
        let store = state.store.as_ref();
        let template = workflow::template(store, t.tenant.id, &q.template)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(&format!("template {:?} of {}", q.template, t.tenant.slug))
            })?;
        f.template = q.template;
        f.title = template.title;
        f.description = template.description;
        f.implementation_plan = template.implementation_plan;
        f.test_plan = template.test_plan;
        f.backout_plan = template.backout_plan;
        f.items = template.configuration_items;
    }
    page(&state, &viewer, &t, f, None, None).await
}

/// Preview, submit or save the form.
pub async fn raise(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    body: Bytes,
) -> PageResult<Response> {
    let fields = Fields::parse(&body);
    let one = |name: &str| fields.one(name);
    viewer.check_csrf(&one("csrf"))?;
    let t = in_tenant(&state, &viewer, &slug).await?;
    t.authorize(Action::RequestChange)?;
    let f = Filled {
        template: one("template"),
        kind: one("type"),
        title: one("title"),
        description: one("description"),
        justification: one("justification"),
        items: fields.all("ci"),
        artifacts: one("artifacts"),
        planned_start: one("planned_start"),
        planned_end: one("planned_end"),
        implementation_plan: one("implementation_plan"),
        test_plan: one("test_plan"),
        backout_plan: one("backout_plan"),
        communication_plan: one("communication_plan"),
        answers: fields.under("risk."),
    };
    let intent = one("intent");
    let (kind, content) = match read(&f) {
        Ok(read) => read,
        Err(e) => return page(&state, &viewer, &t, f, None, Some(e.message)).await,
    };
    let preview = preview::preview(&state, &t.tenant, kind, &content, t.caller.user, None).await?;
    let untitled = content.title.is_empty();
    let ready = match intent.as_str() {
        "draft" => !untitled,
        "submit" => !untitled && preview.problems.is_empty(),
        _ => false,
    };
    if ready {
        let change = state
            .store
            .create_change(
                NewChange {
                    tenant: t.tenant.id,
                    kind,
                    requester: t.caller.user,
                    implementer: None,
                    content,
                },
                &t.actor(),
                state.now(),
            )
            .await?;
        let number = change.number.to_string();
        if intent == "submit" {
            submit_change(&state, &t, &number).await.map_err(|e| {
                PageError(ApiError {
                    message: format!(
                        "{number} was saved as a draft but could not be submitted: {}",
                        e.message
                    ),
                    ..e
                })
            })?;
        }
        let to = format!("/t/{}/changes/{number}", t.tenant.slug);
        return Ok(Redirect::to(&to).into_response());
    }
    let problem = match intent.as_str() {
        "submit" | "draft" if untitled => Some("give the change a title".to_string()),
        "submit" => Some("the change cannot be submitted yet: see what the preview says".into()),
        _ => None,
    };
    page(&state, &viewer, &t, f, Some(preview), problem).await
}

/// The change the form describes, or which field is wrong.
fn read(f: &Filled) -> Result<(ChangeType, ChangeContent), ApiError> {
    let kind: ChangeType = f
        .kind
        .parse()
        .map_err(|e: changegate_core::ids::InvalidValue| ApiError::invalid("type", e.message))?;
    let content = ChangeContent {
        title: f.title.trim().to_string(),
        description: f.description.clone(),
        justification: f.justification.clone(),
        configuration_items: f.items.clone(),
        artifacts: f
            .artifacts
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        planned_start: instant("planned start", &f.planned_start)?,
        planned_end: instant("planned end", &f.planned_end)?,
        implementation_plan: f.implementation_plan.clone(),
        test_plan: f.test_plan.clone(),
        backout_plan: f.backout_plan.clone(),
        communication_plan: f.communication_plan.clone(),
        risk_answers: f.answers.iter().cloned().collect(),
        template: (!f.template.is_empty()).then(|| f.template.clone()),
        ..ChangeContent::default()
    };
    crate::api::changes::check_planned(&content)?;
    Ok((kind, content))
}

/// A `datetime-local` value, read as UTC (the form says so).
fn instant(field: &str, value: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S"))
        .map(|t| Some(t.and_utc()))
        .map_err(|_| {
            ApiError::invalid(
                field,
                format!("write the {field} as YYYY-MM-DD HH:MM (UTC), e.g. 2026-12-05T02:00"),
            )
        })
}

async fn page(
    state: &AppState,
    viewer: &Viewer,
    t: &InTenant,
    f: Filled,
    preview: Option<Preview>,
    problem: Option<String>,
) -> PageResult<Response> {
    let store = state.store.as_ref();
    let (_, policy) = workflow::policy(store, t.tenant.id).await?;
    let templates = store
        .objects(t.tenant.id, ObjectKind::Template)
        .await?
        .into_iter()
        .map(|o| o.name)
        .collect();
    let mut items: Vec<(String, bool)> = workflow::configuration_items(store, t.tenant.id)
        .await?
        .into_iter()
        .map(|(name, _)| {
            let on = f.items.contains(&name);
            (name, on)
        })
        .collect();
    // An item named by a template but not (or no longer) in the catalogue
    // stays visible, so the requester sees what the template asked for.
    for name in &f.items {
        if !items.iter().any(|(n, _)| n == name) {
            items.push((name.clone(), true));
        }
    }
    let questions = policy
        .questionnaire
        .questions
        .iter()
        .map(|q: &Question| Ask {
            key: q.key.clone(),
            text: q.text.clone(),
            options: q.options.iter().map(|o| o.value.clone()).collect(),
            chosen: f.answer(&q.key).to_string(),
        })
        .collect();
    let kinds = ["normal", "standard", "emergency"]
        .iter()
        .map(|k| (k.to_string(), f.kind == *k))
        .collect();
    let page = RaisePage {
        viewer: Some(nav(state, viewer).await?),
        tenant: t.tenant.slug.to_string(),
        csrf: viewer.csrf.clone(),
        templates,
        items,
        questions,
        kinds,
        f,
        preview: preview.map(shown),
        problem,
    };
    Ok(render(&page))
}

fn shown(p: Preview) -> Shown {
    Shown {
        risk: p
            .risk
            .map(|r| format!("{} (score {})", r.level, r.score))
            .unwrap_or_else(|| "not assessed yet".into()),
        approvers: p
            .approvers
            .into_iter()
            .map(|b| (b.board, b.rule, b.people.join(", ")))
            .collect(),
        problems: p.problems,
        windows: p
            .windows
            .into_iter()
            .map(|w| {
                let next = match (w.start, w.end) {
                    (Some(s), Some(e)) => format!("{} to {}", when(Some(s)), when(Some(e))),
                    _ => "does not open again".into(),
                };
                (w.name, w.kind, next)
            })
            .collect(),
        slot: p.slot.map(|s| {
            (
                format!("{} to {}", when(Some(s.start)), when(Some(s.end))),
                s.problems,
            )
        }),
        others: p
            .others
            .into_iter()
            .map(|o| {
                (
                    o.number,
                    o.state,
                    format!("{} to {}", when(Some(o.start)), when(Some(o.end))),
                    o.configuration_items.join(", "),
                )
            })
            .collect(),
        earliest: p
            .earliest
            .map(|t| when(Some(t)))
            .unwrap_or_else(|| "no slot within the next 400 days".into()),
    }
}
