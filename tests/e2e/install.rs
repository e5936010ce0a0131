//! `helm install changegate charts/changegate` with its defaults, on the
//! local control plane with the real helm: the server beside the
//! operator, this cluster registered through the generated Secret, an
//! administrator who can work at once; a ChangeRequest approved through
//! kubectl and its Deployment admitted; an upgrade that keeps the
//! credentials; an uninstall that leaves the CRDs, the resources and the
//! data, as Helm does.
//!
//! The control plane's nodes are kwok's: pods are scheduled and reported
//! running, but no container runs. So the test runs each Deployment's
//! container as a local process exactly as the chart wrote it (its
//! arguments, its environment with Secrets resolved, its Secret volumes'
//! files, its volumes as directories) with the pod network replaced by
//! loopback: the Service `changegate-server.<ns>.svc` is the server's
//! loopback port, the operator's webhook is registered at its loopback
//! port (the API server cannot reach a kwok pod), and the operator talks
//! to the API server as the chart's ServiceAccount.

use crate::resources::StoppedServer;
use crate::support::cluster::repo_root;
use crate::support::{Scratch, kubectl, kubectl_stdin, wait_until};
use crate::tls::free_ports;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/changegate");
const RELEASE: &str = "changegate";

fn helm(args: &[&str]) -> std::process::Output {
    Command::new(crate::chart::helm())
        .args(args)
        .env("KUBECONFIG", crate::support::cluster::kubeconfig_path())
        .output()
        .expect("run helm (localcluster/build.sh builds it)")
}

fn succeeded(what: &str, out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json_of(args: &[&str]) -> Value {
    serde_json::from_str(&succeeded(&format!("kubectl {args:?}"), &kubectl(args))).expect("JSON")
}

/// The Secret's keys, decoded.
fn secret(ns: &str, name: &str) -> BTreeMap<String, String> {
    use base64::Engine as _;
    let s = json_of(&["get", "secret", name, "-n", ns, "-o", "json"]);
    s["data"]
        .as_object()
        .expect("data")
        .iter()
        .map(|(k, v)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().expect("base64"))
                .expect("base64");
            (k.clone(), String::from_utf8(bytes).expect("utf-8"))
        })
        .collect()
}

/// One Deployment's container, run as a local process.
struct Pod {
    child: Child,
    log: PathBuf,
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pod {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// What a test replaces of the pod's world: the pod network by loopback.
struct Loopback<'a> {
    /// (what the chart wrote, what it becomes), in arguments and environment.
    rewrite: Vec<(String, String)>,
    extra_args: Vec<String>,
    kubeconfig: Option<&'a Path>,
}

/// Runs the first container of Deployment `name` as the chart wrote it.
/// Its volumes are directories under `root/<name>/<volume>` (kept across
/// restarts: a PersistentVolumeClaim's data survives the process).
fn run_pod(ns: &str, name: &str, root: &Path, loopback: &Loopback) -> Pod {
    let d = json_of(&["get", "deployment", name, "-n", ns, "-o", "json"]);
    let spec = &d["spec"]["template"]["spec"];
    let container = &spec["containers"][0];
    let dirs = root.join(name);
    // Volumes: a Secret's files (its items, or every key), else a directory.
    let mut mounts: Vec<(String, PathBuf)> = Vec::new();
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let volume_name = mount["name"].as_str().expect("a volume name");
        let volume = spec["volumes"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["name"] == volume_name))
            .unwrap_or_else(|| panic!("{name}: no volume {volume_name}"));
        let dir = dirs.join(volume_name);
        std::fs::create_dir_all(&dir).expect("a volume directory");
        if let Some(source) = volume["secret"].as_object() {
            let data = secret(ns, source["secretName"].as_str().expect("secretName"));
            let items: Vec<(String, String)> = match source.get("items").and_then(Value::as_array) {
                Some(items) => items
                    .iter()
                    .map(|i| {
                        (
                            i["key"].as_str().expect("key").to_string(),
                            i["path"].as_str().expect("path").to_string(),
                        )
                    })
                    .collect(),
                None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
            };
            for (key, path) in items {
                let value = data
                    .get(&key)
                    .unwrap_or_else(|| panic!("{name}: Secret has no key {key}"));
                std::fs::write(dir.join(path), value).expect("a Secret file");
            }
        }
        mounts.push((
            mount["mountPath"].as_str().expect("mountPath").to_string(),
            dir,
        ));
    }
    // Longest mount path first, so /a/b maps before /a.
    mounts.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    let local = |value: &str| -> String {
        let mut v = value.replace("$(POD_NAMESPACE)", ns);
        for (from, to) in &loopback.rewrite {
            v = v.replace(from, to);
        }
        for (path, dir) in &mounts {
            if let Some(rest) = v.strip_prefix(path.as_str()) {
                return format!("{}{rest}", dir.display());
            }
            if let Some((flag, rest)) = v.split_once('=')
                && let Some(rest) = rest.strip_prefix(path.as_str())
            {
                return format!("{flag}={}{rest}", dir.display());
            }
        }
        v
    };
    let args: Vec<String> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| local(a.as_str().expect("an argument")))
        .chain(loopback.extra_args.iter().cloned())
        .collect();
    let mut env: Vec<(String, String)> = Vec::new();
    for var in container["env"].as_array().into_iter().flatten() {
        let key = var["name"].as_str().expect("a name").to_string();
        let value = if let Some(v) = var["value"].as_str() {
            v.to_string()
        } else if let Some(r) = var["valueFrom"]["secretKeyRef"].as_object() {
            secret(ns, r["name"].as_str().expect("name"))[r["key"].as_str().expect("key")].clone()
        } else if var["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace" {
            ns.to_string()
        } else {
            panic!("{name}: env {key} comes from where this test cannot say: {var}")
        };
        env.push((key, local(&value)));
    }
    let log = dirs.join("container.log");
    let out = std::fs::File::create(&log).expect("a log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_changegate"));
    command
        .args(&args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        .stdin(Stdio::null());
    if let Some(kubeconfig) = loopback.kubeconfig {
        command.env("KUBECONFIG", kubeconfig);
    }
    let child = command.spawn().unwrap_or_else(|e| panic!("{name}: {e}"));
    Pod { child, log }
}

async fn answers(what: &str, pod: &mut Pod, url: &str) {
    let url = url.to_string();
    wait_until(what, Duration::from_secs(60), || {
        if let Ok(Some(status)) = pod.child.try_wait() {
            panic!("{what}: the process exited ({status}):\n{}", pod.log());
        }
        let ok = Command::new("curl")
            .args(["-fsS", &url])
            .output()
            .is_ok_and(|o| o.status.success());
        let log = pod.log();
        async move {
            if ok {
                Ok(())
            } else {
                Err(log.lines().last().unwrap_or("").to_string())
            }
        }
    })
    .await;
}

/// What the test changed in the shared cluster, put back when it ends
/// (also when it fails): the release and its namespaces gone, the roles
/// `make up` applied as they were.
struct Cleanup {
    ns: String,
    apps: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = helm(&["uninstall", RELEASE, "-n", &self.ns, "--wait=false"]);
        for ns in [&self.ns, &self.apps] {
            kubectl(&[
                "delete",
                "namespace",
                ns,
                "--ignore-not-found",
                "--wait=false",
            ]);
        }
        let roles = helm(&[
            "template",
            RELEASE,
            CHART,
            "--namespace",
            "changegate-system",
            "--set",
            "server.url=http://127.0.0.1:9180",
            "--set",
            "changegate-server.enabled=false",
            "--show-only",
            "templates/roles.yaml",
        ]);
        kubectl_stdin(
            &["apply", "-f", "-"],
            &String::from_utf8_lossy(&roles.stdout),
        );
        kubectl(&[
            "delete",
            "clusterrole,clusterrolebinding",
            "changegate-operator",
            "--ignore-not-found",
            "--wait=false",
        ]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serial_the_default_chart_install_registers_approves_by_kubectl_and_admits() {
    let suffix = std::process::id() & 0xffff;
    let ns = format!("e2e-install-{suffix:x}");
    let apps = format!("e2e-install-shop-{suffix:x}");
    // The operator of this install registers the webhooks under the names
    // `make up`'s uses: that one stops meanwhile.
    // Dropped after the cleanup, also on a failure: `make up`'s operator
    // runs again (and registers its webhooks again).
    let stopped = StoppedServer::stop_process("operator");
    let cleanup = Cleanup {
        ns: ns.clone(),
        apps: apps.clone(),
    };

    // One command, nothing set. `--take-ownership`: `make up` applied the
    // chart's approver roles to this cluster already.
    let installed = succeeded(
        "helm install",
        &helm(&[
            "install",
            RELEASE,
            CHART,
            "-n",
            &ns,
            "--create-namespace",
            "--take-ownership",
        ]),
    );
    assert!(
        installed.contains("changegate-server-bootstrap")
            && installed.contains("port-forward svc/changegate-server 8080:80")
            && installed.contains("kubectl changegate approve"),
        "NOTES say how to reach the portal and approve with kubectl:\n{installed}"
    );
    let credentials = secret(&ns, "changegate-server-bootstrap");
    let admin_token = credentials["admin-token"].clone();
    let agent_token = credentials["agent-token-local"].clone();
    assert_eq!(credentials["admin-email"], "admin@changegate.local");

    // The pods, on loopback.
    let scratch = Scratch::new(&ns);
    let server_port = free_ports().0;
    let server_url = format!("http://127.0.0.1:{server_port}");
    let mut server = run_pod(
        &ns,
        "changegate-server",
        scratch.path(),
        &Loopback {
            rewrite: vec![("0.0.0.0:8080".into(), format!("127.0.0.1:{server_port}"))],
            extra_args: Vec::new(),
            kubeconfig: None,
        },
    );
    answers("the server", &mut server, &format!("{server_url}/readyz")).await;

    let admin_kubeconfig =
        std::fs::read_to_string(crate::support::cluster::kubeconfig_path()).expect("kubeconfig");
    let as_service_account = admin_kubeconfig.replacen(
        "  user:\n",
        &format!("  user:\n    as: system:serviceaccount:{ns}:changegate\n"),
        1,
    );
    let kubeconfig = scratch.write_private("operator.kubeconfig", &as_service_account);
    let (webhook, health) = free_ports();
    let mut operator = run_pod(
        &ns,
        "changegate",
        scratch.path(),
        &Loopback {
            rewrite: vec![
                (
                    format!("http://changegate-server.{ns}.svc"),
                    server_url.clone(),
                ),
                ("0.0.0.0:9443".into(), format!("127.0.0.1:{webhook}")),
                ("0.0.0.0:8080".into(), format!("127.0.0.1:{health}")),
            ],
            extra_args: vec![format!("--webhook-url=https://127.0.0.1:{webhook}")],
            kubeconfig: Some(&kubeconfig),
        },
    );
    // Ready: it holds a bundle, which the server gave it for the token
    // the chart generated: no token was copied by hand.
    answers(
        "the operator",
        &mut operator,
        &format!("http://127.0.0.1:{health}/readyz"),
    )
    .await;

    // The administrator works at once: a client, bound to this cluster.
    let cli = |token: &str, args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_changegate"))
            .args(args)
            .env("CHANGEGATE_SERVER", &server_url)
            .env("CHANGEGATE_TOKEN", token)
            .env(
                "CHANGEGATE_DATA_DIR",
                scratch.path().join("changegate-server/data"),
            )
            .env_remove("CHANGEGATE_DATABASE")
            .output()
            .expect("run changegate");
        succeeded(&format!("changegate {args:?}"), &out)
    };
    // The example client under a name of this test's own: namespaces of
    // the cluster labelled `client-a` by others are not its concern.
    let tenant = format!("install-{suffix:x}");
    let client = std::fs::read_to_string(repo_root().join("examples/changegate/client-a.yaml"))
        .expect("the example")
        .replace("namespace: shop", &format!("namespace: {apps}"))
        .replace("client-a", &tenant);
    let client_file = scratch.write_private("client-a.yaml", &client);
    cli(
        &admin_token,
        &["apply", "-f", client_file.to_str().expect("utf-8")],
    );
    succeeded("namespace", &kubectl(&["create", "namespace", &apps]));
    succeeded(
        "label",
        &kubectl(&[
            "label",
            "namespace",
            &apps,
            &format!("changegate.dev/tenant={tenant}"),
        ]),
    );
    succeeded(
        "apply",
        &kubectl(&[
            "apply",
            "-n",
            &apps,
            "-f",
            &repo_root()
                .join("examples/normal-change.yaml")
                .to_string_lossy(),
        ]),
    );
    let number = wait_until("the change raised", Duration::from_secs(30), || {
        let n = kubectl(&[
            "get",
            "chg",
            "web-2-4-1",
            "-n",
            &apps,
            "-o",
            "jsonpath={.status.number}",
        ]);
        let n = String::from_utf8_lossy(&n.stdout).into_owned();
        async move { if n.starts_with("CHG-") { Ok(n) } else { Err(n) } }
    })
    .await;
    let image = "registry.example/shop/web:2.4.1";
    // Refused, saying what it waits for, once the operator's bundle holds
    // the change (the server's record is shown if it never does).
    let awaits = format!("{number} awaits");
    wait_until(
        "the workload refused while its change awaits approval",
        Duration::from_secs(30),
        || {
            let refused = kubectl(&[
                "create",
                "deployment",
                "web",
                "-n",
                &apps,
                &format!("--image={image}"),
                "--dry-run=server",
            ]);
            let said = String::from_utf8_lossy(&refused.stderr).into_owned();
            let ok = !refused.status.success() && said.contains(&awaits);
            async move { if ok { Ok(()) } else { Err(said) } }
        },
    )
    .await;

    // Tom in the CLI, Carol with kubectl.
    let tom = cli(&admin_token, &["admin", "token", "tom@msp.example"]);
    cli(
        tom.trim(),
        &["change", "approve", &number, "--tenant", &tenant],
    );
    succeeded(
        "rolebinding",
        &kubectl(&[
            "create",
            "rolebinding",
            "carol-approves",
            "-n",
            &apps,
            "--clusterrole=changegate-approver",
            "--user=carol",
        ]),
    );
    succeeded(
        "Carol's approval",
        &kubectl(&[
            "patch",
            "chg",
            "web-2-4-1",
            "-n",
            &apps,
            "--subresource=status",
            "--type=merge",
            "--as=carol",
            "-p",
            r#"{"status":{"approvals":{"carol":{"decision":"Approved","comment":"ok"}}}}"#,
        ]),
    );
    succeeded(
        "Ready",
        &kubectl(&[
            "wait",
            "-n",
            &apps,
            "--for=condition=Ready",
            "chg/web-2-4-1",
            "--timeout=30s",
        ]),
    );
    let decisions = json_of(&["get", "chg", "web-2-4-1", "-n", &apps, "-o", "json"]);
    assert!(
        decisions["status"]["decisions"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["channel"] == "kubernetes")),
        "Carol's decision recorded through the kubernetes channel: {}",
        decisions["status"]
    );
    wait_until("the workload admitted", Duration::from_secs(30), || {
        let out = kubectl(&[
            "create",
            "deployment",
            "web",
            "-n",
            &apps,
            &format!("--image={image}"),
        ]);
        async move {
            if out.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        }
    })
    .await;

    // An upgrade keeps the credentials; the server started again on
    // them (as its new pod would) registers nothing twice and lets both in.
    succeeded(
        "helm upgrade",
        &helm(&["upgrade", RELEASE, CHART, "-n", &ns]),
    );
    assert_eq!(
        secret(&ns, "changegate-server-bootstrap"),
        credentials,
        "an upgrade generated new credentials"
    );
    drop(server);
    let mut server = run_pod(
        &ns,
        "changegate-server",
        scratch.path(),
        &Loopback {
            rewrite: vec![("0.0.0.0:8080".into(), format!("127.0.0.1:{server_port}"))],
            extra_args: Vec::new(),
            kubeconfig: None,
        },
    );
    answers(
        "the server again",
        &mut server,
        &format!("{server_url}/readyz"),
    )
    .await;
    for (token, path) in [
        (&agent_token, "/api/v1/agent/bundle"),
        (&admin_token, &format!("/api/v1/tenants/{tenant}/changes")),
    ] {
        let out = Command::new("curl")
            .args(["-fsS", "-o", "/dev/null", &format!("{server_url}{path}")])
            .args(["-H", &format!("authorization: Bearer {token}")])
            .output()
            .expect("curl");
        succeeded(&format!("GET {path} after the upgrade"), &out);
    }
    let tokens = Command::new("curl")
        .args(["-fsS", &format!("{server_url}/api/v1/tokens")])
        .args(["-H", &format!("authorization: Bearer {admin_token}")])
        .output()
        .expect("curl");
    let tokens: Value =
        serde_json::from_str(&succeeded("GET /api/v1/tokens", &tokens)).expect("JSON");
    let named = |name: &str| {
        tokens
            .as_array()
            .expect("a list")
            .iter()
            .filter(|t| t["name"] == name)
            .count()
    };
    assert_eq!(
        (named("agent of local"), named("bootstrap")),
        (1, 1),
        "each generated token stored once: {tokens}"
    );
    drop(operator);
    drop(server);

    // Uninstalled: the workloads of the release go; the CRDs, the
    // ChangeRequest, the database's claim and its credentials stay.
    succeeded("helm uninstall", &helm(&["uninstall", RELEASE, "-n", &ns]));
    let gone = kubectl(&["get", "deployment", "changegate-server", "-n", &ns]);
    assert!(!gone.status.success(), "the server's Deployment is gone");
    for (kind, name, namespace) in [
        ("crd", "changerequests.changegate.dev", None),
        ("crd", "releases.changegate.dev", None),
        ("crd", "maintenancewindows.changegate.dev", None),
        ("chg", "web-2-4-1", Some(apps.as_str())),
        ("pvc", "changegate-server-data", Some(ns.as_str())),
        ("secret", "changegate-server-bootstrap", Some(ns.as_str())),
    ] {
        let mut args = vec!["get", kind, name];
        if let Some(namespace) = namespace {
            args.extend(["-n", namespace]);
        }
        succeeded(&format!("{kind}/{name} kept"), &kubectl(&args));
    }
    drop(cleanup);
    stopped.start().await;
}
