//! A release's plan, for the API, the portal and the Release resources
//! alike: the changes it delivers (each approved, each in a tenant the
//! planner sees and releases for), its slot and runbook; created, edited
//! while planned, and cancelled before it deploys, with the same checks
//! whoever asks.

use changegate_core::ChangeNumber;
use changegate_core::authz::{Action, Principal};
use changegate_core::change::ChangeState;
use changegate_core::release::{self, Record, ReleaseState, Step, StepKind, StepStatus};
use changegate_store::{
    Change, ChangeWrite, NewRelease, Release, ReleaseItem, ReleaseWrite, StoreError, Tenant,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{Loaded, authorize_all, other_release_of, refusal, save, to_all};
use crate::AppState;
use crate::app::change::{event as change_event, move_to};
use crate::error::{ApiError, ApiResult};
use crate::schedule;

/// A change to deliver: its tenant and number.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseChangeRef {
    /// Tenant slug.
    pub tenant: String,
    /// `CHG-<n>`.
    pub change: String,
}

/// A runbook step as planned.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepBody {
    /// `deploy`, `validate` or `rollback`.
    pub kind: String,
    pub title: String,
    /// Who carries it out (e-mail); they may record it.
    #[serde(default)]
    pub owner: String,
    /// The change it delivers or checks (`CHG-<n>`, one of the release's).
    #[serde(default)]
    pub change: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReleaseBody {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub changes: Vec<ReleaseChangeRef>,
    pub planned_start: Option<DateTime<Utc>>,
    pub planned_end: Option<DateTime<Utc>>,
    #[serde(default)]
    pub runbook: Vec<StepBody>,
}

/// What to change while the release is planned; absent fields stay.
#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct EditReleaseBody {
    pub name: Option<String>,
    pub description: Option<String>,
    /// The whole list (only while `planning`).
    pub changes: Option<Vec<ReleaseChangeRef>>,
    pub planned_start: Option<DateTime<Utc>>,
    pub planned_end: Option<DateTime<Utc>>,
    /// The whole runbook (not once deploying).
    pub runbook: Option<Vec<StepBody>>,
}

/// Resolve the changes a body names: each tenant visible to the caller
/// (404 otherwise), each change existing in it.
pub async fn resolve_items(
    state: &AppState,
    caller: &Principal,
    refs: &[ReleaseChangeRef],
) -> ApiResult<Vec<(Tenant, Change)>> {
    // Every tenant first (404, then 403), so nothing is said about a
    // change to someone who may not package it.
    let tenants = state.snapshots.tenants(state).await?;
    for (i, r) in refs.iter().enumerate() {
        let tenant = tenants
            .iter()
            .find(|t| t.slug.as_str() == r.tenant && caller.sees(t.id))
            .ok_or_else(|| {
                ApiError::not_found("tenant").with_field(format!("changes[{i}].tenant"))
            })?;
        authorize_all(caller, [tenant.id], Action::Release)?;
    }
    if refs.is_empty() {
        return Err(ApiError::invalid(
            "changes",
            "name at least one approved change to deliver",
        ));
    }
    let tenants = state.snapshots.tenants(state).await?;
    let mut out: Vec<(Tenant, Change)> = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        let tenant = tenants
            .iter()
            .find(|t| t.slug.as_str() == r.tenant && caller.sees(t.id))
            .cloned()
            .ok_or_else(|| {
                ApiError::not_found("tenant").with_field(format!("changes[{i}].tenant"))
            })?;
        let number: ChangeNumber =
            r.change
                .parse()
                .map_err(|e: changegate_core::ids::InvalidValue| {
                    ApiError::invalid(format!("changes[{i}].change"), e.message)
                })?;
        let change = state
            .store
            .change(tenant.id, number)
            .await
            .map_err(|e| match e {
                StoreError::NotFound { .. } => {
                    ApiError::not_found("change").with_field(format!("changes[{i}].change"))
                }
                other => other.into(),
            })?;
        if out.iter().any(|(_, c)| c.number == change.number) {
            return Err(ApiError::invalid(
                format!("changes[{i}].change"),
                format!("{} is named twice", change.number),
            ));
        }
        if !matches!(
            change.state,
            ChangeState::Approved | ChangeState::Scheduled | ChangeState::Implementing
        ) {
            return Err(ApiError::invalid(
                format!("changes[{i}].change"),
                format!(
                    "{} is {}; a release delivers approved changes",
                    change.number, change.state
                ),
            ));
        }
        out.push((tenant, change));
    }
    Ok(out)
}

fn runbook(steps: &[StepBody], changes: &[ReleaseItem]) -> ApiResult<Vec<Step>> {
    let steps = steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let kind: StepKind =
                s.kind
                    .parse()
                    .map_err(|e: changegate_core::ids::InvalidValue| {
                        ApiError::invalid(format!("runbook[{i}].kind"), e.message)
                    })?;
            let change = match &s.change {
                Some(c) => {
                    let n: ChangeNumber =
                        c.parse().map_err(|e: changegate_core::ids::InvalidValue| {
                            ApiError::invalid(format!("runbook[{i}].change"), e.message)
                        })?;
                    if !changes.iter().any(|item| item.change == n) {
                        return Err(ApiError::invalid(
                            format!("runbook[{i}].change"),
                            format!("{n} is not delivered by this release"),
                        ));
                    }
                    Some(n.to_string())
                }
                None => None,
            };
            if !s.owner.is_empty() {
                changegate_core::Email::parse(&s.owner)
                    .map_err(|e| ApiError::invalid(format!("runbook[{i}].owner"), e.message))?;
            }
            Ok(Step {
                kind,
                title: s.title.trim().to_string(),
                owner: s.owner.clone(),
                change,
                status: StepStatus::Pending,
                evidence: String::new(),
                recorded_by: None,
                at: None,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    release::plan_runbook(&steps)?;
    Ok(steps)
}

fn check_slot(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> ApiResult<()> {
    if let (Some(s), Some(e)) = (start, end)
        && e <= s
    {
        return Err(ApiError::invalid(
            "planned_end",
            "the slot must end after it starts",
        ));
    }
    Ok(())
}

/// The release `body` asks for, planned by `caller` (its owner, a release
/// manager of every tenant involved), checked and ready to store.
pub async fn new_release(
    state: &AppState,
    caller: &Principal,
    body: NewReleaseBody,
) -> ApiResult<NewRelease> {
    let items = resolve_items(state, caller, &body.changes).await?;
    if body.name.trim().is_empty() {
        return Err(ApiError::invalid("name", "give the release a name"));
    }
    check_slot(body.planned_start, body.planned_end)?;
    let changes: Vec<ReleaseItem> = items
        .iter()
        .map(|(t, c)| ReleaseItem {
            tenant: t.id,
            change: c.number,
        })
        .collect();
    let record = Record {
        description: body.description,
        runbook: runbook(&body.runbook, &changes)?,
        ..Record::default()
    };
    Ok(NewRelease {
        name: body.name.trim().to_string(),
        owner: caller.user,
        planned_start: body.planned_start,
        planned_end: body.planned_end,
        changes,
        record,
    })
}

/// Edits a planned release as `caller` (a release manager of every
/// tenant involved): name, description, slot and runbook until it
/// deploys, its changes only while `planning`. A moved slot or a changed
/// runbook reopens what was authorized or overridden for the old plan.
pub async fn edit(
    state: &AppState,
    caller: &Principal,
    loaded: Loaded,
    body: EditReleaseBody,
) -> ApiResult<Release> {
    authorize_all(caller, loaded.tenants.keys().copied(), Action::Release)?;
    let mut r = loaded.release.clone();
    if !r.state.plannable() {
        return Err(ApiError::state(format!(
            "{} is {}; only a planned release is edited",
            r.number, r.state
        )));
    }
    let expected = r.version;
    if let Some(refs) = &body.changes {
        if r.state != ReleaseState::Planning {
            return Err(ApiError::state(format!(
                "{} is {}; its changes are fixed once the plan is authorized",
                r.number, r.state
            )));
        }
        let items = resolve_items(state, caller, refs).await?;
        r.changes = items
            .iter()
            .map(|(t, c)| ReleaseItem {
                tenant: t.id,
                change: c.number,
            })
            .collect();
    }
    if let Some(name) = &body.name {
        if name.trim().is_empty() {
            return Err(ApiError::invalid("name", "give the release a name"));
        }
        r.name = name.trim().to_string();
    }
    if let Some(d) = &body.description {
        r.record.description = d.clone();
    }
    if body.planned_start.is_some() {
        r.planned_start = body.planned_start;
    }
    if body.planned_end.is_some() {
        r.planned_end = body.planned_end;
    }
    check_slot(r.planned_start, r.planned_end)?;
    let slot_moved = (r.planned_start, r.planned_end)
        != (loaded.release.planned_start, loaded.release.planned_end);
    let mut runbook_changed = false;
    if let Some(steps) = &body.runbook {
        let steps = runbook(steps, &r.changes)?;
        runbook_changed = steps != r.record.runbook;
        r.record.runbook = steps;
    } else if body.changes.is_some() {
        // Every planned step must still be about a change it delivers.
        for (i, s) in r.record.runbook.iter().enumerate() {
            if let Some(n) = &s.change
                && !r.changes.iter().any(|item| item.change.to_string() == *n)
            {
                return Err(ApiError::invalid(
                    format!("runbook[{i}].change"),
                    format!(
                        "{n} is no longer delivered by this release; send the runbook with the changes"
                    ),
                ));
            }
        }
    }
    // What was authorized or overridden for the old plan no longer holds.
    let mut replanned = release::Replanned::default();
    if slot_moved || runbook_changed {
        (r.state, replanned) =
            release::replan(r.state, &mut r.record, slot_moved).map_err(refusal)?;
    }
    let now = state.now();
    let mut all = loaded;
    // Events go to the tenants it delivers to after the edit, too.
    for t in state.snapshots.tenants(state).await?.iter() {
        if r.changes.iter().any(|i| i.tenant == t.id) {
            all.tenants.insert(t.id, t.clone());
        }
    }
    let events = to_all(
        &all,
        caller.email.as_str(),
        "release.edited",
        json!({ "name": r.name, "planned_start": r.planned_start, "planned_end": r.planned_end, "steps": r.record.runbook.len(),
                "plan_reopened": replanned.reopened, "overrides_dropped": replanned.overrides_dropped,
                "start_unscheduled": replanned.start_unscheduled }),
        now,
    );
    let write = ReleaseWrite {
        events,
        ..Default::default()
    };
    save(state, &r, expected, write, now).await
}

/// Cancels a release that has not deployed, as `actor` (authorized by
/// the caller): its scheduled changes are approved again, for another
/// release.
pub async fn cancel(state: &AppState, loaded: &Loaded, actor: &str) -> ApiResult<Release> {
    let mut r = loaded.release.clone();
    if !r.state.plannable() {
        return Err(ApiError::state(format!(
            "{} is {}; only a release that has not deployed is cancelled",
            r.number, r.state
        )));
    }
    let expected = r.version;
    let now = state.now();
    let mut write = ReleaseWrite::default();
    for inv in schedule::involved(state, loaded).await? {
        for c in &inv.changes {
            // Another release still holds it: it stays as that one left it.
            use ReleaseState::*;
            let held = [BuildAndTest, Ready, Deploying, RollingBack];
            if other_release_of(state, &r, inv.tenant.id, c, &held)
                .await?
                .is_some()
            {
                continue;
            }
            let mut moved = c.clone();
            let mut w = ChangeWrite::default();
            match c.state {
                ChangeState::Scheduled => {
                    move_to(&mut moved, ChangeState::Approved)?;
                    w.events.push(change_event(
                        actor,
                        &moved,
                        "change.unscheduled",
                        json!({ "release": r.number.to_string() }),
                        now,
                    ));
                }
                // Delivered in part by an earlier release, and this one
                // was to deliver the rest: its implementer records how it
                // ended (complete, or fail) on the change.
                ChangeState::Implementing => {
                    w.events.push(change_event(
                        actor,
                        &moved,
                        "change.stage-cancelled",
                        json!({ "release": r.number.to_string(),
                                "next": "no release delivers the rest; its implementer records the change implemented or failed" }),
                        now,
                    ));
                }
                _ => continue,
            }
            write.changes.push((moved, c.version, w));
        }
    }
    r.state = ReleaseState::Cancelled;
    write.events = to_all(loaded, actor, "release.cancelled", json!({}), now);
    save(state, &r, expected, write, now).await
}
