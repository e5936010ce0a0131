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
        out.push_str(&serde_yaml_ng::to_string(&crd)?);
    }
    Ok(out)
}
