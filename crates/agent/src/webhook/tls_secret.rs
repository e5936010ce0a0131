//! Keeps the webhook's CA and serving certificate in a Secret in the
//! operator's namespace, shared by replicas and reused across restarts, and
//! renews the serving certificate well before it expires. Concurrent
//! replicas settle through optimistic concurrency (create / replace with
//! resourceVersion): whoever loses re-reads.

use super::certs::{self, CertError, Lifetimes, Pair};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use std::collections::BTreeMap;
use time::OffsetDateTime;

const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const TLS_CERT: &str = "tls.crt";
const TLS_KEY: &str = "tls.key";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error("Kubernetes API error on Secret {namespace}/{name}: {source}")]
    Api {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error(
        "Secret {namespace}/{name} kept changing under us; giving up after {0} attempts",
        ATTEMPTS
    )]
    Contended { namespace: String, name: String },
    #[error(
        "Secret {namespace}/{name} has no readable tls.crt and tls.key yet; is cert-manager issuing it \
         (kubectl describe certificate -n {namespace})?"
    )]
    NotIssued { namespace: String, name: String },
}

const ATTEMPTS: usize = 5;

#[derive(Clone, Debug)]
pub struct TlsSettings {
    pub namespace: String,
    pub secret_name: String,
    pub sans: Vec<String>,
    pub lifetimes: Lifetimes,
    /// Someone else (cert-manager) issues the Secret: read it, never write it.
    pub external: bool,
}

/// The CA and the serving certificate currently stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    pub ca: Pair,
    pub serving: Pair,
}

/// The certificate to serve: the externally issued Secret as it is, or the
/// self-managed one after creating or renewing what is missing or due.
pub async fn load(client: &Client, settings: &TlsSettings) -> Result<Bundle, TlsError> {
    if settings.external {
        read_external(client, settings).await
    } else {
        ensure(client, settings).await
    }
}

/// Reads a Secret issued by cert-manager (`tls.crt`, `tls.key`, and
/// `ca.crt` when the issuer provides it; the CA bundle is then injected by
/// cert-manager's cainjector, not by changegate).
async fn read_external(client: &Client, settings: &TlsSettings) -> Result<Bundle, TlsError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &settings.namespace);
    let not_issued = || TlsError::NotIssued {
        namespace: settings.namespace.clone(),
        name: settings.secret_name.clone(),
    };
    let secret = api
        .get_opt(&settings.secret_name)
        .await
        .map_err(|source| TlsError::Api {
            namespace: settings.namespace.clone(),
            name: settings.secret_name.clone(),
            source,
        })?
        .ok_or_else(not_issued)?;
    let data = secret.data.unwrap_or_default();
    let (Some(cert_pem), Some(key_pem)) = (pem(&data, TLS_CERT), pem(&data, TLS_KEY)) else {
        return Err(not_issued());
    };
    let serving = Pair { cert_pem, key_pem };
    Ok(Bundle {
        ca: Pair {
            cert_pem: pem(&data, CA_CERT).unwrap_or_default(),
            key_pem: String::new(),
        },
        serving,
    })
}

/// Reads the Secret, creating or renewing what is missing or due, and
/// returns what is stored afterwards.
async fn ensure(client: &Client, settings: &TlsSettings) -> Result<Bundle, TlsError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &settings.namespace);
    let api_err = |source| TlsError::Api {
        namespace: settings.namespace.clone(),
        name: settings.secret_name.clone(),
        source,
    };
    for _ in 0..ATTEMPTS {
        let now = OffsetDateTime::now_utc();
        let existing = api.get_opt(&settings.secret_name).await.map_err(api_err)?;
        let stored = existing.as_ref().and_then(read_bundle);
        let result = match (existing, stored) {
            (Some(_), Some(bundle))
                if !certs::needs_renewal(
                    &bundle.serving,
                    &settings.sans,
                    now,
                    &settings.lifetimes,
                ) =>
            {
                return Ok(bundle);
            }
            (Some(secret), Some(bundle)) => {
                tracing::info!(secret = %settings.secret_name, "renewing the webhook serving certificate");
                let serving =
                    certs::issue_serving(&bundle.ca, &settings.sans, now, &settings.lifetimes)?;
                let updated = with_bundle(
                    secret,
                    &Bundle {
                        ca: bundle.ca,
                        serving,
                    },
                );
                api.replace(&settings.secret_name, &PostParams::default(), &updated)
                    .await
            }
            (existing, _) => {
                tracing::info!(secret = %settings.secret_name, "creating the webhook CA and serving certificate");
                let ca = certs::generate_ca(now, &settings.lifetimes)?;
                let serving = certs::issue_serving(&ca, &settings.sans, now, &settings.lifetimes)?;
                let bundle = Bundle { ca, serving };
                match existing {
                    // Unreadable contents are replaced, guarded by resourceVersion.
                    Some(secret) => {
                        api.replace(
                            &settings.secret_name,
                            &PostParams::default(),
                            &with_bundle(secret, &bundle),
                        )
                        .await
                    }
                    None => {
                        api.create(&PostParams::default(), &new_secret(settings, &bundle))
                            .await
                    }
                }
            }
        };
        match result {
            Ok(secret) => {
                if let Some(bundle) = read_bundle(&secret) {
                    return Ok(bundle);
                }
            }
            // Another replica wrote first: read again.
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(api_err(e)),
        }
    }
    Err(TlsError::Contended {
        namespace: settings.namespace.clone(),
        name: settings.secret_name.clone(),
    })
}

/// A non-empty UTF-8 value of the Secret's `key`.
fn pem(data: &BTreeMap<String, ByteString>, key: &str) -> Option<String> {
    data.get(key)
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .filter(|s| !s.is_empty())
}

fn read_bundle(secret: &Secret) -> Option<Bundle> {
    let data = secret.data.as_ref()?;
    let text = |k: &str| pem(data, k);
    Some(Bundle {
        ca: Pair {
            cert_pem: text(CA_CERT)?,
            key_pem: text(CA_KEY)?,
        },
        serving: Pair {
            cert_pem: text(TLS_CERT)?,
            key_pem: text(TLS_KEY)?,
        },
    })
}

fn bundle_data(bundle: &Bundle) -> BTreeMap<String, ByteString> {
    [
        (CA_CERT, &bundle.ca.cert_pem),
        (CA_KEY, &bundle.ca.key_pem),
        (TLS_CERT, &bundle.serving.cert_pem),
        (TLS_KEY, &bundle.serving.key_pem),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
    .collect()
}

fn with_bundle(mut secret: Secret, bundle: &Bundle) -> Secret {
    secret.data = Some(bundle_data(bundle));
    secret.string_data = None;
    secret
}

fn new_secret(settings: &TlsSettings, bundle: &Bundle) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(settings.secret_name.clone()),
            namespace: Some(settings.namespace.clone()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/name".into(),
                "changegate".into(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(bundle_data(bundle)),
        ..Secret::default()
    }
}
