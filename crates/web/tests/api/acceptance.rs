//! Client acceptance (seed 003's user entity control): where the policy
//! asks for it, an approved change is neither started (by a person, a
//! pipeline through the gate, a release's plan) nor scheduled until a
//! client user it names accepts the tested change, by e-mail link
//! (scanner-safe, single use) or in the portal; MSP staff and people it
//! does not name cannot; the acceptance is on the chain and in the
//! evidence as its own control; a new revision needs a new one.

use changegate_jobs::mail::{Mailer, send_due};
use changegate_testkit::msp::{Msp, low_risk, normal_change};
use changegate_testkit::smtp::SmtpSink;
use changegate_testkit::{Actor, TestApp};
use chrono::TimeZone;
use serde_json::{Value, json};

use crate::portal::{csrf, sign_in};

const A: &str = "/api/v1/tenants/client-a";

fn mailer(sink: &SmtpSink) -> Mailer {
    Mailer::new(&sink.url(), "changegate <changes@msp.example>").expect("a mailer")
}

/// Client A's policy with its boards' routing and an acceptance covering
/// every change on payments-api, given by client A's business approvers.
async fn accepting_policy(app: &TestApp) {
    changegate_testkit::msp::policy(
        app,
        "client-a",
        json!({ "routing": { "normal": [ { "from": "low", "boards": ["msp-tech"] },
                                         { "from": "high", "boards": ["msp-tech", "client-a-business"] } ] },
                "acceptance": { "by": ["role:business-approver"], "items": ["payments-api"] } }),
    )
    .await;
}

/// The path of the link to `who` under `prefix` in the delivered messages.
fn link_to(messages: &[String], who: &str, prefix: &str) -> Option<String> {
    let m = messages
        .iter()
        .find(|m| m.contains(&format!("To: {who}")) && m.contains(prefix))?;
    let at = m.find(prefix)?;
    Some(m[at..].chars().take_while(|c| !c.is_whitespace()).collect())
}

fn nonce(page: &str) -> String {
    let key = "name=\"nonce\" value=\"";
    let at = page.find(key).expect("a nonce");
    let rest = &page[at + key.len()..];
    rest[..rest.find('"').expect("quote")].to_string()
}

async fn start(who: &Actor, n: &str) -> changegate_testkit::Resp {
    who.post(&format!("{A}/changes/{n}/start"), json!({})).await
}

async fn gate(m: &Msp) -> Value {
    m.ian
        .post(
            "/api/v1/gate/check",
            json!({ "tenant": "client-a", "target": { "configuration_item": "payments-api" },
                    "artifacts": ["registry.example/payments@sha256:aaaa"] }),
        )
        .await
        .ok()
}

async fn a_client_user_accepts_the_tested_change_before_it_may_start(app: TestApp) {
    let m = Msp::setup(&app).await;
    accepting_policy(&app).await;
    m.cm.put(
        &format!("{A}/configuration-items/payments-api"),
        json!({ "kind": "application" }),
    )
    .await
    .ok();
    m.cm.put(
        &format!("{A}/windows/weekly"),
        json!({ "timeZone": "Europe/Berlin", "schedule": { "cron": { "expr": "0 2 * * SAT", "duration": "4h" } } }),
    )
    .await
    .ok();
    app.set_now(
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 28, 1, 30, 0)
            .single()
            .expect("a valid time"),
    );
    let sink = SmtpSink::start().await;
    let deliver = || async {
        send_due(app.store.as_ref(), &mailer(&sink), app.now())
            .await
            .expect("a pass");
    };

    // Raised untested, approved by the MSP's board.
    let n = m
        .eve
        .post(
            &format!("{A}/changes"),
            normal_change("Upgrade payments", low_risk()),
        )
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
    m.tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "revision": 1 }),
        )
        .await
        .ok();
    assert_eq!(
        m.cm.get(&format!("{A}/changes/{n}")).await.ok()["state"],
        "approved"
    );
    deliver().await;
    let early = sink.messages();
    assert!(
        link_to(&early, "carol@client-a.example", "/accept/").is_none(),
        "untested: nobody is asked to accept yet"
    );

    // Nothing starts it: not a person, not a pipeline through the gate.
    let refused = start(&m.ian, &n).await.status(409);
    assert!(
        refused.text.contains("awaits the client's acceptance of the tested change by carol or dan; record its test evidence first"),
        "{}",
        refused.text
    );
    let g = gate(&m).await;
    assert_eq!(g["verdict"], "deny", "{g}");
    assert!(
        g["message"]
            .as_str()
            .unwrap_or_default()
            .contains("awaits the client's acceptance"),
        "{g}"
    );
    let untested = m
        .carol
        .post(&format!("{A}/changes/{n}/acceptance"), json!({}))
        .await
        .status(409);
    assert!(
        untested.text.contains("has no test evidence yet"),
        "{}",
        untested.text
    );

    // Tested: the client's approvers are asked, each with their own link.
    m.eve
        .patch(
            &format!("{A}/changes/{n}"),
            json!({ "test_evidence": "staging run 4711 green" }),
        )
        .await
        .ok();
    deliver().await;
    let messages = sink.messages();
    let carol_link = link_to(&messages, "carol@client-a.example", "/accept/")
        .expect("an acceptance link to carol");
    assert!(link_to(&messages, "dan@client-a.example", "/accept/").is_some());
    assert!(
        link_to(&messages, "tom@msp.example", "/accept/").is_none(),
        "MSP staff are not asked"
    );
    let to_carol = messages
        .iter()
        .find(|m| m.contains(&carol_link))
        .expect("carol's message");
    assert!(
        to_carol.contains("Test evidence: staging run 4711 green"),
        "{to_carol}"
    );
    // MSP staff, and an approval link at the acceptance page, accept nothing.
    m.tom
        .post(&format!("{A}/changes/{n}/acceptance"), json!({}))
        .await
        .status(403);
    let approval_link =
        link_to(&messages, "tom@msp.example", "/approve/").expect("tom's approval link");
    let token = approval_link.trim_start_matches("/approve/");
    app.anonymous()
        .get(&format!("/accept/{token}"))
        .await
        .status(404);
    app.anonymous()
        .get(&carol_link.replace("/accept/", "/approve/"))
        .await
        .status(404);

    // A scanner opening the link accepts nothing.
    let page = app.anonymous().get(&carol_link).await.status(200);
    assert!(
        page.text.contains("staging run 4711 green"),
        "{}",
        page.text
    );
    app.anonymous().get(&carol_link).await.status(200);
    start(&m.ian, &n).await.status(409);

    let done = app
        .anonymous()
        .form(
            &carol_link,
            &[
                ("nonce", &nonce(&page.text)),
                ("comment", "tested by our team too"),
            ],
        )
        .await
        .status(200);
    assert!(done.text.contains("your acceptance of"), "{}", done.text);
    let again = app.anonymous().get(&carol_link).await.status(410);
    assert!(again.text.contains("carol accepted"), "{}", again.text);
    // Dan's link has nothing left to accept.
    let dans = link_to(&messages, "dan@client-a.example", "/accept/").expect("dan's link");
    let spent = app.anonymous().get(&dans).await.status(410);
    assert!(
        spent
            .text
            .contains("was accepted by carol@client-a.example"),
        "{}",
        spent.text
    );

    assert_eq!(gate(&m).await["verdict"], "allow");
    start(&m.ian, &n).await.ok();
    let t = app.store.tenant_by_slug("client-a").await.expect("tenant");
    let (events, _) = app.store.audit_events(t.id).await.expect("events");
    let accepted: Vec<_> = events
        .iter()
        .filter(|e| e.body.action == "change.accepted")
        .collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].body.actor, "carol@client-a.example");
    let detail: Value = serde_json::from_str(&accepted[0].body.detail).expect("json");
    assert_eq!(detail["channel"], "email");
    assert_eq!(detail["revision"], 1);

    // In the evidence, as its own control.
    let e = m
        .audrey
        .get(&format!("{A}/evidence?from=2026-11-01&to=2026-11-30"))
        .await
        .ok();
    let control = e["controls"]
        .as_array()
        .expect("controls")
        .iter()
        .find(|c| c["id"] == "client-acceptance")
        .cloned()
        .expect("the client-acceptance control");
    assert_eq!(control["evidence"], json!([n]), "{control}");
    assert_eq!(control["exceptions"], json!([]), "{control}");
}

/// In the portal: the change page says who must accept; the named client
/// user accepts there (channel `portal`); a material edit afterwards needs
/// a new acceptance; someone the policy does not name gets no control and
/// cannot post the form.
async fn the_client_accepts_in_the_portal_and_a_new_revision_needs_it_again(app: TestApp) {
    let m = Msp::setup(&app).await;
    accepting_policy(&app).await;
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
        .post(&format!("{A}/changes/{n}/submit"), json!({}))
        .await
        .ok();
    let approve = |revision: i64| {
        let tom = m.tom.clone();
        let n = n.clone();
        async move {
            tom.post(
                &format!("{A}/changes/{n}/decisions"),
                json!({ "decision": "approve", "revision": revision }),
            )
            .await
            .ok();
        }
    };
    approve(1).await;
    let path = format!("/t/client-a/changes/{n}");

    let eve = sign_in(&app, "eve@msp.example").await;
    let page = eve.get(&path).await.status(200);
    assert!(page.text.contains("Client acceptance"), "{}", page.text);
    assert!(
        page.text.contains("awaits the client&#39;s acceptance")
            || page.text.contains("awaits the client's acceptance"),
        "{}",
        page.text
    );
    assert!(
        !page.text.contains("/accept\""),
        "eve is not named: {}",
        page.text
    );
    eve.form(&format!("{path}/accept"), &[("csrf", &csrf(&page.text))])
        .await
        .status(403);

    let carol = sign_in(&app, "carol@client-a.example").await;
    let page = carol.get(&path).await.status(200);
    assert!(
        page.text.contains("Accept the tested change"),
        "{}",
        page.text
    );
    assert!(page.text.contains("staging run green"), "{}", page.text);
    carol
        .form(
            &format!("{path}/accept"),
            &[("csrf", &csrf(&page.text)), ("comment", "fine")],
        )
        .await
        .status(303);
    let page = carol.get(&path).await.status(200);
    assert!(
        page.text.contains("carol accepted revision 1"),
        "{}",
        page.text
    );
    assert!(page.text.contains("(portal): fine"), "{}", page.text);
    assert!(
        !page.text.contains("Accept the tested change</button>"),
        "once only"
    );

    // A material edit: approved again, but not accepted again yet.
    m.eve
        .patch(
            &format!("{A}/changes/{n}"),
            json!({ "implementation_plan": "helm upgrade payments 2.4.2" }),
        )
        .await
        .ok();
    approve(2).await;
    let refused = m
        .ian
        .post(&format!("{A}/changes/{n}/start"), json!({}))
        .await
        .status(409);
    assert!(
        refused.text.contains("awaits the client's acceptance"),
        "{}",
        refused.text
    );
    m.dan
        .post(
            &format!("{A}/changes/{n}/acceptance"),
            json!({ "comment": "again" }),
        )
        .await
        .ok();
    let again = m
        .carol
        .post(&format!("{A}/changes/{n}/acceptance"), json!({}))
        .await
        .status(409);
    assert!(
        again.text.contains("was accepted by dan@client-a.example"),
        "{}",
        again.text
    );

    // Edited back to revision 1's content: the same fingerprint as what
    // carol accepted, but a new revision, which needs its own acceptance.
    m.eve
        .patch(
            &format!("{A}/changes/{n}"),
            json!({ "implementation_plan": "helm upgrade payments 2.4.1" }),
        )
        .await
        .ok();
    approve(3).await;
    let c = m.cm.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(c["revision"], 3, "{c}");
    let refused = m
        .ian
        .post(&format!("{A}/changes/{n}/start"), json!({}))
        .await
        .status(409);
    assert!(
        refused.text.contains("awaits the client's acceptance"),
        "{}",
        refused.text
    );
    m.carol
        .post(&format!("{A}/changes/{n}/acceptance"), json!({}))
        .await
        .ok();
    // Its test evidence replaced after the acceptance: accepted again.
    m.eve
        .patch(
            &format!("{A}/changes/{n}"),
            json!({ "test_evidence": "a different staging run" }),
        )
        .await
        .ok();
    let refused = m
        .ian
        .post(&format!("{A}/changes/{n}/start"), json!({}))
        .await
        .status(409);
    assert!(
        refused.text.contains("awaits the client's acceptance"),
        "{}",
        refused.text
    );
    m.dan
        .post(&format!("{A}/changes/{n}/acceptance"), json!({}))
        .await
        .ok();
    // Accepted now: what still holds it is the window, not the client.
    let held = m
        .ian
        .post(&format!("{A}/changes/{n}/start"), json!({}))
        .await
        .status(409);
    assert!(
        held.text.contains("no maintenance window is open") && !held.text.contains("acceptance"),
        "{}",
        held.text
    );
}

crate::on_both!(
    a_client_user_accepts_the_tested_change_before_it_may_start,
    the_client_accepts_in_the_portal_and_a_new_revision_needs_it_again,
);
