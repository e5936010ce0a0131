//! A tenant's KPIs for a period as charts (inline SVG from `crate::kpi`,
//! no script) and a table per approver.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use changegate_core::authz::Action;

use super::pages::{Nav, in_tenant, nav, render};
use super::{PageResult, Viewer};
use crate::AppState;
use crate::api::evidence::{ExportQuery, period};
use crate::api::kpis::{self, KpiQuery};
use crate::kpi::{self, Kpis};

#[derive(Template)]
#[template(path = "kpis.html")]
struct KpiPage {
    viewer: Option<Nav>,
    tenant: String,
    tenant_name: String,
    k: Kpis,
    shares: String,
    durations: String,
}

impl KpiPage {
    fn hours(v: &Option<f64>) -> String {
        v.map_or("–".into(), |h| format!("{h:.1} h"))
    }
}

pub async fn kpis(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    Query(q): Query<KpiQuery>,
) -> PageResult<Response> {
    let t = in_tenant(&state, &viewer, &slug).await?;
    t.authorize(Action::Read)?;
    let query = ExportQuery {
        from: q.from,
        to: q.to,
        format: None,
    };
    let period = period(&query, state.now().date_naive())?;
    let mut k = kpis::of(&state, &t, period).await?;
    // People by name.
    let mut names = super::pages::Names::default();
    for a in &mut k.approvers {
        a.approver = names.of(state.store.as_ref(), &a.approver).await?;
    }
    let page = KpiPage {
        viewer: Some(nav(&state, &viewer).await?),
        tenant: t.tenant.slug.to_string(),
        tenant_name: t.tenant.name.clone(),
        shares: kpi::shares_chart(&k),
        durations: kpi::durations_chart(&k),
        k,
    };
    Ok(render(&page))
}
