//! Everything granted can be taken back: tokens (API, gate, agent) listed
//! with their last use and revoked, a role removed, a user disabled, a
//! password changed ending the other sessions; each on the audit chain,
//! each effective at once.

use changegate_testkit::msp::{Msp, high_risk};
use changegate_testkit::{Actor, TestApp};
use chrono::TimeDelta;
use serde_json::{Value, json};

const A: &str = "/api/v1/tenants/client-a";
const PASSWORD: &str = "correct horse battery staple";

async fn actions(app: &TestApp, tenant: &str) -> Vec<(String, String)> {
    let t = app.store.tenant_by_slug(tenant).await.expect("tenant");
    app.store
        .audit_events(t.id)
        .await
        .expect("events")
        .0
        .into_iter()
        .map(|e| (e.body.action, e.body.subject))
        .collect()
}

fn find<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|l| l.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("no token {name} in {list}"))
}

async fn tokens_are_listed_with_their_last_use_and_revoked_at_once(app: TestApp) {
    let m = Msp::setup(&app).await;
    let made = m
        .eve
        .post("/api/v1/tokens", json!({ "name": "laptop" }))
        .await
        .status(201)
        .json;
    let laptop = app.bearer(made["token"].as_str().expect("a token"));
    let listed = m.eve.get("/api/v1/tokens").await.ok();
    assert!(
        find(&listed, "laptop")["last_used_at"].is_null(),
        "{listed}"
    );
    app.set_now(app.now() + TimeDelta::minutes(5));
    laptop.get("/api/v1/me").await.ok();
    let listed = m.eve.get("/api/v1/tokens").await.ok();
    assert_eq!(
        find(&listed, "laptop")["last_used_at"],
        json!(app.now()),
        "{listed}"
    );
    // Nobody else revokes eve's token: it is not theirs to find.
    m.ian
        .delete(&format!("/api/v1/tokens/{}", made["id"]))
        .await
        .status(404);
    m.eve
        .delete(&format!("/api/v1/tokens/{}", made["id"]))
        .await
        .status(204);
    laptop.get("/api/v1/me").await.status(401);
    let listed = m.eve.get("/api/v1/tokens").await.ok();
    assert!(!find(&listed, "laptop")["revoked_at"].is_null());
    assert!(
        actions(&app, "client-a")
            .await
            .contains(&("token.revoked".into(), "eve@msp.example".into()))
    );

    // A pipeline's gate token: its tenant's administrator sees and revokes it.
    let gate = m
        .ian
        .post(&format!("{A}/gate-tokens"), json!({ "name": "ci" }))
        .await
        .status(201)
        .json;
    let pipeline = app.bearer(gate["token"].as_str().expect("a token"));
    let ask = json!({ "tenant": "client-a", "target": { "configuration_item": "payments-api" } });
    pipeline.post("/api/v1/gate/check", ask.clone()).await.ok();
    let listed = m.alice.get(&format!("{A}/gate-tokens")).await.ok();
    assert_eq!(find(&listed, "ci")["owner"], "ian@msp.example");
    m.eve.get(&format!("{A}/gate-tokens")).await.status(403);
    m.alice
        .delete(&format!("{A}/gate-tokens/{}", gate["id"]))
        .await
        .status(204);
    pipeline.post("/api/v1/gate/check", ask).await.status(401);

    // A cluster's agent token: an installation admin revokes it.
    let agent = m
        .admin
        .post("/api/v1/clusters", json!({ "name": "prod-eu" }))
        .await
        .status(201)
        .json;
    let cluster = app.bearer(agent["token"].as_str().expect("a token"));
    cluster.get("/api/v1/agent/bundle").await.ok();
    m.admin
        .delete(&format!("/api/v1/tokens/{}", agent["id"]))
        .await
        .status(204);
    cluster.get("/api/v1/agent/bundle").await.status(401);
}

async fn a_role_taken_back_takes_its_rights_with_it(app: TestApp) {
    let m = Msp::setup(&app).await;
    let n = m.submitted(high_risk()).await;
    m.eve
        .delete(&format!(
            "{A}/users/carol@client-a.example/roles/business-approver"
        ))
        .await
        .status(403);
    m.alice
        .delete(&format!(
            "{A}/users/carol@client-a.example/roles/business-approver"
        ))
        .await
        .status(204);
    m.alice
        .delete(&format!(
            "{A}/users/carol@client-a.example/roles/business-approver"
        ))
        .await
        .status(404);
    // MSP staff's roles are the installation admin's to change.
    m.alice
        .delete(&format!(
            "{A}/users/tom@msp.example/roles/technical-approver"
        ))
        .await
        .status(403);
    // Refused, he holds it still: he reads the change he may decide.
    m.tom.get(&format!("{A}/changes/{n}")).await.ok();
    // Carol is bound to the tenant no more: it answers as if it did not exist.
    m.carol
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "revision": 1 }),
        )
        .await
        .status(404);
    assert!(
        actions(&app, "client-a")
            .await
            .contains(&("role.revoked".into(), "carol@client-a.example".into()))
    );
}

async fn sign_in(app: &TestApp, email: &str) -> Actor {
    let r = app
        .anonymous()
        .post(
            "/api/v1/session",
            json!({ "email": email, "password": PASSWORD }),
        )
        .await
        .status(200);
    let cookie = r
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string();
    app.browser(Some(cookie))
}

async fn a_disabled_user_is_shut_out_and_their_open_seats_go_to_the_backup(app: TestApp) {
    let m = Msp::setup(&app).await;
    m.cm.put(
        &format!("{A}/policy"),
        json!({ "routing": { "normal": [ { "from": "low", "boards": ["msp-tech"] },
                                         { "from": "high", "boards": ["msp-tech", "client-a-business"] } ] },
                "escalation": { "afterHours": 48, "to": "tina@msp.example" } }),
    )
    .await
    .ok();
    m.cm.put(
        &format!("{A}/boards/client-a-business"),
        json!({ "members": ["carol@client-a.example", "dan@client-a.example"], "rule": "all" }),
    )
    .await
    .ok();
    app.set_password("carol@client-a.example", PASSWORD).await;
    let carols_browser = sign_in(&app, "carol@client-a.example").await;
    let feed = m
        .carol
        .post(&format!("{A}/calendar-feeds"), json!({ "name": "mine" }))
        .await
        .status(201)
        .json;
    let feed_path = feed["url"]
        .as_str()
        .and_then(|u| u.find("/feeds/").map(|i| u[i..].to_string()))
        .expect("a feed address");
    app.anonymous().get(&feed_path).await.ok();
    let n = m.submitted(high_risk()).await;
    let link = app
        .store
        .due_messages(app.now() + TimeDelta::days(1), 100)
        .await
        .expect("the outbox")
        .into_iter()
        .find(|m| m.recipient == "carol@client-a.example")
        .and_then(|m| {
            m.body.find("/approve/").map(|i| {
                m.body[i..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
        })
        .expect("carol's approval link");
    app.anonymous().get(&link).await.ok();

    // Who may disable whom.
    let why = json!({ "reason": "left Client A on 2026-11-24" });
    // Bob is no administrator of client-b; alice administers client-a,
    // where bob is nobody.
    m.bob
        .post(
            "/api/v1/tenants/client-b/users/carol@client-a.example/disable",
            why.clone(),
        )
        .await
        .status(403);
    m.alice
        .post(
            &format!("{A}/users/bob@client-b.example/disable"),
            why.clone(),
        )
        .await
        .status(404);
    m.alice
        .post(&format!("{A}/users/tom@msp.example/disable"), why.clone())
        .await
        .status(403);
    m.cm.post("/api/v1/users/carol@client-a.example/disable", why.clone())
        .await
        .status(403);
    // Refused, nothing happened to them.
    m.tom.get("/api/v1/me").await.ok();
    m.carol.get("/api/v1/me").await.ok();
    let r = m
        .alice
        .post(
            &format!("{A}/users/carol@client-a.example/disable"),
            why.clone(),
        )
        .await
        .ok();
    assert_eq!(r["moved_to_backup"], json!([n]), "{r}");

    // Her e-mail link decides nothing any more, her feed is gone.
    let r = app.anonymous().get(&link).await;
    assert!(r.status.is_client_error(), "{} {}", r.status, r.text);
    app.anonymous().get(&feed_path).await.status(404);
    // The backup fills her seat; dan's, who is active and has not decided,
    // is not the backup's before the policy's escalation delay.
    let r = m
        .tina
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "on_behalf_of": "dan@client-a.example", "revision": 1 }),
        )
        .await
        .status(403);
    assert!(r.text.contains("not escalated"), "{}", r.text);
    // Shut out: token, session, and she approves nothing any more.
    m.carol.get("/api/v1/me").await.status(401);
    carols_browser.get("/api/v1/me").await.status(401);
    app.anonymous()
        .post(
            "/api/v1/session",
            json!({ "email": "carol@client-a.example", "password": PASSWORD }),
        )
        .await
        .status(401);
    assert!(
        actions(&app, "client-a")
            .await
            .contains(&("user.disabled".into(), "carol@client-a.example".into()))
    );
    // Her undecided seat went to the backup, who decides from the change
    // page: in her own technical seat first, then in carol's; never in
    // dan's (who is active).
    let tina = crate::portal::sign_in(&app, "tina@msp.example").await;
    for _ in 0..2 {
        let page = tina
            .get(&format!("/t/client-a/changes/{n}"))
            .await
            .status(200);
        assert!(
            page.text.contains(">Approve</button>"),
            "the backup decides"
        );
        tina.form(
            &format!("/t/client-a/changes/{n}/decide"),
            &[
                ("csrf", &crate::portal::csrf(&page.text)),
                ("decision", "approve"),
                ("revision", "1"),
            ],
        )
        .await
        .status(303);
    }
    let c = m.eve.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(c["state"], "awaiting-approval", "dan's seat is still open");
    let approvals = m.eve.get(&format!("{A}/changes/{n}/approvals")).await.ok();
    let seats: Vec<(Option<&str>, Option<&str>)> = approvals
        .as_array()
        .expect("approvals")
        .iter()
        .map(|a| (a["approver"].as_str(), a["on_behalf_of"].as_str()))
        .collect();
    assert_eq!(
        seats,
        [
            (Some("tina@msp.example"), None),
            (Some("tina@msp.example"), Some("carol@client-a.example"))
        ],
        "{approvals}"
    );
    // Nothing left for her to decide on that change.
    let page = tina
        .get(&format!("/t/client-a/changes/{n}"))
        .await
        .status(200);
    assert!(
        !page.text.contains(">Approve</button>"),
        "dan's seat is his"
    );
    // A new change no longer freezes her as an approver.
    let next = m.submitted(high_risk()).await;
    let c = m.eve.get(&format!("{A}/changes/{next}")).await.ok();
    assert!(!c.to_string().contains("carol@client-a.example"), "{c}");
    // Disabled, she is found by address no more.
    m.alice
        .post(&format!("{A}/users/carol@client-a.example/disable"), why)
        .await
        .status(404);
}

async fn a_changed_password_ends_the_other_sessions(app: TestApp) {
    let m = Msp::setup(&app).await;
    app.set_password("eve@msp.example", PASSWORD).await;
    let here = sign_in(&app, "eve@msp.example").await;
    let elsewhere = sign_in(&app, "eve@msp.example").await;
    let change = |current: &str| json!({ "current": current, "new": "a brand new passphrase" });
    let r = here
        .call_with(
            "PUT",
            "/api/v1/me/password",
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(r.status.as_u16(), 400, "a body is needed: {}", r.text);
    // Through the API's JSON, with the wrong current password: refused.
    let wrong = here_put(&here, change("not my password")).await;
    assert_eq!(wrong.status.as_u16(), 403, "{}", wrong.text);
    assert_eq!(wrong.field(), "current");
    let ok = here_put(&here, change(PASSWORD)).await;
    assert_eq!(ok.status.as_u16(), 204, "{}", ok.text);
    here.get("/api/v1/me").await.ok();
    elsewhere.get("/api/v1/me").await.status(401);
    // The API token goes on (revoke it on its own if it leaked).
    m.eve.get("/api/v1/me").await.ok();
    assert!(
        actions(&app, "client-a")
            .await
            .contains(&("user.password-changed".into(), "eve@msp.example".into()))
    );
}

/// A JSON PUT with a session cookie.
async fn here_put(browser: &Actor, body: Value) -> changegate_testkit::Resp {
    browser.put("/api/v1/me/password", body).await
}

crate::on_both!(
    tokens_are_listed_with_their_last_use_and_revoked_at_once,
    a_role_taken_back_takes_its_rights_with_it,
    a_disabled_user_is_shut_out_and_their_open_seats_go_to_the_backup,
    a_changed_password_ends_the_other_sessions,
);
