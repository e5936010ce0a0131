//! Releases: the MSP story of seed 000 through the API. Client A's normal
//! change (technical and client approval) and client B's standard change
//! go out in one release in a shared window; a conflict is shown and
//! overridden; one step fails, the rollback is authorized and recorded;
//! PIRs close the changes, then the release. Each tenant sees only its
//! own part.

use changegate_core::Role;
use changegate_testkit::msp::{Msp, high_risk, low_risk, normal_change};
use changegate_testkit::{Actor, TestApp};
use chrono::{TimeDelta, TimeZone, Utc};
use serde_json::{Value, json};

const A: &str = "/api/v1/tenants/client-a";
const B: &str = "/api/v1/tenants/client-b";

/// Saturday 02:00–06:00 Berlin, in both tenants.
async fn weekly_windows(m: &Msp) {
    for t in [A, B] {
        m.cm.put(
            &format!("{t}/windows/weekly"),
            json!({ "timeZone": "Europe/Berlin", "schedule": { "cron": { "expr": "0 2 * * SAT", "duration": "4h" } } }),
        )
        .await
        .ok();
    }
}

/// Client A's high-risk change, approved by tom and carol; `ian` implements.
pub(crate) async fn approved_in_a(m: &Msp, title: &str, extra: Value) -> String {
    let mut body = normal_change(title, high_risk());
    body["implementer"] = json!("ian@msp.example");
    for (k, v) in extra.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
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
        .post(&format!("{A}/changes/{n}/submit"), json!({}))
        .await
        .ok();
    for who in [&m.tom, &m.carol] {
        who.post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "revision": 1 }),
        )
        .await
        .ok();
    }
    let c = m.eve.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(c["state"], "approved", "{c}");
    n
}

/// Client B's standard change from its template: approved at submission.
pub(crate) async fn standard_in_b(m: &Msp) -> String {
    m.cm.put(
        &format!("{B}/templates/vpn-rotate"),
        json!({ "title": "Rotate VPN keys", "approvedBy": "cm@msp.example", "approvedOn": "2026-01-05",
                "reviewDue": "2027-01-05", "configurationItems": ["vpn-gateway"] }),
    )
    .await
    .ok();
    let n = m
        .eve
        .post(
            &format!("{B}/changes"),
            json!({ "type": "standard", "title": "Rotate VPN keys", "template": "vpn-rotate",
                    "implementer": "ian@msp.example", "test_plan": "connect from the test client" }),
        )
        .await
        .status(201)
        .json["number"]
        .as_str()
        .expect("number")
        .to_string();
    let c = m
        .eve
        .post(&format!("{B}/changes/{n}/submit"), json!({}))
        .await
        .ok();
    assert_eq!(c["state"], "approved");
    n
}

fn keys(r: &Value, field: &str) -> Vec<String> {
    r[field]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| c["key"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn numbers(r: &Value) -> Vec<String> {
    r["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["number"].as_str().expect("number").to_string())
        .collect()
}

pub(crate) async fn release_manager(app: &TestApp) -> Actor {
    app.msp(
        "rita@msp.example",
        &[
            ("client-a", Role::ReleaseManager),
            ("client-b", Role::ReleaseManager),
        ],
    )
    .await
}

async fn two_clients_one_release_a_failed_step_rolled_back_then_reviewed_and_closed(app: TestApp) {
    let m = Msp::setup(&app).await;
    let rita = release_manager(&app).await;
    weekly_windows(&m).await;
    let a = approved_in_a(&m, "Upgrade payments", json!({})).await;
    let b = standard_in_b(&m).await;
    // Another change of client A holds payments-api, and ian, in the same slot.
    let other = approved_in_a(
        &m,
        "Resize payments database",
        json!({ "planned_start": "2026-11-28T01:30:00Z", "planned_end": "2026-11-28T02:30:00Z" }),
    )
    .await;

    let body = json!({
        "name": "November maintenance",
        "changes": [ { "tenant": "client-a", "change": a }, { "tenant": "client-b", "change": b } ],
        "planned_start": "2026-11-28T01:00:00Z", "planned_end": "2026-11-28T03:00:00Z",
        "runbook": [
            { "kind": "deploy", "title": "Upgrade payments-api to 2.4.1", "owner": "ian@msp.example", "change": a },
            { "kind": "deploy", "title": "Rotate the VPN keys", "owner": "ian@msp.example", "change": b },
            { "kind": "validate", "title": "Smoke tests of both clients", "owner": "ian@msp.example" },
            { "kind": "rollback", "title": "Restore payments-api 2.4.0", "owner": "ian@msp.example", "change": a },
            { "kind": "rollback", "title": "Restore the previous VPN keys", "owner": "ian@msp.example", "change": b },
        ],
    });
    // Only a release manager of every tenant involved packages it.
    m.eve
        .post("/api/v1/releases", body.clone())
        .await
        .status(403);
    // Client B's approver does not even see client A.
    m.bob
        .post("/api/v1/releases", body.clone())
        .await
        .status(404);
    let r = rita.post("/api/v1/releases", body).await.status(201).json;
    let rel = r["number"].as_str().expect("number").to_string();
    assert!(rel.starts_with("REL-"));
    assert_eq!(r["state"], "planning");
    assert_eq!(numbers(&r), [a.clone(), b.clone()]);
    // The clash on payments-api and ian double-booked are shown with the
    // slot, and the earliest slot all of it fits is proposed.
    let conflicts = keys(&r, "conflicts");
    assert!(
        conflicts.contains(&format!("clash:client-a:{other}:payments-api")),
        "{conflicts:?}"
    );
    // ian implements client B's change too: B's view says he is booked,
    // not on what of client A's.
    let twice = format!("double-booked:client-b:{b}:other-20261128T0130Z");
    assert!(conflicts.contains(&twice), "{conflicts:?}");
    assert!(
        !conflicts
            .iter()
            .any(|k| k.starts_with("double-booked:client-b") && k.contains(&other)),
        "{conflicts:?}"
    );
    assert_eq!(r["proposed_start"], "2026-11-28T02:30:00Z", "{r}");

    // Plan authorized: both changes scheduled.
    let r = rita
        .post(
            &format!("/api/v1/releases/{rel}/phases"),
            json!({ "phase": "plan", "note": "CAB of 2026-11-25" }),
        )
        .await
        .ok();
    assert_eq!(r["state"], "build-and-test");
    for (t, n) in [(A, &a), (B, &b)] {
        let c = m.eve.get(&format!("{t}/changes/{n}")).await.ok();
        assert_eq!(c["state"], "scheduled");
    }
    // Build and test needs test evidence on every change.
    let refused = rita
        .post(
            &format!("/api/v1/releases/{rel}/phases"),
            json!({ "phase": "build-and-test" }),
        )
        .await
        .status(409);
    assert!(refused.text.contains("test evidence"), "{}", refused.text);
    for (t, n) in [(A, &a), (B, &b)] {
        let c = m
            .eve
            .patch(
                &format!("{t}/changes/{n}"),
                json!({ "test_evidence": "staging run 2026-11-26 green" }),
            )
            .await
            .ok();
        assert_eq!(c["state"], "scheduled", "test evidence is not material");
    }
    rita.post(
        &format!("/api/v1/releases/{rel}/phases"),
        json!({ "phase": "build-and-test" }),
    )
    .await
    .ok();

    // Wednesday: the windows are closed, which no one overrides.
    let refused = rita
        .post(
            &format!("/api/v1/releases/{rel}/phases"),
            json!({ "phase": "deploy" }),
        )
        .await
        .status(409);
    assert!(refused.text.contains("weekly"), "{}", refused.text);
    let window_key = keys(
        &m.cm.get(&format!("/api/v1/releases/{rel}")).await.ok(),
        "conflicts",
    )
    .into_iter()
    .find(|k| k.starts_with("window:"));
    assert!(
        window_key.is_none(),
        "the planned slot is inside the window"
    );

    // Saturday 01:30 UTC: open, but the clash stands until overridden.
    app.set_now(
        Utc.with_ymd_and_hms(2026, 11, 28, 1, 30, 0)
            .single()
            .expect("a valid time"),
    );
    let refused = rita
        .post(
            &format!("/api/v1/releases/{rel}/phases"),
            json!({ "phase": "deploy" }),
        )
        .await
        .status(409);
    assert!(refused.text.contains(&other), "{}", refused.text);
    let clash = format!("clash:client-a:{other}:payments-api");
    // Only a change manager overrides, with a reason; a client approver cannot.
    rita.post(
        &format!("/api/v1/releases/{rel}/overrides"),
        json!({ "conflict": clash, "reason": "same team" }),
    )
    .await
    .status(403);
    m.carol
        .post(
            &format!("/api/v1/releases/{rel}/overrides"),
            json!({ "conflict": clash, "reason": "fine" }),
        )
        .await
        .status(403);
    m.cm.post(
        &format!("/api/v1/releases/{rel}/overrides"),
        json!({ "conflict": clash, "reason": " " }),
    )
    .await
    .status(422);
    for key in [&clash, &twice] {
        m.cm.post(
            &format!("/api/v1/releases/{rel}/overrides"),
            json!({ "conflict": key, "reason": "the resize is postponed to next week" }),
        )
        .await
        .ok();
    }
    let r = rita
        .post(
            &format!("/api/v1/releases/{rel}/phases"),
            json!({ "phase": "deploy", "note": "go" }),
        )
        .await
        .ok();
    assert_eq!(r["state"], "deploying");
    let phases: Vec<&str> = r["authorizations"]
        .as_array()
        .expect("authorizations")
        .iter()
        .map(|x| x["phase"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(phases, ["plan", "build-and-test", "deploy"]);
    for (t, n) in [(A, &a), (B, &b)] {
        let c = m.eve.get(&format!("{t}/changes/{n}")).await.ok();
        assert_eq!(
            (c["state"].as_str(), c["implementer"].as_str()),
            (Some("implementing"), Some("ian@msp.example"))
        );
    }

    // The runbook: step 1 done, step 2 fails, step 3 waits for a rollback.
    let step = |i: usize| format!("/api/v1/releases/{rel}/steps/{i}");
    m.ian
        .post(
            &step(1),
            json!({ "status": "done", "evidence": "helm revision 14" }),
        )
        .await
        .ok();
    m.ian
        .post(
            &step(2),
            json!({ "status": "failed", "evidence": "tunnel down after rotation" }),
        )
        .await
        .ok();
    let refused = m
        .ian
        .post(&step(3), json!({ "status": "done", "evidence": "ok" }))
        .await
        .status(409);
    assert!(refused.text.contains("rollback"), "{}", refused.text);
    // Not ian's to authorize; rita authorizes it with a reason.
    m.ian
        .post(
            &format!("/api/v1/releases/{rel}/rollback"),
            json!({ "reason": "VPN down" }),
        )
        .await
        .status(403);
    let r = rita
        .post(
            &format!("/api/v1/releases/{rel}/rollback"),
            json!({ "reason": "client B's VPN is down after step 2" }),
        )
        .await
        .ok();
    assert_eq!(r["state"], "rolling-back");
    m.ian
        .post(
            &step(4),
            json!({ "status": "done", "evidence": "payments-api 2.4.0 restored" }),
        )
        .await
        .ok();
    rita.post(&format!("/api/v1/releases/{rel}/finish"), json!({}))
        .await
        .status(409);
    m.ian
        .post(
            &step(5),
            json!({ "status": "done", "evidence": "previous VPN keys restored" }),
        )
        .await
        .ok();
    app.set_now(
        Utc.with_ymd_and_hms(2026, 11, 28, 2, 40, 0)
            .single()
            .expect("a valid time"),
    );
    let r = rita
        .post(&format!("/api/v1/releases/{rel}/finish"), json!({}))
        .await
        .ok();
    assert_eq!(
        (r["state"].as_str(), r["outcome"].as_str()),
        (Some("finished"), Some("rolled-back"))
    );
    assert_eq!(r["rollback"]["authorized_by"], "rita@msp.example");
    assert_eq!(r["rollback"]["finished_at"], "2026-11-28T02:40:00Z");
    assert_eq!(
        r["rollback"]["restored"],
        "payments-api 2.4.0 restored; previous VPN keys restored"
    );
    for (t, n) in [(A, &a), (B, &b)] {
        let c = m.eve.get(&format!("{t}/changes/{n}")).await.ok();
        assert_eq!(c["state"], "rolled-back");
    }
    // The requester hears of each outcome, as from any other path.
    let told: Vec<String> = app
        .store
        .due_messages(app.now() + TimeDelta::days(1), 100)
        .await
        .expect("the outbox")
        .into_iter()
        .filter(|msg| msg.recipient == "eve@msp.example" && msg.subject.contains("rolled-back"))
        .map(|msg| msg.subject)
        .collect();
    assert_eq!(told.len(), 2, "{told:?}");

    // Each tenant sees its own part only.
    let seen_by_b = m.bob.get(&format!("/api/v1/releases/{rel}")).await.ok();
    assert_eq!(numbers(&seen_by_b), std::slice::from_ref(&b));
    assert!(!seen_by_b.to_string().contains(&a), "{seen_by_b}");
    assert!(
        !seen_by_b.to_string().contains("payments-api"),
        "{seen_by_b}"
    );
    assert_eq!(
        seen_by_b["rollback"]["restored"],
        "previous VPN keys restored"
    );
    let steps: Vec<u64> = seen_by_b["runbook"]
        .as_array()
        .expect("runbook")
        .iter()
        .filter_map(|s| s["step"].as_u64())
        .collect();
    assert_eq!(steps, [2, 3, 5]);
    let seen_by_a = m.carol.get(&format!("/api/v1/releases/{rel}")).await.ok();
    assert_eq!(numbers(&seen_by_a), std::slice::from_ref(&a));
    let listed = m.bob.get("/api/v1/releases").await.ok();
    assert_eq!(listed[0]["changes"], json!([format!("client-b/{b}")]));
    let stranger = app.msp("sam@msp.example", &[]).await;
    stranger
        .get(&format!("/api/v1/releases/{rel}"))
        .await
        .status(404);
    assert_eq!(stranger.get("/api/v1/releases").await.ok(), json!([]));
    m.bob
        .post(&format!("/api/v1/releases/{rel}/close"), json!({}))
        .await
        .status(403);

    // Closing waits for every change's post-implementation review.
    let refused = rita
        .post(&format!("/api/v1/releases/{rel}/close"), json!({}))
        .await
        .status(409);
    assert!(
        refused.text.contains(&a) && refused.text.contains(&b),
        "{}",
        refused.text
    );
    for (t, n) in [(A, &a), (B, &b)] {
        m.ian
            .post(
                &format!("{t}/changes/{n}/review"),
                json!({ "outcome": "rolled-back", "notes": "VPN rotation broke the tunnel", "lessons": "rotate B alone" }),
            )
            .await
            .ok();
    }
    let r = rita
        .post(&format!("/api/v1/releases/{rel}/close"), json!({}))
        .await
        .ok();
    assert_eq!(r["state"], "closed");

    // Both chains hold their part of the release and verify.
    for (who, t) in [(&m.audrey, "client-a"), (&m.cm, "client-b")] {
        let audit = who.get(&format!("/api/v1/tenants/{t}/audit")).await.ok();
        assert_eq!(audit["intact"], true, "{audit}");
    }
    let b_events: Vec<_> = app
        .store
        .audit_events(
            app.store
                .tenant_by_slug("client-b")
                .await
                .expect("as set up")
                .id,
        )
        .await
        .expect("as set up")
        .0;
    let about_release: Vec<&str> = b_events
        .iter()
        .filter(|e| e.body.subject == rel)
        .map(|e| e.body.action.as_str())
        .collect();
    assert!(
        about_release.contains(&"release.rollback-authorized"),
        "{about_release:?}"
    );
    let leaks: Vec<_> = b_events
        .iter()
        .filter(|e| {
            e.body.detail.contains(&a)
                || e.body.detail.contains("payments-api")
                || e.body.subject == a
        })
        .map(|e| (&e.body.action, &e.body.detail))
        .collect();
    assert!(
        leaks.is_empty(),
        "client B's chain names client A's: {leaks:?}"
    );
}

async fn a_release_refuses_unapproved_changes_and_bad_runbooks(app: TestApp) {
    let m = Msp::setup(&app).await;
    let rita = release_manager(&app).await;
    let awaiting = m.submitted(low_risk()).await;
    let r = rita
        .post(
            "/api/v1/releases",
            json!({ "name": "x", "changes": [ { "tenant": "client-a", "change": awaiting } ] }),
        )
        .await
        .status(422);
    assert_eq!(r.field(), "changes[0].change");
    assert!(r.text.contains("awaiting-approval"), "{}", r.text);
    m.tom
        .post(
            &format!("{A}/changes/{awaiting}/decisions"),
            json!({ "decision": "approve", "revision": 1 }),
        )
        .await
        .ok();
    let ok = json!([ { "tenant": "client-a", "change": awaiting } ]);
    let r = rita
        .post(
            "/api/v1/releases",
            json!({ "name": "x", "changes": ok, "runbook": [ { "kind": "deploy", "title": "go", "change": "CHG-999" } ] }),
        )
        .await
        .status(422);
    assert_eq!(r.field(), "runbook[0].change");
    let r = rita
        .post(
            "/api/v1/releases",
            json!({ "name": "x", "changes": ok, "runbook": [ { "kind": "deploy", "title": " " } ] }),
        )
        .await
        .status(422);
    assert_eq!(r.field(), "runbook[0].title");
    let r = rita
        .post(
            "/api/v1/releases",
            json!({ "name": "x", "changes": ok, "planned_start": "2026-11-28T03:00:00Z", "planned_end": "2026-11-28T01:00:00Z" }),
        )
        .await
        .status(422);
    assert_eq!(r.field(), "planned_end");
    assert_eq!(
        rita.get("/api/v1/releases").await.ok(),
        json!([]),
        "nothing half-written"
    );
    // Without a slot the plan is not authorized; cancelled, the change is free again.
    let r = rita
        .post("/api/v1/releases", json!({ "name": "x", "changes": ok }))
        .await
        .status(201)
        .json;
    let rel = r["number"].as_str().expect("as set up").to_string();
    assert_eq!(keys(&r, "conflicts"), ["slot:client-a"]);
    rita.post(
        &format!("/api/v1/releases/{rel}/phases"),
        json!({ "phase": "plan" }),
    )
    .await
    .status(409);
    rita.patch(
        &format!("/api/v1/releases/{rel}"),
        json!({ "planned_start": "2026-11-28T01:00:00Z", "planned_end": "2026-11-28T02:00:00Z" }),
    )
    .await
    .ok();
    rita.post(
        &format!("/api/v1/releases/{rel}/phases"),
        json!({ "phase": "plan" }),
    )
    .await
    .ok();
    let c = m.eve.get(&format!("{A}/changes/{awaiting}")).await.ok();
    assert_eq!(c["state"], "scheduled");
    rita.post(&format!("/api/v1/releases/{rel}/cancel"), json!({}))
        .await
        .ok();
    let c = m.eve.get(&format!("{A}/changes/{awaiting}")).await.ok();
    assert_eq!(c["state"], "approved");
    rita.get("/api/v1/releases/REL-999").await.status(404);
}

async fn the_release_page_authorizes_phases_and_shows_each_client_its_part(app: TestApp) {
    let m = Msp::setup(&app).await;
    release_manager(&app).await;
    weekly_windows(&m).await;
    let a = approved_in_a(&m, "Upgrade payments", json!({})).await;
    let b = standard_in_b(&m).await;
    let rita = crate::portal::sign_in(&app, "rita@msp.example").await;
    let api = app
        .msp(
            "rita-api@msp.example",
            &[
                ("client-a", Role::ReleaseManager),
                ("client-b", Role::ReleaseManager),
            ],
        )
        .await;
    let rel = api
        .post(
            "/api/v1/releases",
            json!({ "name": "November maintenance",
                    "changes": [ { "tenant": "client-a", "change": a }, { "tenant": "client-b", "change": b } ],
                    "planned_start": "2026-11-28T01:00:00Z", "planned_end": "2026-11-28T03:00:00Z",
                    "runbook": [ { "kind": "deploy", "title": "Upgrade payments-api", "owner": "ian@msp.example", "change": a },
                                 { "kind": "deploy", "title": "Rotate VPN keys", "owner": "ian@msp.example", "change": b } ] }),
        )
        .await
        .status(201)
        .json["number"]
        .as_str()
        .expect("number")
        .to_string();
    let list = rita.get("/releases").await.status(200).text;
    assert!(
        list.contains(&rel) && list.contains("November maintenance"),
        "{list}"
    );
    let page = rita.get(&format!("/releases/{rel}")).await.status(200).text;
    assert!(
        page.contains("Authorize plan") && page.contains(&a) && page.contains(&b),
        "{page}"
    );
    let token = crate::portal::csrf(&page);
    let r = rita
        .form(
            &format!("/releases/{rel}/phases"),
            &[("csrf", &token), ("phase", "plan"), ("note", "CAB")],
        )
        .await
        .status(303);
    assert_eq!(r.headers["location"], format!("/releases/{rel}").as_str());
    // Build and test without test evidence: the page again, with the reason.
    let refused = rita
        .form(
            &format!("/releases/{rel}/phases"),
            &[("csrf", &token), ("phase", "build-and-test")],
        )
        .await
        .status(409);
    assert!(refused.text.contains("test evidence"), "{}", refused.text);
    // Each client sees its own part only.
    let carol = crate::portal::sign_in(&app, "carol@client-a.example").await;
    let seen = carol
        .get(&format!("/releases/{rel}"))
        .await
        .status(200)
        .text;
    assert!(
        seen.contains(&a) && !seen.contains(&b) && !seen.contains("Rotate VPN"),
        "{seen}"
    );
    let bob = crate::portal::sign_in(&app, "bob@client-b.example").await;
    let seen = bob.get(&format!("/releases/{rel}")).await.status(200).text;
    assert!(
        seen.contains(&b) && !seen.contains(&a) && !seen.contains("payments"),
        "{seen}"
    );
    let bob_token = crate::portal::csrf(&seen);
    bob.form(
        &format!("/releases/{rel}/phases"),
        &[("csrf", &bob_token), ("phase", "build-and-test")],
    )
    .await
    .status(403);
}

async fn a_blackout_may_be_overridden_by_a_change_manager_a_closed_window_may_not(app: TestApp) {
    let m = Msp::setup(&app).await;
    let rita = release_manager(&app).await;
    weekly_windows(&m).await;
    // Client A's admin adds a payroll blackout over Saturday morning.
    m.alice
        .put(
            &format!("{A}/windows/payroll"),
            json!({ "kind": "blackout", "timeZone": "Europe/Berlin",
                    "schedule": { "ranges": [ { "start": "2026-11-28T00:00:00Z", "end": "2026-11-28T06:00:00Z" } ] } }),
        )
        .await
        .ok();
    let a = approved_in_a(&m, "Upgrade payments", json!({ "test_evidence": "green" })).await;
    let r = rita
        .post(
            "/api/v1/releases",
            json!({ "name": "x", "changes": [ { "tenant": "client-a", "change": a } ],
                    "planned_start": "2026-11-28T01:00:00Z", "planned_end": "2026-11-28T02:00:00Z",
                    "runbook": [ { "kind": "deploy", "title": "go" } ] }),
        )
        .await
        .status(201)
        .json;
    let rel = r["number"].as_str().expect("number").to_string();
    assert!(
        keys(&r, "conflicts").contains(&"blackout:client-a:payroll".to_string()),
        "{r}"
    );
    for phase in ["plan", "build-and-test"] {
        rita.post(
            &format!("/api/v1/releases/{rel}/phases"),
            json!({ "phase": phase }),
        )
        .await
        .ok();
    }
    app.set_now(
        Utc.with_ymd_and_hms(2026, 11, 28, 1, 0, 0)
            .single()
            .expect("a valid time"),
    );
    let refused = rita
        .post(
            &format!("/api/v1/releases/{rel}/phases"),
            json!({ "phase": "deploy" }),
        )
        .await
        .status(409);
    assert!(refused.text.contains("payroll"), "{}", refused.text);
    m.carol
        .post(
            &format!("/api/v1/releases/{rel}/overrides"),
            json!({ "conflict": "blackout:client-a:payroll", "reason": "fine" }),
        )
        .await
        .status(403);
    let r = m
        .cm
        .post(
            &format!("/api/v1/releases/{rel}/overrides"),
            json!({ "conflict": "blackout:client-a:payroll", "reason": "payroll ran early; agreed with Alice" }),
        )
        .await
        .ok();
    let c = r["conflicts"]
        .as_array()
        .expect("conflicts")
        .iter()
        .find(|c| c["key"] == "blackout:client-a:payroll")
        .cloned()
        .expect("the blackout, shown as overridden");
    assert_eq!(c["overridden_by"], "cm@msp.example");
    let r = rita
        .post(
            &format!("/api/v1/releases/{rel}/phases"),
            json!({ "phase": "deploy" }),
        )
        .await
        .ok();
    assert_eq!(r["state"], "deploying");

    // Outside every maintenance window, nothing lets a release start.
    let b = approved_in_a(&m, "Resize payments", json!({ "test_evidence": "green" })).await;
    let r = rita
        .post(
            "/api/v1/releases",
            json!({ "name": "y", "changes": [ { "tenant": "client-a", "change": b } ],
                    "planned_start": "2026-12-02T10:00:00Z", "planned_end": "2026-12-02T11:00:00Z" }),
        )
        .await
        .status(201)
        .json;
    let closed = keys(&r, "conflicts")
        .into_iter()
        .find(|k| k.starts_with("window:"))
        .expect("a closed window");
    let refused =
        m.cm.post(
            &format!(
                "/api/v1/releases/{}/overrides",
                r["number"].as_str().expect("as set up")
            ),
            json!({ "conflict": closed, "reason": "please" }),
        )
        .await
        .status(409);
    assert!(
        refused.text.contains("cannot be overridden"),
        "{}",
        refused.text
    );
}

/// A ready release with its slot on Saturday 01:00-02:00 UTC (inside the
/// weekly window) or on `start`/`end`, and its deployment authorized ahead.
async fn scheduled(m: &Msp, rita: &Actor, title: &str, start: &str, end: &str) -> String {
    let a = approved_in_a(m, title, json!({ "test_evidence": "green" })).await;
    let rel = rita
        .post(
            "/api/v1/releases",
            json!({ "name": title, "changes": [ { "tenant": "client-a", "change": a } ],
                    "planned_start": start, "planned_end": end,
                    "runbook": [ { "kind": "deploy", "title": "go" } ] }),
        )
        .await
        .status(201)
        .json["number"]
        .as_str()
        .expect("number")
        .to_string();
    for phase in ["plan", "build-and-test"] {
        rita.post(
            &format!("/api/v1/releases/{rel}/phases"),
            json!({ "phase": phase }),
        )
        .await
        .ok();
    }
    let r = rita
        .post(
            &format!("/api/v1/releases/{rel}/phases"),
            json!({ "phase": "deploy", "note": "night shift", "at_planned_start": true }),
        )
        .await
        .ok();
    assert_eq!(
        (r["state"].as_str(), r["start_scheduled_by"].as_str()),
        (Some("ready"), Some("rita@msp.example"))
    );
    rel
}

async fn a_release_authorized_ahead_starts_once_at_its_planned_start(app: TestApp) {
    let m = Msp::setup(&app).await;
    let rita = release_manager(&app).await;
    weekly_windows(&m).await;
    let on_time = scheduled(
        &m,
        &rita,
        "Upgrade payments",
        "2026-11-28T01:00:00Z",
        "2026-11-28T02:00:00Z",
    )
    .await;
    // Its slot starts on Wednesday at 12:00, outside every window.
    let refused = scheduled(
        &m,
        &rita,
        "Resize payments",
        "2026-12-02T12:00:00Z",
        "2026-12-02T13:00:00Z",
    )
    .await;
    let pass = async || {
        changegate_web::starter::run_due(&app.state, app.now())
            .await
            .expect("a pass")
    };
    app.set_now(
        Utc.with_ymd_and_hms(2026, 11, 28, 0, 59, 59)
            .single()
            .expect("a valid time"),
    );
    assert!(pass().await.is_empty(), "not before its time");
    app.set_now(
        Utc.with_ymd_and_hms(2026, 11, 28, 1, 0, 1)
            .single()
            .expect("a valid time"),
    );
    // Two replicas pass together: it starts once.
    let (a, b) = tokio::join!(pass(), pass());
    assert_eq!(a.len() + b.len(), 1, "{a:?} {b:?}");
    let r = rita.get(&format!("/api/v1/releases/{on_time}")).await.ok();
    assert_eq!(r["state"], "deploying");
    let deploy = &r["authorizations"][2];
    assert_eq!(deploy["by"], "rita@msp.example");
    assert!(
        deploy["note"]
            .as_str()
            .expect("as set up")
            .contains("as scheduled by rita@msp.example"),
        "{deploy}"
    );
    assert!(pass().await.is_empty(), "never twice");

    // The second one's moment comes with the window closed: refused once,
    // the schedule dropped, the reason in the chain.
    app.set_now(
        Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 1)
            .single()
            .expect("a valid time"),
    );
    let done = pass().await;
    assert!(
        matches!(&done[..], [changegate_web::starter::Started::Refused(n, why)] if *n == refused && why.contains("weekly")),
        "{done:?}"
    );
    assert!(pass().await.is_empty());
    let r = rita.get(&format!("/api/v1/releases/{refused}")).await.ok();
    assert_eq!(
        (r["state"].as_str(), r["start_scheduled_by"].as_str()),
        (Some("ready"), None)
    );
    let events = app
        .store
        .audit_events(
            app.store
                .tenant_by_slug("client-a")
                .await
                .expect("as set up")
                .id,
        )
        .await
        .expect("as set up")
        .0;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.body.action == "release.start-refused" && e.body.subject == refused)
            .count(),
        1
    );
}

/// One change delivered in two stages: the first release leaves it
/// implementing, the second implements it.
/// A release of client A's change `a` alone, in `[start, end)`, with one
/// deploy step, planned and built: ready to deploy. Its number.
async fn stage(rita: &Actor, a: &str, name: &str, start: &str, end: &str) -> String {
    let rel = rita
        .post(
            "/api/v1/releases",
            json!({ "name": name, "changes": [ { "tenant": "client-a", "change": a } ],
                    "planned_start": start, "planned_end": end,
                    "runbook": [ { "kind": "deploy", "title": name } ] }),
        )
        .await
        .status(201)
        .json["number"]
        .as_str()
        .expect("number")
        .to_string();
    for phase in ["plan", "build-and-test"] {
        rita.post(
            &format!("/api/v1/releases/{rel}/phases"),
            json!({ "phase": phase }),
        )
        .await
        .ok();
    }
    rel
}

async fn a_change_delivered_by_two_releases_is_implemented_by_the_last(app: TestApp) {
    let m = Msp::setup(&app).await;
    let rita = release_manager(&app).await;
    weekly_windows(&m).await;
    let a = approved_in_a(
        &m,
        "Migrate payments in two stages",
        json!({ "test_evidence": "green" }),
    )
    .await;
    let first = stage(
        &rita,
        &a,
        "stage 1",
        "2026-11-28T01:00:00Z",
        "2026-11-28T02:00:00Z",
    )
    .await;
    let second = stage(
        &rita,
        &a,
        "stage 2",
        "2026-12-05T01:00:00Z",
        "2026-12-05T02:00:00Z",
    )
    .await;
    let state = async || m.eve.get(&format!("{A}/changes/{a}")).await.ok()["state"].clone();
    assert_eq!(state().await, "scheduled");
    let run = async |rel: &str| {
        rita.post(
            &format!("/api/v1/releases/{rel}/phases"),
            json!({ "phase": "deploy" }),
        )
        .await
        .ok();
        rita.post(
            &format!("/api/v1/releases/{rel}/steps/1"),
            json!({ "status": "done", "evidence": "done" }),
        )
        .await
        .ok();
        rita.post(&format!("/api/v1/releases/{rel}/finish"), json!({}))
            .await
            .ok()
    };
    app.set_now(
        Utc.with_ymd_and_hms(2026, 11, 28, 1, 10, 0)
            .single()
            .expect("a valid time"),
    );
    let r = run(&first).await;
    assert_eq!(r["outcome"], "succeeded");
    assert_eq!(
        state().await,
        "implementing",
        "the second stage is still to come"
    );
    app.set_now(
        Utc.with_ymd_and_hms(2026, 12, 5, 1, 10, 0)
            .single()
            .expect("a valid time"),
    );
    run(&second).await;
    assert_eq!(state().await, "implemented");
    let events: Vec<String> = app
        .store
        .audit_events_about(
            app.store
                .tenant_by_slug("client-a")
                .await
                .expect("as set up")
                .id,
            &a,
        )
        .await
        .expect("as set up")
        .into_iter()
        .map(|e| e.body.action)
        .collect();
    assert!(
        events.contains(&"change.stage-delivered".to_string()),
        "{events:?}"
    );
    assert_eq!(
        events.iter().filter(|e| *e == "change.implemented").count(),
        1
    );
}

/// What a client cannot learn or reach of another client's part of a
/// shared release: its conflicts (a probe answers like an unknown key) and
/// steps about a change the release no longer delivers.
async fn a_shared_release_gives_away_nothing_of_the_other_client(app: TestApp) {
    let m = Msp::setup(&app).await;
    let rita = release_manager(&app).await;
    let cmb = app
        .msp("cmb@msp.example", &[("client-b", Role::ChangeManager)])
        .await;
    weekly_windows(&m).await;
    let a = approved_in_a(&m, "Upgrade payments", json!({})).await;
    let b = standard_in_b(&m).await;
    // Wednesday: client A's normal change has no window open.
    let r = rita
        .post(
            "/api/v1/releases",
            json!({ "name": "shared", "changes": [ { "tenant": "client-a", "change": a }, { "tenant": "client-b", "change": b } ],
                    "planned_start": "2026-12-02T10:00:00Z", "planned_end": "2026-12-02T11:00:00Z",
                    "runbook": [ { "kind": "deploy", "title": "Upgrade payments-api", "change": a },
                                 { "kind": "deploy", "title": "Rotate", "change": b } ] }),
        )
        .await
        .status(201)
        .json;
    let rel = r["number"].as_str().expect("number").to_string();
    let real = format!("window:client-a:{a}");
    assert!(keys(&r, "conflicts").contains(&real), "{r}");
    let probe = |key: String| {
        let cmb = cmb.clone();
        let rel = rel.clone();
        async move {
            cmb.post(
                &format!("/api/v1/releases/{rel}/overrides"),
                json!({ "conflict": key, "reason": "probe" }),
            )
            .await
        }
    };
    let known = probe(real).await;
    let unknown = probe("window:client-a:CHG-999".into()).await;
    assert_eq!((known.status, &known.text), (unknown.status, &unknown.text));
    assert_eq!(known.status.as_u16(), 422);
    // The runbook must follow the changes: a step about client A's change
    // cannot outlive it in the release.
    let r = rita
        .patch(
            &format!("/api/v1/releases/{rel}"),
            json!({ "changes": [ { "tenant": "client-b", "change": b } ] }),
        )
        .await
        .status(422);
    assert_eq!(r.field(), "runbook[0].change");
    // A deploy asked of a release still being planned is refused for its state.
    let r = rita
        .post(
            &format!("/api/v1/releases/{rel}/phases"),
            json!({ "phase": "deploy" }),
        )
        .await
        .status(409);
    assert!(r.text.contains("planning"), "{}", r.text);
}

/// Stages of one change go one after the other: a second release does not
/// deploy it while the first is deploying; cancelling a release leaves a
/// change another release holds as that one left it; a change whose last
/// stage is cancelled is completed by its implementer.
async fn stages_run_one_after_the_other_and_a_cancel_leaves_the_others_alone(app: TestApp) {
    let m = Msp::setup(&app).await;
    let rita = release_manager(&app).await;
    weekly_windows(&m).await;
    let a = approved_in_a(&m, "Migrate payments", json!({ "test_evidence": "green" })).await;
    let state = async || m.eve.get(&format!("{A}/changes/{a}")).await.ok()["state"].clone();
    let first = stage(
        &rita,
        &a,
        "stage 1",
        "2026-11-28T01:00:00Z",
        "2026-11-28T01:30:00Z",
    )
    .await;
    let spare = stage(
        &rita,
        &a,
        "spare",
        "2026-12-05T01:00:00Z",
        "2026-12-05T02:00:00Z",
    )
    .await;
    // Cancelling the spare leaves the change scheduled for the first.
    let r = rita
        .post(&format!("/api/v1/releases/{spare}/cancel"), json!({}))
        .await
        .ok();
    assert_eq!(r["state"], "cancelled");
    assert_eq!(
        state().await,
        "scheduled",
        "the first release still holds it"
    );
    let second = stage(
        &rita,
        &a,
        "stage 2",
        "2026-11-28T01:40:00Z",
        "2026-11-28T02:40:00Z",
    )
    .await;

    let at = |h: u32, min: u32| {
        Utc.with_ymd_and_hms(2026, 11, 28, h, min, 0)
            .single()
            .expect("a valid time")
    };
    app.set_now(at(1, 10));
    rita.post(
        &format!("/api/v1/releases/{first}/phases"),
        json!({ "phase": "deploy" }),
    )
    .await
    .ok();
    assert_eq!(state().await, "implementing");
    // Running late: the first is still deploying when the second's slot comes.
    app.set_now(at(1, 40));
    let refused = rita
        .post(
            &format!("/api/v1/releases/{second}/phases"),
            json!({ "phase": "deploy" }),
        )
        .await
        .status(409);
    assert!(
        refused.text.contains(&first) && refused.text.contains("finish that release"),
        "{}",
        refused.text
    );
    rita.post(
        &format!("/api/v1/releases/{first}/steps/1"),
        json!({ "status": "done", "evidence": "stage 1 moved" }),
    )
    .await
    .ok();
    let r = rita
        .post(&format!("/api/v1/releases/{first}/finish"), json!({}))
        .await
        .ok();
    assert_eq!(r["outcome"], "succeeded");
    assert_eq!(state().await, "implementing", "stage 2 is still to come");
    // Stage 2 is called off: the change stays implementing, and says so.
    rita.post(&format!("/api/v1/releases/{second}/cancel"), json!({}))
        .await
        .ok();
    assert_eq!(state().await, "implementing");
    let tenant = app
        .store
        .tenant_by_slug("client-a")
        .await
        .expect("as set up")
        .id;
    let actions = async || -> Vec<String> {
        app.store
            .audit_events_about(tenant, &a)
            .await
            .expect("as set up")
            .into_iter()
            .map(|e| e.body.action)
            .collect()
    };
    assert!(
        actions()
            .await
            .contains(&"change.stage-cancelled".to_string()),
        "{:?}",
        actions().await
    );
    assert!(!actions().await.contains(&"change.unscheduled".to_string()));
    // Its implementer records how it ended.
    let c = m
        .ian
        .post(
            &format!("{A}/changes/{a}/complete"),
            json!({ "documentation": "payments-api runbook updated after stage 1" }),
        )
        .await
        .ok();
    assert_eq!(c["state"], "implemented");
}

/// The implementer is booked across clients: a release of client B alone
/// sees ian's change of client A in its slot (named only by when it
/// starts), and proposes a slot after it. Moving the slot or the runbook
/// of an authorized plan reopens it; a moved slot drops its overrides.
async fn an_implementer_booked_for_another_client_is_seen_and_a_moved_slot_is_replanned(
    app: TestApp,
) {
    let m = Msp::setup(&app).await;
    let rita = release_manager(&app).await;
    weekly_windows(&m).await;
    let b = standard_in_b(&m).await;
    let other = approved_in_a(
        &m,
        "Resize payments database",
        json!({ "planned_start": "2026-11-28T01:30:00Z", "planned_end": "2026-11-28T02:30:00Z" }),
    )
    .await;
    let r = rita
        .post(
            "/api/v1/releases",
            json!({ "name": "B alone", "changes": [ { "tenant": "client-b", "change": b } ],
                    "planned_start": "2026-11-28T01:00:00Z", "planned_end": "2026-11-28T02:00:00Z",
                    "runbook": [ { "kind": "deploy", "title": "Rotate" } ] }),
        )
        .await
        .status(201)
        .json;
    let rel = r["number"].as_str().expect("number").to_string();
    let twice = format!("double-booked:client-b:{b}:other-20261128T0130Z");
    assert_eq!(keys(&r, "conflicts"), std::slice::from_ref(&twice), "{r}");
    assert!(
        !r.to_string().contains(&other),
        "client A's change is not named: {r}"
    );
    // Client B's standard change needs no window: the earliest slot is
    // as soon as ian is free.
    app.set_now(
        Utc.with_ymd_and_hms(2026, 11, 28, 1, 45, 0)
            .single()
            .expect("a valid time"),
    );
    let r = rita.get(&format!("/api/v1/releases/{rel}")).await.ok();
    assert_eq!(
        r["proposed_start"], "2026-11-28T02:30:00Z",
        "after ian's booking: {r}"
    );

    m.cm.post(
        &format!("/api/v1/releases/{rel}/overrides"),
        json!({ "conflict": twice, "reason": "ian hands the resize to tina" }),
    )
    .await
    .ok();
    let r = rita
        .post(
            &format!("/api/v1/releases/{rel}/phases"),
            json!({ "phase": "plan" }),
        )
        .await
        .ok();
    assert_eq!(r["state"], "build-and-test");
    // A new runbook reopens the plan, overrides kept.
    let r = rita
        .patch(
            &format!("/api/v1/releases/{rel}"),
            json!({ "runbook": [ { "kind": "deploy", "title": "Rotate" }, { "kind": "validate", "title": "Connect" } ] }),
        )
        .await
        .ok();
    assert_eq!(r["state"], "planning", "{r}");
    assert_eq!(r["conflicts"][0]["overridden_by"], "cm@msp.example", "{r}");
    // A moved slot drops the overrides given for the old one.
    let r = rita
        .patch(
            &format!("/api/v1/releases/{rel}"),
            json!({ "planned_start": "2026-11-28T01:15:00Z", "planned_end": "2026-11-28T02:15:00Z" }),
        )
        .await
        .ok();
    assert_eq!(r["state"], "planning");
    assert!(r["conflicts"][0]["overridden_by"].is_null(), "{r}");
    // The same slot sent again moves nothing.
    let again = rita
        .patch(
            &format!("/api/v1/releases/{rel}"),
            json!({ "planned_start": "2026-11-28T01:15:00Z", "planned_end": "2026-11-28T02:15:00Z" }),
        )
        .await
        .ok();
    assert_eq!(again["conflicts"], r["conflicts"]);
}

/// 2026-11-28 01:10 UTC, inside the weekly window of both tenants.
fn saturday_night() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 1, 10, 0)
        .single()
        .expect("a valid time")
}

async fn a_release_finishes_when_its_changes_moved_on_during_it(app: TestApp) {
    let m = Msp::setup(&app).await;
    let rita = release_manager(&app).await;
    weekly_windows(&m).await;
    let a = approved_in_a(&m, "Upgrade payments", json!({ "test_evidence": "green" })).await;
    let rel = stage(
        &rita,
        &a,
        "Saturday",
        "2026-11-28T01:00:00Z",
        "2026-11-28T02:00:00Z",
    )
    .await;
    app.set_now(saturday_night());
    rita.post(
        &format!("/api/v1/releases/{rel}/phases"),
        json!({ "phase": "deploy" }),
    )
    .await
    .ok();
    // Its implementer records the change done during the release.
    let c = m
        .ian
        .post(
            &format!("{A}/changes/{a}/complete"),
            json!({ "documentation": "payments runbook: 2.4.1" }),
        )
        .await
        .ok();
    assert_eq!(c["state"], "implemented");
    // The runbook's step is still pending, but nothing is left to do: the
    // release finishes (it used to answer 409 for ever).
    let r = rita
        .post(&format!("/api/v1/releases/{rel}/finish"), json!({}))
        .await
        .ok();
    assert_eq!(r["state"], "finished", "{r}");
    assert_eq!(r["outcome"], "succeeded", "{r}");
    assert_eq!(r["runbook"][0]["status"], "skipped", "{r}");
    let c = m.eve.get(&format!("{A}/changes/{a}")).await.ok();
    assert_eq!(c["state"], "implemented", "it keeps its own outcome");
    let tenant = app.store.tenant_by_slug("client-a").await.expect("tenant");
    let events = app
        .store
        .audit_events_about(tenant.id, &a)
        .await
        .expect("events");
    let kept = events
        .iter()
        .find(|e| e.body.action == "change.release-finished")
        .expect("the release's end is on the change");
    assert!(
        kept.body.detail.contains("\"kept\":\"implemented\""),
        "{}",
        kept.body.detail
    );
}

async fn two_releases_never_deploy_one_change_at_once(app: TestApp) {
    let m = Msp::setup(&app).await;
    let rita = release_manager(&app).await;
    weekly_windows(&m).await;
    let a = approved_in_a(&m, "Migrate payments", json!({ "test_evidence": "green" })).await;
    // Stage 1 delivers part of it; stages 2 and 3 both hold the rest, in
    // the same slot, and are deployed at the same moment.
    let first = stage(
        &rita,
        &a,
        "stage 1",
        "2026-11-28T01:00:00Z",
        "2026-11-28T01:20:00Z",
    )
    .await;
    let second = stage(
        &rita,
        &a,
        "stage 2",
        "2026-11-28T01:30:00Z",
        "2026-11-28T02:30:00Z",
    )
    .await;
    let third = stage(
        &rita,
        &a,
        "stage 3",
        "2026-11-28T01:30:00Z",
        "2026-11-28T02:30:00Z",
    )
    .await;
    app.set_now(saturday_night());
    for (path, body) in [
        (
            format!("/api/v1/releases/{first}/phases"),
            json!({ "phase": "deploy" }),
        ),
        (
            format!("/api/v1/releases/{first}/steps/1"),
            json!({ "status": "done", "evidence": "part 1" }),
        ),
        (format!("/api/v1/releases/{first}/finish"), json!({})),
    ] {
        rita.post(&path, body).await.ok();
    }
    let c = m.eve.get(&format!("{A}/changes/{a}")).await.ok();
    assert_eq!(c["state"], "implementing");
    app.set_now(
        Utc.with_ymd_and_hms(2026, 11, 28, 1, 35, 0)
            .single()
            .expect("a valid time"),
    );
    // Each stage's booking of payments-api clashes with the other's: the
    // change manager lets both stand, on purpose.
    for (rel, other) in [(&second, &third), (&third, &second)] {
        m.cm.post(
            &format!("/api/v1/releases/{rel}/overrides"),
            json!({ "conflict": format!("clash:client-a:{other}:payments-api"),
                    "reason": "the stages share the slot on purpose" }),
        )
        .await
        .ok();
    }
    let deploy = |rel: String| {
        let rita = rita.clone();
        async move {
            rita.post(
                &format!("/api/v1/releases/{rel}/phases"),
                json!({ "phase": "deploy" }),
            )
            .await
        }
    };
    // On two tasks: the requests run at once, not interleaved on one.
    let (two, three) = (
        tokio::spawn(deploy(second.clone())),
        tokio::spawn(deploy(third.clone())),
    );
    let (two, three) = (two.await.expect("joined"), three.await.expect("joined"));
    let started = [&two, &three]
        .iter()
        .filter(|r| r.status.is_success())
        .count();
    assert_eq!(
        started, 1,
        "exactly one deploys it: {} {} / {} {}",
        two.status, two.text, three.status, three.text
    );
    let refused = if two.status.is_success() {
        &three
    } else {
        &two
    };
    assert_eq!(refused.status.as_u16(), 409, "{}", refused.text);
    // The losing release is where it was.
    let loser = if two.status.is_success() {
        &third
    } else {
        &second
    };
    let r = rita.get(&format!("/api/v1/releases/{loser}")).await.ok();
    assert_eq!(r["state"], "ready", "{r}");
}

async fn a_step_is_recorded_by_its_owner_only_where_they_implement(app: TestApp) {
    let m = Msp::setup(&app).await;
    let rita = release_manager(&app).await;
    weekly_windows(&m).await;
    let a = approved_in_a(&m, "Upgrade payments", json!({ "test_evidence": "green" })).await;
    let r = rita
        .post(
            "/api/v1/releases",
            json!({ "name": "owners", "changes": [ { "tenant": "client-a", "change": a } ],
                    "planned_start": "2026-11-28T01:00:00Z", "planned_end": "2026-11-28T02:00:00Z",
                    "runbook": [
                        { "kind": "deploy", "title": "helm upgrade", "owner": "eve@msp.example", "change": a },
                        { "kind": "validate", "title": "smoke tests", "owner": "ian@msp.example", "change": a },
                    ] }),
        )
        .await
        .status(201)
        .json;
    let rel = r["number"].as_str().expect("a number").to_string();
    for phase in ["plan", "build-and-test"] {
        rita.post(
            &format!("/api/v1/releases/{rel}/phases"),
            json!({ "phase": phase }),
        )
        .await
        .ok();
    }
    app.set_now(saturday_night());
    rita.post(
        &format!("/api/v1/releases/{rel}/phases"),
        json!({ "phase": "deploy" }),
    )
    .await
    .ok();
    // Eve is named owner of step 1 but implements nothing in client-a.
    let r = m
        .eve
        .post(
            &format!("/api/v1/releases/{rel}/steps/1"),
            json!({ "status": "done", "evidence": "upgraded" }),
        )
        .await
        .status(403);
    assert!(r.text.contains("implementer role"), "{}", r.text);
    let r = rita.get(&format!("/api/v1/releases/{rel}")).await.ok();
    assert_eq!(
        r["runbook"][0]["status"], "pending",
        "nothing recorded: {r}"
    );
    rita.post(
        &format!("/api/v1/releases/{rel}/steps/1"),
        json!({ "status": "done", "evidence": "upgraded (recorded by the release manager)" }),
    )
    .await
    .ok();
    // Ian owns step 2 and implements in client-a: he records it.
    let r = m
        .ian
        .post(
            &format!("/api/v1/releases/{rel}/steps/2"),
            json!({ "status": "done", "evidence": "smoke tests green" }),
        )
        .await
        .ok();
    assert_eq!(r["runbook"][1]["status"], "done", "{r}");
}

crate::on_both!(
    a_release_finishes_when_its_changes_moved_on_during_it,
    two_releases_never_deploy_one_change_at_once,
    a_step_is_recorded_by_its_owner_only_where_they_implement,
    stages_run_one_after_the_other_and_a_cancel_leaves_the_others_alone,
    an_implementer_booked_for_another_client_is_seen_and_a_moved_slot_is_replanned,
    a_shared_release_gives_away_nothing_of_the_other_client,
    a_change_delivered_by_two_releases_is_implemented_by_the_last,
    a_release_authorized_ahead_starts_once_at_its_planned_start,
    a_blackout_may_be_overridden_by_a_change_manager_a_closed_window_may_not,
    the_release_page_authorizes_phases_and_shows_each_client_its_part,
    two_clients_one_release_a_failed_step_rolled_back_then_reviewed_and_closed,
    a_release_refuses_unapproved_changes_and_bad_runbooks,
);
