//! The workload admission decision with 1,000 changes and 100 windows in the
//! tenant (target: p99 <= 200 µs on one core). Criterion reports the mean;
//! a plain loop afterwards prints p50/p99 from per-call timings.

use changegate_agent::admission::{Operation, TenantView, WorkloadRequest, decide};
use changegate_agent::api::{
    ChangePolicySpec, ChangeRequest, MaintenanceWindowSpec, Release, WorkloadKind,
};
use changegate_agent::window::CompiledWindow;
use chrono::{DateTime, Duration, Utc};
use criterion::Criterion;
use serde_json::{Value, json};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

const NS: &str = "client-a-prod";

struct Fixture {
    policy: ChangePolicySpec,
    windows: Vec<Arc<CompiledWindow>>,
    changes: Vec<Arc<ChangeRequest>>,
    releases: Vec<Arc<Release>>,
    old: Value,
    new: Value,
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

fn fixture(now: DateTime<Utc>) -> Fixture {
    let policy: ChangePolicySpec = serde_json::from_value(json!({
        "tenants": ["client-a"],
        "approvals": {"normal": [{"group": "client-a:approvers", "count": 1}]},
        "riskRouting": [{"minRisk": "High", "require": [{"group": "msp:cab", "count": 1}]}]
    }))
    .expect("policy");
    let zones = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"];
    let windows = (0..100)
        .map(|i| {
            let schedule = match i % 3 {
                0 => json!({"cron": format!("{} {} * * {}", i % 60, i % 24, ["SAT", "SUN", "WED"][i % 3]), "duration": "2h"}),
                1 => json!({"rrule": format!("FREQ=MONTHLY;BYDAY={}TU;BYHOUR=22;BYMINUTE=0;BYSECOND=0", 1 + i % 4), "duration": "3h"}),
                _ => json!({"ranges": [{"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z"}]}),
            };
            let tenants = if i % 10 == 0 { json!([]) } else { json!([format!("tenant-{i}"), "client-a"]) };
            let mut spec = json!({"tenants": tenants, "timeZone": zones[i % 4], "schedule": schedule});
            if i % 25 == 24 {
                spec["type"] = json!("Blackout");
                spec["allowTypes"] = json!(["Emergency"]);
                spec["schedule"] = json!({"ranges": [{"start": "2027-06-01T00:00:00Z", "end": "2027-06-02T00:00:00Z"}]});
            }
            let spec: MaintenanceWindowSpec = serde_json::from_value(spec).expect("window");
            Arc::new(
                changegate_agent::window::compile(&format!("window-{i}"), &spec)
                    .expect("compiles")
                    .prepared(now - Duration::days(2), now + Duration::days(400)),
            )
        })
        .collect();
    let changes = (0..1000)
        .map(|i| {
            let target = if i == 998 { "payments-api".to_string() } else { format!("svc-{i}") };
            let status = if i % 2 == 0 {
                json!({"approvals": [{"decision": "Approved", "approver": "alice", "groups": ["client-a:approvers"], "at": "2026-11-20T10:00:00Z"}]})
            } else {
                json!({})
            };
            Arc::new(
                serde_json::from_value(json!({
                    "apiVersion": "changegate.dev/v1alpha1", "kind": "ChangeRequest",
                    "metadata": {"name": format!("chg-{i:04}"), "namespace": NS, "creationTimestamp": "2026-11-20T09:00:00Z",
                                 "annotations": {"changegate.dev/requested-by": "bob"}},
                    "spec": {"type": "Normal", "title": "t", "risk": "Medium",
                             "targets": [{"kind": "Deployment", "name": target}, {"kind": "Deployment", "selector": {"matchLabels": {"app": format!("a{i}")}}}]},
                    "status": status
                }))
                .expect("change"),
            )
        })
        .collect();
    let deployment = |image: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "payments-api", "namespace": NS, "labels": {"app": "payments"}},
               "spec": {"replicas": 3, "template": {"metadata": {"labels": {"app": "payments"}},
                        "spec": {"containers": [{"name": "app", "image": image, "env": [{"name": "A", "value": "1"}]}]}}}})
    };
    Fixture {
        policy,
        windows,
        changes,
        releases: Vec::new(),
        old: deployment("r/p:1"),
        new: deployment("r/p:2"),
    }
}

fn run(f: &Fixture, now: DateTime<Utc>) -> bool {
    let req = WorkloadRequest {
        operation: Operation::Update,
        kind: WorkloadKind::Deployment,
        namespace: NS,
        name: "payments-api",
        old: Some(&f.old),
        new: Some(&f.new),
    };
    let view = TenantView {
        tenant: "client-a",
        policy: Some(&f.policy),
        windows: &f.windows,
        changes: &f.changes,
        releases: &f.releases,
    };
    decide(black_box(&req), black_box(&view), now).allowed
}

fn percentiles(name: &str, f: &Fixture, now: DateTime<Utc>) {
    let mut samples: Vec<u128> = (0..5_000)
        .map(|_| {
            let start = Instant::now();
            black_box(run(f, now));
            start.elapsed().as_nanos()
        })
        .collect();
    samples.sort_unstable();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0;
    println!(
        "{name}: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs over {} calls",
        pct(0.50),
        pct(0.99),
        pct(1.0),
        samples.len()
    );
}

fn main() {
    // Sunday noon: every window closed, so a denial searches for the next opening.
    let closed = at("2026-11-22T12:00:00Z");
    let f = fixture(closed);
    assert!(
        !run(&f, closed),
        "the fixture must be denied when windows are closed"
    );
    let open = f.windows[0]
        .next_window(closed)
        .expect("window-0 opens")
        .start
        + Duration::minutes(1);
    assert!(
        run(&f, open),
        "the fixture must be admitted inside window-0"
    );

    let mut c = Criterion::default().configure_from_args();
    c.bench_function(
        "admission decision: 1000 changes, 100 windows, admitted",
        |b| b.iter(|| run(&f, open)),
    );
    c.bench_function(
        "admission decision: 1000 changes, 100 windows, denied (next window)",
        |b| b.iter(|| run(&f, closed)),
    );
    c.final_summary();

    percentiles("admitted", &f, open);
    percentiles("denied with next window", &f, closed);
}
