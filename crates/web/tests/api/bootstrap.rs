//! `serve --bootstrap-dir`: the files of the Helm chart's generated Secret
//! give a server its first administrator (who signs in with the password
//! and calls the API with the token) and register this cluster (whose
//! operator takes its bundle with the agent token); applied again at every
//! start, they change nothing; a wrong file is refused saying which.

use changegate_store::TokenFilter;
use changegate_testkit::TestApp;
use changegate_web::app::bootstrap::{Bootstrap, Done};
use serde_json::json;

const PASSWORD: &str = "generated-by-helm-0123456789";
const ADMIN_TOKEN: &str = "cg_AdminTokenFromTheChartSecret0123456789abcdefgh";
const AGENT_TOKEN: &str = "cg_AgentTokenFromTheChartSecret0123456789abcdefgh";

fn secret(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a directory");
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).expect("a file");
    }
    // What a mounted Secret also holds: its hidden version entries.
    std::fs::create_dir(dir.path().join("..2026_12_06_14_00_00.000000001")).expect("a directory");
    dir
}

async fn a_bootstrapped_server_has_an_administrator_and_this_cluster_registered(app: TestApp) {
    let dir = secret(&[
        ("admin-email", "admin@changegate.local\n"),
        ("admin-password", PASSWORD),
        ("admin-token", ADMIN_TOKEN),
        ("agent-token-local", AGENT_TOKEN),
    ]);
    let b = Bootstrap::read(dir.path()).expect("the files read");
    let done = b
        .apply(app.store.as_ref(), app.now())
        .await
        .expect("applied");
    assert_eq!(
        done,
        Done {
            admin_created: true,
            admin_token_stored: true,
            clusters_registered: vec!["local".into()],
        }
    );

    // The token is an administrator's: it registers more clusters.
    let admin = app.bearer(ADMIN_TOKEN);
    admin
        .post("/api/v1/clusters", json!({ "name": "edge" }))
        .await
        .status(201);
    // The password signs in to the portal.
    let r = app
        .anonymous()
        .post(
            "/api/v1/session",
            json!({ "email": "admin@changegate.local", "password": PASSWORD }),
        )
        .await
        .status(200);
    assert_eq!(r.json["email"], "admin@changegate.local");
    // The agent token is this cluster's: its bundle, nothing else.
    let agent = app.bearer(AGENT_TOKEN);
    agent.get("/api/v1/agent/bundle").await.status(200);
    agent.get("/api/v1/tenants").await.status(403);

    // Every later start finds all in place and writes nothing.
    let tokens = || async {
        app.store
            .tokens(&TokenFilter::default())
            .await
            .expect("tokens")
            .len()
    };
    let before = tokens().await;
    assert_eq!(before, 3, "the admin's, this cluster's and edge's");
    let again = b
        .apply(app.store.as_ref(), app.now())
        .await
        .expect("applied");
    assert_eq!(again, Done::default());
    assert_eq!(tokens().await, before, "a token stored twice");
    // A password changed since is kept.
    app.set_password("admin@changegate.local", "changed-by-the-admin-42")
        .await;
    b.apply(app.store.as_ref(), app.now())
        .await
        .expect("applied");
    app.anonymous()
        .post(
            "/api/v1/session",
            json!({ "email": "admin@changegate.local", "password": "changed-by-the-admin-42" }),
        )
        .await
        .status(200);
}

async fn a_wrong_bootstrap_file_is_refused_saying_which(app: TestApp) {
    let refused =
        |files: &[(&str, &str)]| Bootstrap::read(secret(files).path()).expect_err("refused");
    assert!(refused(&[]).contains("no admin-email"));
    assert!(refused(&[("admin-email", "not an address")]).contains("admin-email"));
    let short = refused(&[("admin-email", "a@b.example"), ("admin-token", "cg_short")]);
    assert!(short.contains("admin-token: a token is cg_"), "{short}");
    let cluster = refused(&[
        ("admin-email", "a@b.example"),
        ("agent-token-Not_A_Slug", AGENT_TOKEN),
    ]);
    assert!(cluster.contains("agent-token-Not_A_Slug"), "{cluster}");

    // An address that is someone else's, not an administrator's.
    app.msp("ian@msp.example", &[]).await;
    let b = Bootstrap::read(secret(&[("admin-email", "ian@msp.example")]).path()).expect("read");
    let e = b
        .apply(app.store.as_ref(), app.now())
        .await
        .expect_err("refused");
    assert!(e.contains("not an installation administrator"), "{e}");
    // A password the server would not accept.
    let b = Bootstrap::read(
        secret(&[
            ("admin-email", "new@msp.example"),
            ("admin-password", "short"),
        ])
        .path(),
    )
    .expect("read");
    let e = b
        .apply(app.store.as_ref(), app.now())
        .await
        .expect_err("refused");
    assert!(e.contains("admin-password"), "{e}");
}

crate::on_both!(
    a_bootstrapped_server_has_an_administrator_and_this_cluster_registered,
    a_wrong_bootstrap_file_is_refused_saying_which,
);
