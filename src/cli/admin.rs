//! `changegate admin`: bootstrap and recovery against the database
//! directly (no server needed): users, tokens, backups, migrations.

use changegate_core::{Email, Role, UserKind};
use changegate_store::{NewUser, StoreError, TokenScope};
use clap::{Args, Subcommand};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use super::database::{DatabaseArgs, Opened};

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create a user (the first one with --admin).
    CreateUser(CreateUserArgs),
    /// Print a new API token for a user (shown once; only its hash is stored).
    Token(TokenArgs),
    /// Set a user's portal password (a client user created by `apply` has none).
    SetPassword(SetPasswordArgs),
    /// Copy the embedded SQLite database to a file while the server runs.
    Backup(BackupArgs),
    /// Run the database migrations and exit.
    Migrate(MigrateArgs),
}

#[derive(Args)]
pub struct CreateUserArgs {
    #[arg(long)]
    email: String,
    #[arg(long)]
    name: String,
    /// Installation-wide administrator (MSP staff).
    #[arg(long)]
    admin: bool,
    /// Make a client user of this tenant (slug); without it the user is MSP staff.
    #[arg(long, value_name = "TENANT")]
    client_of: Option<String>,
    /// Grant a role in a tenant, as TENANT:ROLE (repeatable), e.g. client-a:requester.
    #[arg(long = "role", value_name = "TENANT:ROLE")]
    roles: Vec<String>,
    /// Read the password (for the portal) from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "password_stdin")]
    password_env: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    db: DatabaseArgs,
}

#[derive(Args)]
pub struct SetPasswordArgs {
    email: String,
    /// Read the password from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "password_stdin")]
    password_env: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    db: DatabaseArgs,
}

#[derive(Args)]
pub struct TokenArgs {
    email: String,
    /// What the token is for, e.g. ci-pipeline.
    #[arg(long, default_value = "cli")]
    name: String,
    #[command(flatten)]
    db: DatabaseArgs,
}

#[derive(Args)]
pub struct BackupArgs {
    /// The file to write (must not exist).
    file: PathBuf,
    #[command(flatten)]
    db: DatabaseArgs,
}

#[derive(Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    db: DatabaseArgs,
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("changegate: {message}");
    ExitCode::from(code)
}

async fn open(db: &DatabaseArgs) -> Result<Opened, ExitCode> {
    db.open().await.map_err(|e| fail(2, e))
}

pub async fn run(cmd: AdminCommand) -> ExitCode {
    match cmd {
        AdminCommand::CreateUser(a) => create_user(a).await,
        AdminCommand::Token(a) => token(a).await,
        AdminCommand::SetPassword(a) => set_password(a).await,
        AdminCommand::Backup(a) => backup(a).await,
        AdminCommand::Migrate(a) => match open(&a.db).await {
            Ok(_) => {
                println!("migrations are up to date ({})", a.db.describe());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
    }
}

/// The hash of the password given by `--password-env` or `--password-stdin`.
fn password_hash(env: &Option<String>, stdin: bool) -> Result<Option<String>, ExitCode> {
    let password = if let Some(var) = env {
        match std::env::var(var) {
            Ok(p) => Some(p),
            Err(_) => {
                return Err(fail(
                    1,
                    format!("--password-env: the environment variable {var} is not set"),
                ));
            }
        }
    } else if stdin {
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).is_err() {
            return Err(fail(1, "--password-stdin: cannot read standard input"));
        }
        Some(line.trim_end_matches(['\n', '\r']).to_string())
    } else {
        None
    };
    password
        .map(|p| changegate_web::auth::hash_password(&p))
        .transpose()
        .map_err(|e| fail(1, format!("password: {}", e.message)))
}

async fn set_password(a: SetPasswordArgs) -> ExitCode {
    let email = match Email::parse(&a.email) {
        Ok(e) => e,
        Err(e) => return fail(1, format!("email: {}", e.message)),
    };
    let hash = match password_hash(&a.password_env, a.password_stdin) {
        Ok(Some(h)) => h,
        Ok(None) => {
            return fail(
                1,
                "give the password with --password-env VAR or --password-stdin",
            );
        }
        Err(code) => return code,
    };
    let opened = match open(&a.db).await {
        Ok(o) => o,
        Err(code) => return code,
    };
    let store = opened.store();
    let user = match store.user_by_email(&email).await {
        Ok(u) => u,
        Err(StoreError::NotFound { .. }) => return fail(1, format!("no user {email}")),
        Err(e) => return fail(2, e),
    };
    match store.set_password(user.id, &hash).await {
        Ok(()) => {
            println!("password set for {email}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(2, e),
    }
}

async fn create_user(a: CreateUserArgs) -> ExitCode {
    let email = match Email::parse(&a.email) {
        Ok(e) => e,
        Err(e) => return fail(1, format!("--email: {}", e.message)),
    };
    let mut grants = Vec::new();
    for r in &a.roles {
        let Some((tenant, role)) = r.split_once(':') else {
            return fail(
                1,
                format!("--role {r:?}: write it as TENANT:ROLE, e.g. client-a:requester"),
            );
        };
        match role.parse::<Role>() {
            Ok(role) => grants.push((tenant.to_string(), role)),
            Err(e) => return fail(1, format!("--role {r:?}: {}", e.message)),
        }
    }
    if a.admin && a.client_of.is_some() {
        return fail(1, "--admin is for MSP staff; leave out --client-of");
    }
    let password_hash = match password_hash(&a.password_env, a.password_stdin) {
        Ok(h) => h,
        Err(code) => return code,
    };
    let opened = match open(&a.db).await {
        Ok(o) => o,
        Err(code) => return code,
    };
    let store = opened.store();
    let tenant_of = |slug: String| {
        let store = store.clone();
        async move {
            store.tenant_by_slug(&slug).await.map_err(|e| match e {
                StoreError::NotFound { .. } => {
                    format!("no tenant {slug:?}; create it first with `changegate apply -f`")
                }
                other => other.to_string(),
            })
        }
    };
    let home = match a.client_of.clone() {
        Some(slug) => match tenant_of(slug).await {
            Ok(t) => Some(t.id),
            Err(e) => return fail(1, e),
        },
        None => None,
    };
    let kind = if home.is_some() {
        UserKind::Client
    } else {
        UserKind::Msp
    };
    let mut roles = Vec::new();
    for (slug, role) in grants {
        let t = match tenant_of(slug).await {
            Ok(t) => t,
            Err(e) => return fail(1, e),
        };
        if home.is_some_and(|h| h != t.id) {
            return fail(
                1,
                format!(
                    "{email} is a client user of another tenant; it cannot hold roles in {}",
                    t.slug
                ),
            );
        }
        roles.push((t.id, role));
    }
    match store
        .create_user(
            NewUser {
                email: email.clone(),
                name: a.name,
                kind,
                admin: a.admin,
                tenant: home,
                password_hash,
            },
            &roles,
            "changegate-admin",
            chrono::Utc::now(),
        )
        .await
    {
        Ok(_) => {}
        Err(StoreError::Conflict { .. }) => {
            return fail(1, format!("a user {email} exists already"));
        }
        Err(e) => return fail(2, e),
    }
    println!(
        "created {} user {email}{}",
        kind.as_str(),
        if a.admin { " (administrator)" } else { "" }
    );
    ExitCode::SUCCESS
}

async fn token(a: TokenArgs) -> ExitCode {
    let email = match Email::parse(&a.email) {
        Ok(e) => e,
        Err(e) => return fail(1, e.message),
    };
    let opened = match open(&a.db).await {
        Ok(o) => o,
        Err(code) => return code,
    };
    let store = opened.store();
    let user = match store.user_by_email(&email).await {
        Ok(u) => u,
        Err(StoreError::NotFound { .. }) => {
            return fail(
                1,
                format!("no user {email}; create one with `changegate admin create-user`"),
            );
        }
        Err(e) => return fail(2, e),
    };
    let (token, hash) = changegate_web::auth::new_token();
    if let Err(e) = store
        .create_token(
            user.id,
            &a.name,
            &hash,
            &TokenScope::Full,
            chrono::Utc::now(),
        )
        .await
    {
        return fail(2, e);
    }
    println!("{token}");
    ExitCode::SUCCESS
}

async fn backup(a: BackupArgs) -> ExitCode {
    if a.file.exists() {
        return fail(
            1,
            format!("{} exists; choose a new file name", a.file.display()),
        );
    }
    match open(&a.db).await {
        Ok(Opened::Sqlite(store)) => match store.backup(&a.file).await {
            Ok(()) => {
                println!("backed up {} to {}", a.db.describe(), a.file.display());
                ExitCode::SUCCESS
            }
            Err(e) => fail(2, e),
        },
        Ok(Opened::Postgres(_)) => fail(
            1,
            "backups of PostgreSQL are taken with pg_dump, e.g. pg_dump --format=custom --file=changegate.dump \"$CHANGEGATE_DATABASE\"",
        ),
        Err(code) => code,
    }
}
