//! The Helm charts lint, render in each mode (the agent's two TLS modes, the
//! server on SQLite and on PostgreSQL), refuse values they cannot run with,
//! and what they render is accepted by the real API server (server-side dry
//! run).

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

const AGENT_CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/changegate");
const SERVER_CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/changegate-server");

/// Values that point each chart at an outside party, so that a render
/// differs from the defaults only in what a test sets: the operator at a
/// central server (no server installed beside it), the server at its
/// public address.
fn central(chart: &str) -> &'static [&'static str] {
    if chart == SERVER_CHART {
        &["--set", "publicUrl=https://changegate.example.com"]
    } else {
        &[
            "--set",
            "server.url=https://changegate.example.com",
            "--set",
            "changegate-server.enabled=false",
        ]
    }
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

/// Runs helm expecting it to fail; returns its standard error.
fn helm_fails(args: &[&str]) -> String {
    let out = Command::new(helm())
        .args(args)
        .output()
        .expect("run helm (localcluster/build.sh builds it)");
    assert!(
        !out.status.success(),
        "helm {args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn template_args<'a>(chart: &'a str, extra: &[&'a str], only: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "template",
        "changegate",
        chart,
        "--namespace",
        "changegate-system",
    ];
    args.extend_from_slice(central(chart));
    args.extend_from_slice(extra);
    for file in only {
        args.extend(["--show-only", *file]);
    }
    args
}

fn render(chart: &str, extra: &[&str], only: &[&str]) -> String {
    run_helm(&template_args(chart, extra, only))
}

/// Renders expecting failure; returns helm's standard error.
fn render_fails(chart: &str, extra: &[&str]) -> String {
    helm_fails(&template_args(chart, extra, &[]))
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
    let mut central_server = vec!["lint", AGENT_CHART];
    central_server.extend_from_slice(central(AGENT_CHART));
    run_helm(&central_server);
    central_server.extend(["--set", "certManager.enabled=true"]);
    run_helm(&central_server);
}

#[test]
fn the_self_managed_install_is_accepted_by_the_api_server_with_secure_defaults() {
    let manifests = render(
        AGENT_CHART,
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
        "- operator",
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
        AGENT_CHART,
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
        AGENT_CHART,
        &["--set", "certManager.enabled=true"],
        &["templates/deployment.yaml"],
    );
    assert!(deployment.contains("- --cert-manager"));
    let certificate = render(
        AGENT_CHART,
        &["--set", "certManager.enabled=true"],
        &["templates/cert-manager.yaml"],
    );
    assert!(
        certificate.contains("secretName: changegate-webhook-tls")
            && certificate.contains("changegate-webhook.changegate-system.svc")
    );
}

/// The server on PostgreSQL, two replicas behind an Ingress.
const SERVER_ON_POSTGRES: &[&str] = &[
    "--set",
    "database.kind=postgres",
    "--set",
    "database.existingSecret=changegate-db",
    "--set",
    "replicaCount=2",
    "--set",
    "ingress.enabled=true",
    "--set",
    "ingress.tlsSecret=changegate-tls",
];

#[test]
fn the_server_chart_lints_with_sqlite_and_postgres() {
    let mut sqlite = vec!["lint", SERVER_CHART];
    sqlite.extend_from_slice(central(SERVER_CHART));
    run_helm(&sqlite);
    let mut postgres = sqlite.clone();
    postgres.extend_from_slice(SERVER_ON_POSTGRES);
    run_helm(&postgres);
}

#[test]
fn the_server_installs_are_accepted_by_the_api_server_with_secure_defaults() {
    let sqlite = render(SERVER_CHART, &[], &[]);
    let postgres = render(SERVER_CHART, SERVER_ON_POSTGRES, &[]);
    for manifests in [&sqlite, &postgres] {
        for expected in [
            "runAsNonRoot: true",
            "runAsUser: 65532",
            "fsGroup: 65532",
            "type: RuntimeDefault",
            "readOnlyRootFilesystem: true",
            "allowPrivilegeEscalation: false",
            "- ALL",
            "mountPath: /tmp",
            "- {name: CHANGEGATE_LISTEN, value: \"0.0.0.0:8080\"}",
            "value: \"https://changegate.example.com\"",
            "path: /healthz",
            "path: /readyz",
            "kind: Service\n",
            "type: ClusterIP",
        ] {
            assert!(
                manifests.contains(expected),
                "rendered chart lacks {expected:?}"
            );
        }
        // The ServiceAccount and the pod spec; the server uses no Kubernetes API.
        assert_eq!(
            manifests
                .matches("automountServiceAccountToken: false")
                .count(),
            2,
            "{manifests}"
        );
        assert!(
            !manifests.contains("kind: Role") && !manifests.contains("kind: ClusterRole"),
            "{manifests}"
        );
        server_accepts(manifests);
    }

    for expected in [
        "replicas: 1",
        "type: Recreate",
        "kind: PersistentVolumeClaim",
        "claimName: changegate-server-data",
        "- {name: CHANGEGATE_DATA_DIR, value: /var/lib/changegate}",
    ] {
        assert!(
            sqlite.contains(expected),
            "sqlite render lacks {expected:?}"
        );
    }
    assert!(!sqlite.contains("kind: PodDisruptionBudget"), "{sqlite}");
    assert!(!sqlite.contains("kind: Ingress"), "{sqlite}");
    assert!(!sqlite.contains("CHANGEGATE_DATABASE"), "{sqlite}");

    for expected in [
        "replicas: 2",
        "type: RollingUpdate",
        "kind: PodDisruptionBudget",
        "minAvailable: 1",
        "name: CHANGEGATE_DATABASE",
        "name: changegate-db",
        "kind: Ingress",
        "host: \"changegate.example.com\"",
        "secretName: changegate-tls",
    ] {
        assert!(
            postgres.contains(expected),
            "postgres render lacks {expected:?}"
        );
    }
    assert!(
        !postgres.contains("kind: PersistentVolumeClaim"),
        "{postgres}"
    );
    assert!(!postgres.contains("CHANGEGATE_DATA_DIR"), "{postgres}");
}

#[test]
fn the_server_chart_refuses_replicas_on_sqlite_and_postgres_without_its_secret() {
    let stderr = render_fails(SERVER_CHART, &["--set", "replicaCount=2"]);
    assert!(
        stderr.contains("replicaCount=2 with database.kind=sqlite")
            && stderr.contains("database.kind=postgres"),
        "{stderr}"
    );
    let stderr = render_fails(SERVER_CHART, &["--set", "database.kind=postgres"]);
    assert!(stderr.contains("database.existingSecret"), "{stderr}");
}

#[test]
fn the_schemas_refuse_a_misspelt_key_and_a_non_integer_replica_count() {
    for chart in [AGENT_CHART, SERVER_CHART] {
        let misspelt = render_fails(chart, &["--set", "replicaCaunt=2"]);
        assert!(
            misspelt.contains("schema") && misspelt.contains("replicaCaunt"),
            "{chart}: {misspelt}"
        );
        let not_integer = render_fails(chart, &["--set", "replicaCount=two"]);
        assert!(
            not_integer.contains("schema") && not_integer.contains("replicaCount"),
            "{chart}: {not_integer}"
        );
    }
}

/// `helm install changegate charts/changegate` with nothing set: the
/// server beside the operator, on SQLite, with its bootstrap Secret, the
/// operator reaching it inside the cluster with this cluster's token from
/// that Secret; both charts lint from their defaults alone.
#[test]
fn the_charts_lint_and_install_from_their_defaults_alone() {
    run_helm(&["lint", AGENT_CHART]);
    run_helm(&["lint", SERVER_CHART]);
    let manifests = run_helm(&[
        "template",
        "changegate",
        AGENT_CHART,
        "--namespace",
        "changegate-system",
    ]);
    for expected in [
        // The server and its database.
        "name: changegate-server\n",
        "kind: PersistentVolumeClaim",
        "- {name: CHANGEGATE_DATA_DIR, value: /var/lib/changegate}",
        "value: \"http://changegate-server.changegate-system.svc\"",
        // Its first administrator and this cluster, generated once.
        "name: changegate-server-bootstrap",
        "admin-password: ",
        "admin-token: ",
        "agent-token-local: ",
        "helm.sh/resource-policy: keep",
        "- {name: CHANGEGATE_BOOTSTRAP_DIR, value: /var/run/changegate/bootstrap}",
        // The operator, pointed at it with that token.
        "- --server=http://changegate-server.changegate-system.svc",
        "items: [{key: agent-token-local, path: agent-token}]",
    ] {
        assert!(
            manifests.contains(expected),
            "the default install lacks {expected:?}"
        );
    }
    server_accepts(&manifests);
}

#[test]
fn the_operator_chart_wants_exactly_one_server() {
    let both = helm_fails(&[
        "template",
        "changegate",
        AGENT_CHART,
        "--set",
        "server.url=https://changegate.example.com",
    ]);
    assert!(
        both.contains("points the operator at a central server")
            && both.contains("--set changegate-server.enabled=false"),
        "{both}"
    );
    let neither = helm_fails(&[
        "template",
        "changegate",
        AGENT_CHART,
        "--set",
        "changegate-server.enabled=false",
    ]);
    assert!(
        neither.contains("no server") && neither.contains("set server.url"),
        "{neither}"
    );
}
