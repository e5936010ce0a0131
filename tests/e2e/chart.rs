//! The Helm chart lints, renders in both TLS modes, and what it renders is
//! accepted by the real API server (server-side dry run).

use crate::support::kubectl_stdin;
use std::path::PathBuf;
use std::process::Command;

pub fn helm() -> PathBuf {
    let cache = std::env::var_os("CHANGEGATE_CACHE").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/changegate"),
        PathBuf::from,
    );
    cache.join("bin/helm")
}

fn chart() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/charts/changegate").to_string()
}

fn run_helm(args: &[&str]) -> String {
    let out = Command::new(helm())
        .args(args)
        .output()
        .expect("run helm (localcluster/build.sh builds it)");
    assert!(
        out.status.success(),
        "helm {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn render(extra: &[&str], only: &[&str]) -> String {
    let chart = chart();
    let mut args = vec![
        "template",
        "changegate",
        chart.as_str(),
        "--namespace",
        "changegate-system",
        "--set",
        "server.url=https://changegate.example.com",
    ];
    args.extend_from_slice(extra);
    for file in only {
        args.extend(["--show-only", file]);
    }
    run_helm(&args)
}

fn server_accepts(manifests: &str) {
    let out = kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], manifests);
    assert!(
        out.status.success(),
        "the API server refused the rendered chart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_chart_lints_in_both_tls_modes() {
    let chart = chart();
    let server = "server.url=https://changegate.example.com";
    run_helm(&["lint", &chart, "--set", server]);
    run_helm(&[
        "lint",
        &chart,
        "--set",
        server,
        "--set",
        "certManager.enabled=true",
    ]);
}

#[test]
fn the_self_managed_install_is_accepted_by_the_api_server_with_secure_defaults() {
    let manifests = render(
        &[],
        &[
            "templates/serviceaccount.yaml",
            "templates/rbac.yaml",
            "templates/deployment.yaml",
        ],
    );
    for expected in [
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "- ALL",
        "replicas: 2",
        "kind: PodDisruptionBudget",
        "allowPrivilegeEscalation: false",
        "- agent",
        "- --server=https://changegate.example.com",
        "- --cache-dir=/var/cache/changegate",
        "secretName: changegate-agent-token",
    ] {
        assert!(
            manifests.contains(expected),
            "rendered chart lacks {expected:?}"
        );
    }
    assert!(!manifests.contains("--cert-manager"));
    server_accepts(&manifests);
}

#[test]
fn the_cert_manager_install_renders_the_operators_webhook_configurations() {
    let webhooks = render(
        &["--set", "certManager.enabled=true"],
        &["templates/webhooks.yaml"],
    );
    // YAML may quote the rendered values; compare without quotes.
    let unquoted = webhooks.replace('\'', "");
    assert!(
        unquoted.contains("cert-manager.io/inject-ca-from: changegate-system/changegate-webhook"),
        "{webhooks}"
    );
    assert!(
        unquoted.contains("namespace: changegate-system")
            && unquoted.contains("path: /validate/workloads"),
        "{webhooks}"
    );
    server_accepts(&webhooks.replace("name: changegate\n", "name: changegate-chart-dry-run\n"));
    let deployment = render(
        &["--set", "certManager.enabled=true"],
        &["templates/deployment.yaml"],
    );
    assert!(deployment.contains("- --cert-manager"));
    let certificate = render(
        &["--set", "certManager.enabled=true"],
        &["templates/cert-manager.yaml"],
    );
    assert!(
        certificate.contains("secretName: changegate-webhook-tls")
            && certificate.contains("changegate-webhook.changegate-system.svc")
    );
}
