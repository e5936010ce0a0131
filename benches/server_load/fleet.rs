//! The fleet phase of `server_load`: [`AGENTS`] simulated agents (each
//! tenant's cluster runs `AGENTS / TENANTS` replicas sharing one agent
//! token) long-poll the server for their bundles, as `changegate agent`
//! does (`If-None-Match`, `wait=25`). Prints the server's CPU and RSS
//! while they wait, then during a burst of one approval per tenant, and
//! how long after each approval was asked for every agent of its cluster
//! had it approved in its bundle (p50, p99; target p99 <= 2 s).

use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_NONE_MATCH};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use super::{Fixture, Server, TENANTS, env_number, ms, percentile, print_errors};

/// The configuration item the agents enforce, one per tenant.
pub const ITEM: &str = "payments-web";

/// The cluster of tenant `i`.
pub fn cluster_of(i: usize) -> String {
    format!("fleet-{i:03}")
}

/// What an agent saw: its tenant index, the change now approved, when.
type Seen = (usize, String, Instant);

pub async fn run(name: &str, server: &Server, tenants: &Arc<Vec<Fixture>>) {
    let agents = env_number("CHANGEGATE_BENCH_AGENTS", 1_000) as usize;
    let replicas = agents.div_ceil(TENANTS);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client");
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<Seen>();
    let ready = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for a in 0..agents {
        let tenant = a % TENANTS;
        tasks.push(tokio::spawn(agent(
            client.clone(),
            server.url.clone(),
            tenants[tenant].agent_token.clone(),
            tenant,
            seen_tx.clone(),
            ready.clone(),
            errors.clone(),
        )));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while ready.load(Ordering::Relaxed) < agents && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connected = ready.load(Ordering::Relaxed);

    // Idle: every agent holds a long-poll open.
    let idle_window = Duration::from_secs(env_number("CHANGEGATE_BENCH_IDLE_SECONDS", 10));
    let cpu = server.cpu_seconds();
    tokio::time::sleep(idle_window).await;
    let idle_cpu = (server.cpu_seconds() - cpu) / idle_window.as_secs_f64();
    let idle_rss = server.memory().rss_mib;
    while seen_rx.try_recv().is_ok() {}

    // The burst: every tenant's fleet change approved at once.
    let burst_started = Instant::now();
    let cpu = server.cpu_seconds();
    let mut asked: HashMap<(usize, String), Instant> = HashMap::new();
    let mut decisions = Vec::new();
    for (i, t) in tenants.iter().enumerate() {
        let number = format!("CHG-{}", t.fleet_change);
        asked.insert((i, number.clone()), Instant::now());
        let decide = client
            .post(format!(
                "{}/api/v1/tenants/{}/changes/{number}/decisions",
                server.url, t.slug
            ))
            .bearer_auth(&t.token)
            .json(&json!({ "decision": "approve", "revision": 1 }));
        decisions.push(tokio::spawn(async move {
            let started = Instant::now();
            match decide.send().await {
                Ok(r) if r.status() == StatusCode::OK => Ok(started.elapsed()),
                Ok(r) => Err(format!("decide {number}: {}", r.status())),
                Err(e) => Err(format!("decide {number}: {e}")),
            }
        }));
    }
    let mut decided = Vec::new();
    for d in decisions {
        match d.await.expect("a decision finished") {
            Ok(took) => decided.push(took),
            Err(e) => errors.lock().expect("errors").push(e),
        }
    }
    // Every (approval, agent) pair, until all arrived or 30 s passed.
    let wanted = asked.len() * replicas;
    let mut arrivals: HashMap<(usize, String), Vec<Duration>> = HashMap::new();
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got < wanted {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, seen_rx.recv()).await {
            Ok(Some((tenant, number, at))) => {
                let key = (tenant, number);
                if let Some(&start) = asked.get(&key) {
                    arrivals
                        .entry(key)
                        .or_default()
                        .push(at.saturating_duration_since(start));
                    got += 1;
                }
            }
            _ => break,
        }
    }
    let burst = burst_started.elapsed();
    let burst_cpu = (server.cpu_seconds() - cpu) / burst.as_secs_f64();
    let burst_memory = server.memory();
    // An approval reached its cluster when its last agent had it.
    let mut every: Vec<Duration> = arrivals
        .values()
        .filter(|v| v.len() == replicas)
        .filter_map(|v| v.iter().max().copied())
        .collect();
    let complete = every.len();
    for t in tasks {
        t.abort();
    }
    println!(
        "server_load {name}: fleet {agents} agents ({TENANTS} clusters x {replicas}) long-polling, {connected} connected: \
         idle {:.0} s: server CPU {:.1} %, RSS {:.1} MiB; burst of {} approvals: {:.1} s, CPU {:.1} %, RSS {:.1} MiB \
         (peak {:.1} MiB); the approvals answered p50 {}, p99 {}; \
         approval -> every agent of its cluster has it: p50 {}, p99 {} (target <= 2 s), \
         {complete}/{} complete, {got}/{wanted} deliveries",
        idle_window.as_secs_f64(),
        idle_cpu * 100.0,
        idle_rss,
        asked.len(),
        burst.as_secs_f64(),
        burst_cpu * 100.0,
        burst_memory.rss_mib,
        burst_memory.hwm_mib,
        ms(percentile(&mut decided.clone(), 0.50)),
        ms(percentile(&mut decided, 0.99)),
        ms(percentile(&mut every.clone(), 0.50)),
        ms(percentile(&mut every, 0.99)),
        asked.len(),
    );
    print_errors(name, &errors.lock().expect("errors"));
}

/// One agent: long-polls its bundle and says when a change first shows
/// approved in it.
async fn agent(
    client: reqwest::Client,
    base: String,
    token: String,
    tenant: usize,
    seen: mpsc::UnboundedSender<Seen>,
    ready: Arc<AtomicUsize>,
    errors: Arc<std::sync::Mutex<Vec<String>>>,
) {
    let mut etag: Option<String> = None;
    let mut approved: HashSet<String> = HashSet::new();
    loop {
        let mut request = client
            .get(format!("{base}/api/v1/agent/bundle?wait=25"))
            .bearer_auth(&token);
        if let Some(e) = &etag {
            request = request.header(IF_NONE_MATCH, e);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                errors.lock().expect("errors").push(format!("bundle: {e}"));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        match response.status() {
            StatusCode::NOT_MODIFIED => continue,
            StatusCode::OK => {}
            other => {
                errors
                    .lock()
                    .expect("errors")
                    .push(format!("bundle: {other}"));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        }
        let first = etag.is_none();
        etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let Ok(bundle) = response.json::<Value>().await else {
            errors
                .lock()
                .expect("errors")
                .push("bundle: unreadable".into());
            continue;
        };
        let at = Instant::now();
        for change in bundle["tenants"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|t| t["changes"].as_array().into_iter().flatten())
        {
            if change["state"] == "approved"
                && let Some(number) = change["number"].as_str()
                && approved.insert(number.to_string())
            {
                let _ = seen.send((tenant, number.to_string(), at));
            }
        }
        if first {
            ready.fetch_add(1, Ordering::Relaxed);
        }
    }
}
