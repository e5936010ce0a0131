//! Approval by e-mail: the outbox delivers a request to each frozen
//! approver through a real SMTP sink on loopback; the link opens a confirm
//! page that decides nothing until its form is posted; links are single
//! use, bound to their revision, expiring, and at high risk need the
//! one-time code from the message.

use changegate_jobs::mail::{Mailer, send_due};
use changegate_testkit::msp::{Msp, high_risk, low_risk, normal_change};
use changegate_testkit::smtp::SmtpSink;
use changegate_testkit::{Resp, TestApp};
use chrono::TimeDelta;
use serde_json::{Value, json};

const A: &str = "/api/v1/tenants/client-a";

fn mailer(sink: &SmtpSink) -> Mailer {
    Mailer::new(&sink.url(), "changegate <changes@msp.example>").expect("a mailer")
}

/// The message to `who` and the path of its link.
fn message_to<'a>(messages: &'a [String], who: &str) -> (&'a String, String) {
    let m = messages
        .iter()
        .find(|m| m.contains(&format!("To: {who}")))
        .unwrap_or_else(|| panic!("no message to {who} in {messages:?}"));
    let at = m.find("/approve/").expect("a link");
    let path: String = m[at..].chars().take_while(|c| !c.is_whitespace()).collect();
    (m, path)
}

fn field(page: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    let at = page
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {page}"));
    let rest = &page[at + key.len()..];
    rest[..rest.find('"').expect("quote")].to_string()
}

async fn state_of(m: &Msp, n: &str) -> String {
    m.audrey.get(&format!("{A}/changes/{n}")).await.ok()["state"]
        .as_str()
        .expect("state")
        .to_string()
}

/// The tenant's audit events with this action: (actor, detail).
async fn events(app: &TestApp, action: &str) -> Vec<Value> {
    let t = app.store.tenant_by_slug("client-a").await.expect("tenant");
    let (events, _) = app.store.audit_events(t.id).await.expect("events");
    events
        .iter()
        .filter(|e| e.body.action == action)
        .map(|e| serde_json::from_str(&e.body.detail).expect("json detail"))
        .collect()
}

async fn an_approver_decides_from_the_link_and_a_scanner_decides_nothing(app: TestApp) {
    let m = Msp::setup(&app).await;
    let n = m.submitted(low_risk()).await; // msp-tech: tom and tina
    let sink = SmtpSink::start().await;
    let sent = send_due(app.store.as_ref(), &mailer(&sink), app.now())
        .await
        .expect("a pass");
    assert_eq!((sent.delivered, sent.failed), (2, 0));
    let messages = sink.wait_for(2).await;
    let (to_tom, tom_link) = message_to(&messages, "tom@msp.example");
    assert!(
        to_tom.contains(&format!("Subject: [changegate] {n} awaits your approval")),
        "{to_tom}"
    );
    assert!(!to_tom.contains("one-time code"), "low risk needs no code");
    let (_, tina_link) = message_to(&messages, "tina@msp.example");
    // Delivered once: a second pass sends nothing.
    let again = send_due(app.store.as_ref(), &mailer(&sink), app.now())
        .await
        .expect("a pass");
    assert_eq!(again.delivered, 0);

    // A mail scanner: HEAD, GET twice, and every link on the page.
    let scanner = app.browser(None);
    let head = scanner
        .call_with("HEAD", &tom_link, &[("user-agent", "LinkScanner/1.0")])
        .await;
    assert_eq!(head.status.as_u16(), 200);
    let page = scanner.get(&tom_link).await.status(200);
    scanner.get(&tom_link).await.status(200);
    assert!(
        page.text
            .contains("You are deciding as <strong>tom@msp.example</strong>")
    );
    for href in page.text.split("href=\"").skip(1) {
        let target = &href[..href.find('"').expect("quote")];
        let r = scanner.get(target).await;
        assert!(!r.status.is_server_error(), "{target}");
    }
    assert_eq!(
        state_of(&m, &n).await,
        "awaiting-approval",
        "nothing was decided"
    );
    // Each opening is on the record, with its user agent.
    let opened = events(&app, "approval-link.opened").await;
    assert_eq!(opened.len(), 3, "{opened:?}");
    assert_eq!(opened[0]["user_agent"], "LinkScanner/1.0");

    // The form needs the page's nonce.
    let approve = |nonce: &str| {
        vec![
            ("nonce".to_string(), nonce.to_string()),
            ("decision".to_string(), "approve".to_string()),
            ("comment".to_string(), "fine by mail".to_string()),
        ]
    };
    let post = |fields: Vec<(String, String)>| {
        let scanner = scanner.clone();
        let link = tom_link.clone();
        async move {
            let pairs: Vec<(&str, &str)> = fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            scanner.form(&link, &pairs).await
        }
    };
    post(approve("forged")).await.status(403);
    assert_eq!(state_of(&m, &n).await, "awaiting-approval");
    let done: Resp = post(approve(&field(&page.text, "nonce"))).await.status(200);
    assert!(done.text.contains("your decision on"), "{}", done.text);
    assert_eq!(state_of(&m, &n).await, "approved");
    let approvals = m
        .audrey
        .get(&format!("{A}/changes/{n}/approvals"))
        .await
        .ok();
    assert_eq!(approvals[0]["approver"], "tom@msp.example");
    assert_eq!(approvals[0]["channel"], "email");
    assert_eq!(approvals[0]["comment"], "fine by mail");
    assert_eq!(events(&app, "approval-link.used").await.len(), 1);
    // Single use, and the used link says who used it, when, and where the
    // change is now; tina's link no longer decides anything.
    let again = post(approve(&field(&page.text, "nonce"))).await.status(410);
    assert!(
        again.text.contains("This link has been used")
            && again
                .text
                .contains(&format!("tom approved {n} revision 1 with this link on"))
            && again.text.contains("Europe/Berlin")
            && again
                .text
                .contains(&format!("href=\"/t/client-a/changes/{n}\"")),
        "{}",
        again.text
    );
    assert!(
        !again.text.contains("role=\"alert\""),
        "not an error: {}",
        again.text
    );
    let tina = scanner.get(&tina_link).await.status(410);
    assert!(
        tina.text.contains("no longer awaits approval") && tina.text.contains("is now: approved"),
        "{}",
        tina.text
    );
    scanner.get("/approve/cg_made_up").await.status(404);
}

async fn a_high_risk_link_needs_the_code_and_a_new_revision_or_time_voids_links(app: TestApp) {
    let m = Msp::setup(&app).await;
    let n = m.submitted(high_risk()).await; // msp-tech and client-a-business
    let sink = SmtpSink::start().await;
    send_due(app.store.as_ref(), &mailer(&sink), app.now())
        .await
        .expect("a pass");
    let messages = sink.wait_for(4).await; // tom, tina, carol, dan
    assert_eq!(messages.len(), 4, "one request per frozen approver");
    let (to_carol, carol_link) = message_to(&messages, "carol@client-a.example");
    let code: String = to_carol
        .split("one-time code: ")
        .nth(1)
        .expect("a code in the message")
        .chars()
        .take(8)
        .collect();
    let browser = app.browser(None);
    let page = browser.get(&carol_link).await.status(200);
    assert!(
        page.text.contains("name=\"code\""),
        "the page asks for the code"
    );
    let nonce = field(&page.text, "nonce");
    let attempt = |code: &str| {
        let browser = browser.clone();
        let (link, nonce, code) = (carol_link.clone(), nonce.clone(), code.to_string());
        async move {
            browser
                .form(
                    &link,
                    &[("nonce", &nonce), ("decision", "approve"), ("code", &code)],
                )
                .await
        }
    };
    attempt("").await.status(403);
    attempt("WRONG234").await.status(403);
    attempt(&code.to_lowercase()).await.status(200);
    let approvals = m
        .audrey
        .get(&format!("{A}/changes/{n}/approvals"))
        .await
        .ok();
    assert_eq!(approvals[0]["approver"], "carol@client-a.example");
    assert_eq!(approvals[0]["channel"], "email");

    // A material edit is a new revision: old links are void, new ones go out.
    let (_, dan_link) = message_to(&messages, "dan@client-a.example");
    m.eve
        .patch(
            &format!("{A}/changes/{n}"),
            json!({ "description": "Upgrade to 2.4.2 instead" }),
        )
        .await
        .ok();
    let r = browser.get(&dan_link).await.status(410);
    assert!(
        r.text.contains("This change has changed since")
            && r.text.contains("not the revision 1 this link was sent for"),
        "{}",
        r.text
    );
    send_due(app.store.as_ref(), &mailer(&sink), app.now())
        .await
        .expect("a pass");
    let messages = sink.wait_for(8).await;
    let newest: Vec<String> = messages[4..].to_vec();
    let (_, dan_new) = message_to(&newest, "dan@client-a.example");
    browser.get(&dan_new).await.status(200);
    // Links expire after seven days.
    app.set_now(app.now() + TimeDelta::days(8));
    let r = browser.get(&dan_new).await.status(410);
    assert!(r.text.contains("expired"), "{}", r.text);
}

async fn an_undelivered_message_is_retried_once_the_relay_is_back(app: TestApp) {
    let m = Msp::setup(&app).await;
    m.submitted(low_risk()).await;
    // A relay that is down: a port nobody listens on.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("address")
    };
    let down = Mailer::new(
        &format!("smtp://{addr}"),
        "changegate <changes@msp.example>",
    )
    .expect("a mailer");
    let first = send_due(app.store.as_ref(), &down, app.now())
        .await
        .expect("a pass");
    assert_eq!((first.delivered, first.failed), (0, 2));
    // Not retried before its delay.
    let soon = send_due(
        app.store.as_ref(),
        &down,
        app.now() + TimeDelta::seconds(30),
    )
    .await
    .expect("a pass");
    assert_eq!((soon.delivered, soon.failed), (0, 0));
    let sink = SmtpSink::on(addr).await;
    let later = send_due(
        app.store.as_ref(),
        &mailer(&sink),
        app.now() + TimeDelta::minutes(3),
    )
    .await
    .expect("a pass");
    assert_eq!((later.delivered, later.failed), (2, 0));
    assert_eq!(sink.wait_for(2).await.len(), 2);
}

async fn the_communication_plan_and_the_requester_are_told_the_outcome(app: TestApp) {
    let m = Msp::setup(&app).await;
    let mut body = normal_change("Rotate certificates", low_risk());
    body["communication_plan"] =
        json!("Service desk <desk@client-a.example>; ops@msp.example, and the night shift.");
    let c = m
        .eve
        .post(&format!("{A}/changes"), body)
        .await
        .status(201)
        .json;
    let n = c["number"].as_str().expect("number").to_string();
    m.eve
        .post(&format!("{A}/changes/{n}/submit"), json!({}))
        .await
        .ok();
    let sink = SmtpSink::start().await;
    send_due(app.store.as_ref(), &mailer(&sink), app.now())
        .await
        .expect("a pass");
    let requests = sink.wait_for(2).await.len(); // tom and tina
    m.tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "revision": 1 }),
        )
        .await
        .ok();
    let sent = send_due(app.store.as_ref(), &mailer(&sink), app.now())
        .await
        .expect("a pass");
    assert_eq!(sent.delivered, 3, "desk, ops and the requester");
    let messages = sink.wait_for(requests + 3).await;
    let notices = &messages[requests..];
    for who in [
        "desk@client-a.example",
        "ops@msp.example",
        "eve@msp.example",
    ] {
        let m = notices
            .iter()
            .find(|m| m.contains(&format!("To: {who}")))
            .unwrap_or_else(|| panic!("no notice to {who}"));
        assert!(
            m.contains(&format!(
                "Subject: [changegate] {n} approved: Rotate certificates"
            )),
            "{m}"
        );
    }
}

/// `--mail-dir`: every message lands once in the directory as a readable
/// `.eml` file (the demo's e-mails), with its headers and link.
async fn a_mail_directory_receives_each_message_once_as_a_file(app: TestApp) {
    let m = Msp::setup(&app).await;
    let n = m.submitted(low_risk()).await;
    let dir = std::env::temp_dir().join(format!(
        "changegate-mail-{}-{}",
        std::process::id(),
        app.store.backend()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let files = Mailer::to_dir(&dir, "changegate <changes@msp.example>").expect("a mailer");
    let sent = send_due(app.store.as_ref(), &files, app.now())
        .await
        .expect("a pass");
    assert_eq!((sent.delivered, sent.failed), (2, 0));
    let again = send_due(app.store.as_ref(), &files, app.now())
        .await
        .expect("a pass");
    assert_eq!(again.delivered, 0, "sent once");
    let mut written: Vec<String> = std::fs::read_dir(&dir)
        .expect("the directory")
        .map(|e| std::fs::read_to_string(e.expect("an entry").path()).expect("a file"))
        .collect();
    written.sort();
    std::fs::remove_dir_all(&dir).expect("cleaned up");
    assert_eq!(written.len(), 2);
    let to_tom = written
        .iter()
        .find(|w| w.contains("To: tom@msp.example"))
        .expect("tom's message");
    assert!(
        to_tom.contains(&format!("{n} awaits your approval")),
        "{to_tom}"
    );
    assert!(to_tom.contains("/approve/"), "{to_tom}");
}

/// Two replicas on one database, delivering the same outbox through one
/// relay at once: every message is sent once, none twice, none lost.
/// `CHANGEGATE_TEST_OUTBOX_CHANGES` scales it (each change asks two
/// approvers); the figures are printed.
async fn two_replicas_send_each_message_once(app: TestApp) {
    let m = Msp::setup(&app).await;
    let changes: usize = std::env::var("CHANGEGATE_TEST_OUTBOX_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    for _ in 0..changes {
        m.submitted(low_risk()).await;
    }
    let expected = 2 * changes; // tom and tina, for each change
    let sink = SmtpSink::slow(std::time::Duration::from_millis(20)).await;
    let other = app.db().expect("the app's database").reopen().await;
    let replicas = [app.store.clone(), other];
    let started = std::time::Instant::now();
    let runs = replicas.iter().map(|store| {
        let (store, mailer, now) = (store.clone(), mailer(&sink), app.now());
        tokio::spawn(async move {
            let mut delivered = 0;
            loop {
                let sent = send_due(store.as_ref(), &mailer, now)
                    .await
                    .expect("a pass");
                if sent.delivered + sent.failed == 0 {
                    return delivered;
                }
                delivered += sent.delivered;
            }
        })
    });
    let mut by_replica = Vec::new();
    for run in runs.collect::<Vec<_>>() {
        by_replica.push(run.await.expect("a replica's run"));
    }
    let received = sink.messages();
    let mut distinct: Vec<(String, String)> = received
        .iter()
        .map(|m| {
            let header = |name: &str| {
                m.lines()
                    .find(|l| l.starts_with(name))
                    .unwrap_or_default()
                    .to_string()
            };
            (header("To: "), header("Subject: "))
        })
        .collect();
    distinct.sort();
    distinct.dedup();
    eprintln!(
        "outbox on {}: {expected} messages through two replicas in {:?}: sent {}, duplicated {}, lost {} (per replica {:?})",
        app.store.backend(),
        started.elapsed(),
        received.len(),
        received.len() - distinct.len(),
        expected.saturating_sub(distinct.len()),
        by_replica
    );
    assert_eq!(distinct.len(), expected, "every message arrived");
    assert_eq!(received.len(), expected, "none twice");
    assert_eq!(by_replica.iter().sum::<usize>(), expected);
    assert!(
        by_replica.iter().all(|n| *n > 0),
        "both replicas sent: {by_replica:?}"
    );
}

/// An emergency change started before its approval still takes the
/// decisions it owes, from every channel: the e-mail link sent at
/// submission and the change page.
async fn an_owed_retrospective_approval_is_given_from_the_link_and_the_page(app: TestApp) {
    let m = Msp::setup(&app).await;
    m.cm.put(
        &format!("{A}/boards/msp-tech"),
        json!({ "members": ["tom@msp.example", "tina@msp.example"], "rule": "all" }),
    )
    .await
    .ok();
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
    let sink = SmtpSink::start().await;
    send_due(app.store.as_ref(), &mailer(&sink), app.now())
        .await
        .expect("a pass");
    let messages = sink.wait_for(2).await;
    let (_, tom_link) = message_to(&messages, "tom@msp.example");
    let c = m
        .ian
        .post(
            &format!("{A}/changes/{n}/start"),
            json!({ "note": "exploited in the wild" }),
        )
        .await
        .ok();
    assert_eq!(c["state"], "implementing");
    // Tom decides from his link.
    let browser = app.browser(None);
    let page = browser.get(&tom_link).await.status(200);
    browser
        .form(
            &tom_link,
            &[
                ("nonce", &field(&page.text, "nonce")),
                ("decision", "approve"),
                ("comment", "right call"),
            ],
        )
        .await
        .status(200);
    // Tina from the change page.
    let tina = crate::portal::sign_in(&app, "tina@msp.example").await;
    let page = tina
        .get(&format!("/t/client-a/changes/{n}"))
        .await
        .status(200);
    assert!(
        page.text.contains(">Approve</button>"),
        "tina owes a decision"
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
    let c = m.eve.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(c["state"], "implementing", "{c}");
    assert!(c["decided_at"].is_string(), "{c}");
    let approvals = m.eve.get(&format!("{A}/changes/{n}/approvals")).await.ok();
    let channels: Vec<&str> = approvals
        .as_array()
        .expect("approvals")
        .iter()
        .filter_map(|a| a["channel"].as_str())
        .collect();
    assert_eq!(channels, ["email", "portal"], "{approvals}");
    assert_eq!(
        events(&app, "change.retrospectively-approved").await.len(),
        1
    );
}

crate::on_both!(
    an_owed_retrospective_approval_is_given_from_the_link_and_the_page,
    two_replicas_send_each_message_once,
    a_mail_directory_receives_each_message_once_as_a_file,
    the_communication_plan_and_the_requester_are_told_the_outcome,
    an_approver_decides_from_the_link_and_a_scanner_decides_nothing,
    a_high_risk_link_needs_the_code_and_a_new_revision_or_time_voids_links,
    an_undelivered_message_is_retried_once_the_relay_is_back,
);
