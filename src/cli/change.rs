//! `changegate change ...` and `changegate audit verify`: clients of the
//! server's change and audit routes, printing what the server answered.

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

use super::client::{ClientError, ServerArgs};

#[derive(Args)]
pub struct ChangeArgs {
    #[command(subcommand)]
    command: ChangeCommand,
    /// Print the server's JSON instead of a summary.
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args)]
struct TenantArg {
    /// The tenant (slug), e.g. client-a.
    #[arg(long, env = "CHANGEGATE_TENANT")]
    tenant: String,
}

#[derive(Args)]
struct Target {
    /// CHG-<n>
    change: String,
    #[command(flatten)]
    tenant: TenantArg,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum ChangeCommand {
    /// Raise a change as a draft.
    Create(CreateArgs),
    /// Submit a draft: risk assessed, approvers frozen, content fingerprinted.
    Submit(Target),
    /// Show a change with its approval status.
    Show(Target),
    /// List changes (newest first) across your tenants or in one.
    List(ListArgs),
    /// Approve a change (as yourself, or --on-behalf-of a delegator).
    Approve(DecideArgs),
    /// Reject a change.
    Reject(DecideArgs),
    /// Start implementing (inside an open window).
    Start(NoteArgs),
    /// Record the implementation as done, with the documentation you updated.
    Complete(CompleteArgs),
    /// Record a failed implementation, optionally rolled back.
    Fail(FailArgs),
    /// Record the post-implementation review and close.
    Review(ReviewArgs),
    /// Cancel a change.
    Cancel(NoteArgs),
}

#[derive(Args)]
struct CreateArgs {
    #[command(flatten)]
    tenant: TenantArg,
    /// standard, normal or emergency.
    #[arg(long = "type", default_value = "normal")]
    kind: String,
    #[arg(long)]
    title: Option<String>,
    /// A YAML or JSON file with the change's fields (title, description, risk_answers, ...).
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    #[arg(long)]
    description: Option<String>,
    #[arg(long)]
    justification: Option<String>,
    /// A risk questionnaire answer KEY=VALUE (repeatable).
    #[arg(long = "risk", value_name = "KEY=VALUE")]
    risk: Vec<String>,
    /// An affected configuration item (repeatable).
    #[arg(long = "ci")]
    cis: Vec<String>,
    /// An artifact the change ships, e.g. an image digest (repeatable).
    #[arg(long = "artifact")]
    artifacts: Vec<String>,
    /// RFC 3339, e.g. 2026-11-28T02:00:00+01:00
    #[arg(long)]
    planned_start: Option<String>,
    #[arg(long)]
    planned_end: Option<String>,
    #[arg(long)]
    implementation_plan: Option<String>,
    #[arg(long)]
    test_plan: Option<String>,
    /// What shows the tests passed (a release's build-and-test phase asks for it).
    #[arg(long)]
    test_evidence: Option<String>,
    #[arg(long)]
    backout_plan: Option<String>,
    /// The backout is automatic: if the rollout fails, the agent rolls the
    /// workload back to its previous revision by itself.
    #[arg(long)]
    automatic_rollback: bool,
    /// The standard-change template (type standard).
    #[arg(long)]
    template: Option<String>,
    /// The implementer's e-mail.
    #[arg(long)]
    implementer: Option<String>,
}

#[derive(Args)]
struct ListArgs {
    #[arg(long, env = "CHANGEGATE_TENANT")]
    tenant: Option<String>,
    #[arg(long)]
    state: Option<String>,
    #[arg(long = "type")]
    kind: Option<String>,
    #[arg(long)]
    requester: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

#[derive(Args)]
struct DecideArgs {
    #[command(flatten)]
    target: Target,
    #[arg(long, short = 'm', default_value = "")]
    comment: String,
    #[arg(long)]
    on_behalf_of: Option<String>,
    /// The revision you reviewed (refused if the change has a newer one).
    /// Left out, the change is read first and the revision it shows (with
    /// its fingerprint and title) is the one decided on.
    #[arg(long)]
    revision: Option<i64>,
}

#[derive(Args)]
struct NoteArgs {
    #[command(flatten)]
    target: Target,
    #[arg(long, default_value = "")]
    note: String,
}

#[derive(Args)]
struct CompleteArgs {
    #[command(flatten)]
    target: Target,
    #[arg(long, default_value = "")]
    note: String,
    /// What you updated in the configuration items' documentation.
    #[arg(long, default_value = "")]
    documentation: String,
}

#[derive(Args)]
struct FailArgs {
    #[command(flatten)]
    target: Target,
    #[arg(long, default_value = "")]
    note: String,
    /// The backout plan was executed; say what was restored.
    #[arg(long, value_name = "WHAT")]
    rolled_back: Option<String>,
}

#[derive(Args)]
struct ReviewArgs {
    #[command(flatten)]
    target: Target,
    /// succeeded, failed or rolled-back.
    #[arg(long)]
    outcome: String,
    #[arg(long, default_value = "")]
    notes: String,
    #[arg(long, default_value = "")]
    lessons: String,
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Walk a tenant's hash chain and report the first broken link (exit 1 when broken).
    Verify {
        #[arg(long, env = "CHANGEGATE_TENANT")]
        tenant: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

fn fail(e: ClientError) -> ExitCode {
    eprintln!("changegate: {e}");
    ExitCode::from(e.exit_code())
}

fn path(t: &Target, tail: &str) -> String {
    format!(
        "/api/v1/tenants/{}/changes/{}{tail}",
        t.tenant.tenant, t.change
    )
}

/// One line per change, then its approval status.
fn summary(c: &Value) -> String {
    let mut s = format!(
        "{} [{}] {} {}: {}",
        c["number"].as_str().unwrap_or("?"),
        c["tenant"].as_str().unwrap_or("?"),
        c["type"].as_str().unwrap_or("?"),
        c["state"].as_str().unwrap_or("?"),
        c["title"].as_str().unwrap_or("")
    );
    if let Some(risk) = c["risk"].as_object() {
        s += &format!(
            "\n  risk {} (score {})",
            risk["level"].as_str().unwrap_or("?"),
            risk["score"]
        );
    }
    if let Some(f) = c["fingerprint"].as_str() {
        s += &format!("\n  revision {}, fingerprint {f}", c["revision"]);
    }
    let status = &c["approval"]["status"];
    match status["status"].as_str() {
        Some("pending") => {
            for w in status["waiting_for"].as_array().into_iter().flatten() {
                let who: Vec<&str> = w["awaiting"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str())
                    .collect();
                s += &format!(
                    "\n  waiting for {} more from board {}: {}",
                    w["needed"],
                    w["board"].as_str().unwrap_or("?"),
                    who.join(", ")
                );
            }
        }
        Some("rejected") => {
            s += &format!(
                "\n  rejected by board {}",
                status["board"].as_str().unwrap_or("?")
            )
        }
        Some("approved") => s += "\n  approved by every board",
        _ => {}
    }
    s
}

fn print(v: &Value, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        println!("{}", summary(v));
    }
}

fn content(a: &CreateArgs) -> Result<Map<String, Value>, String> {
    let mut m = match &a.file {
        None => Map::new(),
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read {}: {e}", f.display()))?;
            let v: Value =
                serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))?;
            match v {
                Value::Object(m) => m,
                _ => {
                    return Err(format!(
                        "{}: expected a mapping of change fields",
                        f.display()
                    ));
                }
            }
        }
    };
    let mut set = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            m.insert(k.into(), Value::String(v.clone()));
        }
    };
    set("title", &a.title);
    set("description", &a.description);
    set("justification", &a.justification);
    set("planned_start", &a.planned_start);
    set("planned_end", &a.planned_end);
    set("implementation_plan", &a.implementation_plan);
    set("test_plan", &a.test_plan);
    set("test_evidence", &a.test_evidence);
    set("backout_plan", &a.backout_plan);
    set("template", &a.template);
    if !a.risk.is_empty() {
        let mut answers = Map::new();
        for r in &a.risk {
            let (k, v) = r
                .split_once('=')
                .ok_or_else(|| format!("--risk {r:?}: write KEY=VALUE, e.g. production=yes"))?;
            answers.insert(k.into(), Value::String(v.into()));
        }
        m.insert("risk_answers".into(), Value::Object(answers));
    }
    if !a.cis.is_empty() {
        m.insert("configuration_items".into(), json!(a.cis));
    }
    if !a.artifacts.is_empty() {
        m.insert("artifacts".into(), json!(a.artifacts));
    }
    if a.automatic_rollback {
        m.insert("automatic_rollback".into(), json!(true));
    }
    m.insert("type".into(), Value::String(a.kind.clone()));
    if let Some(i) = &a.implementer {
        m.insert("implementer".into(), Value::String(i.clone()));
    }
    Ok(m)
}

pub async fn run(args: ChangeArgs) -> ExitCode {
    let client = match args.server.client() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let result = match &args.command {
        ChangeCommand::Create(a) => match content(a) {
            Ok(body) => {
                client
                    .post(
                        &format!("/api/v1/tenants/{}/changes", a.tenant.tenant),
                        &Value::Object(body),
                    )
                    .await
            }
            Err(e) => {
                eprintln!("changegate: {e}");
                return ExitCode::from(1);
            }
        },
        ChangeCommand::Submit(t) => client.post(&path(t, "/submit"), &json!({})).await,
        ChangeCommand::Show(t) => client.get(&path(t, "")).await,
        ChangeCommand::List(l) => {
            let mut q = vec![format!("limit={}", l.limit)];
            for (k, v) in [
                ("state", &l.state),
                ("type", &l.kind),
                ("requester", &l.requester),
            ] {
                if let Some(v) = v {
                    q.push(format!("{k}={v}"));
                }
            }
            let base = match &l.tenant {
                Some(t) => format!("/api/v1/tenants/{t}/changes"),
                None => "/api/v1/changes".to_string(),
            };
            match client.get(&format!("{base}?{}", q.join("&"))).await {
                Ok(page) if !args.json => {
                    let items = page["items"].as_array().cloned().unwrap_or_default();
                    if items.is_empty() {
                        println!("no changes");
                    }
                    for c in items {
                        println!(
                            "{:<8} {:<12} {:<10} {:<18} {}",
                            c["number"].as_str().unwrap_or("?"),
                            c["tenant"].as_str().unwrap_or("?"),
                            c["type"].as_str().unwrap_or("?"),
                            c["state"].as_str().unwrap_or("?"),
                            c["title"].as_str().unwrap_or("")
                        );
                    }
                    return ExitCode::SUCCESS;
                }
                other => other,
            }
        }
        ChangeCommand::Approve(d) | ChangeCommand::Reject(d) => {
            let decision = if matches!(args.command, ChangeCommand::Approve(_)) {
                "approve"
            } else {
                "reject"
            };
            // A decision binds to a revision: the one the caller named, or
            // the one shown to them here before it is sent.
            let revision = match d.revision {
                Some(r) => r,
                None => match client.get(&path(&d.target, "")).await {
                    Ok(c) => {
                        let Some(r) = c["revision"].as_i64() else {
                            eprintln!(
                                "changegate: the server did not say which revision {} is at",
                                d.target.change
                            );
                            return ExitCode::from(2);
                        };
                        eprintln!(
                            "{decision} {} revision {r} ({}): {}",
                            d.target.change,
                            c["fingerprint"].as_str().unwrap_or("not submitted"),
                            c["title"].as_str().unwrap_or("")
                        );
                        r
                    }
                    Err(e) => return fail(e),
                },
            };
            let body = json!({ "decision": decision, "comment": d.comment, "on_behalf_of": d.on_behalf_of, "revision": revision });
            client.post(&path(&d.target, "/decisions"), &body).await
        }
        ChangeCommand::Start(n) => {
            client
                .post(&path(&n.target, "/start"), &json!({ "note": n.note }))
                .await
        }
        ChangeCommand::Cancel(n) => {
            client
                .post(&path(&n.target, "/cancel"), &json!({ "note": n.note }))
                .await
        }
        ChangeCommand::Complete(c) => {
            client
                .post(
                    &path(&c.target, "/complete"),
                    &json!({ "note": c.note, "documentation": c.documentation }),
                )
                .await
        }
        ChangeCommand::Fail(f) => {
            let body = json!({ "note": f.note, "rolled_back": f.rolled_back.is_some(), "restored": f.rolled_back.clone().unwrap_or_default() });
            client.post(&path(&f.target, "/fail"), &body).await
        }
        ChangeCommand::Review(r) => {
            client
                .post(
                    &path(&r.target, "/review"),
                    &json!({ "outcome": r.outcome, "notes": r.notes, "lessons": r.lessons }),
                )
                .await
        }
    };
    match result {
        Ok(v) => {
            print(&v, args.json);
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

pub async fn audit(cmd: AuditCommand) -> ExitCode {
    let AuditCommand::Verify { tenant, server } = cmd;
    let client = match server.client() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    match client.get(&format!("/api/v1/tenants/{tenant}/audit")).await {
        Ok(v) if v["intact"] == json!(true) => {
            println!(
                "audit chain of {tenant}: intact, {} events, head {} at event {} (keep it: a later chain must still hold it)",
                v["events"],
                v["head_hash"].as_str().unwrap_or("?"),
                v["head_seq"]
            );
            ExitCode::SUCCESS
        }
        Ok(v) => {
            println!(
                "audit chain of {tenant}: BROKEN after {} events: {}\n  It was altered outside changegate. Compare it with the last head you kept, and check an evidence bundle against the checkpoint log (changegate report verify BUNDLE --checkpoints LOG).",
                v["events"],
                changegate_core::audit::describe_break(&v["first_break"])
            );
            ExitCode::from(1)
        }
        Err(e) => fail(e),
    }
}
