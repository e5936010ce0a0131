//! Attaches to the local control plane at `.cluster/kubeconfig`, starting it
//! with `localcluster/up.sh` the first time a test needs it.

use kube::Client;
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
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

async fn client_with(auth: impl FnOnce(&mut AuthInfo)) -> Client {
    ensure_cluster();
    let kubeconfig = Kubeconfig::read_from(kubeconfig_path()).expect("read the local kubeconfig");
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("load the local kubeconfig");
    let mut info = AuthInfo {
        impersonate: config.auth_info.impersonate.take(),
        impersonate_groups: config.auth_info.impersonate_groups.take(),
        ..AuthInfo::default()
    };
    auth(&mut info);
    config.auth_info.impersonate = info.impersonate;
    config.auth_info.impersonate_groups = info.impersonate_groups;
    Client::try_from(config).expect("build a client")
}

/// The cluster admin (`system:masters`).
pub async fn admin() -> Client {
    client_with(|_| {}).await
}

/// A client impersonating `user` in `groups`, as `kubectl --as --as-group` does.
pub async fn client_as(user: &str, groups: &[&str]) -> Client {
    client_with(|info| {
        info.impersonate = Some(user.to_string());
        info.impersonate_groups = Some(groups.iter().map(ToString::to_string).collect());
    })
    .await
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
