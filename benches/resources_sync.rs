//! `make bench`, custom resources part: needs `make up` (`make bench` runs
//! it with a release operator). Prints figures; asserts nothing about speed.
//!
//! 1. A ChangeRequest applied → `status.number` set (the mutating webhook,
//!    the reconcile, the server's create and submit, the status write):
//!    `CHANGEGATE_BENCH_ROUNDS` (default 30) in turn, p50 and p99.
//! 2. An approval through the API → `Ready` True on the resource (the
//!    bundle's long-poll wakes the reconciler): as many, p50 and p99.
//! 3. `CHANGEGATE_BENCH_FLEET` (default 1,000) ChangeRequests across 10
//!    namespaces: the time until every one has its number; the operator
//!    then restarted with the same command line: the time until it has
//!    reconciled them all again (its `changegate_reconciles_total`), and
//!    its resident memory then.
//! 4. Mirrors: a change raised through the API → its mirror `chg-<n>`
//!    with its number in status, `CHANGEGATE_BENCH_ROUNDS` in turn, p50
//!    and p99; then `CHANGEGATE_BENCH_FLEET` changes raised through the
//!    API: the time until every one is mirrored, the operator's RSS, the
//!    server's CPU while idle with that feed, and one approval → its
//!    mirror approved (the feed rebuilt) and the server CPU it took.

use changegate_resources::ChangeRequest;
use kube::Api;
use kube::runtime::wait::await_condition;
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

const TENANT: &str = "bench-crs";
const SERVER: &str = "http://127.0.0.1:9180";
const HEALTH: &str = "http://127.0.0.1:9080";

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let rounds = env("CHANGEGATE_BENCH_ROUNDS", 30);
    let fleet = env("CHANGEGATE_BENCH_FLEET", 1000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        println!("\n== Custom resources: spec -> record -> status (release operator, loopback)");
        let carol = setup();
        let kubeconfig =
            kube::config::Kubeconfig::read_from(format!("{}/.cluster/kubeconfig", root()))
                .expect("the kubeconfig of make up");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("load the kubeconfig");
        let client = kube::Client::try_from(config).expect("a client");
        let (numbers, approvals) = one_at_a_time(&client, &carol, rounds).await;
        report(
            "ChangeRequest applied -> status.number",
            numbers,
            "target p99 <= 2 s",
        );
        report("API approval -> Ready True", approvals, "target p99 <= 2 s");
        let (answered, admitted) = kubectl_approvals(&client, rounds).await;
        report(
            "kubectl approval patch answered (kubectl process included)",
            answered,
            "target p99 <= 500 ms",
        );
        report(
            "kubectl approval patch -> the workload admitted",
            admitted,
            "target p99 <= 2 s",
        );
        many(&client, fleet).await;
        mirrors(&client, rounds, fleet).await;
    });
}

fn root() -> &'static str {
    env!("CARGO_MANIFEST_DIR")
}

fn kubectl(args: &[&str], input: Option<&str>) {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(format!("{}/.cluster/kubeconfig", root()))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("kubectl");
    if let Some(input) = input {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write");
    }
    drop(child.stdin.take());
    assert!(child.wait().is_ok_and(|s| s.success()), "kubectl {args:?}");
}

fn changegate(token: &str, args: &[&str]) -> String {
    let bin = std::env::var("CHANGEGATE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_changegate").to_string());
    let out = Command::new(bin)
        .args(args)
        .env("CHANGEGATE_SERVER", SERVER)
        .env(
            "CHANGEGATE_DATA_DIR",
            format!("{}/.cluster/server/data", root()),
        )
        .env("CHANGEGATE_TOKEN", token)
        .output()
        .expect("changegate");
    assert!(
        out.status.success(),
        "changegate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The tenant on the server (the kubectl user mapped to its requester, an
/// item bound to this cluster so it is in the bundle), its namespaces
/// labelled; Carol's token.
fn setup() -> String {
    let admin = std::fs::read_to_string(format!("{}/.cluster/server/admin-token", root()))
        .expect("the admin token of `make up`");
    let admin = admin.trim();
    let yaml = format!(
        "kind: Tenant\nslug: {TENANT}\nname: Bench CRs\n---\n\
         kind: User\ntenant: {TENANT}\nemail: eve@{TENANT}.example\nname: Eve\nroles: [requester]\n---\n\
         kind: User\ntenant: {TENANT}\nemail: carol@{TENANT}.example\nname: Carol\nroles: [business-approver]\n---\n\
         kind: Board\ntenant: {TENANT}\nname: client\nspec: {{ members: [role:business-approver], rule: any }}\n---\n\
         kind: ConfigurationItem\ntenant: {TENANT}\nname: shop\nspec: {{ kind: kubernetes-workload, enforcement: {{ kubernetes: \
         {{ cluster: local, namespace: {TENANT}-0, kind: Deployment, name: shop }} }} }}\n---\n\
         kind: Policy\ntenant: {TENANT}\nspec:\n  routing: {{ normal: [ {{ from: low, boards: [client] }} ] }}\n  windowRequired: []\n  kubernetesApprovalUpTo: low\n---\n\
         kind: ClusterIdentity\ntenant: {TENANT}\ncluster: local\nuser: changegate-admin\nemail: eve@{TENANT}.example\n---\n\
         kind: ClusterIdentity\ntenant: {TENANT}\ncluster: local\nuser: carol-bench\nemail: carol@{TENANT}.example\n"
    );
    let file =
        std::env::temp_dir().join(format!("changegate-bench-crs-{}.yaml", std::process::id()));
    std::fs::write(&file, yaml).expect("write the tenant");
    changegate(admin, &["apply", "-f", &file.to_string_lossy()]);
    let _ = std::fs::remove_file(&file);
    // A run starts from no resources of its own: an earlier run's
    // thousand ChangeRequests would be reconciled on every bundle too.
    let old: Vec<String> = (0..10).map(|i| format!("{TENANT}-{i}")).collect();
    let mut delete = vec!["delete", "namespace", "--ignore-not-found", "--wait=true"];
    delete.extend(old.iter().map(String::as_str));
    kubectl(&delete, None);
    for i in 0..10 {
        let ns = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {TENANT}-{i}, labels: {{changegate.dev/tenant: {TENANT}}}}}\n"
        );
        kubectl(&["apply", "-f", "-"], Some(&ns));
    }
    let binding = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: carol-approves, namespace: {TENANT}-0}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: changegate-approver}}\n\
         subjects: [{{kind: User, name: carol-bench, apiGroup: rbac.authorization.k8s.io}}]\n"
    );
    kubectl(&["apply", "-f", "-"], Some(&binding));
    changegate(
        admin,
        &["admin", "token", &format!("carol@{TENANT}.example")],
    )
}

fn change_request(name: &str) -> String {
    format!(
        "apiVersion: changegate.dev/v1\nkind: ChangeRequest\nmetadata: {{name: {name}}}\nspec:\n  title: Bench {name}\n  \
         riskAnswers: {{production: \"no\", outage: \"no\", untested: \"no\", no-backout: \"no\"}}\n  configurationItems: [shop]\n"
    )
}

async fn until(api: &Api<ChangeRequest>, name: &str, cond: impl Fn(&ChangeRequest) -> bool) {
    let check = move |c: Option<&ChangeRequest>| c.is_some_and(&cond);
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(api.clone(), name, check),
    )
    .await
    .unwrap_or_else(|_| panic!("{name} did not get there within 60 s"))
    .expect("watch");
}

fn ready(c: &ChangeRequest) -> bool {
    c.status.as_ref().is_some_and(|s| {
        s.observed
            .conditions
            .iter()
            .any(|k| k.type_ == "Ready" && k.status == "True")
    })
}

async fn one_at_a_time(
    client: &kube::Client,
    carol: &str,
    rounds: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    let ns = format!("{TENANT}-0");
    let api: Api<ChangeRequest> = Api::namespaced(client.clone(), &ns);
    let http = reqwest::Client::new();
    let run = std::process::id();
    let (mut numbers, mut approvals) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let name = format!("one-{run}-{i}");
        let applied = Instant::now();
        kubectl(
            &["apply", "-n", &ns, "-f", "-"],
            Some(&change_request(&name)),
        );
        until(&api, &name, |c| {
            c.status
                .as_ref()
                .is_some_and(|s| s.observed.number.is_some())
        })
        .await;
        numbers.push(applied.elapsed());
        let c = api.get(&name).await.expect("the resource");
        let number = c.status.and_then(|s| s.observed.number).expect("number");
        let answer = http
            .post(format!(
                "{SERVER}/api/v1/tenants/{TENANT}/changes/{number}/decisions"
            ))
            .bearer_auth(carol)
            .json(&json!({ "decision": "approve", "revision": 1 }))
            .send()
            .await
            .expect("the server");
        assert!(
            answer.status().is_success(),
            "approval: {}",
            answer.status()
        );
        let approved = Instant::now();
        until(&api, &name, ready).await;
        approvals.push(approved.elapsed());
    }
    (numbers, approvals)
}

/// A ChangeRequest shipping `image` to Deployment shop.
fn shipping(name: &str, image: &str) -> String {
    format!(
        "apiVersion: changegate.dev/v1\nkind: ChangeRequest\nmetadata: {{name: {name}}}\nspec:\n  title: Bench {name}\n  \
         riskAnswers: {{production: \"no\", outage: \"no\", untested: \"no\", no-backout: \"no\"}}\n  \
         targets: [{{kind: Deployment, name: shop, images: [\"{image}\"]}}]\n"
    )
}

/// Whether `kubectl apply --dry-run=server` of Deployment shop with
/// `image` is admitted.
fn admitted(ns: &str, image: &str) -> bool {
    use std::io::Write;
    let deployment = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: shop, namespace: {ns}}}\nspec:\n  \
         selector: {{matchLabels: {{app: shop}}}}\n  template:\n    metadata: {{labels: {{app: shop}}}}\n    \
         spec: {{containers: [{{name: shop, image: \"{image}\"}}]}}\n"
    );
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(format!("{}/.cluster/kubeconfig", root()))
        .args(["apply", "--dry-run=server", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("kubectl");
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(deployment.as_bytes());
    child.wait().is_ok_and(|s| s.success())
}

/// Carol approves with kubectl, one change at a time: how long the
/// approval patch takes to be answered (the webhook, a
/// SubjectAccessReview and the server's record), and from the patch
/// until a Deployment with the approved image is admitted.
async fn kubectl_approvals(client: &kube::Client, rounds: usize) -> (Vec<Duration>, Vec<Duration>) {
    let ns = format!("{TENANT}-0");
    let api: Api<ChangeRequest> = Api::namespaced(client.clone(), &ns);
    let run = std::process::id();
    let (mut answered, mut admitted_after) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let name = format!("kubectl-{run}-{i}");
        let image = format!("registry.example/shop:{run}-{i}");
        kubectl(
            &["apply", "-n", &ns, "-f", "-"],
            Some(&shipping(&name, &image)),
        );
        until(&api, &name, |c| {
            c.status
                .as_ref()
                .is_some_and(|s| s.observed.revision.is_some())
        })
        .await;
        let patched = Instant::now();
        kubectl(
            &[
                "patch",
                "chg",
                &name,
                "-n",
                &ns,
                "--subresource=status",
                "--type=merge",
                "--as=carol-bench",
                "-p",
                r#"{"status":{"approvals":{"carol-bench":{"decision":"Approved"}}}}"#,
            ],
            None,
        );
        answered.push(patched.elapsed());
        while !admitted(&ns, &image) {
            assert!(
                patched.elapsed() < Duration::from_secs(60),
                "{image} not admitted within 60 s of its approval"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        admitted_after.push(patched.elapsed());
    }
    (answered, admitted_after)
}

fn report(what: &str, mut waits: Vec<Duration>, target: &str) {
    waits.sort_unstable();
    let at = |p: f64| waits[((waits.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0;
    println!(
        "{what}, {} in turn: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({target})",
        waits.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

/// The operator's count of reconciles, from its metrics.
async fn reconciles(http: &reqwest::Client) -> u64 {
    let Ok(r) = http.get(format!("{HEALTH}/metrics")).send().await else {
        return 0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("changegate_reconciles_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn operator_pid() -> u32 {
    std::fs::read_to_string(format!("{}/.cluster/operator.pid", root()))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .expect("the operator's pid file of make up")
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

// The restarted operator is `make up`'s from then on and outlives the
// benchmark, as the one `make up` started does: never waited on here.
#[allow(clippy::zombie_processes)]
async fn many(client: &kube::Client, fleet: usize) {
    let run = std::process::id();
    let started = Instant::now();
    let per_ns = fleet.div_ceil(10);
    let mut names = Vec::new();
    for i in 0..10 {
        let ns = format!("{TENANT}-{i}");
        let docs: Vec<String> = (0..per_ns)
            .map(|j| change_request(&format!("many-{run}-{j}")))
            .collect();
        kubectl(&["apply", "-n", &ns, "-f", "-"], Some(&docs.join("---\n")));
        names.extend((0..per_ns).map(|j| (ns.clone(), format!("many-{run}-{j}"))));
    }
    let applied = started.elapsed();
    for (ns, name) in &names {
        let api: Api<ChangeRequest> = Api::namespaced(client.clone(), ns);
        until(&api, name, |c| {
            c.status
                .as_ref()
                .is_some_and(|s| s.observed.number.is_some())
        })
        .await;
    }
    println!(
        "{} ChangeRequests in 10 namespaces: applied in {:.1} s, every one with its number after {:.1} s",
        names.len(),
        applied.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    // Restart the operator with its own command line and environment.
    let pid = operator_pid();
    let cmdline =
        std::fs::read(format!("/proc/{pid}/cmdline")).expect("the operator's command line");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let vars: Vec<(String, String)> = environ
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect();
    Command::new("kill")
        .arg(pid.to_string())
        .status()
        .expect("kill");
    let http = reqwest::Client::new();
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(format!("{}/.cluster/logs/operator.log", root()))
        .expect("the operator's log");
    let restarted = Instant::now();
    let child = Command::new(&args[0])
        .args(&args[1..])
        .env_clear()
        .envs(vars)
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("restart the operator");
    std::fs::write(
        format!("{}/.cluster/operator.pid", root()),
        child.id().to_string(),
    )
    .expect("pid file");
    // Every ChangeRequest the operator will find (earlier runs' too), but
    // the mirrors, which it writes rather than reconciles.
    let all: Api<ChangeRequest> = Api::all(client.clone());
    let total = all
        .list(&kube::api::ListParams::default().labels("changegate.dev/origin!=server"))
        .await
        .map_or(names.len(), |l| l.items.len()) as u64;
    loop {
        let done = reconciles(&http).await;
        if done >= total {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(600),
            "only {done} of {total} reconciled 10 minutes after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "operator restarted: every ChangeRequest reconciled again after {:.1} s; its RSS then {:.0} MiB (target <= 150 MiB)",
        restarted.elapsed().as_secs_f64(),
        rss_mib(child.id())
    );
}

/// A change of the bench tenant raised and submitted through the API, as
/// the portal or e-mail would: its number.
async fn raise(http: &reqwest::Client, eve: &str, i: usize) -> String {
    let created: serde_json::Value = http
        .post(format!("{SERVER}/api/v1/tenants/{TENANT}/changes"))
        .bearer_auth(eve)
        .json(&json!({
            "type": "normal", "title": format!("Mirrored {i}"),
            "risk_answers": { "production": "no", "outage": "no", "untested": "no", "no-backout": "no" },
            "configuration_items": ["shop"], "artifacts": [format!("registry.example/shop:m{i}")],
            "implementation_plan": "apply", "backout_plan": "undo",
        }))
        .send()
        .await
        .expect("the server")
        .json()
        .await
        .expect("JSON");
    let n = created["number"].as_str().expect("a number").to_string();
    let submitted = http
        .post(format!(
            "{SERVER}/api/v1/tenants/{TENANT}/changes/{n}/submit"
        ))
        .bearer_auth(eve)
        .json(&json!({}))
        .send()
        .await
        .expect("the server");
    assert!(
        submitted.status().is_success(),
        "submit {n}: {}",
        submitted.status()
    );
    n
}

fn server_cpu_seconds() -> f64 {
    let pid: u32 = std::fs::read_to_string(format!("{}/.cluster/server.pid", root()))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .expect("the server's pid file of make up");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the server's stat");
    let after = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields[i - 3].parse::<f64>().expect("ticks");
    (ticks(14) + ticks(15)) / 100.0
}

async fn mirrors(client: &kube::Client, rounds: usize, fleet: usize) {
    let admin = std::fs::read_to_string(format!("{}/.cluster/server/admin-token", root()))
        .expect("the admin token of `make up`");
    let eve = changegate(
        admin.trim(),
        &["admin", "token", &format!("eve@{TENANT}.example")],
    );
    let carol = changegate(
        admin.trim(),
        &["admin", "token", &format!("carol@{TENANT}.example")],
    );
    let ns = format!("{TENANT}-0");
    let api: Api<ChangeRequest> = Api::namespaced(client.clone(), &ns);
    let http = reqwest::Client::new();
    let numbered = |n: String| {
        move |c: &ChangeRequest| {
            c.status
                .as_ref()
                .is_some_and(|s| s.observed.number.as_deref() == Some(n.as_str()))
        }
    };
    let mut waits = Vec::new();
    for i in 0..rounds {
        let raised = Instant::now();
        let n = raise(&http, &eve, i).await;
        until(&api, &n.to_ascii_lowercase(), numbered(n.clone())).await;
        waits.push(raised.elapsed());
    }
    report(
        "change raised in the API -> its mirror chg-<n> in the namespace",
        waits,
        "target p99 <= 2 s",
    );

    // Many at once.
    let started = Instant::now();
    let mut numbers = Vec::new();
    for chunk in (rounds..rounds + fleet).collect::<Vec<_>>().chunks(8) {
        let raised = futures::future::join_all(chunk.iter().map(|&i| raise(&http, &eve, i))).await;
        numbers.extend(raised);
    }
    let all_raised = started.elapsed();
    let wanted = rounds + fleet;
    let mirrors_present = || async {
        api.list(&kube::api::ListParams::default().labels("changegate.dev/origin=server"))
            .await
            .map_or(0, |l| l.items.iter().filter(|c| c.status.is_some()).count())
    };
    loop {
        let present = mirrors_present().await;
        if present >= wanted {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "only {present} of {wanted} mirrors 10 minutes after raising them"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mirrored = started.elapsed();
    let operator = rss_mib(operator_pid());
    let idle = Duration::from_secs(10);
    let cpu = server_cpu_seconds();
    tokio::time::sleep(idle).await;
    let idle_cpu = (server_cpu_seconds() - cpu) / idle.as_secs_f64();
    // One approval: the feed of every mirror rebuilt, the mirror approved.
    let last = numbers.last().expect("a change").clone();
    let cpu = server_cpu_seconds();
    let approved = Instant::now();
    let answer = http
        .post(format!(
            "{SERVER}/api/v1/tenants/{TENANT}/changes/{last}/decisions"
        ))
        .bearer_auth(&carol)
        .json(&json!({ "decision": "approve", "revision": 1 }))
        .send()
        .await
        .expect("the server");
    assert!(
        answer.status().is_success(),
        "approval: {}",
        answer.status()
    );
    until(&api, &last.to_ascii_lowercase(), |c| {
        c.status
            .as_ref()
            .is_some_and(|s| s.observed.phase.as_deref() == Some("approved"))
    })
    .await;
    let took = approved.elapsed();
    let rebuild_cpu = server_cpu_seconds() - cpu;
    println!(
        "{wanted} mirrored changes (raised through the API in {:.1} s, 8 at a time): every mirror written after {:.1} s; \
         operator RSS {operator:.0} MiB; server CPU while idle {:.1} %; one approval -> its mirror approved {:.0} ms, \
         server CPU {:.2} s for it (the feed of {wanted} rebuilt)",
        all_raised.as_secs_f64(),
        mirrored.as_secs_f64(),
        idle_cpu * 100.0,
        took.as_secs_f64() * 1000.0,
        rebuild_cpu,
    );
}
