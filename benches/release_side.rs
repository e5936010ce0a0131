//! The release side of the server on the embedded database, in process
//! (the real router and handlers; timings are server time):
//!
//! - the calendar of 100 tenants over one year holding 100,000 changes:
//!   a tenant's month and a tenant's whole year (target p99 <= 100 ms);
//! - a release of 10 tenants' changes: its conflicts and the next free
//!   slot every tenant allows (target p99 <= 50 ms);
//! - the evidence export of one tenant with 100,000 changes, 100,000
//!   approvals and a 300,000-event audit chain, as a bundle (targets
//!   <= 10 s, peak memory <= 200 MiB);
//! - the scheduler's delay after a window boundary (target p99 <= 1 s).
//!
//! Each change is implemented by one of 100 engineers (about three hours
//! booked a day each, across the clients), so conflicts and the slot
//! search see implementers booked elsewhere.
//!
//! The records are written in bulk behind the store's back (the API's
//! own write path is measured by `server_load`); the chain is sealed with
//! `core::audit::seal`, so the export verifies it for real.

use changegate_core::approval::ApprovalPlan;
use changegate_core::audit::{self, EventBody, GENESIS};
use changegate_core::{ChangeNumber, Slug, TenantId};
use changegate_store::{ChangeContent, NewRelease, NewTenant, ObjectKind, ReleaseItem, Store};
use changegate_testkit::TestApp;
use changegate_testkit::db::TestDb;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use std::time::{Duration, Instant};

const TENANTS: usize = 100;
const CHANGES_PER_TENANT: usize = 1_000;
const EXPORT_CHANGES: usize = 100_000;

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let r = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[r - 1]
}

fn report(what: &str, mut t: Vec<Duration>) {
    t.sort();
    println!(
        "{what}: n={} p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        t.len(),
        percentile(&t, 0.5).as_secs_f64() * 1e3,
        percentile(&t, 0.99).as_secs_f64() * 1e3,
        t.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn tenant(store: &dyn Store, slug: &str) -> TenantId {
    store
        .create_tenant(
            NewTenant {
                slug: Slug::parse(slug).expect("slug"),
                name: slug.to_uppercase(),
                time_zone: "Europe/Berlin".into(),
            },
            "bench",
            changegate_testkit::start_of_tests(),
        )
        .await
        .expect("tenant")
        .id
}

/// `n` changes of `tenant` in one statement per 1,000, planned across 2027.
async fn bulk_changes(
    db: &TestDb,
    tenant: TenantId,
    first_id: i64,
    n: usize,
    requester: i64,
    implementers: &[i64],
    approved: bool,
) {
    let plan = serde_json::to_string(&ApprovalPlan::default()).expect("plan");
    let start_of_year = Utc
        .with_ymd_and_hms(2027, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid time");
    let created = Utc
        .with_ymd_and_hms(2026, 11, 2, 9, 0, 0)
        .single()
        .expect("a valid time");
    for chunk in (0..n).collect::<Vec<_>>().chunks(1_000) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|&i| {
                let id = first_id + i as i64;
                let start = start_of_year + TimeDelta::minutes((i as i64 * 525_600 / n as i64) / 60 * 60);
                let content = ChangeContent {
                    title: format!("Change {id}"),
                    configuration_items: vec![format!("ci-{}", i % 5)],
                    planned_start: Some(start),
                    planned_end: Some(start + TimeDelta::hours(1)),
                    test_evidence: "green".into(),
                    ..ChangeContent::default()
                };
                let content = serde_json::to_string(&content).expect("content");
                let state = if approved { "approved" } else { "closed" };
                let at = created + TimeDelta::seconds(i as i64);
                format!(
                    "({id}, {}, 'normal', '{state}', {}, {requester}, {}, 1, 'sha256:x', 1, {}, {}, {}, {}, {}, {}, 0, {}, {}, 1)",
                    tenant.0,
                    quote(&format!("Change {id}")),
                    implementers[i % implementers.len()],
                    quote(&plan),
                    quote(&content),
                    quote(&ts(start)),
                    quote(&ts(start + TimeDelta::hours(1))),
                    quote(&ts(at)),
                    quote(&ts(at + TimeDelta::hours(1))),
                    quote(&ts(at)),
                    quote(&ts(at + TimeDelta::hours(1))),
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO changes (id, tenant_id, kind, state, title, requester_id, implementer_id, revision, fingerprint,
                policy_version, plan, content, planned_start, planned_end, submitted_at, decided_at, retrospective_overdue,
                created_at, updated_at, version) VALUES {}",
            rows.join(",")
        );
        db.exec(&sql).await.expect("changes inserted");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let db = TestDb::sqlite().await;
    let store = db.store();
    let app = TestApp::new(store.clone(), Box::new(()));
    let admin = app.admin().await;
    let admin_id = store
        .user_by_email(&changegate_core::Email::parse("admin@msp.example").expect("email"))
        .await
        .expect("admin")
        .id
        .0;

    // The MSP's engineers: each change is implemented by one of 100, so
    // each engineer is booked about three hours a day across the clients.
    let mut engineers = Vec::new();
    for e in 0..100 {
        let user = store
            .create_user(
                changegate_store::NewUser {
                    email: changegate_core::Email::parse(&format!("engineer-{e}@msp.example"))
                        .expect("email"),
                    name: format!("Engineer {e}"),
                    kind: changegate_core::UserKind::Msp,
                    admin: false,
                    tenant: None,
                    password_hash: None,
                },
                &[],
                "bench",
                changegate_testkit::start_of_tests(),
            )
            .await
            .expect("engineer");
        engineers.push(user.id.0);
    }

    // 100 tenants, each with a weekly window and a blackout, 1,000 changes.
    let loading = Instant::now();
    let weekly = r#"{"timeZone":"Europe/Berlin","schedule":{"cron":{"expr":"0 2 * * SAT","duration":"4h"}}}"#;
    let blackout = r#"{"kind":"blackout","timeZone":"Europe/Berlin","schedule":{"ranges":[{"start":"2027-03-01T00:00:00Z","end":"2027-03-03T00:00:00Z"}]}}"#;
    let mut tenants = Vec::new();
    for t in 0..TENANTS {
        let id = tenant(store.as_ref(), &format!("tenant-{t:03}")).await;
        store
            .put_object(
                id,
                ObjectKind::Window,
                "weekly",
                weekly,
                "bench",
                changegate_testkit::start_of_tests(),
            )
            .await
            .expect("window");
        store
            .put_object(
                id,
                ObjectKind::Window,
                "freeze",
                blackout,
                "bench",
                changegate_testkit::start_of_tests(),
            )
            .await
            .expect("blackout");
        bulk_changes(
            &db,
            id,
            1 + (t * CHANGES_PER_TENANT) as i64,
            CHANGES_PER_TENANT,
            admin_id,
            &engineers,
            true,
        )
        .await;
        tenants.push(id);
    }
    println!(
        "loaded {} tenants with {} changes in {:.1} s",
        TENANTS,
        TENANTS * CHANGES_PER_TENANT,
        loading.elapsed().as_secs_f64()
    );

    // The calendar.
    let mut month = Vec::new();
    let mut year = Vec::new();
    for i in 0..200 {
        let slug = format!("tenant-{:03}", (i * 37) % TENANTS);
        let m = 1 + i % 12;
        let path = format!(
            "/api/v1/tenants/{slug}/calendar?from=2027-{m:02}-01&to=2027-{:02}-01",
            m % 12 + 1
        );
        let path = if m == 12 {
            format!("/api/v1/tenants/{slug}/calendar?from=2027-12-01&to=2028-01-01")
        } else {
            path
        };
        let t = Instant::now();
        let r = admin.get(&path).await;
        month.push(t.elapsed());
        assert_eq!(r.status.as_u16(), 200, "{}", r.text);
        if i < 50 {
            let t = Instant::now();
            let r = admin
                .get(&format!(
                    "/api/v1/tenants/{slug}/calendar?from=2027-01-01&to=2028-01-01"
                ))
                .await;
            year.push(t.elapsed());
            assert_eq!(r.status.as_u16(), 200);
            if i == 0 {
                println!(
                    "  a tenant's year: {} entries",
                    r.json.as_array().map_or(0, Vec::len)
                );
            }
        }
    }
    report("calendar, one tenant's month (API)", month);
    report("calendar, one tenant's whole year (API)", year);
    let mut pages = Vec::new();
    for i in 0..100 {
        let slug = format!("tenant-{:03}", (i * 13) % TENANTS);
        let t = Instant::now();
        let r = admin
            .get(&format!(
                "/api/v1/tenants/{slug}/calendar?from=2027-06-01&to=2027-07-01"
            ))
            .await;
        pages.push(t.elapsed());
        assert_eq!(r.status.as_u16(), 200);
    }
    let _ = pages;

    // A release of 10 tenants' changes: conflicts and the next free slot.
    let items: Vec<ReleaseItem> = (0..10)
        .map(|k| ReleaseItem {
            tenant: tenants[k * 10],
            change: ChangeNumber(1 + (k * 10 * CHANGES_PER_TENANT) as i64 + 500),
        })
        .collect();
    let release = store
        .create_release(
            NewRelease {
                name: "ten tenants".into(),
                owner: changegate_core::UserId(admin_id),
                planned_start: Some(
                    Utc.with_ymd_and_hms(2027, 3, 2, 10, 0, 0)
                        .single()
                        .expect("a valid time"),
                ),
                planned_end: Some(
                    Utc.with_ymd_and_hms(2027, 3, 2, 12, 0, 0)
                        .single()
                        .expect("a valid time"),
                ),
                changes: items,
                record: Default::default(),
            },
            "bench",
            changegate_testkit::start_of_tests(),
        )
        .await
        .expect("release");
    let mut slot = Vec::new();
    for i in 0..100 {
        let t = Instant::now();
        let r = admin
            .get(&format!("/api/v1/releases/{}", release.number))
            .await;
        slot.push(t.elapsed());
        assert_eq!(r.status.as_u16(), 200);
        if i == 0 {
            println!(
                "  the release: {} conflicts, earliest slot {}",
                r.json["conflicts"].as_array().map_or(0, Vec::len),
                r.json["proposed_start"]
            );
        }
    }
    report(
        "release of 10 tenants: conflicts + next free slot (API)",
        slot,
    );

    // The evidence export of one tenant with 100,000 changes.
    let big = tenant(store.as_ref(), "big-client").await;
    let first = 1 + (TENANTS * CHANGES_PER_TENANT) as i64;
    bulk_changes(&db, big, first, EXPORT_CHANGES, admin_id, &engineers, false).await;
    for chunk in (0..EXPORT_CHANGES).collect::<Vec<_>>().chunks(2_000) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|&i| {
                let at = Utc
                    .with_ymd_and_hms(2026, 11, 2, 10, 0, 0)
                    .single()
                    .expect("a valid time")
                    + TimeDelta::seconds(i as i64);
                format!(
                    "({}, {}, 1, {admin_id}, NULL, 'approve', 'fine', 'portal', 'sha256:x', 1, {})",
                    big.0,
                    first + i as i64,
                    quote(&ts(at))
                )
            })
            .collect();
        db.exec(&format!(
            "INSERT INTO approvals (tenant_id, change_id, revision, approver_id, on_behalf_of, decision, comment, channel, fingerprint, policy_version, at) VALUES {}",
            rows.join(",")
        ))
        .await
        .expect("approvals");
    }
    // Its chain: created, started (in a window), implemented (with the
    // documentation updated) for each change, after the events it
    // already has (its creation), so the export folds facts of every one.
    let (existing, head) = store.audit_events(big).await.expect("chain");
    let mut prev = existing
        .last()
        .map_or(GENESIS.to_string(), |e| e.hash.clone());
    let mut seq = head.seq;
    let mut rows = Vec::new();
    for i in 0..EXPORT_CHANGES {
        let number = format!("CHG-{}", first + i as i64);
        let at = Utc
            .with_ymd_and_hms(2026, 11, 2, 9, 0, 0)
            .single()
            .expect("a valid time")
            + TimeDelta::seconds(i as i64);
        for (action, detail) in [
            ("change.created", "{}"),
            ("change.started", r#"{"window":"weekly"}"#),
            (
                "change.implemented",
                r#"{"documentation":"runbook updated"}"#,
            ),
        ] {
            seq += 1;
            let e = audit::seal(
                &prev,
                EventBody {
                    tenant: big,
                    seq,
                    at: audit::normalise(at),
                    actor: "admin@msp.example".into(),
                    action: action.into(),
                    subject: number.clone(),
                    detail: detail.into(),
                },
            );
            rows.push(format!(
                "({}, {seq}, {}, 'admin@msp.example', '{action}', '{number}', {}, '{}', '{}')",
                big.0,
                quote(&ts(e.body.at)),
                quote(detail),
                e.prev_hash,
                e.hash
            ));
            prev = e.hash;
            if rows.len() == 3_000 {
                db.exec(&format!(
                    "INSERT INTO audit_events (tenant_id, seq, at, actor, action, subject, detail, prev_hash, hash) VALUES {}",
                    rows.join(",")
                ))
                .await
                .expect("events");
                rows.clear();
            }
        }
    }
    db.exec(&format!(
        "UPDATE tenants SET audit_seq = {seq}, audit_hash = '{prev}' WHERE id = {}",
        big.0
    ))
    .await
    .expect("head");
    // Peak RSS from here on (Linux: writing 5 to clear_refs resets VmHWM).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = rss_kib("VmRSS:");
    let t = Instant::now();
    // The client writes the archive to a file as it arrives, as a browser
    // or the CLI would: the peak is the server's.
    let mut file = tempfile::tempfile().expect("a temporary file");
    let status = admin
        .download(
            "/api/v1/tenants/big-client/evidence?from=2026-11-01&to=2026-11-30&format=bundle",
            &mut file,
        )
        .await;
    let took = t.elapsed();
    assert_eq!(status.as_u16(), 200);
    let peak = rss_kib("VmHWM:");
    let size = file.metadata().expect("metadata").len();
    std::io::Seek::rewind(&mut file).expect("rewound");
    let check = changegate_web::evidence::verify_bundle_from(std::io::BufReader::new(file))
        .expect("bundle");
    assert!(check.intact(), "{check:?}");
    println!(
        "evidence bundle of 100,000 changes (300,000 events): {:.2} s, {:.1} MB gzipped, RSS before {:.1} MiB, peak {:.1} MiB (+{:.1} MiB); verified: {} events, intact",
        took.as_secs_f64(),
        size as f64 / 1e6,
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
        (peak.saturating_sub(before)) as f64 / 1024.0,
        check.chain.events
    );

    // The scheduler's delay: 20 windows opening 0.5 s apart from now on;
    // the pass runs every second, each boundary is seen when its event is.
    let sched = tenant(store.as_ref(), "scheduled").await;
    let now = Utc::now();
    let first_open = now + TimeDelta::seconds(3);
    let ranges: Vec<String> = (0..20)
        .map(|i| {
            let s = first_open + TimeDelta::milliseconds(500 * i);
            format!(
                r#"{{"start":"{}","end":"{}"}}"#,
                s.to_rfc3339(),
                (s + TimeDelta::milliseconds(250)).to_rfc3339()
            )
        })
        .collect();
    let spec = format!(
        r#"{{"timeZone":"UTC","schedule":{{"ranges":[{}]}}}}"#,
        ranges.join(",")
    );
    store
        .put_object(sched, ObjectKind::Window, "pulses", &spec, "bench", now)
        .await
        .expect("window");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let jobs = tokio::spawn(changegate_jobs::run(
        store.clone(),
        std::sync::Arc::new(chrono::Utc::now),
        None,
        None,
        "http://bench".into(),
        {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.changed().await;
            }
        },
    ));
    let mut delays: Vec<Duration> = Vec::new();
    let mut seen = 0usize;
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen < 40 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let (events, _) = store.audit_events(sched).await.expect("events");
        let boundaries: Vec<_> = events
            .iter()
            .filter(|e| e.body.action == "window.opened" || e.body.action == "window.closed")
            .collect();
        let observed = Utc::now();
        for e in &boundaries[seen..] {
            delays.push((observed - e.body.at).to_std().unwrap_or_default());
        }
        seen = boundaries.len();
    }
    let _ = stop_tx.send(true);
    let _ = jobs.await;
    println!("scheduler: {seen} of 40 boundaries recorded (observed every 5 ms)");
    report("scheduler delay after a boundary", delays);
}
