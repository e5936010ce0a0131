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
use changegate_core::change::ChangeState;
use changegate_core::change::ChangeType;
use changegate_core::risk::Question;
use changegate_store::{Change, ChangeContent, NewChange, ObjectKind};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

use super::pages::{Nav, in_tenant, nav, render, when};
use super::{Fields, PageError, PageResult, Viewer};
use crate::AppState;
use crate::app::submit::{is_material, may_edit, submit as submit_change};
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
    pub test_evidence: String,
    pub backout_plan: String,
    pub communication_plan: String,
    pub answers: Vec<(String, String)>,
    /// The authorized proposal it is raised under (`PRP-<n>`), if any.
    pub proposal: String,
}

impl Filled {
    /// The form as a stored change fills it.
    fn of(c: &Change) -> Self {
        let content = &c.content;
        let local = |t: Option<DateTime<Utc>>| {
            t.map(|t| t.format("%Y-%m-%dT%H:%M").to_string())
                .unwrap_or_default()
        };
        Filled {
            template: content.template.clone().unwrap_or_default(),
            kind: c.kind.as_str().to_string(),
            title: content.title.clone(),
            description: content.description.clone(),
            justification: content.justification.clone(),
            items: content.configuration_items.clone(),
            artifacts: content.artifacts.join("\n"),
            planned_start: local(content.planned_start),
            planned_end: local(content.planned_end),
            implementation_plan: content.implementation_plan.clone(),
            test_plan: content.test_plan.clone(),
            test_evidence: content.test_evidence.clone(),
            backout_plan: content.backout_plan.clone(),
            communication_plan: content.communication_plan.clone(),
            proposal: content.proposal.clone().unwrap_or_default(),
            answers: content
                .risk_answers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// The form as posted.
    fn posted(fields: &Fields) -> Self {
        let one = |name: &str| fields.one(name);
        Filled {
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
            test_evidence: one("test_evidence"),
            backout_plan: one("backout_plan"),
            communication_plan: one("communication_plan"),
            answers: fields.under("risk."),
            proposal: one("proposal"),
        }
    }

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
    /// The approvers cannot be known yet: the risk is not assessed.
    pub approvers_unknown: bool,
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
    editing: Option<Editing>,
    /// Authorized proposals it may be raised under: (PRP-n, title, chosen).
    proposals: Vec<(String, String, bool)>,
}

#[derive(Deserialize)]
pub struct NewQuery {
    #[serde(default)]
    template: String,
    /// The authorized proposal it is raised under (its page's link).
    #[serde(default)]
    proposal: String,
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
        proposal: q.proposal,
        ..Filled::default()
    };
    if !q.template.is_empty() {
        let store = state.store.as_ref();
        let template = workflow::template(store, t.tenant.id, &q.template)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(&format!("template {:?} of {}", q.template, t.tenant.slug))
            })?;
        // A template is a standard change's pre-approved model.
        f.kind = "standard".into();
        f.template = q.template;
        f.title = template.title;
        f.description = template.description;
        f.implementation_plan = template.implementation_plan;
        f.test_plan = template.test_plan;
        f.backout_plan = template.backout_plan;
        f.items = template.configuration_items;
    }
    page(&state, &viewer, &t, f, None, None, None).await
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
    let f = Filled::posted(&fields);
    let intent = one("intent");
    let (kind, content) = match read(&f) {
        Ok(read) => read,
        Err(e) => return page(&state, &viewer, &t, f, None, Some(e.message), None).await,
    };
    let preview = preview::preview(&state, &t.tenant, kind, &content, t.caller.user, None).await?;
    let untitled = content.title.is_empty();
    let ready = match intent.as_str() {
        "draft" => !untitled,
        "submit" => !untitled && preview.problems.is_empty(),
        _ => false,
    };
    if ready
        && let Err(e) =
            crate::app::proposal::check_link(state.store.as_ref(), t.tenant.id, &content).await
    {
        return page(&state, &viewer, &t, f, Some(preview), Some(e.message), None).await;
    }
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
    page(&state, &viewer, &t, f, Some(preview), problem, None).await
}

/// Editing an existing change: what the form says about it.
pub struct Editing {
    pub number: String,
    pub state_words: String,
    /// A draft or a rejected change: saving may also submit it.
    pub may_submit: bool,
    /// What saving does to its approval, when it matters.
    pub notice: Option<String>,
}

impl Editing {
    async fn of(
        state: &AppState,
        t: &InTenant,
        c: &Change,
        new: Option<&ChangeContent>,
    ) -> PageResult<Self> {
        let may_submit = matches!(c.state, ChangeState::Draft | ChangeState::Rejected);
        let notice = match new {
            Some(new) if is_material(c, new) => {
                let given = state
                    .store
                    .approvals(t.tenant.id, c.number)
                    .await?
                    .iter()
                    .filter(|a| a.revision == c.revision)
                    .count();
                Some(format!(
                    "Saving this edit starts approval over: it becomes revision {}, judged afresh, and {} given to revision {} no longer count.",
                    c.revision + 1,
                    match given {
                        0 => "no decision".to_string(),
                        1 => "the 1 decision".to_string(),
                        n => format!("the {n} decisions"),
                    },
                    c.revision
                ))
            }
            Some(_) if c.fingerprint.is_some() && !may_submit => Some(
                "Saving this edit keeps the approval: nothing the approvers signed changes.".into(),
            ),
            _ => None,
        };
        Ok(Editing {
            number: c.number.to_string(),
            state_words: super::words::state(c.state, None).0,
            may_submit,
            notice,
        })
    }
}

/// The form filled with change `number`, to edit it.
pub async fn edit_form(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(p): Path<super::pages::ChangePath>,
) -> PageResult<Response> {
    let t = in_tenant(&state, &viewer, &p.tenant).await?;
    t.authorize(Action::RequestChange)?;
    let c = crate::api::changes::load(state.store.as_ref(), t.tenant.id, &p.number).await?;
    may_edit(&t, &c)?;
    let editing = Editing::of(&state, &t, &c, None).await?;
    page(
        &state,
        &viewer,
        &t,
        Filled::of(&c),
        None,
        None,
        Some(editing),
    )
    .await
}

/// Preview or save an edit (and submit a draft or a rejected change),
/// through the API's own handlers; on a refusal the form comes back as
/// it was posted, with the reason, and nothing is written.
pub async fn edit(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(p): Path<super::pages::ChangePath>,
    body: Bytes,
) -> PageResult<Response> {
    let fields = Fields::parse(&body);
    viewer.check_csrf(&fields.one("csrf"))?;
    let t = in_tenant(&state, &viewer, &p.tenant).await?;
    t.authorize(Action::RequestChange)?;
    let c = crate::api::changes::load(state.store.as_ref(), t.tenant.id, &p.number).await?;
    may_edit(&t, &c)?;
    let mut f = Filled::posted(&fields);
    // The type and template are the change's own, whatever was posted.
    f.kind = c.kind.as_str().to_string();
    f.template = c.content.template.clone().unwrap_or_default();
    let intent = fields.one("intent");
    let content = match read(&f) {
        Ok((_, content)) => ChangeContent {
            // What the form does not show stays as it was.
            impact: c.content.impact.clone(),
            automatic_rollback: c.content.automatic_rollback,
            attachments: c.content.attachments.clone(),
            ..content
        },
        Err(e) => {
            let editing = Editing::of(&state, &t, &c, None).await?;
            return page(&state, &viewer, &t, f, None, Some(e.message), Some(editing)).await;
        }
    };
    if matches!(intent.as_str(), "save" | "submit") {
        match save_edit(&state, &t, &p.number, &content, intent == "submit").await {
            Ok(number) => {
                let to = format!("/t/{}/changes/{number}", t.tenant.slug);
                return Ok(Redirect::to(&to).into_response());
            }
            Err(e) => {
                let editing = Editing::of(&state, &t, &c, Some(&content)).await?;
                return page(&state, &viewer, &t, f, None, Some(e.message), Some(editing)).await;
            }
        }
    }
    let preview = preview::preview(
        &state,
        &t.tenant,
        c.kind,
        &content,
        c.requester,
        c.implementer,
    )
    .await?;
    let editing = Editing::of(&state, &t, &c, Some(&content)).await?;
    page(&state, &viewer, &t, f, Some(preview), None, Some(editing)).await
}

/// The edit through `PATCH …/changes/{number}` (and `…/submit`): the
/// fields the form shows, the others kept.
async fn save_edit(
    state: &AppState,
    t: &InTenant,
    number: &str,
    content: &ChangeContent,
    submit: bool,
) -> Result<String, ApiError> {
    const SHOWN: [&str; 14] = [
        "proposal",
        "title",
        "description",
        "justification",
        "configuration_items",
        "artifacts",
        "planned_start",
        "planned_end",
        "implementation_plan",
        "test_plan",
        "test_evidence",
        "backout_plan",
        "communication_plan",
        "risk_answers",
    ];
    let serde_json::Value::Object(all) =
        serde_json::to_value(content).map_err(|_| ApiError::internal())?
    else {
        return Err(ApiError::internal());
    };
    let fields = all
        .into_iter()
        .filter(|(k, _)| SHOWN.contains(&k.as_str()))
        .collect();
    let path = |number: &str| {
        Path(crate::api::ChangePath {
            tenant: t.tenant.slug.to_string(),
            number: number.to_string(),
        })
    };
    let axum::Json(saved) = crate::api::changes::edit(
        State(state.clone()),
        t.clone(),
        path(number),
        crate::api::Body(crate::dto::EditChangeBody { fields }),
    )
    .await?;
    if submit {
        let _submitted =
            crate::api::lifecycle::submit(State(state.clone()), t.clone(), path(number))
                .await
                .map_err(|e| ApiError {
                    message: format!(
                        "{number} was saved but could not be submitted: {}",
                        e.message
                    ),
                    ..e
                })?;
    }
    Ok(saved.number)
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
        test_evidence: f.test_evidence.clone(),
        backout_plan: f.backout_plan.clone(),
        communication_plan: f.communication_plan.clone(),
        risk_answers: f.answers.iter().cloned().collect(),
        template: (!f.template.is_empty()).then(|| f.template.clone()),
        proposal: (!f.proposal.is_empty()).then(|| f.proposal.clone()),
        ..ChangeContent::default()
    };
    crate::api::changes::check_planned(&content)?;
    Ok((kind, content))
}

/// A `datetime-local` value, read as UTC (the form says so).
pub(crate) fn instant(field: &str, value: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
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
    editing: Option<Editing>,
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
    let mut proposals = Vec::new();
    for l in crate::app::proposal::load_all(store, t.tenant.id).await? {
        let label = l.label();
        if l.standing == changegate_core::proposal::Standing::Authorized || f.proposal == label {
            let chosen = f.proposal == label;
            proposals.push((label, l.proposal.title, chosen));
        }
    }
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
        editing,
        proposals,
    };
    Ok(render(&page))
}

fn shown(p: Preview) -> Shown {
    Shown {
        approvers_unknown: p.risk.is_none() && p.approvers.is_empty(),
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
