//! What a cluster's agent reports (DESIGN §7): a rollout it admitted
//! starting, succeeding, failing or being rolled back, written onto the
//! change that covered it; and a governed spec change that no approved
//! change covers, appended to the tenant's audit chain as
//! `deployment.unauthorized`.
//!
//! An agent reports only on workloads a configuration item of the tenant
//! binds to the agent's own cluster: a token of another cluster, or a
//! workload the tenant did not bind, is answered 404 like a missing tenant.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use changegate_core::ChangeNumber;
use changegate_core::change::ChangeState;
use changegate_core::gate::{Target, Workload};
use changegate_store::{Change, ChangeWrite, NewEvent};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use utoipa::ToSchema;

use super::Body;
use super::lifecycle::{move_to, save};
use crate::AppState;
use crate::auth::Agent;
use crate::error::{ApiError, ApiResult};
use crate::workflow;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentReport {
    /// The tenant the workload's namespace is labelled for.
    pub tenant: String,
    pub namespace: String,
    /// Deployment, StatefulSet, DaemonSet or CronJob.
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The images the workload's pod template runs.
    #[serde(default)]
    pub artifacts: Vec<String>,
    /// What happened.
    pub event: ReportEvent,
    /// The change that covered the rollout (all but `unauthorized`).
    #[serde(default)]
    pub change: Option<String>,
    /// The workload's generation (or revision) the report is about.
    #[serde(default)]
    pub revision: Option<String>,
    /// What the agent saw, for people.
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ReportEvent {
    /// An admitted rollout started: the change is implementing.
    Started,
    /// It became available: the change is implemented.
    Succeeded,
    /// It failed (e.g. its progress deadline passed): the change failed.
    Failed,
    /// It was rolled back to the previous revision: the change is rolled back.
    RolledBack,
    /// A governed spec change that no approved change covers.
    Unauthorized,
}

#[derive(Serialize, ToSchema)]
pub struct ReportView {
    /// The audit event written (`deployment.recorded`,
    /// `deployment.unauthorized`), or `none` when the change already was
    /// where the report puts it (an agent retrying).
    pub event: String,
    /// The change's state after the report.
    pub change_state: Option<String>,
}

/// Record what the agent saw of a governed workload.
#[utoipa::path(post, path = "/api/v1/agent/reports", tag = "agent", request_body = AgentReport,
    responses((status = 200, body = ReportView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn report(
    State(state): State<AppState>,
    agent: Agent,
    Body(body): Body<AgentReport>,
) -> ApiResult<(StatusCode, Json<ReportView>)> {
    let store = state.store.as_ref();
    let hidden = || ApiError::not_found("tenant");
    let tenant = store
        .tenant_by_slug(&body.tenant)
        .await
        .map_err(|_| hidden())?;
    let target = Target::Workload(Workload {
        cluster: agent.cluster.clone(),
        namespace: body.namespace.clone(),
        kind: body.kind.clone(),
        name: body.name.clone(),
        labels: body.labels.clone(),
    });
    let bound: Vec<String> = workflow::configuration_items(store, tenant.id)
        .await?
        .into_iter()
        .filter(|(name, item)| target.is_bound_to(name, item))
        .map(|(name, _)| name)
        .collect();
    if bound.is_empty() {
        return Err(hidden());
    }
    let now = state.now();
    let actor = format!("agent of {}", agent.cluster);
    let detail = json!({
        "target": target,
        "artifacts": body.artifacts,
        "revision": body.revision,
        "event": body.event,
        "note": body.note,
        "configuration_items": bound,
    });
    let Some(number) = body.change.as_deref() else {
        if body.event != ReportEvent::Unauthorized {
            return Err(ApiError::invalid(
                "change",
                "name the change that covered the rollout, e.g. CHG-42",
            ));
        }
        store
            .record_events(
                tenant.id,
                vec![NewEvent {
                    actor,
                    action: "deployment.unauthorized".into(),
                    subject: target.to_string(),
                    detail,
                    at: now,
                }],
            )
            .await?;
        return Ok((
            StatusCode::CREATED,
            Json(ReportView {
                event: "deployment.unauthorized".into(),
                change_state: None,
            }),
        ));
    };
    if body.event == ReportEvent::Unauthorized {
        return Err(ApiError::invalid(
            "change",
            "an unauthorized change has no covering change",
        ));
    }
    let number: ChangeNumber = number
        .parse()
        .map_err(|_| ApiError::invalid("change", "a change number, e.g. CHG-42"))?;
    let mut c = store
        .change(tenant.id, number)
        .await
        .map_err(|_| ApiError::not_found("change"))?;
    if !c
        .content
        .configuration_items
        .iter()
        .any(|i| bound.contains(i))
    {
        return Err(ApiError::invalid(
            "change",
            format!("{number} names no configuration item bound to {target}"),
        ));
    }
    let expected = c.version;
    let events = transitions(&mut c, body.event, &actor, detail, now)?;
    if events.is_empty() {
        return Ok((
            StatusCode::OK,
            Json(ReportView {
                event: "none".into(),
                change_state: Some(c.state.as_str().to_string()),
            }),
        ));
    }
    let needs_review = if c.state == ChangeState::Implemented {
        let (_, policy) = workflow::policy(store, tenant.id).await?;
        policy.needs_review(c.kind)
    } else {
        true
    };
    let mut events = events;
    if !needs_review {
        move_to(&mut c, ChangeState::Closed)?;
        events.push(change_event(
            &c,
            &actor,
            "change.closed",
            json!({ "review": "not required" }),
            now,
        ));
    }
    // The requester and the communication plan hear of an outcome as when
    // a person records it: through the outbox, in the same transaction.
    let messages = match c.state {
        ChangeState::Implemented
        | ChangeState::Closed
        | ChangeState::Failed
        | ChangeState::RolledBack => {
            let outcome = if c.state == ChangeState::Closed {
                "implemented"
            } else {
                c.state.as_str()
            };
            crate::mail::outcome_notices(store, &state.public_url, &tenant, &c, outcome, now)
                .await?
        }
        _ => Vec::new(),
    };
    let saved = save(
        &state,
        &c,
        expected,
        ChangeWrite {
            events,
            messages,
            ..Default::default()
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(ReportView {
            event: "deployment.recorded".into(),
            change_state: Some(saved.state.as_str().to_string()),
        }),
    ))
}

fn change_event(
    c: &Change,
    actor: &str,
    action: &str,
    detail: serde_json::Value,
    at: DateTime<Utc>,
) -> NewEvent {
    NewEvent {
        actor: actor.into(),
        action: action.into(),
        subject: c.number.to_string(),
        detail,
        at,
    }
}

/// Moves `c` where `event` puts it, with the events saying so; none when
/// it is there already (a report repeated).
fn transitions(
    c: &mut Change,
    event: ReportEvent,
    actor: &str,
    detail: serde_json::Value,
    now: DateTime<Utc>,
) -> ApiResult<Vec<NewEvent>> {
    use ChangeState::*;
    let target = match event {
        ReportEvent::Started => Implementing,
        ReportEvent::Succeeded => Implemented,
        ReportEvent::Failed => Failed,
        ReportEvent::RolledBack => RolledBack,
        ReportEvent::Unauthorized => unreachable!("handled by the caller"),
    };
    let already = c.state == target
        || (event == ReportEvent::Succeeded && matches!(c.state, InReview | Closed))
        || (event == ReportEvent::Started
            && matches!(
                c.state,
                Implemented | Failed | RolledBack | InReview | Closed
            ));
    if already {
        return Ok(Vec::new());
    }
    let mut events = Vec::new();
    if matches!(c.state, Approved | Scheduled | AwaitingApproval) {
        move_to(c, Implementing)?;
        events.push(change_event(
            c,
            actor,
            "change.started",
            json!({ "note": "rollout admitted by the agent", "via": "agent" }),
            now,
        ));
    }
    events.push(change_event(
        c,
        actor,
        "deployment.recorded",
        detail.clone(),
        now,
    ));
    match target {
        Implementing => {}
        Implemented => {
            move_to(c, Implemented)?;
            events.push(change_event(c, actor, "change.implemented", detail, now));
        }
        Failed => {
            move_to(c, Failed)?;
            events.push(change_event(c, actor, "change.failed", detail, now));
        }
        RolledBack => {
            move_to(c, RolledBack)?;
            events.push(change_event(c, actor, "change.rolled-back", detail, now));
        }
        _ => unreachable!("the targets above"),
    }
    Ok(events)
}
