//! Raising, routing, deciding and implementing changes.

use changegate_testkit::msp::{self, Msp, high_risk, low_risk, normal_change};
use changegate_testkit::{Resp, TestApp};
use chrono::{TimeDelta, TimeZone, Utc};
use serde_json::{Value, json};

const A: &str = "/api/v1/tenants/client-a";

async fn raise(m: &Msp, body: Value) -> String {
    let c = m
        .eve
        .post(&format!("{A}/changes"), body)
        .await
        .status(201)
        .json;
    c["number"].as_str().expect("number").to_string()
}

async fn submit(m: &Msp, n: &str) -> Value {
    m.eve
        .post(&format!("{A}/changes/{n}/submit"), json!({}))
        .await
        .ok()
}

fn decide(decision: &str) -> Value {
    json!({ "decision": decision, "comment": "looks fine", "revision": 1 })
}

async fn audit_intact(who: &changegate_testkit::Actor, tenant: &str) -> Value {
    let a = who
        .get(&format!("/api/v1/tenants/{tenant}/audit"))
        .await
        .ok();
    assert_eq!(a["intact"], json!(true), "{a}");
    a
}

async fn a_high_risk_change_needs_the_technical_board_and_the_client(app: TestApp) {
    let m = Msp::setup(&app).await;
    let n = raise(&m, normal_change("Upgrade payments", high_risk())).await;
    let c = submit(&m, &n).await;
    assert_eq!(c["state"], "awaiting-approval");
    assert_eq!(c["risk"]["level"], "high");
    assert!(
        c["fingerprint"]
            .as_str()
            .is_some_and(|f| f.starts_with("sha256:"))
    );
    let boards: Vec<&str> = c["approval"]["boards"]
        .as_array()
        .expect("boards")
        .iter()
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert_eq!(boards, ["msp-tech", "client-a-business"]);

    let after_tom = m
        .tom
        .post(&format!("{A}/changes/{n}/decisions"), decide("approve"))
        .await
        .ok();
    assert_eq!(
        after_tom["state"], "awaiting-approval",
        "the client has not approved yet"
    );
    let after_carol = m
        .carol
        .post(&format!("{A}/changes/{n}/decisions"), decide("approve"))
        .await
        .ok();
    assert_eq!(after_carol["state"], "approved");

    let approvals = m
        .audrey
        .get(&format!("{A}/changes/{n}/approvals"))
        .await
        .ok();
    let who: Vec<(&str, &str)> = approvals
        .as_array()
        .expect("list")
        .iter()
        .map(|a| {
            (
                a["approver"].as_str().unwrap_or(""),
                a["channel"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        who,
        [
            ("tom@msp.example", "api"),
            ("carol@client-a.example", "api")
        ]
    );
    assert_eq!(approvals[0]["fingerprint"], after_carol["fingerprint"]);
    assert_eq!(
        approvals[0]["policy_version"],
        after_carol["policy_version"]
    );
    audit_intact(&m.audrey, "client-a").await;
}

async fn a_low_risk_change_needs_only_the_technical_board(app: TestApp) {
    let m = Msp::setup(&app).await;
    let n = raise(&m, normal_change("Rotate logs", low_risk())).await;
    let c = submit(&m, &n).await;
    assert_eq!(c["risk"]["level"], "low");
    assert_eq!(c["approval"]["boards"].as_array().map(Vec::len), Some(1));
    let c = m
        .tina
        .post(&format!("{A}/changes/{n}/decisions"), decide("approve"))
        .await
        .ok();
    assert_eq!(c["state"], "approved");
}

async fn a_board_that_can_no_longer_approve_rejects_and_the_change_can_be_resubmitted(
    app: TestApp,
) {
    let m = Msp::setup(&app).await;
    let n = raise(&m, normal_change("Upgrade payments", high_risk())).await;
    submit(&m, &n).await;
    // client-a-business approves on any one approval: one rejection leaves dan.
    let c = m
        .carol
        .post(&format!("{A}/changes/{n}/decisions"), decide("reject"))
        .await
        .ok();
    assert_eq!(c["state"], "awaiting-approval");
    let c = m
        .dan
        .post(&format!("{A}/changes/{n}/decisions"), decide("reject"))
        .await
        .ok();
    assert_eq!(c["state"], "rejected");
    assert_eq!(c["approval"]["status"]["board"], "client-a-business");
    let again = submit(&m, &n).await;
    assert_eq!(again["state"], "awaiting-approval");
    assert_eq!(again["revision"], 2);
    let revs = m.eve.get(&format!("{A}/changes/{n}/revisions")).await.ok();
    assert_eq!(revs.as_array().map(Vec::len), Some(2));
}

async fn the_requester_cannot_approve_their_own_change(app: TestApp) {
    let m = Msp::setup(&app).await;
    // tom requests in client-a too: he is a technical approver and a requester.
    app.bind(
        "tom@msp.example",
        "client-a",
        changegate_core::Role::Requester,
    )
    .await;
    let c = m
        .tom
        .post(
            &format!("{A}/changes"),
            normal_change("Tom's change", low_risk()),
        )
        .await
        .status(201)
        .json;
    let n = c["number"].as_str().expect("number");
    let c = m
        .tom
        .post(&format!("{A}/changes/{n}/submit"), json!({}))
        .await
        .ok();
    assert_eq!(
        c["approval"]["boards"][0]["members"],
        json!(["tina@msp.example"]),
        "tom is left out of his own change's board"
    );
    let refused = m
        .tom
        .post(&format!("{A}/changes/{n}/decisions"), decide("approve"))
        .await
        .status(403);
    assert!(refused.text.contains("own change"), "{}", refused.text);
    m.tina
        .post(&format!("{A}/changes/{n}/decisions"), decide("approve"))
        .await
        .ok();
}

async fn a_client_approver_cannot_see_or_decide_another_clients_change(app: TestApp) {
    let m = Msp::setup(&app).await;
    let n = raise(&m, normal_change("Client A secret project", high_risk())).await;
    submit(&m, &n).await;
    let hidden: [Resp; 5] = [
        m.bob.get(&format!("{A}/changes/{n}")).await,
        m.bob
            .post(&format!("{A}/changes/{n}/decisions"), decide("approve"))
            .await,
        m.bob.get(&format!("{A}/changes/{n}/approvals")).await,
        m.bob.get(&format!("{A}/audit")).await,
        m.bob.get("/api/v1/changes?tenant=client-a").await,
    ];
    for r in hidden {
        assert_eq!(r.status.as_u16(), 404, "{}", r.text);
        assert!(!r.text.contains("secret"), "{}", r.text);
    }
    // The same change number under bob's own tenant does not exist either.
    m.bob
        .get(&format!("/api/v1/tenants/client-b/changes/{n}"))
        .await
        .status(404);
    let mine = m.bob.get("/api/v1/changes").await.ok();
    assert_eq!(mine["items"], json!([]));
    let tenants = m.bob.get("/api/v1/tenants").await.ok();
    assert_eq!(
        tenants.as_array().map(|t| t
            .iter()
            .filter_map(|x| x["slug"].as_str())
            .collect::<Vec<_>>()),
        Some(vec!["client-b"])
    );
    // And the decision was not recorded.
    let approvals = m
        .audrey
        .get(&format!("{A}/changes/{n}/approvals"))
        .await
        .ok();
    assert_eq!(approvals, json!([]));
}

async fn approvers_are_frozen_at_submission(app: TestApp) {
    let m = Msp::setup(&app).await;
    let n = raise(&m, normal_change("Upgrade payments", low_risk())).await;
    submit(&m, &n).await;
    // The board now names only tina; the pending change still has tom and tina.
    let r =
        m.cm.put(
            &format!("{A}/boards/msp-tech"),
            json!({ "members": ["tina@msp.example"], "rule": "all" }),
        )
        .await
        .ok();
    assert_eq!(r["applied"], "updated");
    let c = m.eve.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(
        c["approval"]["boards"][0]["members"],
        json!(["tom@msp.example", "tina@msp.example"])
    );
    assert_eq!(c["approval"]["boards"][0]["rule"], "any");
    let c = m
        .tom
        .post(&format!("{A}/changes/{n}/decisions"), decide("approve"))
        .await
        .ok();
    assert_eq!(c["state"], "approved", "tom's seat was frozen in");
    // A change submitted now gets the new board.
    let n2 = raise(&m, normal_change("Second", low_risk())).await;
    let c2 = submit(&m, &n2).await;
    assert_eq!(
        c2["approval"]["boards"][0]["members"],
        json!(["tina@msp.example"])
    );
    m.tom
        .post(&format!("{A}/changes/{n2}/decisions"), decide("approve"))
        .await
        .status(403);
}

async fn a_material_edit_after_submission_reopens_approval(app: TestApp) {
    let m = Msp::setup(&app).await;
    let n = raise(&m, normal_change("Upgrade payments", low_risk())).await;
    let c = submit(&m, &n).await;
    let first = c["fingerprint"].clone();
    m.tom
        .post(&format!("{A}/changes/{n}/decisions"), decide("approve"))
        .await
        .ok();
    // Not material: the justification is not what ships.
    let c = m
        .eve
        .patch(
            &format!("{A}/changes/{n}"),
            json!({ "justification": "customer asked" }),
        )
        .await
        .ok();
    assert_eq!(
        (c["state"].clone(), c["revision"].clone()),
        (json!("approved"), json!(1))
    );
    // Material: a different image.
    let c = m
        .eve
        .patch(
            &format!("{A}/changes/{n}"),
            json!({ "artifacts": ["registry.example/payments@sha256:bbbb"] }),
        )
        .await
        .ok();
    assert_eq!(c["state"], "awaiting-approval");
    assert_eq!(c["revision"], 2);
    assert_ne!(c["fingerprint"], first);
    // A decision on the old revision is refused; tom's old approval no longer counts.
    let stale = m
        .tina
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "revision": 1 }),
        )
        .await
        .status(409);
    assert_eq!(stale.field(), "revision");
    let c = m
        .tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "revision": 2 }),
        )
        .await
        .ok();
    assert_eq!(c["state"], "approved");
    let approvals = m.eve.get(&format!("{A}/changes/{n}/approvals")).await.ok();
    let revisions: Vec<i64> = approvals
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|a| a["revision"].as_i64())
        .collect();
    assert_eq!(revisions, [1, 2]);
    let revs = m.eve.get(&format!("{A}/changes/{n}/revisions")).await.ok();
    assert_eq!(revs[1]["changed"], json!(["artifacts", "justification"]));
}

async fn an_approval_expires_when_implementation_does_not_start_in_time(app: TestApp) {
    let m = Msp::setup(&app).await;
    msp::policy(
        &app,
        "client-a",
        json!({ "approvalExpiryHours": 24, "windowRequired": [], "routing": { "normal": [ { "from": "low", "boards": ["msp-tech"] } ] } }),
    )
    .await;
    let n = raise(&m, normal_change("Upgrade", low_risk())).await;
    submit(&m, &n).await;
    let c = m
        .tom
        .post(&format!("{A}/changes/{n}/decisions"), decide("approve"))
        .await
        .ok();
    assert!(c["approval_expires_at"].is_string());
    // Before the deadline nothing happens.
    let done = changegate_jobs::run_due(
        app.store.as_ref(),
        "http://changegate.test",
        app.now() + TimeDelta::hours(23),
    )
    .await
    .expect("pass");
    assert!(done.is_empty());
    app.set_now(app.now() + TimeDelta::hours(25));
    let done = changegate_jobs::run_due(app.store.as_ref(), "http://changegate.test", app.now())
        .await
        .expect("pass");
    assert_eq!(done.len(), 1);
    // A second pass does not expire it twice.
    assert!(
        changegate_jobs::run_due(app.store.as_ref(), "http://changegate.test", app.now())
            .await
            .expect("pass")
            .is_empty()
    );
    let c = m.eve.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(c["state"], "expired");
    m.ian
        .post(&format!("{A}/changes/{n}/start"), json!({}))
        .await
        .status(409);
    audit_intact(&m.cm, "client-a").await;
}

async fn an_emergency_change_may_start_first_and_owes_its_approval_by_the_deadline(app: TestApp) {
    let m = Msp::setup(&app).await;
    let mut body = normal_change("Patch zero-day", high_risk());
    body["type"] = json!("emergency");
    let n = raise(&m, body.clone()).await;
    let c = submit(&m, &n).await;
    assert_eq!(c["state"], "awaiting-approval");
    let c = m
        .ian
        .post(
            &format!("{A}/changes/{n}/start"),
            json!({ "note": "exploited in the wild" }),
        )
        .await
        .ok();
    assert_eq!(c["state"], "implementing");
    assert!(c["retrospective_due_at"].is_string());
    // A second emergency is approved in time.
    let n2 = raise(&m, body).await;
    submit(&m, &n2).await;
    m.ian
        .post(&format!("{A}/changes/{n2}/start"), json!({}))
        .await
        .ok();
    let c2 = m
        .tom
        .post(&format!("{A}/changes/{n2}/decisions"), decide("approve"))
        .await
        .ok();
    assert_eq!(
        c2["state"], "implementing",
        "a retrospective approval does not move the change"
    );
    assert!(c2["decided_at"].is_string());
    app.set_now(app.now() + TimeDelta::hours(25));
    let done = changegate_jobs::run_due(app.store.as_ref(), "http://changegate.test", app.now())
        .await
        .expect("pass");
    assert_eq!(
        done,
        vec![changegate_jobs::Outcome::RetrospectiveOverdue(
            n.parse().expect("number")
        )]
    );
    let c = m.eve.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(c["retrospective_overdue"], true);
    let c2 = m.eve.get(&format!("{A}/changes/{n2}")).await.ok();
    assert_eq!(c2["retrospective_overdue"], false);
}

async fn a_normal_change_starts_only_inside_an_open_window(app: TestApp) {
    let m = Msp::setup(&app).await;
    m.cm.put(
        &format!("{A}/windows/weekly"),
        json!({ "timeZone": "Europe/Berlin", "schedule": { "cron": { "expr": "0 2 * * SAT", "duration": "4h" } } }),
    )
    .await
    .ok();
    let n = raise(&m, normal_change("Upgrade", low_risk())).await;
    submit(&m, &n).await;
    m.tom
        .post(&format!("{A}/changes/{n}/decisions"), decide("approve"))
        .await
        .ok();
    // Wednesday: closed, and the refusal says when the window opens.
    let refused = m
        .ian
        .post(&format!("{A}/changes/{n}/start"), json!({}))
        .await
        .status(409);
    assert!(
        refused.text.contains("weekly") && refused.text.contains("2026-11-28 02:00"),
        "{}",
        refused.text
    );
    // The client's admin adds a blackout over Saturday; she may not add maintenance windows.
    let blackout = json!({ "kind": "blackout", "timeZone": "Europe/Berlin",
        "schedule": { "ranges": [ { "start": "2026-11-28T00:00:00Z", "end": "2026-11-28T12:00:00Z" } ] } });
    m.alice
        .put(&format!("{A}/windows/payroll-run"), blackout)
        .await
        .ok();
    m.alice
        .put(
            &format!("{A}/windows/extra"),
            json!({ "schedule": { "cron": { "expr": "0 1 * * *", "duration": "1h" } } }),
        )
        .await
        .status(403);
    app.set_now(
        Utc.with_ymd_and_hms(2026, 11, 28, 2, 30, 0)
            .single()
            .expect("time"),
    );
    let blocked = m
        .ian
        .post(&format!("{A}/changes/{n}/start"), json!({}))
        .await
        .status(409);
    assert!(blocked.text.contains("payroll-run"), "{}", blocked.text);
    m.alice
        .delete(&format!("{A}/windows/payroll-run"))
        .await
        .status(204);
    let c = m
        .ian
        .post(&format!("{A}/changes/{n}/start"), json!({}))
        .await
        .ok();
    assert_eq!(c["state"], "implementing");
    assert_eq!(c["implementer"], "ian@msp.example");
    // Completing needs the documentation of the configuration items it touched.
    let r = m
        .ian
        .post(&format!("{A}/changes/{n}/complete"), json!({}))
        .await
        .status(422);
    assert_eq!(r.field(), "documentation");
    let c = m
        .ian
        .post(
            &format!("{A}/changes/{n}/complete"),
            json!({ "documentation": "runbook v2.4.1" }),
        )
        .await
        .ok();
    assert_eq!(c["state"], "implemented");
    let c = m
        .ian
        .post(
            &format!("{A}/changes/{n}/review"),
            json!({ "outcome": "succeeded", "notes": "smooth" }),
        )
        .await
        .ok();
    assert_eq!(c["state"], "closed");
    audit_intact(&m.audrey, "client-a").await;
}

async fn a_standard_change_from_a_current_template_is_approved_at_submission(app: TestApp) {
    let m = Msp::setup(&app).await;
    let template = json!({ "title": "Restart app pool", "approvedBy": "cm@msp.example",
        "approvedOn": "2026-01-05", "reviewDue": "2027-01-05", "configurationItems": ["iis-web"] });
    m.cm.put(&format!("{A}/templates/restart-app-pool"), template.clone())
        .await
        .ok();
    let n = raise(
        &m,
        json!({ "type": "standard", "title": "Restart pool", "template": "restart-app-pool" }),
    )
    .await;
    let c = submit(&m, &n).await;
    assert_eq!(c["state"], "approved");
    // Without a template, or with one past its review date: refused, with the field.
    let n2 = raise(&m, json!({ "type": "standard", "title": "Restart pool" })).await;
    let r = m
        .eve
        .post(&format!("{A}/changes/{n2}/submit"), json!({}))
        .await
        .status(422);
    assert_eq!(r.field(), "template");
    let mut stale = template;
    stale["reviewDue"] = json!("2026-06-01");
    m.cm.put(&format!("{A}/templates/old"), stale).await.ok();
    let n3 = raise(
        &m,
        json!({ "type": "standard", "title": "Restart pool", "template": "old" }),
    )
    .await;
    let r = m
        .eve
        .post(&format!("{A}/changes/{n3}/submit"), json!({}))
        .await
        .status(422);
    assert!(r.text.contains("review"), "{}", r.text);
}

async fn a_chair_veto_and_a_mandatory_member_decide_a_board(app: TestApp) {
    let m = Msp::setup(&app).await;
    msp::board(&app, "client-a", json!({ "name": "cab", "members": ["tom@msp.example", "tina@msp.example", "carol@client-a.example"],
        "rule": "majority", "chair": "carol@client-a.example", "mandatory": ["dan@client-a.example"] })).await;
    msp::policy(
        &app,
        "client-a",
        json!({ "routing": { "normal": [ { "from": "low", "boards": ["cab"] } ] } }),
    )
    .await;
    // dan, mandatory, sits on the board too: 4 members, a majority is 3.
    let n = raise(&m, normal_change("One", low_risk())).await;
    let c = submit(&m, &n).await;
    assert_eq!(
        c["approval"]["boards"][0]["members"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
    m.tom
        .post(&format!("{A}/changes/{n}/decisions"), decide("approve"))
        .await
        .ok();
    let c = m
        .tina
        .post(&format!("{A}/changes/{n}/decisions"), decide("approve"))
        .await
        .ok();
    assert_eq!(c["state"], "awaiting-approval");
    assert_eq!(
        c["approval"]["status"]["waiting_for"][0]["awaiting"][0], "dan@client-a.example",
        "the mandatory member first"
    );
    let c = m
        .dan
        .post(&format!("{A}/changes/{n}/decisions"), decide("approve"))
        .await
        .ok();
    assert_eq!(c["state"], "approved");
    // The chair's rejection vetoes whatever the majority says.
    let n2 = raise(&m, normal_change("Two", low_risk())).await;
    submit(&m, &n2).await;
    m.tom
        .post(&format!("{A}/changes/{n2}/decisions"), decide("approve"))
        .await
        .ok();
    m.tina
        .post(&format!("{A}/changes/{n2}/decisions"), decide("approve"))
        .await
        .ok();
    let c = m
        .carol
        .post(&format!("{A}/changes/{n2}/decisions"), decide("reject"))
        .await
        .ok();
    assert_eq!(c["state"], "rejected");
}

async fn a_delegate_decides_in_the_seat_of_an_absent_approver(app: TestApp) {
    let m = Msp::setup(&app).await;
    let n = raise(&m, normal_change("Upgrade", high_risk())).await;
    submit(&m, &n).await;
    let week = json!({ "from": "carol@client-a.example", "to": "tina@msp.example",
        "starts_at": app.now() - TimeDelta::hours(1), "ends_at": app.now() + TimeDelta::days(7) });
    // Without the delegation tina cannot act for carol.
    m.tina
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "on_behalf_of": "carol@client-a.example", "revision": 1 }),
        )
        .await
        .status(403);
    // Only carol (or a change manager) delegates carol's seat.
    m.dan
        .post(&format!("{A}/delegations"), week.clone())
        .await
        .status(403);
    m.carol
        .post(&format!("{A}/delegations"), week)
        .await
        .status(201);
    m.tom
        .post(&format!("{A}/changes/{n}/decisions"), decide("approve"))
        .await
        .ok();
    let c = m
        .tina
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "on_behalf_of": "carol@client-a.example", "revision": 1 }),
        )
        .await
        .ok();
    assert_eq!(c["state"], "approved");
    let approvals = m.eve.get(&format!("{A}/changes/{n}/approvals")).await.ok();
    assert_eq!(approvals[1]["approver"], "tina@msp.example");
    assert_eq!(approvals[1]["on_behalf_of"], "carol@client-a.example");
}

async fn risk_answers_are_checked_at_submission_and_name_the_field(app: TestApp) {
    let m = Msp::setup(&app).await;
    let n = raise(&m, normal_change("Upgrade", json!({ "production": "yes" }))).await;
    let r = m
        .eve
        .post(&format!("{A}/changes/{n}/submit"), json!({}))
        .await
        .status(422);
    assert_eq!(r.field(), "risk_answers.outage");
    let c = m.eve.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(
        c["state"], "draft",
        "a refused submission leaves the draft as it was"
    );
}

async fn lists_filter_and_paginate_within_the_callers_tenants(app: TestApp) {
    let m = Msp::setup(&app).await;
    for i in 0..5 {
        raise(&m, normal_change(&format!("A{i}"), low_risk())).await;
    }
    let b = m
        .eve
        .post(
            "/api/v1/tenants/client-b/changes",
            normal_change("B0", low_risk()),
        )
        .await
        .status(201)
        .json;
    let bn = b["number"].as_str().expect("number").to_string();
    m.eve
        .post(
            &format!("/api/v1/tenants/client-b/changes/{bn}/submit"),
            json!({}),
        )
        .await
        .ok();
    let page1 = m.eve.get("/api/v1/changes?limit=4").await.ok();
    assert_eq!(page1["items"].as_array().map(Vec::len), Some(4));
    let next = page1["next_before"].as_str().expect("more pages");
    let page2 = m
        .eve
        .get(&format!("/api/v1/changes?limit=4&before={next}"))
        .await
        .ok();
    assert_eq!(page2["items"].as_array().map(Vec::len), Some(2));
    assert!(page2["next_before"].is_null());
    let only_b = m
        .eve
        .get("/api/v1/changes?tenant=client-b&state=awaiting-approval")
        .await
        .ok();
    assert_eq!(only_b["items"][0]["number"], json!(bn));
    assert_eq!(only_b["items"].as_array().map(Vec::len), Some(1));
    let drafts = m
        .eve
        .get(&format!(
            "{A}/changes?state=draft&type=normal&requester=eve@msp.example"
        ))
        .await
        .ok();
    assert_eq!(drafts["items"].as_array().map(Vec::len), Some(5));
    let future = m
        .eve
        .get(&format!("{A}/changes?from=2030-01-01T00:00:00Z"))
        .await
        .ok();
    assert_eq!(future["items"], json!([]));
    let bad = m
        .eve
        .get(&format!("{A}/changes?state=done"))
        .await
        .status(422);
    assert_eq!(bad.field(), "state");
    // carol sees client-a only.
    let carol = m.carol.get("/api/v1/changes?limit=100").await.ok();
    assert!(
        carol["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|c| c["tenant"] == "client-a")
    );
}

/// The change form's preview: risk, approvers by name, the window around
/// the slot, the change already booked on the same item then, the
/// earliest slot allowed; what stops submission is listed; nothing is
/// written.
async fn a_preview_names_the_approvers_the_windows_the_clash_and_the_earliest_slot(app: TestApp) {
    let m = Msp::setup(&app).await;
    // Saturdays 02:00-06:00 Berlin: 01:00-05:00 UTC on 28 November.
    m.cm.put(
        &format!("{A}/windows/weekly"),
        json!({ "timeZone": "Europe/Berlin", "schedule": { "cron": { "expr": "0 2 * * SAT", "duration": "4h" } } }),
    )
    .await
    .ok();
    let mut booked = normal_change("Booked first", low_risk());
    booked["planned_start"] = json!("2026-11-28T01:00:00Z");
    booked["planned_end"] = json!("2026-11-28T02:00:00Z");
    let first = raise(&m, booked).await;
    submit(&m, &first).await;
    let head = audit_intact(&m.cm, "client-a").await;

    let mut body = normal_change("Upgrade payments", high_risk());
    body["planned_start"] = json!("2026-11-28T01:30:00Z");
    body["planned_end"] = json!("2026-11-28T02:30:00Z");
    let p = m
        .eve
        .post(&format!("{A}/changes/preview"), body.clone())
        .await
        .ok();
    assert_eq!(p["risk"]["level"], "high", "{p}");
    assert_eq!(p["problems"], json!([]), "{p}");
    let boards: Vec<(String, Value)> = p["approvers"]
        .as_array()
        .expect("approvers")
        .iter()
        .map(|b| {
            (
                b["board"].as_str().unwrap_or("").to_string(),
                b["people"].clone(),
            )
        })
        .collect();
    assert_eq!(
        boards,
        [
            (
                "msp-tech".to_string(),
                json!(["tom <tom@msp.example>", "tina <tina@msp.example>"])
            ),
            (
                "client-a-business".to_string(),
                json!([
                    "carol <carol@client-a.example>",
                    "dan <dan@client-a.example>"
                ])
            ),
        ],
        "{p}"
    );
    assert_eq!(p["windows"][0]["name"], "weekly");
    assert_eq!(p["windows"][0]["start"], "2026-11-28T01:00:00Z");
    assert_eq!(p["others"][0]["number"], first.as_str(), "{p}");
    assert_eq!(p["others"][0]["state"], "awaiting-approval");
    let problems = p["slot"]["problems"].to_string();
    assert!(
        problems.contains(&format!("{first} is booked on payments-api")),
        "{p}"
    );
    // Right after the booked change, inside the same window.
    assert_eq!(p["earliest"], "2026-11-28T02:00:00Z", "{p}");

    // ian is booked for client B 02:00-03:00: a preview naming him as the
    // implementer says so (not on what), and the earliest slot waits for him.
    let mut theirs = normal_change("Patch the VPN", low_risk());
    theirs["implementer"] = json!("ian@msp.example");
    theirs["planned_start"] = json!("2026-11-28T02:00:00Z");
    theirs["planned_end"] = json!("2026-11-28T03:00:00Z");
    let b = m
        .eve
        .post("/api/v1/tenants/client-b/changes", theirs)
        .await
        .status(201)
        .json["number"]
        .as_str()
        .expect("number")
        .to_string();
    m.eve
        .post(
            &format!("/api/v1/tenants/client-b/changes/{b}/submit"),
            json!({}),
        )
        .await
        .ok();
    let mut mine = body.clone();
    mine["implementer"] = json!("ian@msp.example");
    let p = m.eve.post(&format!("{A}/changes/preview"), mine).await.ok();
    let problems = p["slot"]["problems"].to_string();
    assert!(
        problems.contains(
            "ian@msp.example is booked on another client's booking from 2026-11-28 02:00 UTC"
        ),
        "{p}"
    );
    assert!(
        !p.to_string().contains(&b),
        "client B's change is not named: {p}"
    );
    assert_eq!(p["earliest"], "2026-11-28T03:00:00Z", "{p}");

    // Unanswered questions and a slot outside every window are said, not refused.
    let mut body = normal_change("Upgrade payments", json!({}));
    body["planned_start"] = json!("2026-11-30T09:00:00Z");
    let p = m.eve.post(&format!("{A}/changes/preview"), body).await.ok();
    assert!(p["risk"].is_null(), "{p}");
    assert!(
        p["problems"][0]
            .as_str()
            .is_some_and(|m| m.contains("production")),
        "{p}"
    );
    assert!(
        p["slot"]["problems"][0]
            .as_str()
            .is_some_and(|m| m.contains("no maintenance window is open")),
        "{p}"
    );

    let after = audit_intact(&m.cm, "client-a").await;
    assert_eq!(head, after, "a preview writes nothing");
    let list = m.eve.get(&format!("{A}/changes")).await.ok();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
}

crate::on_both!(
    a_preview_names_the_approvers_the_windows_the_clash_and_the_earliest_slot,
    a_high_risk_change_needs_the_technical_board_and_the_client,
    a_low_risk_change_needs_only_the_technical_board,
    a_board_that_can_no_longer_approve_rejects_and_the_change_can_be_resubmitted,
    the_requester_cannot_approve_their_own_change,
    a_client_approver_cannot_see_or_decide_another_clients_change,
    approvers_are_frozen_at_submission,
    a_material_edit_after_submission_reopens_approval,
    an_approval_expires_when_implementation_does_not_start_in_time,
    an_emergency_change_may_start_first_and_owes_its_approval_by_the_deadline,
    a_normal_change_starts_only_inside_an_open_window,
    a_standard_change_from_a_current_template_is_approved_at_submission,
    a_chair_veto_and_a_mandatory_member_decide_a_board,
    a_delegate_decides_in_the_seat_of_an_absent_approver,
    risk_answers_are_checked_at_submission_and_name_the_field,
    lists_filter_and_paginate_within_the_callers_tenants,
);
