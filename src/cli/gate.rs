//! `changegate gate check`: a pipeline asks the server whether what it is
//! about to deploy was approved for this target now, and with `--record`
//! reports the deployment. Exit 0 allow (or warn), 1 deny, 2 error, so a
//! pipeline step fails exactly when it must not ship. With `--wait 2h` it
//! waits for the approval (or the window) instead of failing at once.

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use std::process::ExitCode;

use super::client::ServerArgs;

#[derive(Subcommand)]
pub enum GateCommand {
    /// May these artifacts ship to this target now? Exit 0 allow, 1 deny, 2 error.
    Check(CheckArgs),
    /// Mint a token for a pipeline: it reaches only this tenant's gate, with
    /// your roles there (recording needs the implementer role). Printed once.
    Token(TokenArgs),
}

#[derive(Args)]
pub struct TokenArgs {
    /// The tenant (slug), e.g. client-a.
    #[arg(long, env = "CHANGEGATE_TENANT")]
    tenant: String,
    /// Where the token is used, e.g. github-actions-production.
    #[arg(long)]
    name: String,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args)]
#[command(group(ArgGroup::new("target").required(true).args(["environment", "item", "workload"])))]
pub struct CheckArgs {
    /// The tenant (slug), e.g. client-a.
    #[arg(long, env = "CHANGEGATE_TENANT")]
    tenant: String,
    /// The pipeline environment deployed to, e.g. production.
    #[arg(long)]
    environment: Option<String>,
    /// A configuration item named directly, e.g. edge-firewall.
    #[arg(long)]
    item: Option<String>,
    /// A Kubernetes workload as CLUSTER/NAMESPACE/KIND/NAME, e.g. prod/pay/Deployment/payments.
    #[arg(long)]
    workload: Option<String>,
    /// An image digest or artifact hash that ships (repeat for several).
    #[arg(long = "artifact")]
    artifacts: Vec<String>,
    /// Record the deployment on the covering change (or as unauthorized).
    #[arg(long, requires = "run")]
    record: bool,
    /// With --record: the pipeline run, e.g. its URL.
    #[arg(long)]
    run: Option<String>,
    /// With --record: how far the deployment got.
    #[arg(long, value_enum, default_value = "started")]
    status: Status,
    /// Print the server's JSON instead of the decision line.
    #[arg(long)]
    json: bool,
    /// Wait this long (e.g. 90s, 30m, 2h) for the content to be allowed:
    /// exits 0 the moment an approved change covers it inside its window,
    /// 1 at once on a rejection, or when the wait ends. Prints what it
    /// waits for whenever that changes.
    #[arg(long, value_parser = parse_wait)]
    wait: Option<std::time::Duration>,
    #[command(flatten)]
    server: ServerArgs,
}

/// `90s`, `30m`, `2h`, `1h30m`, or plain seconds.
fn parse_wait(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{s:?}: write a duration like 90s, 30m, 2h or 1h30m");
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    let (mut total, mut digits) = (0u64, String::new());
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = total
            .checked_add(n.checked_mul(unit).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(total))
}

#[derive(Clone, Copy, ValueEnum)]
enum Status {
    Started,
    Succeeded,
    Failed,
}

fn target(a: &CheckArgs) -> Result<Value, String> {
    if let Some(env) = &a.environment {
        return Ok(json!({ "pipeline": { "environment": env } }));
    }
    if let Some(item) = &a.item {
        return Ok(json!({ "configuration_item": item }));
    }
    let w = a.workload.as_deref().unwrap_or_default();
    match w.split('/').collect::<Vec<_>>()[..] {
        [cluster, namespace, kind, name] if !w.contains("//") => Ok(json!({ "workload": {
            "cluster": cluster, "namespace": namespace, "kind": kind, "name": name } })),
        _ => Err(format!(
            "--workload {w:?}: write it as CLUSTER/NAMESPACE/KIND/NAME, e.g. prod/pay/Deployment/payments"
        )),
    }
}

fn error(message: String) -> ExitCode {
    eprintln!("changegate: {message}");
    ExitCode::from(2)
}

pub async fn run(cmd: GateCommand) -> ExitCode {
    match cmd {
        GateCommand::Check(a) => check(a).await,
        GateCommand::Token(a) => token(a).await,
    }
}

async fn token(a: TokenArgs) -> ExitCode {
    let client = match a.server.client() {
        Ok(c) => c,
        Err(e) => return error(e.to_string()),
    };
    let path = format!("/api/v1/tenants/{}/gate-tokens", a.tenant);
    match client.post(&path, &json!({ "name": a.name })).await {
        Ok(v) => {
            println!("{}", v["token"].as_str().unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("changegate: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn check(a: CheckArgs) -> ExitCode {
    let target = match target(&a) {
        Ok(t) => t,
        Err(e) => return error(e),
    };
    let client = match a.server.client() {
        Ok(c) => c,
        Err(e) => return error(e.to_string()),
    };
    let mut body = json!({ "tenant": a.tenant, "target": target, "artifacts": a.artifacts });
    if a.record {
        let status = match a.status {
            Status::Started => "started",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
        };
        body["record"] = json!({ "run": a.run, "status": status });
    }
    // Waiting: checks that long-poll (20 s each, within the client's
    // timeout), saying what it waits for whenever that changes; the
    // deployment is recorded only by the last check.
    if let Some(wait) = a.wait {
        let until = std::time::Instant::now() + wait;
        let mut said = String::new();
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let mut probe = json!({ "tenant": a.tenant, "target": body["target"], "artifacts": body["artifacts"],
                                    "wait": left.as_secs().clamp(1, 20) });
            if let Some(o) = probe.as_object_mut() {
                o.retain(|_, v| !v.is_null());
            }
            let answer = match client.post("/api/v1/gate/check", &probe).await {
                Ok(v) => v,
                Err(e) => return error(e.to_string()),
            };
            let verdict = answer["verdict"].as_str().unwrap_or("deny");
            if verdict != "deny" || answer["settled"].as_bool() == Some(true) {
                break;
            }
            let message = answer["message"].as_str().unwrap_or_default().to_string();
            if message != said && !a.json {
                eprintln!("waiting: {message}");
                said = message;
            }
        }
    }
    let answer = match client.post("/api/v1/gate/check", &body).await {
        Ok(v) => v,
        Err(e) => return error(e.to_string()),
    };
    let verdict = answer["verdict"].as_str().unwrap_or("deny");
    if a.json {
        println!("{answer:#}");
    } else {
        println!(
            "{verdict}: {}",
            answer["message"].as_str().unwrap_or_default()
        );
        if let Some(event) = answer["recorded"]["event"].as_str() {
            match answer["recorded"]["change_state"].as_str() {
                Some(state) => println!("recorded {event}; {} is {state}", answer["change"]),
                None => println!("recorded {event}"),
            }
        }
    }
    match verdict {
        "allow" | "warn" => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_wait_reads_as_people_write_durations() {
        assert_eq!(parse_wait("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_wait("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_wait("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_wait("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_wait("soon").is_err());
        assert!(parse_wait("2x").is_err());
        assert!(parse_wait("0s").is_err());
        assert!(parse_wait("5m3").is_err());
    }
}
