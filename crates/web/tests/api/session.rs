//! Signing in with a local account: argon2id passwords, a session cookie
//! that scripts cannot read and other sites cannot send, and sign-out.

use changegate_testkit::TestApp;
use changegate_testkit::msp::Msp;
use chrono::TimeDelta;
use serde_json::json;

const PASSWORD: &str = "correct horse battery staple";

fn session_cookie(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .expect("name=value")
        .to_string()
}

async fn a_signed_in_user_is_known_by_the_session_cookie_until_signing_out(app: TestApp) {
    Msp::setup(&app).await;
    app.set_password("carol@client-a.example", PASSWORD).await;
    let r = app
        .anonymous()
        .post(
            "/api/v1/session",
            json!({ "email": "Carol@Client-A.example", "password": PASSWORD }),
        )
        .await
        .status(200);
    assert_eq!(r.json["email"], "carol@client-a.example");
    let set = r
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(set.contains(flag), "{flag} missing from {set}");
    }
    let browser = app.browser(Some(session_cookie(&set)));
    let me = browser.get("/api/v1/me").await.ok();
    assert_eq!(me["roles"], json!({ "client-a": ["business-approver"] }));
    // The session acts with the user's own rights only.
    browser.get("/api/v1/tenants/client-b").await.status(404);
    // Signing out is a write like any other: from a script of this server.
    let out = browser
        .call_with(
            "DELETE",
            "/api/v1/session",
            &[("content-type", "application/json")],
        )
        .await
        .status(204);
    let cleared = out
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    browser.get("/api/v1/me").await.status(401);
}

async fn a_wrong_password_and_an_unknown_account_get_the_same_answer(app: TestApp) {
    Msp::setup(&app).await;
    app.set_password("carol@client-a.example", PASSWORD).await;
    let anon = app.anonymous();
    let wrong = anon
        .post(
            "/api/v1/session",
            json!({ "email": "carol@client-a.example", "password": "not it at all" }),
        )
        .await
        .status(401);
    let unknown = anon
        .post(
            "/api/v1/session",
            json!({ "email": "nobody@client-a.example", "password": PASSWORD }),
        )
        .await
        .status(401);
    // An account without a password (approves by e-mail link) cannot sign in with one.
    let no_password = anon
        .post(
            "/api/v1/session",
            json!({ "email": "dan@client-a.example", "password": "" }),
        )
        .await
        .status(401);
    assert_eq!(wrong.json, unknown.json);
    assert_eq!(wrong.json, no_password.json);
    assert!(wrong.headers.get("set-cookie").is_none());
}

async fn five_wrong_passwords_lock_the_address_for_fifteen_minutes(app: TestApp) {
    Msp::setup(&app).await;
    app.set_password("carol@client-a.example", PASSWORD).await;
    let anon = app.anonymous();
    let attempt = |password: &'static str| {
        let anon = anon.clone();
        async move {
            anon.post(
                "/api/v1/session",
                json!({ "email": "carol@client-a.example", "password": password }),
            )
            .await
        }
    };
    for _ in 0..5 {
        attempt("guess").await.status(401);
    }
    // Locked: even the right password is refused, saying when to retry.
    let r = attempt(PASSWORD).await.status(429);
    assert_eq!(r.code(), "too-many-attempts");
    assert!(r.headers.get("set-cookie").is_none());
    // Another address is not affected.
    app.set_password("dan@client-a.example", PASSWORD).await;
    anon.post(
        "/api/v1/session",
        json!({ "email": "dan@client-a.example", "password": PASSWORD }),
    )
    .await
    .status(200);
    app.set_now(app.now() + chrono::TimeDelta::minutes(15));
    attempt(PASSWORD).await.status(200);
}

async fn a_session_expires_after_twelve_hours(app: TestApp) {
    Msp::setup(&app).await;
    app.set_password("carol@client-a.example", PASSWORD).await;
    let r = app
        .anonymous()
        .post(
            "/api/v1/session",
            json!({ "email": "carol@client-a.example", "password": PASSWORD }),
        )
        .await
        .status(200);
    let set = r
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("cookie")
        .to_string();
    let browser = app.browser(Some(session_cookie(&set)));
    app.set_now(app.now() + TimeDelta::hours(11));
    browser.get("/api/v1/me").await.status(200);
    app.set_now(app.now() + TimeDelta::hours(2));
    browser.get("/api/v1/me").await.status(401);
    // A made-up session id is nobody.
    app.browser(Some("changegate_session=cg_forged".into()))
        .get("/api/v1/me")
        .await
        .status(401);
}

async fn a_session_cookie_writes_only_from_this_server_or_with_json(app: TestApp) {
    let m = Msp::setup(&app).await;
    app.set_password("eve@msp.example", PASSWORD).await;
    let r = app
        .anonymous()
        .post(
            "/api/v1/session",
            json!({ "email": "eve@msp.example", "password": PASSWORD }),
        )
        .await
        .status(200);
    let set = r
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_string();
    let browser = app.browser(Some(session_cookie(&set)));
    let n = m
        .eve
        .post(
            "/api/v1/tenants/client-a/changes",
            changegate_testkit::msp::normal_change("Upgrade", changegate_testkit::msp::low_risk()),
        )
        .await
        .status(201)
        .json["number"]
        .as_str()
        .expect("a number")
        .to_string();
    let submit = format!("/api/v1/tenants/client-a/changes/{n}/submit");
    // What a page of another site can make a browser send: a bodiless
    // POST, or a form, with the cookie.
    let r = browser.call_with("POST", &submit, &[]).await.status(403);
    assert!(r.text.contains("application/json"), "{}", r.text);
    browser
        .call_with(
            "POST",
            &submit,
            &[("content-type", "application/x-www-form-urlencoded")],
        )
        .await
        .status(403);
    browser
        .call_with(
            "POST",
            &submit,
            &[
                ("origin", "https://evil.example"),
                ("content-type", "application/json"),
            ],
        )
        .await
        .status(403);
    let c = m
        .eve
        .get(&format!("/api/v1/tenants/client-a/changes/{n}"))
        .await
        .ok();
    assert_eq!(c["state"], "draft", "nothing was submitted");
    // This server's own origin, or a JSON request, is a write of its own.
    browser
        .call_with("POST", &submit, &[("origin", "http://127.0.0.1:8080")])
        .await
        .ok();
    let c = m
        .eve
        .get(&format!("/api/v1/tenants/client-a/changes/{n}"))
        .await
        .ok();
    assert_eq!(c["state"], "awaiting-approval");
    browser
        .call_with(
            "POST",
            &format!("/api/v1/tenants/client-a/changes/{n}/cancel"),
            &[("content-type", "application/json")],
        )
        .await
        .status(400); // past the origin check: the body is missing
}

/// Wrong passwords sent at once, and through two replicas on one
/// database, share one count: no more than five are ever checked.
async fn parallel_attempts_and_replicas_share_one_count(app: TestApp) {
    Msp::setup(&app).await;
    app.set_password("carol@client-a.example", PASSWORD).await;
    let tries: Vec<_> = (0..20)
        .map(|i| {
            let anon = app.anonymous();
            tokio::spawn(async move {
                anon.post(
                    "/api/v1/session",
                    json!({ "email": "carol@client-a.example", "password": format!("guess number {i}") }),
                )
                .await
                .status
                .as_u16()
            })
        })
        .collect();
    let mut codes = Vec::new();
    for t in tries {
        codes.push(t.await.expect("an attempt"));
    }
    assert_eq!(
        codes.iter().filter(|c| **c == 401).count(),
        5,
        "five checked, the rest refused unchecked: {codes:?}"
    );
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 15, "{codes:?}");

    // A second replica: its own server state, the same database.
    let replica = TestApp::new(
        app.db().expect("the app's database").reopen().await,
        Box::new(()),
    );
    app.set_password("dan@client-a.example", PASSWORD).await;
    for (i, on) in [&app, &replica, &app, &replica, &app]
        .into_iter()
        .enumerate()
    {
        on.anonymous()
            .post(
                "/api/v1/session",
                json!({ "email": "dan@client-a.example", "password": format!("guess {i}") }),
            )
            .await
            .status(401);
    }
    replica
        .anonymous()
        .post(
            "/api/v1/session",
            json!({ "email": "dan@client-a.example", "password": PASSWORD }),
        )
        .await
        .status(429);
    // Unknown addresses are counted alike, without naming anyone.
    for _ in 0..5 {
        app.anonymous()
            .post(
                "/api/v1/session",
                json!({ "email": "nobody@nowhere.example", "password": "guess guess guess" }),
            )
            .await
            .status(401);
    }
    app.anonymous()
        .post(
            "/api/v1/session",
            json!({ "email": "nobody@nowhere.example", "password": "guess guess guess" }),
        )
        .await
        .status(429);
}

crate::on_both!(
    parallel_attempts_and_replicas_share_one_count,
    a_session_cookie_writes_only_from_this_server_or_with_json,
    a_signed_in_user_is_known_by_the_session_cookie_until_signing_out,
    a_wrong_password_and_an_unknown_account_get_the_same_answer,
    a_session_expires_after_twelve_hours,
    five_wrong_passwords_lock_the_address_for_fifteen_minutes,
);
