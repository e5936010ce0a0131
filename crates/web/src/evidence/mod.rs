//! Audit evidence of one tenant and one period (DESIGN §9): every change
//! raised in the period with its requester, approvals (who, when, which
//! channel, on whose behalf), policy version, window, test evidence,
//! implementer, deployments, outcome, releases and post-implementation
//! review; the unauthorized deployments; the seed-003 controls each
//! mapped to the records that prove it; the state of the audit chain.
//!
//! Nothing of a period is held whole to make it: [`chain::read`] reads
//! the chain a page at a time, verifies each link and folds what it says
//! of the period into facts by change ([`chain::Fold`]); then
//! [`changes::each`] reads the changes a page at a time, makes each into
//! its evidence with its approvals and facts, and hands it on. [`gather`]
//! collects them (the JSON and CSV answers, the portal page, the KPIs);
//! [`export_bundle`] writes them straight into `evidence.json` and
//! `changes.csv` in temporary files ([`spool`]), packed with the chain
//! into a `.tar.gz` with a `SHA256SUMS` manifest an auditor checks
//! offline with `sha256sum -c SHA256SUMS` or `changegate report verify`
//! ([`verify`]).

pub mod chain;
pub mod changes;
pub mod controls;
pub mod spool;
pub mod verify;
pub mod write;

pub use chain::Fold;
pub use controls::controls;
pub use spool::{Spool, Spooled};
pub use verify::{BundleCheck, verify_bundle, verify_bundle_from, verify_bundle_keeping};
pub use write::{BUNDLE_README, bundle, csv};

use changegate_store::{Store, Tenant};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};

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
    /// Whether the policy asked for the client's acceptance when it started.
    pub acceptance_required: bool,
    /// The client's acceptance of the tested change (who, when, channel).
    pub acceptance: Option<Recorded>,
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

fn io_failed(err: std::io::Error) -> ApiError {
    tracing::error!(%err, "writing the evidence export");
    ApiError::internal()
}

/// A period's evidence, with the validation failures of the releases
/// finished in it (a KPI, from the chain's one reading).
pub struct Gathered {
    pub evidence: Evidence,
    pub release_validation_failures: usize,
}

/// The evidence of `tenant` in `period`, collected (the JSON and CSV
/// answers, the portal's page, the KPIs).
pub async fn gather(
    store: &dyn Store,
    tenant: &Tenant,
    period: Period,
    now: DateTime<Utc>,
) -> ApiResult<Gathered> {
    let read = chain::read(store, tenant, period, false).await?;
    let mut all = Vec::new();
    let controls = changes::each(store, tenant, period, read.facts, |c| {
        all.push(c);
        Ok(())
    })
    .await?;
    Ok(Gathered {
        evidence: Evidence {
            tenant: tenant.slug.to_string(),
            tenant_name: tenant.name.clone(),
            from: period.from,
            to: period.to,
            generated_at: now,
            chain: read.evidence,
            changes: all,
            controls: controls.finish(&read.unauthorized),
            unauthorized: read.unauthorized,
        },
        release_validation_failures: read.release_validation_failures,
    })
}

/// The bundle of `tenant` in `period`, written as it is read: each change
/// goes straight into `evidence.json` and `changes.csv` (temporary files),
/// then everything is packed into a `.tar.gz`, itself a temporary file.
/// Memory holds the chain's facts by change and the controls, never a
/// file or the period's changes.
pub async fn export_bundle(
    store: &dyn Store,
    tenant: &Tenant,
    period: Period,
    now: DateTime<Utc>,
) -> ApiResult<Spooled> {
    let read = chain::read(store, tenant, period, true).await?;
    let slug = tenant.slug.to_string();
    let head = write::Head {
        tenant: &slug,
        tenant_name: &tenant.name,
        from: period.from,
        to: period.to,
        generated_at: now,
        chain: &read.evidence,
    };
    let mut json = write::JsonOut::start(Spool::new().map_err(io_failed)?, &head)?;
    let mut rows = write::CsvOut::start(Spool::new().map_err(io_failed)?)?;
    let controls = changes::each(store, tenant, period, read.facts, |c| {
        json.change(&c)?;
        rows.row(&c)
    })
    .await?
    .finish(&read.unauthorized);
    let json = json
        .end(&read.unauthorized, &controls)?
        .finish()
        .map_err(io_failed)?;
    let rows = rows.end()?.finish().map_err(io_failed)?;
    let chain = read.file.ok_or_else(ApiError::internal)?;
    let folder = write::folder(&slug, period.from, period.to);
    // Compressing is CPU work: off the async workers.
    tokio::task::spawn_blocking(move || write::pack(&folder, now, json, rows, chain))
        .await
        .map_err(|_| ApiError::internal())?
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use changegate_core::audit::{self, Event};
    use chrono::TimeZone;
    use sha2::{Digest, Sha256};
    use std::io::Write;

    /// A chain as `audit.jsonl`.
    fn chain_file(events: &[Event]) -> Spooled {
        let mut s = Spool::new().expect("a temporary file");
        for e in events {
            serde_json::to_writer(&mut s, e).expect("written");
            s.write_all(b"\n").expect("written");
        }
        s.finish().expect("finished")
    }

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
            acceptance_required: false,
            acceptance: None,
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
        let head = events
            .last()
            .map_or(audit::Head::genesis(), |e| audit::Head {
                seq: e.body.seq,
                hash: e.hash.clone(),
            });
        let report = audit::verify(events, &head);
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
        let bundle = bundle(&evidence_of(&events), chain_file(&events))
            .expect("as set up")
            .into_bytes()
            .expect("as set up");
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

    /// A period's evidence holding `c` alone.
    fn of_one(c: ChangeEvidence) -> Evidence {
        Evidence {
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
        }
    }

    #[test]
    fn no_cell_of_the_csv_is_read_as_a_formula() {
        let mut c = change("CHG-1", "normal");
        c.title = "=HYPERLINK(\"http://evil.example\",\"click\")".into();
        c.test_evidence = "+1+cmd|' /C calc'!A0".into();
        c.requester = "@SUM(1+1)".into();
        c.window = Some("-2+3".into());
        c.implementer = Some("\tnested".into());
        c.outcome = Some("\rreturn".into());
        let e = of_one(c);
        let text = csv(&e).expect("as set up");
        let mut reader = ::csv::Reader::from_reader(text.as_bytes());
        let row = reader.records().next().expect("a row").expect("a record");
        for value in row.iter() {
            assert!(
                !value.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{value:?} would be a formula"
            );
        }
        assert_eq!(&row[1], "'=HYPERLINK(\"http://evil.example\",\"click\")");
        assert_eq!(&row[9], "'-2+3");
    }

    #[test]
    fn the_csv_quotes_what_needs_quoting() {
        let mut c = change("CHG-1", "normal");
        c.title = "Upgrade \"payments\", then restart".into();
        let e = of_one(c);
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

    #[test]
    fn evidence_json_written_a_change_at_a_time_is_what_serde_makes_of_the_whole() {
        let events = sealed_chain(3);
        let mut e = evidence_of(&events);
        e.changes.push(change("CHG-2", "emergency"));
        e.unauthorized.push(Recorded {
            at: at(5, 1),
            by: "agent".into(),
            action: "deployment.unauthorized".into(),
            detail: serde_json::json!({ "target": "payments-api" }),
        });
        e.controls = controls(&e.changes, &e.unauthorized);
        let head = write::Head {
            tenant: &e.tenant,
            tenant_name: &e.tenant_name,
            from: e.from,
            to: e.to,
            generated_at: e.generated_at,
            chain: &e.chain,
        };
        let mut out = write::JsonOut::start(Vec::new(), &head).expect("started");
        for c in &e.changes {
            out.change(c).expect("written");
        }
        let streamed = out.end(&e.unauthorized, &e.controls).expect("ended");
        assert_eq!(
            String::from_utf8(streamed).expect("UTF-8"),
            serde_json::to_string(&e).expect("serialized")
        );
        // No change at all still makes valid JSON.
        let out = write::JsonOut::start(Vec::new(), &head).expect("started");
        let empty = out.end(&[], &[]).expect("ended");
        let v: serde_json::Value = serde_json::from_slice(&empty).expect("valid JSON");
        assert_eq!(v["changes"], serde_json::json!([]));
    }

    fn event(seq: i64, at: DateTime<Utc>, action: &str, subject: &str, detail: &str) -> Event {
        audit::seal(
            audit::GENESIS,
            audit::EventBody {
                tenant: changegate_core::TenantId(1),
                seq,
                at,
                actor: "ian@msp.example".into(),
                action: action.into(),
                subject: subject.into(),
                detail: detail.into(),
            },
        )
    }

    #[test]
    fn the_fold_takes_each_changes_facts_from_the_chain_as_it_passes() {
        let period = Period::new(
            NaiveDate::from_ymd_opt(2026, 11, 1).expect("a valid date"),
            NaiveDate::from_ymd_opt(2026, 11, 30).expect("a valid date"),
        )
        .expect("a period");
        let mut fold = Fold::new(period);
        let before = Utc
            .with_ymd_and_hms(2026, 10, 30, 9, 0, 0)
            .single()
            .expect("a valid time");
        for e in [
            // Before the period: about no change raised in it.
            event(1, before, "change.started", "CHG-1", r#"{"window":"old"}"#),
            event(
                2,
                at(3, 1),
                "release.created",
                "REL-4",
                r#"{"changes":["CHG-1","CHG-2"]}"#,
            ),
            event(
                3,
                at(3, 2),
                "change.started",
                "CHG-1",
                r#"{"window":"weekly","release":"REL-4"}"#,
            ),
            event(
                4,
                at(3, 2),
                "deployment.recorded",
                "CHG-1",
                r#"{"target":"payments-api"}"#,
            ),
            event(5, at(3, 3), "change.failed", "CHG-1", "{}"),
            event(
                6,
                at(3, 4),
                "change.rolled-back",
                "CHG-1",
                r#"{"release":"REL-4"}"#,
            ),
            event(
                7,
                at(4, 9),
                "change.reviewed",
                "CHG-1",
                r#"{"notes":"lessons"}"#,
            ),
            event(
                8,
                at(3, 5),
                "change.implemented",
                "CHG-2",
                r#"{"documentation":"runbook v2"}"#,
            ),
            event(
                9,
                at(3, 6),
                "deployment.unauthorized",
                "prod/payments",
                r#"{"image":"x"}"#,
            ),
            event(
                10,
                at(3, 7),
                "release.finished",
                "REL-4",
                r#"{"validation_failures":2}"#,
            ),
            event(11, at(3, 8), "change.reviewed", "CHG-9", "{}"),
        ] {
            fold.event(&e);
        }
        let (mut facts, unauthorized, failures) = fold.finish();
        assert_eq!((unauthorized.len(), failures), (1, 2));
        let mut one = change("CHG-1", "normal");
        facts
            .remove("CHG-1")
            .expect("facts of CHG-1")
            .apply(&mut one);
        assert_eq!(one.started_at, Some(at(3, 2)));
        assert_eq!(one.window.as_deref(), Some("weekly"));
        assert_eq!(one.failed_at, Some(at(3, 3)));
        assert_eq!(
            (one.finished_at, one.outcome.as_deref()),
            (Some(at(3, 4)), Some("rolled-back"))
        );
        assert_eq!(one.deployments.len(), 1);
        assert_eq!(one.releases, ["REL-4"]);
        assert_eq!(one.review.map(|r| r.at), Some(at(4, 9)));
        let mut two = change("CHG-2", "standard");
        facts
            .remove("CHG-2")
            .expect("facts of CHG-2")
            .apply(&mut two);
        assert_eq!(two.outcome.as_deref(), Some("succeeded"));
        assert_eq!(two.documentation.as_deref(), Some("runbook v2"));
        assert_eq!(two.started_at, None);
        assert_eq!(two.releases, ["REL-4"]);
    }
}
