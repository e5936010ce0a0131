//! The gate API (DESIGN §7): a pipeline asks whether content may ship to
//! a target of a tenant now, and with `record` reports the deployment: it
//! becomes implementation evidence on the covering change (which moves to
//! `implementing`, `implemented` or `failed`), or, when no approved change
//! covers it, an unauthorized deployment on the tenant's audit chain.
//! Pipelines authenticate with a gate token, which reaches nothing else.
//! With `wait`, a check long-polls like the agents' bundle: it answers
//! the moment a write (an approval, an edit) or the clock (a window
//! opening) lets the content through.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use changegate_core::authz::Action;
use changegate_core::change::ChangeState;
use changegate_core::gate::{GateDecision, Reason, Target, TenantGate, Verdict};
use changegate_store::{NewEvent, TokenScope};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;
use utoipa::ToSchema;

use super::Body;
use crate::app::implement::{self, Stage, Via};
use crate::auth::{Caller, new_token};
use crate::dto::{NewTokenBody, TokenView};
use crate::error::{ApiError, ApiResult};
use crate::tenant::InTenant;
use crate::{AppState, NothingWritten};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GateCheckBody {
    /// The tenant (slug), e.g. `client-a`.
    pub tenant: String,
    /// Where the content ships: `{"pipeline": {"environment": "production"}}`,
    /// `{"configuration_item": "edge-firewall"}` or `{"workload": {"cluster",
    /// "namespace", "kind", "name", "labels"}}`.
    #[schema(value_type = Object)]
    pub target: Target,
    /// What ships: image digests or artifact hashes, each of which the
    /// covering change must have approved.
    #[serde(default)]
    pub artifacts: Vec<String>,
    /// Record the deployment (needs the implementer role).
    #[serde(default)]
    pub record: Option<RecordBody>,
    /// Seconds to wait (at most 60) while the gate denies for a reason
    /// that can pass (the change awaits approval, its window or release;
    /// no change covers it yet): answered as soon as a write or the clock
    /// changes the decision, or when the wait ends. A rejection or a
    /// finished change is answered at once (`settled`). Recording, if
    /// asked, follows the wait.
    #[serde(default)]
    pub wait: u64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordBody {
    /// The pipeline run, e.g. its URL.
    pub run: String,
    /// `started` (default), `succeeded` or `failed`.
    #[serde(default)]
    pub status: DeployStatus,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DeployStatus {
    #[default]
    Started,
    Succeeded,
    Failed,
}

#[derive(Serialize, ToSchema)]
pub struct GateView {
    /// `allow`, `deny` or `warn` (allowed, with a warning: enforcement is `Warn`).
    pub verdict: String,
    /// A stable reason, e.g. `covered`, `not-approved`, `window-closed`.
    pub reason: String,
    /// What to do next, or what allowed it.
    pub message: String,
    /// The covering change, or the one closest to covering.
    pub change: Option<String>,
    /// The covering change's approved fingerprint.
    pub fingerprint: Option<String>,
    pub configuration_items: Vec<String>,
    /// With `record`: what was written.
    pub recorded: Option<RecordedView>,
    /// A denial waiting cannot change: the covering change was rejected,
    /// cancelled or is over. A pipeline stops waiting.
    pub settled: bool,
}

#[derive(Serialize, ToSchema)]
pub struct RecordedView {
    /// `deployment.recorded` or `deployment.unauthorized`.
    pub event: String,
    /// The covering change's state after recording.
    pub change_state: Option<String>,
}

/// Ask the gate; with `record`, record the deployment.
#[utoipa::path(post, path = "/api/v1/gate/check", tag = "gate", request_body = GateCheckBody,
    responses((status = 200, body = GateView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn check(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Body(body): Body<GateCheckBody>,
) -> ApiResult<Response> {
    let t = InTenant::resolve(&state, caller, &body.tenant).await?;
    t.authorize(if body.record.is_some() {
        Action::Implement
    } else {
        Action::Read
    })?;
    if let Some(i) = body.artifacts.iter().position(|a| a.trim().is_empty()) {
        return Err(ApiError::invalid(
            format!("artifacts[{i}]"),
            "an artifact is an image digest or a hash, e.g. registry.example/app@sha256:…",
        ));
    }
    if body
        .record
        .as_ref()
        .is_some_and(|r| r.run.trim().is_empty())
    {
        return Err(ApiError::invalid(
            "record.run",
            "say which pipeline run deploys, e.g. its URL",
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(body.wait.min(MAX_WAIT_SECONDS));
    // Woken by writes to this tenant (or to none in particular) only.
    let mut writes = state.writes.subscribe_tenant(t.tenant.slug.as_str());
    // The change a denial named while waiting: rejected, it leaves the
    // gate (which then finds no change), and that settles it too.
    let mut named = None;
    // Counted among the waiting checks from its first wait until it
    // answers or its caller goes away.
    let mut waiting = None;
    let (mut decision, settled, now) = loop {
        let now = state.now();
        let snapshot = state.snapshots.of(&state, &t.tenant).await?;
        let decision = snapshot.gate.check(&body.target, &body.artifacts, now);
        named = decision.change.or(named);
        let settled = decision.verdict == Verdict::Deny
            && settled(&state, &t, &snapshot.gate, &decision, named).await?;
        let at = Instant::now();
        if decision.verdict != Verdict::Deny || settled || at >= deadline {
            break (decision, settled, now);
        }
        waiting.get_or_insert_with(|| state.gate_waits.enter());
        // Woken by any write through this server; every few seconds
        // regardless, for a window opening or another replica's write.
        let recheck = (at + Duration::from_secs(3)).min(deadline);
        tokio::select! {
            _ = writes.changed() => {}
            _ = tokio::time::sleep_until(recheck) => {}
        }
    };
    let recorded = match &body.record {
        Some(record) => {
            let (recorded, refused) =
                record_deployment(&state, &t, &body, record, &decision, now).await?;
            if let Some(why) = refused {
                decision.verdict = Verdict::Deny;
                decision.reason = Reason::NotApproved;
                decision.message = why;
                decision.fingerprint = None;
            }
            Some(recorded)
        }
        None => None,
    };
    let mut response = Json(GateView {
        verdict: match decision.verdict {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Warn => "warn",
        }
        .to_string(),
        reason: decision.reason.as_str().to_string(),
        message: decision.message,
        change: decision.change.map(|n| n.to_string()),
        fingerprint: decision.fingerprint,
        configuration_items: decision.configuration_items,
        recorded,
        settled,
    })
    .into_response();
    if body.record.is_none() {
        response.extensions_mut().insert(NothingWritten);
    }
    Ok(response)
}

/// How long one gate check may wait.
const MAX_WAIT_SECONDS: u64 = 60;

/// Whether a denial is over for good: the change that came closest (now,
/// or earlier in this wait: `named`) was rejected, cancelled or is over
/// (its approval expired, it finished). Waiting cannot change that.
/// The snapshot answers for a change it holds; the database only for one
/// that left it (a thousand waiting checks woken by one write read no
/// rows).
async fn settled(
    state: &AppState,
    t: &InTenant,
    gate: &TenantGate,
    d: &GateDecision,
    named: Option<changegate_core::ChangeNumber>,
) -> ApiResult<bool> {
    if d.reason == Reason::Finished {
        return Ok(true);
    }
    let Some(n) = d.change.or(named) else {
        return Ok(false);
    };
    let over = |s: ChangeState| s.is_final() || s == ChangeState::Rejected;
    if let Some(held) = gate.state_of(n) {
        return Ok(over(held));
    }
    let c = state.store.change(t.tenant.id, n).await?;
    Ok(over(c.state))
}

/// Record the deployment: on the covering change (which it starts, then
/// moves as the status says) when the gate covered it and the change may
/// still start with the fingerprint judged; else as an unauthorized
/// deployment where the target is governed, plain evidence where not.
/// `Some(why)` when a covered deployment was refused at recording (the
/// change moved since the decision): the answer is then a denial.
async fn record_deployment(
    state: &AppState,
    t: &InTenant,
    body: &GateCheckBody,
    record: &RecordBody,
    decision: &GateDecision,
    now: DateTime<Utc>,
) -> ApiResult<(RecordedView, Option<String>)> {
    let run = record.run.trim();
    let detail = json!({
        "target": body.target,
        "artifacts": body.artifacts,
        "run": run,
        "status": record.status,
        "verdict": decision.verdict,
        "reason": decision.reason.as_str(),
        "message": decision.message,
        "fingerprint": decision.fingerprint,
    });
    let covering = match (decision.reason, decision.change) {
        (Reason::Covered, Some(n)) => n,
        _ => {
            let action = match decision.reason {
                Reason::NotGoverned | Reason::EnforcementOff => "deployment.recorded",
                _ => "deployment.unauthorized",
            };
            state
                .store
                .record_events(
                    t.tenant.id,
                    vec![NewEvent {
                        actor: t.actor(),
                        action: action.into(),
                        subject: body.target.to_string(),
                        detail,
                        at: now,
                    }],
                )
                .await?;
            return Ok((
                RecordedView {
                    event: action.into(),
                    change_state: None,
                },
                None,
            ));
        }
    };
    let actor = t.actor();
    let recorded = implement::record(
        state,
        implement::Deployment {
            tenant: &t.tenant,
            change: covering,
            who: Some(t.caller.user),
            actor: &actor,
            via: Via::Gate,
            stage: match record.status {
                DeployStatus::Started => Stage::Started,
                DeployStatus::Succeeded => Stage::Succeeded,
                DeployStatus::Failed => Stage::Failed,
            },
            judged: decision.fingerprint.as_deref(),
            detail,
            what: format!("pipeline run {run}"),
        },
        now,
    )
    .await?;
    Ok((
        RecordedView {
            event: recorded.event.into(),
            change_state: recorded.change_state.map(|s| s.as_str().to_string()),
        },
        recorded.why,
    ))
}

/// A token for a pipeline: it reaches only this tenant's gate API, with
/// your roles here (record needs the implementer role). Shown once.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/gate-tokens", tag = "gate",
    params(("tenant" = String, Path)), request_body = NewTokenBody,
    responses((status = 201, body = TokenView)))]
pub async fn create_token(
    State(state): State<AppState>,
    t: InTenant,
    Body(body): Body<NewTokenBody>,
) -> ApiResult<(StatusCode, Json<TokenView>)> {
    t.authorize(Action::Implement)?;
    let name = body.name.trim();
    if name.is_empty() {
        return Err(ApiError::invalid(
            "name",
            "name the token after the pipeline that uses it, e.g. github-actions-production",
        ));
    }
    let (token, hash) = new_token();
    let created = state
        .store
        .create_token(
            t.caller.user,
            name,
            &hash,
            &TokenScope::Gate(t.tenant.id),
            state.now(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenView {
            id: created.id,
            name: name.to_string(),
            token,
        }),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct DeploymentView {
    pub at: DateTime<Utc>,
    /// Who reported it (the gate token's owner, or `agent of <cluster>`).
    pub actor: String,
    /// `deployment.recorded` or `deployment.unauthorized`.
    pub event: String,
    /// The change it is evidence for, or the target when none covers it.
    pub subject: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// Deployments reported through the gate or by a cluster's agent, oldest
/// first, unauthorized ones included: read from the tenant's audit chain.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/deployments", tag = "gate",
    params(("tenant" = String, Path)), responses((status = 200, body = [DeploymentView])))]
pub async fn deployments(
    State(state): State<AppState>,
    t: InTenant,
) -> ApiResult<Json<Vec<DeploymentView>>> {
    t.authorize(Action::Read)?;
    let (events, _) = state.store.audit_events(t.tenant.id).await?;
    Ok(Json(
        events
            .into_iter()
            .filter(|e| e.body.action.starts_with("deployment."))
            .map(|e| DeploymentView {
                at: e.body.at,
                actor: e.body.actor,
                event: e.body.action,
                subject: e.body.subject,
                detail: serde_json::from_str(&e.body.detail).unwrap_or_default(),
            })
            .collect(),
    ))
}
