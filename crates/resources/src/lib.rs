//! changegate's custom resources (DESIGN §7, contract): `ChangeRequest`,
//! `Release` and `MaintenanceWindow` in group `changegate.dev`, version
//! `v1`. They are the Kubernetes view and input of the server's record,
//! never a second record: people write `spec`, the operator writes
//! `status` from what the server recorded (and only the kubectl entries of
//! status are people's).
//!
//! This crate holds the types (their CRDs are generated from them), and
//! the pure mappings: a spec to the change the server is asked to hold
//! ([`to_record`]), and the server's answer to the status and conditions
//! the operator writes ([`from_record`]). It does no I/O.

pub mod change_request;
pub mod condition;
pub mod from_record;
pub mod from_release;
pub mod maintenance_window;
pub mod outcome;
pub mod release;
pub mod to_record;
pub mod wire;

pub use change_request::{ChangeRequest, ChangeRequestSpec, ChangeRequestStatus};
pub use maintenance_window::{MaintenanceWindow, MaintenanceWindowSpec};
pub use release::{Release, ReleaseSpec};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of every changegate resource.
pub const GROUP: &str = "changegate.dev";

/// The annotation naming the server's change a resource stands for
/// (`CHG-n`), written around the create so the resource adopts its change
/// after a restart, a re-apply or a delete-and-recreate.
pub const CHANGE_ANNOTATION: &str = "changegate.dev/change";
/// The annotation naming the server's release a Release stands for (`REL-n`).
pub const RELEASE_ANNOTATION: &str = "changegate.dev/release";
/// Who created the resource, as the API server authenticated them
/// (stamped by the operator's mutating webhook; immutable).
pub const REQUESTED_BY_ANNOTATION: &str = "changegate.dev/requested-by";
/// Who last edited the resource's spec, as the API server authenticated them.
pub const EDITED_BY_ANNOTATION: &str = "changegate.dev/edited-by";
/// The namespace label naming the tenant a namespace belongs to.
pub const TENANT_LABEL: &str = "changegate.dev/tenant";
/// The label the operator puts on a mirror (DESIGN §7): a read-only
/// resource standing for something raised on the server, value [`ORIGIN_SERVER`].
pub const ORIGIN_LABEL: &str = "changegate.dev/origin";
pub const ORIGIN_SERVER: &str = "server";

/// The name of the mirror of change `CHG-n` (`chg-n`), reserved: nobody but
/// the operator creates a ChangeRequest so named.
pub fn mirror_name(number: &str) -> String {
    number.to_ascii_lowercase()
}

/// The change number a reserved mirror name stands for (`chg-12` → `CHG-12`).
pub fn mirrored_number(name: &str) -> Option<String> {
    let digits = name.strip_prefix("chg-")?;
    (!digits.is_empty()
        && digits.len() <= 18
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0'))
    .then(|| format!("CHG-{digits}"))
}

/// The name of the mirror of the tenant's window `name` (`mw-<name>`),
/// reserved like a change's.
pub fn window_mirror_name(name: &str) -> String {
    format!("mw-{name}")
}

/// The window a reserved MaintenanceWindow name stands for (`mw-weekly` →
/// `weekly`).
pub fn mirrored_window(name: &str) -> Option<&str> {
    name.strip_prefix("mw-").filter(|w| !w.is_empty())
}

/// The field manager the operator writes status under (server-side apply).
pub const FIELD_MANAGER: &str = "changegate-operator";

/// Every CRD, in the order they are written to `crds/`.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        ChangeRequest::crd(),
        Release::crd(),
        MaintenanceWindow::crd(),
    ]
}

/// The CRDs as one YAML stream, as committed in `crds/` and the chart.
pub fn crds_yaml() -> String {
    let mut out =
        String::from("# Generated from crates/resources (`make generate`); do not edit by hand.\n");
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&crd).expect("a CRD serializes"));
    }
    out
}

/// One CRD's YAML, for the file `crds/<plural>.yaml`.
pub fn crd_files() -> Vec<(String, String)> {
    crds()
        .into_iter()
        .map(|crd| {
            let name = format!("{}.yaml", crd.spec.names.plural);
            let yaml = format!(
                "# Generated from crates/resources (`make generate`); do not edit by hand.\n{}",
                serde_yaml_ng::to_string(&crd).expect("a CRD serializes")
            );
            (name, yaml)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_mirror_is_named_for_its_change_and_only_such_names_are_reserved() {
        assert_eq!(super::mirror_name("CHG-142"), "chg-142");
        assert_eq!(
            super::mirrored_number("chg-142").as_deref(),
            Some("CHG-142")
        );
        for free in ["chg-", "chg-0", "chg-01", "chg-1a", "web-chg-1", "CHG-1"] {
            assert_eq!(super::mirrored_number(free), None, "{free}");
        }
        assert_eq!(super::window_mirror_name("weekly"), "mw-weekly");
        assert_eq!(super::mirrored_window("mw-weekly"), Some("weekly"));
        assert_eq!(super::mirrored_window("mw-"), None);
        assert_eq!(super::mirrored_window("weekly"), None);
    }
}
