//! `changegate agent`: the Kubernetes enforcement agent: admission
//! webhooks with self-managed TLS, registration and rotation, deciding
//! governed workloads from the bundle it long-polls from the server.

use changegate_agent::bundle::sync::SyncSettings;
use changegate_agent::operator::{self, Settings};
use changegate_agent::webhook::certs::Lifetimes;
use changegate_agent::webhook::registration::Endpoint;
use clap::Args;
use std::net::SocketAddr;
use std::process::ExitCode;

#[derive(Args)]
pub struct AgentArgs {
    /// The agent's own namespace: holds the TLS Secret and is never gated.
    #[arg(long, env = "POD_NAMESPACE", default_value = "changegate-system")]
    namespace: String,
    #[arg(long, default_value = "0.0.0.0:9443")]
    webhook_addr: SocketAddr,
    #[arg(long, default_value = "0.0.0.0:8080")]
    health_addr: SocketAddr,
    /// Local development: register the webhooks with this base URL (e.g.
    /// https://127.0.0.1:9443) instead of the in-cluster Service.
    #[arg(long)]
    webhook_url: Option<String>,
    #[arg(long, default_value = "changegate-webhook")]
    service_name: String,
    #[arg(long, default_value_t = 443)]
    service_port: i32,
    #[arg(long, default_value = "changegate-webhook-tls")]
    tls_secret: String,
    /// Serving certificate lifetime, e.g. 2160h.
    #[arg(long, default_value = "2160h")]
    cert_validity: kube::core::Duration,
    /// Renew the serving certificate this long before it expires.
    #[arg(long, default_value = "720h")]
    cert_renew_before: kube::core::Duration,
    /// How often to check the certificate for renewal.
    #[arg(long, default_value = "1h")]
    cert_check_interval: kube::core::Duration,
    /// Do not create or update the webhook configurations (the chart owns them).
    #[arg(long)]
    no_register_webhooks: bool,
    /// Serve the certificate cert-manager issues into --tls-secret instead of
    /// managing one; implies --no-register-webhooks (cert-manager injects the CA bundle).
    #[arg(long)]
    cert_manager: bool,
    #[arg(long, default_value_t = 5)]
    webhook_timeout_seconds: i32,
    /// The changegate server the agent takes its bundle from, e.g.
    /// https://changegate.example.com. Without it every governed change is refused.
    #[arg(long, env = "CHANGEGATE_SERVER")]
    server: Option<String>,
    /// A file holding this cluster's agent token (POST /api/v1/clusters
    /// mints it); or set CHANGEGATE_AGENT_TOKEN.
    #[arg(long, env = "CHANGEGATE_AGENT_TOKEN_FILE")]
    token_file: Option<std::path::PathBuf>,
    /// Where the bundle is cached, so a restarted agent decides while the
    /// server is down.
    #[arg(long, env = "CHANGEGATE_CACHE_DIR")]
    cache_dir: Option<std::path::PathBuf>,
    /// Refuse governed changes once the bundle has not been confirmed by
    /// the server for this long (fail closed).
    #[arg(long, default_value = "10m")]
    max_staleness: kube::core::Duration,
    /// Admission, following and reports only: leave the custom resources
    /// (ChangeRequests, MaintenanceWindows) to another operator of this
    /// cluster.
    #[arg(long)]
    no_reconcile: bool,
    /// How long one long-poll for a newer bundle waits on the server.
    #[arg(long, default_value = "25s")]
    bundle_wait: kube::core::Duration,
}

impl AgentArgs {
    /// The bundle source, or why the flags do not make one.
    fn sync(&self) -> Result<Option<SyncSettings>, String> {
        let Some(server) = &self.server else {
            return Ok(None);
        };
        let token = match (&self.token_file, std::env::var("CHANGEGATE_AGENT_TOKEN")) {
            (Some(path), _) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the agent token from {}: {e}", path.display()))?
                .trim()
                .to_string(),
            (None, Ok(token)) => token.trim().to_string(),
            (None, Err(_)) => {
                return Err("--server needs the cluster's agent token: --token-file or CHANGEGATE_AGENT_TOKEN (POST /api/v1/clusters mints one)".into());
            }
        };
        if token.is_empty() {
            return Err("the agent token is empty".into());
        }
        Ok(Some(SyncSettings {
            server: server.clone(),
            token,
            cache_dir: self.cache_dir.clone(),
            wait: self.bundle_wait.into(),
        }))
    }

    fn into_settings(self, sync: Option<SyncSettings>) -> Settings {
        let (endpoint, sans) = match &self.webhook_url {
            Some(url) => {
                let host = url
                    .trim_start_matches("https://")
                    .split(['/', ':'])
                    .next()
                    .unwrap_or("127.0.0.1")
                    .to_string();
                (Endpoint::Url(url.clone()), vec![host])
            }
            None => {
                let svc = format!("{}.{}.svc", self.service_name, self.namespace);
                (
                    Endpoint::Service {
                        namespace: self.namespace.clone(),
                        name: self.service_name.clone(),
                        port: self.service_port,
                    },
                    vec![svc.clone(), format!("{svc}.cluster.local")],
                )
            }
        };
        Settings {
            namespace: self.namespace,
            webhook_addr: self.webhook_addr,
            health_addr: self.health_addr,
            endpoint,
            tls_secret: self.tls_secret,
            sans,
            lifetimes: Lifetimes {
                serving_validity: self.cert_validity.into(),
                renew_before: self.cert_renew_before.into(),
                ..Lifetimes::default()
            },
            cert_check_interval: self.cert_check_interval.into(),
            register_webhooks: !self.no_register_webhooks && !self.cert_manager,
            external_tls: self.cert_manager,
            webhook_timeout_seconds: self.webhook_timeout_seconds,
            sync,
            max_staleness: self.max_staleness.into(),
            reconcile: !self.no_reconcile,
        }
    }
}

pub fn run(args: AgentArgs) -> ExitCode {
    crate::cli::init_tracing("info,kube=warn");
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("changegate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sync = match args.sync() {
        Ok(sync) => sync,
        Err(e) => {
            eprintln!("changegate: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(operator::run(args.into_settings(sync))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "changegate agent stopped");
            eprintln!("changegate: {e}");
            ExitCode::FAILURE
        }
    }
}
