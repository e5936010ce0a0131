//! `changegate agent`: the Kubernetes enforcement agent (admission
//! webhooks with self-managed TLS, registration, rotation), as the
//! operator ran it before the server became the record.

use changegate_agent::operator::{self, Settings};
use changegate_agent::webhook::certs::Lifetimes;
use changegate_agent::webhook::registration::Endpoint;
use clap::Args;
use std::net::SocketAddr;
use std::process::ExitCode;

#[derive(Args)]
pub struct AgentArgs {
    /// The operator's own namespace: holds the TLS Secret and is never gated.
    #[arg(long, env = "POD_NAMESPACE", default_value = "changegate-system")]
    namespace: String,
    /// Releases here may reference changes in other namespaces (default: --namespace).
    #[arg(long)]
    operations_namespace: Option<String>,
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
    /// The user the controller writes status as; only it may append history.
    #[arg(
        long,
        default_value = "system:serviceaccount:changegate-system:changegate"
    )]
    controller_user: String,
    /// Do not create or update the webhook configurations (the chart owns them).
    #[arg(long)]
    no_register_webhooks: bool,
    /// Serve the certificate cert-manager issues into --tls-secret instead of
    /// managing one; implies --no-register-webhooks (cert-manager injects the CA bundle).
    #[arg(long)]
    cert_manager: bool,
    #[arg(long, default_value_t = 5)]
    webhook_timeout_seconds: i32,
}

impl AgentArgs {
    fn into_settings(self) -> Settings {
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
            operations_namespace: self
                .operations_namespace
                .unwrap_or_else(|| self.namespace.clone()),
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
            controller_user: self.controller_user,
            register_webhooks: !self.no_register_webhooks && !self.cert_manager,
            external_tls: self.cert_manager,
            webhook_timeout_seconds: self.webhook_timeout_seconds,
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
    match runtime.block_on(operator::run(args.into_settings())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "changegate agent stopped");
            eprintln!("changegate: {e}");
            ExitCode::FAILURE
        }
    }
}
