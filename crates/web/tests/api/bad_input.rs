//! Bodies nobody should send: random JSON against every route of the route
//! table that takes a body (never a 5xx, always a JSON error with a code,
//! nothing written for a refused request, the audit chain intact), and the
//! explicit cases of a body that is not JSON, not labelled JSON, or has a
//! field the API does not know.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use changegate_core::{Email, Role};
use changegate_store::Store;
use changegate_testkit::msp::{Msp, low_risk, normal_change};
use changegate_testkit::{Actor, TestApp};
use changegate_web::RouteInfo;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};
use std::future::Future;
use tower::ServiceExt;

const A: &str = "/api/v1/tenants/client-a";

/// Field names the API's bodies use, so random objects often hold a known
/// field with a value of the wrong type.
const FIELDS: &[&str] = &[
    "type",
    "title",
    "description",
    "justification",
    "impact",
    "risk_answers",
    "configuration_items",
    "artifacts",
    "planned_start",
    "planned_end",
    "implementation_plan",
    "test_plan",
    "backout_plan",
    "template",
    "implementer",
    "decision",
    "comment",
    "on_behalf_of",
    "revision",
    "note",
    "documentation",
    "rolled_back",
    "restored",
    "outcome",
    "notes",
    "lessons",
    "body",
    "email",
    "name",
    "kind",
    "roles",
    "slug",
    "time_zone",
    "timeZone",
    "schedule",
    "cron",
    "expr",
    "duration",
    "ranges",
    "start",
    "end",
    "exclusions",
    "allowTypes",
    "tenants",
    "members",
    "rule",
    "mandatory",
    "chair",
    "routing",
    "normal",
    "emergency",
    "from",
    "boards",
    "questionnaire",
    "approvalExpiryHours",
    "windowRequired",
    "reviewRequired",
    "enforcement",
    "approvedBy",
    "approvedOn",
    "reviewDue",
    "configurationItems",
    "criticality",
    "owner",
    "to",
    "starts_at",
    "ends_at",
];

/// Strings that parse as something somewhere in the API.
const WORDS: &[&str] = &[
    "",
    "approve",
    "reject",
    "normal",
    "standard",
    "emergency",
    "all",
    "any",
    "quorum 2",
    "role:change-manager",
    "cm@msp.example",
    "carol@client-a.example",
    "2026-11-25T10:00:00Z",
    "2026-01-05",
    "Europe/Berlin",
    "blackout",
    "maintenance",
    "0 2 * * SAT",
    "4h",
    "succeeded",
    "CHG-1",
    "msp-tech",
    "client-a",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(FIELDS).prop_map(String::from),
        1 => "[a-zA-Z_]{1,12}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,24}".prop_map(Value::String),
        // Control characters too, U+0000 among them (PostgreSQL stores no NUL).
        "[\\x00-\\x1f a-z]{0,6}".prop_map(Value::String),
        proptest::sample::select(WORDS).prop_map(|w| json!(w)),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Mostly objects (that is what every body is), sometimes any JSON at all.
fn body() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => proptest::collection::btree_map(key(), json_value(), 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        1 => json_value(),
    ]
}

/// Every tenant's audit events, counted.
async fn audit_event_count(store: &dyn Store) -> usize {
    let mut total = 0;
    for t in store.tenants(None).await.expect("tenants") {
        total += store
            .audit_events(t.id)
            .await
            .expect("audit events")
            .0
            .len();
    }
    total
}

async fn every_chain_is_intact(store: &dyn Store) {
    for t in store.tenants(None).await.expect("tenants") {
        let (events, head) = store.audit_events(t.id).await.expect("audit events");
        let report = changegate_core::audit::verify(&events, &head);
        assert!(
            report.intact,
            "the audit chain of {} broke: {:?}",
            t.slug, report.first_break
        );
    }
}

/// The caller of the random bodies: an installation admin who is also a
/// change manager and a requester of client-a, so that requests get past
/// authorization and into the parsing and the domain.
async fn everyone(app: &TestApp) -> Msp {
    let m = Msp::setup(app).await;
    let admin = app
        .store
        .user_by_email(&Email::parse(&m.admin.email).expect("an e-mail"))
        .await
        .expect("the admin");
    let a = app
        .store
        .tenant_by_slug("client-a")
        .await
        .expect("client-a");
    for role in [Role::ChangeManager, Role::Requester] {
        app.store
            .bind_role(admin.id, a.id, role, "test", app.now())
            .await
            .expect("bound");
    }
    m
}

fn fill(route: &RouteInfo, draft: &str, awaiting: &str, release: &str) -> String {
    let number = if route.path.starts_with("/api/v1/releases/") {
        release
    } else if route.path.ends_with("/decisions") {
        awaiting
    } else {
        draft
    };
    route
        .path
        .replace("{tenant}", "client-a")
        .replace("{number}", number)
        .replace("{name}", "fuzzed")
        .replace("{step}", "1")
}

async fn one_request(
    app: &TestApp,
    who: &Actor,
    route: &RouteInfo,
    path: &str,
    body: Value,
) -> Result<(), TestCaseError> {
    let before = audit_event_count(app.store.as_ref()).await;
    let method = route.method.parse().expect("an HTTP method");
    let r = who.call(method, path, Some(body.clone())).await;
    let cell = format!("{} {path} with {body}", route.method);
    prop_assert!(
        !r.status.is_server_error(),
        "{cell}: {} {}",
        r.status,
        r.text
    );
    if r.status.is_client_error() {
        prop_assert!(
            !r.code().is_empty(),
            "{cell}: {} without an error code: {}",
            r.status,
            r.text
        );
        let after = audit_event_count(app.store.as_ref()).await;
        prop_assert_eq!(
            before,
            after,
            "{}: refused with {} but wrote to the audit chain: {}",
            cell,
            r.status,
            r.text
        );
    }
    Ok(())
}

fn random_bodies_never_break_the_server_nor_half_write<F, Fut>(new_app: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = TestApp>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let (app, who, draft, awaiting, release) = rt.block_on(async {
        let app = new_app().await;
        let m = everyone(&app).await;
        let raise = async |by: &Actor| {
            let c = by
                .post(&format!("{A}/changes"), normal_change("Fuzzed", low_risk()))
                .await
                .status(201)
                .json;
            c["number"].as_str().expect("a number").to_string()
        };
        let draft = raise(&m.admin).await;
        let awaiting = raise(&m.eve).await;
        m.eve
            .post(&format!("{A}/changes/{awaiting}/submit"), json!({}))
            .await
            .ok();
        // A planned release of the draft, with one step (written through
        // the store: the fuzzed routes act on it).
        let tenant = app.store.tenant_by_slug("client-a").await.expect("tenant");
        let admin = app
            .store
            .user_by_email(&changegate_core::Email::parse("admin@msp.example").expect("email"))
            .await
            .expect("admin");
        let release = app
            .store
            .create_release(
                changegate_store::NewRelease {
                    name: "Fuzzed release".into(),
                    owner: admin.id,
                    planned_start: None,
                    planned_end: None,
                    changes: vec![changegate_store::ReleaseItem {
                        tenant: tenant.id,
                        change: draft.parse().expect("a change number"),
                    }],
                    record: changegate_core::release::Record {
                        runbook: vec![changegate_core::release::Step {
                            kind: changegate_core::release::StepKind::Deploy,
                            title: "fuzzed step".into(),
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
            .expect("release created")
            .number
            .to_string();
        (app, m.admin, draft, awaiting, release)
    });
    let routes: Vec<RouteInfo> = changegate_web::route_table()
        .into_iter()
        .filter(|r| matches!(r.method, "POST" | "PUT" | "PATCH"))
        .collect();
    let started = std::time::Instant::now();
    for route in &routes {
        let path = fill(route, &draft, &awaiting, &release);
        // Without a source file proptest cannot persist failures; the message names the body.
        let config = Config {
            cases: 64,
            max_shrink_iters: 256,
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        let result = runner.run(&body(), |b| {
            rt.block_on(one_request(&app, &who, route, &path, b))
        });
        if let Err(e) = result {
            panic!("{} {}: {e}", route.method, route.path);
        }
    }
    rt.block_on(every_chain_is_intact(app.store.as_ref()));
    eprintln!(
        "random bodies on {}: {} routes × 64 bodies in {:?}",
        app.store.backend(),
        routes.len(),
        started.elapsed()
    );
}

mod random_bodies_never_break_the_server_nor_half_write {
    use changegate_testkit::TestApp;

    #[test]
    fn sqlite() {
        super::random_bodies_never_break_the_server_nor_half_write(TestApp::sqlite)
    }

    #[test]
    fn postgres() {
        super::random_bodies_never_break_the_server_nor_half_write(TestApp::postgres)
    }
}

/// Percent-encoding of a path segment or query value: every byte that is
/// not unreserved, so any text reaches the router as it was meant.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Parameters known to have broken parsers: a number followed by a
/// four-byte character (a byte slice cut inside it), a prefix cut the same
/// way, overflow, signs, separators. Always sent, before the random ones.
const KNOWN_BAD: &[&str] = &[
    "0\u{10000}",
    "nul\u{0}inside",
    "CHG\u{10000}",
    "REL\u{10000}",
    "ÄÄÄÄ1",
    "-1",
    "0",
    "99999999999999999999",
    "1e3",
    " 1",
    "%",
    "/",
    "",
];

/// Text a path or query parameter could hold: any script, numbers with
/// odd characters around them.
fn parameter() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "\\PC{0,12}",
        1 => ("(CHG-|REL-|chg-|)", "[0-9]{0,3}", "\\PC{0,3}").prop_map(|(p, n, t)| format!("{p}{n}{t}")),
    ]
}

/// Every route of the table with its parameters replaced by `text`, and
/// the list routes with `text` in each query parameter they read.
fn paths_with(text: &str) -> Vec<(&'static str, String)> {
    let t = encode(text);
    let mut paths: Vec<(&'static str, String)> = changegate_web::route_table()
        .into_iter()
        .filter(|r| r.path.contains('{'))
        .map(|r| {
            let path = r
                .path
                .replace("{tenant}", "client-a")
                .replace("{number}", &t)
                .replace("{name}", &t)
                .replace("{step}", &t)
                .replace("{id}", &t);
            (r.method, path)
        })
        .collect();
    for q in [
        "before",
        "limit",
        "state",
        "type",
        "requester",
        "from",
        "to",
        "tenant",
    ] {
        paths.push(("GET", format!("/api/v1/changes?{q}={t}")));
        paths.push(("GET", format!("{A}/changes?{q}={t}")));
    }
    for q in ["from", "to", "format"] {
        paths.push(("GET", format!("{A}/evidence?{q}={t}")));
        paths.push(("GET", format!("{A}/kpis?{q}={t}")));
        paths.push(("GET", format!("{A}/calendar?{q}={t}")));
    }
    paths.push(("GET", format!("/api/v1/changes/{t}")));
    paths
}

fn random_path_and_query_parameters_never_break_the_server<F, Fut>(new_app: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = TestApp>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let (app, who) = rt.block_on(async {
        let app = new_app().await;
        let m = everyone(&app).await;
        (app, m.admin)
    });
    let config = Config {
        cases: 96,
        max_shrink_iters: 256,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let known = proptest::sample::select(KNOWN_BAD).prop_map(String::from);
    let result = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    })
    .run(&known, |text| rt.block_on(every_route_with(&who, &text)))
    .and_then(|()| {
        runner.run(&parameter(), |text| {
            rt.block_on(every_route_with(&who, &text))
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    rt.block_on(every_chain_is_intact(app.store.as_ref()));
}

/// Every parameter of every route set to `text`: never a server error,
/// every refusal a JSON error with a code.
async fn every_route_with(who: &Actor, text: &str) -> Result<(), TestCaseError> {
    for (method, path) in paths_with(text) {
        let body = (method != "GET" && method != "DELETE").then(|| json!({}));
        let r = who
            .call(method.parse().expect("an HTTP method"), &path, body)
            .await;
        prop_assert!(
            !r.status.is_server_error(),
            "{method} {path}: {} {}",
            r.status,
            r.text
        );
        if r.status.is_client_error() {
            prop_assert!(
                !r.code().is_empty(),
                "{method} {path}: {} without an error code: {}",
                r.status,
                r.text
            );
        }
    }
    Ok(())
}

mod random_path_and_query_parameters_never_break_the_server {
    use changegate_testkit::TestApp;

    #[test]
    fn sqlite() {
        super::random_path_and_query_parameters_never_break_the_server(TestApp::sqlite)
    }

    #[test]
    fn postgres() {
        super::random_path_and_query_parameters_never_break_the_server(TestApp::postgres)
    }
}

/// A request as a client could send it, without the JSON help of `Actor`.
async fn raw(
    app: &TestApp,
    who: &Actor,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let router = changegate_web::router(app.state.clone());
    let mut req = Request::post(path).header(
        "authorization",
        format!("Bearer {}", who.token.as_deref().unwrap_or("")),
    );
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let res = router
        .oneshot(req.body(Body::from(body.to_string())).expect("a request"))
        .await
        .expect("an answer");
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .expect("a body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn a_body_that_is_not_json_is_refused_as_bad_json(app: TestApp) {
    let m = Msp::setup(&app).await;
    let (status, body) = raw(
        &app,
        &m.eve,
        &format!("{A}/changes"),
        Some("application/json"),
        "{\"type\": \"normal\",",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "bad-json", "{body}");
}

async fn a_body_without_a_json_content_type_is_refused_as_unsupported(app: TestApp) {
    let m = Msp::setup(&app).await;
    let valid = normal_change("Upgrade", low_risk()).to_string();
    let (status, body) = raw(&app, &m.eve, &format!("{A}/changes"), None, &valid).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert_eq!(body["error"]["code"], "unsupported-media-type", "{body}");
    let (status, _) = raw(
        &app,
        &m.eve,
        &format!("{A}/changes"),
        Some("text/plain"),
        &valid,
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let listed = m.eve.get(&format!("{A}/changes")).await.ok();
    assert_eq!(listed["items"], json!([]), "nothing was raised");
}

async fn an_unknown_field_in_a_change_body_is_refused_naming_the_field(app: TestApp) {
    let m = Msp::setup(&app).await;
    let mut body = normal_change("Upgrade", low_risk());
    body["colour"] = json!("red");
    let r = m.eve.post(&format!("{A}/changes"), body).await.status(422);
    assert_eq!((r.code(), r.field()), ("invalid", "colour"), "{}", r.text);
    assert_eq!(
        m.eve.get(&format!("{A}/changes")).await.ok()["items"],
        json!([]),
        "nothing was raised"
    );

    let c = m
        .eve
        .post(
            &format!("{A}/changes"),
            normal_change("Upgrade", low_risk()),
        )
        .await
        .status(201)
        .json;
    let n = c["number"].as_str().expect("a number");
    let r = m
        .eve
        .patch(&format!("{A}/changes/{n}"), json!({ "colour": "red" }))
        .await
        .status(422);
    assert_eq!((r.code(), r.field()), ("invalid", "colour"), "{}", r.text);
    let r = m
        .eve
        .patch(&format!("{A}/changes/{n}"), json!({ "title": 7 }))
        .await
        .status(422);
    assert_eq!(r.field(), "title", "{}", r.text);
}

async fn text_with_a_nul_character_is_refused_naming_the_field(app: TestApp) {
    let m = Msp::setup(&app).await;
    let mut body = normal_change("Upgrade", low_risk());
    body["title"] = json!("Upgrade\u{0}payments");
    let r = m.eve.post(&format!("{A}/changes"), body).await.status(422);
    assert_eq!(r.field(), "title", "{}", r.text);
    let r = m
        .ian
        .post(&format!("{A}/gate-tokens"), json!({ "name": "ci\u{0}" }))
        .await
        .status(422);
    assert_eq!(r.field(), "name", "{}", r.text);
    // In a path, where no JSON is read: refused, never a server error.
    let r =
        m.cm.put(
            &format!("{A}/boards/nul%00board"),
            json!({ "members": ["tom@msp.example"], "rule": "any" }),
        )
        .await;
    assert!(r.status.is_client_error(), "{} {}", r.status, r.text);
    assert_eq!(
        m.eve.get(&format!("{A}/changes")).await.ok()["items"],
        json!([]),
        "nothing was raised"
    );
}

crate::on_both!(
    text_with_a_nul_character_is_refused_naming_the_field,
    a_body_that_is_not_json_is_refused_as_bad_json,
    a_body_without_a_json_content_type_is_refused_as_unsupported,
    an_unknown_field_in_a_change_body_is_refused_naming_the_field,
);
