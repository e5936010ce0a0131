//! The auditor's view: one tenant, one period, read only. Every change
//! raised in the period with who requested it, who approved it (when,
//! through which channel), under which policy version, its test evidence,
//! who implemented it, its outcome and review; the controls of seed 003
//! and the records proving each; the audit chain's status and the
//! unauthorized deployments; the same as CSV, JSON or a verifiable bundle.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use changegate_core::authz::Action;
use serde::Deserialize;

use super::pages::{Nav, in_tenant, nav, render, when};
use super::{PageResult, Viewer};
use crate::AppState;
use crate::api::{self, evidence::ExportQuery};

pub struct EvidenceRow {
    pub number: String,
    pub title: String,
    pub kind: String,
    pub state: String,
    pub requester: String,
    pub approvals: String,
    pub policy_version: String,
    pub tested: String,
    pub implementer: String,
    pub outcome: String,
    pub review: String,
}

pub struct ControlRow {
    pub title: String,
    pub proven_by: String,
    pub evidence: String,
    pub exceptions: Vec<String>,
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
    controls: Vec<ControlRow>,
}

#[derive(Deserialize, Default)]
pub struct Period {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// The period's evidence (`crate::evidence`): every change with who
/// requested, approved, tested and implemented it, and the controls of
/// seed 003 with the records that prove each; downloads as CSV, JSON and
/// a verifiable bundle.
pub async fn evidence(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    Query(period): Query<Period>,
) -> PageResult<Response> {
    let t = in_tenant(&state, &viewer, &slug).await?;
    t.authorize(Action::Read)?;
    let now = state.now();
    let query = ExportQuery {
        from: Some(period.from),
        to: Some(period.to),
        format: None,
    };
    let period = api::evidence::period(&query, now.date_naive())?;
    let e = crate::evidence::gather(state.store.as_ref(), &t.tenant, period, now)
        .await?
        .evidence;
    let rows = e
        .changes
        .iter()
        .map(|c| EvidenceRow {
            number: c.number.clone(),
            title: c.title.clone(),
            kind: c.kind.clone(),
            state: c.state.clone(),
            requester: c.requester.clone(),
            approvals: c
                .approvals
                .iter()
                .map(|a| {
                    format!(
                        "{} {} {} via {} (revision {})",
                        a.approver,
                        a.decision,
                        when(Some(a.at)),
                        a.channel,
                        a.revision
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            policy_version: c.policy_version.map_or(String::new(), |v| v.to_string()),
            tested: if c.test_evidence.trim().is_empty() {
                String::new()
            } else {
                c.test_evidence.clone()
            },
            implementer: c.implementer.clone().unwrap_or_default(),
            outcome: c.outcome.clone().unwrap_or_default(),
            review: c
                .review
                .as_ref()
                .map(|r| format!("{} by {}", when(Some(r.at)), r.by))
                .unwrap_or_default(),
        })
        .collect();
    let controls = e
        .controls
        .iter()
        .map(|c| ControlRow {
            title: c.title.clone(),
            proven_by: c.proven_by.clone(),
            evidence: c.evidence.join(", "),
            exceptions: if c.id == "no-unsupervised-production-changes" {
                e.unauthorized.iter().map(unauthorized_sentence).collect()
            } else {
                c.exceptions
                    .iter()
                    .map(|n| exception_sentence(&c.id, n))
                    .collect()
            },
        })
        .collect();
    let page = EvidencePage {
        viewer: Some(nav(&state, &viewer).await?),
        tenant: t.tenant.slug.to_string(),
        from: e.from.to_string(),
        to: e.to.to_string(),
        chain: if e.chain.intact {
            format!("intact ({} events)", e.chain.events)
        } else {
            format!(
                "broken: {}",
                e.chain.first_break.as_ref().map_or_else(
                    || "no break named".to_string(),
                    changegate_core::audit::describe_break
                )
            )
        },
        unauthorized: e.unauthorized.len(),
        rows,
        controls,
    };
    Ok(render(&page))
}

/// Why change `number` is an exception to control `id`, as a sentence.
fn exception_sentence(id: &str, number: &str) -> String {
    match id {
        "authorized-before-implementation" => {
            format!("{number} started before any approval was recorded")
        }
        "cab-authorization" => format!("{number} went ahead with no board's approval"),
        "tested-before-deployment" => format!("{number} started without test evidence"),
        "implemented-by-approved-individual" => format!("{number} has no implementer recorded"),
        "periodic-review" => format!("{number} finished without a post-implementation review"),
        "client-acceptance" => format!("{number} started without the client's acceptance"),
        _ => number.to_string(),
    }
}

/// A deployment no approved change covered, as a sentence: when, who,
/// what, under which change, and why it was not covered.
fn unauthorized_sentence(u: &crate::evidence::Recorded) -> String {
    let target = u
        .detail
        .get("target")
        .and_then(|t| serde_json::from_value::<changegate_core::gate::Target>(t.clone()).ok())
        .map_or_else(|| "something".to_string(), |t| t.to_string());
    let under = u.detail["change"]
        .as_str()
        .map(|c| format!(" under {c}"))
        .unwrap_or_default();
    let why = u.detail["refused"]
        .as_str()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    format!(
        "{} {} deployed {target}{under}, which no approval covered{why}",
        when(Some(u.at)),
        u.by
    )
}

#[cfg(test)]
mod sentences {
    use super::*;

    #[test]
    fn exceptions_read_as_sentences() {
        assert_eq!(
            exception_sentence("tested-before-deployment", "CHG-4"),
            "CHG-4 started without test evidence"
        );
        let u = crate::evidence::Recorded {
            at: chrono::DateTime::from_timestamp(1_795_000_000, 0).expect("a time"),
            by: "gate prod-pipeline".into(),
            action: "deployment.unauthorized".into(),
            detail: serde_json::json!({
                "target": { "pipeline": { "environment": "production" } },
                "change": "CHG-9",
                "refused": "CHG-9 is awaiting approval",
            }),
        };
        let said = unauthorized_sentence(&u);
        assert!(
            said.ends_with("gate prod-pipeline deployed pipeline environment production under CHG-9, which no approval covered: CHG-9 is awaiting approval"),
            "{said}"
        );
        assert!(!said.contains('{'), "no JSON: {said}");
    }
}
