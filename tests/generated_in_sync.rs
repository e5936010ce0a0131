//! Files generated from the Rust types, never edited by hand, must hold
//! exactly what the binary prints: `crds/`, and the chart's CRDs and
//! webhook configurations.

use std::process::Command;

fn generated(subcommand: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_changegate"))
        .arg(subcommand)
        .output()
        .expect("run changegate");
    assert!(
        out.status.success(),
        "changegate {subcommand}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn committed(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).expect(path)
}

#[test]
fn committed_crds_match_the_generated_ones() {
    assert!(
        generated("crd") == committed("crds/changegate.dev.yaml"),
        "crds/changegate.dev.yaml is out of date with the Rust types: run `make crds` and commit the result"
    );
}

#[test]
fn the_charts_crds_match_the_generated_ones() {
    assert!(
        generated("crd") == committed("charts/changegate/crds/changegate.dev.yaml"),
        "charts/changegate/crds/ is out of date: run `make crds` and commit the result"
    );
}

#[test]
fn the_charts_webhook_configurations_match_what_the_operator_registers() {
    assert!(
        generated("webhooks") == committed("charts/changegate/templates/webhooks.yaml"),
        "charts/changegate/templates/webhooks.yaml is out of date: run `make crds` and commit the result"
    );
}

#[test]
fn every_resource_has_a_crd_with_status_and_short_name() {
    let crds = changegate_agent::api::crds();
    let names: Vec<_> = crds
        .iter()
        .map(|c| c.metadata.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        [
            "changepolicies.changegate.dev",
            "maintenancewindows.changegate.dev",
            "changerequests.changegate.dev",
            "releases.changegate.dev"
        ]
    );
    for crd in &crds {
        let version = &crd.spec.versions[0];
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
        assert!(
            crd.spec
                .names
                .short_names
                .as_ref()
                .is_some_and(|s| !s.is_empty())
        );
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["changegate".to_string()][..])
        );
    }
}
