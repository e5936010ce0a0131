//! The scheduler's window boundaries: each opening and closing recorded
//! once, within the pass after it, across a restart (a store opened
//! afresh on the same database) and with two replicas passing together.

use changegate_core::{Slug, TenantId};
use changegate_store::{NewTenant, ObjectKind, Store};
use changegate_testkit::db::TestDb;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};

fn at(d: u32, h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, d, h, m, s)
        .single()
        .expect("a valid time")
}

async fn tenant_with_a_window(store: &dyn Store) -> TenantId {
    let t = store
        .create_tenant(
            NewTenant {
                slug: Slug::parse("client-a").expect("slug"),
                name: "Client A".into(),
                time_zone: "Europe/Berlin".into(),
            },
            "test",
            at(27, 9, 0, 0),
        )
        .await
        .expect("tenant");
    // Saturday 02:00-06:00 Berlin: 01:00-05:00 UTC on 2026-11-28.
    let weekly = r#"{"timeZone":"Europe/Berlin","schedule":{"cron":{"expr":"0 2 * * SAT","duration":"4h"}}}"#;
    store
        .put_object(
            t.id,
            ObjectKind::Window,
            "weekly",
            weekly,
            "test",
            at(27, 9, 0, 0),
        )
        .await
        .expect("window");
    t.id
}

async fn recorded(store: &dyn Store, tenant: TenantId) -> Vec<(String, DateTime<Utc>)> {
    store
        .audit_events(tenant)
        .await
        .expect("events")
        .0
        .into_iter()
        .filter(|e| e.body.action == "window.opened" || e.body.action == "window.closed")
        .map(|e| (e.body.action, e.body.at))
        .collect()
}

async fn each_boundary_is_recorded_once_across_a_restart_and_two_replicas(db: TestDb) {
    let store = db.store();
    let tenant = tenant_with_a_window(store.as_ref()).await;
    let pass = |store: std::sync::Arc<dyn Store>, now| async move {
        changegate_jobs::boundaries::run(store.as_ref(), now)
            .await
            .expect("a pass")
            .recorded
    };
    // The first pass starts the mark; nothing before it is recorded.
    assert!(pass(store.clone(), at(28, 0, 0, 0)).await.is_empty());
    // It knows when the next boundary comes, to wake for it.
    let ahead = changegate_jobs::boundaries::run(store.as_ref(), at(28, 0, 59, 59))
        .await
        .expect("a pass");
    assert_eq!(
        (ahead.recorded.len(), ahead.next),
        (0, Some(at(28, 1, 0, 0)))
    );
    // The pass right after the opening records it (within the second).
    let opened = pass(store.clone(), at(28, 1, 0, 1)).await;
    assert_eq!(opened.len(), 1);
    assert_eq!(
        (opened[0].action, opened[0].at),
        ("window.opened", at(28, 1, 0, 0))
    );
    assert!(
        pass(store.clone(), at(28, 1, 0, 2)).await.is_empty(),
        "never twice"
    );

    // The server stops before the window closes and starts again after.
    drop(store);
    let restarted = db.reopen().await;
    let closed = pass(restarted.clone(), at(28, 5, 0, 30)).await;
    assert_eq!(closed.len(), 1, "the closing during the stop is not missed");
    assert_eq!(
        (closed[0].action, closed[0].at),
        ("window.closed", at(28, 5, 0, 0))
    );

    // Two replicas pass over the next opening together: one records it.
    let other = db.reopen().await;
    let next = at(28, 1, 0, 0) + TimeDelta::days(7) + TimeDelta::seconds(1);
    let (a, b) = tokio::join!(pass(restarted.clone(), next), pass(other.clone(), next));
    assert_eq!(a.len() + b.len(), 1, "one replica records it: {a:?} {b:?}");
    assert_eq!(
        recorded(restarted.as_ref(), tenant).await,
        [
            ("window.opened".to_string(), at(28, 1, 0, 0)),
            ("window.closed".to_string(), at(28, 5, 0, 0)),
            (
                "window.opened".to_string(),
                at(28, 1, 0, 0) + TimeDelta::days(7)
            ),
        ]
    );
    let audit = changegate_core::audit::verify(
        &restarted.audit_events(tenant).await.expect("events").0,
        &restarted.audit_chain_head(tenant).await.expect("head"),
    );
    assert!(audit.intact);
}

/// Passes with nothing to record write nothing for a minute; a window
/// edited between passes is read again (the compiled windows are kept
/// only while the tenant's audit head stands).
async fn idle_passes_write_nothing_and_an_edited_window_is_seen(db: TestDb) {
    let store = db.store();
    let tenant = tenant_with_a_window(store.as_ref()).await;
    let key = format!("windows:{}", tenant.0);
    let mut cache = changegate_jobs::boundaries::Windows::default();
    let mut pass = async |now| {
        changegate_jobs::boundaries::run_with(store.as_ref(), now, &mut cache)
            .await
            .expect("a pass")
    };
    pass(at(27, 10, 0, 0)).await;
    let started = store.job_mark(&key).await.expect("mark");
    assert_eq!(started, Some(at(27, 10, 0, 0)));
    for s in 1..30 {
        pass(at(27, 10, 0, s)).await;
    }
    assert_eq!(store.job_mark(&key).await.expect("mark"), started, "idle");
    pass(at(27, 10, 1, 0)).await;
    assert_eq!(
        store.job_mark(&key).await.expect("mark"),
        Some(at(27, 10, 1, 0)),
        "a minute on, the mark moves"
    );
    // A window opening in a minute, added between two passes.
    let soon = r#"{"timeZone":"UTC","schedule":{"ranges":[{"start":"2026-11-27T10:02:00Z","end":"2026-11-27T10:03:00Z"}]}}"#;
    store
        .put_object(
            tenant,
            ObjectKind::Window,
            "soon",
            soon,
            "test",
            at(27, 10, 1, 30),
        )
        .await
        .expect("window");
    assert_eq!(pass(at(27, 10, 1, 30)).await.next, Some(at(27, 10, 2, 0)));
    let opened = pass(at(27, 10, 2, 1)).await.recorded;
    assert_eq!(
        opened
            .iter()
            .map(|b| (b.window.as_str(), b.action))
            .collect::<Vec<_>>(),
        [("soon", "window.opened")]
    );
}

changegate_testkit::store_tests!(
    each_boundary_is_recorded_once_across_a_restart_and_two_replicas,
    idle_passes_write_nothing_and_an_edited_window_is_seen
);
