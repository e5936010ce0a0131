//! A database outage is answered, not waited out: with its PostgreSQL
//! stopped under a running server, requests fail within about two seconds
//! with 503 and `Retry-After` (JSON for the API, a page for the portal),
//! `/readyz` says not ready at once, the scheduler's pass fails fast, and
//! an agent's bundle long-poll keeps serving the bundle it had. Started
//! again, the database serves the same server without a restart. (SQLite
//! is a file of the server's own: it has no such outage.)

use changegate_testkit::db::TestDb;
use changegate_testkit::msp::{Msp, low_risk};
use changegate_testkit::postgres::PgServer;
use changegate_testkit::{Resp, TestApp};
use serde_json::json;
use std::time::{Duration, Instant};

const A: &str = "/api/v1/tenants/client-a";

fn unavailable(r: &Resp, took: Duration, what: &str) {
    assert_eq!(r.status.as_u16(), 503, "{what}: {}", r.text);
    assert!(
        took < Duration::from_millis(2500),
        "{what} was answered after {took:?}"
    );
    assert_eq!(
        r.headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("2"),
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_database_is_answered_with_503_and_served_again_once_it_is_back() {
    let server = PgServer::private().unwrap_or_else(|e| panic!("{e}"));
    let app = TestApp::on(TestDb::postgres_on(server).await);
    let m = Msp::setup(&app).await;
    m.cm.put(
        &format!("{A}/configuration-items/payments-api"),
        json!({ "kind": "kubernetes-workload", "enforcement": { "kubernetes":
            { "cluster": "prod-eu", "namespace": "payments", "kind": "Deployment", "name": "payments-api" } } }),
    )
    .await
    .ok();
    let agent = {
        let t = m
            .admin
            .post("/api/v1/clusters", json!({ "name": "prod-eu" }))
            .await
            .status(201)
            .json;
        app.bearer(t["token"].as_str().expect("an agent token"))
    };
    let n = m.submitted(low_risk()).await;
    let bundle = agent.get("/api/v1/agent/bundle").await.status(200);
    let etag = bundle
        .headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("an etag")
        .to_string();
    app.set_password("eve@msp.example", "correct horse battery")
        .await;
    let signed_in = app
        .anonymous()
        .post(
            "/api/v1/session",
            json!({ "email": "eve@msp.example", "password": "correct horse battery" }),
        )
        .await
        .status(200);
    let cookie = signed_in
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string();
    let browser = app.browser(Some(cookie));
    app.anonymous().get("/readyz").await.status(200);
    server.stop().unwrap_or_else(|e| panic!("{e}"));

    let timed =
        async |f: std::pin::Pin<Box<dyn std::future::Future<Output = Resp> + Send + '_>>| {
            let started = Instant::now();
            let r = f.await;
            (r, started.elapsed())
        };
    let (r, took) = timed(Box::pin(app.anonymous().get("/readyz"))).await;
    assert_eq!(r.status.as_u16(), 503, "{}", r.text);
    assert!(took < Duration::from_millis(1500), "/readyz took {took:?}");
    let (r, took) = timed(Box::pin(m.eve.get("/api/v1/changes"))).await;
    unavailable(&r, took, "GET /api/v1/changes");
    assert_eq!(r.code(), "unavailable");
    let (r, took) = timed(Box::pin(m.tom.post(
        &format!("{A}/changes/{n}/decisions"),
        json!({ "decision": "approve", "revision": 1 }),
    )))
    .await;
    unavailable(&r, took, "a decision");
    let (r, took) = timed(Box::pin(browser.get(&format!("/t/client-a/changes/{n}")))).await;
    unavailable(&r, took, "the change page");
    assert!(r.text.contains("Unavailable for a moment"), "{}", r.text);
    // The scheduler's pass fails fast (its loop then waits, saying so once).
    let started = Instant::now();
    let pass =
        changegate_jobs::run_due(app.store.as_ref(), "http://changegate.test", app.now()).await;
    assert!(
        matches!(pass, Err(changegate_store::StoreError::Unavailable(_))),
        "{pass:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // The agent keeps the bundle it had: unchanged, and served again whole.
    let r = agent
        .call_with("GET", "/api/v1/agent/bundle", &[("if-none-match", &etag)])
        .await;
    assert_eq!(r.status.as_u16(), 304, "{}", r.text);
    let r = agent.get("/api/v1/agent/bundle").await.status(200);
    assert_eq!(r.bytes, bundle.bytes);

    server.restart().unwrap_or_else(|e| panic!("{e}"));

    // The same server serves again, without a restart of its own.
    let mut answered = None;
    for _ in 0..100 {
        let r = m.eve.get("/api/v1/changes").await;
        if r.status.is_success() {
            answered = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listed = answered.expect("the server answers again once the database is back");
    assert_eq!(listed.json["items"][0]["number"], n.as_str());
    app.anonymous().get("/readyz").await.status(200);
    m.tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "revision": 1 }),
        )
        .await
        .ok();
    server.stop().unwrap_or_else(|e| panic!("{e}"));
}
