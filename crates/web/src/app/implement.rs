//! Implementation: what may start a change, and recording how it went.
//!
//! A change starts only while it is approved, its approval has not
//! expired, and (for a pipeline's record or the agent's report) it still
//! carries the fingerprint that was judged; a change a release holds
//! starts only through that release; an emergency change starts before
//! its approval only by a person, where the policy allows, and then owes
//! its approval by the policy's deadline. Where the policy keeps
//! implementers from approving, whoever starts a change must not have
//! approved it. The check and the move are one write under the change's
//! version, so nothing that changed the change in between slips through.

use changegate_core::ChangeNumber;
use changegate_core::UserId;
use changegate_core::board::Decision;
use changegate_core::change::{ChangeState, ChangeType};
use changegate_core::gate::Target;
use changegate_core::policy::PolicySpec;
use changegate_core::window::{self, WindowVerdict};
use changegate_store::{Change, ChangeWrite, NewEvent, Store, Tenant};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use super::change::{event, load, move_to, save};
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::workflow;

/// What starts a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A person, with `/start` (or the portal).
    Person,
    /// A pipeline recording its deployment through the gate.
    Gate,
    /// A cluster's agent reporting a rollout it admitted.
    Agent,
    /// A release's deploy phase.
    Release,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Person => "person",
            Via::Gate => "gate",
            Via::Agent => "agent",
            Via::Release => "release",
        }
    }
}

/// Why `c` may not start now through `via`, if it may not. `judged` is
/// the fingerprint a gate decision covered, when one did.
pub fn refusal(
    c: &Change,
    policy: &PolicySpec,
    via: Via,
    judged: Option<&str>,
    now: DateTime<Utc>,
) -> Option<String> {
    let n = c.number;
    match c.state {
        ChangeState::Approved => {}
        ChangeState::Scheduled if via == Via::Release => {}
        ChangeState::Scheduled => {
            return Some(format!(
                "{n} is scheduled in a release; it starts when the release manager authorizes the release's deploy phase"
            ));
        }
        ChangeState::AwaitingApproval
            if via == Via::Person
                && c.kind == ChangeType::Emergency
                && policy.emergency.retrospective =>
        {
            return None;
        }
        ChangeState::AwaitingApproval => {
            return Some(format!("{n} awaits approval; it cannot start yet"));
        }
        other => {
            return Some(format!("{n} is {other}; only an approved change starts"));
        }
    }
    if c.approval_expires_at.is_some_and(|e| e <= now) {
        return Some(format!("the approval of {n} expired; submit it again"));
    }
    if matches!(via, Via::Gate | Via::Agent) && judged.is_none() {
        return Some(format!(
            "{n} was not started: the report names no fingerprint, so it cannot be tied to the revision that was approved"
        ));
    }
    if let Some(judged) = judged
        && c.fingerprint.as_deref() != Some(judged)
    {
        return Some(format!(
            "{n} was revised since it was approved for this deployment (fingerprint {judged}); the new revision needs its own approval"
        ));
    }
    None
}

/// With `implementerMayNotApprove`, a person who approved the change's
/// current revision (in their seat or another's) may not start it.
pub async fn check_separation(
    store: &dyn Store,
    c: &Change,
    policy: &PolicySpec,
    who: UserId,
) -> ApiResult<()> {
    if !policy.implementer_may_not_approve {
        return Ok(());
    }
    let approved = store.approvals(c.tenant, c.number).await?.iter().any(|a| {
        a.revision == c.revision
            && a.decision == Decision::Approve
            && (a.approver == who || a.seat() == who)
    });
    if approved {
        return Err(ApiError::forbidden(format!(
            "{} was approved by the person who would implement it; the policy keeps approvers from implementing what they approved: another implementer starts it",
            c.number
        )));
    }
    Ok(())
}

/// A change that names its implementer is started by them only.
fn named_implementer(c: &Change, who: UserId) -> ApiResult<()> {
    if c.implementer.is_some_and(|i| i != who) {
        return Err(ApiError::forbidden(format!(
            "{} names another implementer; they start it",
            c.number
        )));
    }
    Ok(())
}

/// Who starts a change, how, and what is recorded of it.
pub struct Start<'a> {
    /// The person starting it, if one (a pipeline's token owner, the
    /// release's implementer); none for an agent.
    pub who: Option<UserId>,
    pub actor: &'a str,
    pub via: Via,
    /// The fingerprint a gate decision covered, when one did.
    pub judged: Option<&'a str>,
    pub detail: serde_json::Value,
}

/// Move `c` to implementing as `s` says, after the checks above; the
/// events that record it.
pub async fn begin(
    store: &dyn Store,
    c: &mut Change,
    policy: &PolicySpec,
    s: Start<'_>,
    now: DateTime<Utc>,
) -> ApiResult<Vec<NewEvent>> {
    let Start {
        who,
        actor,
        via,
        judged,
        detail,
    } = s;
    if let Some(why) = refusal(c, policy, via, judged, now) {
        return Err(ApiError::state(why));
    }
    // An emergency started before its approval owes that first; an
    // approved change the policy has the client accept waits for it.
    let acceptance_checked =
        c.state != ChangeState::AwaitingApproval && super::accept::covering(policy, c).is_some();
    if acceptance_checked && let Some(why) = super::accept::missing(store, c, policy).await? {
        return Err(ApiError::state(why));
    }
    if let Some(u) = who {
        named_implementer(c, u)?;
        check_separation(store, c, policy, u).await?;
    }
    let mut events = Vec::new();
    if c.state == ChangeState::AwaitingApproval {
        let due = now + TimeDelta::hours(i64::from(policy.emergency.deadline_hours));
        c.retrospective_due_at = Some(due);
        events.push(event(
            actor,
            c,
            "change.retrospective-approval-owed",
            json!({ "due": due, "emergency": true }),
            now,
        ));
    }
    move_to(c, ChangeState::Implementing)?;
    if let Some(u) = who {
        c.implementer.get_or_insert(u);
    }
    let mut detail = detail;
    if let Some(d) = detail.as_object_mut() {
        d.insert("via".into(), json!(via.as_str()));
        // The evidence's client-acceptance control counts this start
        // (not an emergency started before its approval, which it skips).
        if acceptance_checked {
            d.insert("acceptance_required".into(), json!(true));
        }
    }
    events.push(event(actor, c, "change.started", detail, now));
    Ok(events)
}

/// `POST .../start` by a person: the named implementer (or anyone with
/// the role when none is named), inside the tenant's windows now.
pub async fn start(
    state: &AppState,
    tenant: &Tenant,
    who: UserId,
    actor: &str,
    n: &str,
    note: &str,
) -> ApiResult<Change> {
    let store = state.store.as_ref();
    let mut c = load(store, tenant.id, n).await?;
    named_implementer(&c, who)?;
    let expected = c.version;
    let now = state.now();
    let (_, policy) = workflow::policy(store, tenant.id).await?;
    // Said before the window, which matters only once it may start at all.
    if let Some(why) = refusal(&c, &policy, Via::Person, None, now) {
        return Err(ApiError::state(why));
    }
    if c.state != ChangeState::AwaitingApproval
        && let Some(why) = super::accept::missing(store, &c, &policy).await?
    {
        return Err(ApiError::state(why));
    }
    let requires_window = policy.window_required.contains(&c.kind);
    let compiled = workflow::windows(store, tenant.id).await?;
    let verdict = window::evaluate(
        &compiled,
        tenant.slug.as_str(),
        c.kind,
        requires_window,
        now,
    );
    if !verdict.permits() {
        return Err(ApiError::state(format!(
            "{} cannot start now: {}",
            c.number,
            verdict.explain()
        )));
    }
    let window = match &verdict {
        WindowVerdict::Open { window, .. } => Some(window.clone()),
        _ => None,
    };
    let events = begin(
        store,
        &mut c,
        &policy,
        Start {
            who: Some(who),
            actor,
            via: Via::Person,
            judged: None,
            detail: json!({ "note": note, "window": window }),
        },
        now,
    )
    .await?;
    c.implementer = Some(who);
    save(
        state,
        &c,
        expected,
        ChangeWrite {
            events,
            ..Default::default()
        },
        now,
    )
    .await
}

/// How a deployment went, as a pipeline or an agent reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Started,
    Succeeded,
    Failed,
    RolledBack,
}

impl Stage {
    fn target(self) -> ChangeState {
        match self {
            Stage::Started => ChangeState::Implementing,
            Stage::Succeeded => ChangeState::Implemented,
            Stage::Failed => ChangeState::Failed,
            Stage::RolledBack => ChangeState::RolledBack,
        }
    }

    /// `c` is where this stage would put it already (a report repeated).
    pub fn reached(self, c: &Change) -> bool {
        use ChangeState::*;
        c.state == self.target()
            || (self == Stage::Succeeded && matches!(c.state, InReview | Closed))
            || (self == Stage::Started
                && matches!(
                    c.state,
                    Implemented | Failed | RolledBack | InReview | Closed
                ))
    }
}

/// A deployment a pipeline or an agent reports under a covering change.
pub struct Deployment<'a> {
    pub tenant: &'a Tenant,
    pub change: ChangeNumber,
    /// The person behind it (a gate token's owner); none for an agent.
    pub who: Option<UserId>,
    pub actor: &'a str,
    pub via: Via,
    pub stage: Stage,
    /// The fingerprint the gate decision (or the agent's bundle) covered.
    pub judged: Option<&'a str>,
    /// What is recorded of it (target, artifacts, run, ...).
    pub detail: serde_json::Value,
    /// For people reading the change: what it was, e.g. `pipeline run X`.
    pub what: String,
}

/// What recording a deployment wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// `deployment.recorded`, `deployment.unauthorized`, or `none` when the
    /// change already was where the report puts it.
    pub event: &'static str,
    pub change_state: Option<ChangeState>,
    /// Why it was recorded as unauthorized, when it was.
    pub why: Option<String>,
}

/// Record `d` on its change: start it where it may start, then move it as
/// the stage says; where the change may not start (no longer approved,
/// revised, held by a release, not approved at all), the deployment is
/// recorded as unauthorized on the tenant's chain instead and the change
/// is left as it is.
pub async fn record(
    state: &AppState,
    d: Deployment<'_>,
    now: DateTime<Utc>,
) -> ApiResult<Recorded> {
    let store = state.store.as_ref();
    let (_, policy) = workflow::policy(store, d.tenant.id).await?;
    for _ in 0..20 {
        let mut c = store.change(d.tenant.id, d.change).await?;
        if d.via == Via::Agent && d.stage.reached(&c) {
            return Ok(Recorded {
                event: "none",
                change_state: Some(c.state),
                why: None,
            });
        }
        let expected = c.version;
        let mut events = Vec::new();
        // A change under way or past it (a rollback reported after the
        // failure it undoes) moves on from where it is; any other must
        // start first, through the checks of every start.
        let under_way = matches!(
            c.state,
            ChangeState::Implementing
                | ChangeState::Implemented
                | ChangeState::Failed
                | ChangeState::RolledBack
                | ChangeState::InReview
                | ChangeState::Closed
        );
        if !under_way {
            let started = begin(
                store,
                &mut c,
                &policy,
                Start {
                    who: d.who,
                    actor: d.actor,
                    via: d.via,
                    judged: d.judged,
                    detail: json!({ "note": format!("{} started", d.what) }),
                },
                now,
            )
            .await;
            // A start refused (by the change's state or by who would
            // start it) leaves the deployment unauthorized, on the chain.
            match started {
                Ok(e) => events.extend(e),
                Err(e)
                    if matches!(
                        e.status,
                        axum::http::StatusCode::CONFLICT | axum::http::StatusCode::FORBIDDEN
                    ) =>
                {
                    return unauthorized(state, &d, &c, e.message, now).await;
                }
                Err(e) => return Err(e),
            }
        }
        events.push(event(
            d.actor,
            &c,
            "deployment.recorded",
            d.detail.clone(),
            now,
        ));
        let outcome = match d.stage {
            Stage::Started => None,
            Stage::Succeeded => {
                move_to(&mut c, ChangeState::Implemented)?;
                let mut detail = d.detail.clone();
                if let Some(o) = detail.as_object_mut() {
                    o.insert("note".into(), json!(format!("{} succeeded", d.what)));
                    o.insert(
                        "documentation".into(),
                        json!(format!("deployed by {}", d.what)),
                    );
                    o.insert(
                        "configuration_items".into(),
                        json!(c.content.configuration_items),
                    );
                }
                events.push(event(d.actor, &c, "change.implemented", detail, now));
                if !policy.needs_review(c.kind) {
                    move_to(&mut c, ChangeState::Closed)?;
                    events.push(event(
                        d.actor,
                        &c,
                        "change.closed",
                        json!({ "review": "not required" }),
                        now,
                    ));
                }
                Some("implemented")
            }
            Stage::Failed => {
                move_to(&mut c, ChangeState::Failed)?;
                let mut detail = d.detail.clone();
                if let Some(o) = detail.as_object_mut() {
                    o.insert("note".into(), json!(format!("{} failed", d.what)));
                }
                events.push(event(d.actor, &c, "change.failed", detail, now));
                Some("failed")
            }
            Stage::RolledBack => {
                move_to(&mut c, ChangeState::RolledBack)?;
                events.push(event(
                    d.actor,
                    &c,
                    "change.rolled-back",
                    d.detail.clone(),
                    now,
                ));
                Some("rolled-back")
            }
        };
        // As when a person records the outcome: the requester and the
        // communication plan are told, through the outbox, in this write.
        let messages = match outcome {
            Some(outcome) => {
                crate::mail::outcome_notices(store, &state.public_url, d.tenant, &c, outcome, now)
                    .await?
            }
            None => Vec::new(),
        };
        let write = ChangeWrite {
            events,
            messages,
            ..Default::default()
        };
        match store.save_change(&c, expected, write, now).await {
            Ok(saved) => {
                return Ok(Recorded {
                    event: "deployment.recorded",
                    change_state: Some(saved.state),
                    why: None,
                });
            }
            // Moved meanwhile (a decision, an edit): judged again.
            Err(changegate_store::StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict("the change is busy; retry"))
}

/// The deployment, recorded as unauthorized: the covering change could not
/// start (`why`).
async fn unauthorized(
    state: &AppState,
    d: &Deployment<'_>,
    c: &Change,
    why: String,
    now: DateTime<Utc>,
) -> ApiResult<Recorded> {
    let mut detail = d.detail.clone();
    if let Some(o) = detail.as_object_mut() {
        o.insert("change".into(), json!(c.number.to_string()));
        o.insert("refused".into(), json!(why));
    }
    let subject = detail
        .get("target")
        .and_then(|t| serde_json::from_value::<Target>(t.clone()).ok())
        .map(|t| t.to_string())
        .unwrap_or_else(|| c.number.to_string());
    state
        .store
        .record_events(
            d.tenant.id,
            vec![NewEvent {
                actor: d.actor.into(),
                action: "deployment.unauthorized".into(),
                subject,
                detail,
                at: now,
            }],
        )
        .await?;
    Ok(Recorded {
        event: "deployment.unauthorized",
        change_state: Some(c.state),
        why: Some(why),
    })
}
