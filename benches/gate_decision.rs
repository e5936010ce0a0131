//! The pure gate decision (`changegate_core::gate`) with 1,000 approved
//! changes and 100 windows in the tenant, as the gate API and the agent
//! ask it (target: p99 <= 200 µs). Prints p50/p99 from per-call timings
//! for an allowed request, a content mismatch, a closed window (which
//! searches for the next opening) and an ungoverned target, and the time
//! to build the tenant's gate from its records.

use changegate_core::ChangeNumber;
use changegate_core::catalogue::ConfigurationItem;
use changegate_core::change::{ChangeState, ChangeType};
use changegate_core::gate::{GateChange, Target, TenantGate, Verdict, Workload};
use changegate_core::policy::PolicySpec;
use changegate_core::window::{CompiledWindow, WindowSpec};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

const CHANGES: usize = 1_000;
const WINDOWS: usize = 100;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("time").to_utc()
}

fn windows(now: DateTime<Utc>) -> Vec<Arc<CompiledWindow>> {
    let zones = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"];
    (0..WINDOWS)
        .map(|i| {
            let schedule = match i % 3 {
                0 => json!({"cron": {"expr": format!("{} {} * * {}", i % 60, i % 24, ["SAT", "SUN", "WED"][i % 3]), "duration": "2h"}}),
                1 => json!({"rrule": {"rule": format!("FREQ=MONTHLY;BYDAY={}TU;BYHOUR=22;BYMINUTE=0;BYSECOND=0", 1 + i % 4), "duration": "3h"}}),
                _ => json!({"ranges": [{"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z"}]}),
            };
            let mut spec = json!({"timeZone": zones[i % 4], "schedule": schedule});
            if i % 25 == 24 {
                spec["kind"] = json!("blackout");
                spec["allowTypes"] = json!(["emergency"]);
                spec["schedule"] = json!({"ranges": [{"start": "2027-06-01T00:00:00Z", "end": "2027-06-02T00:00:00Z"}]});
            }
            let spec: WindowSpec = serde_json::from_value(spec).expect("window");
            Arc::new(
                CompiledWindow::compile(&format!("window-{i}"), &spec)
                    .expect("compiles")
                    .prepared(now - Duration::days(2), now + Duration::days(400)),
            )
        })
        .collect()
}

fn workload(name: &str) -> Target {
    Target::Workload(Workload {
        cluster: "prod".into(),
        namespace: "client-a-prod".into(),
        kind: "Deployment".into(),
        name: name.into(),
        labels: Default::default(),
    })
}

fn digest(i: usize) -> String {
    format!("registry.example/app-{i}@sha256:{i:064x}")
}

fn gate(now: DateTime<Utc>) -> TenantGate {
    // One workload item per change, every fifth change also on a shared
    // database item, so candidates come from the index, not a scan.
    let items = (0..CHANGES).map(|i| {
        let item: ConfigurationItem = serde_json::from_value(json!({
            "kind": "kubernetes-workload",
            "enforcement": {"kubernetes": {"cluster": "prod", "namespace": "client-a-prod",
                                           "kind": "Deployment", "name": format!("app-{i}")}}
        }))
        .expect("item");
        (format!("app-{i}"), item)
    });
    let changes = (0..CHANGES)
        .map(|i| GateChange {
            number: ChangeNumber(i as i64 + 1),
            kind: ChangeType::Normal,
            state: ChangeState::Approved,
            configuration_items: if i % 5 == 0 {
                vec![format!("app-{i}"), "shared-db".into()]
            } else {
                vec![format!("app-{i}")]
            },
            artifacts: vec![digest(i)],
            fingerprint: Some(format!("sha256:{i:064x}")),
            planned_start: None,
            planned_end: None,
            awaiting: Vec::new(),
            automatic_rollback: false,
            approval_expires_at: None,
            awaiting_acceptance: None,
        })
        .collect();
    TenantGate::new(
        "client-a",
        &PolicySpec::default(),
        items,
        windows(now),
        changes,
    )
}

fn percentiles(name: &str, mut call: impl FnMut() -> Verdict, expected: Verdict) {
    assert_eq!(call(), expected, "{name}: the fixture decides as expected");
    let mut samples: Vec<u128> = (0..5_000)
        .map(|_| {
            let start = Instant::now();
            black_box(call());
            start.elapsed().as_nanos()
        })
        .collect();
    samples.sort_unstable();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0;
    println!(
        "gate decision, {CHANGES} approved changes, {WINDOWS} windows, {name}: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs over {} calls",
        pct(0.50),
        pct(0.99),
        pct(1.0),
        samples.len()
    );
}

fn main() {
    // Sunday noon: every window is closed, so a denial searches for the next opening.
    let closed = at("2026-11-22T12:00:00Z");
    let started = Instant::now();
    let g = gate(closed);
    println!(
        "gate built from {CHANGES} changes and {WINDOWS} windows in {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    // A minute into window-0's next opening: a maintenance window is open.
    let open = windows(closed)[0]
        .next_window(closed)
        .expect("window-0 opens")
        .start
        + Duration::minutes(1);

    let target = workload("app-500");
    let approved = [digest(500)];
    let other = ["registry.example/app-500@sha256:ffff".to_string()];
    let ungoverned = workload("not-bound");
    percentiles(
        "allowed",
        || {
            black_box(&g)
                .check(black_box(&target), &approved, open)
                .verdict
        },
        Verdict::Allow,
    );
    percentiles(
        "denied (content)",
        || {
            black_box(&g)
                .check(black_box(&target), &other, open)
                .verdict
        },
        Verdict::Deny,
    );
    percentiles(
        "denied (next window)",
        || {
            black_box(&g)
                .check(black_box(&target), &approved, closed)
                .verdict
        },
        Verdict::Deny,
    );
    percentiles(
        "not governed",
        || {
            black_box(&g)
                .check(black_box(&ungoverned), &approved, open)
                .verdict
        },
        Verdict::Allow,
    );
}
