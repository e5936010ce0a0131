//! `kubectl changegate`: the binary installed (or linked) as
//! `kubectl-changegate` is a kubectl plugin that writes the documented
//! approval patches for a person. It finds the caller's user name
//! (`kubectl auth whoami`) and the ChangeRequest's current revision, then
//! patches the caller's own entry in `status.approvals` (or, for a
//! Release, `status.authorizations`) and prints the server's answer,
//! which the operator's webhook returns as a warning, or its refusal.
//! `--context`, `--kubeconfig`, `-n`, `--as` and `--as-group` are passed
//! to every kubectl call.

use clap::{Parser, Subcommand};
use std::process::{Command, ExitCode, Output};

#[derive(Parser)]
#[command(
    name = "kubectl changegate",
    version,
    about = "Approve ChangeRequests and authorize Release phases as yourself, recorded by the changegate server",
    after_help = "Examples:\n  kubectl changegate approve chg/web-2-4-1 -n shop -m \"checked the diff\"\n  \
                  kubectl changegate reject web-2-4-1 -n shop -m \"not in this window\"\n  \
                  kubectl changegate authorize rel/shop-2026-12-12 -n shop --phase deploy"
)]
struct Plugin {
    #[command(subcommand)]
    command: PluginCommand,
    /// The namespace of the resource.
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    context: Option<String>,
    /// The kubeconfig file to use.
    #[arg(long, global = true)]
    kubeconfig: Option<String>,
    /// Act as this user (impersonation; you need the right to impersonate).
    #[arg(long = "as", global = true)]
    as_user: Option<String>,
    /// Groups to act as (impersonation), repeatable.
    #[arg(long = "as-group", global = true)]
    as_group: Vec<String>,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Approve a ChangeRequest (`chg/NAME` or `NAME`) at its current revision.
    Approve(Decide),
    /// Reject a ChangeRequest at its current revision.
    Reject(Decide),
    /// Authorize a phase of a Release (`rel/NAME` or `NAME`).
    Authorize {
        target: String,
        /// `plan`, `build-and-test` or `deploy`.
        #[arg(long)]
        phase: String,
        /// A note for the release's record.
        #[arg(short = 'm', long, default_value = "")]
        message: String,
        /// Ask the server what would happen; record nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(clap::Args)]
struct Decide {
    target: String,
    /// Your comment, on the record.
    #[arg(short = 'm', long, default_value = "")]
    message: String,
    /// Decide this revision instead of the one in status.
    #[arg(long)]
    revision: Option<i64>,
    /// Ask the server what would happen; record nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Whether the process was started as the plugin (`kubectl-changegate`).
pub fn invoked_as_plugin() -> bool {
    std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .is_some_and(|name| name.starts_with("kubectl-changegate"))
}

pub fn main() -> ExitCode {
    let plugin = Plugin::parse();
    match run(&plugin) {
        Ok(code) => code,
        Err(why) => {
            eprintln!("kubectl changegate: {why}");
            ExitCode::from(2)
        }
    }
}

/// `NAME` of `kind/NAME` (or of a bare `NAME`), checking the kind.
fn name_of<'a>(target: &'a str, kinds: &[&str]) -> Result<&'a str, String> {
    match target.split_once('/') {
        None => Ok(target),
        Some((kind, name)) if kinds.contains(&kind.to_ascii_lowercase().as_str()) => Ok(name),
        Some((kind, _)) => Err(format!(
            "{target}: expected {}/NAME, not a {kind}",
            kinds[0]
        )),
    }
}

impl Plugin {
    /// The flags every kubectl call gets.
    fn flags(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut pass = |flag: &str, value: &Option<String>| {
            if let Some(v) = value {
                out.push(format!("--{flag}={v}"));
            }
        };
        pass("namespace", &self.namespace);
        pass("context", &self.context);
        pass("kubeconfig", &self.kubeconfig);
        pass("as", &self.as_user);
        for g in &self.as_group {
            out.push(format!("--as-group={g}"));
        }
        out
    }

    fn kubectl(&self, args: &[&str]) -> Result<Output, String> {
        let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
        Command::new(&kubectl)
            .args(args)
            .args(self.flags())
            .output()
            .map_err(|e| format!("cannot run {kubectl}: {e}"))
    }

    /// kubectl's output of `args`, or its error as it said it.
    fn read(&self, args: &[&str]) -> Result<String, String> {
        let out = self.kubectl(args)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

fn run(p: &Plugin) -> Result<ExitCode, String> {
    let user = p.read(&[
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ])?;
    if user.is_empty() {
        return Err("kubectl auth whoami names no user; check your kubeconfig".into());
    }
    let (resource, name, patch, dry_run) = match &p.command {
        PluginCommand::Approve(d) | PluginCommand::Reject(d) => {
            let name = name_of(&d.target, &["chg", "changerequest", "changerequests"])?;
            let revision = match d.revision {
                Some(r) => r,
                None => {
                    let r = p.read(&["get", "chg", name, "-o", "jsonpath={.status.revision}"])?;
                    r.parse().map_err(|_| {
                        format!("ChangeRequest {name} shows no revision yet: wait until its status has a number")
                    })?
                }
            };
            let decision = if matches!(p.command, PluginCommand::Approve(_)) {
                "Approved"
            } else {
                "Rejected"
            };
            let patch = serde_json::json!({"status": {"approvals": {user.as_str(): {
                "decision": decision, "revision": revision, "comment": d.message }}}});
            ("chg", name, patch, d.dry_run)
        }
        PluginCommand::Authorize {
            target,
            phase,
            message,
            dry_run,
        } => {
            let name = name_of(target, &["rel", "release", "releases"])?;
            let patch = serde_json::json!({"status": {"authorizations": {user.as_str(): {
                phase.as_str(): { "note": message } }}}});
            ("rel", name, patch, *dry_run)
        }
    };
    let patch = patch.to_string();
    let mut args = vec![
        "patch",
        resource,
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ];
    if dry_run {
        args.push("--dry-run=server");
    }
    let out = p.kubectl(&args)?;
    // The server's answer comes back as the webhook's warning (or its
    // refusal): say it plainly.
    let said = String::from_utf8_lossy(&out.stderr);
    for line in said.lines() {
        let line = line.trim_start_matches("Warning: ");
        match line.find("changegate: ") {
            Some(at) if out.status.success() => println!("{}", &line[at + "changegate: ".len()..]),
            Some(at) => eprintln!("refused: {}", &line[at + "changegate: ".len()..]),
            None if !out.status.success() => eprintln!("{line}"),
            None => {}
        }
    }
    Ok(if out.status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_names_its_kind_or_only_a_name() {
        assert_eq!(name_of("chg/web", &["chg", "changerequest"]), Ok("web"));
        assert_eq!(
            name_of("ChangeRequest/web", &["chg", "changerequest"]),
            Ok("web")
        );
        assert_eq!(name_of("web", &["chg"]), Ok("web"));
        assert!(name_of("rel/web", &["chg"]).is_err());
    }
}
