//! The changegate API (`changegate.dev/v1alpha1`): the four custom resources
//! and the CRDs generated from them. Types only; no behaviour, no I/O.

pub mod change_policy;
pub mod change_request;
pub mod common;
pub mod maintenance_window;
pub mod release;

pub use change_policy::*;
pub use change_request::*;
pub use common::*;
pub use maintenance_window::*;
pub use release::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Label that makes a namespace part of a tenant (contract).
pub const TENANT_LABEL: &str = "changegate.dev/tenant";
/// Workload annotation binding it to a ChangeRequest (contract).
pub const CHANGE_ANNOTATION: &str = "changegate.dev/change";
/// Workload annotation binding it to a Release (contract).
pub const RELEASE_ANNOTATION: &str = "changegate.dev/release";

/// Every CRD changegate serves, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        ChangePolicy::crd(),
        MaintenanceWindow::crd(),
        ChangeRequest::crd(),
        Release::crd(),
    ]
}

/// The CRDs as one multi-document YAML stream, exactly what `crds/` holds.
pub fn crds_yaml() -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&quote_yaml11_booleans(&serde_yaml_ng::to_string(&crd)?));
    }
    Ok(out)
}

/// Quotes plain scalars that YAML 1.1 reads as booleans (`Off`, `on`,
/// `yes`, `N`...). The emitter follows YAML 1.2, where they are strings,
/// but kubectl and the API server read YAML 1.1: an unquoted `Off` in the
/// enforcement enum would arrive as `false`.
fn quote_yaml11_booleans(yaml: &str) -> String {
    const YAML11_BOOLEANS: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
        "OFF",
    ];
    let mut out = String::with_capacity(yaml.len());
    for line in yaml.lines() {
        let (head, value) = match line.rfind(": ") {
            Some(i) if !line.trim_start().starts_with("- ") => (&line[..i + 2], &line[i + 2..]),
            _ => match line.find("- ") {
                Some(i) if line[..i].trim().is_empty() => (&line[..i + 2], &line[i + 2..]),
                _ => (line, ""),
            },
        };
        if YAML11_BOOLEANS.contains(&value) {
            out.push_str(head);
            out.push('\'');
            out.push_str(value);
            out.push('\'');
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod cel_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml11_booleans_are_quoted_so_kubectl_reads_them_as_strings() {
        let yaml = crds_yaml().expect("render");
        assert!(
            yaml.contains("- 'Off'"),
            "the enforcement enum must quote Off"
        );
        assert!(!yaml.lines().any(|l| l.trim() == "- Off"));
        assert_eq!(
            quote_yaml11_booleans("a: Off\n  - on\nb: true\nc: Offline\n"),
            "a: 'Off'\n  - 'on'\nb: true\nc: Offline\n"
        );
    }
}
