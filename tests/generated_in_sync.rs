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
