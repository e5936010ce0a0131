//! Releases (DESIGN §6): package approved changes of one or several
//! tenants, plan a slot and a runbook, authorize the phases (plan, build
//! and test, deploy), record each step, authorize a rollback, finish with
//! an outcome written to every change, and close once every change had
//! its post-implementation review.
//!
//! A release lives outside any one tenant. Whoever sees one of its
//! tenants sees the release, with only their tenants' changes, steps and
//! conflicts; acting on it needs the role in every tenant it delivers to.
//! Its events go to the chain of each tenant concerned.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use changegate_core::TenantId;
use changegate_core::authz::{self, Action, Principal};
use changegate_core::change::ChangeState;
use changegate_core::release::{self, Phase, ReleaseState, StepKind, StepStatus};
use changegate_store::{NewEvent, Release, ReleaseWrite};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeSet;
use utoipa::ToSchema;

use super::Body;
use crate::AppState;
use crate::app::release::plan::{self, new_release};
pub use crate::app::release::plan::{EditReleaseBody, NewReleaseBody, ReleaseChangeRef, StepBody};
use crate::app::release::{
    Loaded, authorize_all, load, refusal, restored_seen_by, save, steps_seen_by, to_all,
};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::schedule;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhaseBody {
    /// `plan`, `build-and-test` or `deploy`.
    pub phase: String,
    /// Shown to, and recorded in the audit trail of, every tenant of the
    /// release: write nothing one client may not read of another.
    #[serde(default)]
    pub note: String,
    /// `deploy` only: authorize now, start at the planned start (the
    /// scheduler starts it then, with the same checks, as you).
    #[serde(default)]
    pub at_planned_start: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideBody {
    /// The conflict's key, as the release lists it.
    pub conflict: String,
    pub reason: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepRecordBody {
    /// `done`, `failed` or `skipped`.
    pub status: String,
    /// What shows it (required for `done`).
    #[serde(default)]
    pub evidence: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// Why: shown to, and recorded in the audit trail of, every tenant of
    /// the release.
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReleaseChangeView {
    pub tenant: String,
    pub number: String,
    pub title: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub state: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    /// 1-based, as the step routes take it.
    pub step: usize,
    pub kind: String,
    pub title: String,
    pub owner: String,
    pub change: Option<String>,
    pub status: String,
    pub evidence: String,
    pub recorded_by: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizationView {
    pub phase: String,
    pub by: String,
    pub at: DateTime<Utc>,
    pub note: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictView {
    pub key: String,
    pub tenant: String,
    pub message: String,
    pub overridable: bool,
    /// Who let it stand, and why.
    pub overridden_by: Option<String>,
    pub override_reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RollbackView {
    pub authorized_by: String,
    pub at: DateTime<Utc>,
    pub reason: String,
    pub finished_at: Option<DateTime<Utc>>,
    pub restored: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReleaseView {
    /// `REL-<n>`.
    pub number: String,
    pub name: String,
    pub description: String,
    pub owner: String,
    pub state: String,
    pub planned_start: Option<DateTime<Utc>>,
    pub planned_end: Option<DateTime<Utc>>,
    /// The changes of the tenants the caller sees.
    pub changes: Vec<ReleaseChangeView>,
    pub authorizations: Vec<AuthorizationView>,
    pub runbook: Vec<StepView>,
    /// What stands in the way of the planned slot (only while planned).
    pub conflicts: Vec<ConflictView>,
    /// The earliest slot of the same length every tenant involved allows
    /// (only while planned).
    pub proposed_start: Option<DateTime<Utc>>,
    pub rollback: Option<RollbackView>,
    pub outcome: Option<String>,
    pub validation_failures: usize,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Deployment authorized ahead, to start at the planned start.
    pub start_scheduled_by: Option<String>,
    pub version: i64,
    /// The caller is a release manager of every tenant of the release:
    /// may authorize its phases, record any step, roll back, finish,
    /// close or cancel it.
    pub can_release: bool,
    /// The caller is a change manager of one of its tenants: may override
    /// that tenant's conflicts.
    pub can_override: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReleaseSummary {
    pub number: String,
    pub name: String,
    pub state: String,
    pub planned_start: Option<DateTime<Utc>>,
    pub planned_end: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    /// `tenant/CHG-<n>` of the tenants the caller sees.
    pub changes: Vec<String>,
}

/// `/releases/{number}`
#[derive(Deserialize)]
pub struct ReleasePath {
    pub number: String,
}

/// `/releases/{number}/steps/{step}`
#[derive(Deserialize)]
pub struct StepPath {
    pub number: String,
    /// Text, so that a step that is no number is not found like any other.
    pub step: String,
}

/// Save `r` with only its events, and answer with the caller's view.
async fn save_events(
    state: &AppState,
    caller: &Principal,
    r: &Release,
    expected: i64,
    events: Vec<(TenantId, NewEvent)>,
    at: DateTime<Utc>,
) -> ApiResult<Json<ReleaseView>> {
    let write = ReleaseWrite {
        events,
        ..Default::default()
    };
    let saved = save(state, r, expected, write, at).await?;
    answer(state, caller, saved).await
}

/// The view of `loaded` for `caller`, with conflicts and a proposed slot
/// while it is planned.
pub(crate) async fn view(
    state: &AppState,
    caller: &Principal,
    loaded: &Loaded,
) -> ApiResult<ReleaseView> {
    let r = &loaded.release;
    let involved = schedule::involved(state, loaded).await?;
    let visible = |t: TenantId| caller.sees(t);
    let mut changes = Vec::new();
    for inv in &involved {
        for c in &inv.changes {
            if visible(inv.tenant.id) {
                changes.push(ReleaseChangeView {
                    tenant: inv.tenant.slug.to_string(),
                    number: c.number.to_string(),
                    title: c.content.title.clone(),
                    kind: c.kind.to_string(),
                    state: c.state.to_string(),
                });
            }
        }
    }
    let (conflicts, proposed_start) = if r.state.plannable() {
        let found =
            schedule::conflicts(state, r, &involved, r.planned_start, r.planned_end).await?;
        let proposed = schedule::proposal(state, r, &involved).await?;
        (found, proposed)
    } else {
        (Vec::new(), None)
    };
    let slugs: BTreeSet<&str> = loaded
        .tenants
        .values()
        .filter(|t| visible(t.id))
        .map(|t| t.slug.as_str())
        .collect();
    let conflicts = conflicts
        .into_iter()
        .filter(|c| slugs.contains(c.tenant.as_str()))
        .map(|c| {
            let o = r
                .record
                .overrides
                .iter()
                .find(|o| c.overridable && o.conflict == c.key);
            ConflictView {
                overridden_by: o.map(|o| o.by.clone()),
                override_reason: o.map(|o| o.reason.clone()),
                key: c.key,
                tenant: c.tenant,
                message: c.message,
                overridable: c.overridable,
            }
        })
        .collect();
    let seen: BTreeSet<TenantId> = loaded
        .tenants
        .keys()
        .copied()
        .filter(|t| visible(*t))
        .collect();
    let runbook = steps_seen_by(r, &seen)
        .map(|(i, s)| StepView {
            step: i + 1,
            kind: s.kind.to_string(),
            title: s.title.clone(),
            owner: s.owner.clone(),
            change: s.change.clone(),
            status: s.status.to_string(),
            evidence: s.evidence.clone(),
            recorded_by: s.recorded_by.clone(),
            at: s.at,
        })
        .collect();
    let owner = state.store.user(r.owner).await?.email.to_string();
    Ok(ReleaseView {
        number: r.number.to_string(),
        name: r.name.clone(),
        description: r.record.description.clone(),
        owner,
        state: r.state.to_string(),
        planned_start: r.planned_start,
        planned_end: r.planned_end,
        changes,
        authorizations: r
            .record
            .authorizations
            .iter()
            .map(|a| AuthorizationView {
                phase: a.phase.to_string(),
                by: a.by.clone(),
                at: a.at,
                note: a.note.clone(),
            })
            .collect(),
        runbook,
        conflicts,
        proposed_start,
        rollback: r.record.rollback.as_ref().map(|b| RollbackView {
            authorized_by: b.authorized_by.clone(),
            at: b.at,
            reason: b.reason.clone(),
            finished_at: b.finished_at,
            restored: restored_seen_by(r, &seen),
        }),
        outcome: r.record.outcome.map(|o| o.to_string()),
        validation_failures: release::validation_failures(steps_seen_by(r, &seen).map(|(_, s)| s)),
        started_at: r.record.started_at,
        finished_at: r.record.finished_at,
        start_scheduled_by: r.record.scheduled_start.as_ref().map(|a| a.by.clone()),
        version: r.version,
        can_release: authorize_all(caller, loaded.tenants.keys().copied(), Action::Release).is_ok(),
        can_override: loaded
            .tenants
            .keys()
            .any(|t| authz::authorize(caller, *t, Action::OverrideConflict).is_ok()),
    })
}

async fn answer(state: &AppState, caller: &Principal, r: Release) -> ApiResult<Json<ReleaseView>> {
    let loaded = load(state, caller, &r.number.to_string()).await?;
    Ok(Json(view(state, caller, &loaded).await?))
}

/// The releases delivering changes of the tenants the caller sees, newest first.
#[utoipa::path(get, path = "/api/v1/releases", tag = "releases",
    responses((status = 200, body = Vec<ReleaseSummary>)))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> ApiResult<Json<Vec<ReleaseSummary>>> {
    let visible = caller.visible_tenants();
    let releases = state.store.releases(visible.as_ref(), 200).await?;
    let tenants = state.snapshots.tenants(&state).await?;
    let slug = |t: TenantId| {
        tenants
            .iter()
            .find(|x| x.id == t)
            .map_or(String::new(), |x| x.slug.to_string())
    };
    Ok(Json(
        releases
            .into_iter()
            .map(|r| ReleaseSummary {
                number: r.number.to_string(),
                name: r.name.clone(),
                state: r.state.to_string(),
                planned_start: r.planned_start,
                planned_end: r.planned_end,
                outcome: r.record.outcome.map(|o| o.to_string()),
                changes: r
                    .changes
                    .iter()
                    .filter(|i| caller.sees(i.tenant))
                    .map(|i| format!("{}/{}", slug(i.tenant), i.change))
                    .collect(),
            })
            .collect(),
    ))
}

/// Package approved changes (of one or several tenants) into a release,
/// with its slot and runbook. The caller owns it and needs the
/// release-manager role in every tenant involved.
#[utoipa::path(post, path = "/api/v1/releases", tag = "releases", request_body = NewReleaseBody,
    responses((status = 201, body = ReleaseView), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Body(body): Body<NewReleaseBody>,
) -> ApiResult<(StatusCode, Json<ReleaseView>)> {
    let planned = new_release(&state, &caller, body).await?;
    let created = state
        .store
        .create_release(planned, caller.email.as_str(), state.now())
        .await?;
    Ok((StatusCode::CREATED, answer(&state, &caller, created).await?))
}

/// A release with its changes, phases, runbook, conflicts and the earliest
/// slot every tenant involved allows.
#[utoipa::path(get, path = "/api/v1/releases/{number}", tag = "releases",
    params(("number" = String, Path)), responses((status = 200, body = ReleaseView)))]
pub async fn show(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(p): Path<ReleasePath>,
) -> ApiResult<Json<ReleaseView>> {
    let loaded = load(&state, &caller, &p.number).await?;
    Ok(Json(view(&state, &caller, &loaded).await?))
}

/// Edit a planned release: name, description, slot and runbook until it
/// deploys; its changes only while `planning`.
#[utoipa::path(patch, path = "/api/v1/releases/{number}", tag = "releases", request_body = EditReleaseBody,
    params(("number" = String, Path)), responses((status = 200, body = ReleaseView)))]
pub async fn edit(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(p): Path<ReleasePath>,
    Body(body): Body<EditReleaseBody>,
) -> ApiResult<Json<ReleaseView>> {
    let loaded = load(&state, &caller, &p.number).await?;
    let saved = plan::edit(&state, &caller, loaded, body).await?;
    answer(&state, &caller, saved).await
}

/// Authorize the next phase: `plan` (every change approved, a slot
/// planned; the changes become scheduled), `build-and-test` (every change
/// has test evidence), `deploy` (the release starts: every change still
/// approved, every tenant's window open now, no conflict standing; the
/// changes move to implementing).
#[utoipa::path(post, path = "/api/v1/releases/{number}/phases", tag = "releases", request_body = PhaseBody,
    params(("number" = String, Path)), responses((status = 200, body = ReleaseView), (status = 409, body = crate::error::ErrorBody)))]
pub async fn authorize_phase(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(p): Path<ReleasePath>,
    Body(body): Body<PhaseBody>,
) -> ApiResult<Json<ReleaseView>> {
    let loaded = load(&state, &caller, &p.number).await?;
    authorize_all(&caller, loaded.tenants.keys().copied(), Action::Release)?;
    let phase: Phase = body
        .phase
        .parse()
        .map_err(|e: changegate_core::ids::InvalidValue| ApiError::invalid("phase", e.message))?;
    let now = state.now();
    if body.at_planned_start {
        let (from, _) = release::phase_move(phase);
        if loaded.release.state != from {
            return Err(ApiError::state(format!(
                "{} is {}; the {phase} phase is authorized from {from}",
                loaded.release.number, loaded.release.state
            )));
        }
        return schedule_start(&state, &caller, &loaded, phase, &body.note, now).await;
    }
    let saved =
        crate::app::release::authorize_phase(&state, &caller, &loaded, phase, &body.note, now)
            .await?;
    answer(&state, &caller, saved).await
}

/// Deployment authorized ahead: the release stays ready and the scheduler
/// starts it at its planned start (`crate::starter`).
async fn schedule_start(
    state: &AppState,
    caller: &Principal,
    loaded: &Loaded,
    phase: Phase,
    note: &str,
    now: DateTime<Utc>,
) -> ApiResult<Json<ReleaseView>> {
    let mut r = loaded.release.clone();
    if phase != Phase::Deploy {
        return Err(ApiError::invalid(
            "at_planned_start",
            "only the deploy phase starts at the planned start",
        ));
    }
    let Some(start) = r.planned_start.filter(|s| *s > now) else {
        return Err(ApiError::state(format!(
            "{} has no planned start ahead; plan one, or authorize the deploy phase now",
            r.number
        )));
    };
    if !r.record.runbook.iter().any(|s| s.kind == StepKind::Deploy) {
        return Err(ApiError::state(
            "the runbook has no deploy step; add the steps before deploying",
        ));
    }
    let expected = r.version;
    r.record.scheduled_start = Some(release::Authorization {
        phase,
        by: caller.email.to_string(),
        at: now,
        note: note.to_string(),
    });
    let events = to_all(
        loaded,
        caller.email.as_str(),
        "release.start-scheduled",
        json!({ "at": start, "note": note }),
        now,
    );
    save_events(state, caller, &r, expected, events, now).await
}

/// Let a conflict stand, with a reason: a change manager of the tenant
/// the conflict concerns. Blackouts, clashes and double bookings can be
/// overridden; a closed maintenance window cannot (choose another slot).
#[utoipa::path(post, path = "/api/v1/releases/{number}/overrides", tag = "releases", request_body = OverrideBody,
    params(("number" = String, Path)), responses((status = 200, body = ReleaseView)))]
pub async fn override_conflict(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(p): Path<ReleasePath>,
    Body(body): Body<OverrideBody>,
) -> ApiResult<Json<ReleaseView>> {
    let loaded = load(&state, &caller, &p.number).await?;
    // A change manager of one of its tenants at least; of the conflict's
    // own tenant once it is known.
    let seen = loaded.tenants.keys().copied().filter(|t| caller.sees(*t));
    let checks: Vec<_> = seen
        .map(|t| authz::authorize(&caller, t, Action::OverrideConflict))
        .collect();
    if !checks.iter().any(Result::is_ok)
        && let Some(Err(denied)) = checks.into_iter().next()
    {
        return Err(denied.into());
    }
    let mut r = loaded.release.clone();
    if !r.state.plannable() {
        return Err(ApiError::state(format!(
            "{} is {}; conflicts are overridden before it deploys",
            r.number, r.state
        )));
    }
    if body.reason.trim().is_empty() {
        return Err(ApiError::invalid(
            "reason",
            "say why the conflict may stand",
        ));
    }
    let involved = schedule::involved(&state, &loaded).await?;
    let now = state.now();
    let length = match (r.planned_start, r.planned_end) {
        (Some(s), Some(e)) => e - s,
        _ => schedule::DEFAULT_LENGTH,
    };
    // The conflict as listed for the planned slot, or as it would stand now.
    let mut found =
        schedule::conflicts(&state, &r, &involved, r.planned_start, r.planned_end).await?;
    found.extend(schedule::conflicts(&state, &r, &involved, Some(now), Some(now + length)).await?);
    // Only the conflicts of tenants where the caller may override: another
    // tenant's key answers like an unknown one, so nothing is learnt of it.
    let mine: BTreeSet<&str> = loaded
        .tenants
        .values()
        .filter(|t| authz::authorize(&caller, t.id, Action::OverrideConflict).is_ok())
        .map(|t| t.slug.as_str())
        .collect();
    let conflict = found
        .iter()
        .filter(|c| mine.contains(c.tenant.as_str()))
        .find(|c| c.key == body.conflict)
        .ok_or_else(|| {
            ApiError::invalid(
                "conflict",
                "no such conflict stands; use a key the release lists",
            )
        })?;
    let tenant = loaded
        .tenants
        .values()
        .find(|t| t.slug.as_str() == conflict.tenant)
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    authorize_all(&caller, [tenant.id], Action::OverrideConflict)?;
    if !conflict.overridable {
        return Err(ApiError::state(format!(
            "{} cannot be overridden: choose another slot",
            conflict.message
        )));
    }
    let expected = r.version;
    r.record.overrides.push(release::Override {
        conflict: conflict.key.clone(),
        by: caller.email.to_string(),
        at: now,
        reason: body.reason.trim().to_string(),
    });
    let events = vec![(
        tenant.id,
        NewEvent {
            actor: caller.email.to_string(),
            action: "release.conflict-overridden".into(),
            subject: r.number.to_string(),
            detail: json!({ "conflict": conflict.key, "message": conflict.message, "reason": body.reason.trim() }),
            at: now,
        },
    )];
    save_events(&state, &caller, &r, expected, events, now).await
}

/// Record how a runbook step went: its owner or a release manager of
/// every tenant involved. Steps run in order; after a failure nothing
/// more runs until a rollback is authorized.
#[utoipa::path(post, path = "/api/v1/releases/{number}/steps/{step}", tag = "releases", request_body = StepRecordBody,
    params(("number" = String, Path), ("step" = usize, Path, description = "1-based")),
    responses((status = 200, body = ReleaseView)))]
pub async fn record_step(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(p): Path<StepPath>,
    Body(body): Body<StepRecordBody>,
) -> ApiResult<Json<ReleaseView>> {
    let loaded = load(&state, &caller, &p.number).await?;
    let mut r = loaded.release.clone();
    let index = p
        .step
        .parse::<usize>()
        .ok()
        .and_then(|s| s.checked_sub(1))
        .ok_or_else(|| ApiError::not_found("step"))?;
    let step = r
        .record
        .runbook
        .get(index)
        .ok_or_else(|| ApiError::not_found("step"))?
        .clone();
    // The step's change's tenant, if it names one.
    let step_tenant = step.change.as_ref().and_then(|n| {
        r.changes
            .iter()
            .find(|i| i.change.to_string() == *n)
            .map(|i| i.tenant)
    });
    // About a change it no longer delivers, or of a tenant the caller
    // does not see: not found (never written to every tenant's chain).
    if (step.change.is_some() && step_tenant.is_none())
        || step_tenant.is_some_and(|t| !caller.sees(t))
    {
        return Err(ApiError::not_found("step"));
    }
    // A release manager of every tenant involved records any step; the
    // step's owner records their own, while they hold the implementer role
    // in the tenants it concerns (its change's, or every tenant's when it
    // names none). Being named owner alone grants nothing.
    let owner = !step.owner.is_empty() && step.owner.eq_ignore_ascii_case(caller.email.as_str());
    let concerns: Vec<TenantId> = match step_tenant {
        Some(t) => vec![t],
        None => loaded.tenants.keys().copied().collect(),
    };
    let implements = concerns
        .iter()
        .all(|t| caller.has_role(*t, changegate_core::Role::Implementer));
    if !(owner && implements) {
        authorize_all(&caller, loaded.tenants.keys().copied(), Action::Release).map_err(|e| {
            if owner {
                ApiError::forbidden(
                    "you own this step but do not hold the implementer role where it applies; a release manager records it",
                )
            } else {
                e
            }
        })?;
    }
    let status: StepStatus = body
        .status
        .parse()
        .map_err(|e: changegate_core::ids::InvalidValue| ApiError::invalid("status", e.message))?;
    let expected = r.version;
    let now = state.now();
    let actor = caller.email.to_string();
    release::record_step(
        r.state,
        &mut r.record,
        index,
        status,
        &body.evidence,
        &actor,
        now,
    )
    .map_err(refusal)?;
    let detail = json!({ "step": index + 1, "kind": step.kind.as_str(), "title": step.title, "change": step.change, "status": status.as_str(), "evidence": body.evidence });
    let events = match step_tenant {
        Some(t) => vec![(
            t,
            NewEvent {
                actor: actor.clone(),
                action: "release.step-recorded".into(),
                subject: r.number.to_string(),
                detail,
                at: now,
            },
        )],
        None => to_all(&loaded, &actor, "release.step-recorded", detail, now),
    };
    save_events(&state, &caller, &r, expected, events, now).await
}

/// Authorize the rollback of a deploying release: who, when, why. Its
/// rollback steps are then recorded like the others.
#[utoipa::path(post, path = "/api/v1/releases/{number}/rollback", tag = "releases", request_body = RollbackBody,
    params(("number" = String, Path)), responses((status = 200, body = ReleaseView)))]
pub async fn rollback(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(p): Path<ReleasePath>,
    Body(body): Body<RollbackBody>,
) -> ApiResult<Json<ReleaseView>> {
    let loaded = load(&state, &caller, &p.number).await?;
    authorize_all(&caller, loaded.tenants.keys().copied(), Action::Release)?;
    let mut r = loaded.release.clone();
    let expected = r.version;
    let now = state.now();
    let actor = caller.email.to_string();
    r.state = release::authorize_rollback(r.state, &mut r.record, &actor, &body.reason, now)
        .map_err(refusal)?;
    let events = to_all(
        &loaded,
        &actor,
        "release.rollback-authorized",
        json!({ "reason": body.reason.trim() }),
        now,
    );
    save_events(&state, &caller, &r, expected, events, now).await
}

/// Finish a running release: its outcome (succeeded, failed, rolled back)
/// is written to the release and to each of its changes in one
/// transaction. A change another unfinished release still delivers stays
/// implementing; one whose type needs no review closes.
#[utoipa::path(post, path = "/api/v1/releases/{number}/finish", tag = "releases",
    params(("number" = String, Path)), responses((status = 200, body = ReleaseView)))]
pub async fn finish(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(p): Path<ReleasePath>,
) -> ApiResult<Json<ReleaseView>> {
    let loaded = load(&state, &caller, &p.number).await?;
    authorize_all(&caller, loaded.tenants.keys().copied(), Action::Release)?;
    let saved = crate::app::release::finish(&state, &caller, &loaded, state.now()).await?;
    answer(&state, &caller, saved).await
}

/// Close a finished release once every change in it is closed (its
/// post-implementation review done, where the policy asks for one).
#[utoipa::path(post, path = "/api/v1/releases/{number}/close", tag = "releases",
    params(("number" = String, Path)), responses((status = 200, body = ReleaseView), (status = 409, body = crate::error::ErrorBody)))]
pub async fn close(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(p): Path<ReleasePath>,
) -> ApiResult<Json<ReleaseView>> {
    let loaded = load(&state, &caller, &p.number).await?;
    authorize_all(&caller, loaded.tenants.keys().copied(), Action::Release)?;
    let mut r = loaded.release.clone();
    if r.state != ReleaseState::Finished {
        return Err(ApiError::state(format!(
            "{} is {}; a release closes once finished",
            r.number, r.state
        )));
    }
    let involved = schedule::involved(&state, &loaded).await?;
    let open: Vec<String> = involved
        .iter()
        .flat_map(|inv| inv.changes.iter())
        .filter(|c| c.state != ChangeState::Closed)
        .map(|c| format!("{} ({})", c.number, c.state))
        .collect();
    if !open.is_empty() {
        return Err(ApiError::state(format!(
            "{} awaits the post-implementation review of {}",
            r.number,
            open.join(", ")
        )));
    }
    let expected = r.version;
    let now = state.now();
    r.state = ReleaseState::Closed;
    let events = to_all(
        &loaded,
        caller.email.as_str(),
        "release.closed",
        json!({}),
        now,
    );
    save_events(&state, &caller, &r, expected, events, now).await
}

/// Cancel a release that has not deployed: its scheduled changes are
/// approved again, for another release.
#[utoipa::path(post, path = "/api/v1/releases/{number}/cancel", tag = "releases",
    params(("number" = String, Path)), responses((status = 200, body = ReleaseView)))]
pub async fn cancel(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(p): Path<ReleasePath>,
) -> ApiResult<Json<ReleaseView>> {
    let loaded = load(&state, &caller, &p.number).await?;
    authorize_all(&caller, loaded.tenants.keys().copied(), Action::Release)?;
    let saved = plan::cancel(&state, &loaded, caller.email.as_str()).await?;
    answer(&state, &caller, saved).await
}
