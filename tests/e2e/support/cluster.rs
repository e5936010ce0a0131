//! Attaches to the local control plane at `.cluster/kubeconfig`, starting it
//! with `localcluster/up.sh` the first time a test needs it.

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn kubeconfig_path() -> PathBuf {
    std::env::var_os("CHANGEGATE_KUBECONFIG")
        .map_or_else(|| repo_root().join(".cluster/kubeconfig"), PathBuf::from)
}

/// Starts the cluster once per test process; `up.sh` reuses a healthy one.
fn ensure_cluster() {
    static UP: OnceLock<()> = OnceLock::new();
    UP.get_or_init(|| {
        let ready = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig_path())
            .args(["get", "--raw", "/readyz"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ready {
            let status = Command::new(repo_root().join("localcluster/up.sh"))
                .status()
                .expect("run localcluster/up.sh");
            assert!(
                status.success(),
                "localcluster/up.sh failed; see .cluster/logs/"
            );
        }
    });
}

/// The cluster admin (`system:masters`).
pub async fn admin() -> Client {
    ensure_cluster();
    let kubeconfig = Kubeconfig::read_from(kubeconfig_path()).expect("read the local kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("load the local kubeconfig");
    Client::try_from(config).expect("build a client")
}

/// Runs kubectl against the local cluster; returns its output whatever the exit code.
pub fn kubectl(args: &[&str]) -> Output {
    ensure_cluster();
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .args(args)
        .output()
        .expect("run kubectl")
}

/// Installs the committed CRDs once per test process and waits until the
/// API server serves them.
pub fn ensure_crds() {
    static CRDS: OnceLock<()> = OnceLock::new();
    CRDS.get_or_init(|| {
        let crds = repo_root().join("crds/changegate.dev.yaml");
        let crds = crds.to_str().expect("utf-8 path");
        let out = kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=changegate-e2e",
            "-f",
            crds,
        ]);
        assert!(
            out.status.success(),
            "installing the CRDs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "-f",
            crds,
        ]);
        assert!(
            out.status.success(),
            "the CRDs never became Established: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// kubectl with `input` on its standard input.
pub fn kubectl_stdin(args: &[&str], input: &str) -> Output {
    use std::io::Write;
    ensure_cluster();
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("kubectl output")
}

/// kubectl impersonating `user` in `groups` (`--as`, `--as-group`).
pub fn kubectl_as(user: &str, groups: &[&str], args: &[&str], input: Option<&str>) -> Output {
    let mut full = vec![format!("--as={user}")];
    full.extend(groups.iter().map(|g| format!("--as-group={g}")));
    full.extend(args.iter().map(ToString::to_string));
    let full: Vec<&str> = full.iter().map(String::as_str).collect();
    match input {
        Some(input) => kubectl_stdin(&full, input),
        None => kubectl(&full),
    }
}

/// The operator must be running (`make up`, which `make test-e2e` runs first).
pub fn ensure_operator() {
    static OPERATOR: OnceLock<()> = OnceLock::new();
    OPERATOR.get_or_init(|| {
        ensure_crds();
        let port = std::env::var("CHANGEGATE_HEALTH_PORT").unwrap_or_else(|_| "9080".into());
        let ready = Command::new("curl")
            .args(["-fsS", &format!("http://127.0.0.1:{port}/readyz")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(ready, "the changegate operator is not running on this cluster: run `make up` (make test-e2e does)");
        let rbac = repo_root().join("tests/fixtures/rbac.yaml");
        let out = kubectl(&["apply", "-f", rbac.to_str().expect("utf-8 path")]);
        assert!(out.status.success(), "test RBAC: {}", String::from_utf8_lossy(&out.stderr));
    });
}
