//! What a release does to the changes it delivers, in one place for the
//! API, the portal and the scheduler's start at a planned time: loading a
//! release as a caller may see it, authorizing its phases (planning
//! schedules the changes; deploying starts each through the same checks
//! as any start, and moves every change it touches under that change's
//! version, so two releases never deploy one change at once), and
//! finishing it (its outcome written to each change still implementing;
//! a change that moved on during the release keeps its own, recorded).

use changegate_core::authz::{self, Action, Denied, Principal};
use changegate_core::change::ChangeState;
use changegate_core::release::{self, Outcome, Phase, ReleaseState, Step, StepKind, StepStatus};
use changegate_core::{ReleaseNumber, Role, TenantId, UserId};
use changegate_store::{Change, ChangeWrite, NewEvent, Release, ReleaseWrite, StoreError, Tenant};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

use super::change::{event, move_to};
use super::implement::{self, Via};
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::schedule::{self, Involved};

pub mod plan;

/// A release and the tenants it delivers to, as the caller may see it.
pub struct Loaded {
    pub release: Release,
    pub tenants: BTreeMap<TenantId, Tenant>,
}

/// The release, if the caller sees one of its tenants (else 404).
pub async fn load(state: &AppState, caller: &Principal, n: &str) -> ApiResult<Loaded> {
    let release = state.store.release(release_number(n)?).await?;
    let tenants: BTreeMap<TenantId, Tenant> = state
        .snapshots
        .tenants(state)
        .await?
        .iter()
        .filter(|t| release.changes.iter().any(|i| i.tenant == t.id))
        .map(|t| (t.id, t.clone()))
        .collect();
    if !tenants.keys().any(|t| caller.sees(*t)) {
        return Err(ApiError::not_found("release"));
    }
    Ok(Loaded { release, tenants })
}

pub fn release_number(s: &str) -> ApiResult<ReleaseNumber> {
    s.parse().map_err(|_| ApiError::not_found("release"))
}

/// `action` in every tenant of `tenants`: a tenant the caller is not
/// bound to forbids it without naming it.
pub fn authorize_all(
    caller: &Principal,
    tenants: impl IntoIterator<Item = TenantId>,
    action: Action,
) -> ApiResult<()> {
    for t in tenants {
        match authz::authorize(caller, t, action) {
            Ok(()) => {}
            Err(Denied::Hidden) => {
                return Err(ApiError::forbidden(
                    "this release delivers changes of a tenant you are not bound to; its release manager acts on it",
                ));
            }
            Err(denied) => return Err(denied.into()),
        }
    }
    Ok(())
}

/// The steps a reader of `tenants` sees: those about their changes and
/// those about no change in particular.
pub fn steps_seen_by<'a>(
    r: &'a Release,
    tenants: &BTreeSet<TenantId>,
) -> impl Iterator<Item = (usize, &'a Step)> {
    r.record.runbook.iter().enumerate().filter(move |(_, s)| {
        s.change.as_ref().is_none_or(|n| {
            r.changes
                .iter()
                .any(|i| tenants.contains(&i.tenant) && i.change.to_string() == *n)
        })
    })
}

/// What the rollback restored, as far as a reader of `tenants` may read.
pub fn restored_seen_by(r: &Release, tenants: &BTreeSet<TenantId>) -> String {
    steps_seen_by(r, tenants)
        .filter(|(_, s)| s.kind == StepKind::Rollback && s.status == StepStatus::Done)
        .map(|(_, s)| s.evidence.clone())
        .collect::<Vec<_>>()
        .join("; ")
}

/// One event for every tenant of the release.
pub fn to_all(
    loaded: &Loaded,
    actor: &str,
    action: &str,
    detail: serde_json::Value,
    at: DateTime<Utc>,
) -> Vec<(TenantId, NewEvent)> {
    loaded
        .tenants
        .keys()
        .map(|t| {
            (
                *t,
                NewEvent {
                    actor: actor.to_string(),
                    action: action.into(),
                    subject: loaded.release.number.to_string(),
                    detail: detail.clone(),
                    at,
                },
            )
        })
        .collect()
}

/// Another release of `c` than `r` in one of `states`, if there is one.
pub async fn other_release_of(
    state: &AppState,
    r: &Release,
    tenant: TenantId,
    c: &Change,
    states: &[ReleaseState],
) -> ApiResult<Option<Release>> {
    Ok(state
        .store
        .releases_of_change(tenant, c.number)
        .await?
        .into_iter()
        .find(|o| o.number != r.number && states.contains(&o.state)))
}

/// A change another release is deploying (or rolling back) is not
/// deployed by a second one at the same time: the stages of a change go
/// one after the other, so the outcome of each lands on a change in a
/// known state.
pub async fn busy(state: &AppState, r: &Release, inv: &Involved, c: &Change) -> ApiResult<()> {
    use ReleaseState::*;
    match other_release_of(state, r, inv.tenant.id, c, &[Deploying, RollingBack]).await? {
        Some(o) => Err(ApiError::state(format!(
            "{} of {} is being delivered by {} ({}); finish that release before starting this one",
            c.number, inv.tenant.slug, o.number, o.state
        ))),
        None => Ok(()),
    }
}

pub fn refusal(e: release::Refusal) -> ApiError {
    match e {
        release::Refusal::State { .. } => ApiError::state(e.to_string()),
        release::Refusal::Runbook(m) => ApiError::state(m),
    }
}

/// Who implements `c` in this release: its named implementer, else the
/// person authorizing deployment; either must hold the implementer role
/// in the change's tenant (DESIGN §5, qualified implementers) and, where
/// the policy keeps implementers from approving, must not have approved it.
pub async fn implementer_for(
    state: &AppState,
    caller: &Principal,
    inv: &Involved,
    c: &Change,
) -> ApiResult<UserId> {
    let who = c.implementer.unwrap_or(caller.user);
    let roles = state.store.roles_of(who).await?;
    if !roles
        .get(&inv.tenant.id)
        .is_some_and(|r| r.contains(&Role::Implementer))
    {
        return Err(ApiError::state(format!(
            "{} of {} needs an implementer: name one with the implementer role on the change, or hold that role in {} yourself",
            c.number, inv.tenant.slug, inv.tenant.slug
        )));
    }
    implement::check_separation(state.store.as_ref(), c, &inv.policy, who).await?;
    Ok(who)
}

/// Save a release with what belongs to it; a lost race is a clear 409.
pub async fn save(
    state: &AppState,
    r: &Release,
    expected: i64,
    write: ReleaseWrite,
    at: DateTime<Utc>,
) -> ApiResult<Release> {
    state
        .store
        .save_release(r, expected, write, at)
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => ApiError::conflict(format!(
                "{} or one of its changes changed meanwhile; reload and retry",
                r.number
            )),
            other => other.into(),
        })
}

/// A change a release may not carry on with: no longer approved, or its
/// approval expired.
pub fn deployable(c: &Change, now: DateTime<Utc>) -> ApiResult<()> {
    if !matches!(
        c.state,
        ChangeState::Approved | ChangeState::Scheduled | ChangeState::Implementing
    ) {
        return Err(ApiError::state(format!(
            "{} is {}; every change of a release must be approved",
            c.number, c.state
        )));
    }
    if c.state != ChangeState::Implementing && c.approval_expires_at.is_some_and(|e| e <= now) {
        return Err(ApiError::state(format!(
            "the approval of {} expired; submit it again",
            c.number
        )));
    }
    Ok(())
}

/// Authorize `phase` of the loaded release now, as `caller` (who holds
/// the release-manager role in every tenant involved): `plan` (every
/// change approved, a slot planned; the changes become scheduled),
/// `build-and-test` (every change has test evidence), `deploy` (every
/// change still approved and startable, every tenant's window open, no
/// conflict standing; each change starts, or, delivered in stages and
/// started already, is written again under its version).
pub async fn authorize_phase(
    state: &AppState,
    caller: &Principal,
    loaded: &Loaded,
    phase: Phase,
    note: &str,
    now: DateTime<Utc>,
) -> ApiResult<Release> {
    judge_phase(state, caller, loaded, phase, note, now, false).await
}

/// [`authorize_phase`]'s checks; with `dry_run`, the release as it would
/// be, nothing written.
pub async fn judge_phase(
    state: &AppState,
    caller: &Principal,
    loaded: &Loaded,
    phase: Phase,
    note: &str,
    now: DateTime<Utc>,
    dry_run: bool,
) -> ApiResult<Release> {
    let mut r = loaded.release.clone();
    let (from, _) = release::phase_move(phase);
    if r.state != from {
        return Err(ApiError::state(format!(
            "{} is {}; the {phase} phase is authorized from {from}",
            r.number, r.state
        )));
    }
    let expected = r.version;
    let actor = caller.email.to_string();
    let involved = schedule::involved(state, loaded).await?;
    let mut write = ReleaseWrite::default();
    match phase {
        Phase::Plan => {
            let (Some(start), Some(end)) = (r.planned_start, r.planned_end) else {
                return Err(ApiError::state(format!(
                    "plan the slot of {} (planned start and end) before authorizing its plan",
                    r.number
                )));
            };
            for inv in &involved {
                let (_, policy) =
                    crate::workflow::policy(state.store.as_ref(), inv.tenant.id).await?;
                for c in &inv.changes {
                    deployable(c, now)?;
                    if c.state == ChangeState::Approved
                        && let Some(why) =
                            crate::app::accept::missing(state.store.as_ref(), c, &policy).await?
                    {
                        return Err(ApiError::state(format!(
                            "{} cannot be scheduled yet: {why}",
                            r.number
                        )));
                    }
                    if c.state == ChangeState::Approved {
                        let mut moved = c.clone();
                        move_to(&mut moved, ChangeState::Scheduled)?;
                        let mut w = ChangeWrite::default();
                        w.events.push(event(
                            &actor,
                            &moved,
                            "change.scheduled",
                            json!({ "release": r.number.to_string(), "start": start, "end": end }),
                            now,
                        ));
                        write.changes.push((moved, c.version, w));
                    }
                }
            }
        }
        Phase::BuildAndTest => {
            for inv in &involved {
                for c in &inv.changes {
                    if c.content.test_evidence.trim().is_empty() {
                        return Err(ApiError::state(format!(
                            "{} of {} has no test evidence; attach it to the change before authorizing build and test",
                            c.number, inv.tenant.slug
                        )));
                    }
                }
            }
        }
        Phase::Deploy => {
            let length = match (r.planned_start, r.planned_end) {
                (Some(s), Some(e)) => e - s,
                _ => schedule::DEFAULT_LENGTH,
            };
            let found =
                schedule::conflicts(state, &r, &involved, Some(now), Some(now + length)).await?;
            let standing = release::standing(&found, &r.record);
            if !standing.is_empty() {
                let why: Vec<&str> = standing.iter().map(|c| c.message.as_str()).collect();
                return Err(ApiError::state(format!(
                    "{} cannot start now: {}",
                    r.number,
                    why.join("; ")
                )));
            }
            for inv in &involved {
                for c in &inv.changes {
                    write
                        .changes
                        .push(deploy_one(state, caller, &r, inv, c, note, now).await?);
                }
            }
        }
    }
    r.state =
        release::authorize(r.state, &mut r.record, phase, &actor, note, now).map_err(refusal)?;
    r.record.scheduled_start = None;
    write.events = to_all(
        loaded,
        &actor,
        "release.phase-authorized",
        json!({ "phase": phase.as_str(), "note": note }),
        now,
    );
    if dry_run {
        return Ok(r);
    }
    save(state, &r, expected, write, now).await
}

/// Deploying `c` in release `r`: it is started through the one start path
/// (approved, not expired, its implementer qualified and, where the policy
/// says so, not among its approvers), or, already implementing from an
/// earlier stage, written again: either way the change's version moves in
/// the release's transaction, so a second release deploying it at the
/// same moment fails on that version instead of deploying it twice.
async fn deploy_one(
    state: &AppState,
    caller: &Principal,
    r: &Release,
    inv: &Involved,
    c: &Change,
    note: &str,
    now: DateTime<Utc>,
) -> ApiResult<(Change, i64, ChangeWrite)> {
    let actor = caller.email.as_str();
    deployable(c, now)?;
    busy(state, r, inv, c).await?;
    let implementer = implementer_for(state, caller, inv, c).await?;
    let mut moved = c.clone();
    let mut w = ChangeWrite::default();
    if c.state == ChangeState::Implementing {
        w.events.push(event(
            actor,
            &moved,
            "change.stage-started",
            json!({ "release": r.number.to_string(), "note": note }),
            now,
        ));
    } else {
        w.events = implement::begin(
            state.store.as_ref(),
            &mut moved,
            &inv.policy,
            implement::Start {
                who: Some(implementer),
                actor,
                via: Via::Release,
                judged: None,
                detail: json!({ "release": r.number.to_string(), "note": note }),
            },
            now,
        )
        .await?;
        moved.implementer = Some(implementer);
    }
    Ok((moved, c.version, w))
}

/// Finish the loaded running release now: its outcome from the runbook
/// (or, when every change moved on during the release, from what they came
/// to), written to each change still implementing; a change that moved on
/// keeps its outcome, recorded on it; a change another unfinished release
/// still delivers stays implementing.
pub async fn finish(
    state: &AppState,
    caller: &Principal,
    loaded: &Loaded,
    now: DateTime<Utc>,
) -> ApiResult<Release> {
    let mut r = loaded.release.clone();
    let expected = r.version;
    let actor = caller.email.to_string();
    let involved = schedule::involved(state, loaded).await?;
    let all: Vec<&Change> = involved.iter().flat_map(|i| i.changes.iter()).collect();
    let outcome = match release::finish(r.state, &mut r.record, now) {
        Ok(outcome) => outcome,
        Err(release::Refusal::Runbook(_))
            if !all.is_empty() && all.iter().all(|c| c.state != ChangeState::Implementing) =>
        {
            release::finish_moved_on(r.state, &mut r.record, came_to(&all), now).map_err(refusal)?
        }
        Err(e) => return Err(refusal(e)),
    };
    r.state = ReleaseState::Finished;
    let mut write = ReleaseWrite::default();
    for inv in &involved {
        for c in &inv.changes {
            if let Some(moved) = finish_one(state, &r, inv, c, outcome, &actor, now).await? {
                write.changes.push(moved);
            }
        }
    }
    // Each tenant's chain says what was restored of its own.
    write.events = loaded
        .tenants
        .keys()
        .map(|t| {
            let rollback = r.record.rollback.as_ref().map(|b| {
                json!({ "authorized_by": b.authorized_by, "at": b.at, "reason": b.reason,
                        "finished_at": b.finished_at, "restored": restored_seen_by(&r, &[*t].into()) })
            });
            (
                *t,
                NewEvent {
                    actor: actor.clone(),
                    action: "release.finished".into(),
                    subject: r.number.to_string(),
                    detail: json!({ "outcome": outcome.as_str(), "validation_failures": release::validation_failures(steps_seen_by(&r, &[*t].into()).map(|(_, s)| s)), "rollback": rollback }),
                    at: now,
                },
            )
        })
        .collect();
    save(state, &r, expected, write, now).await
}

/// What the changes of a release that all moved on came to: rolled back
/// if any was, else failed if any failed, else succeeded.
fn came_to(changes: &[&Change]) -> Outcome {
    if changes.iter().any(|c| c.state == ChangeState::RolledBack) {
        Outcome::RolledBack
    } else if changes.iter().any(|c| c.state == ChangeState::Failed) {
        Outcome::Failed
    } else {
        Outcome::Succeeded
    }
}

/// The release's `outcome`, written to `c`.
async fn finish_one(
    state: &AppState,
    r: &Release,
    inv: &Involved,
    c: &Change,
    outcome: Outcome,
    actor: &str,
    now: DateTime<Utc>,
) -> ApiResult<Option<(Change, i64, ChangeWrite)>> {
    let evidence: Vec<String> = r
        .record
        .runbook
        .iter()
        .filter(|s| s.change.as_deref() == Some(c.number.to_string().as_str()))
        .filter(|s| !s.evidence.is_empty())
        .map(|s| format!("{}: {}", s.title, s.evidence))
        .collect();
    let detail = |extra: serde_json::Value| {
        let mut d = json!({ "release": r.number.to_string(), "outcome": outcome.as_str(), "evidence": evidence });
        if let (Some(d), Some(e)) = (d.as_object_mut(), extra.as_object()) {
            d.extend(e.clone());
        }
        d
    };
    let mut moved = c.clone();
    let mut w = ChangeWrite::default();
    if c.state != ChangeState::Implementing {
        // Moved on during the release (its implementer, a pipeline or an
        // agent recorded how it went): it keeps its own outcome.
        w.events.push(event(
            actor,
            &moved,
            "change.release-finished",
            detail(json!({ "kept": c.state.as_str() })),
            now,
        ));
        return Ok(Some((moved, c.version, w)));
    }
    match outcome {
        Outcome::Succeeded => {
            use ReleaseState::*;
            let unfinished = [Planning, BuildAndTest, Ready, Deploying, RollingBack];
            let later = other_release_of(state, r, inv.tenant.id, c, &unfinished)
                .await?
                .is_some();
            if later {
                w.events.push(event(
                    actor,
                    &moved,
                    "change.stage-delivered",
                    detail(json!({})),
                    now,
                ));
            } else {
                move_to(&mut moved, ChangeState::Implemented)?;
                w.events.push(event(
                    actor,
                    &moved,
                    "change.implemented",
                    detail(json!({ "documentation": format!("delivered by {}", r.number), "configuration_items": c.content.configuration_items })),
                    now,
                ));
                if !inv.policy.needs_review(c.kind) {
                    move_to(&mut moved, ChangeState::Closed)?;
                    w.events.push(event(
                        actor,
                        &moved,
                        "change.closed",
                        json!({ "review": "not required" }),
                        now,
                    ));
                }
            }
        }
        Outcome::Failed => {
            move_to(&mut moved, ChangeState::Failed)?;
            w.events.push(event(
                actor,
                &moved,
                "change.failed",
                detail(json!({})),
                now,
            ));
        }
        Outcome::RolledBack => {
            // What was restored of this tenant's, in its chain.
            let restored = restored_seen_by(r, &[inv.tenant.id].into());
            move_to(&mut moved, ChangeState::RolledBack)?;
            w.events.push(event(
                actor,
                &moved,
                "change.rolled-back",
                detail(json!({ "restored": restored })),
                now,
            ));
        }
    }
    // As when a person or a pipeline records the outcome: the requester
    // and the communication plan are told, in the same write.
    let told = match moved.state {
        ChangeState::Implemented | ChangeState::Closed => Some("implemented"),
        ChangeState::Failed => Some("failed"),
        ChangeState::RolledBack => Some("rolled-back"),
        _ => None,
    };
    if let Some(outcome) = told {
        w.messages = crate::mail::outcome_notices(
            state.store.as_ref(),
            &state.public_url,
            &inv.tenant,
            &moved,
            outcome,
            now,
        )
        .await?;
    }
    Ok(Some((moved, c.version, w)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn release_numbers_that_do_not_parse_are_not_found() {
        assert_eq!(
            release_number("REL-2").expect("as set up"),
            ReleaseNumber(2)
        );
        assert_eq!(
            release_number("CHG-2").expect_err("refused").status,
            StatusCode::NOT_FOUND
        );
    }
}
