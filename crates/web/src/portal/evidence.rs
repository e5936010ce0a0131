//! The auditor's view: one tenant, one period, read only. Every change
//! raised in the period with who requested it, who approved it (when,
//! through which channel), under which policy version and who implemented
//! it; the audit chain's status and the unauthorized deployments.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use changegate_core::audit;
use changegate_core::authz::Action;
use changegate_store::ChangeFilter;
use chrono::{Datelike, NaiveDate, TimeDelta};
use serde::Deserialize;
use std::collections::BTreeSet;

use super::pages::{Nav, in_tenant, nav, render, when};
use super::{PageError, PageResult, Viewer};
use crate::AppState;
use crate::error::ApiError;
use crate::workflow::{self, Emails};

pub struct EvidenceRow {
    pub number: String,
    pub title: String,
    pub kind: String,
    pub state: String,
    pub requester: String,
    pub approvals: String,
    pub policy_version: String,
    pub implementer: String,
}

#[derive(Template)]
#[template(path = "evidence.html")]
struct EvidencePage {
    viewer: Option<Nav>,
    tenant: String,
    from: String,
    to: String,
    chain: String,
    unauthorized: usize,
    rows: Vec<EvidenceRow>,
}

#[derive(Deserialize, Default)]
pub struct Period {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

fn date(field: &str, text: &str, default: NaiveDate) -> PageResult<NaiveDate> {
    if text.is_empty() {
        return Ok(default);
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        PageError(ApiError::invalid(
            field,
            format!("{text:?} is not a date; write it as YYYY-MM-DD"),
        ))
    })
}

pub async fn evidence(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    Query(period): Query<Period>,
) -> PageResult<Response> {
    let t = in_tenant(&state, &viewer, &slug).await?;
    t.authorize(Action::Read)?;
    let store = state.store.as_ref();
    let today = state.now().date_naive();
    let first = today.with_day(1).unwrap_or(today);
    let from = date("from", &period.from, first)?;
    let to = date("to", &period.to, today)?;
    if to < from {
        return Err(PageError(ApiError::invalid(
            "to",
            "the period ends before it starts",
        )));
    }
    let start = from.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let end = to.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc() + TimeDelta::days(1);
    let changes = store
        .list_changes(&ChangeFilter {
            tenants: Some(BTreeSet::from([t.tenant.id])),
            created_from: Some(start),
            created_to: Some(end),
            limit: 500,
            ..ChangeFilter::default()
        })
        .await?;
    let mut rows = Vec::with_capacity(changes.len());
    for c in changes.iter().rev() {
        let emails = Emails::load(store, workflow::ids_in(c)).await?;
        let approvals: Vec<String> = store
            .approvals(t.tenant.id, c.number)
            .await?
            .iter()
            .map(|a| {
                format!(
                    "{} {} {} via {} (revision {})",
                    a.approver_email,
                    a.decision.as_str(),
                    when(Some(a.at)),
                    a.channel.as_str(),
                    a.revision
                )
            })
            .collect();
        rows.push(EvidenceRow {
            number: c.number.to_string(),
            title: c.content.title.clone(),
            kind: c.kind.as_str().to_string(),
            state: c.state.as_str().to_string(),
            requester: emails.of(c.requester),
            approvals: approvals.join("; "),
            policy_version: c.policy_version.map_or(String::new(), |v| v.to_string()),
            implementer: c.implementer.map_or(String::new(), |u| emails.of(u)),
        });
    }
    let (events, head) = store.audit_events(t.tenant.id).await?;
    let report = audit::verify(&events, head);
    let unauthorized = events
        .iter()
        .filter(|e| {
            e.body.action == "deployment.unauthorized" && e.body.at >= start && e.body.at < end
        })
        .count();
    let page = EvidencePage {
        viewer: Some(nav(&state, &viewer).await?),
        tenant: t.tenant.slug.to_string(),
        from: from.to_string(),
        to: to.to_string(),
        chain: if report.intact {
            format!("intact ({} events)", report.events)
        } else {
            format!("BROKEN at {:?}", report.first_break)
        },
        unauthorized,
        rows,
    };
    Ok(render(&page))
}
