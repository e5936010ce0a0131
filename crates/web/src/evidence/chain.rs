//! The tenant's chain read once, a page at a time: verified link by link
//! ([`audit::Verifier`]), what it says of the period's changes folded in
//! ([`Fold`]), and, for the bundle, written out as `audit.jsonl`.

use changegate_core::audit::{self, Event};
use changegate_store::{Store, Tenant};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::io::Write;

use super::spool::{Spool, Spooled};
use super::{ChainEvidence, ChangeEvidence, Period, Recorded, io_failed};
use crate::error::{ApiError, ApiResult};

/// Events read at a time.
const PAGE: i64 = 2000;

/// What the chain recorded about one change: its last start (and the
/// window it started in), its last outcome and the first failure, its
/// deployments, review and the releases that delivered it.
#[derive(Debug, Default, Clone)]
pub struct Facts {
    started_at: Option<DateTime<Utc>>,
    window: Option<String>,
    finished_at: Option<DateTime<Utc>>,
    outcome: Option<&'static str>,
    failed_at: Option<DateTime<Utc>>,
    documentation: Option<String>,
    deployments: Vec<Recorded>,
    review: Option<Recorded>,
    acceptance_required: bool,
    acceptance: Option<Recorded>,
    /// In order, once each.
    releases: Vec<String>,
}

impl Facts {
    fn release(&mut self, number: &str) {
        if let Err(at) = self.releases.binary_search_by(|r| r.as_str().cmp(number)) {
            self.releases.insert(at, number.to_string());
        }
    }

    /// Written onto the change's evidence.
    pub fn apply(self, c: &mut ChangeEvidence) {
        c.started_at = self.started_at;
        c.window = self.window;
        c.finished_at = self.finished_at;
        c.outcome = self.outcome.map(str::to_string);
        c.failed_at = self.failed_at;
        c.documentation = self.documentation;
        c.deployments = self.deployments;
        c.review = self.review;
        c.acceptance_required = self.acceptance_required;
        c.acceptance = self.acceptance;
        c.releases = self.releases;
    }
}

fn recorded(e: &Event, detail: serde_json::Value) -> Recorded {
    Recorded {
        at: e.body.at,
        by: e.body.actor.clone(),
        action: e.body.action.clone(),
        detail,
    }
}

/// The chain's events taken one at a time in stored order: the facts of
/// every change with events in the period (a change raised in it has no
/// event before it), the period's unauthorized deployments and the
/// validation failures of the releases finished in it. Pure.
pub struct Fold {
    facts: HashMap<String, Facts>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    unauthorized: Vec<Recorded>,
    validation_failures: usize,
}

impl Fold {
    pub fn new(period: Period) -> Self {
        Fold {
            facts: HashMap::new(),
            start: period.start(),
            end: period.end(),
            unauthorized: Vec::new(),
            validation_failures: 0,
        }
    }

    pub fn event(&mut self, e: &Event) {
        let at = e.body.at;
        if at < self.start {
            return;
        }
        let action = e.body.action.as_str();
        let subject = e.body.subject.as_str();
        let in_period = at < self.end;
        let release = subject.starts_with("REL-");
        let change = subject.starts_with("CHG-");
        // Only what it takes a fact from is parsed.
        let wanted = release
            || (change
                && (matches!(
                    action,
                    "change.started"
                        | "change.implemented"
                        | "change.failed"
                        | "change.rolled-back"
                        | "deployment.recorded"
                        | "change.reviewed"
                        | "change.accepted"
                ) || e.body.detail.contains("\"release\"")))
            || (in_period && action == "deployment.unauthorized");
        if !wanted {
            return;
        }
        let detail: serde_json::Value = serde_json::from_str(&e.body.detail).unwrap_or_default();
        if in_period {
            match action {
                // On a target no approved change covered (the gate or an
                // agent); those on a change's own subject are its deployments.
                "deployment.unauthorized" => {
                    self.unauthorized.push(recorded(e, detail));
                    return;
                }
                "release.finished" => {
                    let failed = detail["validation_failures"].as_u64().unwrap_or(0);
                    self.validation_failures += usize::try_from(failed).unwrap_or(0);
                }
                _ => {}
            }
        }
        if release {
            for n in detail["changes"].as_array().into_iter().flatten() {
                if let Some(n) = n.as_str() {
                    self.facts
                        .entry(n.to_string())
                        .or_default()
                        .release(subject);
                }
            }
            return;
        }
        if !change {
            return;
        }
        let f = self.facts.entry(subject.to_string()).or_default();
        if let Some(r) = detail["release"].as_str() {
            f.release(r);
        }
        let mut finished = |outcome: &'static str| {
            f.finished_at = Some(at);
            f.outcome = Some(outcome);
        };
        match action {
            "change.started" => {
                f.started_at = Some(at);
                f.window = detail["window"].as_str().map(str::to_string);
                f.acceptance_required = detail["acceptance_required"].as_bool() == Some(true);
            }
            "change.accepted" => f.acceptance = Some(recorded(e, detail)),
            "change.implemented" => {
                finished("succeeded");
                f.documentation = detail["documentation"].as_str().map(str::to_string);
            }
            "change.failed" => {
                finished("failed");
                f.failed_at.get_or_insert(at);
            }
            "change.rolled-back" => finished("rolled-back"),
            "deployment.recorded" => f.deployments.push(recorded(e, detail)),
            "change.reviewed" => f.review = Some(recorded(e, detail)),
            _ => {}
        }
    }

    /// The facts by change number, the unauthorized deployments and the
    /// validation failures.
    pub fn finish(self) -> (HashMap<String, Facts>, Vec<Recorded>, usize) {
        (self.facts, self.unauthorized, self.validation_failures)
    }
}

/// The chain read: its verification, what it says of the period, and
/// `audit.jsonl` when asked for.
pub struct ChainRead {
    pub evidence: ChainEvidence,
    pub facts: HashMap<String, Facts>,
    pub unauthorized: Vec<Recorded>,
    pub release_validation_failures: usize,
    pub file: Option<Spooled>,
}

/// Read `tenant`'s chain a page at a time (never whole): each event is
/// verified, folded, and written to `audit.jsonl` when `with_file`.
pub async fn read(
    store: &dyn Store,
    tenant: &Tenant,
    period: Period,
    with_file: bool,
) -> ApiResult<ChainRead> {
    let head = store.audit_chain_head(tenant.id).await?;
    let mut fold = Fold::new(period);
    let mut verifier = audit::Verifier::new(head);
    let mut file = if with_file {
        Some(Spool::new().map_err(io_failed)?)
    } else {
        None
    };
    let mut after = 0;
    loop {
        let (page, next) = store.audit_events_page(tenant.id, after, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for e in &page {
            verifier.push(e);
            fold.event(e);
            if let Some(out) = file.as_mut() {
                serde_json::to_writer(&mut *out, e).map_err(|_| ApiError::internal())?;
                out.write_all(b"\n").map_err(io_failed)?;
            }
        }
        after = next;
    }
    let report = verifier.finish();
    let (facts, unauthorized, release_validation_failures) = fold.finish();
    Ok(ChainRead {
        evidence: ChainEvidence {
            intact: report.intact,
            events: report.events,
            head_hash: report.head_hash,
            first_break: report
                .first_break
                .map(|b| serde_json::to_value(b).unwrap_or_default()),
        },
        facts,
        unauthorized,
        release_validation_failures,
        file: file.map(Spool::finish).transpose().map_err(io_failed)?,
    })
}
