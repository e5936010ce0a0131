//! KPIs per tenant and period (`crate::kpi`), and the server's `/metrics`
//! with the KPIs of the last 30 days per tenant as gauges.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use changegate_core::TenantId;
use changegate_core::authz::{self, Action};
use chrono::TimeDelta;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};
use utoipa::IntoParams;

use super::Params;
use super::evidence::ExportQuery;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::evidence::{self, Period};
use crate::kpi::{self, Kpis};
use crate::tenant::InTenant;

/// The period of the KPIs.
#[derive(Deserialize, IntoParams, Default)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KpiQuery {
    /// First day (YYYY-MM-DD, UTC); the first of the current month by default.
    pub from: Option<String>,
    /// Last day, included (YYYY-MM-DD, UTC); today by default.
    pub to: Option<String>,
}

/// The KPIs of `t` in `period`.
pub async fn of(state: &AppState, t: &InTenant, period: Period) -> ApiResult<Kpis> {
    let g = evidence::gather(state.store.as_ref(), &t.tenant, period, state.now()).await?;
    Ok(kpi::compute(&g.evidence, g.release_validation_failures))
}

/// Approval cycle time (median, p90), approver responsiveness, change
/// success rate, emergency share, PIR completion, schedule adherence,
/// rollback rate, release validation failures and time to restore.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/kpis", tag = "audit",
    params(("tenant" = String, Path), KpiQuery), responses((status = 200, body = Kpis)))]
pub async fn show(
    State(state): State<AppState>,
    t: InTenant,
    Params(q): Params<KpiQuery>,
) -> ApiResult<Json<Kpis>> {
    t.authorize(Action::Read)?;
    let query = ExportQuery {
        from: q.from,
        to: q.to,
        format: None,
    };
    let period = super::evidence::period(&query, state.now().date_naive())?;
    Ok(Json(of(&state, &t, period).await?))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabel {
    tenant: String,
}

/// How long a rendering of `/metrics` is served before the KPIs are read again.
const METRICS_FOR: Duration = Duration::from_secs(60);

/// The rendered metrics, and when; and each tenant's KPIs with the audit
/// head and period they were computed at, reused while the head has not
/// moved (every write of a tenant's records moves it), so an idle
/// tenant's chain is not read again every minute.
#[derive(Default)]
pub struct MetricsCache {
    rendered: tokio::sync::Mutex<Option<(Instant, String)>>,
    kpis: std::sync::Mutex<HashMap<TenantId, (i64, Period, Kpis)>>,
}

/// Prometheus text: per tenant (one label, as many values as tenants),
/// the KPIs of the last 30 days. Installation admins only (tenant names
/// are data); rendered at most once a minute.
pub async fn metrics(State(state): State<AppState>, Caller(caller): Caller) -> ApiResult<Response> {
    authz::authorize_admin(&caller)?;
    let mut cached = state.metrics.rendered.lock().await;
    let kpis = match cached.as_ref() {
        Some((at, text)) if at.elapsed() < METRICS_FOR => text.clone(),
        _ => {
            let text = render(&state).await?;
            *cached = Some((Instant::now(), text.clone()));
            text
        }
    };
    drop(cached);
    // The KPIs as cached, then what is counted live (one `# EOF`, last).
    let mut text = kpis
        .strip_suffix("# EOF\n")
        .map(str::to_string)
        .unwrap_or(kpis);
    text.push_str(&live(&state)?);
    Ok(text_response(text))
}

/// What the server counts as it goes, rendered on every scrape.
fn live(state: &AppState) -> ApiResult<String> {
    let mut registry = Registry::with_prefix("changegate");
    let waiting = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
    registry.register(
        "gate_checks_waiting",
        "Gate checks waiting (`wait`) for their decision to change",
        waiting.clone(),
    );
    waiting.set(i64::try_from(state.gate_waits.now()).unwrap_or(i64::MAX));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).map_err(|e| {
        tracing::error!(%e, "encoding the metrics");
        ApiError::internal()
    })?;
    Ok(out)
}

fn text_response(text: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn render(state: &AppState) -> ApiResult<String> {
    let today = state.now().date_naive();
    let period = Period::new(today - TimeDelta::days(29), today)?;
    let mut registry = Registry::with_prefix("changegate_kpi");
    let gauge = |registry: &mut Registry, name: &str, help: &str| {
        let family = Family::<TenantLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(name, help, family.clone());
        family
    };
    let changes = gauge(
        &mut registry,
        "changes",
        "Changes raised in the last 30 days",
    );
    let cycle = gauge(
        &mut registry,
        "approval_cycle_median_hours",
        "Median hours from submission to the approval decision",
    );
    let cycle90 = gauge(
        &mut registry,
        "approval_cycle_p90_hours",
        "90th percentile of the hours from submission to the approval decision",
    );
    let response = gauge(
        &mut registry,
        "approver_response_median_hours",
        "Median hours from submission to an approver's decision",
    );
    let success = gauge(
        &mut registry,
        "success_ratio",
        "Succeeded of the changes implemented",
    );
    let emergency = gauge(
        &mut registry,
        "emergency_ratio",
        "Emergency changes of all changes raised",
    );
    let pir = gauge(
        &mut registry,
        "pir_completion_ratio",
        "Reviewed of the implemented normal and emergency changes",
    );
    let adherence = gauge(
        &mut registry,
        "schedule_adherence_ratio",
        "Started inside the planned slot",
    );
    let rollback = gauge(
        &mut registry,
        "rollback_ratio",
        "Rolled back of the changes implemented",
    );
    let validation = gauge(
        &mut registry,
        "release_validation_failures",
        "Failed validation checks of finished releases",
    );
    let restore = gauge(
        &mut registry,
        "time_to_restore_median_minutes",
        "Median minutes to restore after a failed change",
    );
    let heads = state.store.audit_heads().await?;
    for tenant in state.snapshots.tenants(state).await?.iter() {
        let head = heads.get(&tenant.id).copied().unwrap_or_default();
        let known = state
            .metrics
            .kpis
            .lock()
            .ok()
            .and_then(|m| m.get(&tenant.id).cloned())
            .filter(|(h, p, _)| (*h, *p) == (head, period));
        let k = match known {
            Some((_, _, k)) => k,
            None => {
                let g = evidence::gather(state.store.as_ref(), tenant, period, state.now()).await?;
                let k = kpi::compute(&g.evidence, g.release_validation_failures);
                if let Ok(mut m) = state.metrics.kpis.lock() {
                    m.insert(tenant.id, (head, period, k.clone()));
                }
                k
            }
        };
        let l = TenantLabel {
            tenant: tenant.slug.to_string(),
        };
        let set = |f: &Family<TenantLabel, Gauge<f64, AtomicU64>>, v: Option<f64>| {
            if let Some(v) = v {
                f.get_or_create(&l).set(v);
            }
        };
        set(&changes, Some(k.changes as f64));
        set(&cycle, k.approval_cycle_hours.median);
        set(&cycle90, k.approval_cycle_hours.p90);
        set(&response, k.approver_response_hours.median);
        set(&success, k.success_rate.ratio);
        set(&emergency, k.emergency_share.ratio);
        set(&pir, k.pir_completion.ratio);
        set(&adherence, k.schedule_adherence.ratio);
        set(&rollback, k.rollback_rate.ratio);
        set(&validation, Some(k.release_validation_failures as f64));
        set(&restore, k.time_to_restore_minutes.median);
    }
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).map_err(|e| {
        tracing::error!(%e, "encoding the metrics");
        ApiError::internal()
    })?;
    Ok(out)
}
