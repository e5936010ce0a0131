//! `changegate token`: your tokens (an installation admin's: every one),
//! with their last use, and revoking one.

use clap::Subcommand;
use std::process::ExitCode;

use super::client::ServerArgs;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Your API, gate and agent tokens, with when each was last used.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Revoke a token by its id (from `token list`): it stops working at once.
    Revoke {
        id: i64,
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub async fn run(cmd: TokenCommand) -> ExitCode {
    let server = match &cmd {
        TokenCommand::List { server } | TokenCommand::Revoke { server, .. } => server,
    };
    let client = match server.client() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("changegate: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let answer = match &cmd {
        TokenCommand::List { .. } => client.get("/api/v1/tokens").await.map(|list| {
            let items = list.as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                println!("no tokens");
            }
            for t in items {
                let when = |k: &str| t[k].as_str().map(str::to_string);
                println!(
                    "{:>5}  {:<6} {:<28} {:<26} last used {}{}",
                    t["id"],
                    t["kind"].as_str().unwrap_or("?"),
                    t["name"].as_str().unwrap_or(""),
                    t["reaches"]
                        .as_str()
                        .unwrap_or(t["owner"].as_str().unwrap_or("")),
                    when("last_used_at").unwrap_or_else(|| "never".into()),
                    when("revoked_at")
                        .map(|r| format!(", revoked {r}"))
                        .unwrap_or_default()
                );
            }
        }),
        TokenCommand::Revoke { id, .. } => client
            .call(
                reqwest::Method::DELETE,
                &format!("/api/v1/tokens/{id}"),
                None,
            )
            .await
            .map(|_| println!("token {id} revoked")),
    };
    match answer {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("changegate: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
