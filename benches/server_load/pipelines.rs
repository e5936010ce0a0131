//! The waiting-pipelines phase of `server_load`: pipelines ask the gate
//! with `wait` (`POST /api/v1/gate/check`, as `changegate gate check
//! --wait` does) for content a change awaiting approval ships, and hold
//! their request open until it is approved.
//!
//! 1. One pipeline per tenant (100) waits; the tenants' changes are then
//!    approved one after another: approval → its pipeline's check answers
//!    `allow`, p50/p99 (target p99 <= 1 s), from when the approval was
//!    asked and from when it was recorded (its answer).
//! 2. [`PER_TENANT`] pipelines per tenant (1,000) wait at once: the
//!    server's CPU and RSS while they wait; then all 100 approvals at
//!    once (a burst, whose writes queue), and how long after each
//!    approval every pipeline waiting for it went on.
//!
//! The server counts its waiting checks (`changegate_gate_checks_waiting`
//! on `/metrics`); each round starts once that count says all wait.

use changegate_core::{Email, UserKind};
use changegate_store::{NewUser, Store, TokenScope};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use super::{Fixture, Server, env_number, ms, percentile, print_errors};

/// Pipelines per tenant in the second round.
const PER_TENANT: usize = 10;

/// What a pipeline's check ended with: its tenant, the verdict, when.
type Answer = (usize, Result<String, String>, Instant);

pub async fn run(name: &str, store: &Arc<dyn Store>, server: &Server, tenants: &Arc<Vec<Fixture>>) {
    let admin = admin_token(store.as_ref()).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(90))
        .build()
        .expect("an HTTP client");
    round(name, &client, &admin, server, tenants, 0, 1, false).await;
    round(name, &client, &admin, server, tenants, 1, PER_TENANT, true).await;
}

/// `per_tenant` pipelines of every tenant wait for the tenant's
/// `tenants[i].pipeline_changes[change]`, which is then approved.
#[allow(clippy::too_many_arguments)]
async fn round(
    name: &str,
    client: &reqwest::Client,
    admin: &str,
    server: &Server,
    tenants: &Arc<Vec<Fixture>>,
    change: usize,
    per_tenant: usize,
    measure_idle: bool,
) {
    // The small round approves one by one; the large one all at once.
    let one_by_one = !measure_idle;
    let pipelines = per_tenant * tenants.len();
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (tx, mut rx) = mpsc::unbounded_channel::<Answer>();
    let mut tasks = Vec::new();
    for (i, t) in tenants.iter().enumerate() {
        let (number, artifact) = &t.pipeline_changes[change];
        for _ in 0..per_tenant {
            let request = client
                .post(format!("{}/api/v1/gate/check", server.url))
                .bearer_auth(&t.token)
                .json(
                    &json!({"tenant": t.slug, "target": {"pipeline": {"environment": "production"}},
                              "artifacts": [artifact], "wait": 60}),
                );
            let tx = tx.clone();
            let number = *number;
            tasks.push(tokio::spawn(async move {
                let outcome = match request.send().await {
                    Ok(r) if r.status() == reqwest::StatusCode::OK => {
                        match r.json::<Value>().await {
                            Ok(v) if v["change"] == format!("CHG-{number}") => {
                                Ok(v["verdict"].as_str().unwrap_or_default().to_string())
                            }
                            Ok(v) => Err(format!("answered for another change: {v}")),
                            Err(e) => Err(format!("unreadable answer: {e}")),
                        }
                    }
                    Ok(r) => Err(format!("{}", r.status())),
                    Err(e) => Err(format!("request failed: {e}")),
                };
                let _ = tx.send((i, outcome, Instant::now()));
            }));
        }
    }
    drop(tx);
    let waiting = until_waiting(client, admin, &server.url, pipelines).await;

    let mut idle = String::new();
    if measure_idle {
        let window = Duration::from_secs(env_number("CHANGEGATE_BENCH_IDLE_SECONDS", 10));
        let cpu = server.cpu_seconds();
        tokio::time::sleep(window).await;
        let idle_cpu = (server.cpu_seconds() - cpu) / window.as_secs_f64();
        let memory = server.memory();
        idle = format!(
            "; waiting {:.0} s: server CPU {:.1} %, RSS {:.1} MiB",
            window.as_secs_f64(),
            idle_cpu * 100.0,
            memory.rss_mib
        );
    }

    // The first round approves one change after another, the second all
    // at once.
    let burst = Instant::now();
    let cpu = server.cpu_seconds();
    let approve = |t: &Fixture| {
        let number = format!("CHG-{}", t.pipeline_changes[change].0);
        let decide = client
            .post(format!(
                "{}/api/v1/tenants/{}/changes/{number}/decisions",
                server.url, t.slug
            ))
            .bearer_auth(&t.token)
            .json(&json!({ "decision": "approve", "revision": 1 }));
        async move {
            let asked = Instant::now();
            let outcome = match decide.send().await {
                Ok(r) if r.status() == reqwest::StatusCode::OK => Ok(()),
                Ok(r) => Err(format!("decide {number}: {}", r.status())),
                Err(e) => Err(format!("decide {number}: {e}")),
            };
            (asked, Instant::now(), outcome)
        }
    };
    // Per tenant: when its approval was asked, and when it was recorded.
    let mut asked: HashMap<usize, (Instant, Instant)> = HashMap::new();
    let mut outcomes = Vec::new();
    if one_by_one {
        for (i, t) in tenants.iter().enumerate() {
            let (a, r, outcome) = approve(t).await;
            asked.insert(i, (a, r));
            outcomes.push(outcome);
        }
    } else {
        let all = tenants.iter().map(approve).collect::<Vec<_>>();
        for (i, (a, r, outcome)) in futures::future::join_all(all).await.into_iter().enumerate() {
            asked.insert(i, (a, r));
            outcomes.push(outcome);
        }
    }
    for outcome in outcomes {
        if let Err(e) = outcome {
            errors.lock().expect("errors").push(e);
        }
    }
    let mut latencies = Vec::with_capacity(pipelines);
    let mut after_record = Vec::with_capacity(pipelines);
    let mut last_of: HashMap<usize, Duration> = HashMap::new();
    let mut allowed = 0;
    while let Some((tenant, outcome, at)) = rx.recv().await {
        match outcome {
            Ok(verdict) => {
                let (asked_at, recorded_at) = asked[&tenant];
                let took = at.saturating_duration_since(asked_at);
                latencies.push(took);
                after_record.push(at.saturating_duration_since(recorded_at));
                let last = last_of.entry(tenant).or_default();
                *last = (*last).max(took);
                if verdict == "allow" {
                    allowed += 1;
                } else {
                    errors.lock().expect("errors").push(format!(
                        "a pipeline of tenant {tenant} was answered {verdict}"
                    ));
                }
            }
            Err(e) => errors.lock().expect("errors").push(e),
        }
    }
    let burst_took = burst.elapsed();
    let burst_cpu = (server.cpu_seconds() - cpu) / burst_took.as_secs_f64();
    let memory = server.memory();
    for t in tasks {
        t.abort();
    }
    let mut every: Vec<Duration> = last_of.into_values().collect();
    println!(
        "server_load {name}: pipelines {pipelines} waiting on the gate ({per_tenant} per tenant, `wait` 60 s), \
         {waiting} counted waiting by the server{idle}; {} approvals {}: approval asked -> a waiting check answers \
         p50 {}, p99 {} (target p99 <= 1 s); approval recorded -> it answers p50 {}, p99 {}; \
         approval asked -> every pipeline of its tenant p50 {}, p99 {}; {allowed}/{pipelines} \
         allowed; approvals took {:.1} s, CPU {:.1} %, RSS {:.1} MiB (peak {:.1} MiB)",
        tenants.len(),
        if one_by_one {
            "one after another"
        } else {
            "at once"
        },
        ms(percentile(&mut latencies.clone(), 0.50)),
        ms(percentile(&mut latencies, 0.99)),
        ms(percentile(&mut after_record.clone(), 0.50)),
        ms(percentile(&mut after_record, 0.99)),
        ms(percentile(&mut every.clone(), 0.50)),
        ms(percentile(&mut every, 0.99)),
        burst_took.as_secs_f64(),
        burst_cpu * 100.0,
        memory.rss_mib,
        memory.hwm_mib,
    );
    print_errors(name, &errors.lock().expect("errors"));
}

/// Until the server counts `wanted` waiting checks (at most 60 s);
/// returns the count it reached.
async fn until_waiting(client: &reqwest::Client, admin: &str, base: &str, wanted: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    while Instant::now() < deadline {
        if let Ok(r) = client
            .get(format!("{base}/metrics"))
            .bearer_auth(admin)
            .send()
            .await
            && let Ok(text) = r.text().await
        {
            seen = text
                .lines()
                .find_map(|l| l.strip_prefix("changegate_gate_checks_waiting "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if seen >= wanted {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

/// An installation administrator's token: `/metrics` is theirs.
async fn admin_token(store: &dyn Store) -> String {
    let admin = store
        .create_user(
            NewUser {
                email: Email::parse("bench-admin@msp.example").expect("a valid e-mail"),
                name: "Bench admin".into(),
                kind: UserKind::Msp,
                admin: true,
                tenant: None,
                password_hash: None,
            },
            &[],
            "bench",
            chrono::Utc::now(),
        )
        .await
        .expect("admin created");
    let (token, hash) = changegate_web::auth::new_token();
    store
        .create_token(
            admin.id,
            "bench admin",
            &hash,
            &TokenScope::Full,
            chrono::Utc::now(),
        )
        .await
        .expect("token stored");
    token
}
