//! Files generated from the Rust code, never edited by hand, must hold
//! exactly what the binary prints: the chart's webhook configuration.

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
fn the_charts_webhook_configurations_match_what_the_operator_registers() {
    assert!(
        generated("webhooks") == committed("charts/changegate/templates/webhooks.yaml"),
        "charts/changegate/templates/webhooks.yaml is out of date: run `make generate` and commit the result"
    );
}

#[test]
fn the_committed_crds_match_the_resource_types() {
    let dir = std::env::temp_dir().join(format!("changegate-crds-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_changegate"))
        .arg("crds")
        .arg(&dir)
        .output()
        .expect("run changegate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("the CRDs written")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "changerequests.yaml",
            "maintenancewindows.yaml",
            "releases.yaml"
        ]
    );
    for folder in ["crds", "charts/changegate/crds"] {
        for name in &names {
            let generated = std::fs::read_to_string(dir.join(name)).expect("generated");
            assert!(
                generated == committed(&format!("{folder}/{name}")),
                "{folder}/{name} is out of date: run `make generate` and commit the result"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
