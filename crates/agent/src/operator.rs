//! Wiring of the `changegate run` process: Kubernetes client, reflector
//! stores, the self-managed certificate, the HTTPS admission server, the
//! health server, webhook registration and certificate rotation.

use crate::bundle::BundleState;
use crate::bundle::sync::{self, SyncSettings};
use crate::follow;
use crate::lease::{self, Leadership};
use crate::reconcile;
use crate::report::Reporter;
use crate::webhook::certs::Lifetimes;
use crate::webhook::registration::{self, Endpoint, Registration};
use crate::webhook::server::{self, App};
use crate::webhook::tls_secret::{self, TlsSettings};
use crate::webhook::{metrics::Metrics, stores};
use axum_server::tls_rustls::RustlsConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The Lease the replicas of one cluster's agent elect a leader on.
const LEASE: &str = "changegate-agent";

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("cannot reach the Kubernetes API: {0}")]
    Client(#[source] kube::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls_secret::TlsError),
    #[error("cannot load the serving certificate: {0}")]
    Certificate(#[source] std::io::Error),
    #[error("the reflector stores stopped before they synced")]
    Stores,
    #[error("cannot register the webhook configurations: {0}")]
    Register(#[source] kube::Error),
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
}

/// Settings of one operator process (flags of `changegate run`).
#[derive(Clone, Debug)]
pub struct Settings {
    pub namespace: String,
    pub webhook_addr: SocketAddr,
    pub health_addr: SocketAddr,
    pub endpoint: Endpoint,
    pub tls_secret: String,
    pub sans: Vec<String>,
    pub lifetimes: Lifetimes,
    pub cert_check_interval: Duration,
    pub register_webhooks: bool,
    pub webhook_timeout_seconds: i32,
    /// The serving certificate is issued by cert-manager into `tls_secret`;
    /// the chart owns the webhook configurations and cert-manager injects
    /// their CA bundle.
    pub external_tls: bool,
    /// Where and how the agent gets its bundle; `None` runs without a
    /// server (every governed change is refused, saying so).
    pub sync: Option<SyncSettings>,
    /// Past this age the held bundle no longer admits changes.
    pub max_staleness: Duration,
    /// Reconcile the custom resources with the server (`--no-reconcile`
    /// leaves them to another operator of the cluster).
    pub reconcile: bool,
}

pub async fn run(settings: Settings) -> Result<(), OperatorError> {
    // rustls needs one process-wide crypto provider; kube uses ring too.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default()
        .await
        .map_err(OperatorError::Client)?;

    let (stores, reflectors) = stores::start(&client);
    tokio::spawn(reflectors);
    let bundle = Arc::new(BundleState::default());
    // This process as a candidate for the leader Lease.
    let me = format!(
        "{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "agent".into()),
        std::process::id()
    );
    let metrics = Arc::new(Metrics::default());
    let mut reconciler = None;
    let mut approvals = None;
    let follower = match &settings.sync {
        Some(sync_settings) => {
            sync::restore(sync_settings, &bundle);
            tokio::spawn(sync::run(sync_settings.clone(), bundle.clone()));
            let reporter = Reporter::start(&sync_settings.server, &sync_settings.token);
            let leadership = Arc::new(Leadership::default());
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .map_err(|e| OperatorError::Serve(std::io::Error::other(e)))?;
            approvals = Some(crate::webhook::approval::Approvals {
                client: client.clone(),
                http: http.clone(),
                server: sync_settings.server.clone(),
                token: sync_settings.token.clone(),
            });
            reconciler = settings.reconcile.then(|| {
                Arc::new(reconcile::Context {
                    client: client.clone(),
                    http,
                    server: sync_settings.server.clone(),
                    token: sync_settings.token.clone(),
                    stores: stores.clone(),
                    bundle: bundle.clone(),
                    leadership: leadership.clone(),
                    metrics: metrics.clone(),
                    recorder: kube::runtime::events::Recorder::new(
                        client.clone(),
                        kube::runtime::events::Reporter {
                            controller: "changegate-operator".into(),
                            instance: Some(me.clone()),
                        },
                    ),
                })
            });
            tokio::spawn(lease::run(
                client.clone(),
                settings.namespace.clone(),
                LEASE.into(),
                me.clone(),
                leadership.clone(),
            ));
            // Started once the namespace store has synced (below).
            Some(follow::run(
                client.clone(),
                stores.clone(),
                bundle.clone(),
                reporter,
                settings.namespace.clone(),
                leadership,
            ))
        }
        None => {
            tracing::warn!(
                "no --server: the agent has no bundle and refuses every governed change"
            );
            None
        }
    };
    let app = Arc::new(App {
        stores: stores.clone(),
        operator_namespace: settings.namespace.clone(),
        metrics: metrics.clone(),
        caches_synced: AtomicBool::new(false),
        certificate_loaded: AtomicBool::new(false),
        bundle,
        max_staleness: chrono::Duration::from_std(settings.max_staleness)
            .unwrap_or(chrono::Duration::MAX),
        agent_user: std::sync::OnceLock::new(),
        approvals,
    });
    match whoami(&client).await {
        Ok(user) => {
            tracing::info!(%user, "the agent's identity, for its own rollbacks");
            let _ = app.agent_user.set(user);
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell the agent's identity (SelfSubjectReview); its rollbacks would be judged like any change")
        }
    }

    let health = tokio::net::TcpListener::bind(settings.health_addr)
        .await
        .map_err(|source| OperatorError::Listen {
            addr: settings.health_addr,
            source,
        })?;
    let health_app = server::health_router(app.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(health, health_app).await {
            tracing::error!(error = %e, "health server stopped");
        }
    });

    let tls = TlsSettings {
        namespace: settings.namespace.clone(),
        secret_name: settings.tls_secret.clone(),
        sans: settings.sans.clone(),
        lifetimes: settings.lifetimes,
        external: settings.external_tls,
    };
    let mut tls_bundle = tls_secret::load(&client, &tls).await?;
    let rustls = RustlsConfig::from_config(
        tls_config(&tls_bundle.serving).map_err(OperatorError::Certificate)?,
    );
    app.certificate_loaded.store(true, Ordering::Relaxed);

    // Listen before registering, so the API server never calls a webhook
    // that is not there yet.
    let listener = std::net::TcpListener::bind(settings.webhook_addr).map_err(|source| {
        OperatorError::Listen {
            addr: settings.webhook_addr,
            source,
        }
    })?;
    let handle = axum_server::Handle::new();
    let https = axum_server::from_tcp_rustls(listener, rustls.clone())
        .map_err(|source| OperatorError::Listen {
            addr: settings.webhook_addr,
            source,
        })?
        .handle(handle.clone())
        .serve(server::admission_router(app.clone()).into_make_service());
    let mut https = tokio::spawn(https);
    tracing::info!(addr = %settings.webhook_addr, "admission webhook listening");

    // The one wait on the store: kube's readiness (a oneshot receiver
    // shared by its clones) wakes only the last task that polled it.
    stores
        .wait_until_ready()
        .await
        .map_err(|_| OperatorError::Stores)?;
    app.caches_synced.store(true, Ordering::Relaxed);
    tracing::info!("caches synced");
    if let Some(follower) = follower {
        tokio::spawn(follower);
    }
    if let Some(ctx) = reconciler {
        tokio::spawn(reconcile::run(ctx));
    }

    let register = |ca_pem: String| {
        let client = client.clone();
        let settings = settings.clone();
        let operator_user =
            app.agent_user.get().cloned().unwrap_or_else(|| {
                format!("system:serviceaccount:{}:changegate", settings.namespace)
            });
        async move {
            let registration = Registration {
                endpoint: &settings.endpoint,
                ca_pem: &ca_pem,
                operator_namespace: &settings.namespace,
                timeout_seconds: settings.webhook_timeout_seconds,
                operator_user: &operator_user,
            };
            registration::register(&client, &registration)
                .await
                .map_err(OperatorError::Register)
        }
    };
    // In cert-manager mode the chart owns the configurations (the CLI turns
    // registration off), so a CA change there is not ours to inject.
    if settings.register_webhooks {
        register(tls_bundle.ca.cert_pem.clone()).await?;
        tracing::info!("webhook configurations registered");
    }

    let mut rotation = tokio::time::interval(settings.cert_check_interval);
    rotation.tick().await;
    loop {
        tokio::select! {
            _ = rotation.tick() => match tls_secret::load(&client, &tls).await {
                Ok(current) if current != tls_bundle => {
                    match tls_config(&current.serving) {
                        Ok(config) => rustls.reload_from_config(config),
                        Err(e) => {
                            tracing::error!(error = %e, "cannot load the renewed certificate; still serving the previous one");
                            continue;
                        }
                    }
                    tracing::info!("serving the renewed certificate");
                    if settings.register_webhooks
                        && current.ca != tls_bundle.ca
                        && let Err(e) = register(current.ca.cert_pem.clone()).await
                    {
                        tracing::error!(error = %e, "cannot inject the new CA bundle");
                    }
                    tls_bundle = current;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "certificate check failed; retrying at the next interval"),
            },
            result = &mut https => {
                return match result {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(OperatorError::Serve(e)),
                    Err(e) => Err(OperatorError::Serve(std::io::Error::other(e))),
                };
            }
            () = shutdown_signal() => {
                tracing::info!("shutting down");
                if settings.sync.is_some() {
                    lease::release(client.clone(), &settings.namespace, LEASE, &me).await;
                }
                handle.graceful_shutdown(Some(Duration::from_secs(10)));
                return Ok(());
            }
        }
    }
}

/// The user the API server authenticates this process as.
async fn whoami(client: &kube::Client) -> Result<String, kube::Error> {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let reviews: kube::Api<SelfSubjectReview> = kube::Api::all(client.clone());
    let review = reviews
        .create(
            &kube::api::PostParams::default(),
            &SelfSubjectReview::default(),
        )
        .await?;
    Ok(review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .unwrap_or_default())
}

/// The TLS server configuration for a serving certificate; ALPN offers
/// HTTP/2 (what the API server prefers) and HTTP/1.1.
fn tls_config(
    serving: &crate::webhook::certs::Pair,
) -> Result<Arc<rustls::ServerConfig>, std::io::Error> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let certs = CertificateDer::pem_slice_iter(serving.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(std::io::Error::other)?;
    let key =
        PrivateKeyDer::from_pem_slice(serving.key_pem.as_bytes()).map_err(std::io::Error::other)?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(std::io::Error::other)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or_default(),
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or_default();
}
