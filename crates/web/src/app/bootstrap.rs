//! A server's first administrator and its clusters' agent tokens, taken
//! from a directory of files (a mounted Kubernetes Secret the Helm chart
//! generates once): what `changegate serve --bootstrap-dir` does at every
//! start, so that one `helm install` gives a server someone can sign in
//! to and an operator that can reach it, without a token copied by hand.
//!
//! Idempotent: an administrator who exists is left as they are (their
//! password may have been changed since), a token already stored is not
//! stored again. Nothing is ever removed.
//!
//! The files (each optional but `admin-email`):
//! - `admin-email`: the administrator's address;
//! - `admin-password`: their portal password, set when they are created;
//! - `admin-token`: an API token of theirs;
//! - `agent-token-<cluster>`: the agent token of cluster `<cluster>`
//!   (registered as `POST /api/v1/clusters` would).

use changegate_core::{Email, Slug, UserKind};
use changegate_store::{NewUser, Store, StoreError, TokenScope};
use chrono::{DateTime, Utc};
use std::path::Path;

use crate::auth::{TOKEN_PREFIX, hash_password, token_hash};

/// Who the bootstrap's writes are attributed to on the audit record.
const ACTOR: &str = "bootstrap";

/// A token as the server reads bearers: its prefix, then at least 32
/// characters of secret.
fn check_token(file: &str, token: &str) -> Result<(), String> {
    match token.strip_prefix(TOKEN_PREFIX) {
        Some(secret) if secret.len() >= 32 && secret.chars().all(|c| c.is_ascii_alphanumeric()) => {
            Ok(())
        }
        _ => Err(format!(
            "{file}: a token is {TOKEN_PREFIX} and at least 32 letters and digits"
        )),
    }
}

/// What the files ask for.
#[derive(Debug, PartialEq, Eq)]
pub struct Bootstrap {
    pub admin_email: Email,
    pub admin_password: Option<String>,
    pub admin_token: Option<String>,
    /// (cluster, agent token)
    pub clusters: Vec<(Slug, String)>,
}

/// What a start did; logged.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Done {
    pub admin_created: bool,
    pub admin_token_stored: bool,
    pub clusters_registered: Vec<String>,
}

impl Bootstrap {
    /// Reads `dir`; an error says which file is wrong and how.
    pub fn read(dir: &Path) -> Result<Bootstrap, String> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read the bootstrap directory {}: {e}", dir.display()))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // A mounted Secret keeps its versions in hidden entries.
            if !name.starts_with('.') {
                names.push(name);
            }
        }
        names.sort();
        let read = |name: &str| -> Result<String, String> {
            std::fs::read_to_string(dir.join(name))
                .map(|s| s.trim().to_string())
                .map_err(|e| format!("{}: {e}", dir.join(name).display()))
        };
        let optional = |name: &str| -> Result<Option<String>, String> {
            if names.iter().any(|n| n == name) {
                Ok(Some(read(name)?).filter(|v| !v.is_empty()))
            } else {
                Ok(None)
            }
        };
        let email = optional("admin-email")?.ok_or_else(|| {
            format!(
                "{} has no admin-email: the bootstrap names the first administrator",
                dir.display()
            )
        })?;
        let admin_email =
            Email::parse(&email).map_err(|e| format!("admin-email: {}", e.message))?;
        let mut clusters = Vec::new();
        for name in &names {
            if let Some(cluster) = name.strip_prefix("agent-token-") {
                let cluster = Slug::parse(cluster).map_err(|e| format!("{name}: {}", e.message))?;
                let token = read(name)?;
                check_token(name, &token)?;
                clusters.push((cluster, token));
            }
        }
        let admin_token = optional("admin-token")?;
        if let Some(token) = &admin_token {
            check_token("admin-token", token)?;
        }
        Ok(Bootstrap {
            admin_email,
            admin_password: optional("admin-password")?,
            admin_token,
            clusters,
        })
    }

    /// Makes the store hold what the files say.
    pub async fn apply(&self, store: &dyn Store, now: DateTime<Utc>) -> Result<Done, String> {
        let mut done = Done::default();
        let admin = match store.user_by_email(&self.admin_email).await {
            Ok(user) => {
                if !user.admin {
                    return Err(format!(
                        "{} exists and is not an installation administrator; name another admin-email",
                        self.admin_email
                    ));
                }
                user
            }
            Err(StoreError::NotFound { .. }) => {
                let password_hash = match &self.admin_password {
                    Some(p) => Some(
                        hash_password(p).map_err(|e| format!("admin-password: {}", e.message))?,
                    ),
                    None => None,
                };
                done.admin_created = true;
                store
                    .create_user(
                        NewUser {
                            email: self.admin_email.clone(),
                            name: "Administrator".into(),
                            kind: UserKind::Msp,
                            admin: true,
                            tenant: None,
                            password_hash,
                        },
                        &[],
                        ACTOR,
                        now,
                    )
                    .await
                    .map_err(|e| match e {
                        StoreError::Conflict { .. } => format!(
                            "{} exists but is disabled; enable it or name another admin-email",
                            self.admin_email
                        ),
                        other => other.to_string(),
                    })?
            }
            Err(e) => return Err(e.to_string()),
        };
        let store_token = |name: String, token: &str, scope: TokenScope| {
            let hash = token_hash(token);
            async move {
                match store.user_by_token(&hash).await {
                    Ok(_) => Ok(false),
                    Err(StoreError::NotFound { .. }) => store
                        .create_token(admin.id, &name, &hash, &scope, now)
                        .await
                        .map(|_| true)
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        if let Some(token) = &self.admin_token {
            done.admin_token_stored =
                store_token("bootstrap".into(), token, TokenScope::Full).await?;
        }
        for (cluster, token) in &self.clusters {
            let scope = TokenScope::Agent(cluster.to_string());
            if store_token(format!("agent of {cluster}"), token, scope).await? {
                done.clusters_registered.push(cluster.to_string());
            }
        }
        Ok(done)
    }
}
