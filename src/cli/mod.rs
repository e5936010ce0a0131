//! Command-line parsing and dispatch. Every command has `--help`; errors
//! say what to do next; exit codes: 0 done, 1 refused by the server or
//! invalid input, 2 cannot run (connection, database, usage).

mod admin;
mod agent;
mod apply;
mod change;
mod client;
mod database;
mod gate;
mod kubectl_plugin;
mod release;
mod report;
mod serve;
mod token;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "changegate",
    version,
    about = "Change and release management for managed service providers",
    long_about = "Change and release management for managed service providers: every client's changes requested, \
assessed, approved by the MSP and the client, scheduled in windows and kept as tamper-evident evidence.\n\n\
Start with `changegate serve`, create the first administrator with `changegate admin create-user --admin`, \
get a token with `changegate admin token <email>`, then use the client commands with --server and --token \
(or CHANGEGATE_SERVER and CHANGEGATE_TOKEN)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the server: API, scheduler, on SQLite (default) or PostgreSQL.
    Serve(serve::ServeArgs),
    /// Run the Kubernetes operator: reconciles the custom resources with
    /// the server, admission from the bundle, rollouts followed.
    #[command(alias = "agent")]
    Operator(Box<agent::AgentArgs>),
    /// Bootstrap and recovery on the database directly.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Apply tenants, users, boards, policies, windows, templates and configuration items from YAML.
    Apply(apply::ApplyArgs),
    /// Raise, submit, decide and implement changes.
    Change(change::ChangeArgs),
    /// Package approved changes into releases, run their phases and runbooks.
    Release(release::ReleaseArgs),
    /// Ask the gate from a pipeline: may this ship now? (exit 0 allow, 1 deny, 2 error)
    #[command(subcommand)]
    Gate(gate::GateCommand),
    /// Verify a tenant's audit chain.
    #[command(subcommand)]
    Audit(change::AuditCommand),
    /// Your tokens with their last use; revoke one.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Evidence for auditors: export a period, verify a bundle offline.
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Print the chart's webhook configurations (development).
    #[command(hide = true)]
    Webhooks,
    /// Write the custom resource definitions, one file per kind, into a folder (development).
    #[command(hide = true)]
    Crds {
        /// The folder, e.g. `crds`.
        out: std::path::PathBuf,
    },
}

pub fn init_tracing(default: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default.into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

/// A tokio runtime for the async commands.
fn block_on<F: std::future::Future<Output = ExitCode>>(f: F) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("changegate: cannot start the async runtime: {e}");
            ExitCode::from(2)
        }
    }
}

pub fn main() -> ExitCode {
    // One TLS provider for every client in the process (kube, reqwest, sqlx).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Linked or installed as `kubectl-changegate`: the kubectl plugin.
    if kubectl_plugin::invoked_as_plugin() {
        return kubectl_plugin::main();
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => block_on(serve::run(args)),
        Command::Operator(args) => agent::run(*args),
        Command::Admin(cmd) => block_on(admin::run(cmd)),
        Command::Apply(args) => block_on(apply::run(args)),
        Command::Change(args) => block_on(change::run(args)),
        Command::Audit(cmd) => block_on(change::audit(cmd)),
        Command::Token(cmd) => block_on(token::run(cmd)),
        Command::Gate(cmd) => block_on(gate::run(cmd)),
        Command::Report(cmd) => block_on(report::run(cmd)),
        Command::Release(args) => block_on(release::run(args)),
        Command::Webhooks => match changegate_agent::webhook::registration::chart_template() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("changegate: cannot render the webhook configurations: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Crds { out } => {
            let written = std::fs::create_dir_all(&out).and_then(|()| {
                changegate_resources::crd_files()
                    .into_iter()
                    .try_for_each(|(name, yaml)| std::fs::write(out.join(name), yaml))
            });
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!(
                        "changegate: cannot write the CRDs into {}: {e}",
                        out.display()
                    );
                    ExitCode::FAILURE
                }
            }
        }
    }
}
