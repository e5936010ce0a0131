//! Audit evidence of one tenant and one period (DESIGN §9): every change
//! raised in the period with its requester, approvals (who, when, which
//! channel, on whose behalf), policy version, window, test evidence,
//! implementer, deployments, outcome, releases and post-implementation
//! review; the unauthorized deployments; the seed-003 controls each
//! mapped to the records that prove it; the state of the audit chain.
//!
//! [`gather`] reads (three reads whatever the number of changes: the
//! changes a page at a time, their approvals, the chain); [`assemble`]
//! and [`controls`] are pure; [`csv`] and [`bundle`] write the formats.
//! The bundle is a `.tar.gz` with a `SHA256SUMS` manifest an auditor
//! checks offline with `sha256sum -c SHA256SUMS`, and the tenant's whole
//! chain (`audit.jsonl`) that `changegate report verify` re-hashes.

use changegate_core::ChangeNumber;
use changegate_core::audit::{self, Event};
use changegate_store::{Approval, Change, ChangeFilter, Store, Tenant};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::workflow::Emails;

/// Days `from` to `to`, both included, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Period {
    pub fn new(from: NaiveDate, to: NaiveDate) -> ApiResult<Period> {
        if to < from {
            return Err(ApiError::invalid("to", "the period ends before it starts"));
        }
        Ok(Period { from, to })
    }

    pub fn start(&self) -> DateTime<Utc> {
        self.from.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
    }

    /// The first instant after the period.
    pub fn end(&self) -> DateTime<Utc> {
        self.to.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc() + TimeDelta::days(1)
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChainEvidence {
    pub intact: bool,
    pub events: usize,
    pub head_hash: String,
    /// Where the chain breaks, if it does.
    #[schema(value_type = Object)]
    pub first_break: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApprovalEvidence {
    pub approver: String,
    pub on_behalf_of: Option<String>,
    pub decision: String,
    pub channel: String,
    pub at: DateTime<Utc>,
    pub revision: i64,
    pub comment: String,
}

/// An event of the chain, as evidence: when, who, what it said.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Recorded {
    pub at: DateTime<Utc>,
    pub by: String,
    pub action: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChangeEvidence {
    pub number: String,
    pub title: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub state: String,
    pub risk: Option<String>,
    pub requester: String,
    pub created_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    /// When its approval was decided (approved or rejected).
    pub decided_at: Option<DateTime<Utc>>,
    pub policy_version: Option<i64>,
    pub fingerprint: Option<String>,
    pub approvals: Vec<ApprovalEvidence>,
    pub planned_start: Option<DateTime<Utc>>,
    pub planned_end: Option<DateTime<Utc>>,
    /// The maintenance window it started in, if one was required.
    pub window: Option<String>,
    pub test_plan: String,
    pub test_evidence: String,
    pub implementer: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When a failure was first recorded (before a rollback finished it).
    pub failed_at: Option<DateTime<Utc>>,
    /// Deployments recorded against it (gate API, agents).
    pub deployments: Vec<Recorded>,
    /// `succeeded`, `failed` or `rolled-back` once implemented.
    pub outcome: Option<String>,
    /// What the implementer said was updated in the configuration documentation.
    pub documentation: Option<String>,
    /// The releases that delivered it.
    pub releases: Vec<String>,
    pub review: Option<Recorded>,
    /// Emergency changes: approval owed after the fact, and whether it came late.
    pub retrospective_due_at: Option<DateTime<Utc>>,
    pub retrospective_overdue: bool,
}

/// One seed-003 control and the records that prove it, or do not.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Control {
    pub id: String,
    pub title: String,
    /// What in the records proves it.
    pub proven_by: String,
    /// The changes (or events) that show the control working.
    pub evidence: Vec<String>,
    /// The records that break it: an auditor's sample starts here.
    pub exceptions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Evidence {
    pub tenant: String,
    pub tenant_name: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub generated_at: DateTime<Utc>,
    pub chain: ChainEvidence,
    pub changes: Vec<ChangeEvidence>,
    /// Deployments on governed targets no approved change covered.
    pub unauthorized: Vec<Recorded>,
    pub controls: Vec<Control>,
}

/// Read everything the evidence of `tenant` in `period` needs.
pub async fn gather(
    store: &dyn Store,
    tenant: &Tenant,
    period: Period,
    now: DateTime<Utc>,
) -> ApiResult<(Evidence, Vec<Event>)> {
    let (start, end) = (period.start(), period.end());
    let mut changes = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list_changes(&ChangeFilter {
                tenants: Some(BTreeSet::from([tenant.id])),
                created_from: Some(start),
                created_to: Some(end),
                before,
                limit: 500,
                ..ChangeFilter::default()
            })
            .await?;
        let last = page.last().map(|c| c.number);
        let full = page.len() == 500;
        changes.extend(page);
        match last {
            Some(n) if full => before = Some(n),
            _ => break,
        }
    }
    changes.reverse();
    let approvals = store.approvals_between(tenant.id, start, end).await?;
    let (events, head) = store.audit_events(tenant.id).await?;
    let report = audit::verify(&events, head);
    let mut ids: BTreeSet<_> = changes
        .iter()
        .flat_map(|c| [Some(c.requester), c.implementer])
        .flatten()
        .collect();
    ids.extend(
        approvals
            .iter()
            .flat_map(|a| [Some(a.approver), a.on_behalf_of])
            .flatten(),
    );
    let emails = Emails::load(store, ids).await?;
    let (changes, unauthorized) = {
        let assembled = assemble(&changes, &approvals, &events, &emails, period);
        // The rows are not needed once assembled: free them before the
        // bundle is written.
        drop(changes);
        drop(approvals);
        assembled
    };
    let controls = controls(&changes, &unauthorized);
    let evidence = Evidence {
        tenant: tenant.slug.to_string(),
        tenant_name: tenant.name.clone(),
        from: period.from,
        to: period.to,
        generated_at: now,
        chain: ChainEvidence {
            intact: report.intact,
            events: report.events,
            head_hash: report.head_hash,
            first_break: report
                .first_break
                .map(|b| serde_json::to_value(b).unwrap_or_default()),
        },
        changes,
        unauthorized,
        controls,
    };
    Ok((evidence, events))
}

fn recorded(e: &Event) -> Recorded {
    Recorded {
        at: e.body.at,
        by: e.body.actor.clone(),
        action: e.body.action.clone(),
        detail: serde_json::from_str(&e.body.detail).unwrap_or_default(),
    }
}

/// Each change with its approvals and what the chain recorded about it;
/// the unauthorized deployments of the period. Pure.
pub fn assemble(
    changes: &[Change],
    approvals: &[Approval],
    events: &[Event],
    emails: &Emails,
    period: Period,
) -> (Vec<ChangeEvidence>, Vec<Recorded>) {
    let mut by_subject: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in events {
        by_subject
            .entry(e.body.subject.as_str())
            .or_default()
            .push(e);
    }
    let mut releases_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.body.subject.starts_with("REL-")) {
        let detail: serde_json::Value = serde_json::from_str(&e.body.detail).unwrap_or_default();
        if let Some(list) = detail["changes"].as_array() {
            for n in list.iter().filter_map(|n| n.as_str()) {
                releases_of
                    .entry(n.to_string())
                    .or_default()
                    .insert(e.body.subject.clone());
            }
        }
    }
    let mut approvals_of: BTreeMap<ChangeNumber, Vec<&Approval>> = BTreeMap::new();
    for a in approvals {
        approvals_of.entry(a.change).or_default().push(a);
    }
    let out = changes
        .iter()
        .map(|c| {
            let number = c.number.to_string();
            let mine = by_subject
                .get(number.as_str())
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let last = |action: &str| mine.iter().rev().find(|e| e.body.action == action).copied();
            let detail = |e: &Event| -> serde_json::Value {
                serde_json::from_str(&e.body.detail).unwrap_or_default()
            };
            let started = last("change.started");
            let finish = mine
                .iter()
                .rev()
                .find(|e| {
                    matches!(
                        e.body.action.as_str(),
                        "change.implemented" | "change.failed" | "change.rolled-back"
                    )
                })
                .copied();
            let outcome = finish.map(|e| match e.body.action.as_str() {
                "change.implemented" => "succeeded".to_string(),
                "change.failed" => "failed".to_string(),
                _ => "rolled-back".to_string(),
            });
            let mut releases: BTreeSet<String> =
                releases_of.get(&number).cloned().unwrap_or_default();
            for e in mine {
                if let Some(r) = detail(e)["release"].as_str() {
                    releases.insert(r.to_string());
                }
            }
            ChangeEvidence {
                title: c.content.title.clone(),
                kind: c.kind.to_string(),
                state: c.state.to_string(),
                risk: c.risk_level.map(|l| l.to_string()),
                requester: emails.of(c.requester),
                created_at: c.created_at,
                submitted_at: c.submitted_at,
                decided_at: c.decided_at,
                planned_start: c.content.planned_start,
                planned_end: c.content.planned_end,
                policy_version: c.policy_version,
                fingerprint: c.fingerprint.clone(),
                approvals: approvals_of
                    .get(&c.number)
                    .into_iter()
                    .flatten()
                    .map(|a| ApprovalEvidence {
                        approver: a.approver_email.to_string(),
                        on_behalf_of: a.on_behalf_of.map(|u| emails.of(u)),
                        decision: a.decision.as_str().to_string(),
                        channel: a.channel.as_str().to_string(),
                        at: a.at,
                        revision: a.revision,
                        comment: a.comment.clone(),
                    })
                    .collect(),
                window: started.and_then(|e| detail(e)["window"].as_str().map(str::to_string)),
                test_plan: c.content.test_plan.clone(),
                test_evidence: c.content.test_evidence.clone(),
                implementer: c.implementer.map(|u| emails.of(u)),
                started_at: started.map(|e| e.body.at),
                finished_at: finish.map(|e| e.body.at),
                failed_at: mine
                    .iter()
                    .find(|e| e.body.action == "change.failed")
                    .map(|e| e.body.at),
                deployments: mine
                    .iter()
                    .filter(|e| e.body.action == "deployment.recorded")
                    .map(|e| recorded(e))
                    .collect(),
                outcome,
                documentation: last("change.implemented")
                    .and_then(|e| detail(e)["documentation"].as_str().map(str::to_string)),
                releases: releases.into_iter().collect(),
                review: last("change.reviewed").map(recorded),
                retrospective_due_at: c.retrospective_due_at,
                retrospective_overdue: c.retrospective_overdue,
                number,
            }
        })
        .collect();
    // Deployments the gate or an agent recorded on the change's own
    // subject are found above; those on a target (no change) are here.
    let (start, end) = (period.start(), period.end());
    let unauthorized = events
        .iter()
        .filter(|e| {
            e.body.action == "deployment.unauthorized" && e.body.at >= start && e.body.at < end
        })
        .map(recorded)
        .collect();
    (out, unauthorized)
}

fn needs_approval(c: &ChangeEvidence) -> bool {
    c.kind != "standard"
}

/// The controls of seed 003, each with the records that prove it and the
/// exceptions an auditor should look at first. Pure.
pub fn controls(changes: &[ChangeEvidence], unauthorized: &[Recorded]) -> Vec<Control> {
    let started: Vec<&ChangeEvidence> = changes.iter().filter(|c| c.started_at.is_some()).collect();
    let approved_by = |c: &ChangeEvidence, channel_ok: bool| {
        c.approvals
            .iter()
            .any(|a| a.decision == "approve" && (channel_ok || a.channel != "api"))
    };
    let split = |ok: &dyn Fn(&ChangeEvidence) -> bool, of: &[&ChangeEvidence]| {
        let (good, bad): (Vec<&&ChangeEvidence>, Vec<&&ChangeEvidence>) =
            of.iter().partition(|c| ok(c));
        (
            good.iter().map(|c| c.number.clone()).collect::<Vec<_>>(),
            bad.iter().map(|c| c.number.clone()).collect::<Vec<_>>(),
        )
    };
    let mut out = Vec::new();

    let (evidence, exceptions) = split(
        &|c| {
            !needs_approval(c)
                || c.approvals
                    .iter()
                    .any(|a| a.decision == "approve" && Some(a.at) <= c.started_at)
                || (c.kind == "emergency" && !c.retrospective_overdue && approved_by(c, true))
        },
        &started,
    );
    out.push(Control {
        id: "authorized-before-implementation".into(),
        title: "Changes are authorized by the business owner and IT before they reach production".into(),
        proven_by: "each implemented change's approvals (approver, time, channel) dated before its start; standard changes by their pre-approved template; emergency changes by their retrospective approval".into(),
        evidence,
        exceptions,
    });

    let normal: Vec<&ChangeEvidence> = changes
        .iter()
        .filter(|c| c.kind == "normal" && c.submitted_at.is_some())
        .collect();
    let (evidence, exceptions) = split(
        &|c| {
            c.approvals.iter().any(|a| a.decision == "approve")
                || c.state == "rejected"
                || c.state == "awaiting-approval"
                || c.state == "cancelled"
        },
        &normal,
    );
    out.push(Control {
        id: "cab-authorization".into(),
        title: "The change advisory board authorizes changes before they are put into action".into(),
        proven_by: "the approvals of each normal change, recorded against the boards frozen at submission and the policy version".into(),
        evidence,
        exceptions,
    });

    let (evidence, exceptions) = split(&|c| !c.test_evidence.trim().is_empty(), &started);
    out.push(Control {
        id: "tested-before-deployment".into(),
        title: "Changes are tested and the evidence kept before deployment".into(),
        proven_by: "each implemented change's test plan and test evidence".into(),
        evidence,
        exceptions,
    });

    out.push(Control {
        id: "no-unsupervised-production-changes".into(),
        title: "No change reaches production without an approved change covering it".into(),
        proven_by: "the gates' and agents' deployment records: those no approved change covered are listed as unauthorized".into(),
        evidence: started
            .iter()
            .filter(|c| !c.deployments.is_empty())
            .map(|c| c.number.clone())
            .collect(),
        exceptions: unauthorized
            .iter()
            .map(|u| format!("{} {}", u.at.format("%Y-%m-%d %H:%M UTC"), u.detail))
            .collect(),
    });

    let (evidence, exceptions) = split(&|c| c.implementer.is_some(), &started);
    out.push(Control {
        id: "implemented-by-approved-individual".into(),
        title: "Changes are implemented by an approved individual".into(),
        proven_by: "the implementer recorded on each change; the server lets only holders of the implementer role start or complete a change".into(),
        evidence,
        exceptions,
    });

    let finished: Vec<&ChangeEvidence> = changes
        .iter()
        .filter(|c| c.finished_at.is_some() && c.kind != "standard")
        .collect();
    let (evidence, exceptions) = split(&|c| c.review.is_some(), &finished);
    out.push(Control {
        id: "periodic-review".into(),
        title: "Changes are reviewed after implementation and the records examined".into(),
        proven_by: "each post-implementation review (outcome, notes, lessons) and this export of the period with the audit chain verified".into(),
        evidence,
        exceptions,
    });
    out
}

/// One row per change: the columns an auditor filters in a spreadsheet.
pub fn csv(e: &Evidence) -> ApiResult<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let fail = |err: csv::Error| {
        tracing::error!(%err, "writing the evidence CSV");
        ApiError::internal()
    };
    w.write_record([
        "number",
        "title",
        "type",
        "state",
        "risk",
        "requester",
        "created_at",
        "policy_version",
        "approvals",
        "window",
        "test_evidence",
        "implementer",
        "started_at",
        "finished_at",
        "deployments",
        "outcome",
        "releases",
        "review",
    ])
    .map_err(fail)?;
    let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    for c in &e.changes {
        let approvals: Vec<String> = c
            .approvals
            .iter()
            .map(|a| {
                let behalf = a
                    .on_behalf_of
                    .as_ref()
                    .map(|o| format!(" for {o}"))
                    .unwrap_or_default();
                format!(
                    "{}{behalf} {} {} via {} (revision {})",
                    a.approver,
                    a.decision,
                    a.at.to_rfc3339(),
                    a.channel,
                    a.revision
                )
            })
            .collect();
        let review = c
            .review
            .as_ref()
            .map(|r| format!("{} by {}: {}", r.at.to_rfc3339(), r.by, r.detail))
            .unwrap_or_default();
        w.write_record([
            c.number.as_str(),
            &c.title,
            &c.kind,
            &c.state,
            c.risk.as_deref().unwrap_or_default(),
            &c.requester,
            &c.created_at.to_rfc3339(),
            &c.policy_version.map(|v| v.to_string()).unwrap_or_default(),
            &approvals.join("; "),
            c.window.as_deref().unwrap_or_default(),
            &c.test_evidence,
            c.implementer.as_deref().unwrap_or_default(),
            &time(c.started_at),
            &time(c.finished_at),
            &c.deployments.len().to_string(),
            c.outcome.as_deref().unwrap_or_default(),
            &c.releases.join(" "),
            &review,
        ])
        .map_err(fail)?;
    }
    let bytes = w.into_inner().map_err(|e| fail(e.into_error().into()))?;
    String::from_utf8(bytes).map_err(|_| ApiError::internal())
}

/// What the bundle's `README.txt` says: how to verify it offline.
pub const BUNDLE_README: &str = "changegate evidence bundle

evidence.json  every change of the period with its approvals, window, tests,
               implementer, deployments, outcome, releases and review; the
               unauthorized deployments; the controls and their records
changes.csv    one row per change
audit.jsonl    the tenant's whole audit chain, one event per line
SHA256SUMS     the SHA-256 of each file above

Verify, offline (inside the unpacked folder, or on the .tar.gz itself):
  sha256sum -c SHA256SUMS            # no file was altered
  changegate report verify FILE.tar.gz  # the manifest, every link of the
                                        # chain, and its head as recorded
";

/// The evidence as a `.tar.gz`: the JSON, the CSV, the chain and the
/// manifest of their SHA-256 hashes.
pub fn bundle(e: &Evidence, events: &[Event]) -> ApiResult<Vec<u8>> {
    let fail = |err: std::io::Error| {
        tracing::error!(%err, "writing the evidence bundle");
        ApiError::internal()
    };
    let dir = format!("evidence-{}-{}-{}", e.tenant, e.from, e.to);
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mtime = u64::try_from(e.generated_at.timestamp()).unwrap_or_default();
    let mut manifest = String::new();
    // Each file is made, hashed, archived and dropped before the next: the
    // archive (compressed) and one file are in memory at a time.
    let mut add = |name: &str, body: &[u8]| -> ApiResult<()> {
        manifest.push_str(&format!("{}  {name}\n", hex::encode(Sha256::digest(body))));
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_cksum();
        tar.append_data(&mut header, format!("{dir}/{name}"), body)
            .map_err(fail)
    };
    add(
        "evidence.json",
        &serde_json::to_vec(e).map_err(|_| ApiError::internal())?,
    )?;
    add("changes.csv", csv(e)?.as_bytes())?;
    add("README.txt", BUNDLE_README.as_bytes())?;
    // The chain, the largest file, is never held whole: a first pass
    // measures and hashes its lines, the second writes them as they are
    // made.
    let mut digest = Measure::default();
    for ev in events {
        serde_json::to_writer(&mut digest, ev).map_err(|_| ApiError::internal())?;
        digest.add(b"\n");
    }
    manifest.push_str(&format!(
        "{}  audit.jsonl\n",
        hex::encode(digest.hash.finalize())
    ));
    let mut header = tar::Header::new_gnu();
    header.set_size(digest.len);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_cksum();
    tar.append_data(
        &mut header,
        format!("{dir}/audit.jsonl"),
        Lines {
            events: events.iter(),
            line: Vec::new(),
            at: 0,
        },
    )
    .map_err(fail)?;
    let mut header = tar::Header::new_gnu();
    header.set_size(manifest.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_cksum();
    tar.append_data(
        &mut header,
        format!("{dir}/SHA256SUMS"),
        manifest.as_bytes(),
    )
    .map_err(fail)?;
    let gz = tar.into_inner().map_err(fail)?;
    gz.finish().map_err(fail)
}

/// A writer that keeps only the length and the SHA-256 of what it is given.
#[derive(Default)]
struct Measure {
    len: u64,
    hash: Sha256,
}

impl Measure {
    fn add(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        self.hash.update(bytes);
    }
}

impl std::io::Write for Measure {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.add(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The chain as JSON lines, each made when the reader reaches it.
struct Lines<'a> {
    events: std::slice::Iter<'a, Event>,
    line: Vec<u8>,
    at: usize,
}

impl std::io::Read for Lines<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.line.len() {
            let Some(e) = self.events.next() else {
                return Ok(0);
            };
            self.line.clear();
            self.at = 0;
            serde_json::to_writer(&mut self.line, e)?;
            self.line.push(b'\n');
        }
        let n = out.len().min(self.line.len() - self.at);
        out[..n].copy_from_slice(&self.line[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// What checking a bundle found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleCheck {
    /// Each file of the manifest and whether its hash matched.
    pub files: Vec<(String, bool)>,
    /// The audit chain re-hashed from `audit.jsonl`.
    pub chain: audit::Report,
    /// `evidence.json` names the same head hash and number of events: the
    /// chain in the bundle is the one the export was made from, not cut short.
    pub head_matches: bool,
}

impl BundleCheck {
    pub fn intact(&self) -> bool {
        !self.files.is_empty()
            && self.files.iter().all(|(_, ok)| *ok)
            && self.chain.intact
            && self.head_matches
    }
}

/// Check a bundle offline: every file against `SHA256SUMS`, and every
/// link of the chain in `audit.jsonl`. An error says what is unreadable.
pub fn verify_bundle(gzipped: &[u8]) -> Result<BundleCheck, String> {
    use std::io::Read;
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gzipped));
    let entries = archive
        .entries()
        .map_err(|e| format!("not a .tar.gz bundle: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("unreadable bundle entry: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("unreadable name in the bundle: {e}"))?
            .to_string_lossy()
            .to_string();
        let name = path.rsplit('/').next().unwrap_or(&path).to_string();
        let mut body = Vec::new();
        entry
            .read_to_end(&mut body)
            .map_err(|e| format!("unreadable {name}: {e}"))?;
        files.insert(name, body);
    }
    let manifest = files
        .get("SHA256SUMS")
        .ok_or("the bundle has no SHA256SUMS manifest")?;
    let manifest = String::from_utf8_lossy(manifest);
    let mut checked = Vec::new();
    for line in manifest.lines().filter(|l| !l.trim().is_empty()) {
        let (hash, name) = line
            .split_once("  ")
            .ok_or_else(|| format!("SHA256SUMS has a line that is not `<hash>  <file>`: {line}"))?;
        let ok = files
            .get(name)
            .is_some_and(|body| hex::encode(Sha256::digest(body)) == hash);
        checked.push((name.to_string(), ok));
    }
    let chain_text = files
        .get("audit.jsonl")
        .ok_or("the bundle has no audit.jsonl")?;
    let events = parse_chain(chain_text)?;
    let head = events.last().map_or(0, |e| e.body.seq);
    let chain = audit::verify(&events, head);
    let stated: serde_json::Value = files
        .get("evidence.json")
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or_default();
    let head_matches = stated["chain"]["head_hash"].as_str() == Some(chain.head_hash.as_str())
        && stated["chain"]["events"].as_u64() == Some(chain.events as u64);
    Ok(BundleCheck {
        files: checked,
        chain,
        head_matches,
    })
}

/// The events of an `audit.jsonl` file, one per line.
pub fn parse_chain(text: &[u8]) -> Result<Vec<Event>, String> {
    String::from_utf8_lossy(text)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str::<Event>(l).map_err(|e| format!("audit.jsonl line {}: {e}", i + 1))
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0)
            .single()
            .expect("a valid time")
    }

    fn change(number: &str, kind: &str) -> ChangeEvidence {
        ChangeEvidence {
            number: number.into(),
            title: "t".into(),
            kind: kind.into(),
            state: "closed".into(),
            risk: None,
            requester: "eve@msp.example".into(),
            created_at: at(2, 9),
            submitted_at: Some(at(2, 10)),
            decided_at: None,
            policy_version: Some(1),
            fingerprint: None,
            approvals: Vec::new(),
            planned_start: None,
            planned_end: None,
            window: None,
            test_plan: String::new(),
            test_evidence: "green".into(),
            implementer: Some("ian@msp.example".into()),
            started_at: Some(at(3, 2)),
            finished_at: Some(at(3, 3)),
            failed_at: None,
            deployments: Vec::new(),
            outcome: Some("succeeded".into()),
            documentation: None,
            releases: Vec::new(),
            review: Some(Recorded {
                at: at(4, 9),
                by: "ian@msp.example".into(),
                action: "change.reviewed".into(),
                detail: serde_json::json!({}),
            }),
            retrospective_due_at: None,
            retrospective_overdue: false,
        }
    }

    fn approval(at: DateTime<Utc>) -> ApprovalEvidence {
        ApprovalEvidence {
            approver: "carol@client-a.example".into(),
            on_behalf_of: None,
            decision: "approve".into(),
            channel: "email".into(),
            at,
            revision: 1,
            comment: String::new(),
        }
    }

    fn control<'a>(all: &'a [Control], id: &str) -> &'a Control {
        all.iter().find(|c| c.id == id).expect("control")
    }

    pub(crate) fn sample(number: &str, kind: &str) -> ChangeEvidence {
        change(number, kind)
    }

    #[test]
    fn each_control_names_its_evidence_and_its_exceptions() {
        let mut approved = change("CHG-1", "normal");
        approved.approvals.push(approval(at(2, 12)));
        // Approved only after it started, untested, not reviewed.
        let mut late = change("CHG-2", "normal");
        late.approvals.push(approval(at(3, 5)));
        late.test_evidence = " ".into();
        late.review = None;
        let standard = change("CHG-3", "standard");
        let mut unreviewed_standard = change("CHG-4", "standard");
        unreviewed_standard.review = None;
        let all = [approved, late, standard, unreviewed_standard];
        let unauthorized = [Recorded {
            at: at(5, 1),
            by: "agent".into(),
            action: "deployment.unauthorized".into(),
            detail: serde_json::json!({ "name": "payments-api" }),
        }];
        let controls = controls(&all, &unauthorized);
        let c = control(&controls, "authorized-before-implementation");
        assert_eq!(
            (c.evidence.clone(), c.exceptions.clone()),
            (
                vec!["CHG-1".into(), "CHG-3".into(), "CHG-4".into()],
                vec!["CHG-2".to_string()]
            )
        );
        let c = control(&controls, "tested-before-deployment");
        assert_eq!(c.exceptions, ["CHG-2"]);
        let c = control(&controls, "periodic-review");
        assert_eq!(
            (c.evidence.clone(), c.exceptions.clone()),
            (vec!["CHG-1".to_string()], vec!["CHG-2".to_string()])
        );
        let c = control(&controls, "no-unsupervised-production-changes");
        assert_eq!(c.exceptions.len(), 1);
        assert!(c.exceptions[0].contains("payments-api"));
        assert_eq!(
            control(&controls, "cab-authorization").evidence,
            ["CHG-1", "CHG-2"]
        );
    }

    fn sealed_chain(n: i64) -> Vec<Event> {
        let mut prev = audit::GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let e = audit::seal(
                    &prev,
                    audit::EventBody {
                        tenant: changegate_core::TenantId(1),
                        seq,
                        at: at(2, 9),
                        actor: "eve@msp.example".into(),
                        action: "change.created".into(),
                        subject: format!("CHG-{seq}"),
                        detail: "{}".into(),
                    },
                );
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn evidence_of(events: &[Event]) -> Evidence {
        let report = audit::verify(events, events.len() as i64);
        Evidence {
            tenant: "client-a".into(),
            tenant_name: "Client A".into(),
            from: NaiveDate::from_ymd_opt(2026, 11, 1).expect("a valid date"),
            to: NaiveDate::from_ymd_opt(2026, 11, 30).expect("a valid date"),
            generated_at: at(28, 9),
            chain: ChainEvidence {
                intact: report.intact,
                events: report.events,
                head_hash: report.head_hash,
                first_break: None,
            },
            changes: vec![change("CHG-1", "normal")],
            unauthorized: Vec::new(),
            controls: Vec::new(),
        }
    }

    /// The bundle's files, re-packed after `edit` (with or without a
    /// manifest made again to match).
    fn repack(bundle: &[u8], edit: impl Fn(&str, &mut Vec<u8>), remanifest: bool) -> Vec<u8> {
        use std::io::Read;
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bundle));
        for entry in archive.entries().expect("as set up") {
            let mut entry = entry.expect("as set up");
            let name = entry
                .path()
                .expect("as set up")
                .to_string_lossy()
                .to_string();
            let mut body = Vec::new();
            entry.read_to_end(&mut body).expect("as set up");
            edit(name.rsplit('/').next().expect("as set up"), &mut body);
            files.push((name, body));
        }
        if remanifest {
            let manifest: String = files
                .iter()
                .filter(|(n, _)| !n.ends_with("SHA256SUMS"))
                .map(|(n, b)| {
                    format!(
                        "{}  {}\n",
                        hex::encode(Sha256::digest(b)),
                        n.rsplit('/').next().expect("as set up")
                    )
                })
                .collect();
            for (n, b) in files.iter_mut() {
                if n.ends_with("SHA256SUMS") {
                    *b = manifest.clone().into_bytes();
                }
            }
        }
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (name, body) in &files {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append_data(&mut h, name, body.as_slice())
                .expect("as set up");
        }
        tar.into_inner()
            .expect("as set up")
            .finish()
            .expect("as set up")
    }

    #[test]
    fn a_bundle_verifies_and_any_tampering_is_found() {
        let events = sealed_chain(5);
        let bundle = bundle(&evidence_of(&events), &events).expect("as set up");
        let check = verify_bundle(&bundle).expect("as set up");
        assert!(check.intact(), "{check:?}");
        assert_eq!(check.chain.events, 5);

        // A file edited: its hash no longer matches.
        let edited = repack(
            &bundle,
            |name, body| {
                if name == "changes.csv" {
                    body.extend_from_slice(b"CHG-9,forged\n");
                }
            },
            false,
        );
        let check = verify_bundle(&edited).expect("as set up");
        assert!(!check.intact());
        assert_eq!(
            check
                .files
                .iter()
                .filter(|(_, ok)| !ok)
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>(),
            ["changes.csv"]
        );

        // An event rewritten and the manifest made again: the chain breaks.
        let rewritten = repack(
            &bundle,
            |name, body| {
                if name == "audit.jsonl" {
                    *body = String::from_utf8(body.clone())
                        .expect("as set up")
                        .replacen("CHG-2", "CHG-7", 1)
                        .into_bytes();
                }
            },
            true,
        );
        let check = verify_bundle(&rewritten).expect("as set up");
        assert!(check.files.iter().all(|(_, ok)| *ok));
        assert!(!check.chain.intact && !check.intact());

        // The last events cut off and the manifest made again: the chain
        // still links, but not to the head the export recorded.
        let cut = repack(
            &bundle,
            |name, body| {
                if name == "audit.jsonl" {
                    let text = String::from_utf8(body.clone()).expect("as set up");
                    let kept: Vec<&str> = text.lines().take(3).collect();
                    *body = format!("{}\n", kept.join("\n")).into_bytes();
                }
            },
            true,
        );
        let check = verify_bundle(&cut).expect("as set up");
        assert!(check.chain.intact && !check.head_matches && !check.intact());

        assert!(verify_bundle(b"not a bundle").is_err());
    }

    #[test]
    fn the_csv_quotes_what_needs_quoting() {
        let mut c = change("CHG-1", "normal");
        c.title = "Upgrade \"payments\", then restart".into();
        let e = Evidence {
            tenant: "client-a".into(),
            tenant_name: "Client A".into(),
            from: NaiveDate::from_ymd_opt(2026, 11, 1).expect("a valid date"),
            to: NaiveDate::from_ymd_opt(2026, 11, 30).expect("a valid date"),
            generated_at: at(28, 9),
            chain: ChainEvidence {
                intact: true,
                events: 0,
                head_hash: String::new(),
                first_break: None,
            },
            changes: vec![c],
            unauthorized: Vec::new(),
            controls: Vec::new(),
        };
        let text = csv(&e).expect("as set up");
        let mut lines = text.lines();
        assert!(
            lines
                .next()
                .expect("as set up")
                .starts_with("number,title,type")
        );
        assert!(
            lines
                .next()
                .expect("as set up")
                .starts_with("CHG-1,\"Upgrade \"\"payments\"\", then restart\",normal")
        );
    }
}
