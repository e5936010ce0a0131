//! The bundle API: a cluster's agent gets exactly the tenants bound to its
//! cluster, with an ETag, and a long-poll answers as soon as an approval
//! changes the bundle.

use changegate_testkit::msp::{Msp, low_risk};
use changegate_testkit::{Actor, TestApp};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const A: &str = "/api/v1/tenants/client-a";
const B: &str = "/api/v1/tenants/client-b";

fn workload(cluster: &str, namespace: &str, name: &str) -> Value {
    json!({ "kind": "kubernetes-workload", "enforcement": { "kubernetes":
        { "cluster": cluster, "namespace": namespace, "kind": "Deployment", "name": name } } })
}

/// client-a's payments-api runs in prod-eu; client-b's shop in prod-us.
async fn clusters(app: &TestApp) -> (Msp, Actor, Actor) {
    let m = Msp::setup(app).await;
    m.cm.put(
        &format!("{A}/configuration-items/payments-api"),
        workload("prod-eu", "payments", "payments-api"),
    )
    .await
    .ok();
    m.cm.put(
        &format!("{B}/configuration-items/client-b-shop"),
        workload("prod-us", "shop", "client-b-shop"),
    )
    .await
    .ok();
    let agent = |name: &'static str| {
        let admin = m.admin.clone();
        async move {
            let t = admin
                .post("/api/v1/clusters", json!({ "name": name }))
                .await
                .status(201)
                .json;
            app.bearer(t["token"].as_str().expect("an agent token"))
        }
    };
    let eu = agent("prod-eu").await;
    let us = agent("prod-us").await;
    (m, eu, us)
}

async fn a_cluster_gets_only_the_tenants_bound_to_it(app: TestApp) {
    let (m, eu, us) = clusters(&app).await;
    let n = m.submitted(low_risk()).await;
    let b = eu.get("/api/v1/agent/bundle").await.ok();
    assert_eq!(b["cluster"], "prod-eu");
    let tenants: Vec<&str> = b["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .filter_map(|t| t["tenant"].as_str())
        .collect();
    assert_eq!(tenants, ["client-a"]);
    let a = &b["tenants"][0];
    assert_eq!(a["enforcement"], "Enforce");
    assert!(a["configuration_items"]["payments-api"].is_object(), "{a}");
    assert_eq!(a["changes"][0]["number"], n.as_str());
    assert_eq!(a["changes"][0]["state"], "awaiting-approval");
    assert_eq!(
        a["changes"][0]["artifacts"],
        json!(["registry.example/payments@sha256:aaaa"])
    );
    let text = eu.get("/api/v1/agent/bundle").await.text;
    assert!(
        !text.contains("client-b"),
        "prod-eu sees nothing of client-b: {text}"
    );

    let b = us.get("/api/v1/agent/bundle").await.ok();
    assert_eq!(b["tenants"][0]["tenant"], "client-b");
    let text = us.get("/api/v1/agent/bundle").await.text;
    assert!(
        !text.contains("client-a") && !text.contains("payments"),
        "prod-us sees nothing of client-a: {text}"
    );
}

async fn an_approval_reaches_a_long_polling_agent_at_once(app: TestApp) {
    let (m, eu, _) = clusters(&app).await;
    let n = m.submitted(low_risk()).await;
    let first = eu.get("/api/v1/agent/bundle").await.status(200);
    let etag = first
        .headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("an ETag")
        .to_string();
    // Unchanged: 304 at once without wait.
    let unchanged = eu
        .call_with(
            "GET",
            "/api/v1/agent/bundle",
            &[("if-none-match", etag.as_str())],
        )
        .await;
    assert_eq!(unchanged.status.as_u16(), 304);

    let waiting = {
        let eu = eu.clone();
        let etag = etag.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let r = eu
                .call_with(
                    "GET",
                    "/api/v1/agent/bundle?wait=30",
                    &[("if-none-match", etag.as_str())],
                )
                .await;
            (r, started.elapsed())
        })
    };
    // Let the poll reach its wait before approving (a condition, not a
    // sleep: the poll cannot answer before the bundle changes).
    tokio::task::yield_now().await;
    m.tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "comment": "fine", "revision": 1 }),
        )
        .await
        .ok();
    let (r, took) = waiting.await.expect("the poll answers");
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_ne!(
        r.headers.get("etag").and_then(|v| v.to_str().ok()),
        Some(etag.as_str())
    );
    assert_eq!(
        r.json["tenants"][0]["changes"][0]["state"], "approved",
        "before: {}\nafter: {}",
        first.text, r.text
    );
    assert!(
        r.json["tenants"][0]["changes"][0]["fingerprint"]
            .as_str()
            .is_some_and(|f| f.starts_with("sha256:")),
        "{}",
        r.text
    );
    // Woken by the write, not by the periodic re-check (every 3 s).
    assert!(
        took < Duration::from_millis(2500),
        "answered after {took:?}"
    );
}

async fn agent_tokens_and_person_tokens_do_not_cross(app: TestApp) {
    let (m, eu, _) = clusters(&app).await;
    let r = m.admin.get("/api/v1/agent/bundle").await.status(403);
    assert!(r.text.contains("agent token"), "{}", r.text);
    app.anonymous()
        .get("/api/v1/agent/bundle")
        .await
        .status(401);
    let r = eu.get("/api/v1/tenants").await.status(403);
    assert!(
        r.text.contains("agent token of cluster prod-eu"),
        "{}",
        r.text
    );
    eu.get(&format!("{A}/changes")).await.status(403);
    // Only an installation admin registers clusters, with a valid name.
    m.cm.post("/api/v1/clusters", json!({ "name": "rogue" }))
        .await
        .status(403);
    let r = m
        .admin
        .post("/api/v1/clusters", json!({ "name": "Prod EU!" }))
        .await
        .status(422);
    assert_eq!(r.field(), "name");
}

fn report(event: &str, change: Option<&str>) -> Value {
    json!({ "tenant": "client-a", "namespace": "payments", "kind": "Deployment", "name": "payments-api",
            "artifacts": ["registry.example/payments@sha256:aaaa"], "event": event, "change": change,
            "revision": "generation 2", "note": "seen by the agent" })
}

/// A `started` report of the rollout admitted under `fingerprint`.
fn started(change: &str, fingerprint: &Value) -> Value {
    let mut r = report("started", Some(change));
    r["fingerprint"] = fingerprint.clone();
    r
}

async fn an_agents_reports_move_the_covering_change_and_record_unauthorized_changes(app: TestApp) {
    let (m, eu, us) = clusters(&app).await;
    let n = m.submitted(low_risk()).await;
    let approved = m
        .tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "comment": "fine", "revision": 1 }),
        )
        .await
        .ok();
    let r = eu
        .post(
            "/api/v1/agent/reports",
            started(&n, &approved["fingerprint"]),
        )
        .await
        .status(201);
    assert_eq!(r.json["change_state"], "implementing", "{}", r.text);
    // A repeated report (an agent retrying) writes nothing.
    let r = eu
        .post(
            "/api/v1/agent/reports",
            started(&n, &approved["fingerprint"]),
        )
        .await
        .ok();
    assert_eq!(r["event"], "none");
    let r = eu
        .post("/api/v1/agent/reports", report("succeeded", Some(&n)))
        .await
        .status(201);
    assert!(
        matches!(
            r.json["change_state"].as_str(),
            Some("implemented" | "closed")
        ),
        "{}",
        r.text
    );
    // The requester hears of the outcome through the outbox, as when a
    // person records it.
    let outbox = app
        .store
        .due_messages(app.now() + chrono::TimeDelta::days(1), 100)
        .await
        .expect("outbox");
    assert!(
        outbox.iter().any(|m| m.recipient == "eve@msp.example"
            && m.subject
                .starts_with(&format!("[changegate] {n} implemented"))),
        "{:?}",
        outbox
            .iter()
            .map(|m| (&m.recipient, &m.subject))
            .collect::<Vec<_>>()
    );
    let r = eu
        .post("/api/v1/agent/reports", report("unauthorized", None))
        .await
        .status(201);
    assert_eq!(r.json["event"], "deployment.unauthorized");
    let deployments = m.audrey.get(&format!("{A}/deployments")).await.ok();
    let events: Vec<&str> = deployments
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|d| d["event"].as_str())
        .collect();
    assert_eq!(
        events,
        [
            "deployment.recorded",
            "deployment.recorded",
            "deployment.unauthorized"
        ],
        "{deployments}"
    );
    assert_eq!(deployments[2]["actor"], "agent of prod-eu");
    assert_eq!(
        deployments[2]["subject"],
        "Deployment payments/payments-api in cluster prod-eu"
    );
    let audit = m.audrey.get(&format!("{A}/audit")).await.ok();
    assert_eq!(audit["intact"], json!(true), "{audit}");

    // Another cluster's agent cannot write onto client-a, nor onto a
    // workload client-a did not bind; no person can report.
    let r = us
        .post("/api/v1/agent/reports", report("unauthorized", None))
        .await
        .status(404);
    assert!(r.text.contains("tenant not found"), "{}", r.text);
    let mut unbound = report("unauthorized", None);
    unbound["name"] = json!("something-else");
    eu.post("/api/v1/agent/reports", unbound).await.status(404);
    m.ian
        .post("/api/v1/agent/reports", report("unauthorized", None))
        .await
        .status(403);
    let r = eu
        .post("/api/v1/agent/reports", report("failed", None))
        .await
        .status(422);
    assert_eq!(r.field(), "change");
    let after = m.audrey.get(&format!("{A}/deployments")).await.ok();
    assert_eq!(
        after.as_array().map(Vec::len),
        Some(3),
        "nothing more written"
    );
}

/// A bundle is re-encoded only after writes that can change it, so both
/// ways a tenant's data changes must reach it: a binding through the API
/// brings a tenant in at once, and a write behind this server's back
/// (another replica, the CLI) within seconds, through the audit heads.
async fn a_new_binding_and_a_write_elsewhere_both_reach_the_bundle(app: TestApp) {
    let (m, eu, _) = clusters(&app).await;
    let tenants = |b: &Value| -> Vec<String> {
        b["tenants"]
            .as_array()
            .expect("tenants")
            .iter()
            .filter_map(|t| t["tenant"].as_str().map(str::to_string))
            .collect()
    };
    // Twice: the second answer comes from the bundle encoded for the first.
    for _ in 0..2 {
        assert_eq!(
            tenants(&eu.get("/api/v1/agent/bundle").await.ok()),
            ["client-a"]
        );
    }
    m.cm.put(
        &format!("{B}/configuration-items/client-b-api"),
        workload("prod-eu", "client-b", "client-b-api"),
    )
    .await
    .ok();
    assert_eq!(
        tenants(&eu.get("/api/v1/agent/bundle").await.ok()),
        ["client-a", "client-b"],
        "bound a moment ago"
    );

    let a = app
        .store
        .tenant_by_slug("client-a")
        .await
        .expect("client-a");
    app.store
        .put_object(
            a.id,
            changegate_store::ObjectKind::Window,
            "written-elsewhere",
            r#"{"timeZone":"Europe/Berlin","schedule":{"cron":{"expr":"0 2 * * SAT","duration":"4h"}}}"#,
            "another replica", app.now(),
        )
        .await
        .expect("written behind the server's back");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let b = eu.get("/api/v1/agent/bundle").await.ok();
        if b["tenants"][0]["windows"]["written-elsewhere"].is_object() {
            break;
        }
        assert!(Instant::now() < deadline, "never seen: {b}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

crate::on_both!(
    a_new_binding_and_a_write_elsewhere_both_reach_the_bundle,
    a_cluster_gets_only_the_tenants_bound_to_it,
    an_agents_reports_move_the_covering_change_and_record_unauthorized_changes,
    an_approval_reaches_a_long_polling_agent_at_once,
    agent_tokens_and_person_tokens_do_not_cross,
);
