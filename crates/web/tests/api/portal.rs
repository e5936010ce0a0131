//! The portal's pages over HTTP, on both databases: signing in with a
//! CSRF-protected form, the inbox, deciding from the change page (channel
//! `portal`), what another tenant and an auditor see, security headers,
//! and a page authorization matrix built from the page table.

use changegate_core::authz::{self, Denied};
use changegate_core::{Email, Role};
use changegate_testkit::msp::{Msp, high_risk, low_risk};
use changegate_testkit::{Actor, Resp, TestApp};
use changegate_web::Access;
use serde_json::json;

const A: &str = "/api/v1/tenants/client-a";
const PASSWORD: &str = "a long portal password";

/// The value of `name="csrf"` in a page.
pub(crate) fn csrf(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF field in {page}"));
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').expect("closing quote")].to_string()
}

/// `name=value` of the first `Set-Cookie` named `name`.
fn set_cookie(r: &Resp, name: &str) -> String {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie in {:?}", r.headers))
        .to_string()
}

fn location(r: &Resp) -> &str {
    r.headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Sign in through the sign-in page, as a browser does.
pub(crate) async fn sign_in(app: &TestApp, email: &str) -> Actor {
    app.set_password(email, PASSWORD).await;
    let form = app.browser(None).get("/sign-in").await.status(200);
    let token = csrf(&form.text);
    let browser = app.browser(Some(set_cookie(&form, "changegate_sign_in")));
    let r = browser
        .form(
            "/sign-in",
            &[("csrf", &token), ("email", email), ("password", PASSWORD)],
        )
        .await
        .status(303);
    assert_eq!(location(&r), "/inbox");
    app.browser(Some(set_cookie(&r, "changegate_session")))
}

async fn a_client_approver_signs_in_and_approves_from_the_change_page(app: TestApp) {
    let m = Msp::setup(&app).await;
    let n = m.submitted(high_risk()).await;
    m.tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "revision": 1 }),
        )
        .await
        .ok();

    // Signed out, every page leads to the sign-in form.
    let r = app.browser(None).get("/inbox").await.status(303);
    assert_eq!(location(&r), "/sign-in");
    // The sign-in form refuses a post without its own token, and a wrong password.
    app.set_password("carol@client-a.example", PASSWORD).await;
    let form = app.browser(None).get("/sign-in").await.status(200);
    let token = csrf(&form.text);
    let browser = app.browser(Some(set_cookie(&form, "changegate_sign_in")));
    browser
        .form(
            "/sign-in",
            &[
                ("csrf", "forged"),
                ("email", "carol@client-a.example"),
                ("password", PASSWORD),
            ],
        )
        .await
        .status(403);
    let r = browser
        .form(
            "/sign-in",
            &[
                ("csrf", &token),
                ("email", "carol@client-a.example"),
                ("password", "wrong"),
            ],
        )
        .await
        .status(401);
    assert!(
        r.text.contains("wrong e-mail address or password"),
        "{}",
        r.text
    );

    let carol = sign_in(&app, "carol@client-a.example").await;
    let inbox = carol.get("/inbox").await.status(200);
    let waiting = &inbox.text[inbox.text.find("Waiting for my decision").expect("section")
        ..inbox.text.find("My changes").expect("section")];
    assert!(waiting.contains(&n), "{waiting}");
    let csp = inbox
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .expect("a CSP");
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));

    let page_path = format!("/t/client-a/changes/{n}");
    let page = carol.get(&page_path).await.status(200);
    assert!(page.text.contains(">Approve</button>"), "{}", page.text);
    // The fingerprint approvals sign: its first digits, the whole on demand.
    let fingerprint = m.eve.get(&format!("{A}/changes/{n}")).await.ok()["fingerprint"]
        .as_str()
        .expect("a fingerprint")
        .to_string();
    assert!(
        page.text.contains(&format!(
            "<summary><code>{}…</code></summary><code>{fingerprint}</code>",
            &fingerprint[..19]
        )),
        "{}",
        page.text
    );
    // What changes comes before the decision, which the approver makes
    // having read it; the header says the state in words.
    let what = page.text.find("id=\"what\"").expect("what changes");
    let decide = page.text.find("id=\"decide\"").expect("the decision card");
    assert!(what < decide, "the decision card comes after what changes");
    assert!(
        page.text.contains(">Awaiting approval</span>"),
        "{}",
        page.text
    );
    assert!(
        page.text.contains("change for client-a Ltd,"),
        "the tenant by name: {}",
        page.text
    );
    assert!(
        page.text
            .contains("Waiting for 1 approval from client-a-business")
    );
    let token = csrf(&page.text);
    let decide = format!("{page_path}/decide");
    // A post without the page's token decides nothing.
    carol
        .form(
            &decide,
            &[
                ("csrf", "forged"),
                ("decision", "approve"),
                ("revision", "1"),
            ],
        )
        .await
        .status(403);
    let c = m.audrey.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(c["state"], "awaiting-approval");

    let r = carol
        .form(
            &decide,
            &[
                ("csrf", &token),
                ("decision", "approve"),
                ("comment", "OK for the weekend"),
                ("revision", "1"),
            ],
        )
        .await
        .status(303);
    assert_eq!(location(&r), page_path);
    let page = carol.get(&page_path).await.status(200);
    assert!(!page.text.contains(">Approve</button>"), "decided once");
    let approvals = m
        .audrey
        .get(&format!("{A}/changes/{n}/approvals"))
        .await
        .ok();
    let carols = approvals
        .as_array()
        .expect("approvals")
        .iter()
        .find(|a| a["approver"] == "carol@client-a.example")
        .expect("carol's approval");
    assert_eq!(carols["channel"], "portal");
    assert_eq!(carols["comment"], "OK for the weekend");
    let c = m.audrey.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(c["state"], "approved");
    // The page shows both approvals with identity (by name) and channel.
    for who in [
        r#"<td data-label="Who">tom</td><td data-label="Decision">approve</td><td data-label="Channel">api"#,
        r#"<td data-label="Who">carol</td><td data-label="Decision">approve</td><td data-label="Channel">portal"#,
    ] {
        assert!(page.text.contains(who), "{who} in {}", page.text);
    }

    // Signing out ends the session.
    carol
        .form("/sign-out", &[("csrf", &token)])
        .await
        .status(303);
    carol.get("/inbox").await.status(303);
}

async fn pages_show_nothing_of_another_tenant_and_give_no_auditor_a_write_control(app: TestApp) {
    let m = Msp::setup(&app).await;
    let n = m.submitted(high_risk()).await;
    let page_path = format!("/t/client-a/changes/{n}");

    let bob = sign_in(&app, "bob@client-b.example").await;
    let inbox = bob.get("/inbox").await.status(200);
    assert!(
        !inbox.text.contains("client-a") && !inbox.text.contains(&n),
        "{}",
        inbox.text
    );
    bob.get("/t/client-a/changes").await.status(404);
    let r = bob.get(&page_path).await.status(404);
    assert!(!r.text.contains("Upgrade payments"));
    let token = csrf(&inbox.text);
    bob.form(
        &format!("{page_path}/decide"),
        &[("csrf", &token), ("decision", "approve"), ("revision", "1")],
    )
    .await
    .status(404);

    let audrey = sign_in(&app, "audrey@audit.example").await;
    let page = audrey.get(&page_path).await.status(200);
    assert!(page.text.contains("Upgrade payments"));
    assert!(!page.text.contains(">Approve</button>") && !page.text.contains(">Reject</button>"));
    assert!(page.text.contains("intact"), "the chain status is shown");
    audrey
        .form(
            &format!("{page_path}/decide"),
            &[
                ("csrf", &csrf(&page.text)),
                ("decision", "approve"),
                ("revision", "1"),
            ],
        )
        .await
        .status(403);
    // The requester sees no decision form on her own change either.
    let eve = sign_in(&app, "eve@msp.example").await;
    let page = eve.get(&page_path).await.status(200);
    assert!(!page.text.contains(">Approve</button>"));
    let c = m.audrey.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(c["state"], "awaiting-approval", "nothing was decided");
}

/// Every page × every role of client-a (and a client-b user, and the
/// admin, and nobody) on client-a's pages: the answer the authorization
/// table gives, with the forms' tokens valid so authorization is what
/// decides.
async fn every_page_answers_every_caller_as_the_page_table_says(app: TestApp) {
    let m = Msp::setup(&app).await;
    let n = m.submitted(high_risk()).await;
    let feed =
        m.cm.post(
            "/api/v1/tenants/client-a/calendar-feeds",
            serde_json::json!({ "name": "cm's feed" }),
        )
        .await
        .status(201)
        .json["id"]
            .to_string();
    // A release of client-a's change, written through the store: the
    // release pages act on it.
    let cm = app
        .store
        .user_by_email(&Email::parse("cm@msp.example").expect("email"))
        .await
        .expect("cm");
    let client_a = app.store.tenant_by_slug("client-a").await.expect("tenant");
    let release = app
        .store
        .create_release(
            changegate_store::NewRelease {
                name: "Page matrix release".into(),
                owner: cm.id,
                planned_start: None,
                planned_end: None,
                changes: vec![changegate_store::ReleaseItem {
                    tenant: client_a.id,
                    change: n.parse().expect("a change number"),
                }],
                record: changegate_core::release::Record {
                    runbook: vec![changegate_core::release::Step {
                        kind: changegate_core::release::StepKind::Deploy,
                        title: "a step".into(),
                        owner: String::new(),
                        change: None,
                        status: changegate_core::release::StepStatus::Pending,
                        evidence: String::new(),
                        recorded_by: None,
                        at: None,
                    }],
                    ..Default::default()
                },
            },
            "test",
            app.now(),
        )
        .await
        .expect("release")
        .number
        .to_string();
    // A proposal of client-a, awaiting msp-tech: the proposal pages act on it.
    changegate_testkit::msp::policy(
        &app,
        "client-a",
        serde_json::json!({ "routing": { "normal": [ { "from": "low", "boards": ["msp-tech"] },
                                                     { "from": "high", "boards": ["msp-tech", "client-a-business"] } ] },
                            "proposals": { "boards": ["msp-tech"] } }),
    )
    .await;
    let proposal = m
        .eve
        .post(
            "/api/v1/tenants/client-a/proposals",
            serde_json::json!({ "title": "Page matrix proposal", "business_case": "the matrix",
                                "description": "a proposal the pages act on" }),
        )
        .await
        .status(201)
        .json["number"]
        .as_str()
        .expect("a proposal number")
        .to_string();
    let people = [
        "admin@msp.example",
        "eve@msp.example",
        "ian@msp.example",
        "tom@msp.example",
        "cm@msp.example",
        "audrey@audit.example",
        "carol@client-a.example",
        "alice@client-a.example",
        "bob@client-b.example",
    ];
    let a = app.store.tenant_by_slug("client-a").await.expect("tenant");
    let mut cells = 0;
    let mut failures = Vec::new();
    for route in changegate_web::portal::page_table() {
        let number = if route.path.starts_with("/releases/") {
            &release
        } else if route.path.contains("/proposals/") {
            &proposal
        } else {
            &n
        };
        let path = route
            .path
            .replace("{tenant}", "client-a")
            .replace("{number}", number)
            .replace("{step}", "1")
            .replace("{board}", "msp-tech")
            .replace("{id}", &feed);
        for who in std::iter::once(None).chain(people.iter().map(Some)) {
            let (browser, token, principal) = match who {
                None => (app.browser(None), String::new(), None),
                Some(email) => {
                    let b = sign_in(&app, email).await;
                    let token = csrf(&b.get("/inbox").await.text);
                    let user = app
                        .store
                        .user_by_email(&Email::parse(email).expect("email"))
                        .await
                        .expect("user");
                    let p = changegate_web::auth::principal_of(app.store.as_ref(), user)
                        .await
                        .expect("principal");
                    (b, token, Some(p))
                }
            };
            let r = if route.method == "POST" {
                // A decision form aimed at the change; the page's own token.
                browser
                    .form(
                        &path,
                        &[
                            ("csrf", &token),
                            ("decision", "reject"),
                            ("revision", "1"),
                            ("nonce", "not this one"),
                            ("email", "nobody@msp.example"),
                            ("password", "not this one"),
                        ],
                    )
                    .await
            } else {
                browser.get(&path).await
            };
            cells += 1;
            let s = r.status.as_u16();
            let label = format!(
                "{} {} as {}",
                route.method,
                route.path,
                who.unwrap_or(&"nobody")
            );
            let ok = match (route.access, &principal) {
                // Public pages need no one; the sign-in post refuses a
                // form without its cookie (403), which is its own check.
                (Access::Public, _) if route.path.contains("{token}") => s == 404,
                (Access::Public, _) => s < 400 || (route.path == "/sign-in" && s == 403),
                (_, None) => s == 303 && location(&r) == "/sign-in",
                (Access::Caller, Some(_)) => s < 400 || s == 422,
                (Access::Tenant(action) | Access::InRelease(action), Some(p)) => {
                    match authz::authorize(p, a.id, action) {
                        Ok(()) => {
                            s < 400
                                || s == 409
                                || s == 422
                                || (s == 403 && !r.text.contains("needs one of the roles"))
                        }
                        Err(Denied::Hidden) => s == 404,
                        Err(Denied::Forbidden { .. }) => s == 403,
                    }
                }
                (Access::Admin, Some(p)) if p.admin => s < 400 || s == 409 || s == 422,
                (Access::Admin, Some(_)) => s == 403,
                (access, _) => panic!("pages do not use {access:?}"),
            };
            if !ok || r.status.is_server_error() {
                failures.push(format!("{label}: {s}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} cells broke the table:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(cells >= 90, "{cells} cells");
    // One role check that does not come from the table: a business
    // approver of client-a is not an implementer there.
    let carol = app
        .store
        .user_by_email(&Email::parse("carol@client-a.example").expect("email"))
        .await
        .expect("user");
    let roles = app.store.roles_of(carol.id).await.expect("roles");
    assert!(!roles[&a.id].contains(&Role::Implementer));
}

async fn a_cab_member_approves_in_the_board_agenda(app: TestApp) {
    let m = Msp::setup(&app).await;
    let n = m.submitted(high_risk()).await;
    let tom = sign_in(&app, "tom@msp.example").await;
    let boards = tom.get("/t/client-a/boards").await.status(200);
    assert!(boards.text.contains("msp-tech</a>"), "{}", boards.text);
    assert!(boards.text.contains("(1 waiting)"));
    let agenda_path = "/t/client-a/boards/msp-tech";
    let agenda = tom.get(agenda_path).await.status(200);
    assert!(
        agenda.text.contains(&format!("aria-label=\"Approve {n}\"")),
        "{}",
        agenda.text
    );
    assert!(agenda.text.contains("Needs 1 more from this board"));
    let token = csrf(&agenda.text);
    let decide = format!("/t/client-a/changes/{n}/decide");
    // Back to the agenda, and never anywhere else.
    let r = tom
        .form(
            &decide,
            &[
                ("csrf", &token),
                ("decision", "approve"),
                ("revision", "1"),
                ("back", agenda_path),
            ],
        )
        .await
        .status(303);
    assert_eq!(location(&r), agenda_path);
    let agenda = tom.get(agenda_path).await.status(200);
    assert!(
        !agenda.text.contains(&format!("aria-label=\"Approve {n}\"")),
        "decided"
    );
    let approvals = m
        .audrey
        .get(&format!("{A}/changes/{n}/approvals"))
        .await
        .ok();
    assert_eq!(approvals[0]["approver"], "tom@msp.example");
    assert_eq!(approvals[0]["channel"], "portal");
    // Carol sees the business board's item, not the technical board's form.
    let carol = sign_in(&app, "carol@client-a.example").await;
    let theirs = carol.get(agenda_path).await.status(200);
    assert!(
        !theirs.text.contains("aria-label=\"Approve"),
        "not seated on msp-tech"
    );
    let r = carol
        .form(
            &decide,
            &[
                ("csrf", &csrf(&theirs.text)),
                ("decision", "approve"),
                ("revision", "1"),
                ("back", "https://evil.example/"),
            ],
        )
        .await
        .status(303);
    assert_eq!(
        location(&r),
        format!("/t/client-a/changes/{n}"),
        "no open redirect"
    );
    carol
        .get("/t/client-a/boards/no-such-board")
        .await
        .status(404);
}

async fn the_auditor_reads_a_period_of_evidence_with_no_write_control(app: TestApp) {
    let m = Msp::setup(&app).await;
    let n = m.submitted(high_risk()).await;
    m.tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "revision": 1 }),
        )
        .await
        .ok();
    let audrey = sign_in(&app, "audrey@audit.example").await;
    let page = audrey
        .get("/t/client-a/evidence?from=2026-11-01&to=2026-11-30")
        .await
        .status(200);
    for expected in [
        n.as_str(),
        "eve@msp.example",
        "tom@msp.example approve",
        "via api",
        "intact",
    ] {
        assert!(page.text.contains(expected), "{expected} in {}", page.text);
    }
    assert!(
        !page.text.contains("method=\"post\" action=\"/t/"),
        "no write control"
    );
    let empty = audrey
        .get("/t/client-a/evidence?from=2026-10-01&to=2026-10-31")
        .await
        .status(200);
    assert!(!empty.text.contains(&n));
    audrey
        .get("/t/client-a/evidence?from=yesterday")
        .await
        .status(422);
    let bob = sign_in(&app, "bob@client-b.example").await;
    bob.get("/t/client-a/evidence").await.status(404);
}

/// An engineer raises a change from a template: the form comes filled
/// in, "Preview" shows the approvers by name and writes nothing, an
/// incomplete questionnaire keeps the change from being raised, and
/// "Submit" raises and submits it in one go.
async fn an_engineer_raises_a_change_from_a_template_after_a_preview(app: TestApp) {
    let m = Msp::setup(&app).await;
    m.cm.put(
        &format!("{A}/templates/payments-upgrade"),
        json!({ "title": "Upgrade the payments API", "description": "Roll out a new payments-api release",
                "implementationPlan": "helm upgrade payments", "backoutPlan": "helm rollback payments",
                "configurationItems": ["payments-api"], "approvedBy": "cm@msp.example",
                "approvedOn": "2026-01-05", "reviewDue": "2027-06-01" }),
    )
    .await
    .ok();
    let eve = sign_in(&app, "eve@msp.example").await;
    let list = eve.get("/t/client-a/changes").await.status(200);
    assert!(
        list.text.contains("href=\"/t/client-a/changes/new\""),
        "a way to raise a change"
    );
    let form = eve
        .get("/t/client-a/changes/new?template=payments-upgrade")
        .await
        .status(200);
    assert!(
        form.text.contains("value=\"Upgrade the payments API\""),
        "{}",
        form.text
    );
    assert!(
        form.text
            .contains("name=\"ci\" value=\"payments-api\" checked"),
        "{}",
        form.text
    );
    let token = csrf(&form.text);
    let fields = |intent: &'static str, production: &'static str| {
        vec![
            ("csrf", token.clone()),
            ("template", "payments-upgrade".to_string()),
            ("type", "normal".to_string()),
            ("title", "Upgrade the payments API".to_string()),
            ("ci", "payments-api".to_string()),
            (
                "artifacts",
                "registry.example/payments@sha256:bbbb".to_string(),
            ),
            ("planned_start", "2026-11-28T01:00".to_string()),
            ("implementation_plan", "helm upgrade payments".to_string()),
            ("backout_plan", "helm rollback payments".to_string()),
            ("risk.production", production.to_string()),
            ("risk.outage", "yes".to_string()),
            ("risk.untested", "no".to_string()),
            ("risk.no-backout", "no".to_string()),
            ("intent", intent.to_string()),
        ]
    };
    let post = |fields: Vec<(&'static str, String)>| {
        let eve = eve.clone();
        async move {
            let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            eve.form("/t/client-a/changes/new", &pairs).await
        }
    };
    let count = || async {
        m.cm.get(&format!("{A}/changes")).await.ok()["items"]
            .as_array()
            .map_or(0, Vec::len)
    };

    let preview = post(fields("preview", "yes")).await.status(200);
    for shown in [
        "Preview",
        "high (score",
        "tom &#60;tom@msp.example&#62;",
        "carol &#60;carol@client-a.example&#62;",
        "Earliest allowed slot",
    ] {
        assert!(
            preview.text.contains(shown),
            "{shown} missing from {}",
            preview.text
        );
    }
    assert_eq!(count().await, 0, "a preview raises nothing");

    let incomplete = post(fields("submit", "")).await.status(200);
    assert!(
        incomplete.text.contains("cannot be submitted yet"),
        "{}",
        incomplete.text
    );
    assert_eq!(count().await, 0, "an incomplete change is not raised");

    let mut forged = fields("submit", "yes");
    forged[0].1 = "not the session's token".into();
    post(forged).await.status(403);
    assert_eq!(count().await, 0);

    let done = post(fields("submit", "yes")).await.status(303);
    let to = location(&done).to_string();
    assert!(to.starts_with("/t/client-a/changes/CHG-"), "{to}");
    let n = to.rsplit('/').next().expect("a number");
    let c = m.cm.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(c["state"], "awaiting-approval", "{c}");
    assert_eq!(c["risk"]["level"], "high");
    assert_eq!(c["content"]["template"], "payments-upgrade");
    assert_eq!(c["content"]["planned_start"], "2026-11-28T01:00:00Z");
    assert_eq!(
        c["content"]["artifacts"],
        json!(["registry.example/payments@sha256:bbbb"])
    );
    assert_eq!(c["requester"], "eve@msp.example");

    // A client's business approver may not raise changes: no link, 403.
    let carol = sign_in(&app, "carol@client-a.example").await;
    let list = carol.get("/t/client-a/changes").await.status(200);
    assert!(!list.text.contains("/changes/new"));
    carol.get("/t/client-a/changes/new").await.status(403);
}

/// Administration in the portal goes through the API's handlers: a
/// client's admin adds a blackout (in the client's time zone) and a
/// person, but no board; a change manager writes a configuration item;
/// bad JSON is refused with a message; another client's user reaches
/// nothing; anyone mints their own API token; only installation admins
/// add tenants.
async fn the_settings_pages_administer_a_tenant_within_each_roles_rights(app: TestApp) {
    let m = Msp::setup(&app).await;
    let alice = sign_in(&app, "alice@client-a.example").await;
    let page = alice.get("/t/client-a/settings").await.status(200);
    assert!(page.text.contains("Add blackout") && page.text.contains("Add person"));
    assert!(
        !page.text.contains("Spec (JSON, as the API takes it)"),
        "no policy form for a client admin"
    );
    let token = csrf(&page.text);
    let done = alice
        .form(
            "/t/client-a/settings/blackouts",
            &[
                ("csrf", &token),
                ("name", "year-end"),
                ("from", "2026-12-24T00:00"),
                ("until", "2026-12-27T00:00"),
            ],
        )
        .await
        .status(200);
    assert!(
        done.text.contains("Blackout year-end saved."),
        "{}",
        done.text
    );
    let windows = m.cm.get(&format!("{A}/windows")).await.ok();
    assert_eq!(windows[0]["name"], "year-end");
    assert_eq!(windows[0]["spec"]["kind"], "blackout");
    // Midnight in Berlin is 23:00 UTC the day before.
    assert_eq!(
        windows[0]["spec"]["schedule"]["ranges"][0]["start"], "2026-12-23T23:00:00Z",
        "{windows}"
    );
    // A client admin may not turn the MSP's maintenance window into a blackout.
    m.cm.put(
        &format!("{A}/windows/weekly"),
        json!({ "timeZone": "Europe/Berlin", "schedule": { "cron": { "expr": "0 2 * * SAT", "duration": "4h" } } }),
    )
    .await
    .ok();
    alice
        .form(
            "/t/client-a/settings/blackouts",
            &[
                ("csrf", &token),
                ("name", "weekly"),
                ("from", "2026-12-24T00:00"),
                ("until", "2026-12-27T00:00"),
            ],
        )
        .await
        .status(403);
    alice
        .form(
            "/t/client-a/settings/blackouts/remove",
            &[("csrf", &token), ("name", "weekly")],
        )
        .await
        .status(403);
    alice
        .form(
            "/t/client-a/settings/objects",
            &[
                ("csrf", &token),
                ("kind", "board"),
                ("name", "sneaky"),
                (
                    "spec",
                    r#"{"members":["alice@client-a.example"],"rule":"any"}"#,
                ),
            ],
        )
        .await
        .status(403);
    let added = alice
        .form(
            "/t/client-a/settings/people",
            &[
                ("csrf", &token),
                ("email", "dora@client-a.example"),
                ("name", "Dora"),
                ("role", "business-approver"),
            ],
        )
        .await
        .status(200);
    assert!(
        added.text.contains("dora@client-a.example: created."),
        "{}",
        added.text
    );
    let people = m.cm.get(&format!("{A}/users")).await.ok().to_string();
    assert!(people.contains("dora@client-a.example"), "{people}");
    let removed = alice
        .form(
            "/t/client-a/settings/blackouts/remove",
            &[("csrf", &token), ("name", "year-end")],
        )
        .await
        .status(200);
    assert!(removed.text.contains("Blackout year-end removed."));

    // Kubernetes names: Alice maps a cluster's user name to one of the
    // client's people (not to MSP staff), and removes it again.
    let mapped = alice
        .form(
            "/t/client-a/settings/identities",
            &[
                ("csrf", &token),
                ("cluster", "prod-eu"),
                ("user", "carol"),
                ("email", "carol@client-a.example"),
            ],
        )
        .await
        .status(200);
    assert!(
        mapped
            .text
            .contains("carol of cluster prod-eu stands for carol@client-a.example: created."),
        "{}",
        mapped.text
    );
    assert!(
        mapped.text.contains("<code>carol</code>"),
        "{}",
        mapped.text
    );
    let listed =
        m.cm.get(&format!("{A}/clusters/prod-eu/identities"))
            .await
            .ok();
    assert_eq!(
        listed,
        json!([{ "user": "carol", "email": "carol@client-a.example" }])
    );
    alice
        .form(
            "/t/client-a/settings/identities",
            &[
                ("csrf", &token),
                ("cluster", "prod-eu"),
                ("user", "tom"),
                ("email", "tom@msp.example"),
            ],
        )
        .await
        .status(403);
    alice
        .form(
            "/t/client-a/settings/identities",
            &[
                ("csrf", "forged"),
                ("cluster", "prod-eu"),
                ("user", "dan"),
                ("email", "dan@client-a.example"),
            ],
        )
        .await
        .status(403);
    let unmapped = alice
        .form(
            "/t/client-a/settings/identities/remove",
            &[("csrf", &token), ("cluster", "prod-eu"), ("user", "carol")],
        )
        .await
        .status(200);
    assert!(
        unmapped.text.contains("no longer stands for anyone here")
            && !unmapped.text.contains("<code>carol</code>"),
        "{}",
        unmapped.text
    );

    let bob = sign_in(&app, "bob@client-b.example").await;
    let bob_token = csrf(&bob.get("/inbox").await.text);
    bob.get("/t/client-a/settings").await.status(404);
    bob.form(
        "/t/client-a/settings/identities",
        &[
            ("csrf", &bob_token),
            ("cluster", "prod-eu"),
            ("user", "bob"),
            ("email", "bob@client-b.example"),
        ],
    )
    .await
    .status(404);
    bob.form(
        "/t/client-a/settings/blackouts",
        &[
            ("csrf", &bob_token),
            ("name", "x"),
            ("from", "2026-12-24T00:00"),
            ("until", "2026-12-27T00:00"),
        ],
    )
    .await
    .status(404);

    let cm = sign_in(&app, "cm@msp.example").await;
    let token = csrf(&cm.get("/t/client-a/settings").await.status(200).text);
    let saved = cm
        .form(
            "/t/client-a/settings/objects",
            &[
                ("csrf", &token),
                ("kind", "configuration-item"),
                ("name", "billing-db"),
                ("spec", r#"{"kind":"database","criticality":"high"}"#),
            ],
        )
        .await
        .status(200);
    assert!(
        saved
            .text
            .contains("Configuration item billing-db: created."),
        "{}",
        saved.text
    );
    let bad = cm
        .form(
            "/t/client-a/settings/objects",
            &[
                ("csrf", &token),
                ("kind", "configuration-item"),
                ("name", "broken"),
                ("spec", "{not json"),
            ],
        )
        .await
        .status(422);
    assert!(bad.text.contains("the spec is not JSON"), "{}", bad.text);
    let items =
        m.cm.get(&format!("{A}/configuration-items"))
            .await
            .ok()
            .to_string();
    assert!(
        items.contains("billing-db") && !items.contains("broken"),
        "{items}"
    );

    let eve = sign_in(&app, "eve@msp.example").await;
    let token = csrf(&eve.get("/tokens").await.status(200).text);
    let minted = eve
        .form("/tokens", &[("csrf", &token), ("name", "laptop")])
        .await
        .status(200);
    let at = minted
        .text
        .find("<code class=\"token\">")
        .expect("the token is shown")
        + "<code class=\"token\">".len();
    let secret = &minted.text[at..at + minted.text[at..].find('<').expect("end")];
    let me = app.bearer(secret).get("/api/v1/me").await.ok();
    assert_eq!(me["email"], "eve@msp.example", "{me}");

    eve.get("/admin/tenants").await.status(403);
    let admin = sign_in(&app, "admin@msp.example").await;
    let token = csrf(&admin.get("/admin/tenants").await.status(200).text);
    let created = admin
        .form(
            "/admin/tenants",
            &[
                ("csrf", &token),
                ("slug", "client-c"),
                ("name", "Client C"),
                ("time_zone", "Europe/Vienna"),
            ],
        )
        .await
        .status(303);
    assert_eq!(location(&created), "/t/client-c/settings");
    // Reachable at once: the new tenant is in the server's tenant list.
    admin.get("/t/client-c/settings").await.status(200);
    let again = admin
        .form(
            "/admin/tenants",
            &[
                ("csrf", &token),
                ("slug", "client-c"),
                ("name", "Client C"),
                ("time_zone", "Europe/Vienna"),
            ],
        )
        .await
        .status(409);
    assert!(again.text.contains("client-c"), "{}", again.text);
}

/// Reminders and escalation on the policy's delays: the approvers who
/// have not decided are reminded once, then the backup approver is told
/// and decides in an undecided seat from the change page, on its
/// holder's behalf; a backup who is not a user of the tenant is refused.
async fn an_undecided_approval_is_reminded_once_then_escalated_to_the_backup(app: TestApp) {
    let m = Msp::setup(&app).await;
    let policy = |backup: &str| {
        json!({ "routing": { "normal": [ { "from": "low", "boards": ["msp-tech"] },
                                         { "from": "high", "boards": ["msp-tech", "client-a-business"] } ] },
                "reminderHours": 24, "escalation": { "afterHours": 48, "to": backup } })
    };
    let refused =
        m.cm.put(&format!("{A}/policy"), policy("bob@client-b.example"))
            .await
            .status(422);
    assert!(
        refused.text.contains("not a user of this tenant"),
        "{}",
        refused.text
    );
    let refused =
        m.cm.put(&format!("{A}/policy"), policy("alice@client-a.example"))
            .await
            .status(422);
    assert!(
        refused.text.contains("cannot approve here"),
        "{}",
        refused.text
    );
    m.cm.put(&format!("{A}/policy"), policy("cm@msp.example"))
        .await
        .ok();
    let n = m.submitted(high_risk()).await; // msp-tech, then carol or dan
    m.tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "revision": 1 }),
        )
        .await
        .ok();
    let start = app.now();
    let url = "http://changegate.test";
    let pass = |hours: i64| {
        let store = app.store.clone();
        async move {
            changegate_jobs::run_due(store.as_ref(), url, start + chrono::TimeDelta::hours(hours))
                .await
                .expect("a pass")
        }
    };
    let outbox = |subject: String| {
        let store = app.store.clone();
        async move {
            let mut to: Vec<String> = store
                .due_messages(start + chrono::TimeDelta::days(30), 1000)
                .await
                .expect("the outbox")
                .into_iter()
                .filter(|msg| msg.subject == subject)
                .map(|msg| msg.recipient)
                .collect();
            to.sort();
            to
        }
    };
    let number =
        changegate_core::ChangeNumber(n.trim_start_matches("CHG-").parse().expect("a number"));
    assert_eq!(pass(23).await, vec![], "nothing before the reminder is due");
    assert_eq!(
        pass(24).await,
        vec![changegate_jobs::Outcome::Reminded(number)]
    );
    assert_eq!(
        outbox(format!("Reminder: {n} waits for your decision")).await,
        ["carol@client-a.example", "dan@client-a.example"],
        "tom decided: he is not reminded"
    );
    assert_eq!(pass(30).await, vec![], "reminded once");
    assert_eq!(
        pass(48).await,
        vec![changegate_jobs::Outcome::Escalated(number)]
    );
    assert_eq!(
        outbox(format!("{n} was escalated to you")).await,
        ["cm@msp.example"]
    );
    assert_eq!(pass(60).await, vec![], "escalated once");

    // The backup decides from the change page, in a client seat.
    app.set_now(start + chrono::TimeDelta::hours(49));
    let cm = sign_in(&app, "cm@msp.example").await;
    let page = cm
        .get(&format!("/t/client-a/changes/{n}"))
        .await
        .status(200);
    assert!(
        page.text.contains(">Approve</button>"),
        "the backup may decide"
    );
    cm.form(
        &format!("/t/client-a/changes/{n}/decide"),
        &[
            ("csrf", &csrf(&page.text)),
            ("decision", "approve"),
            ("revision", "1"),
        ],
    )
    .await
    .status(303);
    let c = m.audrey.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(c["state"], "approved", "{c}");
    let approvals = m
        .audrey
        .get(&format!("{A}/changes/{n}/approvals"))
        .await
        .ok();
    let by_cm = approvals
        .as_array()
        .expect("approvals")
        .iter()
        .find(|a| a["approver"] == "cm@msp.example")
        .expect("the backup's approval");
    assert!(
        by_cm["on_behalf_of"]
            .as_str()
            .is_some_and(|who| who.ends_with("@client-a.example")),
        "{by_cm}"
    );
    // Approved: nothing is left to remind of.
    assert_eq!(pass(24 * 9).await, vec![]);
    // The escalation was for that change only: no say on another one.
    let other = m.submitted(high_risk()).await;
    let refused =
        m.cm.post(
            &format!("{A}/changes/{other}/decisions"),
            json!({ "decision": "approve", "on_behalf_of": "carol@client-a.example", "revision": 1 }),
        )
        .await
        .status(403);
    assert!(
        refused.text.contains("was not escalated to you"),
        "{}",
        refused.text
    );
    let page = cm
        .get(&format!("/t/client-a/changes/{other}"))
        .await
        .status(200);
    assert!(
        !page.text.contains(">Approve</button>"),
        "no decision form on another change"
    );
}

/// The change page lists its revisions and what each changed.
async fn the_change_page_shows_each_revision_and_what_it_changed(app: TestApp) {
    let m = Msp::setup(&app).await;
    let n = m.submitted(high_risk()).await;
    m.eve
        .patch(
            &format!("{A}/changes/{n}"),
            json!({ "artifacts": ["registry.example/payments@sha256:bbbb"] }),
        )
        .await
        .ok();
    let audrey = sign_in(&app, "audrey@audit.example").await;
    let page = audrey
        .get(&format!("/t/client-a/changes/{n}"))
        .await
        .status(200);
    let revisions = &page.text[page
        .text
        .find("id=\"revisions\"")
        .expect("a revisions section")..];
    let revisions = &revisions[..revisions.find("</section>").expect("its end")];
    assert!(
        revisions.contains(r#"<td data-label="Revision">1</td>"#)
            && revisions.contains("first submitted"),
        "{revisions}"
    );
    assert!(
        revisions.contains(r#"<td data-label="Revision">2</td>"#)
            && revisions.contains(r#"<td data-label="What changed">artifacts</td>"#),
        "{revisions}"
    );
    // The timeline in words, people by name (the fixture names Eve "eve").
    let timeline = &page.text[page.text.find("id=\"timeline\"").expect("a timeline")..];
    for said in [
        "eve raised it",
        "eve submitted revision 1 for approval",
        "eve revised it: revision 2 goes for approval again",
    ] {
        assert!(timeline.contains(said), "{said:?} not in {timeline}");
    }
    assert!(
        !timeline.contains("change.created"),
        "no event codes: {timeline}"
    );
    // A field the requester left empty says so.
    assert!(
        page.text
            .contains("<dt>Justification</dt><dd><span class=\"missing\">not provided</span></dd>"),
        "{}",
        page.text
    );
    // The answers behind the risk level, under the questions as asked.
    assert!(
        page.text
            .contains("<li>Does the change touch production? <strong>yes</strong></li>"),
        "{}",
        page.text
    );
}

/// The requester comments and withdraws from the change page, through the
/// API's handlers; an auditor gets neither control, an approver who is
/// not the requester cannot withdraw even by posting the form.
async fn the_requester_comments_and_withdraws_from_the_change_page(app: TestApp) {
    let m = Msp::setup(&app).await;
    let n = m.submitted(changegate_testkit::msp::low_risk()).await;
    let path = format!("/t/client-a/changes/{n}");
    let audrey = sign_in(&app, "audrey@audit.example").await;
    let page = audrey.get(&path).await.status(200);
    assert!(
        !page.text.contains("/comment\"") && !page.text.contains("/withdraw\""),
        "an auditor gets no control: {}",
        page.text
    );
    let tom = sign_in(&app, "tom@msp.example").await;
    let page = tom.get(&path).await.status(200);
    assert!(!page.text.contains("/withdraw\""), "{}", page.text);
    tom.form(
        &format!("{path}/withdraw"),
        &[("csrf", &csrf(&page.text)), ("note", "not mine")],
    )
    .await
    .status(403);

    let eve = sign_in(&app, "eve@msp.example").await;
    let page = eve.get(&path).await.status(200);
    assert!(
        page.text.contains(&format!(">Withdraw {n}</button>")),
        "{}",
        page.text
    );
    eve.form(
        &format!("{path}/comment"),
        &[
            ("csrf", &csrf(&page.text)),
            ("body", "Moved to next week, see SHOP-312"),
        ],
    )
    .await
    .status(303);
    let comments = m.cm.get(&format!("{A}/changes/{n}/comments")).await.ok();
    assert_eq!(
        comments[0]["body"], "Moved to next week, see SHOP-312",
        "{comments}"
    );
    // An @-mention tells a person of the tenant by e-mail; someone of
    // another client is not found, nor told.
    let page = eve.get(&path).await.status(200);
    eve.form(
        &format!("{path}/comment"),
        &[
            ("csrf", &csrf(&page.text)),
            ("body", "@carol can you confirm the new date? cc @bob"),
        ],
    )
    .await
    .status(303);
    let outbox = app
        .store
        .due_messages(app.now() + chrono::TimeDelta::days(1), 100)
        .await
        .expect("the outbox");
    let told: Vec<_> = outbox
        .iter()
        .filter(|m| m.subject.contains("mentioned you"))
        .collect();
    assert_eq!(told.len(), 1, "{outbox:?}");
    assert_eq!(told[0].recipient, "carol@client-a.example");
    assert!(
        told[0]
            .body
            .contains("@carol can you confirm the new date?"),
        "{}",
        told[0].body
    );
    assert!(
        told[0]
            .body
            .contains(&format!("/t/client-a/changes/{n}#comments"))
    );
    let page = eve.get(&path).await.status(200);
    assert!(
        page.text.contains("<strong>eve</strong>"),
        "the comment by name: {}",
        page.text
    );
    assert!(page.text.contains("eve commented"), "{}", page.text);
    eve.form(
        &format!("{path}/withdraw"),
        &[("csrf", &csrf(&page.text)), ("note", "superseded")],
    )
    .await
    .status(303);
    let c = m.cm.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(c["state"], "cancelled");
    let page = eve.get(&path).await.status(200);
    assert!(page.text.contains(">Cancelled</span>"), "{}", page.text);
    assert!(
        !page.text.contains("/withdraw\""),
        "nothing left to withdraw"
    );
    assert!(page.text.contains("eve cancelled it"), "{}", page.text);
}

/// The fields of the change form as the edit page shows them for `n`,
/// with `changes` applied (as a person would retype them).
fn edit_fields(page: &str, changes: &[(&str, &str)]) -> Vec<(String, String)> {
    let value_of = |name: &str| -> String {
        let input = format!("name=\"{name}\" value=\"");
        if let Some(at) = page.find(&input) {
            let rest = &page[at + input.len()..];
            return html_unescape(&rest[..rest.find('"').expect("closing quote")]);
        }
        let area = format!("name=\"{name}\" rows=");
        if let Some(at) = page.find(&area) {
            let rest = &page[at..];
            let rest = &rest[rest.find('>').expect("tag end") + 1..];
            return html_unescape(&rest[..rest.find("</textarea>").expect("textarea end")]);
        }
        String::new()
    };
    let mut fields: Vec<(String, String)> = [
        "csrf",
        "title",
        "description",
        "justification",
        "artifacts",
        "planned_start",
        "planned_end",
        "implementation_plan",
        "test_plan",
        "test_evidence",
        "backout_plan",
        "communication_plan",
    ]
    .iter()
    .map(|name| (name.to_string(), value_of(name)))
    .collect();
    fields.push(("ci".into(), "payments-api".into()));
    for (q, a) in [
        ("production", "no"),
        ("outage", "no"),
        ("untested", "no"),
        ("no-backout", "no"),
    ] {
        fields.push((format!("risk.{q}"), a.into()));
    }
    for (name, value) in changes {
        match fields.iter_mut().find(|(k, _)| k == name) {
            Some(field) => field.1 = value.to_string(),
            None => fields.push((name.to_string(), value.to_string())),
        }
    }
    fields
}

fn html_unescape(s: &str) -> String {
    s.replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

async fn post_fields(who: &Actor, path: &str, fields: &[(String, String)]) -> Resp {
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    who.form(path, &pairs).await
}

/// The engineer edits a rejected change in the portal (with the preview,
/// and a bad date that loses nothing) and submits it again; an edit of a
/// change awaiting approval says that approval starts over; the
/// implementer starts it, is refused completion without the documentation
/// note, completes it, and a second change fails with its rollback, all
/// from the change page through the API's handlers. Nobody else gets these
/// controls, nor can post them.
async fn the_change_is_edited_started_and_completed_from_its_page(app: TestApp) {
    let m = Msp::setup(&app).await;
    // Inside client A's weekly window, so the changes may start.
    m.cm.put(
        &format!("{A}/windows/weekly"),
        json!({ "timeZone": "Europe/Berlin", "schedule": { "cron": { "expr": "0 2 * * SAT", "duration": "4h" } } }),
    )
    .await
    .ok();
    app.set_now(
        chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 28, 1, 30, 0)
            .single()
            .expect("a valid time"),
    );
    let low = changegate_testkit::msp::low_risk();
    let n = m.submitted(low.clone()).await;
    let change = format!("{A}/changes/{n}");
    let path = format!("/t/client-a/changes/{n}");
    // Rejected: both members of msp-tech (rule "any") say no.
    for who in [&m.tom, &m.tina] {
        who.post(
            &format!("{change}/decisions"),
            json!({ "decision": "reject", "revision": 1, "comment": "no test evidence" }),
        )
        .await
        .ok();
    }
    assert_eq!(m.cm.get(&change).await.ok()["state"], "rejected");

    let audrey = sign_in(&app, "audrey@audit.example").await;
    let page = audrey.get(&path).await.status(200);
    for control in ["/edit\"", "/submit\"", "/start\"", "/complete\"", "/fail\""] {
        assert!(!page.text.contains(control), "no {control} for an auditor");
    }
    audrey.get(&format!("{path}/edit")).await.status(403);

    let eve = sign_in(&app, "eve@msp.example").await;
    let page = eve.get(&path).await.status(200);
    assert!(
        page.text.contains(&format!("href=\"{path}/edit\"")),
        "{}",
        page.text
    );
    let form = eve.get(&format!("{path}/edit")).await.status(200);
    assert!(
        form.text.contains("value=\"Upgrade payments\""),
        "{}",
        form.text
    );
    assert!(
        form.text.contains("Save and submit for approval"),
        "{}",
        form.text
    );

    // A date the form cannot read: the page comes back with what was typed.
    let bad = edit_fields(
        &form.text,
        &[
            ("planned_start", "next Saturday"),
            ("test_evidence", "staging run 4711 green"),
            ("intent", "submit"),
        ],
    );
    let again = post_fields(&eve, &format!("{path}/edit"), &bad)
        .await
        .status(200);
    assert!(again.text.contains("YYYY-MM-DD"), "{}", again.text);
    assert!(
        again.text.contains("staging run 4711 green"),
        "{}",
        again.text
    );
    assert_eq!(
        m.cm.get(&change).await.ok()["state"],
        "rejected",
        "nothing saved"
    );

    let preview = edit_fields(
        &form.text,
        &[
            ("test_evidence", "staging run 4711 green"),
            ("intent", "preview"),
        ],
    );
    let shown = post_fields(&eve, &format!("{path}/edit"), &preview)
        .await
        .status(200);
    assert!(shown.text.contains("id=\"preview\""), "{}", shown.text);
    assert_eq!(
        m.cm.get(&change).await.ok()["content"]["test_evidence"],
        "",
        "a preview saves nothing"
    );

    let submit = edit_fields(
        &form.text,
        &[
            ("test_evidence", "staging run 4711 green"),
            ("intent", "submit"),
        ],
    );
    let done = post_fields(&eve, &format!("{path}/edit"), &submit)
        .await
        .status(303);
    assert_eq!(location(&done), path);
    let c = m.cm.get(&change).await.ok();
    assert_eq!(c["state"], "awaiting-approval", "{c}");
    assert_eq!(c["revision"], 2);
    assert_eq!(c["content"]["test_evidence"], "staging run 4711 green");
    assert_eq!(
        c["content"]["description"], "Upgrade the payments API to 2.4.1",
        "kept"
    );

    // Awaiting approval: a material edit says approval starts over.
    let form = eve.get(&format!("{path}/edit")).await.status(200);
    assert!(!form.text.contains("Save and submit"), "already submitted");
    let post_preview = |changes: Vec<(&'static str, &'static str)>| {
        let (eve, path, text) = (eve.clone(), path.clone(), form.text.clone());
        async move {
            let mut changes = changes;
            changes.push(("intent", "preview"));
            let fields = edit_fields(&text, &changes);
            post_fields(&eve, &format!("{path}/edit"), &fields)
                .await
                .status(200)
                .text
        }
    };
    let retitled = post_preview(vec![("title", "Upgrade payments to 2.4.2")]).await;
    assert!(
        retitled.contains("Saving this edit keeps the approval"),
        "the title is not signed: {retitled}"
    );
    let replanned =
        post_preview(vec![("implementation_plan", "helm upgrade payments 2.4.2")]).await;
    assert!(
        replanned.contains("Saving this edit starts approval over: it becomes revision 3"),
        "{replanned}"
    );
    m.tom
        .post(
            &format!("{change}/decisions"),
            json!({ "decision": "approve", "revision": 2 }),
        )
        .await
        .ok();

    // Only an implementer starts it; the requester is refused by the API's rule.
    let page = eve.get(&path).await.status(200);
    assert!(!page.text.contains("/start\""), "{}", page.text);
    eve.form(&format!("{path}/start"), &[("csrf", &csrf(&page.text))])
        .await
        .status(403);
    let ian = sign_in(&app, "ian@msp.example").await;
    let page = ian.get(&path).await.status(200);
    assert!(
        page.text
            .contains(&format!(">Start implementing {n}</button>")),
        "{}",
        page.text
    );
    ian.form(
        &format!("{path}/start"),
        &[("csrf", &csrf(&page.text)), ("note", "maintenance mode on")],
    )
    .await
    .status(303);
    assert_eq!(m.cm.get(&change).await.ok()["state"], "implementing");
    let page = ian.get(&path).await.status(200);
    assert!(
        page.text.contains("<dt>Carried out</dt><dd>started ")
            && page.text.contains(", still running</dd>"),
        "{}",
        page.text
    );
    let token = csrf(&page.text);
    assert!(
        page.text
            .contains("Documentation updated (of payments-api; required)"),
        "{}",
        page.text
    );
    let refused = ian
        .form(
            &format!("{path}/complete"),
            &[
                ("csrf", &token),
                ("note", "upgraded"),
                ("documentation", " "),
            ],
        )
        .await
        .status(422);
    assert!(
        refused
            .text
            .contains("say what was updated in the documentation of payments-api"),
        "{}",
        refused.text
    );
    ian.form(
        &format!("{path}/complete"),
        &[
            ("csrf", &token),
            ("note", "upgraded"),
            ("documentation", "runbook page PAY-7 updated"),
        ],
    )
    .await
    .status(303);
    let c = m.cm.get(&change).await.ok();
    assert_eq!(c["state"], "implemented", "{c}");
    let page = ian.get(&path).await.status(200);
    assert!(
        page.text.contains("Record the review and close"),
        "{}",
        page.text
    );
    // When it ran, from its start to its completion, in the client's zone.
    let carried = &page.text[page
        .text
        .find("<dt>Carried out</dt><dd>")
        .expect("when it ran")..];
    let carried = &carried[..carried.find("</dd>").expect("end")];
    assert!(
        carried.contains(" to ") && carried.contains("Europe/Berlin"),
        "{carried}"
    );

    // A second change fails and is rolled back, said from the page.
    let n2 = m.submitted(low).await;
    let change2 = format!("{A}/changes/{n2}");
    let path2 = format!("/t/client-a/changes/{n2}");
    m.tom
        .post(
            &format!("{change2}/decisions"),
            json!({ "decision": "approve", "revision": 1 }),
        )
        .await
        .ok();
    let page = ian.get(&path2).await.status(200);
    ian.form(&format!("{path2}/start"), &[("csrf", &csrf(&page.text))])
        .await
        .status(303);
    // Someone who did not start it may not say how it went.
    let tom = sign_in(&app, "tom@msp.example").await;
    let page = tom.get(&path2).await.status(200);
    assert!(!page.text.contains("/fail\""), "{}", page.text);
    let page = ian.get(&path2).await.status(200);
    let token = csrf(&page.text);
    let refused = ian
        .form(
            &format!("{path2}/fail"),
            &[
                ("csrf", &token),
                ("note", "pods crash"),
                ("rolled_back", "yes"),
            ],
        )
        .await
        .status(422);
    assert!(
        refused.text.contains("say what the rollback restored"),
        "{}",
        refused.text
    );
    ian.form(
        &format!("{path2}/fail"),
        &[
            ("csrf", &token),
            ("note", "pods crash"),
            ("rolled_back", "yes"),
            ("restored", "payments-api 2.4.0"),
        ],
    )
    .await
    .status(303);
    assert_eq!(m.cm.get(&change2).await.ok()["state"], "rolled-back");
    let page = ian.get(&path2).await.status(200);
    assert!(
        page.text
            .contains("<option value=\"rolled-back\" selected>"),
        "{}",
        page.text
    );
}

/// The release manager packages approved changes of two clients in the
/// portal: a refused form comes back with what was ticked and typed, the
/// release is created with its runbook through the API's handler, a
/// change and a step are added while it is planned, and a change page
/// offers the release being planned. Who does not package releases gets
/// no link and no candidate, and cannot post the forms.
async fn the_release_manager_packages_approved_changes_in_the_portal(app: TestApp) {
    let m = Msp::setup(&app).await;
    let rita_api = crate::releases::release_manager(&app).await;
    let a = crate::releases::approved_in_a(&m, "Upgrade payments", json!({})).await;
    let b = crate::releases::standard_in_b(&m).await;
    let a2 = crate::releases::approved_in_a(&m, "Resize payments database", json!({})).await;

    let tom = sign_in(&app, "tom@msp.example").await;
    let list = tom.get("/releases").await.status(200);
    assert!(!list.text.contains("/releases/new"), "{}", list.text);
    let form = tom.get("/releases/new").await.status(200);
    assert!(
        form.text.contains("No approved change is waiting"),
        "{}",
        form.text
    );

    let rita = sign_in(&app, "rita@msp.example").await;
    let list = rita.get("/releases").await.status(200);
    assert!(
        list.text.contains("href=\"/releases/new\""),
        "{}",
        list.text
    );
    let form = rita
        .get(&format!("/releases/new?change=client-a/{a}"))
        .await
        .status(200);
    for key in [
        format!("client-a/{a}"),
        format!("client-b/{b}"),
        format!("client-a/{a2}"),
    ] {
        assert!(
            form.text.contains(&format!("value=\"{key}\"")),
            "{key}: {}",
            form.text
        );
    }
    assert!(
        form.text
            .contains(&format!("value=\"client-a/{a}\" checked")),
        "the change it came from is ticked: {}",
        form.text
    );
    let token = csrf(&form.text);
    let a_key = format!("client-a/{a}");
    let b_key = format!("client-b/{b}");
    // A step about a change the release does not deliver: refused, kept.
    let refused = rita
        .form(
            "/releases/new",
            &[
                ("csrf", &token),
                ("name", "November maintenance"),
                ("change", &a_key),
                ("planned_start", "2026-11-28T01:00"),
                ("planned_end", "2026-11-28T03:00"),
                ("step0.kind", "deploy"),
                ("step0.title", "Resize the database"),
                ("step0.owner", "ian@msp.example"),
                ("step0.change", &a2),
            ],
        )
        .await
        .status(422);
    assert!(
        refused.text.contains("is not delivered by this release"),
        "{}",
        refused.text
    );
    assert!(
        refused.text.contains("value=\"Resize the database\""),
        "{}",
        refused.text
    );
    assert!(
        refused.text.contains(&format!("value=\"{a_key}\" checked")),
        "{}",
        refused.text
    );
    assert_eq!(
        rita_api
            .get("/api/v1/releases")
            .await
            .ok()
            .as_array()
            .map_or(0, Vec::len),
        0,
        "nothing created"
    );

    let created = rita
        .form(
            "/releases/new",
            &[
                ("csrf", &token),
                ("name", "November maintenance"),
                ("change", &a_key),
                ("planned_start", "2026-11-28T01:00"),
                ("planned_end", "2026-11-28T03:00"),
                ("step0.kind", "deploy"),
                ("step0.title", "Upgrade payments-api"),
                ("step0.owner", "ian@msp.example"),
                ("step0.change", &a),
            ],
        )
        .await
        .status(303);
    let at = location(&created).to_string();
    let rel = at
        .strip_prefix("/releases/")
        .expect("the release page")
        .to_string();
    let page = rita.get(&at).await.status(200);
    assert!(
        page.text.contains("Add an approved change"),
        "{}",
        page.text
    );
    rita.form(
        &format!("{at}/changes"),
        &[("csrf", &token), ("change", &b_key)],
    )
    .await
    .status(303);
    rita.form(
        &format!("{at}/runbook"),
        &[
            ("csrf", &token),
            ("kind", "validate"),
            ("title", "Smoke tests"),
            ("owner", "rita@msp.example"),
            ("change", ""),
        ],
    )
    .await
    .status(303);
    let r = rita_api.get(&format!("/api/v1/releases/{rel}")).await.ok();
    assert_eq!(r["name"], "November maintenance");
    assert_eq!(r["planned_start"], "2026-11-28T01:00:00Z");
    let changes: Vec<_> = r["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["number"].clone())
        .collect();
    assert_eq!(changes, [json!(a), json!(b)], "{r}");
    let steps: Vec<_> = r["runbook"]
        .as_array()
        .expect("runbook")
        .iter()
        .map(|s| s["title"].clone())
        .collect();
    assert_eq!(
        steps,
        [json!("Upgrade payments-api"), json!("Smoke tests")],
        "{r}"
    );

    // A change already in it offers no release; another approved change
    // offers this one, and comes back to its page once added.
    let page = rita
        .get(&format!("/t/client-a/changes/{a}"))
        .await
        .status(200);
    assert!(!page.text.contains("id=\"deliver\""), "{}", page.text);
    let page = rita
        .get(&format!("/t/client-a/changes/{a2}"))
        .await
        .status(200);
    assert!(
        page.text
            .contains(&format!("Add to {rel} November maintenance")),
        "{}",
        page.text
    );
    let back = rita
        .form(
            &format!("{at}/changes"),
            &[
                ("csrf", &token),
                ("change", &format!("client-a/{a2}")),
                ("back", "change"),
            ],
        )
        .await
        .status(303);
    assert_eq!(location(&back), format!("/t/client-a/changes/{a2}"));

    // Client B's approver sees the release's B part, but may not add to it.
    let bob = sign_in(&app, "bob@client-b.example").await;
    let page = bob.get(&at).await.status(200);
    assert!(
        !page.text.contains("Add an approved change"),
        "{}",
        page.text
    );
    bob.form(
        &format!("{at}/changes"),
        &[("csrf", &csrf(&page.text)), ("change", &b_key)],
    )
    .await
    .status(403);
}

/// Out of office in the portal: an approver hands their seat to another
/// approver for a period and both see it said; a bad period comes back
/// with what was typed; a client's administrator hands over a client
/// approver's seat with a reason, but not MSP staff's; an auditor gets no
/// form and cannot post one; another client's user reaches nothing.
async fn an_approver_hands_over_their_seat_while_away(app: TestApp) {
    let _m = Msp::setup(&app).await;
    let path = "/t/client-a/delegations";
    let tom = sign_in(&app, "tom@msp.example").await;
    let inbox = tom.get("/inbox").await.status(200);
    assert!(
        inbox.text.contains(&format!("href=\"{path}\"")),
        "{}",
        inbox.text
    );
    let page = tom.get(path).await.status(200);
    assert!(page.text.contains("Hand over your seat"), "{}", page.text);
    assert!(
        page.text.contains("<option value=\"tina@msp.example\""),
        "{}",
        page.text
    );
    assert!(
        !page.text.contains("<option value=\"tom@msp.example\""),
        "not to himself"
    );
    assert!(
        !page.text.contains("someone else's seat"),
        "tom administers nothing"
    );
    let token = csrf(&page.text);
    let back = tom
        .form(
            path,
            &[
                ("csrf", &token),
                ("to", "tina@msp.example"),
                ("starts_at", "2026-12-24T00:00"),
                ("ends_at", "2026-12-20T00:00"),
            ],
        )
        .await
        .status(422);
    assert!(
        back.text
            .contains("the delegation must end after it starts"),
        "{}",
        back.text
    );
    assert!(
        back.text.contains("value=\"2026-12-24T00:00\""),
        "{}",
        back.text
    );
    tom.form(
        path,
        &[
            ("csrf", &token),
            ("to", "tina@msp.example"),
            ("starts_at", "2026-12-20T00:00"),
            ("ends_at", "2027-01-04T00:00"),
        ],
    )
    .await
    .status(303);
    let page = tom.get(path).await.status(200);
    assert!(
        page.text.contains("tina decides in your seat"),
        "{}",
        page.text
    );
    let tina = sign_in(&app, "tina@msp.example").await;
    let page = tina.get(path).await.status(200);
    assert!(
        page.text.contains("You decide in the seat of tom"),
        "{}",
        page.text
    );

    let alice = sign_in(&app, "alice@client-a.example").await;
    let inbox = alice.get("/inbox").await.status(200);
    assert!(
        inbox.text.contains(&format!("href=\"{path}\"")),
        "{}",
        inbox.text
    );
    let page = alice.get(path).await.status(200);
    assert!(
        page.text.contains("Hand over someone else&#39;s seat")
            || page.text.contains("Hand over someone else's seat"),
        "{}",
        page.text
    );
    let token = csrf(&page.text);
    let period = [
        ("starts_at", "2026-12-20T00:00"),
        ("ends_at", "2027-01-04T00:00"),
    ];
    let mut fields = vec![
        ("csrf", token.as_str()),
        ("from", "carol@client-a.example"),
        ("to", "dan@client-a.example"),
    ];
    fields.extend(period);
    let refused = alice.form(path, &fields).await.status(422);
    assert!(
        refused
            .text
            .contains("say why you delegate carol@client-a.example"),
        "{}",
        refused.text
    );
    fields.push(("reason", "on parental leave"));
    alice.form(path, &fields).await.status(303);
    let mut msp = vec![
        ("csrf", token.as_str()),
        ("from", "tom@msp.example"),
        ("to", "carol@client-a.example"),
        ("reason", "away"),
    ];
    msp.extend(period);
    let refused = alice.form(path, &msp).await.status(403);
    assert!(refused.text.contains("MSP staff"), "{}", refused.text);
    let dan = sign_in(&app, "dan@client-a.example").await;
    assert!(
        dan.get(path)
            .await
            .status(200)
            .text
            .contains("You decide in the seat of carol"),
        "the handover is dan's to see"
    );

    let audrey = sign_in(&app, "audrey@audit.example").await;
    let page = audrey.get(path).await.status(200);
    assert!(
        !page
            .text
            .contains("<form method=\"post\" action=\"/t/client-a/delegations\""),
        "{}",
        page.text
    );
    let token = csrf(&page.text);
    let mut own = vec![("csrf", token.as_str()), ("to", "tom@msp.example")];
    own.extend(period);
    audrey.form(path, &own).await.status(403);
    let bob = sign_in(&app, "bob@client-b.example").await;
    bob.get(path).await.status(404);
}

/// The schedule builder: a change manager writes a weekly maintenance
/// window and a monthly blackout through the form (no JSON, no RRULE), the
/// page says each as a sentence, a form without a day is refused with
/// nothing saved, and an auditor may not post it.
async fn windows_are_built_from_a_form_and_read_as_sentences(app: TestApp) {
    let m = Msp::setup(&app).await;
    let path = "/t/client-a/settings";
    let cm = sign_in(&app, "cm@msp.example").await;
    let page = cm.get(path).await.status(200);
    assert!(
        page.text.contains("A window or blackout that repeats"),
        "{}",
        page.text
    );
    let token = csrf(&page.text);
    let weekly = cm
        .form(
            "/t/client-a/settings/windows",
            &[
                ("csrf", &token),
                ("name", "saturday-night"),
                ("kind", "maintenance"),
                ("repeats", "weekly"),
                ("day", "SA"),
                ("start", "02:00"),
                ("hours", "4"),
                ("time_zone", "Europe/Berlin"),
            ],
        )
        .await
        .status(200);
    assert!(
        weekly
            .text
            .contains("saturday-night saved: every Saturday 02:00–06:00 Europe/Berlin."),
        "{}",
        weekly.text
    );
    let windows = m.cm.get(&format!("{A}/windows")).await.ok();
    let w = windows
        .as_array()
        .expect("windows")
        .iter()
        .find(|w| w["name"] == "saturday-night")
        .cloned()
        .expect("the window saved");
    assert_eq!(
        w["spec"]["schedule"]["rrule"]["rule"],
        "FREQ=WEEKLY;BYDAY=SA;BYHOUR=2;BYMINUTE=0;BYSECOND=0",
        "{w}"
    );
    cm.form(
        "/t/client-a/settings/windows",
        &[
            ("csrf", &token),
            ("name", "patch-tuesday"),
            ("kind", "blackout"),
            ("repeats", "monthly"),
            ("ordinal", "2"),
            ("weekday", "TU"),
            ("start", "22:00"),
            ("hours", "3"),
            ("time_zone", ""),
        ],
    )
    .await
    .status(200);
    let page = cm.get(path).await.status(200);
    assert!(
        page.text.contains("<strong>patch-tuesday</strong> (blackout): the second Tuesday of every month 22:00–01:00 the next day Europe/Berlin"),
        "{}",
        page.text
    );
    let refused = cm
        .form(
            "/t/client-a/settings/windows",
            &[
                ("csrf", &token),
                ("name", "no-days"),
                ("repeats", "weekly"),
                ("start", "02:00"),
                ("hours", "4"),
            ],
        )
        .await
        .status(422);
    assert!(
        refused.text.contains("tick at least one day"),
        "{}",
        refused.text
    );
    let windows = m.cm.get(&format!("{A}/windows")).await.ok();
    assert!(
        !windows
            .as_array()
            .expect("windows")
            .iter()
            .any(|w| w["name"] == "no-days"),
        "nothing saved: {windows}"
    );
    // A board and a configuration item, from their forms.
    let saved = cm
        .form(
            "/t/client-a/settings/boards",
            &[
                ("csrf", &token),
                ("name", "client-change-board"),
                ("description", "client A's CAB"),
                ("member", "carol@client-a.example"),
                ("member", "role:technical-approver"),
                ("rule", "quorum"),
                ("quorum", "2"),
                ("chair", "tom@msp.example"),
                ("mandatory", "carol@client-a.example"),
            ],
        )
        .await
        .status(200);
    assert!(
        saved.text.contains("Board client-change-board: created."),
        "{}",
        saved.text
    );
    assert!(
        saved.text.contains("<strong>client-change-board</strong>: carol (carol@client-a.example), everyone who is technical-approver; 2 of its members approve; chaired by tom (tom@msp.example); carol (carol@client-a.example) must approve"),
        "{}",
        saved.text
    );
    let boards = m.cm.get(&format!("{A}/boards")).await.ok();
    let b = boards
        .as_array()
        .expect("boards")
        .iter()
        .find(|b| b["name"] == "client-change-board")
        .cloned()
        .expect("the board");
    assert_eq!(b["spec"]["rule"], "quorum 2", "{b}");
    assert_eq!(b["spec"]["chair"], "tom@msp.example", "{b}");
    let edit = cm
        .get(&format!("{path}?board=client-change-board"))
        .await
        .status(200);
    assert!(
        edit.text
            .contains("value=\"carol@client-a.example\" checked"),
        "{}",
        edit.text
    );
    assert!(
        edit.text
            .contains("Board client-change-board (saving replaces it)"),
        "{}",
        edit.text
    );
    let refused = cm
        .form(
            "/t/client-a/settings/boards",
            &[("csrf", &token), ("name", "empty-board"), ("rule", "any")],
        )
        .await
        .status(422);
    assert!(
        refused.text.contains("at least one member"),
        "{}",
        refused.text
    );
    // An item already bound to a pipeline keeps its binding when the form
    // (which does not show it) saves it.
    m.cm.put(
        &format!("{A}/configuration-items/payments-db"),
        json!({ "kind": "database", "enforcement": { "pipeline": { "environment": "production" } } }),
    )
    .await
    .ok();
    cm.form(
        "/t/client-a/settings/items",
        &[
            ("csrf", &token),
            ("name", "payments-db"),
            ("kind", "database"),
            ("criticality", "high"),
            ("environment", "production"),
            ("owner", ""),
        ],
    )
    .await
    .status(200);
    let items = m.cm.get(&format!("{A}/configuration-items")).await.ok();
    assert!(
        items
            .as_array()
            .expect("items")
            .iter()
            .any(|i| i["name"] == "payments-db"
                && i["spec"]["criticality"] == "high"
                && i["spec"]["enforcement"]["pipeline"]["environment"] == "production"),
        "{items}"
    );
    // Routing by type and risk, from its form; the rest of the policy kept.
    let routed = cm
        .form(
            "/t/client-a/settings/routing",
            &[
                ("csrf", &token),
                ("route.low", "msp-tech"),
                ("route.high", "msp-tech"),
                ("route.high", "client-change-board"),
                ("emergency", "msp-tech"),
            ],
        )
        .await
        .status(200);
    assert!(
        routed.text.contains("Normal changes: from low risk, msp-tech; from high risk, msp-tech and client-change-board."),
        "{}",
        routed.text
    );
    let policy = m.cm.get(&format!("{A}/policy")).await.ok();
    assert_eq!(
        policy["spec"]["routing"]["normal"],
        json!([{ "from": "low", "boards": ["msp-tech"] }, { "from": "high", "boards": ["msp-tech", "client-change-board"] }]),
        "{policy}"
    );
    // A client's admin writes blackouts, not boards.
    let alice = sign_in(&app, "alice@client-a.example").await;
    let page = alice.get(path).await.status(200);
    assert!(!page.text.contains("/settings/boards\""), "{}", page.text);
    alice
        .form(
            "/t/client-a/settings/boards",
            &[
                ("csrf", &csrf(&page.text)),
                ("name", "x"),
                ("member", "role:requester"),
                ("rule", "any"),
            ],
        )
        .await
        .status(403);

    let audrey = sign_in(&app, "audrey@audit.example").await;
    let page = audrey.get(path).await.status(200);
    assert!(
        !page.text.contains("/settings/windows\""),
        "no builder for an auditor"
    );
    audrey
        .form(
            "/t/client-a/settings/windows",
            &[
                ("csrf", &csrf(&page.text)),
                ("name", "sneaky"),
                ("day", "SA"),
                ("start", "02:00"),
                ("hours", "4"),
            ],
        )
        .await
        .status(403);
}

/// The inbox's "This week" lists the approved, scheduled or implementing
/// changes of the viewer's tenants that start within the next seven days,
/// soonest first: not one starting later, not one still awaiting approval,
/// never another client's.
async fn the_inbox_lists_what_starts_this_week_in_the_viewers_tenants(app: TestApp) {
    let m = Msp::setup(&app).await;
    let now = app.now();
    let raise = |tenant: &'static str, title: &'static str, days: i64| {
        let m = &m;
        async move {
            let mut body = changegate_testkit::msp::normal_change(title, low_risk());
            body["planned_start"] = json!((now + chrono::TimeDelta::days(days)).to_rfc3339());
            let at = format!("/api/v1/tenants/{tenant}/changes");
            let c = m.eve.post(&at, body).await.status(201).json;
            let n = c["number"].as_str().expect("number").to_string();
            m.eve
                .post(&format!("{at}/{n}/submit"), json!({}))
                .await
                .ok();
            n
        }
    };
    let approve = |tenant: &'static str, n: String| {
        let m = &m;
        async move {
            let who = if tenant == "client-a" { &m.tom } else { &m.bob };
            let c = who
                .post(
                    &format!("/api/v1/tenants/{tenant}/changes/{n}/decisions"),
                    json!({ "decision": "approve", "revision": 1 }),
                )
                .await
                .ok();
            assert_eq!(c["state"], "approved", "{c}");
        }
    };
    // Raised soonest first, so a list by number (newest first) would
    // put it last.
    let soon = raise("client-a", "Patch the database", 1).await;
    approve("client-a", soon).await;
    let later = raise("client-a", "Rotate certificates", 3).await;
    approve("client-a", later).await;
    let beyond = raise("client-a", "Move the archive", 10).await;
    approve("client-a", beyond).await;
    raise("client-a", "Resize the cache", 2).await;
    let b = raise("client-b", "Renew the firewall", 2).await;
    approve("client-b", b).await;

    let eve = sign_in(&app, "eve@msp.example").await;
    let inbox = eve.get("/inbox").await.status(200).text;
    let week = &inbox[inbox.find("id=\"week\"").expect("a week section")..];
    let (patch, rotate) = (
        week.find("Patch the database")
            .expect("the change starting tomorrow"),
        week.find("Rotate certificates")
            .expect("the change starting in 3 days"),
    );
    assert!(patch < rotate, "soonest first: {week}");
    assert!(
        week.contains("Renew the firewall"),
        "eve is in client-b too: {week}"
    );
    for absent in ["Move the archive", "Resize the cache"] {
        assert!(!week.contains(absent), "{absent} in {week}");
    }

    let carol = sign_in(&app, "carol@client-a.example").await;
    let inbox = carol.get("/inbox").await.status(200).text;
    let week = &inbox[inbox.find("id=\"week\"").expect("a week section")..];
    assert!(week.contains("Patch the database"), "{week}");
    assert!(
        !week.contains("Renew the firewall"),
        "client-b's change: {week}"
    );
}

/// The change page says what the gate answers a deployment under the
/// change now, in the gate's own words: allowed inside the window; outside
/// it, blocked with the next window named; a planned slot not yet begun,
/// wait for it.
async fn the_change_page_says_what_the_gate_answers_now(app: TestApp) {
    let m = Msp::setup(&app).await;
    // Wednesdays 08:00–12:00 Berlin; the test clock starts inside it.
    m.cm.put(
        &format!("{A}/windows/wednesday-morning"),
        json!({ "timeZone": "Europe/Berlin", "schedule": { "cron": { "expr": "0 8 * * WED", "duration": "4h" } } }),
    )
    .await
    .ok();
    m.cm.put(
        &format!("{A}/configuration-items/payments-api"),
        json!({ "kind": "application", "enforcement": { "pipeline": { "environment": "production" } } }),
    )
    .await
    .ok();
    let n = m.submitted(changegate_testkit::msp::low_risk()).await;
    let page_path = format!("/t/client-a/changes/{n}");
    let eve = sign_in(&app, "eve@msp.example").await;
    let page = html_unescape(&eve.get(&page_path).await.status(200).text);
    assert!(page.contains("What blocks it now:</strong>"), "{page}");
    assert!(page.contains(&format!("{n} awaits")), "{page}");

    m.tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "revision": 1 }),
        )
        .await
        .ok();
    let page = html_unescape(&eve.get(&page_path).await.status(200).text);
    assert!(
        page.contains(&format!("The gate lets it ship:</strong> {n} may ship")),
        "{page}"
    );

    // Three hours on, the window has closed: the page gives the gate's
    // sentence word for word.
    app.set_now(app.now() + chrono::TimeDelta::hours(3));
    let asked = m
        .ian
        .post(
            "/api/v1/gate/check",
            json!({ "tenant": "client-a", "target": { "pipeline": { "environment": "production" } },
                    "artifacts": ["registry.example/payments@sha256:aaaa"] }),
        )
        .await
        .ok();
    assert_eq!(asked["verdict"], "deny", "{asked}");
    let said = asked["message"].as_str().expect("a message");
    assert!(said.contains("wednesday-morning"), "{said}");
    let page = html_unescape(&eve.get(&page_path).await.status(200).text);
    assert!(
        page.contains(&format!("What blocks it now:</strong> {said}")),
        "{said} in {page}"
    );
    // Where the client's enforcement only warns, the page says so.
    let mut policy = m.cm.get(&format!("{A}/policy")).await.ok()["spec"].clone();
    policy["enforcement"] = json!("Warn");
    m.cm.put(&format!("{A}/policy"), policy).await.ok();
    let page = html_unescape(&eve.get(&page_path).await.status(200).text);
    assert!(
        page.contains(&format!(
            "The gate warns:</strong> {said} (this client's enforcement is set to warn"
        )),
        "{page}"
    );
}

/// The risk questionnaire and the standard-change templates are edited as
/// forms: a positively worded question is added (and an old one removed),
/// and a change raised afterwards is assessed by it; a wrong row comes back
/// with every row as typed and nothing saved; a template is written with its
/// pre-approved scope, said in words, edited from its own link, and a bad
/// date loses nothing. A client's admin and an auditor get neither form and
/// cannot post one.
async fn the_risk_questionnaire_and_templates_are_edited_as_forms(app: TestApp) {
    let m = Msp::setup(&app).await;
    let cm = sign_in(&app, "cm@msp.example").await;
    let page = cm.get("/t/client-a/settings").await.status(200);
    let token = csrf(&page.text);
    assert!(
        page.text
            .contains("Does the change touch production? (weight 3): no scores 0, yes scores 1."),
        "{}",
        page.text
    );
    // The default questionnaire's four rows, then two blank ones.
    assert!(
        page.text.contains("name=\"q.3.key\" value=\"no-backout\""),
        "{}",
        page.text
    );
    assert!(
        page.text.contains("name=\"q.5.key\" value=\"\""),
        "{}",
        page.text
    );
    let mut rows: Vec<(String, String)> = vec![("csrf".into(), token.clone())];
    let questions = [
        (
            "production",
            "Does the change touch production?",
            "3",
            "no=0, yes=1",
        ),
        (
            "outage",
            "Is a service outage expected?",
            "4",
            "no=0, yes=1",
        ),
        (
            "untested",
            "Is the change untested in a non-production environment?",
            "3",
            "no=0, yes=1",
        ),
        (
            "no-backout",
            "Is there no tested backout plan?",
            "2",
            "no=0, yes=1",
        ),
        (
            "tested-backout",
            "Has the backout been rehearsed?",
            "5",
            "yes=0, no=1",
        ),
        ("", "", "", ""),
    ];
    for (i, (key, text, weight, answers)) in questions.iter().enumerate() {
        for (what, v) in [
            ("key", key),
            ("text", text),
            ("weight", weight),
            ("answers", answers),
        ] {
            rows.push((format!("q.{i}.{what}"), v.to_string()));
        }
    }
    rows.push(("remove".into(), "3".into()));
    for (k, v) in [("medium", "3"), ("high", "6"), ("critical", "10")] {
        rows.push((k.into(), v.into()));
    }
    // A wrong score first: refused, nothing saved, every row as typed.
    let mut wrong = rows.clone();
    wrong
        .iter_mut()
        .find(|(k, _)| k == "q.4.answers")
        .expect("row 5")
        .1 = "yes=0, no=often".into();
    let refused = post_fields(&cm, "/t/client-a/settings/questionnaire", &wrong)
        .await
        .status(422);
    assert!(
        refused
            .text
            .contains("question 4 (tested-backout): write its answers as answer=score"),
        "{}",
        refused.text
    );
    assert!(
        refused.text.contains("value=\"yes=0, no=often\""),
        "{}",
        refused.text
    );
    assert!(
        refused
            .text
            .contains("value=\"Has the backout been rehearsed?\""),
        "{}",
        refused.text
    );
    let policy = m.cm.get(&format!("{A}/policy")).await.ok();
    assert_eq!(
        policy["spec"]["questionnaire"]["questions"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );

    let saved = post_fields(&cm, "/t/client-a/settings/questionnaire", &rows)
        .await
        .status(200);
    assert!(
        saved.text.contains("Risk questionnaire saved: 4 questions"),
        "{}",
        saved.text
    );
    assert!(
        saved
            .text
            .contains("Has the backout been rehearsed? (weight 5): yes scores 0, no scores 1."),
        "{}",
        saved.text
    );
    let policy = m.cm.get(&format!("{A}/policy")).await.ok();
    let keys: Vec<&str> = policy["spec"]["questionnaire"]["questions"]
        .as_array()
        .expect("questions")
        .iter()
        .filter_map(|q| q["key"].as_str())
        .collect();
    assert_eq!(
        keys,
        ["production", "outage", "untested", "tested-backout"],
        "{policy}"
    );
    assert_eq!(
        policy["spec"]["questionnaire"]["thresholds"]["critical"],
        10
    );
    assert!(
        policy["spec"]["routing"]["normal"].is_array(),
        "the rest is kept: {policy}"
    );
    // A change raised now is assessed by the new questions: an unrehearsed
    // backout (5) in production (3) is high risk.
    let c = m
        .eve
        .post(
            &format!("{A}/changes"),
            changegate_testkit::msp::normal_change(
                "Swap the load balancer",
                json!({ "production": "yes", "outage": "no", "untested": "no", "tested-backout": "no" }),
            ),
        )
        .await
        .status(201)
        .json;
    let n = c["number"].as_str().expect("a number");
    let c = m
        .eve
        .post(&format!("{A}/changes/{n}/submit"), json!({}))
        .await
        .ok();
    assert_eq!(c["risk"]["level"], "high", "{c}");

    // A template with its pre-approved scope.
    let template = |review_due: &str| -> Vec<(String, String)> {
        [
            ("csrf", token.as_str()),
            ("name", "cache-flush"),
            ("title", "Flush the payments cache"),
            ("description", "Clears the cache after a price list import"),
            ("implementation_plan", "redis-cli FLUSHDB"),
            ("test_plan", "prices load"),
            ("backout_plan", "none needed: the cache refills"),
            ("steps", "announce it\nflush\ncheck prices"),
            ("item", "payments-api"),
            ("item_kinds", "cache"),
            ("artifacts", ""),
            ("paths", "spec.replicas"),
            ("variables", "reason=price import"),
            ("approved_by", "cm@msp.example"),
            ("approved_on", "2026-11-01"),
            ("review_due", review_due),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let refused = post_fields(&cm, "/t/client-a/settings/templates", &template("someday"))
        .await
        .status(422);
    assert!(
        refused.text.contains("review due: a date"),
        "{}",
        refused.text
    );
    assert!(
        refused.text.contains("value=\"Flush the payments cache\""),
        "{}",
        refused.text
    );
    assert!(
        refused
            .text
            .contains("announce it\nflush\ncheck prices</textarea>"),
        "{}",
        refused.text
    );
    let stored = m.cm.get(&format!("{A}/templates")).await.ok();
    assert!(
        !stored.to_string().contains("cache-flush"),
        "nothing saved: {stored}"
    );

    let saved = post_fields(
        &cm,
        "/t/client-a/settings/templates",
        &template("2027-11-01"),
    )
    .await
    .status(200);
    assert!(
        saved.text.contains("<strong>cache-flush</strong>: Flush the payments cache; pre-approves configuration items payments-api, any cache; no artifact; spec paths spec.replicas; 3 steps; approved by"),
        "{}",
        saved.text
    );
    let stored = m.cm.get(&format!("{A}/templates")).await.ok();
    let spec = &stored
        .as_array()
        .expect("templates")
        .iter()
        .find(|t| t["name"] == "cache-flush")
        .expect("the template")["spec"];
    assert_eq!(
        spec["configurationItems"],
        json!(["payments-api"]),
        "{spec}"
    );
    assert_eq!(
        spec["variables"],
        json!({ "reason": "price import" }),
        "{spec}"
    );
    assert_eq!(spec["reviewDue"], "2027-11-01", "{spec}");
    // Its edit link fills the form from it.
    let edit = cm
        .get("/t/client-a/settings?template=cache-flush")
        .await
        .status(200);
    assert!(
        edit.text
            .contains("Template cache-flush (saving replaces it)"),
        "{}",
        edit.text
    );
    assert!(
        edit.text.contains("value=\"payments-api\" checked"),
        "{}",
        edit.text
    );

    // Neither form for a client's admin or an auditor, nor a post.
    for who in ["alice@client-a.example", "audrey@audit.example"] {
        let b = sign_in(&app, who).await;
        let page = b.get("/t/client-a/settings").await.status(200);
        assert!(
            !page.text.contains("questionnaire-form") && !page.text.contains("template-form"),
            "{who}"
        );
        let token = csrf(&page.text);
        let mut theirs = rows.clone();
        theirs[0].1 = token.clone();
        post_fields(&b, "/t/client-a/settings/questionnaire", &theirs)
            .await
            .status(403);
        let mut theirs = template("2027-11-01");
        theirs[0].1 = token;
        post_fields(&b, "/t/client-a/settings/templates", &theirs)
            .await
            .status(403);
    }
}

crate::on_both!(
    the_risk_questionnaire_and_templates_are_edited_as_forms,
    the_change_page_says_what_the_gate_answers_now,
    the_inbox_lists_what_starts_this_week_in_the_viewers_tenants,
    windows_are_built_from_a_form_and_read_as_sentences,
    an_approver_hands_over_their_seat_while_away,
    the_release_manager_packages_approved_changes_in_the_portal,
    the_change_is_edited_started_and_completed_from_its_page,
    the_requester_comments_and_withdraws_from_the_change_page,
    the_change_page_shows_each_revision_and_what_it_changed,
    an_undecided_approval_is_reminded_once_then_escalated_to_the_backup,
    the_settings_pages_administer_a_tenant_within_each_roles_rights,
    an_engineer_raises_a_change_from_a_template_after_a_preview,
    a_cab_member_approves_in_the_board_agenda,
    the_auditor_reads_a_period_of_evidence_with_no_write_control,
    a_client_approver_signs_in_and_approves_from_the_change_page,
    pages_show_nothing_of_another_tenant_and_give_no_auditor_a_write_control,
    every_page_answers_every_caller_as_the_page_table_says,
);
