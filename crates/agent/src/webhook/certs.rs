//! The webhook's own PKI, as pure functions: a long-lived CA, serving
//! certificates it signs, and the renewal decision. Persistence and
//! rotation live in `tls_secret`.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use std::time::Duration;
use time::OffsetDateTime;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot parse the stored certificate: {0}")]
    Parse(String),
}

/// A PEM certificate and its private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

/// How long certificates live and when they are renewed.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    pub ca_validity: Duration,
    pub serving_validity: Duration,
    /// Renew a serving certificate this long before it expires.
    pub renew_before: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            ca_validity: Duration::from_secs(10 * 365 * 86_400),
            serving_validity: Duration::from_secs(90 * 86_400),
            renew_before: Duration::from_secs(30 * 86_400),
        }
    }
}

/// A new self-signed CA.
pub fn generate_ca(now: OffsetDateTime, lifetimes: &Lifetimes) -> Result<Pair, CertError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.distinguished_name = name("changegate webhook CA");
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + lifetimes.ca_validity;
    let cert = params.self_signed(&key)?;
    Ok(Pair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A serving certificate for `sans` (DNS names or IP addresses), signed by `ca`.
pub fn issue_serving(
    ca: &Pair,
    sans: &[String],
    now: OffsetDateTime,
    lifetimes: &Lifetimes,
) -> Result<Pair, CertError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(sans.to_vec())?;
    params.distinguished_name = name(sans.first().map_or("changegate-webhook", String::as_str));
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + lifetimes.serving_validity;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Pair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// When a PEM certificate expires.
fn not_after(cert_pem: &str) -> Result<OffsetDateTime, CertError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| CertError::Parse(e.to_string()))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| CertError::Parse(e.to_string()))?;
    Ok(cert.validity().not_after.to_datetime())
}

/// The DNS and IP subject alternative names of a PEM certificate.
fn subject_alt_names(cert_pem: &str) -> Result<Vec<String>, CertError> {
    use x509_parser::extensions::GeneralName;
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| CertError::Parse(e.to_string()))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| CertError::Parse(e.to_string()))?;
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Ok(Vec::new());
    };
    Ok(san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some((*d).to_string()),
            GeneralName::IPAddress(ip) => match ip.len() {
                4 => Some(std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string()),
                16 => <[u8; 16]>::try_from(*ip)
                    .ok()
                    .map(|b| std::net::Ipv6Addr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect())
}

/// A serving certificate must be replaced when it cannot be read, expires
/// within `renew_before`, or does not name every wanted SAN.
pub fn needs_renewal(
    serving: &Pair,
    sans: &[String],
    now: OffsetDateTime,
    lifetimes: &Lifetimes,
) -> bool {
    let Ok(expiry) = not_after(&serving.cert_pem) else {
        return true;
    };
    let Ok(names) = subject_alt_names(&serving.cert_pem) else {
        return true;
    };
    expiry - lifetimes.renew_before <= now || !sans.iter().all(|s| names.contains(s))
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sans() -> Vec<String> {
        vec![
            "changegate-webhook.changegate-system.svc".into(),
            "127.0.0.1".into(),
        ]
    }

    #[test]
    fn a_serving_certificate_names_its_sans_and_expires_on_time() {
        let now = OffsetDateTime::now_utc();
        let lifetimes = Lifetimes::default();
        let ca = generate_ca(now, &lifetimes).expect("ca");
        let serving = issue_serving(&ca, &sans(), now, &lifetimes).expect("serving");
        assert_eq!(subject_alt_names(&serving.cert_pem).expect("sans"), sans());
        let expiry = not_after(&serving.cert_pem).expect("expiry");
        assert!((expiry - (now + lifetimes.serving_validity)).abs() < time::Duration::seconds(2));
        assert!(!needs_renewal(&serving, &sans(), now, &lifetimes));
    }

    #[test]
    fn renewal_is_due_before_expiry_or_when_a_san_is_missing() {
        let now = OffsetDateTime::now_utc();
        let lifetimes = Lifetimes::default();
        let ca = generate_ca(now, &lifetimes).expect("ca");
        let serving = issue_serving(&ca, &sans(), now, &lifetimes).expect("serving");
        assert!(needs_renewal(
            &serving,
            &sans(),
            now + time::Duration::days(61),
            &lifetimes
        ));
        assert!(needs_renewal(
            &serving,
            &["other.example".to_string()],
            now,
            &lifetimes
        ));
        let garbage = Pair {
            cert_pem: "not a cert".into(),
            key_pem: String::new(),
        };
        assert!(needs_renewal(&garbage, &sans(), now, &lifetimes));
    }
}
