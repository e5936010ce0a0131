//! One clock: every time the server writes comes from the clock its
//! handlers were given. The story below runs with that clock pinned in
//! 2031, years away from any day these tests run on, and touches every
//! kind of write (tenants, people, tokens, sessions, policy objects,
//! delegations, changes with their approvals, comments, e-mails and links,
//! feeds, releases, gate records, scheduler passes); afterwards every
//! point in time stored anywhere in the database must lie in 2031, so a
//! read of the wall clock anywhere on those paths fails it.

use changegate_testkit::TestApp;
use changegate_testkit::msp::{Msp, low_risk, normal_change};
use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde_json::json;

const A: &str = "/api/v1/tenants/client-a";

fn at(month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2031, month, day, hour, minute, 0)
        .single()
        .expect("a valid time")
}

async fn every_write_is_stamped_by_the_clock_of_the_request(app: TestApp) {
    // Wednesday 2031-06-11, 10:00 UTC.
    app.set_now(at(6, 11, 10, 0));
    let m = Msp::setup(&app).await;
    app.set_password("eve@msp.example", "correct horse battery")
        .await;

    // Tenants, people and tokens through the API.
    m.admin
        .post(
            "/api/v1/tenants",
            json!({ "slug": "client-c", "name": "Client C", "time_zone": "Europe/Berlin" }),
        )
        .await
        .status(201);
    m.eve
        .post("/api/v1/tokens", json!({ "name": "laptop" }))
        .await
        .status(201);
    m.ian
        .post(&format!("{A}/gate-tokens"), json!({ "name": "ci" }))
        .await
        .status(201);
    app.anonymous()
        .post(
            "/api/v1/session",
            json!({ "email": "eve@msp.example", "password": "correct horse battery" }),
        )
        .await
        .ok();

    // Policy objects and a delegation.
    m.cm.put(
        &format!("{A}/windows/weekly"),
        json!({ "timeZone": "Europe/Berlin", "schedule": { "cron": { "expr": "0 2 * * SAT", "duration": "4h" } } }),
    )
    .await
    .ok();
    m.cm.put(
        &format!("{A}/configuration-items/payments-api"),
        json!({ "kind": "application", "environment": "production" }),
    )
    .await
    .ok();
    m.cm.put(
        &format!("{A}/templates/restart"),
        json!({ "title": "Restart the payments API", "configurationItems": ["payments-api"],
                "approvedBy": "cm@msp.example", "approvedOn": "2031-01-02", "reviewDue": "2032-01-02" }),
    )
    .await
    .ok();
    m.tina
        .post(
            &format!("{A}/delegations"),
            json!({ "from": "tina@msp.example", "to": "tom@msp.example",
                    "starts_at": at(6, 11, 0, 0), "ends_at": at(6, 18, 0, 0) }),
        )
        .await
        .status(201);

    // A change through its life: raised, commented, submitted (e-mails and
    // links in the outbox), approved, started in the window, completed,
    // reviewed.
    let mut body = normal_change("Upgrade payments", low_risk());
    body["test_evidence"] = json!("staging run green");
    let n = m
        .eve
        .post(&format!("{A}/changes"), body)
        .await
        .status(201)
        .json["number"]
        .as_str()
        .expect("number")
        .to_string();
    m.eve
        .post(
            &format!("{A}/changes/{n}/comments"),
            json!({ "body": "ready for review" }),
        )
        .await
        .status(201);
    let submitted = m
        .eve
        .post(&format!("{A}/changes/{n}/submit"), json!({}))
        .await
        .ok();
    m.tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "revision": submitted["revision"] }),
        )
        .await
        .ok();

    // A feed made and revoked; a release raised for a second change and
    // cancelled.
    let feed =
        m.cm.post(
            &format!("{A}/calendar-feeds"),
            json!({ "name": "ops calendar" }),
        )
        .await
        .status(201)
        .json;
    m.cm.delete(&format!("{A}/calendar-feeds/{}", feed["id"]))
        .await
        .ok();

    // Saturday 2031-06-14, 01:30 UTC: 03:30 in Berlin, inside the window.
    app.set_now(at(6, 14, 1, 30));
    changegate_jobs::run_due(app.store.as_ref(), "http://changegate.test", app.now())
        .await
        .expect("a scheduler pass");
    m.carried_out(&n, "payments runbook updated").await;
    // A deployment no change covers, recorded through the gate.
    m.ian
        .post(
            "/api/v1/gate/check",
            json!({ "tenant": "client-a", "target": { "configuration_item": "payments-api" },
                    "artifacts": ["registry.example/payments@sha256:ffff"],
                    "record": { "run": "https://ci.example/runs/7", "status": "started" } }),
        )
        .await
        .ok();

    // The evidence of June 2031 holds the change, with 2031's times.
    let e = m
        .audrey
        .get(&format!("{A}/evidence?from=2031-06-01&to=2031-06-30"))
        .await
        .ok();
    let changes = e["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{e}");
    assert_eq!(changes[0]["number"], n.as_str());
    assert_eq!(changes[0]["started_at"], "2031-06-14T01:30:00Z");
    assert_eq!(changes[0]["outcome"], "succeeded");

    // Nothing in the database carries another year.
    let stamps = app
        .db()
        .expect("the app's own database")
        .timestamps()
        .await
        .expect("timestamps read");
    let stray: Vec<String> = stamps
        .iter()
        .filter(|(_, t)| t.year() != 2031)
        .map(|(column, t)| format!("{column} = {t}"))
        .collect();
    assert!(
        stray.is_empty(),
        "written outside the request's clock: {stray:#?}"
    );
    // And the check saw the writes it is about.
    for column in [
        "tenants.created_at",
        "users.created_at",
        "api_tokens.created_at",
        "sessions.created_at",
        "tenant_objects.updated_at",
        "policies.created_at",
        "changes.created_at",
        "changes.updated_at",
        "approvals.at",
        "outbox.created_at",
        "calendar_feeds.revoked_at",
        "audit_events.at",
    ] {
        assert!(
            stamps.iter().any(|(c, _)| c == column),
            "no value of {column} was read: {:?}",
            stamps
                .iter()
                .map(|(c, _)| c)
                .collect::<std::collections::BTreeSet<_>>()
        );
    }
}

crate::on_both!(every_write_is_stamped_by_the_clock_of_the_request);
