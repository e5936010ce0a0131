//! `crds/` must hold exactly what `changegate crd` prints: the CRDs are
//! generated from the Rust types, never edited by hand.

use std::process::Command;

#[test]
fn committed_crds_match_the_generated_ones() {
    let out = Command::new(env!("CARGO_BIN_EXE_changegate"))
        .arg("crd")
        .output()
        .expect("run changegate crd");
    assert!(
        out.status.success(),
        "changegate crd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).expect("utf-8 output");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/changegate.dev.yaml");
    let committed = std::fs::read_to_string(path).expect("read crds/changegate.dev.yaml");
    assert!(
        generated == committed,
        "crds/changegate.dev.yaml is out of date with the Rust types: run `make crds` and commit the result"
    );
}

#[test]
fn every_resource_has_a_crd_with_status_and_short_name() {
    let crds = changegate::api::crds();
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
