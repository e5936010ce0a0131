//! The gate API (DESIGN §7): a pipeline asks whether content may ship to
//! a target of a tenant now, and with `record` reports the deployment: it
//! becomes implementation evidence on the covering change (which moves to
//! `implementing`, `implemented` or `failed`), or, when no approved change
//! covers it, an unauthorized deployment on the tenant's audit chain.
//! Pipelines authenticate with a gate token, which reaches nothing else.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use changegate_core::authz::Action;
use changegate_core::change::ChangeState;
use changegate_core::gate::{GateDecision, Reason, Target, Verdict};
use changegate_store::{ChangeWrite, NewEvent, TokenScope};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::Body;
use super::lifecycle::{event, move_to, save};
use crate::auth::{Caller, new_token};
use crate::dto::{NewTokenBody, TokenView};
use crate::error::{ApiError, ApiResult};
use crate::tenant::InTenant;
use crate::workflow;
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
    let now = state.now();
    let snapshot = state.snapshots.of(&state, &t.tenant).await?;
    let decision = snapshot.gate.check(&body.target, &body.artifacts, now);
    let recorded = match &body.record {
        Some(record) => Some(record_deployment(&state, &t, &body, record, &decision, now).await?),
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
    })
    .into_response();
    if body.record.is_none() {
        response.extensions_mut().insert(NothingWritten);
    }
    Ok(response)
}

async fn record_deployment(
    state: &AppState,
    t: &InTenant,
    body: &GateCheckBody,
    record: &RecordBody,
    decision: &GateDecision,
    now: DateTime<Utc>,
) -> ApiResult<RecordedView> {
    let detail = json!({
        "target": body.target,
        "artifacts": body.artifacts,
        "run": record.run.trim(),
        "status": record.status,
        "verdict": decision.verdict,
        "reason": decision.reason.as_str(),
        "message": decision.message,
        "fingerprint": decision.fingerprint,
    });
    let covering = match (decision.reason, decision.change) {
        (Reason::Covered, Some(n)) => n,
        _ => {
            // Not covered by an approved change: unauthorized where the
            // target is governed, plain evidence where it is not.
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
            return Ok(RecordedView {
                event: action.into(),
                change_state: None,
            });
        }
    };
    let mut c = state.store.change(t.tenant.id, covering).await?;
    let expected = c.version;
    let mut events = Vec::new();
    let run = record.run.trim();
    if c.state != ChangeState::Implementing {
        move_to(&mut c, ChangeState::Implementing)?;
        c.implementer.get_or_insert(t.caller.user);
        events.push(event(
            t,
            &c,
            "change.started",
            json!({ "note": format!("deployment by pipeline run {run}"), "via": "gate" }),
            now,
        ));
    }
    events.push(event(t, &c, "deployment.recorded", detail, now));
    match record.status {
        DeployStatus::Started => {}
        DeployStatus::Succeeded => {
            move_to(&mut c, ChangeState::Implemented)?;
            events.push(event(
                t,
                &c,
                "change.implemented",
                json!({ "note": format!("pipeline run {run} succeeded"),
                        "documentation": format!("deployed {} by pipeline run {run}", body.artifacts.join(", ")),
                        "configuration_items": c.content.configuration_items }),
                now,
            ));
            let (_, policy) = workflow::policy(state.store.as_ref(), t.tenant.id).await?;
            if !policy.needs_review(c.kind) {
                move_to(&mut c, ChangeState::Closed)?;
                events.push(event(
                    t,
                    &c,
                    "change.closed",
                    json!({ "review": "not required" }),
                    now,
                ));
            }
        }
        DeployStatus::Failed => {
            move_to(&mut c, ChangeState::Failed)?;
            events.push(event(
                t,
                &c,
                "change.failed",
                json!({ "note": format!("pipeline run {run} failed") }),
                now,
            ));
        }
    }
    // As when a person records the outcome: the requester and the
    // communication plan are told, through the outbox, in this transaction.
    let messages = match record.status {
        DeployStatus::Started => Vec::new(),
        DeployStatus::Succeeded => {
            crate::mail::outcome_notices(
                state.store.as_ref(),
                &state.public_url,
                &t.tenant,
                &c,
                "implemented",
                now,
            )
            .await?
        }
        DeployStatus::Failed => {
            crate::mail::outcome_notices(
                state.store.as_ref(),
                &state.public_url,
                &t.tenant,
                &c,
                "failed",
                now,
            )
            .await?
        }
    };
    let saved = save(
        state,
        &c,
        expected,
        ChangeWrite {
            events,
            messages,
            ..Default::default()
        },
    )
    .await?;
    Ok(RecordedView {
        event: "deployment.recorded".into(),
        change_state: Some(saved.state.as_str().to_string()),
    })
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
    state
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
