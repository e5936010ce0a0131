//! `changegate report`: the evidence export of a tenant and a period, and
//! the offline check of an evidence bundle.

use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

use super::client::ServerArgs;

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Export a tenant's evidence for a period: JSON, CSV, or a bundle
    /// (`.tar.gz`) with a manifest of SHA-256 hashes.
    Evidence(EvidenceArgs),
    /// Check an evidence bundle offline: every file against its SHA256SUMS
    /// manifest and every link of the audit chain (exit 1 when anything fails).
    Verify {
        /// The bundle, e.g. evidence-client-a-2026-11-01-2026-11-30.tar.gz.
        bundle: PathBuf,
    },
}

#[derive(Args)]
pub struct EvidenceArgs {
    #[arg(long, env = "CHANGEGATE_TENANT")]
    tenant: String,
    /// First day, YYYY-MM-DD (default: the first of this month).
    #[arg(long)]
    from: Option<String>,
    /// Last day, included, YYYY-MM-DD (default: today).
    #[arg(long)]
    to: Option<String>,
    /// json, csv or bundle.
    #[arg(long, default_value = "bundle")]
    format: String,
    /// Where to write it (default: the name the server gives it, here).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
}

pub async fn run(cmd: ReportCommand) -> ExitCode {
    match cmd {
        ReportCommand::Evidence(args) => evidence(args).await,
        ReportCommand::Verify { bundle } => verify(&bundle),
    }
}

async fn evidence(a: EvidenceArgs) -> ExitCode {
    let client = match a.server.client() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("changegate: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let mut query = vec![format!("format={}", a.format)];
    query.extend(a.from.as_ref().map(|f| format!("from={f}")));
    query.extend(a.to.as_ref().map(|t| format!("to={t}")));
    let path = format!("/api/v1/tenants/{}/evidence?{}", a.tenant, query.join("&"));
    let body = match client.call_raw(reqwest::Method::GET, &path, None).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("changegate: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let ext = match a.format.as_str() {
        "bundle" => "tar.gz",
        other => other,
    };
    let out = a.out.unwrap_or_else(|| {
        PathBuf::from(format!(
            "evidence-{}-{}-{}.{ext}",
            a.tenant,
            a.from.as_deref().unwrap_or("month"),
            a.to.as_deref().unwrap_or("today")
        ))
    });
    if let Err(e) = std::fs::write(&out, &body) {
        eprintln!("changegate: cannot write {}: {e}", out.display());
        return ExitCode::from(2);
    }
    println!("wrote {} ({} bytes)", out.display(), body.len());
    ExitCode::SUCCESS
}

fn verify(bundle: &std::path::Path) -> ExitCode {
    let file = match std::fs::File::open(bundle) {
        Ok(f) => std::io::BufReader::new(f),
        Err(e) => {
            eprintln!("changegate: cannot read {}: {e}", bundle.display());
            return ExitCode::from(2);
        }
    };
    // Read as it is checked: a bundle of any size fits.
    let check = match changegate_web::evidence::verify_bundle_from(file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("changegate: {}: {e}", bundle.display());
            return ExitCode::from(2);
        }
    };
    for (name, ok) in &check.files {
        println!(
            "{name}: {}",
            if *ok { "OK" } else { "FAILED (hash differs)" }
        );
    }
    let chain = &check.chain;
    if chain.intact {
        println!(
            "audit chain: intact, {} events, head {}",
            chain.events, chain.head_hash
        );
    } else {
        println!(
            "audit chain: BROKEN after {} events: {:?}",
            chain.events, chain.first_break
        );
    }
    if !check.head_matches {
        println!(
            "audit chain: its head is not the one evidence.json records (events cut off or replaced)"
        );
    }
    if check.intact() {
        println!("bundle verified");
        ExitCode::SUCCESS
    } else {
        println!("bundle NOT verified");
        ExitCode::from(1)
    }
}
