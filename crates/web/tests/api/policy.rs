//! Policy as code through the API: boards, the versioned policy, windows,
//! a tenant's people and the tenants themselves, each refused with the
//! field at fault and idempotent when applied again.

use changegate_testkit::TestApp;
use changegate_testkit::msp::Msp;
use serde_json::json;

const A: &str = "/api/v1/tenants/client-a";

async fn a_board_is_validated_and_applying_it_again_changes_nothing(app: TestApp) {
    let m = Msp::setup(&app).await;
    let members = json!(["tom@msp.example", "tina@msp.example"]);

    let bad_rule =
        m.cm.put(
            &format!("{A}/boards/cab"),
            json!({ "members": members, "rule": "most" }),
        )
        .await
        .status(422);
    assert_eq!(
        (bad_rule.code(), bad_rule.field()),
        ("invalid", "rule"),
        "{}",
        bad_rule.text
    );
    assert!(
        bad_rule.text.contains("quorum N"),
        "the refusal says which rules exist: {}",
        bad_rule.text
    );

    let unreachable =
        m.cm.put(
            &format!("{A}/boards/cab"),
            json!({ "members": members, "rule": "quorum 3" }),
        )
        .await
        .status(422);
    assert_eq!(unreachable.field(), "rule", "{}", unreachable.text);
    assert!(
        unreachable.text.contains("never be reached"),
        "{}",
        unreachable.text
    );

    let bad_member =
        m.cm.put(
            &format!("{A}/boards/cab"),
            json!({ "members": ["tom at msp"], "rule": "any" }),
        )
        .await
        .status(422);
    assert!(
        bad_member.field().starts_with("members"),
        "{}",
        bad_member.text
    );
    assert!(
        bad_member.text.contains("role:"),
        "the refusal shows the role syntax: {}",
        bad_member.text
    );

    let boards = m.cm.get(&format!("{A}/boards")).await.ok();
    assert!(
        !boards.to_string().contains("\"cab\""),
        "refused boards are not stored: {boards}"
    );

    let board =
        json!({ "members": members, "rule": "quorum 2", "description": "change advisory board" });
    let first =
        m.cm.put(&format!("{A}/boards/cab"), board.clone())
            .await
            .ok();
    assert_eq!(first["applied"], "created");
    let again = m.cm.put(&format!("{A}/boards/cab"), board).await.ok();
    assert_eq!(again["applied"], "unchanged");
    let boards = m.audrey.get(&format!("{A}/boards")).await.ok();
    let cab = boards
        .as_array()
        .expect("a list")
        .iter()
        .find(|b| b["name"] == "cab")
        .expect("cab is listed")
        .clone();
    assert_eq!(cab["spec"]["rule"], "quorum 2");
}

async fn a_policy_gets_a_new_version_only_when_it_differs(app: TestApp) {
    let m = Msp::setup(&app).await;
    let current = m.cm.get(&format!("{A}/policy")).await.ok();
    let version = current["version"].as_i64().expect("a version");

    let same =
        m.cm.put(&format!("{A}/policy"), current["spec"].clone())
            .await
            .ok();
    assert_eq!(
        (same["applied"].clone(), same["version"].clone()),
        (json!("unchanged"), json!(version))
    );

    let mut stricter = current["spec"].clone();
    stricter["approvalExpiryHours"] = json!(48);
    let updated =
        m.cm.put(&format!("{A}/policy"), stricter.clone())
            .await
            .ok();
    assert_eq!(
        (updated["applied"].clone(), updated["version"].clone()),
        (json!("updated"), json!(version + 1))
    );
    let again = m.cm.put(&format!("{A}/policy"), stricter).await.ok();
    assert_eq!(
        (again["applied"].clone(), again["version"].clone()),
        (json!("unchanged"), json!(version + 1))
    );
    assert_eq!(
        m.audrey.get(&format!("{A}/policy")).await.ok()["spec"]["approvalExpiryHours"],
        48
    );

    let unknown_board =
        json!({ "routing": { "normal": [ { "from": "low", "boards": ["no-such-board"] } ] } });
    let refused =
        m.cm.put(&format!("{A}/policy"), unknown_board)
            .await
            .status(422);
    assert_eq!(
        refused.field(),
        "routing.normal[0].boards",
        "{}",
        refused.text
    );
    assert!(refused.text.contains("no-such-board"), "{}", refused.text);
    assert_eq!(
        m.cm.get(&format!("{A}/policy")).await.ok()["version"],
        json!(version + 1),
        "a refused policy is no version"
    );
}

async fn a_window_with_an_unknown_time_zone_or_a_bad_cron_is_refused_with_the_field(app: TestApp) {
    let m = Msp::setup(&app).await;
    let cron = json!({ "cron": { "expr": "0 2 * * SAT", "duration": "4h" } });

    let zone =
        m.cm.put(
            &format!("{A}/windows/weekly"),
            json!({ "timeZone": "Europe/Atlantis", "schedule": cron }),
        )
        .await
        .status(422);
    assert_eq!(zone.field(), "timeZone", "{}", zone.text);
    assert!(zone.text.contains("Europe/Atlantis"), "{}", zone.text);

    let bad_cron = json!({ "timeZone": "Europe/Berlin", "schedule": { "cron": { "expr": "at two on saturdays", "duration": "4h" } } });
    let cron_refused =
        m.cm.put(&format!("{A}/windows/weekly"), bad_cron)
            .await
            .status(422);
    assert_eq!(
        cron_refused.field(),
        "schedule.cron",
        "{}",
        cron_refused.text
    );

    assert_eq!(
        m.cm.get(&format!("{A}/windows")).await.ok(),
        json!([]),
        "refused windows are not stored"
    );
    let created =
        m.cm.put(
            &format!("{A}/windows/weekly"),
            json!({ "timeZone": "Europe/Berlin", "schedule": cron }),
        )
        .await
        .ok();
    assert_eq!(created["applied"], "created");
}

async fn a_tenant_admin_manages_the_people_of_their_own_tenant_only(app: TestApp) {
    let m = Msp::setup(&app).await;
    let newcomer =
        json!({ "email": "nina@client-a.example", "name": "Nina", "roles": ["requester"] });

    // client-b does not exist for alice.
    let hidden = m
        .alice
        .post("/api/v1/tenants/client-b/users", newcomer.clone())
        .await
        .status(404);
    assert!(!hidden.text.contains("bob"), "{}", hidden.text);
    // bob is a client user of client-b: he cannot become a member of client-a.
    let bob = json!({ "email": "bob@client-b.example", "roles": ["business-approver"] });
    let taken = m.alice.post(&format!("{A}/users"), bob).await.status(409);
    assert_eq!(taken.field(), "email", "{}", taken.text);

    let added = m
        .alice
        .post(&format!("{A}/users"), newcomer.clone())
        .await
        .ok();
    assert_eq!(
        (added["applied"].clone(), added["kind"].clone()),
        (json!("created"), json!("client"))
    );
    let again = m.alice.post(&format!("{A}/users"), newcomer).await.ok();
    assert_eq!(again["applied"], "unchanged");

    let b_users = m.admin.get("/api/v1/tenants/client-b/users").await.ok();
    let emails: Vec<&str> = b_users
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|u| u["email"].as_str())
        .collect();
    assert!(
        !emails.contains(&"nina@client-a.example") && !emails.contains(&"alice@client-a.example"),
        "{emails:?}"
    );
    let a_users = m.alice.get(&format!("{A}/users")).await.ok();
    assert!(
        !a_users.to_string().contains("bob@client-b.example"),
        "{a_users}"
    );
}

async fn only_an_installation_admin_creates_tenants_and_slugs_are_unique(app: TestApp) {
    let m = Msp::setup(&app).await;
    let client_c = json!({ "slug": "client-c", "name": "Client C", "time_zone": "Europe/London" });

    m.cm.post("/api/v1/tenants", client_c.clone())
        .await
        .status(403);
    m.alice
        .post("/api/v1/tenants", client_c.clone())
        .await
        .status(403);
    let created = m
        .admin
        .post("/api/v1/tenants", client_c.clone())
        .await
        .status(201)
        .json;
    assert_eq!(
        (created["slug"].clone(), created["time_zone"].clone()),
        (json!("client-c"), json!("Europe/London"))
    );

    let duplicate = m.admin.post("/api/v1/tenants", client_c).await.status(409);
    assert_eq!(duplicate.field(), "slug", "{}", duplicate.text);
    let existing = m
        .admin
        .post(
            "/api/v1/tenants",
            json!({ "slug": "client-a", "name": "Another A" }),
        )
        .await
        .status(409);
    assert_eq!(existing.field(), "slug", "{}", existing.text);
}

async fn applying_a_tenant_twice_creates_it_once(app: TestApp) {
    let m = Msp::setup(&app).await;
    let client_d = json!({ "name": "Client D", "time_zone": "Europe/Paris" });

    m.cm.put("/api/v1/tenants/client-d", client_d.clone())
        .await
        .status(403);
    let first = m
        .admin
        .put("/api/v1/tenants/client-d", client_d.clone())
        .await
        .ok();
    assert_eq!(first["applied"], "created");
    let again = m.admin.put("/api/v1/tenants/client-d", client_d).await.ok();
    assert_eq!(again["applied"], "unchanged");
    let shown = m.admin.get("/api/v1/tenants/client-d").await.ok();
    assert_eq!(
        (shown["name"].clone(), shown["time_zone"].clone()),
        (json!("Client D"), json!("Europe/Paris"))
    );
    // Nobody bound to it sees it.
    m.cm.get("/api/v1/tenants/client-d").await.status(404);
}

crate::on_both!(
    a_board_is_validated_and_applying_it_again_changes_nothing,
    a_policy_gets_a_new_version_only_when_it_differs,
    a_window_with_an_unknown_time_zone_or_a_bad_cron_is_refused_with_the_field,
    a_tenant_admin_manages_the_people_of_their_own_tenant_only,
    only_an_installation_admin_creates_tenants_and_slugs_are_unique,
    applying_a_tenant_twice_creates_it_once,
);
