//! Administration in the portal. Per tenant (`/t/{tenant}/settings`):
//! blackout dates (change managers and the client's own admins), people
//! and their roles (tenant admins), and the policy, boards, windows,
//! templates and configuration items as written (change managers). For
//! anyone signed in, their own API tokens (`/tokens`); for installation
//! admins, the tenants (`/admin/tenants`).
//!
//! Every form goes through the API's own handler, so validation,
//! authorization and the audit chain are the API's; a refusal shows the
//! page again with the API's message.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use changegate_core::Role;
use changegate_core::authz::Action;
use changegate_core::window::{Schedule, WindowKind, WindowSpec};
use changegate_store::ObjectKind;
use chrono::{NaiveDateTime, TimeZone};
use serde::Deserialize;
use serde_json::json;

use super::pages::{Nav, in_tenant, nav, render, tenant_form, when};
use super::{Fields, PageResult, Viewer};
use crate::AppState;
use crate::api::{self, Body, NamePath};
use crate::auth::Caller;
use crate::dto::{AddUserBody, NewTenantBody, NewTokenBody};
use crate::error::{ApiError, ApiResult};
use crate::tenant::InTenant;

/// A blackout as the page lists it.
pub struct Blackout {
    pub name: String,
    pub when: String,
}

/// A stored object as written.
pub struct Written {
    pub kind: String,
    pub name: String,
    pub spec: String,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    viewer: Option<Nav>,
    tenant: String,
    time_zone: String,
    csrf: String,
    problem: Option<String>,
    notice: Option<String>,
    blackouts: Vec<Blackout>,
    /// Every window and blackout: (name, kind, its schedule in words).
    windows: Vec<(String, String, String)>,
    /// Every board in words, and the board form (filled to edit one).
    boards: Vec<BoardRow>,
    board: BoardFill,
    /// The tenant's configuration items in words: (name, what).
    items: Vec<(String, String)>,
    /// The risk questionnaire in words, and its form.
    questionnaire_said: Vec<String>,
    questionnaire: super::questionnaire::QuestionnaireFill,
    /// Every template in words: (name, what it pre-approves), and the
    /// template form with the items it may tick, (name, ticked), and the
    /// people who may have approved it, (address, label, chosen).
    templates: Vec<(String, String)>,
    template: super::templates::TemplateFill,
    template_items: Vec<(String, bool)>,
    template_people: Vec<(String, String, bool)>,
    /// Routing in words, and the routing form: per risk level of normal
    /// changes, (level, [(board, ticked)]); for emergency changes, the boards.
    routing_said: Vec<String>,
    routes: Vec<(String, Vec<(String, bool)>)>,
    emergency: Vec<(String, bool)>,
    people: Vec<(String, String, String)>,
    /// Kubernetes user names mapped to the tenant's people: (cluster,
    /// user name, e-mail).
    identities: Vec<(String, String, String)>,
    roles: Vec<String>,
    objects: Vec<Written>,
    can_blackout: bool,
    can_people: bool,
    can_policy: bool,
}

/// A board as the page says it.
pub struct BoardRow {
    pub name: String,
    pub said: String,
}

/// The board form's values: empty for a new board, a board's to edit it.
#[derive(Default)]
pub struct BoardFill {
    pub name: String,
    pub description: String,
    /// (value, label, ticked): people by address, then roles as `role:<role>`.
    pub members: Vec<(String, String, bool)>,
    pub rule: String,
    pub quorum: String,
    /// (address, label, chosen) of the people who may chair.
    pub chair: Vec<(String, String, bool)>,
    /// (address, label, ticked): whose approval is required.
    pub mandatory: Vec<(String, String, bool)>,
}

/// What `settings` shows after a form: the outcome, or the refusal.
pub(crate) enum After {
    Nothing,
    Saved(String),
    Refused(ApiError),
}

#[derive(Deserialize, Default)]
pub struct SettingsQuery {
    /// A board to edit in the board form.
    #[serde(default)]
    board: String,
    /// A template to edit in the template form.
    #[serde(default)]
    template: String,
}

/// What the page's forms are filled with besides what is stored: the
/// board or template chosen to edit, or a refused form as it was typed.
#[derive(Default)]
pub(crate) struct Prefill {
    pub board: String,
    pub template: String,
    pub questionnaire: Option<super::questionnaire::QuestionnaireFill>,
    pub typed_template: Option<super::templates::TemplateFill>,
}

pub async fn settings(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    axum::extract::Query(q): axum::extract::Query<SettingsQuery>,
) -> PageResult<Response> {
    let t = in_tenant(&state, &viewer, &slug).await?;
    t.authorize(Action::Read)?;
    let prefill = Prefill {
        board: q.board,
        template: q.template,
        ..Prefill::default()
    };
    page_with(&state, &viewer, &t, After::Nothing, prefill).await
}

async fn page(
    state: &AppState,
    viewer: &Viewer,
    t: &InTenant,
    after: After,
) -> PageResult<Response> {
    page_with(state, viewer, t, after, Prefill::default()).await
}

pub(crate) async fn page_with(
    state: &AppState,
    viewer: &Viewer,
    t: &InTenant,
    after: After,
    prefill: Prefill,
) -> PageResult<Response> {
    let editing_board = prefill.board.as_str();
    let store = state.store.as_ref();
    let mut blackouts = Vec::new();
    let mut objects = Vec::new();
    let mut windows = Vec::new();
    for o in store.objects(t.tenant.id, ObjectKind::Window).await? {
        if let Ok(spec) = serde_json::from_str::<WindowSpec>(&o.spec) {
            windows.push((
                o.name.clone(),
                match spec.kind {
                    WindowKind::Blackout => "blackout",
                    _ => "maintenance window",
                }
                .to_string(),
                changegate_core::window::describe(&spec),
            ));
        }
        if let Ok(spec) = serde_json::from_str::<WindowSpec>(&o.spec)
            && spec.kind == WindowKind::Blackout
        {
            let when = match &spec.schedule {
                Schedule::Ranges(ranges) => ranges
                    .iter()
                    .map(|r| format!("{} to {}", when(Some(r.start)), when(Some(r.end))))
                    .collect::<Vec<_>>()
                    .join("; "),
                _ => "recurring (see the window below)".into(),
            };
            blackouts.push(Blackout {
                name: o.name.clone(),
                when,
            });
        }
        objects.push(written("window", o.name, &o.spec));
    }
    let (version, policy) = crate::workflow::policy(store, t.tenant.id).await?;
    objects.insert(
        0,
        written(
            "policy",
            format!("version {version}"),
            &serde_json::to_string(&policy).map_err(|_| ApiError::internal())?,
        ),
    );
    for (kind, label) in [
        (ObjectKind::Board, "board"),
        (ObjectKind::Template, "template"),
        (ObjectKind::ConfigurationItem, "configuration-item"),
    ] {
        for o in store.objects(t.tenant.id, kind).await? {
            objects.push(written(label, o.name, &o.spec));
        }
    }
    let users = store.users_in_tenant(t.tenant.id).await?;
    let label = |email: &str| -> String {
        users
            .iter()
            .find(|(u, _)| u.email.as_str() == email)
            .map_or_else(
                || email.to_string(),
                |(u, _)| {
                    if u.name.trim().is_empty() {
                        email.to_string()
                    } else {
                        format!("{} ({email})", u.name)
                    }
                },
            )
    };
    let specs = crate::workflow::boards(store, t.tenant.id).await?;
    let boards = specs
        .iter()
        .map(|b| BoardRow {
            name: b.name.clone(),
            said: board_words(b, &label),
        })
        .collect();
    let editing = specs.iter().find(|b| b.name == editing_board);
    let member_values: Vec<String> = editing
        .map(|b| b.members.iter().map(|m| m.to_string()).collect())
        .unwrap_or_default();
    let mut members: Vec<(String, String, bool)> = users
        .iter()
        .map(|(u, _)| {
            let email = u.email.to_string();
            let on = member_values.contains(&email);
            (email.clone(), label(&email), on)
        })
        .collect();
    for role in Role::ALL {
        let value = format!("role:{}", role.as_str());
        let on = member_values.contains(&value);
        members.push((value, format!("everyone who is {} here", role.as_str()), on));
    }
    let person_choice = |chosen: &dyn Fn(&str) -> bool| -> Vec<(String, String, bool)> {
        users
            .iter()
            .map(|(u, _)| {
                let email = u.email.to_string();
                let on = chosen(&email);
                (email.clone(), label(&email), on)
            })
            .collect()
    };
    let board = BoardFill {
        name: editing.map(|b| b.name.clone()).unwrap_or_default(),
        description: editing.map(|b| b.description.clone()).unwrap_or_default(),
        members,
        rule: editing.map_or("any".to_string(), |b| match b.rule {
            changegate_core::board::Rule::Quorum(_) => "quorum".to_string(),
            r => r.to_string(),
        }),
        quorum: editing
            .and_then(|b| match b.rule {
                changegate_core::board::Rule::Quorum(n) => Some(n.to_string()),
                _ => None,
            })
            .unwrap_or_default(),
        chair: person_choice(&|e| {
            editing
                .and_then(|b| b.chair.as_ref())
                .is_some_and(|c| c.as_str() == e)
        }),
        mandatory: person_choice(&|e| {
            editing.is_some_and(|b| b.mandatory.iter().any(|m| m.as_str() == e))
        }),
    };
    let (_, current) = crate::workflow::policy(store, t.tenant.id).await?;
    let routing_said = routing_words(&current.routing);
    let names: Vec<String> = specs.iter().map(|b| b.name.clone()).collect();
    let routes = changegate_core::change::RiskLevel::ALL
        .iter()
        .map(|level| {
            let at = current.routing.normal.iter().find(|r| r.from == *level);
            (
                level.as_str().to_string(),
                names
                    .iter()
                    .map(|n| (n.clone(), at.is_some_and(|r| r.boards.contains(n))))
                    .collect(),
            )
        })
        .collect();
    let emergency = names
        .iter()
        .map(|n| (n.clone(), current.routing.emergency.contains(n)))
        .collect();
    let questionnaire_said = super::questionnaire::words(&current.questionnaire);
    let questionnaire = prefill
        .questionnaire
        .unwrap_or_else(|| super::questionnaire::QuestionnaireFill::of(&current.questionnaire));
    let today = state.now().date_naive();
    let mut templates = Vec::new();
    let mut template = prefill.typed_template;
    for o in store.objects(t.tenant.id, ObjectKind::Template).await? {
        let Ok(spec) = serde_json::from_str::<changegate_core::catalogue::Template>(&o.spec) else {
            continue;
        };
        if template.is_none() && o.name == prefill.template {
            template = Some(super::templates::TemplateFill::of(&o.name, &spec));
        }
        templates.push((o.name, super::templates::words(&spec, &label, today)));
    }
    let template = template.unwrap_or_default();
    let all_items = crate::workflow::configuration_items(store, t.tenant.id).await?;
    // The tenant's items, and any the template names that are not (yet)
    // among them, so that saving an edit keeps them.
    let mut template_items: Vec<(String, bool)> = all_items
        .iter()
        .map(|(name, _)| (name.clone(), template.items.contains(name)))
        .collect();
    for name in &template.items {
        if !template_items.iter().any(|(n, _)| n == name) {
            template_items.push((name.clone(), true));
        }
    }
    let mut template_people: Vec<(String, String, bool)> = users
        .iter()
        .map(|(u, _)| {
            let email = u.email.to_string();
            let on = template.approved_by.trim() == email;
            (email.clone(), label(&email), on)
        })
        .collect();
    // Whoever approved it stays chosen even when no longer a person here,
    // so that saving an edit does not rewrite who approved it.
    let approver = template.approved_by.trim();
    if !approver.is_empty() && !template_people.iter().any(|(e, _, _)| e == approver) {
        template_people.insert(
            0,
            (
                approver.to_string(),
                format!("{approver} (no longer a person here)"),
                true,
            ),
        );
    }
    let items = all_items
        .into_iter()
        .map(|(name, ci)| {
            let mut what = format!(
                "{}, {} criticality",
                ci.kind,
                serde_json::to_value(ci.criticality)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            );
            if !ci.environment.is_empty() {
                what.push_str(&format!(", {}", ci.environment));
            }
            if let Some(owner) = &ci.owner {
                what.push_str(&format!(", owned by {}", label(owner.as_str())));
            }
            (name, what)
        })
        .collect();
    let people = users
        .iter()
        .map(|(u, roles)| {
            let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            (u.name.clone(), u.email.to_string(), roles.join(", "))
        })
        .collect();
    let mut identities: Vec<(String, String, String)> = store
        .objects(t.tenant.id, ObjectKind::ClusterIdentity)
        .await?
        .into_iter()
        .filter_map(|o| {
            let (cluster, user) = o.name.split_once('/')?;
            let identity: crate::app::resource::Identity = serde_json::from_str(&o.spec).ok()?;
            Some((cluster.to_string(), user.to_string(), identity.email))
        })
        .collect();
    identities.sort();
    let (status, problem, notice) = match after {
        After::Nothing => (StatusCode::OK, None, None),
        After::Saved(what) => (StatusCode::OK, None, Some(what)),
        After::Refused(e) => (e.status, Some(e.message), None),
    };
    let page = SettingsPage {
        viewer: Some(nav(state, viewer).await?),
        questionnaire_said,
        questionnaire,
        templates,
        template,
        template_items,
        template_people,
        windows,
        boards,
        board,
        items,
        routing_said,
        routes,
        emergency,
        tenant: t.tenant.slug.to_string(),
        time_zone: t.tenant.time_zone.clone(),
        csrf: viewer.csrf.clone(),
        problem,
        notice,
        blackouts,
        people,
        identities,
        roles: Role::ALL.iter().map(|r| r.as_str().to_string()).collect(),
        objects,
        can_blackout: t.authorize(Action::ManageBlackouts).is_ok(),
        can_people: t.authorize(Action::AdministerTenant).is_ok(),
        can_policy: t.authorize(Action::ManagePolicy).is_ok(),
    };
    let mut response = render(&page);
    *response.status_mut() = status;
    Ok(response)
}

fn written(kind: &str, name: String, spec: &str) -> Written {
    let spec = serde_json::from_str::<serde_json::Value>(spec)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| spec.to_string());
    Written {
        kind: kind.into(),
        name,
        spec,
    }
}

/// The outcome of a form: back to the page with a notice, or the page
/// again with the refusal.
async fn answered(
    state: &AppState,
    viewer: &Viewer,
    slug: &str,
    outcome: ApiResult<String>,
) -> PageResult<Response> {
    let t = in_tenant(state, viewer, slug).await?;
    match outcome {
        Ok(notice) => page(state, viewer, &t, After::Saved(notice)).await,
        Err(e) => page(state, viewer, &t, After::Refused(e)).await,
    }
}

/// The outcome of a form whose refusal shows it again as it was typed
/// (`typed`): back to the page with a notice, or the page with the
/// refusal and the form as typed.
pub(crate) async fn answered_as_typed(
    state: &AppState,
    viewer: &Viewer,
    t: &InTenant,
    outcome: ApiResult<String>,
    typed: Prefill,
) -> PageResult<Response> {
    match outcome {
        Ok(notice) => page_with(state, viewer, t, After::Saved(notice), Prefill::default()).await,
        Err(e) => page_with(state, viewer, t, After::Refused(e), typed).await,
    }
}

/// The stored spec of the tenant's object `name` of `kind`, if there is one.
async fn stored_spec(
    state: &AppState,
    t: &InTenant,
    kind: ObjectKind,
    name: &str,
) -> ApiResult<Option<serde_json::Value>> {
    Ok(state
        .store
        .objects(t.tenant.id, kind)
        .await?
        .into_iter()
        .find(|o| o.name == name)
        .and_then(|o| serde_json::from_str(&o.spec).ok()))
}

fn name_path(slug: &str, name: &str) -> Path<NamePath> {
    Path(NamePath {
        tenant: slug.to_string(),
        name: name.trim().to_string(),
    })
}

// ---- blackout dates ---------------------------------------------------------

/// Every field defaults: a form missing one is refused by the handler,
/// after authorization, with a message.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct BlackoutForm {
    csrf: String,
    name: String,
    from: String,
    until: String,
}

/// Add a blackout: from and until in the tenant's time zone.
pub async fn add_blackout(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    Form(form): Form<BlackoutForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let t = in_tenant(&state, &viewer, &slug).await?;
    t.authorize(Action::ManageBlackouts)?;
    let outcome = async {
        let zone: chrono_tz::Tz = t.tenant.time_zone.parse().unwrap_or(chrono_tz::UTC);
        let at = |field: &str, value: &str| -> ApiResult<chrono::DateTime<chrono::Utc>> {
            let local =
                NaiveDateTime::parse_from_str(value.trim(), "%Y-%m-%dT%H:%M").map_err(|_| {
                    ApiError::invalid(
                        field,
                        format!("give the {field} as a date and time, e.g. 2026-12-24T00:00"),
                    )
                })?;
            zone.from_local_datetime(&local)
                .earliest()
                .map(|t| t.to_utc())
                .ok_or_else(|| {
                    ApiError::invalid(field, format!("{value} does not exist in {zone}"))
                })
        };
        let (from, until) = (at("from", &form.from)?, at("until", &form.until)?);
        if until <= from {
            return Err(ApiError::invalid(
                "until",
                "the blackout must end after it begins",
            ));
        }
        // A window of that name keeps what the form does not set (types
        // it allows, exclusions).
        let mut body = stored_spec(&state, &t, ObjectKind::Window, form.name.trim())
            .await?
            .unwrap_or_else(|| json!({}));
        body["kind"] = json!("blackout");
        body["timeZone"] = json!(t.tenant.time_zone);
        body["schedule"] = json!({ "ranges": [{ "start": from, "end": until }] });
        let saved = api::policy::put_window(
            State(state.clone()),
            t,
            name_path(&slug, &form.name),
            Body(body),
        )
        .await?;
        Ok(format!(
            "Blackout {} {}.",
            form.name.trim(),
            match saved.0.applied.as_str() {
                "unchanged" => "unchanged",
                _ => "saved",
            }
        ))
    }
    .await;
    answered(&state, &viewer, &slug, outcome).await
}

/// The schedule builder: a window or blackout that repeats weekly (on
/// the days ticked) or monthly (the first…last given weekday), from a
/// local start time for some hours, in a time zone.
pub async fn add_window(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    body: axum::body::Bytes,
) -> PageResult<Response> {
    let (fields, t) = tenant_form(&state, &viewer, &slug, &body, Action::ManageBlackouts).await?;
    let name = fields.one("name");
    let outcome = async {
        let start = fields.one("start");
        let (hour, minute) = start
            .trim()
            .split_once(':')
            .and_then(|(h, m)| Some((h.parse::<u32>().ok()?, m.parse::<u32>().ok()?)))
            .ok_or_else(|| ApiError::invalid("start", "write the start as HH:MM, e.g. 02:00"))?;
        let hours: f64 = fields
            .one("hours")
            .trim()
            .parse()
            .ok()
            .filter(|h: &f64| *h > 0.0 && *h <= 24.0 * 14.0)
            .ok_or_else(|| {
                ApiError::invalid("hours", "say for how many hours it stays open, e.g. 4")
            })?;
        let rule = match fields.one("repeats").as_str() {
            "monthly" => changegate_core::window::monthly_rule(
                &fields.one("ordinal"),
                &fields.one("weekday"),
                hour,
                minute,
            ),
            _ => changegate_core::window::weekly_rule(&fields.all("day"), hour, minute),
        }
        .map_err(|m| ApiError::invalid("schedule", m))?;
        let kind = if fields.one("kind") == "blackout" {
            "blackout"
        } else {
            "maintenance"
        };
        let zone = match fields.one("time_zone").trim() {
            "" => t.tenant.time_zone.clone(),
            z => z.to_string(),
        };
        let minutes = (hours * 60.0).round() as i64;
        // A window of that name keeps what the form does not set (types
        // it allows, exclusions).
        let mut body = stored_spec(&state, &t, ObjectKind::Window, name.trim())
            .await?
            .unwrap_or_else(|| json!({}));
        body["kind"] = json!(kind);
        body["timeZone"] = json!(zone);
        body["schedule"] = json!({ "rrule": { "rule": rule, "duration": format!("{minutes}m") } });
        let spec: WindowSpec = serde_json::from_value(body.clone())
            .map_err(|e| ApiError::invalid("schedule", e.to_string()))?;
        let saved =
            api::policy::put_window(State(state.clone()), t, name_path(&slug, &name), Body(body))
                .await?;
        Ok(format!(
            "{} {}: {}.",
            name.trim(),
            match saved.0.applied.as_str() {
                "unchanged" => "unchanged",
                _ => "saved",
            },
            changegate_core::window::describe(&spec)
        ))
    }
    .await;
    answered(&state, &viewer, &slug, outcome).await
}

/// A board in words: who, by which rule, chair and required approvers.
fn board_words(b: &changegate_core::board::BoardSpec, label: &dyn Fn(&str) -> String) -> String {
    let members: Vec<String> = b
        .members
        .iter()
        .map(|m| {
            let m = m.to_string();
            match m.strip_prefix("role:") {
                Some(role) => format!("everyone who is {role}"),
                None => label(&m),
            }
        })
        .collect();
    let rule = match b.rule {
        changegate_core::board::Rule::All => "every member approves".to_string(),
        changegate_core::board::Rule::Any => "one member's approval is enough".to_string(),
        changegate_core::board::Rule::Majority => "a majority of its members approves".to_string(),
        changegate_core::board::Rule::Quorum(n) => format!("{n} of its members approve"),
    };
    let mut said = format!("{}; {rule}", members.join(", "));
    if let Some(chair) = &b.chair {
        said.push_str(&format!("; chaired by {}", label(chair.as_str())));
    }
    if !b.mandatory.is_empty() {
        let who: Vec<String> = b.mandatory.iter().map(|m| label(m.as_str())).collect();
        said.push_str(&format!("; {} must approve", who.join(" and ")));
    }
    said
}

/// A board from its form, through `PUT …/boards/{name}`.
pub async fn put_board_form(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    body: axum::body::Bytes,
) -> PageResult<Response> {
    let (fields, t) = tenant_form(&state, &viewer, &slug, &body, Action::ManagePolicy).await?;
    let name = fields.one("name");
    let outcome = async {
        let rule = match fields.one("rule").as_str() {
            "quorum" => format!("quorum {}", fields.one("quorum").trim()),
            other => other.to_string(),
        };
        let chair = fields.one("chair");
        let body = json!({
            "description": fields.one("description"),
            "members": fields.all("member"),
            "rule": rule,
            "mandatory": fields.all("mandatory"),
            "chair": (!chair.is_empty()).then_some(chair),
        });
        api::policy::put_board(State(state.clone()), t, name_path(&slug, &name), Body(body))
            .await
            .map(|r| saved("Board", name.trim(), r.0.applied))
    }
    .await;
    answered(&state, &viewer, &slug, outcome).await
}

/// Routing in words, one sentence per type.
fn routing_words(r: &changegate_core::routing::Routing) -> Vec<String> {
    let boards = |b: &[String]| {
        if b.is_empty() {
            "no board (approved when submitted)".to_string()
        } else {
            b.join(" and ")
        }
    };
    let mut said = Vec::new();
    let mut normal: Vec<_> = r.normal.iter().collect();
    normal.sort_by_key(|x| x.from);
    if normal.is_empty() {
        said.push("Normal changes: no board (approved when submitted).".to_string());
    } else {
        let parts: Vec<String> = normal
            .iter()
            .map(|x| format!("from {} risk, {}", x.from.as_str(), boards(&x.boards)))
            .collect();
        said.push(format!("Normal changes: {}.", parts.join("; ")));
    }
    said.push(format!("Emergency changes: {}.", boards(&r.emergency)));
    said.push("Standard changes: none (their template is pre-approved).".to_string());
    said
}

/// Routing by type and risk from its form: the policy's routing replaced,
/// the rest of the policy kept, through `PUT …/policy`.
pub async fn put_routing_form(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    body: axum::body::Bytes,
) -> PageResult<Response> {
    let (fields, t) = tenant_form(&state, &viewer, &slug, &body, Action::ManagePolicy).await?;
    let outcome = async {
        let (_, mut policy) = crate::workflow::policy(state.store.as_ref(), t.tenant.id).await?;
        policy.routing.normal = changegate_core::change::RiskLevel::ALL
            .iter()
            .filter_map(|level| {
                let boards = fields.all(&format!("route.{}", level.as_str()));
                (!boards.is_empty()).then_some(changegate_core::routing::RiskRoute {
                    from: *level,
                    boards,
                })
            })
            .collect();
        policy.routing.emergency = fields.all("emergency");
        let said = routing_words(&policy.routing).join(" ");
        let body = serde_json::to_value(&policy).map_err(|_| ApiError::internal())?;
        let _saved = api::policy::replace(State(state.clone()), t, Body(body)).await?;
        Ok(format!("Routing saved. {said}"))
    }
    .await;
    answered(&state, &viewer, &slug, outcome).await
}

/// A configuration item from its form, through `PUT …/configuration-items/{name}`.
pub async fn put_ci_form(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    body: axum::body::Bytes,
) -> PageResult<Response> {
    let (fields, t) = tenant_form(&state, &viewer, &slug, &body, Action::ManagePolicy).await?;
    let name = fields.one("name");
    let outcome = async {
        // An item of that name keeps what the form does not show (its
        // gate binding): the form's fields are written over it.
        let mut body = stored_spec(&state, &t, ObjectKind::ConfigurationItem, name.trim())
            .await?
            .unwrap_or_else(|| json!({}));
        body["kind"] = json!(fields.one("kind"));
        body["criticality"] = json!(fields.one("criticality"));
        body["environment"] = json!(fields.one("environment"));
        let owner = fields.one("owner");
        match owner.trim() {
            "" => {
                if let Some(o) = body.as_object_mut() {
                    o.remove("owner");
                }
            }
            owner => body["owner"] = json!(owner),
        }
        api::policy::put_ci(State(state.clone()), t, name_path(&slug, &name), Body(body))
            .await
            .map(|r| saved("Configuration item", name.trim(), r.0.applied))
    }
    .await;
    answered(&state, &viewer, &slug, outcome).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RemoveForm {
    csrf: String,
    name: String,
}

pub async fn remove_blackout(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    Form(form): Form<RemoveForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let t = in_tenant(&state, &viewer, &slug).await?;
    t.authorize(Action::ManageBlackouts)?;
    if form.name.trim().is_empty() {
        let refused = ApiError::invalid("name", "say which blackout to remove");
        return page(&state, &viewer, &t, After::Refused(refused)).await;
    }
    let outcome = api::policy::delete_window(State(state.clone()), t, name_path(&slug, &form.name))
        .await
        .map(|_| format!("Blackout {} removed.", form.name.trim()));
    answered(&state, &viewer, &slug, outcome).await
}

// ---- people -----------------------------------------------------------------

/// Add a person (or grant roles to one already here). Checkboxes repeat
/// `role`, which `Form` cannot read: the body is read as pairs.
pub async fn add_person(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    body: axum::body::Bytes,
) -> PageResult<Response> {
    let fields = Fields::parse(&body);
    let one = |name: &str| fields.one(name).trim().to_string();
    viewer.check_csrf(&one("csrf"))?;
    let t = in_tenant(&state, &viewer, &slug).await?;
    t.authorize(Action::AdministerTenant)?;
    let email = one("email");
    let body = AddUserBody {
        email: email.clone(),
        name: Some(one("name")).filter(|n| !n.is_empty()),
        kind: None,
        roles: fields.all("role"),
    };
    let outcome = api::people::add(State(state.clone()), t, Body(body))
        .await
        .map(|user| format!("{email}: {}.", user.0.applied.unwrap_or_default()));
    answered(&state, &viewer, &slug, outcome).await
}

// ---- Kubernetes names ---------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct IdentityForm {
    csrf: String,
    cluster: String,
    user: String,
    email: String,
}

/// The mapping a form names; both the cluster and the user name must be
/// given.
fn identity_path(
    slug: &str,
    form: &IdentityForm,
) -> Result<Path<api::resources::IdentityPath>, ApiError> {
    for (field, value) in [("cluster", &form.cluster), ("user", &form.user)] {
        if value.trim().is_empty() {
            return Err(ApiError::invalid(
                field,
                format!("name the {field} of the Kubernetes name"),
            ));
        }
    }
    Ok(Path(api::resources::IdentityPath {
        tenant: slug.to_string(),
        cluster: form.cluster.trim().to_string(),
        user: form.user.trim().to_string(),
    }))
}

/// Map a Kubernetes user name of a cluster to one of the tenant's people
/// (their ChangeRequests and kubectl approvals are theirs), through the
/// API's handler: its authorization, its audit event.
pub async fn map_identity(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    Form(form): Form<IdentityForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let t = in_tenant(&state, &viewer, &slug).await?;
    t.authorize(Action::AdministerTenant)?;
    let body = api::resources::IdentityBody {
        email: form.email.trim().to_string(),
    };
    let outcome = match identity_path(&slug, &form) {
        Ok(path) => api::resources::put_identity(State(state.clone()), t, path, Body(body)).await,
        Err(e) => Err(e),
    }
    .map(|applied| {
        format!(
            "{} of cluster {} stands for {}: {}.",
            form.user.trim(),
            form.cluster.trim(),
            form.email.trim(),
            applied.0.applied
        )
    });
    answered(&state, &viewer, &slug, outcome).await
}

/// Remove a mapping, through the API's handler.
pub async fn unmap_identity(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    Form(form): Form<IdentityForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let t = in_tenant(&state, &viewer, &slug).await?;
    t.authorize(Action::AdministerTenant)?;
    let outcome = match identity_path(&slug, &form) {
        Ok(path) => api::resources::delete_identity(State(state.clone()), t, path).await,
        Err(e) => Err(e),
    }
    .map(|_| {
        format!(
            "{} of cluster {} no longer stands for anyone here.",
            form.user.trim(),
            form.cluster.trim()
        )
    });
    answered(&state, &viewer, &slug, outcome).await
}

// ---- policy and catalogue -----------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ObjectForm {
    csrf: String,
    kind: String,
    name: String,
    spec: String,
}

/// Write the policy, a board, a window, a template or a configuration
/// item as JSON, through the API's handler for it.
pub async fn put_object(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    Form(form): Form<ObjectForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let t = in_tenant(&state, &viewer, &slug).await?;
    t.authorize(Action::ManageBlackouts)?;
    const KINDS: [&str; 5] = [
        "policy",
        "board",
        "window",
        "template",
        "configuration-item",
    ];
    if !KINDS.contains(&form.kind.as_str()) {
        let refused = ApiError::invalid(
            "kind",
            format!(
                "{:?} is not something to write here: {}",
                form.kind,
                KINDS.join(", ")
            ),
        );
        return page(&state, &viewer, &t, After::Refused(refused)).await;
    }
    // A client admin may write blackouts only; put_window checks which.
    if form.kind != "window" {
        t.authorize(Action::ManagePolicy)?;
    }
    let outcome = async {
        let spec: serde_json::Value = serde_json::from_str(&form.spec).map_err(|e| {
            ApiError::invalid(
                "spec",
                format!("the spec is not JSON ({e}); fix it and save again"),
            )
        })?;
        let s = State(state.clone());
        let path = name_path(&slug, &form.name);
        let name = form.name.trim();
        match form.kind.as_str() {
            "policy" => api::policy::replace(s, t, Body(spec))
                .await
                .map(|_| "The policy is saved.".to_string()),
            "board" => api::policy::put_board(s, t, path, Body(spec))
                .await
                .map(|r| saved("Board", name, r.0.applied)),
            "window" => api::policy::put_window(s, t, path, Body(spec))
                .await
                .map(|r| saved("Window", name, r.0.applied)),
            "template" => api::policy::put_template(s, t, path, Body(spec))
                .await
                .map(|r| saved("Template", name, r.0.applied)),
            "configuration-item" => api::policy::put_ci(s, t, path, Body(spec))
                .await
                .map(|r| saved("Configuration item", name, r.0.applied)),
            _ => Err(ApiError::internal()),
        }
    }
    .await;
    answered(&state, &viewer, &slug, outcome).await
}

fn saved(what: &str, name: &str, applied: String) -> String {
    format!("{what} {name}: {applied}.")
}

// ---- my API tokens ------------------------------------------------------------

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    viewer: Option<Nav>,
    csrf: String,
    created: Option<(String, String)>,
    problem: Option<String>,
}

pub async fn tokens(State(state): State<AppState>, viewer: Viewer) -> PageResult<Response> {
    let page = TokensPage {
        viewer: Some(nav(&state, &viewer).await?),
        csrf: viewer.csrf.clone(),
        created: None,
        problem: None,
    };
    Ok(render(&page))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct TokenForm {
    csrf: String,
    name: String,
}

/// Mint an API token for the signed-in person: shown once, on this page.
pub async fn create_token(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<TokenForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let outcome = api::people::create_token(
        State(state.clone()),
        Caller(viewer.principal.clone()),
        Body(NewTokenBody {
            name: form.name.trim().to_string(),
        }),
    )
    .await;
    let (status, created, problem) = match outcome {
        Ok((_, token)) => (StatusCode::OK, Some((token.0.name, token.0.token)), None),
        Err(e) => (e.status, None, Some(e.message)),
    };
    let page = TokensPage {
        viewer: Some(nav(&state, &viewer).await?),
        csrf: viewer.csrf.clone(),
        created,
        problem,
    };
    let mut response = render(&page);
    *response.status_mut() = status;
    Ok(response)
}

// ---- tenants (installation admins) ----------------------------------------------

#[derive(Template)]
#[template(path = "tenants.html")]
struct TenantsPage {
    viewer: Option<Nav>,
    csrf: String,
    tenants: Vec<(String, String, String)>,
    problem: Option<String>,
}

async fn tenants_page(
    state: &AppState,
    viewer: &Viewer,
    problem: Option<ApiError>,
) -> PageResult<Response> {
    changegate_core::authz::authorize_admin(&viewer.principal).map_err(ApiError::from)?;
    let tenants = state
        .store
        .tenants(None)
        .await?
        .into_iter()
        .map(|t| (t.slug.to_string(), t.name, t.time_zone))
        .collect();
    let status = problem.as_ref().map_or(StatusCode::OK, |e| e.status);
    let page = TenantsPage {
        viewer: Some(nav(state, viewer).await?),
        csrf: viewer.csrf.clone(),
        tenants,
        problem: problem.map(|e| e.message),
    };
    let mut response = render(&page);
    *response.status_mut() = status;
    Ok(response)
}

pub async fn tenants(State(state): State<AppState>, viewer: Viewer) -> PageResult<Response> {
    tenants_page(&state, &viewer, None).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct TenantForm {
    csrf: String,
    slug: String,
    name: String,
    time_zone: String,
}

pub async fn create_tenant(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<TenantForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    changegate_core::authz::authorize_admin(&viewer.principal).map_err(ApiError::from)?;
    let body = NewTenantBody {
        slug: form.slug.trim().to_string(),
        name: form.name.trim().to_string(),
        time_zone: form.time_zone.trim().to_string(),
    };
    match api::tenants::create(
        State(state.clone()),
        Caller(viewer.principal.clone()),
        Body(body),
    )
    .await
    {
        Ok((_, created)) => {
            Ok(Redirect::to(&format!("/t/{}/settings", created.0.slug)).into_response())
        }
        Err(e) => tenants_page(&state, &viewer, Some(e)).await,
    }
}
