//! The changegate operator binary: controller, webhook, and `changegate crd`.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "changegate",
    version,
    about = "ITIL change and release management for Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions generated from the Rust types.
    Crd,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => match changegate::api::crds_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("changegate: cannot render CRDs: {e}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}
