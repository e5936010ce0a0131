//! Approval integrity through every path: what ships is exactly what the
//! right people approved. Each scenario reproduces a hole a hostile review
//! found (a standard change beyond its template approved at submission, a
//! decision over someone else's recorded one, a revision routed on its
//! old risk, a decision without its revision, an agent report starting an
//! unapproved change, an approver implementing what they approved) and
//! shows it closed, on both databases.

use changegate_core::Role;
use changegate_testkit::msp::{Msp, high_risk, low_risk, normal_change};
use changegate_testkit::{Actor, TestApp};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

const A: &str = "/api/v1/tenants/client-a";
const B: &str = "/api/v1/tenants/client-b";

async fn raise(who: &Actor, tenant: &str, body: Value) -> String {
    who.post(&format!("{tenant}/changes"), body)
        .await
        .status(201)
        .json["number"]
        .as_str()
        .expect("a number")
        .to_string()
}

async fn events_of(app: &TestApp, tenant: &str) -> Vec<(String, String, Value)> {
    let t = app.store.tenant_by_slug(tenant).await.expect("tenant");
    app.store
        .audit_events(t.id)
        .await
        .expect("events")
        .0
        .into_iter()
        .map(|e| {
            (
                e.body.action,
                e.body.subject,
                serde_json::from_str(&e.body.detail).unwrap_or_default(),
            )
        })
        .collect()
}

/// Client B's `add-mailbox` template, as in the demo: the M365 tenant and
/// no artifact; the edge firewall is another item of the tenant.
async fn mailbox_template(m: &Msp) {
    for (name, kind) in [
        ("m365-tenant", "m365-tenant"),
        ("edge-firewall", "firewall"),
    ] {
        m.cm.put(
            &format!("{B}/configuration-items/{name}"),
            json!({ "kind": kind, "environment": "production",
                    "enforcement": { "pipeline": { "environment": name } } }),
        )
        .await
        .ok();
    }
    m.cm.put(
        &format!("{B}/templates/add-mailbox"),
        json!({ "title": "Add a shared mailbox in Microsoft 365",
                "implementationPlan": "New-Mailbox -Shared; grant the requested members",
                "backoutPlan": "Remove-Mailbox", "configurationItems": ["m365-tenant"],
                "approvedBy": "cm@msp.example", "approvedOn": "2026-01-05", "reviewDue": "2027-07-01" }),
    )
    .await
    .ok();
}

fn standard(items: &[&str], artifacts: &[&str]) -> Value {
    json!({ "type": "standard", "title": "Shared mailbox for sales", "template": "add-mailbox",
            "configuration_items": items, "artifacts": artifacts })
}

async fn a_standard_change_ships_only_what_its_template_pre_approves(app: TestApp) {
    let m = Msp::setup(&app).await;
    mailbox_template(&m).await;

    // The reproduced hole: the template's name on a change to the edge
    // firewall with an arbitrary digest.
    let rogue = raise(
        &m.eve,
        B,
        standard(&["edge-firewall"], &["registry.example/fw@sha256:6666"]),
    )
    .await;
    let r = m
        .eve
        .post(&format!("{B}/changes/{rogue}/submit"), json!({}))
        .await
        .status(422);
    assert_eq!(r.field(), "template", "{}", r.text);
    assert!(r.text.contains("edge-firewall"), "{}", r.text);
    assert!(
        r.text.contains("registry.example/fw@sha256:6666"),
        "{}",
        r.text
    );
    let c = m.eve.get(&format!("{B}/changes/{rogue}")).await.ok();
    assert_eq!(c["state"], "draft", "nothing of it was approved: {c}");
    // Nor does the gate let the digest ship.
    let d = gate_token(&app, &m.ian, B, "ci")
        .await
        .post(
            "/api/v1/gate/check",
            json!({ "tenant": "client-b", "target": { "configuration_item": "edge-firewall" },
                    "artifacts": ["registry.example/fw@sha256:6666"] }),
        )
        .await
        .ok();
    assert_eq!(d["verdict"], "deny", "{d}");

    // Inside the template: approved at submission, with an expiry even
    // though the policy sets none.
    let inside = raise(&m.eve, B, standard(&["m365-tenant"], &[])).await;
    let c = m
        .eve
        .post(&format!("{B}/changes/{inside}/submit"), json!({}))
        .await
        .ok();
    assert_eq!(c["state"], "approved", "{c}");
    let expires: DateTime<Utc> =
        serde_json::from_value(c["approval_expires_at"].clone()).expect("an expiry");
    assert_eq!(expires, app.now() + TimeDelta::days(30), "{c}");

    // An edit of the approved standard change is held to the template
    // again: naming the firewall is refused, and the change stays as it was.
    let r = m
        .eve
        .patch(
            &format!("{B}/changes/{inside}"),
            json!({ "configuration_items": ["m365-tenant", "edge-firewall"] }),
        )
        .await
        .status(422);
    assert_eq!(r.field(), "template", "{}", r.text);
    let c = m.eve.get(&format!("{B}/changes/{inside}")).await.ok();
    assert_eq!(c["state"], "approved");
    assert_eq!(c["revision"], 1);
    assert_eq!(c["content"]["configuration_items"], json!(["m365-tenant"]));

    // Where the policy says so, beyond the template is routed as normal.
    m.cm.put(
        &format!("{B}/policy"),
        json!({ "routing": { "normal": [ { "from": "low", "boards": ["client-b-business"] } ] },
                "standardBeyondTemplate": "route-as-normal" }),
    )
    .await
    .ok();
    let mut body = standard(&["edge-firewall"], &[]);
    body["risk_answers"] = low_risk();
    let routed = raise(&m.eve, B, body).await;
    let c = m
        .eve
        .post(&format!("{B}/changes/{routed}/submit"), json!({}))
        .await
        .ok();
    assert_eq!(c["state"], "awaiting-approval", "{c}");
    assert_eq!(c["type"], "normal", "{c}");
    let events = events_of(&app, "client-b").await;
    let (_, _, detail) = events
        .iter()
        .find(|(action, subject, _)| action == "change.routed-as-normal" && *subject == routed)
        .expect("the routing is on the chain");
    assert!(detail.to_string().contains("edge-firewall"), "{detail}");
}

async fn risk_is_assessed_again_on_every_revision(app: TestApp) {
    let m = Msp::setup(&app).await;
    let n = m.submitted(low_risk()).await;
    let c = m.eve.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(c["risk"]["level"], "low");
    let low_fingerprint = c["fingerprint"].clone();
    m.tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "revision": 1 }),
        )
        .await
        .ok();
    // The measured hole: production=yes, outage=yes stayed "low", routed
    // to the technical board only.
    let c = m
        .eve
        .patch(
            &format!("{A}/changes/{n}"),
            json!({ "risk_answers": high_risk() }),
        )
        .await
        .ok();
    assert_eq!(c["revision"], 2, "the answers are part of what is approved");
    assert_ne!(c["fingerprint"], low_fingerprint);
    assert_eq!(c["risk"]["level"], "high", "{c}");
    assert_eq!(c["state"], "awaiting-approval");
    let boards: Vec<&str> = c["approval"]["boards"]
        .as_array()
        .expect("boards")
        .iter()
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert_eq!(boards, ["msp-tech", "client-a-business"], "{c}");
    // Tom's approval of revision 1 does not count for revision 2.
    let c = m
        .tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "revision": 2 }),
        )
        .await
        .ok();
    assert_eq!(c["state"], "awaiting-approval", "carol's seat is open");
}

async fn a_decision_names_the_revision_it_approves(app: TestApp) {
    let m = Msp::setup(&app).await;
    let n = m.submitted(low_risk()).await;
    let r = m
        .tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve" }),
        )
        .await
        .status(422);
    assert_eq!(r.field(), "revision", "{}", r.text);
    let r = m
        .tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "revision": 7 }),
        )
        .await
        .status(409);
    assert_eq!(r.field(), "revision", "{}", r.text);
    let approvals = m.eve.get(&format!("{A}/changes/{n}/approvals")).await.ok();
    assert_eq!(approvals, json!([]), "nothing was recorded");
}

async fn one_person_holds_one_seat(app: TestApp) {
    let m = Msp::setup(&app).await;
    let week = |from: &str, to: &str| {
        json!({ "from": from, "to": to, "starts_at": app.now() - TimeDelta::hours(1),
                "ends_at": app.now() + TimeDelta::days(7) })
    };
    // A change manager does not delegate someone's seat, to themselves or
    // anyone: only the approver does, or an administrator with a reason,
    // never to themselves.
    m.cm.post(
        &format!("{A}/delegations"),
        week("carol@client-a.example", "cm@msp.example"),
    )
    .await
    .status(403);
    m.alice
        .post(
            &format!("{A}/delegations"),
            week("dan@client-a.example", "alice@client-a.example"),
        )
        .await
        .status(403);
    let r = m
        .alice
        .post(
            &format!("{A}/delegations"),
            week("dan@client-a.example", "tina@msp.example"),
        )
        .await
        .status(422);
    assert_eq!(r.field(), "reason");
    // MSP staff's seats are not the client's administrator's to hand over.
    let mut for_tom = week("tom@msp.example", "dan@client-a.example");
    for_tom["reason"] = json!("tom is on leave");
    let r = m
        .alice
        .post(&format!("{A}/delegations"), for_tom)
        .await
        .status(403);
    assert_eq!(r.field(), "from", "{}", r.text);
    assert!(
        !events_of(&app, "client-a")
            .await
            .iter()
            .any(|(a, _, _)| a == "delegation.created"),
        "the refused delegations were not recorded"
    );
    let mut for_dan = week("dan@client-a.example", "tina@msp.example");
    for_dan["reason"] = json!("dan left Client A in November");
    m.alice
        .post(&format!("{A}/delegations"), for_dan)
        .await
        .status(201);
    let events = events_of(&app, "client-a").await;
    let (_, _, detail) = events
        .iter()
        .rev()
        .find(|(a, _, _)| a == "delegation.created")
        .expect("recorded");
    assert_eq!(detail["set_by_admin"], "dan left Client A in November");
    m.carol
        .post(
            &format!("{A}/delegations"),
            week("carol@client-a.example", "tina@msp.example"),
        )
        .await
        .status(201);

    // A high-risk change needs msp-tech (tom, tina) and client-a-business
    // (carol, dan). Tina holds both business seats by delegation: she fills
    // one of them, not two.
    let n = m.submitted(high_risk()).await;
    let as_for = |on_behalf: &str| json!({ "decision": "approve", "on_behalf_of": on_behalf, "revision": 1 });
    m.tina
        .post(
            &format!("{A}/changes/{n}/decisions"),
            as_for("dan@client-a.example"),
        )
        .await
        .ok();
    let r = m
        .tina
        .post(
            &format!("{A}/changes/{n}/decisions"),
            as_for("carol@client-a.example"),
        )
        .await
        .status(403);
    assert!(r.text.contains("one seat"), "{}", r.text);
    // Her own seat is on another board.
    let c = m
        .tina
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "revision": 1 }),
        )
        .await
        .ok();
    assert_eq!(c["state"], "approved", "{c}");
    let approvals = m.eve.get(&format!("{A}/changes/{n}/approvals")).await.ok();
    assert_eq!(approvals.as_array().map(Vec::len), Some(2), "{approvals}");
}

async fn nobody_decides_over_a_recorded_decision_on_someone_elses_behalf(app: TestApp) {
    let m = Msp::setup(&app).await;
    m.cm.put(
        &format!("{A}/policy"),
        json!({ "routing": { "normal": [ { "from": "low", "boards": ["msp-tech"] },
                                         { "from": "high", "boards": ["msp-tech", "client-a-business"] } ] },
                "reminderHours": 1, "escalation": { "afterHours": 2, "to": "tom@msp.example" } }),
    )
    .await
    .ok();
    let n = m.submitted(high_risk()).await;
    // Carol rejects; under `any` the business board still waits for dan.
    let c = m
        .carol
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "reject", "comment": "not this quarter", "revision": 1 }),
        )
        .await
        .ok();
    assert_eq!(c["state"], "awaiting-approval", "{c}");
    app.set_now(app.now() + TimeDelta::hours(3));
    // One pass reminds, the next escalates to tom.
    for _ in 0..2 {
        changegate_jobs::run_due(app.store.as_ref(), "http://changegate.test", app.now())
            .await
            .expect("a scheduler pass");
    }
    // The backup may decide in dan's open seat, not over carol's decision.
    let r = m
        .tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "on_behalf_of": "carol@client-a.example", "revision": 1 }),
        )
        .await
        .status(403);
    assert!(r.text.contains("only its holder"), "{}", r.text);
    m.tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "on_behalf_of": "dan@client-a.example", "revision": 1 }),
        )
        .await
        .ok();
    let approvals = m.eve.get(&format!("{A}/changes/{n}/approvals")).await.ok();
    let carol: Vec<&Value> = approvals
        .as_array()
        .expect("a list")
        .iter()
        .filter(|a| {
            a["approver"] == "carol@client-a.example"
                || a["on_behalf_of"] == "carol@client-a.example"
        })
        .collect();
    assert_eq!(carol.len(), 1, "{approvals}");
    assert_eq!(carol[0]["decision"], "reject");
}

fn workload(cluster: &str, namespace: &str, name: &str) -> Value {
    json!({ "kind": "kubernetes-workload", "enforcement": { "kubernetes":
        { "cluster": cluster, "namespace": namespace, "kind": "Deployment", "name": name } } })
}

fn agent_report(event: &str, change: &str, fingerprint: Option<&Value>) -> Value {
    json!({ "tenant": "client-a", "namespace": "payments", "kind": "Deployment", "name": "payments-api",
            "artifacts": ["registry.example/payments@sha256:aaaa"], "event": event, "change": change,
            "fingerprint": fingerprint, "revision": "generation 2", "note": "seen by the agent" })
}

/// payments-api runs in prod-eu, whose agent reports with its token; the
/// window of Wednesday mornings is open at the tests' start.
async fn governed(app: &TestApp) -> (Msp, Actor) {
    let m = Msp::setup(app).await;
    m.cm.put(
        &format!("{A}/configuration-items/payments-api"),
        workload("prod-eu", "payments", "payments-api"),
    )
    .await
    .ok();
    m.cm.put(
        &format!("{A}/windows/wednesday-morning"),
        json!({ "timeZone": "Europe/Berlin", "schedule": { "cron": { "expr": "0 8 * * WED", "duration": "4h" } } }),
    )
    .await
    .ok();
    let t = m
        .admin
        .post("/api/v1/clusters", json!({ "name": "prod-eu" }))
        .await
        .status(201)
        .json;
    let agent = app.bearer(t["token"].as_str().expect("an agent token"));
    (m, agent)
}

async fn an_agent_report_never_starts_an_unapproved_or_revised_change(app: TestApp) {
    let (m, agent) = governed(&app).await;
    let n = m.submitted(low_risk()).await;
    for event in ["started", "succeeded"] {
        let r = agent
            .post("/api/v1/agent/reports", agent_report(event, &n, None))
            .await
            .status(201);
        assert_eq!(r.json["event"], "deployment.unauthorized", "{}", r.text);
        let c = m.eve.get(&format!("{A}/changes/{n}")).await.ok();
        assert_eq!(c["state"], "awaiting-approval", "{event}: {c}");
    }
    // Approved at revision 1, then revised and approved again: a rollout
    // admitted under revision 1's fingerprint does not start revision 2.
    let first = m
        .tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "revision": 1 }),
        )
        .await
        .ok();
    let c = m
        .eve
        .patch(
            &format!("{A}/changes/{n}"),
            json!({ "artifacts": ["registry.example/payments@sha256:aaaa", "registry.example/payments@sha256:bbbb"] }),
        )
        .await
        .ok();
    assert_eq!(c["revision"], 2);
    let second = m
        .tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "revision": 2 }),
        )
        .await
        .ok();
    let r = agent
        .post(
            "/api/v1/agent/reports",
            agent_report("started", &n, Some(&first["fingerprint"])),
        )
        .await
        .status(201);
    assert_eq!(r.json["event"], "deployment.unauthorized", "{}", r.text);
    assert_eq!(r.json["change_state"], "approved");
    // Nor does a report that names no fingerprint (the rollout of
    // revision 1 finishing) implement revision 2.
    let r = agent
        .post("/api/v1/agent/reports", agent_report("succeeded", &n, None))
        .await
        .status(201);
    assert_eq!(r.json["event"], "deployment.unauthorized", "{}", r.text);
    assert_eq!(r.json["change_state"], "approved");
    let r = agent
        .post(
            "/api/v1/agent/reports",
            agent_report("started", &n, Some(&second["fingerprint"])),
        )
        .await
        .status(201);
    assert_eq!(r.json["event"], "deployment.recorded", "{}", r.text);
    assert_eq!(r.json["change_state"], "implementing");
    // The rollout fails and the agent rolls it back: the change follows.
    for (event, state) in [("failed", "failed"), ("rolled-back", "rolled-back")] {
        let r = agent
            .post("/api/v1/agent/reports", agent_report(event, &n, None))
            .await
            .status(201);
        assert_eq!(r.json["change_state"], state, "{}", r.text);
    }
    let refused = events_of(&app, "client-a")
        .await
        .into_iter()
        .filter(|(a, _, _)| a == "deployment.unauthorized")
        .count();
    assert_eq!(refused, 4, "each refused report is evidence");
}

async fn release_manager(app: &TestApp, extra: &[Role]) -> Actor {
    let mut roles = vec![("client-a", Role::ReleaseManager)];
    roles.extend(extra.iter().map(|r| ("client-a", *r)));
    app.msp("rita@msp.example", &roles).await
}

/// A release of `n` now (the Wednesday window), planned and built.
async fn release_built(rita: &Actor, app: &TestApp, m: &Msp, n: &str) -> String {
    m.eve
        .patch(
            &format!("{A}/changes/{n}"),
            json!({ "test_evidence": "staging green" }),
        )
        .await
        .ok();
    let start = app.now();
    let r = rita
        .post(
            "/api/v1/releases",
            json!({ "name": "Wednesday release", "changes": [ { "tenant": "client-a", "change": n } ],
                    "planned_start": start, "planned_end": start + TimeDelta::hours(1),
                    "runbook": [ { "kind": "deploy", "title": "helm upgrade", "change": n } ] }),
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
    rel
}

async fn a_change_held_by_a_release_starts_only_through_it(app: TestApp) {
    let (m, agent) = governed(&app).await;
    let rita = release_manager(&app, &[]).await;
    let mut body = normal_change("Upgrade payments", low_risk());
    body["implementer"] = json!("ian@msp.example");
    let n = raise(&m.eve, A, body).await;
    m.eve
        .post(&format!("{A}/changes/{n}/submit"), json!({}))
        .await
        .ok();
    let approved = m
        .tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "revision": 1 }),
        )
        .await
        .ok();
    let rel = release_built(&rita, &app, &m, &n).await;
    let c = m.eve.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(c["state"], "scheduled");
    // Not by its implementer, not by a pipeline, not by the agent.
    let r = m
        .ian
        .post(&format!("{A}/changes/{n}/start"), json!({}))
        .await
        .status(409);
    assert!(r.text.contains("release"), "{}", r.text);
    let pipeline = gate_token(&app, &m.ian, A, "ci").await;
    let d = pipeline
        .post(
            "/api/v1/gate/check",
            json!({ "tenant": "client-a", "target": { "configuration_item": "payments-api" },
                    "artifacts": ["registry.example/payments@sha256:aaaa"] }),
        )
        .await
        .ok();
    assert_eq!(
        (d["verdict"].as_str(), d["reason"].as_str()),
        (Some("deny"), Some("held-by-release")),
        "{d}"
    );
    let r = agent
        .post(
            "/api/v1/agent/reports",
            agent_report("started", &n, Some(&approved["fingerprint"])),
        )
        .await
        .status(201);
    assert_eq!(r.json["event"], "deployment.unauthorized", "{}", r.text);
    // Through the release's deploy phase, it starts.
    let r = rita
        .post(
            &format!("/api/v1/releases/{rel}/phases"),
            json!({ "phase": "deploy", "note": "go" }),
        )
        .await
        .ok();
    assert_eq!(r["state"], "deploying", "{r}");
    let c = m.eve.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(c["state"], "implementing");
    assert_eq!(c["implementer"], "ian@msp.example", "{c}");
}

async fn whoever_approved_a_change_does_not_start_it(app: TestApp) {
    let (m, _) = governed(&app).await;
    m.cm.put(
        &format!("{A}/policy"),
        json!({ "routing": { "normal": [ { "from": "low", "boards": ["msp-tech"] } ] },
                "implementerMayNotApprove": true }),
    )
    .await
    .ok();
    // Tom approves, and holds the implementer role too.
    app.bind("tom@msp.example", "client-a", Role::Implementer)
        .await;
    let n = m.submitted(low_risk()).await;
    m.tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "revision": 1 }),
        )
        .await
        .ok();
    // By /start.
    let r = m
        .tom
        .post(&format!("{A}/changes/{n}/start"), json!({}))
        .await
        .status(403);
    assert!(r.text.contains("approved by the person"), "{}", r.text);
    // By the gate's record, with his token.
    let pipeline = gate_token(&app, &m.tom, A, "tom-ci").await;
    // The pipeline is denied, and its deployment is evidence.
    let r = gate_record(&pipeline, "https://ci.example/runs/1").await;
    assert_eq!(
        (r["verdict"].as_str(), r["recorded"]["event"].as_str()),
        (Some("deny"), Some("deployment.unauthorized")),
        "{r}"
    );
    assert!(
        r["message"]
            .as_str()
            .is_some_and(|m| m.contains("approved by the person")),
        "{r}"
    );
    let c = m.eve.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(c["state"], "approved", "nothing moved: {c}");
    // By a release whose manager approved it.
    let rita = release_manager(&app, &[Role::TechnicalApprover, Role::Implementer]).await;
    m.cm.put(
        &format!("{A}/boards/msp-tech"),
        json!({ "members": ["tom@msp.example", "tina@msp.example", "rita@msp.example"], "rule": "all" }),
    )
    .await
    .ok();
    let other = m.submitted(low_risk()).await;
    for who in [&m.tom, &m.tina, &rita] {
        who.post(
            &format!("{A}/changes/{other}/decisions"),
            json!({ "decision": "approve", "revision": 1 }),
        )
        .await
        .ok();
    }
    let rel = release_built(&rita, &app, &m, &other).await;
    let r = rita
        .post(
            &format!("/api/v1/releases/{rel}/phases"),
            json!({ "phase": "deploy" }),
        )
        .await
        .status(403);
    assert!(r.text.contains("approved by the person"), "{}", r.text);
    let c = m.eve.get(&format!("{A}/changes/{other}")).await.ok();
    assert_eq!(c["state"], "scheduled", "nothing moved: {c}");
    // Someone who did not approve it starts the first change.
    let c = m
        .ian
        .post(&format!("{A}/changes/{n}/start"), json!({}))
        .await
        .ok();
    assert_eq!(c["state"], "implementing");
}

/// Where implementers may not approve, nobody decides in the seat of the
/// change's implementer either: not their delegate, not a backup.
async fn nobody_decides_in_the_seat_of_the_changes_implementer(app: TestApp) {
    let m = Msp::setup(&app).await;
    m.cm.put(
        &format!("{A}/policy"),
        json!({ "routing": { "normal": [ { "from": "low", "boards": ["msp-tech"] } ],
                             "emergency": ["msp-tech"] },
                "implementerMayNotApprove": true }),
    )
    .await
    .ok();
    app.bind("tom@msp.example", "client-a", Role::Implementer)
        .await;
    m.tom
        .post(
            &format!("{A}/delegations"),
            json!({ "from": "tom@msp.example", "to": "carol@client-a.example",
                    "starts_at": app.now() - TimeDelta::hours(1), "ends_at": app.now() + TimeDelta::days(7) }),
        )
        .await
        .status(201);
    let mut body = normal_change("Patch zero-day", low_risk());
    body["type"] = json!("emergency");
    let n = m
        .eve
        .post(&format!("{A}/changes"), body)
        .await
        .status(201)
        .json["number"]
        .as_str()
        .expect("a number")
        .to_string();
    m.eve
        .post(&format!("{A}/changes/{n}/submit"), json!({}))
        .await
        .ok();
    // Tom starts the emergency before it is approved: he implements it.
    let c = m
        .tom
        .post(&format!("{A}/changes/{n}/start"), json!({}))
        .await
        .ok();
    assert_eq!(c["implementer"], "tom@msp.example", "{c}");
    let r = m
        .carol
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "on_behalf_of": "tom@msp.example", "revision": 1 }),
        )
        .await
        .status(403);
    assert!(r.text.contains("implements"), "{}", r.text);
    let approvals = m.eve.get(&format!("{A}/changes/{n}/approvals")).await.ok();
    assert_eq!(approvals, json!([]), "nothing was recorded");
    // Tina's own seat owes its decision.
    let c = m
        .tina
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "revision": 1 }),
        )
        .await
        .ok();
    assert!(c["decided_at"].is_string(), "{c}");
}

/// A gate token of `who` for the tenant under `path` (`A` or `B`), as
/// the pipeline that uses it.
async fn gate_token(app: &TestApp, who: &Actor, path: &str, name: &str) -> Actor {
    let r = who
        .post(&format!("{path}/gate-tokens"), json!({ "name": name }))
        .await
        .status(201);
    app.bearer(r.json["token"].as_str().expect("a token"))
}

/// The gate check of a `payments-api` deployment, recorded as started.
async fn gate_record(pipeline: &Actor, run: &str) -> Value {
    pipeline
        .post(
            "/api/v1/gate/check",
            json!({ "tenant": "client-a", "target": { "configuration_item": "payments-api" },
                    "artifacts": ["registry.example/payments@sha256:aaaa"],
                    "record": { "run": run, "status": "started" } }),
        )
        .await
        .ok()
}

async fn a_change_that_names_its_implementer_is_started_by_them_only(app: TestApp) {
    let (m, _) = governed(&app).await;
    let mut body = normal_change("Upgrade payments", low_risk());
    body["implementer"] = json!("ian@msp.example");
    let n = m
        .eve
        .post(&format!("{A}/changes"), body)
        .await
        .status(201)
        .json["number"]
        .as_str()
        .expect("a number")
        .to_string();
    m.eve
        .post(&format!("{A}/changes/{n}/submit"), json!({}))
        .await
        .ok();
    m.tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "revision": 1 }),
        )
        .await
        .ok();
    // Another implementer of the tenant: not by hand, not by pipeline.
    let ivy = app
        .msp("ivy@msp.example", &[("client-a", Role::Implementer)])
        .await;
    let r = ivy
        .post(&format!("{A}/changes/{n}/start"), json!({}))
        .await
        .status(403);
    assert!(r.text.contains("names another implementer"), "{}", r.text);
    let pipeline = gate_token(&app, &ivy, A, "ivy-ci").await;
    let r = gate_record(&pipeline, "https://ci.example/runs/2").await;
    assert_eq!(
        (r["verdict"].as_str(), r["recorded"]["event"].as_str()),
        (Some("deny"), Some("deployment.unauthorized")),
        "{r}"
    );
    let c = m.eve.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(
        (c["state"].as_str(), c["implementer"].as_str()),
        (Some("approved"), Some("ian@msp.example")),
        "{c}"
    );
    // The named implementer's pipeline starts it.
    let pipeline = gate_token(&app, &m.ian, A, "ian-ci").await;
    let r = gate_record(&pipeline, "https://ci.example/runs/3").await;
    assert_eq!(
        (
            r["verdict"].as_str(),
            r["recorded"]["change_state"].as_str()
        ),
        (Some("allow"), Some("implementing")),
        "{r}"
    );
}

crate::on_both!(
    a_standard_change_ships_only_what_its_template_pre_approves,
    risk_is_assessed_again_on_every_revision,
    a_decision_names_the_revision_it_approves,
    one_person_holds_one_seat,
    nobody_decides_over_a_recorded_decision_on_someone_elses_behalf,
    an_agent_report_never_starts_an_unapproved_or_revised_change,
    a_change_held_by_a_release_starts_only_through_it,
    whoever_approved_a_change_does_not_start_it,
    a_change_that_names_its_implementer_is_started_by_them_only,
    nobody_decides_in_the_seat_of_the_changes_implementer,
);
