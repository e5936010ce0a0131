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
        /// A checkpoint log the server wrote (`serve --checkpoint-log`): the
        /// chain must hold every signed head of its tenant recorded there,
        /// so a history rewritten in the database, head included, is found.
        #[arg(long)]
        checkpoints: Option<PathBuf>,
        /// The log's public key (default: the log's path with `.pub`).
        #[arg(long, requires = "checkpoints")]
        public_key: Option<PathBuf>,
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
        ReportCommand::Verify {
            bundle,
            checkpoints,
            public_key,
        } => verify(&bundle, checkpoints.as_deref(), public_key.as_deref()),
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

/// The lines of a checkpoint log and its public key.
fn read_checkpoints(
    log: &std::path::Path,
    public_key: Option<&std::path::Path>,
) -> Result<(Vec<changegate_jobs::checkpoint::Line>, String), String> {
    let text =
        std::fs::read_to_string(log).map_err(|e| format!("cannot read {}: {e}", log.display()))?;
    let lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("{} line {}: {e}", log.display(), i + 1))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let key_file = public_key.map_or_else(
        || changegate_jobs::checkpoint::public_key_path(log),
        |p| p.to_path_buf(),
    );
    let key = std::fs::read_to_string(&key_file)
        .map_err(|e| format!("cannot read the public key {}: {e}", key_file.display()))?;
    Ok((lines, key.trim().to_string()))
}

fn verify(
    bundle: &std::path::Path,
    checkpoints: Option<&std::path::Path>,
    public_key: Option<&std::path::Path>,
) -> ExitCode {
    let anchors = match checkpoints.map(|log| read_checkpoints(log, public_key)) {
        Some(Ok(a)) => Some(a),
        Some(Err(e)) => {
            eprintln!("changegate: {e}");
            return ExitCode::from(2);
        }
        None => None,
    };
    let wanted: std::collections::BTreeSet<i64> = anchors
        .iter()
        .flat_map(|(lines, _)| lines.iter().map(|l| l.checkpoint.seq))
        .collect();
    let file = match std::fs::File::open(bundle) {
        Ok(f) => std::io::BufReader::new(f),
        Err(e) => {
            eprintln!("changegate: cannot read {}: {e}", bundle.display());
            return ExitCode::from(2);
        }
    };
    // Read as it is checked: a bundle of any size fits.
    let check = match changegate_web::evidence::verify_bundle_keeping(file, &wanted) {
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
            "audit chain: BROKEN after {} events: {}",
            chain.events,
            chain
                .first_break
                .as_ref()
                .map_or_else(|| "no break named".to_string(), ToString::to_string)
        );
    }
    if !check.head_matches {
        println!(
            "audit chain: its head is not the one evidence.json records (events cut off or replaced)"
        );
    }
    let mut anchored = true;
    if let Some((lines, key)) = &anchors {
        let (Some(tenant), Some(made_at)) = (&check.tenant, check.generated_at) else {
            eprintln!(
                "changegate: {}: evidence.json names no tenant or no time it was made; a bundle exported by changegate names both",
                bundle.display()
            );
            return ExitCode::from(2);
        };
        let found = changegate_jobs::checkpoint::check(
            lines,
            key,
            tenant,
            made_at,
            chain.events as i64,
            &check.hashes_at,
        );
        for p in &found.problems {
            println!("{p}");
        }
        anchored = found.anchored();
        if anchored {
            println!(
                "checkpoints: the chain holds all {} heads of {tenant} signed before the bundle was made",
                found.held
            );
        } else if found.problems.is_empty() {
            println!(
                "checkpoints: none of {tenant} was signed before this bundle was made; export a newer bundle to check it against the log"
            );
        }
        if found.later > 0 {
            println!(
                "checkpoints: {} signed after the bundle was made (a newer bundle holds them)",
                found.later
            );
        }
    }
    if check.intact() && anchored {
        println!("bundle verified");
        ExitCode::SUCCESS
    } else {
        println!("bundle NOT verified");
        ExitCode::from(1)
    }
}
