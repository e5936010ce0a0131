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
    let jobs = tokio::spawn(changegate_jobs::run(store.clone(), {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.changed().await;
        }
    }));
    let state = changegate_web::AppState::new(store).with_secure_cookies(!args.insecure_cookies);
    let app = changegate_web::router(state);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        })
        .await;
    let _ = jobs.await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("changegate: server error: {e}");
            ExitCode::FAILURE
        }
    }
}
