//! The gate API: a pipeline with a gate token ships only what an approved
//! change covers, in the tenant's window; recording a deployment moves the
//! change or, uncovered, records an unauthorized deployment; a gate token
//! reaches nothing else.

use changegate_testkit::msp::{Msp, low_risk};
use changegate_testkit::{Actor, TestApp};
use chrono::{TimeDelta, TimeZone, Utc};
use serde_json::{Value, json};

const A: &str = "/api/v1/tenants/client-a";
const APPROVED: &str = "registry.example/payments@sha256:aaaa";
const OTHER: &str = "registry.example/payments@sha256:ffff";

/// payments-api is bound to the `production` pipeline environment;
/// client-a's maintenance window is Wednesdays 08:00–12:00 Berlin (the
/// test clock starts Wed 2026-11-25 10:00 UTC, inside it).
async fn governed(app: &TestApp) -> Msp {
    let m = Msp::setup(app).await;
    m.cm.put(
        &format!("{A}/configuration-items/payments-api"),
        json!({ "kind": "application", "enforcement": { "pipeline": { "environment": "production" } } }),
    )
    .await
    .ok();
    m.cm.put(
        &format!("{A}/windows/wednesday-morning"),
        json!({ "timeZone": "Europe/Berlin", "schedule": { "cron": { "expr": "0 8 * * WED", "duration": "4h" } } }),
    )
    .await
    .ok();
    m
}

async fn pipeline_of(app: &TestApp, owner: &Actor) -> Actor {
    let t = owner
        .post(
            &format!("{A}/gate-tokens"),
            json!({ "name": "github-actions-production" }),
        )
        .await
        .status(201)
        .json;
    app.bearer(t["token"].as_str().expect("a token"))
}

fn ask(artifact: &str) -> Value {
    json!({ "tenant": "client-a", "target": { "pipeline": { "environment": "production" } },
            "artifacts": [artifact] })
}

fn record(artifact: &str, status: &str) -> Value {
    let mut body = ask(artifact);
    body["record"] = json!({ "run": "https://ci.example/runs/42", "status": status });
    body
}

async fn check(who: &Actor, body: Value) -> Value {
    who.post("/api/v1/gate/check", body).await.ok()
}

async fn a_pipeline_ships_only_approved_content_in_the_window_and_records_it(app: TestApp) {
    let m = governed(&app).await;
    let pipeline = pipeline_of(&app, &m.ian).await;

    let d = check(&pipeline, ask(APPROVED)).await;
    assert_eq!(
        (d["verdict"].as_str(), d["reason"].as_str()),
        (Some("deny"), Some("no-change")),
        "{d}"
    );
    assert_eq!(d["configuration_items"], json!(["payments-api"]));

    let n = m.submitted(low_risk()).await;
    let d = check(&pipeline, ask(APPROVED)).await;
    assert_eq!(d["reason"], "not-approved", "{d}");
    assert_eq!(
        d["message"],
        format!("{n} awaits 1 approval from msp-tech"),
        "says whom it waits for"
    );

    let c = m
        .tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "comment": "fine", "revision": 1 }),
        )
        .await
        .ok();
    assert_eq!(c["state"], "approved");

    let d = check(&pipeline, ask(OTHER)).await;
    assert_eq!(
        (d["verdict"].as_str(), d["reason"].as_str()),
        (Some("deny"), Some("content-not-approved")),
        "{d}"
    );
    let d = check(&pipeline, ask(APPROVED)).await;
    assert_eq!(
        (d["verdict"].as_str(), d["reason"].as_str()),
        (Some("allow"), Some("covered")),
        "{d}"
    );
    assert_eq!(d["change"], n.as_str());
    assert_eq!(
        d["fingerprint"], c["fingerprint"],
        "the approved fingerprint"
    );

    // Wednesday 12:00 UTC is 13:00 in Berlin: the window has closed.
    let noon = Utc
        .with_ymd_and_hms(2026, 11, 25, 12, 0, 0)
        .single()
        .expect("time");
    app.set_now(noon);
    let d = check(&pipeline, ask(APPROVED)).await;
    assert_eq!(d["reason"], "window-closed", "{d}");
    assert!(
        d["message"].as_str().is_some_and(|m| m
            .ends_with("next window wednesday-morning opens Wed 2026-12-02 08:00 Europe/Berlin")),
        "{d}"
    );
    app.set_now(noon - TimeDelta::hours(2));

    let r = check(&pipeline, record(APPROVED, "started")).await;
    assert_eq!(
        r["recorded"],
        json!({ "event": "deployment.recorded", "change_state": "implementing" })
    );
    let r = check(&pipeline, record(APPROVED, "succeeded")).await;
    assert_eq!(r["recorded"]["change_state"], "implemented", "{r}");
    let change = m.audrey.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(change["state"], "implemented");
    assert_eq!(
        change["implementer"], "ian@msp.example",
        "the token's owner implemented it"
    );
    let outbox = app
        .store
        .due_messages(app.now() + TimeDelta::days(1), 100)
        .await
        .expect("outbox");
    assert!(
        outbox.iter().any(|m| m.recipient == "eve@msp.example"
            && m.subject
                .starts_with(&format!("[changegate] {n} implemented"))),
        "the requester is told of the outcome"
    );

    let deployments = m.audrey.get(&format!("{A}/deployments")).await.ok();
    let rows = deployments.as_array().expect("a list");
    assert_eq!(rows.len(), 2, "{deployments}");
    for row in rows {
        assert_eq!(row["event"], "deployment.recorded");
        assert_eq!(row["subject"], n.as_str());
        assert_eq!(row["actor"], "ian@msp.example");
        assert_eq!(row["detail"]["run"], "https://ci.example/runs/42");
        assert_eq!(row["detail"]["artifacts"], json!([APPROVED]));
    }
    let audit = m.audrey.get(&format!("{A}/audit")).await.ok();
    assert_eq!(audit["intact"], json!(true), "{audit}");
}

async fn a_deployment_no_approved_change_covers_is_recorded_as_unauthorized(app: TestApp) {
    let m = governed(&app).await;
    let pipeline = pipeline_of(&app, &m.ian).await;
    let n = m.submitted(low_risk()).await; // awaiting approval
    let r = check(&pipeline, record(APPROVED, "succeeded")).await;
    assert_eq!(r["verdict"], "deny");
    assert_eq!(
        r["recorded"],
        json!({ "event": "deployment.unauthorized", "change_state": null })
    );
    let change = m.audrey.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(
        change["state"], "awaiting-approval",
        "the change is untouched"
    );
    let deployments = m.audrey.get(&format!("{A}/deployments")).await.ok();
    assert_eq!(
        deployments[0]["event"], "deployment.unauthorized",
        "{deployments}"
    );
    assert_eq!(deployments[0]["subject"], "pipeline environment production");
    assert_eq!(deployments[0]["detail"]["reason"], "not-approved");
    let audit = m.audrey.get(&format!("{A}/audit")).await.ok();
    assert_eq!(audit["intact"], json!(true), "{audit}");
}

async fn a_gate_token_reaches_only_its_tenants_gate(app: TestApp) {
    let m = governed(&app).await;
    // ian implements for client-a and client-b; the token is client-a's.
    let pipeline = pipeline_of(&app, &m.ian).await;
    let r = pipeline.get(&format!("{A}/changes")).await.status(403);
    assert!(r.text.contains("only reaches the gate API"), "{}", r.text);
    pipeline
        .post("/api/v1/tokens", json!({ "name": "escalate" }))
        .await
        .status(403);
    pipeline
        .post(&format!("{A}/gate-tokens"), json!({ "name": "another" }))
        .await
        .status(403);
    let mut other = ask(APPROVED);
    other["tenant"] = json!("client-b");
    let r = pipeline
        .post("/api/v1/gate/check", other.clone())
        .await
        .status(404);
    assert_eq!(r.code(), "not-found");
    // A person of client-b cannot ask client-a's gate either.
    m.bob
        .post("/api/v1/gate/check", ask(APPROVED))
        .await
        .status(404);
    // The auditor may ask but not record; a requester may not mint gate tokens.
    check(&m.audrey, ask(APPROVED)).await;
    m.audrey
        .post("/api/v1/gate/check", record(APPROVED, "started"))
        .await
        .status(403);
    m.eve
        .post(&format!("{A}/gate-tokens"), json!({ "name": "mine" }))
        .await
        .status(403);
    // Identity comes from the token, never from the body.
    let mut forged = record(APPROVED, "started");
    forged["actor"] = json!("cm@msp.example");
    let r = pipeline
        .post("/api/v1/gate/check", forged)
        .await
        .status(422);
    assert_eq!(r.field(), "actor");
}

async fn an_ungoverned_target_is_allowed_and_bad_input_is_refused_with_the_field(app: TestApp) {
    let m = governed(&app).await;
    let pipeline = pipeline_of(&app, &m.ian).await;
    let d = check(
        &pipeline,
        json!({ "tenant": "client-a", "target": { "pipeline": { "environment": "staging" } }, "artifacts": [] }),
    )
    .await;
    assert_eq!(
        (d["verdict"].as_str(), d["reason"].as_str()),
        (Some("allow"), Some("not-governed")),
        "{d}"
    );
    let r = pipeline
        .post(
            "/api/v1/gate/check",
            json!({ "tenant": "client-a", "target": { "pipeline": { "environment": "production" } }, "artifacts": [" "] }),
        )
        .await
        .status(422);
    assert_eq!(r.field(), "artifacts[0]");
    let mut no_run = record(APPROVED, "started");
    no_run["record"]["run"] = json!("");
    let r = pipeline
        .post("/api/v1/gate/check", no_run)
        .await
        .status(422);
    assert_eq!(r.field(), "record.run");
    let r = pipeline
        .post(
            "/api/v1/gate/check",
            json!({ "tenant": "client-a", "target": { "namespace": "x" } }),
        )
        .await
        .status(422);
    assert_eq!(r.field(), "target");
}

/// Gate checks read a per-tenant snapshot: a check writes nothing (it
/// wakes no agent), a write through the API shows in the next check, and a
/// write the server did not see (another replica, the CLI on the database)
/// shows within a second.
async fn checks_read_a_snapshot_that_every_write_renews(app: TestApp) {
    let m = governed(&app).await;
    let pipeline = pipeline_of(&app, &m.ian).await;
    let writes = || app.state.writes.count();

    let before = writes();
    let d = check(&pipeline, ask(APPROVED)).await;
    assert_eq!(d["reason"], "no-change", "{d}");
    check(&pipeline, ask(OTHER)).await;
    assert_eq!(writes(), before, "a check without record wrote nothing");

    // Through the API: seen by the very next check.
    let n = m.submitted(low_risk()).await;
    assert_ne!(writes(), before, "the submission counted as a write");
    m.tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "comment": "fine", "revision": 1 }),
        )
        .await
        .ok();
    let d = check(&pipeline, ask(APPROVED)).await;
    assert_eq!(d["reason"], "covered", "{d}");
    let counted = writes();
    check(&pipeline, record(APPROVED, "started")).await;
    assert_ne!(writes(), counted, "a recorded deployment is a write");

    // Behind the server's back: the item no longer bound to the pipeline.
    let tenant = app
        .store
        .tenant_by_slug("client-a")
        .await
        .expect("client-a");
    app.store
        .put_object(
            tenant.id,
            changegate_store::ObjectKind::ConfigurationItem,
            "payments-api",
            &json!({ "kind": "application" }).to_string(),
            "someone at the database",
            app.now(),
        )
        .await
        .expect("stored");
    let waited = std::time::Instant::now();
    loop {
        let d = check(&pipeline, ask(APPROVED)).await;
        if d["reason"] == "not-governed" {
            break;
        }
        assert!(
            waited.elapsed() < changegate_web::snapshot::FRESH_FOR * 3,
            "still {d} after {:?}",
            waited.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn a_waiting_check_answers_when_the_change_is_approved_at_once_on_a_rejection_and_at_its_end(
    app: TestApp,
) {
    let m = governed(&app).await;
    let pipeline = pipeline_of(&app, &m.ian).await;
    let n = m.submitted(low_risk()).await;
    let waiting = |secs: u64| {
        let mut body = ask(APPROVED);
        body["wait"] = json!(secs);
        body
    };
    // Nothing changes: it waits to the end, then denies, saying what for.
    let started = std::time::Instant::now();
    let d = check(&pipeline, waiting(2)).await;
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "answered before its wait ended: {d}"
    );
    assert_eq!(
        (d["verdict"].as_str(), d["settled"].as_bool()),
        (Some("deny"), Some(false))
    );
    assert_eq!(d["message"], format!("{n} awaits 1 approval from msp-tech"));

    // msp-tech approves on one member's word and rejects on both's.
    let decide = |decision: &'static str, number: String| {
        let board = if decision == "reject" {
            vec![m.tom.clone(), m.tina.clone()]
        } else {
            vec![m.tom.clone()]
        };
        async move {
            tokio::task::yield_now().await;
            let mut last = Value::Null;
            for who in board {
                last = who
                    .post(
                        &format!("{A}/changes/{number}/decisions"),
                        json!({ "decision": decision, "revision": 1 }),
                    )
                    .await
                    .ok();
            }
            last
        }
    };
    // Rejected while it waits: denied at once, settled.
    let (d, since) = tokio::join!(
        answered(check(&pipeline, waiting(30))),
        once_waiting(&app, decide("reject", n.clone()))
    );
    assert_eq!(since.0["state"], "rejected", "{}", since.0);
    assert_eq!(
        (d.0["verdict"].as_str(), d.0["settled"].as_bool()),
        (Some("deny"), Some(true)),
        "{}",
        d.0
    );
    within_a_second_of(d.1, since, "the rejection");

    // A new change for the content, approved while it waits: allowed.
    let again = m.submitted(low_risk()).await;
    let (d, since) = tokio::join!(
        answered(check(&pipeline, waiting(30))),
        once_waiting(&app, decide("approve", again.clone()))
    );
    assert_eq!(
        (
            d.0["verdict"].as_str(),
            d.0["reason"].as_str(),
            d.0["change"].as_str()
        ),
        (Some("allow"), Some("covered"), Some(again.as_str())),
        "{}",
        d.0
    );
    within_a_second_of(d.1, since, "the approval");
    assert_eq!(app.state.gate_waits.now(), 0, "no check counted as waiting");

    // A caller that goes away is no longer counted.
    let mut other = ask(OTHER);
    other["wait"] = json!(30);
    let mut gone = Box::pin(check(&pipeline, other));
    tokio::select! {
        d = &mut gone => panic!("nothing covers other content, yet the check answered {d}"),
        () = until_waiting(&app, 1) => {}
    }
    drop(gone);
    assert_eq!(
        app.state.gate_waits.now(),
        0,
        "the gone caller still counted"
    );
}

/// A check's answer and when it came.
async fn answered(check: impl std::future::Future<Output = Value>) -> (Value, std::time::Instant) {
    let d = check.await;
    (d, std::time::Instant::now())
}

/// Once `count` gate checks wait on the server (a condition, not a
/// sleep: the server counts them).
async fn until_waiting(app: &TestApp, count: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.state.gate_waits.now() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "no gate check waited within 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Runs `decide` once a gate check waits; its answer and when it came
/// (the decision recorded).
async fn once_waiting(
    app: &TestApp,
    decide: impl std::future::Future<Output = Value>,
) -> (Value, std::time::Instant) {
    until_waiting(app, 1).await;
    let decided = decide.await;
    (decided, std::time::Instant::now())
}

/// DESIGN §7's promise to pipelines: a waiting check answers within a
/// second of the decision that changes its answer.
fn within_a_second_of(
    answered: std::time::Instant,
    decided: (Value, std::time::Instant),
    what: &str,
) {
    let after = answered.saturating_duration_since(decided.1);
    assert!(
        after <= std::time::Duration::from_secs(1),
        "the waiting check answered {after:?} after {what} was recorded"
    );
}

crate::on_both!(
    a_waiting_check_answers_when_the_change_is_approved_at_once_on_a_rejection_and_at_its_end,
    checks_read_a_snapshot_that_every_write_renews,
    a_pipeline_ships_only_approved_content_in_the_window_and_records_it,
    a_deployment_no_approved_change_covers_is_recorded_as_unauthorized,
    a_gate_token_reaches_only_its_tenants_gate,
    an_ungoverned_target_is_allowed_and_bad_input_is_refused_with_the_field,
);
