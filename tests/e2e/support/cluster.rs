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

/// `kubectl changegate <args>`: this build linked as the kubectl plugin
/// `kubectl-changegate` in a folder of its own, first on kubectl's `PATH`
/// (kubectl takes plugins from there); the kubeconfig passed after the
/// plugin's arguments, as a plugin gets it.
pub fn kubectl_plugin(args: &[&str]) -> Output {
    ensure_cluster();
    let dir = std::env::temp_dir().join(format!("changegate-plugin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("the plugin folder");
    let link = dir.join("kubectl-changegate");
    if !link.exists() {
        // kubectl finds a plugin by its file name; the binary tells it is
        // one by the name it was started as.
        let _ = std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_changegate"), &link);
    }
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("kubectl")
        .env("PATH", path)
        .arg("changegate")
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .output()
        .expect("run kubectl changegate")
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
