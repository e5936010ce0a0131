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
use changegate_core::gate::{Target, Workload};
use changegate_store::{NewEvent, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use utoipa::ToSchema;

use super::Body;
use crate::AppState;
use crate::app::implement::{self, Stage, Via};
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
    /// The fingerprint of the change the agent admitted the rollout under,
    /// from its bundle: a change revised since then is not started by it.
    #[serde(default)]
    pub fingerprint: Option<String>,
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
    // Only "not found" is hidden: a database away is a 503 the agent
    // retries, never a 404 it would drop the report on.
    let tenant = store
        .tenant_by_slug(&body.tenant)
        .await
        .map_err(|e| match e {
            StoreError::NotFound { .. } => hidden(),
            e => e.into(),
        })?;
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
    let c = store.change(tenant.id, number).await.map_err(|e| match e {
        StoreError::NotFound { .. } => ApiError::not_found("change"),
        e => e.into(),
    })?;
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
    let stage = match body.event {
        ReportEvent::Started => Stage::Started,
        ReportEvent::Succeeded => Stage::Succeeded,
        ReportEvent::Failed => Stage::Failed,
        ReportEvent::RolledBack => Stage::RolledBack,
        ReportEvent::Unauthorized => unreachable!("handled above"),
    };
    let recorded = implement::record(
        &state,
        implement::Deployment {
            tenant: &tenant,
            change: c.number,
            who: None,
            actor: &actor,
            via: Via::Agent,
            stage,
            judged: body.fingerprint.as_deref(),
            detail,
            what: format!("the rollout the agent of {} admitted", agent.cluster),
        },
        now,
    )
    .await?;
    let status = if recorded.event == "none" {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(ReportView {
            event: recorded.event.into(),
            change_state: recorded.change_state.map(|s| s.as_str().to_string()),
        }),
    ))
}
