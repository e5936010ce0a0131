//! The webhook's self-managed certificate: created once into a Secret,
//! reused across restarts, renewed before expiry and served without a
//! restart. Runs a second operator process on free loopback ports that
//! does not register webhooks, with lifetimes of seconds.

use crate::support::server::Server;
use crate::support::{Scratch, TestNamespace, kubectl, wait_until};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

/// A second operator process; its output goes to a private log that a
/// failed start reports.
pub(crate) struct Operator {
    pub(crate) child: Child,
    log: PathBuf,
    _server: Option<Server>,
    _scratch: Scratch,
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two distinct free loopback ports (webhook, health): both listeners are
/// held until both ports are known.
pub(crate) fn free_ports() -> (u16, u16) {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let (a, b) = (bind(), bind());
    let port = |l: &std::net::TcpListener| l.local_addr().expect("local address").port();
    (port(&a), port(&b))
}

fn start(ns: &str, webhook: u16, health: u16) -> Operator {
    start_with(
        ns,
        webhook,
        health,
        &["--cert-validity", "40s", "--cert-renew-before", "30s"],
    )
}

fn start_with(ns: &str, webhook: u16, health: u16, extra: &[&str]) -> Operator {
    start_as(
        ns,
        webhook,
        health,
        extra,
        concat!(env!("CARGO_MANIFEST_DIR"), "/.cluster/kubeconfig"),
        "webhook-tls",
    )
}

/// An agent in namespace `ns` that does not register its webhook; it
/// polls a private server of its own unless `extra` names a `--server`.
pub(crate) fn start_as(
    ns: &str,
    webhook: u16,
    health: u16,
    extra: &[&str],
    kubeconfig: &str,
    secret: &str,
) -> Operator {
    let scratch = Scratch::new(&format!("operator-{ns}-{webhook}"));
    let log = scratch.path().join("operator.log");
    let output = std::fs::File::create(&log).expect("operator log");
    let mut own_server = None;
    let child = Command::new(env!("CARGO_BIN_EXE_changegate"))
        .args([
            "operator",
            "--namespace",
            ns,
            "--no-register-webhooks",
            "--tls-secret",
            secret,
        ])
        .args([
            "--webhook-addr",
            &format!("127.0.0.1:{webhook}"),
            "--health-addr",
            &format!("127.0.0.1:{health}"),
        ])
        .args(["--webhook-url", &format!("https://127.0.0.1:{webhook}")])
        .args(["--cert-check-interval", "1s"])
        // The custom resources are `make up`'s operator's: a second one
        // reconciling them against another server would fight over status.
        .arg("--no-reconcile")
        .args(if extra.contains(&"--server") {
            Vec::new()
        } else {
            // A server of its own, with nothing bound to its cluster: a
            // bundle to be ready with, and nothing to follow or report.
            let server = Server::private();
            let token = scratch.write_private("agent-token", &server.register_cluster("tls"));
            let args = vec![
                "--server".to_string(),
                server.url.clone(),
                "--token-file".to_string(),
                token.to_string_lossy().into_owned(),
            ];
            own_server = Some(server);
            args
        })
        .args(extra)
        .env("KUBECONFIG", kubeconfig)
        // Its identity on the Lease, distinct from every other test agent's.
        .env("HOSTNAME", format!("agent-{webhook}"))
        .stdout(output.try_clone().expect("operator log"))
        .stderr(output)
        .spawn()
        .expect("start a second operator");
    Operator {
        child,
        log,
        _server: own_server,
        _scratch: scratch,
    }
}

fn shell(script: &str) -> String {
    let out = Command::new("bash")
        .args(["-c", script])
        .output()
        .expect("bash");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The serial number of the certificate the server presents.
fn served_serial(port: u16) -> String {
    shell(&format!(
        "openssl s_client -connect 127.0.0.1:{port} </dev/null 2>/dev/null | openssl x509 -noout -serial 2>/dev/null"
    ))
}

fn stored_serial(ns: &str) -> String {
    stored_serial_in(ns, "webhook-tls")
}

fn stored_serial_in(ns: &str, secret: &str) -> String {
    let out = kubectl(&[
        "get",
        "secret",
        secret,
        "-n",
        ns,
        "-o",
        "jsonpath={.data.tls\\.crt}",
    ]);
    let b64 = String::from_utf8_lossy(&out.stdout).to_string();
    shell(&format!(
        "echo '{b64}' | base64 -d | openssl x509 -noout -serial 2>/dev/null"
    ))
}

fn stored_ca(ns: &str) -> String {
    String::from_utf8_lossy(
        &kubectl(&[
            "get",
            "secret",
            "webhook-tls",
            "-n",
            ns,
            "-o",
            "jsonpath={.data.ca\\.crt}",
        ])
        .stdout,
    )
    .to_string()
}

/// Waits for the operator's readiness; fails at once, with its log, if it
/// exits (a port taken meanwhile, a bad flag).
pub(crate) async fn ready(operator: &mut Operator, health: u16) {
    wait_until(
        "the second operator to be ready",
        Duration::from_secs(60),
        || {
            if let Ok(Some(status)) = operator.child.try_wait() {
                let log = std::fs::read_to_string(&operator.log).unwrap_or_default();
                panic!("the second operator exited ({status}):\n{log}");
            }
            let out = shell(&format!("curl -fsS http://127.0.0.1:{health}/readyz"));
            async move { if out == "ready" { Ok(()) } else { Err(out) } }
        },
    )
    .await;
}

#[tokio::test]
async fn the_certificate_is_kept_reused_and_renewed_without_a_restart() {
    let ns = TestNamespace::new("tls").await;
    let (webhook, health) = free_ports();
    let mut operator = start(&ns.name, webhook, health);
    ready(&mut operator, health).await;
    let first = served_serial(webhook);
    assert!(
        first.starts_with("serial="),
        "no certificate served: {first:?}"
    );
    assert_eq!(
        first,
        stored_serial(&ns.name),
        "the served certificate is the stored one"
    );
    let ca = stored_ca(&ns.name);

    // A restart before renewal is due reuses the stored certificate.
    drop(operator);
    operator = start(&ns.name, webhook, health);
    ready(&mut operator, health).await;
    assert_eq!(served_serial(webhook), first, "a restart reuses the Secret");
    let pid = operator.child.id();

    // 40s certificates renewed 30s before expiry: a new one within ~10s,
    // served by the same process, signed by the same CA.
    let renewed = wait_until(
        "a renewed certificate to be served",
        Duration::from_secs(60),
        || async {
            let served = served_serial(webhook);
            if served.starts_with("serial=") && served != first && served == stored_serial(&ns.name)
            {
                Ok(served)
            } else {
                Err(served)
            }
        },
    )
    .await;
    assert_ne!(renewed, first);
    assert_eq!(operator.child.id(), pid);
    assert!(
        operator.child.try_wait().expect("status").is_none(),
        "the operator kept running"
    );
    assert_eq!(
        stored_ca(&ns.name),
        ca,
        "renewal keeps the CA, so the caBundle stays valid"
    );
}

/// A certificate as cert-manager would issue it, stored in the Secret.
fn issue_with_openssl(ns: &str, dir: &std::path::Path, name: &str) {
    let d = dir.display();
    shell(&format!(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
         -addext subjectAltName=IP:127.0.0.1 -keyout {d}/{name}.key -out {d}/{name}.crt 2>/dev/null"
    ));
    let out = kubectl(&[
        "create",
        "secret",
        "tls",
        "webhook-tls",
        "-n",
        ns,
        "--dry-run=client",
        "-o",
        "yaml",
        &format!("--cert={d}/{name}.crt"),
        &format!("--key={d}/{name}.key"),
    ]);
    let applied =
        crate::support::kubectl_stdin(&["apply", "-f", "-"], &String::from_utf8_lossy(&out.stdout));
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
}

#[tokio::test]
async fn in_cert_manager_mode_the_issued_secret_is_served_and_followed() {
    let ns = TestNamespace::new("tls-cm").await;
    let scratch = Scratch::new(&ns.name);
    let dir = scratch.path();
    let (webhook, health) = free_ports();
    issue_with_openssl(&ns.name, dir, "first");
    let mut operator = start_with(&ns.name, webhook, health, &["--cert-manager"]);
    ready(&mut operator, health).await;
    let first = served_serial(webhook);
    assert_eq!(
        first,
        stored_serial(&ns.name),
        "serves what cert-manager issued"
    );
    let ca = stored_ca(&ns.name);
    assert!(
        ca.is_empty(),
        "never writes its own CA into the Secret: {ca:?}"
    );

    issue_with_openssl(&ns.name, dir, "second");
    let reissued = stored_serial(&ns.name);
    assert_ne!(reissued, first);
    wait_until(
        "the reissued certificate to be served",
        Duration::from_secs(30),
        || async {
            let served = served_serial(webhook);
            if served == reissued {
                Ok(())
            } else {
                Err(served)
            }
        },
    )
    .await;
    drop(operator);
}

/// Deletes the chart's cluster-scoped RBAC when the test ends.
struct ClusterRbac;

impl Drop for ClusterRbac {
    fn drop(&mut self) {
        kubectl(&[
            "delete",
            "clusterrole,clusterrolebinding",
            "changegate-operator",
            "--ignore-not-found",
            "--wait=false",
        ]);
    }
}

#[tokio::test]
async fn the_charts_rbac_is_enough_for_the_operator() {
    let ns = TestNamespace::new("chart-rbac").await;
    let helm = crate::chart::helm();
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/changegate");
    let rendered = Command::new(&helm)
        .args(["template", "changegate", chart, "--namespace", &ns.name])
        .args(["--set", "server.url=https://changegate.example.com"])
        .args(["--set", "changegate-server.enabled=false"])
        .args([
            "--show-only",
            "templates/serviceaccount.yaml",
            "--show-only",
            "templates/rbac.yaml",
        ])
        .output()
        .expect("helm template");
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let _rbac = ClusterRbac;
    let applied = crate::support::kubectl_stdin(
        &["apply", "-f", "-"],
        &String::from_utf8_lossy(&rendered.stdout),
    );
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );

    // The admin kubeconfig, impersonating the chart's service account.
    let admin =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.cluster/kubeconfig"))
            .expect("kubeconfig");
    let user = format!(
        "  user:\n    as: system:serviceaccount:{}:changegate\n",
        ns.name
    );
    let impersonating = admin.replacen("  user:\n", &user, 1);
    assert_ne!(
        impersonating, admin,
        "the kubeconfig has a user entry to extend"
    );
    let scratch = Scratch::new(&ns.name);
    let path = scratch.write_private("kubeconfig", &impersonating);

    // Lists and watches namespaces, creates its TLS Secret, and (with
    // 40-second certificates) renews it: all under the chart's Roles.
    let (webhook, health) = free_ports();
    let mut operator = start_as(
        &ns.name,
        webhook,
        health,
        &["--cert-validity", "40s", "--cert-renew-before", "30s"],
        path.to_str().expect("utf-8 path"),
        "changegate-webhook-tls",
    );
    ready(&mut operator, health).await;
    let first = served_serial(webhook);
    assert!(
        first.starts_with("serial="),
        "no certificate served: {first:?}"
    );
    wait_until(
        "a renewal written under the chart's Role",
        Duration::from_secs(60),
        || async {
            let served = served_serial(webhook);
            if served.starts_with("serial=")
                && served != first
                && served == stored_serial_in(&ns.name, "changegate-webhook-tls")
            {
                Ok(())
            } else {
                Err(served)
            }
        },
    )
    .await;
    drop(operator);
}
