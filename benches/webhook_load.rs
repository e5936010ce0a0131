//! `make bench`, webhook part. Prints figures; asserts nothing about speed.
//!
//! 1. The workload handler called in process on a Deployment as the API
//!    server sends it: the operator's own cost per request, without TLS.
//! 2. AdmissionReviews over HTTPS on loopback to an in-process webhook
//!    server (the real router and TLS stack, fixture stores): p50/p99 and
//!    errors at 1,000 requests/s for 60 s (CHANGEGATE_BENCH_SECONDS), then
//!    the highest rate held with p99 <= 25 ms.
//! 3. Through the real API server (needs `make up`, run with a release
//!    operator by `make bench`): p99 and throughput of Deployment updates in
//!    a gated namespace against an ungated one, and against one behind a
//!    reference webhook that admits unread, interleaved in one run, with
//!    the CPU each update costs the machine, the API server and the
//!    operator. Then approval -> admitted on the agent: 20 changes, each
//!    approved on the server, timed until a dry-run update shipping its
//!    image is admitted (p50, p99).

use changegate_agent::bundle::{Bundle, BundleState, Snapshot};
use changegate_agent::webhook::certs::{self, Lifetimes};
use changegate_agent::webhook::metrics::Metrics;
use changegate_agent::webhook::server::{self, App};
use changegate_agent::webhook::stores::Stores;
use chrono::{Duration as ChronoDuration, SecondsFormat, Utc};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::core::v1::Namespace;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// The operator's allocator, so the in-process and HTTPS figures are its own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Https = HttpClient<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let seconds: u64 = std::env::var("CHANGEGATE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let only = std::env::var("CHANGEGATE_BENCH_ONLY").ok();
    runtime.block_on(async {
        match only.as_deref() {
            Some("handler") => handler_in_process().await,
            Some(_) => through_the_api_server(seconds).await,
            None => {
                handler_in_process().await;
                webhook_over_https(seconds).await;
                through_the_api_server(seconds).await;
            }
        }
    });
}

// ---------------------------------------------------------------- part 1

/// A bundle with tenant client-a: `changes` approved changes on as many
/// configuration items (the one covering payments-api among them, with the
/// image the review ships) and `windows` maintenance windows (one open now).
fn fixture_app(changes: usize, windows: usize) -> Arc<App> {
    let now = Utc::now();
    let fmt = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "client-a-prod", "labels": {"changegate.dev/tenant": "client-a"}}})).expect("ns");
    let mut window_specs = serde_json::Map::new();
    for i in 0..windows - 1 {
        window_specs.insert(format!("w{i}"), json!({"timeZone": "Europe/Berlin",
            "schedule": {"cron": {"expr": format!("{} {} * * SAT", i % 60, i % 24), "duration": "1h"}}}));
    }
    window_specs.insert("open-now".into(), json!({"timeZone": "UTC",
        "schedule": {"ranges": [{"start": fmt(now - ChronoDuration::hours(1)), "end": fmt(now + ChronoDuration::hours(6))}]}}));
    let covering = changes / 2;
    let mut items = serde_json::Map::new();
    let list: Vec<Value> = (0..changes)
        .map(|i| {
            let (item, name) = if i == covering {
                ("payments-api".to_string(), "payments-api".to_string())
            } else {
                (format!("svc-{i}"), format!("svc-{i}"))
            };
            items.insert(item.clone(), json!({"kind": "kubernetes-workload", "enforcement": {"kubernetes":
                {"cluster": "bench", "namespace": "client-a-prod", "kind": "Deployment", "name": name}}}));
            json!({"number": format!("CHG-{}", i + 1), "kind": "normal", "state": "approved",
                   "configurationItems": [item], "artifacts": ["r/p:2"], "fingerprint": "sha256:00",
                   "plannedStart": null, "plannedEnd": null, "awaiting": []})
        })
        .collect();
    let bundle: Bundle = serde_json::from_value(json!({"cluster": "bench", "tenants": [{
        "tenant": "client-a", "enforcement": "Enforce", "window_required": ["normal"],
        "configuration_items": items, "windows": window_specs, "changes": list}]}))
    .expect("bundle");
    let state = BundleState::default();
    state.replace(
        Arc::new(Snapshot::new("\"bench\"".into(), bundle, now)),
        now,
    );
    Arc::new(App {
        stores: Stores::from_namespaces(vec![ns]),
        operator_namespace: "changegate-system".into(),
        metrics: std::sync::Arc::new(Metrics::default()),
        caches_synced: AtomicBool::new(true),
        certificate_loaded: AtomicBool::new(true),
        bundle: Arc::new(state),
        max_staleness: ChronoDuration::minutes(10),
        agent_user: std::sync::OnceLock::new(),
        approvals: None,
    })
}

/// An image update of a Deployment as the API server sends it: defaulted
/// spec, managedFields and status included (`deployment.json`, read from the
/// local control plane).
fn review_body() -> Bytes {
    let deployment = |image: &str| {
        let mut d: Value =
            serde_json::from_str(include_str!("deployment.json")).expect("deployment.json");
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
        d
    };
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "bench", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "name": "payments-api", "namespace": "client-a-prod", "operation": "UPDATE",
        "userInfo": {"username": "deployer", "groups": ["system:authenticated"]},
        "object": deployment("r/p:2"), "oldObject": deployment("r/p:1"), "dryRun": false}});
    Bytes::from(review.to_string())
}

/// The workload route called in process, one request at a time: the
/// operator's own cost per request (routing, parsing, the decision, the
/// answer), without TLS and HTTP/2.
async fn handler_in_process() {
    for (changes, windows) in [(1000, 100), (1, 1)] {
        handler_calls(changes, windows).await;
    }
}

async fn handler_calls(changes: usize, windows: usize) {
    use tower::ServiceExt;
    let router = server::admission_router(fixture_app(changes, windows));
    let body = review_body();
    let call = || async {
        let req = hyper::Request::post("/validate/workloads")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.clone()))
            .expect("request");
        let resp = router.clone().oneshot(req).await.expect("infallible");
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        assert!(
            bytes.windows(14).any(|w| w == b"\"allowed\":true"),
            "not admitted: {}",
            String::from_utf8_lossy(&bytes)
        );
    };
    for _ in 0..2_000 {
        call().await;
    }
    let mut timings = Vec::with_capacity(20_000);
    let started = Instant::now();
    for _ in 0..20_000 {
        let t = Instant::now();
        call().await;
        timings.push(t.elapsed());
    }
    let mean = started.elapsed() / 20_000;
    timings.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "== workload handler in process ({} byte AdmissionReview, {changes} changes and {windows} windows): mean {:.1} µs, p50 {:.1} µs, p99 {:.1} µs",
        body.len(),
        us(mean),
        us(timings[10_000]),
        us(timings[19_800])
    );
}

/// A webhook that admits everything after reading only the request's uid:
/// the least any admission webhook costs, served on the same TLS stack.
async fn serve_null() -> (u16, String) {
    #[derive(serde::Deserialize)]
    struct Review {
        request: Request,
    }
    #[derive(serde::Deserialize)]
    struct Request {
        uid: String,
    }
    async fn admit(body: Bytes) -> axum::response::Response {
        use axum::response::IntoResponse;
        match serde_json::from_slice::<Review>(&body) {
            Ok(review) => axum::Json(
                json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": {"uid": review.request.uid, "allowed": true}}),
            )
            .into_response(),
            Err(e) => (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        }
    }
    tls_server(axum::Router::new().route("/", axum::routing::post(admit))).await
}

async fn serve(app: Arc<App>) -> (u16, String) {
    tls_server(server::admission_router(app)).await
}

async fn tls_server(router: axum::Router) -> (u16, String) {
    let now = time::OffsetDateTime::now_utc();
    let lifetimes = Lifetimes::default();
    let ca = certs::generate_ca(now, &lifetimes).expect("ca");
    let serving =
        certs::issue_serving(&ca, &["127.0.0.1".to_string()], now, &lifetimes).expect("serving");
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
        serving.cert_pem.into_bytes(),
        serving.key_pem.into_bytes(),
    )
    .await
    .expect("tls");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = axum_server::from_tcp_rustls(listener, tls)
        .expect("server")
        .serve(router.into_make_service());
    tokio::spawn(server);
    (port, ca.cert_pem)
}

fn client(ca_pem: &str) -> Https {
    let (_, pem) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes()).expect("pem");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(pem.contents))
        .expect("root");
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    HttpClient::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build(https)
}

struct Run {
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

impl Run {
    fn pct(&self, p: f64) -> f64 {
        let mut l = self.latencies.clone();
        l.sort_unstable();
        l.get(((l.len().max(1) - 1) as f64 * p) as usize)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    }

    fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Open-loop load: one request every 1/rate seconds, whatever the answers.
async fn load(client: &Https, port: u16, body: &Bytes, rate: u64, seconds: u64) -> Run {
    let uri: hyper::Uri = format!("https://127.0.0.1:{port}/validate/workloads")
        .parse()
        .expect("uri");
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for _ in 0..rate * seconds {
        tick.tick().await;
        let (client, uri, body) = (client.clone(), uri.clone(), body.clone());
        tasks.spawn(async move {
            let sent = Instant::now();
            let req = hyper::Request::post(uri)
                .header("content-type", "application/json")
                .body(Full::new(body))
                .expect("request");
            let ok = match client.request(req).await {
                Ok(resp) if resp.status() == 200 => {
                    resp.into_body().collect().await.is_ok_and(|b| {
                        let text = b.to_bytes();
                        text.windows(14).any(|w| w == b"\"allowed\":true")
                    })
                }
                _ => false,
            };
            (sent.elapsed(), ok)
        });
    }
    let mut run = Run {
        latencies: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    while let Some(result) = tasks.join_next().await {
        match result {
            Ok((latency, true)) => run.latencies.push(latency),
            _ => run.errors += 1,
        }
    }
    run.elapsed = started.elapsed();
    run
}

async fn webhook_over_https(seconds: u64) {
    let (port, ca) = serve(fixture_app(1000, 100)).await;
    let client = client(&ca);
    let body = review_body();
    load(&client, port, &body, 200, 2).await; // warm the connection pool
    println!(
        "== webhook over HTTPS on loopback (1,000 changes and 100 windows in the tenant; every request admitted after the full decision)"
    );
    let run = load(&client, port, &body, 1000, seconds).await;
    println!(
        "1000 req/s for {seconds}s: p50 {:.2} ms, p99 {:.2} ms, errors {}, achieved {:.0} req/s   (target: p99 <= 5 ms, zero errors)",
        run.pct(0.50),
        run.pct(0.99),
        run.errors,
        run.throughput()
    );
    let step = seconds.clamp(2, 10);
    let mut best = None;
    for rate in [1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000] {
        let run = load(&client, port, &body, rate, step).await;
        let held =
            run.errors == 0 && run.pct(0.99) <= 25.0 && run.throughput() >= rate as f64 * 0.9;
        println!(
            "  {rate:>5} req/s for {step}s: p50 {:.2} ms, p99 {:.2} ms, errors {}, achieved {:.0} req/s{}",
            run.pct(0.5),
            run.pct(0.99),
            run.errors,
            run.throughput(),
            if held { "" } else { "  <- not held" }
        );
        if !held {
            break;
        }
        best = Some(rate);
    }
    match best {
        Some(rate) => println!("highest rate held with p99 <= 25 ms and no errors: {rate} req/s"),
        None => println!("highest rate held with p99 <= 25 ms and no errors: below 1000 req/s"),
    }
}

// ---------------------------------------------------------------- part 2

async fn through_the_api_server(seconds: u64) {
    use kube::api::{Api, Patch, PatchParams};
    println!(
        "\n== Deployment updates through the real API server, with the webhook against without it"
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/.cluster/kubeconfig");
    let health = std::process::Command::new("curl")
        .args(["-fsS", "http://127.0.0.1:9080/readyz"])
        .output();
    if !std::path::Path::new(path).exists() || !health.is_ok_and(|o| o.status.success()) {
        println!(
            "skipped: the local cluster and operator are not running (make bench runs make up first)"
        );
        return;
    }
    let kubeconfig = kube::config::Kubeconfig::read_from(path).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    let client = kube::Client::try_from(config).expect("client");

    let now = Utc::now();
    let fmt = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let apply = |v: Value| async move {
        let out = std::process::Command::new("kubectl")
            .args(["--kubeconfig", path, "apply", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin
                    .take()
                    .expect("stdin")
                    .write_all(v.to_string().as_bytes())?;
                c.wait()
            });
        assert!(out.is_ok_and(|s| s.success()), "kubectl apply failed");
    };
    apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench-gated", "labels": {"changegate.dev/tenant": "bench"}}})).await;
    apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench-ungated"}}))
        .await;
    apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench-null"}}))
        .await;
    // The reference point: a webhook that admits everything unread, served
    // from this process, for the same updates in `bench-null`.
    let (null_port, null_ca) = serve_null().await;
    {
        use k8s_openapi::ByteString;
        use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
        let mut config: ValidatingWebhookConfiguration = serde_json::from_value(json!({
            "metadata": {"name": "changegate-bench-null"},
            "webhooks": [{"name": "null.bench.changegate.dev", "admissionReviewVersions": ["v1"],
                "sideEffects": "None", "failurePolicy": "Fail", "timeoutSeconds": 5,
                "clientConfig": {"url": format!("https://127.0.0.1:{null_port}/")},
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "bench-null"}},
                "rules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["deployments"]}]}]}))
        .expect("webhook configuration");
        config.webhooks.as_mut().expect("webhooks")[0]
            .client_config
            .ca_bundle = Some(ByteString(null_ca.into_bytes()));
        let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
        api.patch(
            "changegate-bench-null",
            &PatchParams::apply("bench").force(),
            &Patch::Apply(config),
        )
        .await
        .expect("register the null webhook");
    }
    // On the server of `make up`: tenant `bench` with an item bound to
    // every `app: bench` Deployment of bench-gated, and an approved change
    // shipping their image.
    let cli = approve_on_the_server(
        &std::env::var("CHANGEGATE_BENCH_ENFORCEMENT").unwrap_or_else(|_| "Enforce".into()),
        &fmt(now - ChronoDuration::hours(1)),
        &fmt(now + ChronoDuration::hours(3)),
    );
    for ns in ["bench-gated", "bench-ungated", "bench-null"] {
        let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), ns);
        for d in 0..DEPLOYMENTS {
            let name = deployment_name(d);
            // The agent follows what it admits and reports the outcome,
            // which implements (and so uses up) the covering change. An
            // image that never gets ready (kwok: a tag ending in -fail)
            // under a day-long progress deadline keeps the rollout, and the
            // change, in progress for the whole run: every update stays
            // covered. The reference namespaces get the same Deployments.
            let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": "bench"}},
                "spec": {"replicas": 1, "progressDeadlineSeconds": 86_400, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": BENCH_IMAGE}]}}}});
            let mut created = false;
            for _ in 0..100 {
                match api
                    .patch(
                        &name,
                        &PatchParams::apply("bench").force(),
                        &Patch::Apply(deployment.clone()),
                    )
                    .await
                {
                    Ok(_) => {
                        created = true;
                        break;
                    }
                    // The webhook's stores may not have seen the approval
                    // yet, nor the API server the null webhook.
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
            assert!(
                created,
                "cannot create the benchmark Deployment {name} in {ns}"
            );
        }
    }

    let delete = |kind: &str, name: &str| {
        let _ = std::process::Command::new("kubectl")
            .args(["--kubeconfig", path, "delete", kind, name])
            .args(["--wait=false", "--ignore-not-found"])
            .output();
    };
    // Diagnostic: CHANGEGATE_BENCH_ONLY=<namespace> runs one closed loop and
    // stops, keeping the namespaces for the next run.
    if let Ok(ns) = std::env::var("CHANGEGATE_BENCH_ONLY") {
        let before = Cpu::now();
        let done = closed_loop(&client, &ns, seconds).await;
        let cpu = Cpu::now().since(&before, done.updates);
        println!(
            "{ns}: {:.0} updates/s; CPU per update: machine {:.2} ms, kube-apiserver {:.2} ms, operator {:.2} ms; machine idle {:.0}%",
            done.rate(),
            cpu.machine_ms,
            cpu.apiserver_ms,
            cpu.operator_ms,
            cpu.idle_pct
        );
        delete("validatingwebhookconfiguration", "changegate-bench-null");
        return;
    }
    // Latency at a steady 20 updates/s (below saturation), then throughput
    // with 4 closed-loop workers; baseline and webhook rounds interleave so
    // drift in the shared machine hits both alike.
    let round = seconds.clamp(3, 20);
    let (mut with, mut without) = (Vec::new(), Vec::new());
    let (mut with_held, mut without_held) = (0usize, 0usize);
    for _ in 0..3 {
        // A second view of throughput: whether an offered 100 updates/s is held.
        without_held += steady_updates(&client, "bench-ungated", 100, round)
            .await
            .len();
        with_held += steady_updates(&client, "bench-gated", 100, round)
            .await
            .len();
        without.extend(steady_updates(&client, "bench-ungated", 20, round).await);
        with.extend(steady_updates(&client, "bench-gated", 20, round).await);
    }
    // Closed loops: more, shorter rounds, because the ratio moves with
    // whatever else the shared machine runs. Each round also reads where
    // the CPU went, since a closed loop on 2 cores is bound by CPU.
    let rounds: usize = std::env::var("CHANGEGATE_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);
    let loop_seconds = seconds.clamp(3, 10);
    let variants = ["bench-ungated", "bench-gated", "bench-null"];
    let mut rates: [Vec<f64>; 3] = Default::default();
    let mut ratios: [Vec<f64>; 2] = Default::default();
    let mut cpus: [Vec<CpuPerUpdate>; 3] = Default::default();
    for _ in 0..rounds {
        for (v, ns) in variants.iter().enumerate() {
            let before = Cpu::now();
            let done = closed_loop(&client, ns, loop_seconds).await;
            cpus[v].push(Cpu::now().since(&before, done.updates));
            rates[v].push(done.rate());
        }
        let last = |v: usize| rates[v][rates[v].len() - 1];
        ratios[0].push(100.0 * last(1) / last(0));
        ratios[1].push(100.0 * last(2) / last(0));
    }
    let pct = |l: &mut Vec<Duration>, p: f64| {
        l.sort_unstable();
        l[((l.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0
    };
    let (b50, b99) = (pct(&mut without, 0.5), pct(&mut without, 0.99));
    let (w50, w99) = (pct(&mut with, 0.5), pct(&mut with, 0.99));
    println!(
        "at 20 updates/s, without webhook: p50 {b50:.2} ms, p99 {b99:.2} ms ({} updates)",
        without.len()
    );
    println!(
        "at 20 updates/s, with webhook:    p50 {w50:.2} ms, p99 {w99:.2} ms ({} updates)",
        with.len()
    );
    let offered = (3 * 100 * round) as f64;
    println!(
        "offered 100 updates/s for 3x{round}s: without held {:.1}%, with held {:.1}%",
        100.0 * without_held as f64 / offered,
        100.0 * with_held as f64 / offered
    );
    println!(
        "4 closed-loop workers, {rounds} interleaved rounds of {loop_seconds}s, median (min-max):"
    );
    let labels = [
        "baseline (no webhook)     ",
        "changegate                ",
        "reference (admits unread) ",
    ];
    for (v, label) in labels.iter().enumerate() {
        let ratio = match v {
            0 => String::new(),
            _ => format!(
                "; {} of baseline, paired by round",
                spread(&mut ratios[v - 1], "%")
            ),
        };
        println!("  {label} {} updates/s{ratio}", spread(&mut rates[v], ""));
    }
    println!("  CPU per update, median of rounds (machine idle during the loops, median):");
    for (v, label) in labels.iter().enumerate() {
        let of = |f: fn(&CpuPerUpdate) -> f64| median(cpus[v].iter().map(f).collect());
        let operator = match v {
            1 => format!(", operator {:.2} ms", of(|c| c.operator_ms)),
            _ => String::new(),
        };
        println!(
            "  {label} machine {:.2} ms, kube-apiserver {:.2} ms{operator} (idle {:.0}%)",
            of(|c| c.machine_ms),
            of(|c| c.apiserver_ms),
            of(|c| c.idle_pct)
        );
    }
    // On a CPU-bound machine a 95% ratio leaves 1/0.95 - 1 = 5.3% of the
    // baseline's CPU per update for everything a webhook adds; this is the
    // share kube-apiserver alone spends calling one that does nothing.
    let machine = |v: usize| median(cpus[v].iter().map(|c| c.machine_ms).collect());
    let apiserver = |v: usize| median(cpus[v].iter().map(|c| c.apiserver_ms).collect());
    println!(
        "kube-apiserver's own cost of calling the reference webhook: +{:.2} ms per update, \
         {:.1}% of the baseline's machine CPU per update (a 95% throughput ratio allows 5.3% in all)",
        apiserver(2) - apiserver(0),
        100.0 * (apiserver(2) - apiserver(0)) / machine(0)
    );
    println!(
        "added at p99: {:.2} ms (target <= 5 ms); throughput {:.1}% of baseline (target >= 95%); \
         a webhook that admits unread: {:.1}%",
        w99 - b99,
        median(ratios[0].clone()),
        median(ratios[1].clone())
    );
    approval_to_admission(&client, &cli, 20).await;
    for (kind, name) in [
        ("validatingwebhookconfiguration", "changegate-bench-null"),
        ("namespace", "bench-gated"),
        ("namespace", "bench-ungated"),
        ("namespace", "bench-null"),
    ] {
        delete(kind, name);
    }
}

/// Deployments per namespace; update `i` goes to deployment `i % DEPLOYMENTS`,
/// so concurrent updates rarely touch the same object (a conflict makes the
/// API server retry the update, admission included, and would measure
/// contention on one object rather than the cost of an update).
const DEPLOYMENTS: u32 = 4;

/// The image of the benchmark Deployments, approved by the bench's change.
const BENCH_IMAGE: &str = "example.com/bench:1-fail";

fn deployment_name(i: u32) -> String {
    format!("bench-{}", i % DEPLOYMENTS)
}

fn patch_for(i: u32) -> Value {
    // `spec.revisionHistoryLimit`: a real spec change the webhook fully
    // decides, without starting a rollout.
    json!({"spec": {"revisionHistoryLimit": 1 + i % 50}})
}

/// Open-loop updates at `rate` per second for `seconds`; their latencies.
async fn steady_updates(client: &kube::Client, ns: &str, rate: u64, seconds: u64) -> Vec<Duration> {
    use kube::api::{Api, Patch, PatchParams};
    let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), ns);
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / rate));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..u32::try_from(rate * seconds).unwrap_or(u32::MAX) {
        tick.tick().await;
        let api = api.clone();
        tasks.spawn(async move {
            let sent = Instant::now();
            api.patch(
                &deployment_name(i),
                &PatchParams::default(),
                &Patch::Merge(patch_for(i)),
            )
            .await
            .ok()
            .map(|_| sent.elapsed())
        });
    }
    let mut latencies = Vec::new();
    while let Some(result) = tasks.join_next().await {
        if let Ok(Some(l)) = result {
            latencies.push(l);
        }
    }
    latencies
}

/// What the closed-loop workers got done.
struct Done {
    updates: u32,
    elapsed: Duration,
}

impl Done {
    fn rate(&self) -> f64 {
        f64::from(self.updates) / self.elapsed.as_secs_f64()
    }
}

/// Closed-loop updates for `seconds` by 4 workers (or
/// CHANGEGATE_BENCH_WORKERS), each sending the next update to its own
/// Deployment as soon as the last one returns.
async fn closed_loop(client: &kube::Client, ns: &str, seconds: u64) -> Done {
    use kube::api::{Api, Patch, PatchParams};
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let workers: u32 = std::env::var("CHANGEGATE_BENCH_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(4);
    for worker in 0..workers {
        let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), ns);
        let name = deployment_name(worker);
        tasks.spawn(async move {
            let (mut done, mut i) = (0u32, worker);
            while started.elapsed() < Duration::from_secs(seconds) {
                i += workers;
                if api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(patch_for(i)))
                    .await
                    .is_ok()
                {
                    done += 1;
                }
            }
            done
        });
    }
    let mut updates = 0;
    while let Some(Ok(done)) = tasks.join_next().await {
        updates += done;
    }
    Done {
        updates,
        elapsed: started.elapsed(),
    }
}

/// CPU time so far, in clock ticks: the whole machine (busy and idle, from
/// /proc/stat), the local kube-apiserver and the operator (from their pid
/// files under .cluster/).
struct Cpu {
    busy: u64,
    idle: u64,
    apiserver: u64,
    operator: u64,
}

struct CpuPerUpdate {
    machine_ms: f64,
    apiserver_ms: f64,
    operator_ms: f64,
    idle_pct: f64,
}

impl Cpu {
    fn now() -> Cpu {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let ticks: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|t| t.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal ...
        let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
        let busy = ticks.iter().take(8).sum::<u64>() - idle;
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/.cluster");
        Cpu {
            busy,
            idle,
            apiserver: process_ticks(&format!("{dir}/run/kube-apiserver.pid")),
            operator: process_ticks(&format!("{dir}/operator.pid")),
        }
    }

    fn since(&self, before: &Cpu, updates: u32) -> CpuPerUpdate {
        // Clock ticks are 1/100 s on Linux.
        let per_update =
            |a: u64, b: u64| 10.0 * a.saturating_sub(b) as f64 / f64::from(updates.max(1));
        let (busy, idle) = (self.busy - before.busy, self.idle - before.idle);
        CpuPerUpdate {
            machine_ms: per_update(self.busy, before.busy),
            apiserver_ms: per_update(self.apiserver, before.apiserver),
            operator_ms: per_update(self.operator, before.operator),
            idle_pct: 100.0 * idle as f64 / (busy + idle).max(1) as f64,
        }
    }
}

/// utime + stime of the process whose pid is in `pid_file`; 0 if unknown.
fn process_ticks(pid_file: &str) -> u64 {
    let Some(pid) = std::fs::read_to_string(pid_file).ok() else {
        return 0;
    };
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// "median (min-max)" of the values, with a unit.
fn spread(values: &mut [f64], unit: &str) -> String {
    values.sort_by(f64::total_cmp);
    let (Some(min), Some(max)) = (values.first(), values.last()) else {
        return "none".into();
    };
    format!(
        "{:.1}{unit} ({min:.1}-{max:.1}{unit})",
        values[values.len() / 2]
    )
}

/// The binary's client commands against the server `make up` started.
struct Cli {
    bin: String,
    root: &'static str,
    eve: String,
    carol: String,
}

impl Cli {
    fn run(&self, token: &str, args: &[&str]) -> String {
        let out = std::process::Command::new(&self.bin)
            .args(args)
            .env("CHANGEGATE_SERVER", "http://127.0.0.1:9180")
            .env(
                "CHANGEGATE_DATA_DIR",
                format!("{}/.cluster/server/data", self.root),
            )
            .env("CHANGEGATE_TOKEN", token.trim())
            .output()
            .expect("run changegate");
        assert!(
            out.status.success(),
            "changegate {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Eve raises and submits a change shipping `image` to the bench
    /// Deployments; its number.
    fn raise(&self, image: &str) -> String {
        let mut args = vec![
            "change",
            "create",
            "--tenant",
            "bench",
            "--title",
            "benchmark",
            "--ci",
            "bench",
            "--artifact",
            image,
        ];
        for answer in ["production=no", "outage=no", "untested=no", "no-backout=no"] {
            args.extend(["--risk", answer]);
        }
        let created = self.run(&self.eve, &args);
        let number = created
            .split_whitespace()
            .next()
            .expect("number")
            .to_string();
        self.run(
            &self.eve,
            &["change", "submit", &number, "--tenant", "bench"],
        );
        number
    }

    fn approve(&self, number: &str) {
        self.run(
            &self.carol,
            &["change", "approve", number, "--tenant", "bench"],
        );
    }
}

/// Sets up tenant `bench` on the server `make up` started and approves a
/// change shipping [`BENCH_IMAGE`], through the binary's client commands.
fn approve_on_the_server(enforcement: &str, window_start: &str, window_end: &str) -> Cli {
    let root = env!("CARGO_MANIFEST_DIR");
    let bin = std::env::var("CHANGEGATE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_changegate").to_string());
    let admin = std::fs::read_to_string(format!("{root}/.cluster/server/admin-token"))
        .expect("the admin token of `make up`");
    let yaml = format!(
        "kind: Tenant\nslug: bench\nname: Bench\ntimeZone: UTC\n---\n\
         kind: User\ntenant: bench\nemail: eve@bench.example\nname: Eve\nroles: [requester]\n---\n\
         kind: User\ntenant: bench\nemail: carol@bench.example\nname: Carol\nroles: [business-approver]\n---\n\
         kind: Board\ntenant: bench\nname: client\nspec: {{ members: [role:business-approver], rule: any }}\n---\n\
         kind: Policy\ntenant: bench\nspec:\n  enforcement: {enforcement}\n  routing: {{ normal: [ {{ from: low, boards: [client] }} ] }}\n  windowRequired: [normal]\n---\n\
         kind: Window\ntenant: bench\nname: bench-open\nspec: {{ timeZone: UTC, schedule: {{ ranges: [ {{ start: \"{window_start}\", end: \"{window_end}\" }} ] }} }}\n---\n\
         kind: ConfigurationItem\ntenant: bench\nname: bench\nspec: {{ kind: kubernetes-workload, enforcement: {{ kubernetes: \
         {{ cluster: local, namespace: bench-gated, kind: Deployment, selector: {{ app: bench }} }} }} }}\n"
    );
    let mut cli = Cli {
        bin,
        root,
        eve: String::new(),
        carol: String::new(),
    };
    let file = std::env::temp_dir().join(format!("changegate-bench-{}.yaml", std::process::id()));
    std::fs::write(&file, yaml).expect("write the tenant");
    cli.run(&admin, &["apply", "-f", &file.to_string_lossy()]);
    let _ = std::fs::remove_file(&file);
    cli.eve = cli.run(&admin, &["admin", "token", "eve@bench.example"]);
    cli.carol = cli.run(&admin, &["admin", "token", "carol@bench.example"]);
    let number = cli.raise(BENCH_IMAGE);
    cli.approve(&number);
    cli
}

/// Approval -> admitted on the agent, `rounds` times: a change for a new
/// image is raised and submitted, then approved; from the approval's
/// answer until a dry-run update of a bench Deployment to that image is
/// admitted (the agent long-polls the bundle; nothing else tells it).
async fn approval_to_admission(client: &kube::Client, cli: &Cli, rounds: usize) {
    use kube::api::{Api, Patch, PatchParams};
    let api: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "bench-gated");
    let params = PatchParams {
        dry_run: true,
        ..PatchParams::default()
    };
    let mut waits = Vec::new();
    let mut refused_before = 0;
    for i in 0..rounds {
        let image = format!("example.com/bench:approved-{i}");
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
        let number = cli.raise(&image);
        if api
            .patch(&deployment_name(0), &params, &Patch::Strategic(&patch))
            .await
            .is_err()
        {
            refused_before += 1;
        }
        cli.approve(&number);
        let approved = Instant::now();
        loop {
            if api
                .patch(&deployment_name(0), &params, &Patch::Strategic(&patch))
                .await
                .is_ok()
            {
                waits.push(approved.elapsed());
                break;
            }
            assert!(
                approved.elapsed() < Duration::from_secs(30),
                "{image} not admitted 30 s after {number} was approved"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    waits.sort_unstable();
    let at = |p: f64| waits[((waits.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0;
    println!(
        "approval -> admitted on the agent, {rounds} changes: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms \
         (target p99 <= 2 s); refused before approval: {refused_before} of {rounds}",
        at(0.5),
        at(0.99),
        at(1.0)
    );
}
