//! `changegate release ...`: package approved changes of one or several
//! tenants, authorize the phases, record the runbook, roll back, finish
//! and close; a client of the server's release routes.

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

use super::client::{ClientError, ServerArgs};

#[derive(Args)]
pub struct ReleaseArgs {
    #[command(subcommand)]
    command: ReleaseCommand,
    /// Print the server's JSON instead of a summary.
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args)]
struct Number {
    /// REL-<n>
    release: String,
}

#[derive(Subcommand)]
enum ReleaseCommand {
    /// The releases delivering changes of your tenants, newest first.
    List,
    /// A release: changes, phases, conflicts, runbook, rollback, outcome.
    Show(Number),
    /// Package approved changes into a release you own.
    Create(CreateArgs),
    /// Authorize the next phase: plan, build-and-test, deploy (deploy starts it).
    Authorize {
        release: String,
        #[arg(long)]
        phase: String,
        #[arg(long, default_value = "")]
        note: String,
        /// deploy: start at the planned start instead of now (the server starts it then).
        #[arg(long)]
        at_planned_start: bool,
    },
    /// Let a conflict stand, with a reason (a change manager of its tenant).
    Override {
        release: String,
        /// The conflict's key, as `release show` lists it.
        #[arg(long)]
        conflict: String,
        #[arg(long)]
        reason: String,
    },
    /// Record how a runbook step went.
    Step {
        release: String,
        /// The step's number (1-based).
        step: usize,
        /// done, failed or skipped.
        #[arg(long)]
        status: String,
        #[arg(long, default_value = "")]
        evidence: String,
    },
    /// Authorize the rollback of a deploying release.
    Rollback {
        release: String,
        #[arg(long)]
        reason: String,
    },
    /// Finish a running release: its outcome goes to every change.
    Finish(Number),
    /// Close a finished release once every change had its review.
    Close(Number),
    /// Cancel a release that has not deployed.
    Cancel(Number),
}

#[derive(Args)]
struct CreateArgs {
    #[arg(long)]
    name: String,
    /// A change to deliver, as <tenant>/<CHG-n>; repeat for more.
    #[arg(long = "change", required = true)]
    changes: Vec<String>,
    #[arg(long, default_value = "")]
    description: String,
    /// Planned start (RFC 3339).
    #[arg(long)]
    start: Option<String>,
    /// Planned end (RFC 3339).
    #[arg(long)]
    end: Option<String>,
    /// The runbook: a YAML (or JSON) list of steps {kind, title, owner, change}.
    #[arg(long)]
    runbook: Option<PathBuf>,
}

fn fail(e: ClientError) -> ExitCode {
    eprintln!("changegate: {e}");
    ExitCode::from(e.exit_code())
}

/// The release as a few lines a person reads.
fn summary(r: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let mut out = format!(
        "{} [{}] {}{}\n  slot {} to {}\n",
        s(&r["number"]),
        s(&r["state"]),
        s(&r["name"]),
        r["outcome"]
            .as_str()
            .map(|o| format!(", outcome {o}"))
            .unwrap_or_default(),
        s(&r["planned_start"]),
        s(&r["planned_end"]),
    );
    for c in r["changes"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  change {}/{} [{}] {}\n",
            s(&c["tenant"]),
            s(&c["number"]),
            s(&c["state"]),
            s(&c["title"])
        ));
    }
    for a in r["authorizations"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  phase {} authorized by {} at {}\n",
            s(&a["phase"]),
            s(&a["by"]),
            s(&a["at"])
        ));
    }
    for c in r["conflicts"].as_array().into_iter().flatten() {
        let state = match c["overridden_by"].as_str() {
            Some(by) => format!("overridden by {by}: {}", s(&c["override_reason"])),
            None if c["overridable"] == json!(true) => "may be overridden".into(),
            None => "stands".into(),
        };
        out.push_str(&format!(
            "  conflict {} ({state}): {}\n",
            s(&c["key"]),
            s(&c["message"])
        ));
    }
    if let Some(p) = r["proposed_start"].as_str() {
        out.push_str(&format!("  earliest slot every tenant allows: {p}\n"));
    }
    for st in r["runbook"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  step {} {} [{}] {}{}\n",
            st["step"],
            s(&st["kind"]),
            s(&st["status"]),
            s(&st["title"]),
            st["evidence"]
                .as_str()
                .filter(|e| !e.is_empty())
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ));
    }
    if let Some(b) = r["rollback"].as_object() {
        out.push_str(&format!(
            "  rollback authorized by {} ({}), finished {}, restored: {}\n",
            s(&b["authorized_by"]),
            s(&b["reason"]),
            s(&b["finished_at"]),
            s(&b["restored"])
        ));
    }
    out.trim_end().to_string()
}

pub async fn run(args: ReleaseArgs) -> ExitCode {
    let client = match args.server.client() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let path = |n: &str, tail: &str| format!("/api/v1/releases/{n}{tail}");
    let answer = match args.command {
        ReleaseCommand::List => match client.get("/api/v1/releases").await {
            Ok(list) if !args.json => {
                for r in list.as_array().into_iter().flatten() {
                    let names: Vec<&str> = r["changes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    println!(
                        "{} [{}] {} ({})",
                        r["number"].as_str().unwrap_or(""),
                        r["state"].as_str().unwrap_or(""),
                        r["name"].as_str().unwrap_or(""),
                        names.join(", ")
                    );
                }
                return ExitCode::SUCCESS;
            }
            other => other,
        },
        ReleaseCommand::Show(n) => client.get(&path(&n.release, "")).await,
        ReleaseCommand::Create(c) => {
            let mut changes = Vec::new();
            for item in &c.changes {
                let Some((tenant, change)) = item.split_once('/') else {
                    eprintln!(
                        "changegate: --change {item:?}: write it as <tenant>/<CHG-n>, e.g. client-a/CHG-12"
                    );
                    return ExitCode::from(2);
                };
                changes.push(json!({ "tenant": tenant, "change": change }));
            }
            let runbook: Value = match &c.runbook {
                Some(file) => {
                    let text = match std::fs::read_to_string(file) {
                        Ok(t) => t,
                        Err(e) => {
                            eprintln!("changegate: cannot read {}: {e}", file.display());
                            return ExitCode::from(2);
                        }
                    };
                    match serde_yaml_ng::from_str(&text) {
                        Ok(v) => v,
                        Err(e) => {
                            eprintln!(
                                "changegate: {}: not a YAML list of steps: {e}",
                                file.display()
                            );
                            return ExitCode::from(2);
                        }
                    }
                }
                None => json!([]),
            };
            let body = json!({ "name": c.name, "description": c.description, "changes": changes,
                               "planned_start": c.start, "planned_end": c.end, "runbook": runbook });
            client.post("/api/v1/releases", &body).await
        }
        ReleaseCommand::Authorize {
            release,
            phase,
            note,
            at_planned_start,
        } => {
            client
                .post(
                    &path(&release, "/phases"),
                    &json!({ "phase": phase, "note": note, "at_planned_start": at_planned_start }),
                )
                .await
        }
        ReleaseCommand::Override {
            release,
            conflict,
            reason,
        } => {
            client
                .post(
                    &path(&release, "/overrides"),
                    &json!({ "conflict": conflict, "reason": reason }),
                )
                .await
        }
        ReleaseCommand::Step {
            release,
            step,
            status,
            evidence,
        } => {
            client
                .post(
                    &path(&release, &format!("/steps/{step}")),
                    &json!({ "status": status, "evidence": evidence }),
                )
                .await
        }
        ReleaseCommand::Rollback { release, reason } => {
            client
                .post(&path(&release, "/rollback"), &json!({ "reason": reason }))
                .await
        }
        ReleaseCommand::Finish(n) => client.post(&path(&n.release, "/finish"), &json!({})).await,
        ReleaseCommand::Close(n) => client.post(&path(&n.release, "/close"), &json!({})).await,
        ReleaseCommand::Cancel(n) => client.post(&path(&n.release, "/cancel"), &json!({})).await,
    };
    match answer {
        Ok(v) if args.json => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(v) => {
            println!("{}", summary(&v));
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}
