//! The export's formats, each written as the changes pass: the CSV, the
//! JSON (the same bytes `serde_json` makes of a whole [`Evidence`]), and
//! the bundle packed from temporary files.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::io::Write;

use super::spool::{Spool, Spooled};
use super::{ChainEvidence, ChangeEvidence, Control, Evidence, Recorded, io_failed};
use crate::error::{ApiError, ApiResult};

fn csv_failed(err: csv::Error) -> ApiError {
    tracing::error!(%err, "writing the evidence CSV");
    ApiError::internal()
}

/// A cell a spreadsheet reads as text, never as a formula: one that
/// begins with `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed
/// with `'` (OWASP, CSV injection). Titles, comments and evidence are
/// written by requesters and clients; the auditor opens the file.
fn cell(s: &str) -> std::borrow::Cow<'_, str> {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}").into(),
        _ => s.into(),
    }
}

/// One row per change: the columns an auditor filters in a spreadsheet.
pub struct CsvOut<W: Write>(csv::Writer<W>);

impl<W: Write> CsvOut<W> {
    pub fn start(out: W) -> ApiResult<Self> {
        let mut w = csv::Writer::from_writer(out);
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
        .map_err(csv_failed)?;
        Ok(CsvOut(w))
    }

    pub fn row(&mut self, c: &ChangeEvidence) -> ApiResult<()> {
        let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
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
        let cells = [
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
        ];
        self.0
            .write_record(cells.iter().map(|c| cell(c).into_owned()))
            .map_err(csv_failed)
    }

    pub fn end(self) -> ApiResult<W> {
        self.0.into_inner().map_err(|e| io_failed(e.into_error()))
    }
}

/// The CSV of `e`.
pub fn csv(e: &Evidence) -> ApiResult<String> {
    let mut out = CsvOut::start(Vec::new())?;
    for c in &e.changes {
        out.row(c)?;
    }
    String::from_utf8(out.end()?).map_err(|_| ApiError::internal())
}

/// What comes before the changes in `evidence.json`.
#[derive(Serialize)]
pub struct Head<'a> {
    pub tenant: &'a str,
    pub tenant_name: &'a str,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub generated_at: DateTime<Utc>,
    pub chain: &'a ChainEvidence,
}

/// `evidence.json` written a change at a time: the same bytes as
/// `serde_json::to_writer` of the whole [`Evidence`].
pub struct JsonOut<W: Write> {
    out: W,
    first: bool,
}

fn json_failed(err: serde_json::Error) -> ApiError {
    tracing::error!(%err, "writing evidence.json");
    ApiError::internal()
}

impl<W: Write> JsonOut<W> {
    pub fn start(mut out: W, head: &Head<'_>) -> ApiResult<Self> {
        let mut opening = serde_json::to_vec(head).map_err(json_failed)?;
        opening.pop(); // its closing brace: the changes follow
        out.write_all(&opening).map_err(io_failed)?;
        out.write_all(br#","changes":["#).map_err(io_failed)?;
        Ok(JsonOut { out, first: true })
    }

    pub fn change(&mut self, c: &ChangeEvidence) -> ApiResult<()> {
        if !std::mem::take(&mut self.first) {
            self.out.write_all(b",").map_err(io_failed)?;
        }
        serde_json::to_writer(&mut self.out, c).map_err(json_failed)
    }

    pub fn end(mut self, unauthorized: &[Recorded], controls: &[Control]) -> ApiResult<W> {
        self.out
            .write_all(br#"],"unauthorized":"#)
            .map_err(io_failed)?;
        serde_json::to_writer(&mut self.out, unauthorized).map_err(json_failed)?;
        self.out.write_all(br#","controls":"#).map_err(io_failed)?;
        serde_json::to_writer(&mut self.out, controls).map_err(json_failed)?;
        self.out.write_all(b"}").map_err(io_failed)?;
        Ok(self.out)
    }
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

/// The bundle's folder name inside the archive.
pub fn folder(tenant: &str, from: NaiveDate, to: NaiveDate) -> String {
    format!("evidence-{tenant}-{from}-{to}")
}

/// Pack `evidence.json`, `changes.csv` and `audit.jsonl` (each spooled)
/// with the README and the manifest of their SHA-256 hashes into a
/// `.tar.gz`, itself a temporary file: memory never holds a file whole.
pub fn pack(
    folder: &str,
    generated_at: DateTime<Utc>,
    json: Spooled,
    rows: Spooled,
    chain: Spooled,
) -> ApiResult<Spooled> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Spool::new().map_err(io_failed)?,
        flate2::Compression::fast(),
    ));
    let mtime = u64::try_from(generated_at.timestamp()).unwrap_or_default();
    let files = [
        ("evidence.json", json),
        ("changes.csv", rows),
        (
            "README.txt",
            Spooled::of(BUNDLE_README.as_bytes()).map_err(io_failed)?,
        ),
        ("audit.jsonl", chain),
    ];
    let manifest: String = files
        .iter()
        .map(|(name, body)| format!("{}  {name}\n", body.sha256))
        .collect();
    let manifest = Spooled::of(manifest.as_bytes()).map_err(io_failed)?;
    for (name, body) in files.into_iter().chain([("SHA256SUMS", manifest)]) {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_cksum();
        tar.append_data(
            &mut header,
            format!("{folder}/{name}"),
            std::io::BufReader::with_capacity(1 << 16, body.file),
        )
        .map_err(io_failed)?;
    }
    let gz = tar.into_inner().map_err(io_failed)?;
    gz.finish().map_err(io_failed)?.finish().map_err(io_failed)
}

/// The bundle of evidence already gathered, with its chain spooled.
pub fn bundle(e: &Evidence, chain: Spooled) -> ApiResult<Spooled> {
    let head = Head {
        tenant: &e.tenant,
        tenant_name: &e.tenant_name,
        from: e.from,
        to: e.to,
        generated_at: e.generated_at,
        chain: &e.chain,
    };
    let mut json = JsonOut::start(Spool::new().map_err(io_failed)?, &head)?;
    let mut rows = CsvOut::start(Spool::new().map_err(io_failed)?)?;
    for c in &e.changes {
        json.change(c)?;
        rows.row(c)?;
    }
    let json = json.end(&e.unauthorized, &e.controls)?;
    pack(
        &folder(&e.tenant, e.from, e.to),
        e.generated_at,
        json.finish().map_err(io_failed)?,
        rows.end()?.finish().map_err(io_failed)?,
        chain,
    )
}
