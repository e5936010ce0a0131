//! `changegate serve`: migrations, then the API and the scheduler until
//! SIGINT or SIGTERM.

use clap::Args;
use std::net::SocketAddr;
use std::process::ExitCode;

use super::database::DatabaseArgs;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CHANGEGATE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Send session cookies without `Secure`, for a portal reached over plain
    /// HTTP on a host other than localhost (development only).
    #[arg(long)]
    insecure_cookies: bool,
    /// Where people reach this server, for links in e-mails (default: http://LISTEN).
    #[arg(long, env = "CHANGEGATE_PUBLIC_URL")]
    public_url: Option<String>,
    /// The SMTP relay for approval requests: smtp://host:port, smtp://user:pass@host:587?tls=required
    /// or smtps://host:465. Without it, e-mails wait in the outbox.
    #[arg(long, env = "CHANGEGATE_SMTP", hide_env_values = true)]
    smtp: Option<String>,
    /// Instead of sending e-mails, write each into this directory as a .eml
    /// file (development, the demo).
    #[arg(long, env = "CHANGEGATE_MAIL_DIR", conflicts_with = "smtp")]
    mail_dir: Option<std::path::PathBuf>,
    /// The sender of e-mails.
    #[arg(
        long,
        env = "CHANGEGATE_MAIL_FROM",
        default_value = "changegate <changegate@localhost>"
    )]
    mail_from: String,
    /// Append each tenant's audit head, signed, to this file whenever it
    /// moved (at most once a minute): an anchor outside the database that
    /// `changegate report verify --checkpoints` checks a chain against. Its
    /// Ed25519 key is made next to it (FILE.key, owner-only) and the public
    /// key written to FILE.pub. Keep the log where the database's
    /// administrators cannot rewrite it.
    #[arg(long, env = "CHANGEGATE_CHECKPOINT_LOG")]
    checkpoint_log: Option<std::path::PathBuf>,
    /// At every start, make sure of the first administrator and the clusters
    /// this directory's files name (the Helm chart mounts its generated
    /// Secret here): `admin-email`, `admin-password`, `admin-token`,
    /// `agent-token-<cluster>`. Existing users and tokens are left as they are.
    #[arg(long, env = "CHANGEGATE_BOOTSTRAP_DIR")]
    bootstrap_dir: Option<std::path::PathBuf>,
    #[command(flatten)]
    db: DatabaseArgs,
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

pub async fn run(args: ServeArgs) -> ExitCode {
    super::init_tracing("info,sqlx=warn,tower_http=warn");
    let opened = match args.db.open().await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("changegate: {e}");
            return ExitCode::from(2);
        }
    };
    let store = opened.store();
    // The server's one clock: the bootstrap, handlers, their writes and
    // the scheduler.
    let clock: changegate_store::Clock = std::sync::Arc::new(chrono::Utc::now);
    if let Some(dir) = &args.bootstrap_dir {
        let bootstrap = changegate_web::app::bootstrap::Bootstrap::read(dir);
        let done = match bootstrap {
            Ok(b) => b.apply(store.as_ref(), clock()).await,
            Err(e) => Err(e),
        };
        match done {
            Ok(done) => tracing::info!(
                admin_created = done.admin_created,
                admin_token_stored = done.admin_token_stored,
                clusters_registered = ?done.clusters_registered,
                dir = %dir.display(),
                "bootstrap applied"
            ),
            Err(e) => {
                eprintln!("changegate: --bootstrap-dir: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let mailer = match (&args.smtp, &args.mail_dir) {
        (Some(url), _) => Some(changegate_jobs::mail::Mailer::new(url, &args.mail_from)),
        (None, Some(dir)) => Some(changegate_jobs::mail::Mailer::to_dir(dir, &args.mail_from)),
        (None, None) => None,
    };
    let mailer = match mailer.transpose() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("changegate: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "changegate: cannot listen on {}: {e}; pick another address with --listen",
                args.listen
            );
            return ExitCode::from(2);
        }
    };
    let addr = listener.local_addr().unwrap_or(args.listen);
    tracing::info!(%addr, database = %args.db.describe(), "changegate serving");
    println!(
        "changegate serving on http://{addr} ({})",
        args.db.describe()
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if mailer.is_none() {
        tracing::info!("no --smtp relay or --mail-dir: approval e-mails wait in the outbox");
    }
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let checkpoints = match &args.checkpoint_log {
        Some(file) => match changegate_jobs::checkpoint::Checkpoints::open(file) {
            Ok(c) => {
                tracing::info!(log = %file.display(), public_key = %c.public_key(), "audit heads are checkpointed");
                Some(c)
            }
            Err(e) => {
                eprintln!(
                    "changegate: {e}\n  --checkpoint-log names a file this user can append to, in a folder it can write (its key is made there)"
                );
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let jobs = tokio::spawn(changegate_jobs::run(
        store.clone(),
        clock.clone(),
        mailer,
        checkpoints,
        public_url.clone(),
        {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.changed().await;
            }
        },
    ));
    let state = changegate_web::AppState::new(store, clock)
        .with_secure_cookies(!args.insecure_cookies)
        .with_public_url(&public_url);
    let starter = tokio::spawn(changegate_web::starter::run(state.clone(), {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.changed().await;
        }
    }));
    let app = changegate_web::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        })
        .await;
    let _ = jobs.await;
    let _ = starter.await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("changegate: server error: {e}");
            ExitCode::FAILURE
        }
    }
}
