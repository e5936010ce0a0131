//! The Kubernetes face of the record: a cluster's operator sends a
//! ChangeRequest's latest spec and gets the change's record back. One
//! change per resource, whatever the retries, replicas and re-creations;
//! the creator and each editor as the cluster vouches for them, mapped by
//! the tenant's administrators; only tenants bound to the cluster; a
//! deleted resource cancels a change not started, detaches a started one.

use changegate_testkit::msp::{Msp, board, low_risk};
use changegate_testkit::{Actor, TestApp};
use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

const A: &str = "/api/v1/tenants/client-a";
const CHG: &str = "/api/v1/agent/changerequests/payments/upgrade-payments";

/// client-a's payments-api bound in cluster prod-eu, client-b's shop in
/// prod-us; an agent token of each; eve-k8s and cm-k8s of prod-eu mapped
/// to eve (requester) and the change manager (MSP staff: by an
/// installation administrator).
async fn cluster(app: &TestApp) -> (Msp, Actor, Actor) {
    let m = Msp::setup(app).await;
    let bind = |ns: &str, name: &str, cluster: &str| {
        json!({ "kind": "kubernetes-workload", "enforcement": { "kubernetes":
            { "cluster": cluster, "namespace": ns, "kind": "Deployment", "name": name } } })
    };
    m.cm.put(
        &format!("{A}/configuration-items/payments-api"),
        bind("payments", "payments-api", "prod-eu"),
    )
    .await
    .ok();
    m.cm.put(
        &format!("{A}/windows/weekly"),
        json!({ "timeZone": "Europe/Berlin", "schedule": { "cron": { "expr": "0 2 * * SAT", "duration": "4h" } } }),
    )
    .await
    .ok();
    m.cm.put(
        "/api/v1/tenants/client-b/configuration-items/shop",
        bind("shop", "shop", "prod-us"),
    )
    .await
    .ok();
    let agent = |name: &'static str| {
        let admin = m.admin.clone();
        async move {
            let t = admin
                .post("/api/v1/clusters", json!({ "name": name }))
                .await
                .status(201)
                .json;
            app.bearer(t["token"].as_str().expect("an agent token"))
        }
    };
    let eu = agent("prod-eu").await;
    let us = agent("prod-us").await;
    for (user, email) in [("eve-k8s", "eve@msp.example"), ("cm-k8s", "cm@msp.example")] {
        let applied = m
            .admin
            .put(
                &format!("{A}/clusters/prod-eu/identities/{user}"),
                json!({ "email": email }),
            )
            .await
            .ok();
        assert_eq!(applied["applied"], "created");
    }
    (m, eu, us)
}

/// The latest spec of ChangeRequest `upgrade-payments` as the operator
/// sends it.
fn sync(uid: &str, generation: i64, artifact: &str) -> Value {
    json!({
        "tenant": "client-a",
        "uid": uid,
        "generation": generation,
        "requestedBy": "eve-k8s",
        "requested": {
            "type": "normal",
            "implementer": null,
            "submit": true,
            "content": {
                "title": "Upgrade payments",
                "risk_answers": low_risk(),
                "configuration_items": ["payments-api"],
                "artifacts": [artifact],
                "implementation_plan": "kubectl apply",
                "backout_plan": "kubectl rollout undo",
            }
        }
    })
}

async fn count_changes(m: &Msp) -> usize {
    m.cm.get(&format!("{A}/changes")).await.ok()["items"]
        .as_array()
        .expect("items")
        .len()
}

async fn a_change_request_raises_one_change_as_its_mapped_creator(app: TestApp) {
    let (m, eu, _) = cluster(&app).await;
    let first = eu
        .put(
            CHG,
            sync("uid-1", 1, "registry.example/payments@sha256:aaaa"),
        )
        .await
        .ok();
    let n = first["number"].as_str().expect("a number").to_string();
    assert_eq!(first["phase"], "awaiting-approval", "{first}");
    assert_eq!(first["revision"], 1);
    assert_eq!(first["approvalsGiven"], 0);
    assert_eq!(first["approvalsNeeded"], 1);
    assert_eq!(first["awaiting"][0]["board"], "msp-tech");
    assert_eq!(
        first["awaiting"][0]["from"],
        json!(["tom@msp.example", "tina@msp.example"])
    );
    assert_eq!(first["generation"], 1);
    assert!(
        first["url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/t/client-a/changes/{n}"))),
        "{first}"
    );
    let change = m.cm.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(change["requester"], "eve@msp.example");
    assert_eq!(
        change["content"]["artifacts"],
        json!(["registry.example/payments@sha256:aaaa"])
    );

    // A retry, a restarted operator, a second replica, a resource deleted
    // and created again by a GitOps tool: the same change.
    let again = eu
        .put(
            CHG,
            sync("uid-1", 1, "registry.example/payments@sha256:aaaa"),
        )
        .await
        .ok();
    assert_eq!(again["number"], n.as_str());
    let recreated = eu
        .put(
            CHG,
            sync("uid-2", 1, "registry.example/payments@sha256:aaaa"),
        )
        .await
        .ok();
    assert_eq!(recreated["number"], n.as_str());
    let racing = futures::future::join_all((0..4).map(|_| {
        let eu = eu.clone();
        async move {
            eu.put(
                "/api/v1/agent/changerequests/payments/racing",
                sync("uid-r", 1, "registry.example/payments@sha256:aaaa"),
            )
            .await
            .ok()["number"]
                .clone()
        }
    }))
    .await;
    assert!(
        racing.iter().all(|r| *r == racing[0]),
        "replicas racing on one resource share one change: {racing:?}"
    );
    assert_eq!(count_changes(&m).await, 2, "one change per resource");

    // A decision from any channel shows in the record.
    m.tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "comment": "fine", "revision": 1 }),
        )
        .await
        .ok();
    let approved = eu
        .put(
            CHG,
            sync("uid-2", 1, "registry.example/payments@sha256:aaaa"),
        )
        .await
        .ok();
    assert_eq!(approved["phase"], "approved");
    assert_eq!(approved["approvalsGiven"], 1);
    assert_eq!(approved["approvalsNeeded"], 1);
    assert_eq!(approved["awaiting"], json!([]));
    assert_eq!(approved["decisions"][0]["approver"], "tom@msp.example");
    assert_eq!(approved["decisions"][0]["channel"], "api");
    assert_eq!(approved["decisions"][0]["decision"], "approve");
    assert_eq!(approved["decisions"][0]["revision"], 1);
    // The fixture's policy wants normal changes in a window; on this
    // Wednesday none is open: approved, held back, and when it may go.
    assert_eq!(approved["hold"]["reason"], "window-closed", "{approved}");
    assert_eq!(approved["nextWindow"]["name"], "weekly");
    assert_eq!(approved["nextWindow"]["opensAt"], "2026-11-28T01:00:00Z");
    app.set_now(
        Utc.with_ymd_and_hms(2026, 11, 28, 1, 30, 0)
            .single()
            .expect("a valid time"),
    );
    let in_window = eu
        .put(
            CHG,
            sync("uid-2", 1, "registry.example/payments@sha256:aaaa"),
        )
        .await
        .ok();
    assert_eq!(in_window["hold"], Value::Null, "{in_window}");
    assert_eq!(in_window["nextWindow"], Value::Null);
}

async fn a_new_generation_is_an_edit_by_its_editor_who_cannot_approve_it(app: TestApp) {
    let (m, eu, _) = cluster(&app).await;
    // The change manager also sits on msp-tech.
    board(
        &app,
        "client-a",
        json!({ "name": "msp-tech",
        "members": ["tom@msp.example", "tina@msp.example", "cm@msp.example"], "rule": "any" }),
    )
    .await;
    let first = eu
        .put(
            CHG,
            sync("uid-1", 1, "registry.example/payments@sha256:aaaa"),
        )
        .await
        .ok();
    let n = first["number"].as_str().expect("a number").to_string();
    m.tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "revision": 1 }),
        )
        .await
        .ok();

    let mut edit = sync("uid-1", 2, "registry.example/payments@sha256:bbbb");
    edit["editedBy"] = json!("cm-k8s");
    let revised = eu.put(CHG, edit).await.ok();
    assert_eq!(revised["number"], n.as_str());
    assert_eq!(revised["revision"], 2, "a material edit is a new revision");
    assert_eq!(
        revised["phase"], "awaiting-approval",
        "approval starts over"
    );
    assert_eq!(revised["approvalsGiven"], 0);
    assert_eq!(revised["generation"], 2);
    let revisions = m.cm.get(&format!("{A}/changes/{n}/revisions")).await.ok();
    assert_eq!(revisions[1]["created_by"], "cm@msp.example", "{revisions}");
    let refused =
        m.cm.post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "revision": 2 }),
        )
        .await
        .status(403);
    assert!(refused.text.contains("edit"), "{}", refused.text);

    // An older generation arriving late changes nothing.
    let stale = eu
        .put(
            CHG,
            sync("uid-1", 1, "registry.example/payments@sha256:aaaa"),
        )
        .await
        .ok();
    assert_eq!(stale["revision"], 2);
    assert_eq!(stale["generation"], 2);
}

async fn unmapped_and_system_identities_are_refused_and_nothing_is_written(app: TestApp) {
    let (m, eu, _) = cluster(&app).await;
    let mut body = sync("uid-1", 1, "registry.example/payments@sha256:aaaa");
    body["requestedBy"] = json!("mallory");
    let refused = eu.put(CHG, body.clone()).await.status(422);
    assert_eq!(refused.json["error"]["field"], "requestedBy");
    assert!(
        refused
            .text
            .contains("/api/v1/tenants/client-a/clusters/prod-eu/identities/mallory"),
        "says how to map it: {}",
        refused.text
    );
    body["requestedBy"] = json!("system:admin");
    eu.put(CHG, body.clone()).await.status(403);
    // A mapping on another cluster vouches for nothing here.
    m.admin
        .put(
            &format!("{A}/clusters/prod-us/identities/mallory"),
            json!({ "email": "eve@msp.example" }),
        )
        .await
        .ok();
    body["requestedBy"] = json!("mallory");
    eu.put(CHG, body).await.status(422);
    assert_eq!(count_changes(&m).await, 0, "nothing was written");
}

async fn a_cluster_acts_only_for_tenants_bound_to_it(app: TestApp) {
    let (m, eu, us) = cluster(&app).await;
    // prod-us has nothing of client-a bound: it cannot raise client-a's changes.
    let refused = us
        .put(
            CHG,
            sync("uid-1", 1, "registry.example/payments@sha256:aaaa"),
        )
        .await
        .status(404);
    assert_eq!(refused.json["error"]["field"], "tenant");
    // A person's token is no agent's.
    m.eve
        .put(
            CHG,
            sync("uid-1", 1, "registry.example/payments@sha256:aaaa"),
        )
        .await
        .status(403);
    // Nor may prod-eu delete another cluster's resource's change.
    let n = eu
        .put(
            CHG,
            sync("uid-1", 1, "registry.example/payments@sha256:aaaa"),
        )
        .await
        .ok()["number"]
        .as_str()
        .expect("a number")
        .to_string();
    let linked = eu.get("/api/v1/agent/changerequests").await.ok();
    assert_eq!(
        linked,
        json!([{ "namespace": "payments", "name": "upgrade-payments", "uid": "uid-1", "number": n }])
    );
    assert_eq!(
        us.get("/api/v1/agent/changerequests").await.ok(),
        json!([]),
        "prod-us sees nothing of client-a's resources"
    );
    us.delete(&format!("{CHG}?uid=uid-1")).await.status(204);
    let c = m.cm.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(c["state"], "awaiting-approval");
    assert_eq!(count_changes(&m).await, 1);
}

async fn deleting_cancels_a_change_not_started_and_detaches_a_started_one(app: TestApp) {
    let (m, eu, _) = cluster(&app).await;
    let n = eu
        .put(
            CHG,
            sync("uid-1", 1, "registry.example/payments@sha256:aaaa"),
        )
        .await
        .ok()["number"]
        .as_str()
        .expect("a number")
        .to_string();
    // A delete naming an older resource under the name leaves it alone.
    eu.delete(&format!("{CHG}?uid=uid-0")).await.status(204);
    let gone = eu.delete(&format!("{CHG}?uid=uid-1")).await.ok();
    assert_eq!(gone["number"], n.as_str());
    assert_eq!(gone["phase"], "cancelled");
    // The name is free: a new resource there raises a new change.
    let second = eu
        .put(
            CHG,
            sync("uid-2", 1, "registry.example/payments@sha256:aaaa"),
        )
        .await
        .ok();
    let n2 = second["number"].as_str().expect("a number").to_string();
    assert_ne!(n2, n);

    m.tom
        .post(
            &format!("{A}/changes/{n2}/decisions"),
            json!({ "decision": "approve", "revision": 1 }),
        )
        .await
        .ok();
    app.set_now(
        Utc.with_ymd_and_hms(2026, 11, 28, 1, 30, 0)
            .single()
            .expect("a valid time"),
    );
    m.ian
        .post(&format!("{A}/changes/{n2}/start"), json!({}))
        .await
        .ok();
    let detached = eu.delete(&format!("{CHG}?uid=uid-2")).await.ok();
    assert_eq!(
        detached["phase"], "implementing",
        "a started change goes on"
    );
    let tenant = app.store.tenant_by_slug("client-a").await.expect("tenant");
    let events = app
        .store
        .audit_events_about(tenant.id, &n2)
        .await
        .expect("events");
    let detach = events
        .iter()
        .find(|e| e.body.action == "change.detached")
        .expect("the detachment is on the change's record");
    assert_eq!(detach.body.actor, "operator of cluster prod-eu");
    let detail: Value = serde_json::from_str(&detach.body.detail).expect("JSON detail");
    assert_eq!(detail["resource"]["name"], "upgrade-payments");
}

async fn only_a_tenant_administrator_maps_identities_and_only_to_its_users(app: TestApp) {
    let (m, _, _) = cluster(&app).await;
    let path = format!("{A}/clusters/prod-eu/identities/carol");
    m.eve
        .put(&path, json!({ "email": "eve@msp.example" }))
        .await
        .status(403);
    let refused = m
        .alice
        .put(&path, json!({ "email": "bob@client-b.example" }))
        .await
        .status(422);
    assert_eq!(refused.json["error"]["field"], "email");
    let refused = m
        .alice
        .put(
            &format!("{A}/clusters/prod-eu/identities/system:masters"),
            json!({ "email": "carol@client-a.example" }),
        )
        .await
        .status(422);
    assert_eq!(refused.json["error"]["field"], "user");
    m.admin
        .put(
            &format!("{A}/clusters/prod-eu/identities/system:serviceaccount:argocd:argocd-application-controller"),
            json!({ "email": "eve@msp.example" }),
        )
        .await
        .ok();
    // A tenant administrator acts through a mapping as its user: she maps
    // the client's own people, never the MSP's staff.
    let refused = m
        .alice
        .put(
            &format!("{A}/clusters/prod-eu/identities/alice-k8s"),
            json!({ "email": "cm@msp.example" }),
        )
        .await
        .status(403);
    assert!(
        refused.text.contains("installation administrator"),
        "{}",
        refused.text
    );
    m.alice
        .put(&path, json!({ "email": "carol@client-a.example" }))
        .await
        .ok();
    let listed = m
        .audrey
        .get(&format!("{A}/clusters/prod-eu/identities"))
        .await
        .ok();
    let users: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|i| i["user"].as_str())
        .collect();
    assert_eq!(
        users,
        [
            "carol",
            "cm-k8s",
            "eve-k8s",
            "system:serviceaccount:argocd:argocd-application-controller"
        ]
    );
    m.alice
        .delete(&format!("{A}/clusters/prod-eu/identities/eve-k8s"))
        .await
        .status(204);
    m.bob
        .get(&format!("{A}/clusters/prod-eu/identities"))
        .await
        .status(404);
}

async fn the_operators_reports_show_as_the_resources_rollouts(app: TestApp) {
    let (m, eu, _) = cluster(&app).await;
    let n = eu
        .put(
            CHG,
            sync("uid-1", 1, "registry.example/payments@sha256:aaaa"),
        )
        .await
        .ok()["number"]
        .as_str()
        .expect("a number")
        .to_string();
    let approved = m
        .tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "revision": 1 }),
        )
        .await
        .ok();
    // A Release ships it: its status shows the same outcome.
    app.msp(
        "rita@msp.example",
        &[("client-a", changegate_core::Role::ReleaseManager)],
    )
    .await;
    m.admin
        .put(
            &format!("{A}/clusters/prod-eu/identities/rita-k8s"),
            json!({ "email": "rita@msp.example" }),
        )
        .await
        .ok();
    let release = release_sync("rita-k8s", 1, json!({ "changes": ["upgrade-payments"] }));
    let planned = eu.put(REL, release.clone()).await.ok();
    assert_eq!(planned["phase"], "planning", "{planned}");
    app.set_now(
        Utc.with_ymd_and_hms(2026, 11, 28, 1, 30, 0)
            .single()
            .expect("a valid time"),
    );
    for event in ["started", "failed", "rolled-back"] {
        let artifact = if event == "rolled-back" {
            "registry.example/payments@sha256:0000"
        } else {
            "registry.example/payments@sha256:aaaa"
        };
        eu.post(
            "/api/v1/agent/reports",
            json!({ "tenant": "client-a", "namespace": "payments", "kind": "Deployment",
                    "name": "payments-api", "artifacts": [artifact], "event": event,
                    "change": n, "revision": if event == "rolled-back" { "4" } else { "5" },
                    "fingerprint": approved["fingerprint"], "note": "" }),
        )
        .await
        .ok();
    }
    let r = eu
        .put(
            CHG,
            sync("uid-1", 1, "registry.example/payments@sha256:aaaa"),
        )
        .await
        .ok();
    assert_eq!(r["phase"], "rolled-back", "{r}");
    assert_eq!(r["rollout"][0]["workload"], "Deployment/payments-api");
    assert_eq!(r["rollout"][0]["state"], "failed");
    assert_eq!(r["rollout"][0]["revision"], "5");
    assert_eq!(r["rollback"]["restoredRevision"], "4");
    assert_eq!(r["rollback"]["outcome"], "succeeded");
    let rel = eu.put(REL, release).await.ok();
    assert_eq!(
        rel["rollout"][0]["workload"], "Deployment/payments-api",
        "{rel}"
    );
    assert_eq!(rel["rollout"][0]["state"], "failed");
    assert_eq!(rel["rollback"]["restoredRevision"], "4");
}

async fn a_maintenance_window_resource_writes_the_tenants_window_as_its_author(app: TestApp) {
    let (m, eu, _) = cluster(&app).await;
    const MW: &str = "/api/v1/agent/maintenancewindows/payments/saturday-night";
    let window = json!({ "kind": "maintenance", "timeZone": "Europe/Berlin",
        "schedule": { "cron": { "expr": "0 2 * * SAT", "duration": "4h" } } });
    let body = |author: &str| {
        json!({ "tenant": "client-a", "uid": "mw-1", "generation": 1,
                "requestedBy": author, "spec": window.clone() })
    };
    // A requester does not write maintenance windows; nothing is written.
    eu.put(MW, body("eve-k8s")).await.status(403);
    let windows = m.cm.get(&format!("{A}/windows")).await.ok();
    assert!(!windows.to_string().contains("saturday-night"), "{windows}");

    // The change manager does; on this Wednesday it is closed, opening Saturday.
    let r = eu.put(MW, body("cm-k8s")).await.ok();
    assert_eq!(r["name"], "saturday-night");
    assert_eq!(r["kind"], "maintenance");
    assert_eq!(r["open"], false);
    assert_eq!(r["nextOpen"], "2026-11-28T01:00:00Z");
    let windows = m.cm.get(&format!("{A}/windows")).await.ok();
    assert!(windows.to_string().contains("saturday-night"), "{windows}");
    app.set_now(
        Utc.with_ymd_and_hms(2026, 11, 28, 1, 30, 0)
            .single()
            .expect("a valid time"),
    );
    let open = eu.put(MW, body("cm-k8s")).await.ok();
    assert_eq!(open["open"], true);
    assert_eq!(open["openUntil"], "2026-11-28T05:00:00Z");
    assert_eq!(open["nextOpen"], "2026-12-05T01:00:00Z");

    // Changed since by someone else: the resource's deletion leaves it.
    let mut changed = window.clone();
    changed["schedule"]["cron"]["duration"] = json!("6h");
    m.cm.put(&format!("{A}/windows/saturday-night"), changed)
        .await
        .ok();
    let gone = |spec: Value| json!({ "tenant": "client-a", "uid": "mw-1", "spec": spec });
    eu.call(axum::http::Method::DELETE, MW, Some(gone(window.clone())))
        .await
        .status(204);
    let windows = m.cm.get(&format!("{A}/windows")).await.ok();
    assert!(
        windows.to_string().contains("saturday-night"),
        "kept: {windows}"
    );
    // As the resource wrote it: it goes, but only at that resource's word.
    eu.put(MW, body("cm-k8s")).await.ok();
    let mut other = gone(window.clone());
    other["uid"] = json!("another-resource");
    eu.call(axum::http::Method::DELETE, MW, Some(other))
        .await
        .status(204);
    let windows = m.cm.get(&format!("{A}/windows")).await.ok();
    assert!(
        windows.to_string().contains("saturday-night"),
        "kept: {windows}"
    );
    eu.call(axum::http::Method::DELETE, MW, Some(gone(window)))
        .await
        .status(204);
    let windows = m.cm.get(&format!("{A}/windows")).await.ok();
    assert!(!windows.to_string().contains("saturday-night"), "{windows}");
}

const REL: &str = "/api/v1/agent/releases/payments/payments-nov";

/// The latest spec of Release `payments-nov`, by `who`.
fn release_sync(who: &str, generation: i64, spec: Value) -> Value {
    json!({ "tenant": "client-a", "uid": "rel-1", "generation": generation,
            "requestedBy": "rita-k8s", "editedBy": who, "spec": spec })
}

async fn a_release_resource_waits_for_approval_then_plans_the_release_as_its_creator(app: TestApp) {
    let (m, eu, _) = cluster(&app).await;
    let rita = app
        .msp(
            "rita@msp.example",
            &[
                ("client-a", changegate_core::Role::ReleaseManager),
                ("client-b", changegate_core::Role::ReleaseManager),
            ],
        )
        .await;
    m.admin
        .put(
            &format!("{A}/clusters/prod-eu/identities/rita-k8s"),
            json!({ "email": "rita@msp.example" }),
        )
        .await
        .ok();
    let chg = eu
        .put(
            CHG,
            sync("uid-1", 1, "registry.example/payments@sha256:aaaa"),
        )
        .await
        .ok()["number"]
        .as_str()
        .expect("a number")
        .to_string();
    let spec = |end: &str, owner: &str| {
        json!({ "changes": ["upgrade-payments"], "description": "November payments",
                "plannedStart": "2026-11-28T01:00:00Z", "plannedEnd": end,
                "runbook": [{ "kind": "deploy", "title": "Roll out payments", "owner": owner,
                              "change": "upgrade-payments" }] })
    };
    let first = spec("2026-11-28T03:00:00Z", "ian@msp.example");

    // A ChangeRequest the server has no change for, and a change not yet
    // approved: nothing is planned, the answer says what it waits for.
    let mut unknown = first.clone();
    unknown["changes"] = json!(["no-such-request"]);
    unknown["runbook"] = json!([]);
    let waits = eu.put(REL, release_sync("rita-k8s", 1, unknown)).await.ok();
    assert_eq!(waits["phase"], "waiting", "{waits}");
    assert!(
        waits["waiting"]
            .as_str()
            .is_some_and(|w| w.contains("ChangeRequest no-such-request")),
        "{waits}"
    );
    let waits = eu
        .put(REL, release_sync("rita-k8s", 1, first.clone()))
        .await
        .ok();
    assert_eq!(waits["number"], Value::Null);
    let why = waits["waiting"].as_str().expect("what it waits for");
    assert!(
        why.contains(&chg) && why.contains("awaiting-approval"),
        "{why}"
    );
    assert_eq!(
        rita.get("/api/v1/releases")
            .await
            .ok()
            .as_array()
            .map(Vec::len),
        Some(0)
    );

    // Approved: the release is planned as the resource's creator, once,
    // whatever the retries; its runbook names the change by number.
    m.tom
        .post(
            &format!("{A}/changes/{chg}/decisions"),
            json!({ "decision": "approve", "revision": 1 }),
        )
        .await
        .ok();
    let planned = eu
        .put(REL, release_sync("rita-k8s", 1, first.clone()))
        .await
        .ok();
    let rel = planned["number"].as_str().expect("REL-n").to_string();
    assert_eq!(planned["phase"], "planning");
    assert_eq!(planned["steps"][0]["title"], "Roll out payments");
    assert_eq!(planned["steps"][0]["status"], "pending");
    assert!(
        planned["url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/releases/{rel}")))
    );
    let again = eu
        .put(REL, release_sync("rita-k8s", 1, first.clone()))
        .await
        .ok();
    assert_eq!(again["number"], rel.as_str());
    let listed = rita.get("/api/v1/releases").await.ok();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    let shown = rita.get(&format!("/api/v1/releases/{rel}")).await.ok();
    assert_eq!(shown["owner"], "rita@msp.example");
    assert_eq!(shown["name"], "payments-nov");
    assert_eq!(shown["runbook"][0]["change"], chg.as_str());
    let linked = eu.get("/api/v1/agent/releases").await.ok();
    assert_eq!(linked[0]["number"], rel.as_str(), "{linked}");

    // A cluster plans releases only for tenants bound to it.
    let mut elsewhere = release_sync("rita-k8s", 1, first.clone());
    elsewhere["tenant"] = json!("client-b");
    elsewhere["spec"]["changes"] = json!(["CHG-1"]);
    elsewhere["spec"]["runbook"] = json!([]);
    eu.put("/api/v1/agent/releases/shop/b-release", elsewhere)
        .await
        .status(404);

    // Someone who is no release manager cannot plan one.
    let mut by_eve = release_sync("eve-k8s", 1, first.clone());
    by_eve["requestedBy"] = json!("eve-k8s");
    by_eve["uid"] = json!("rel-eve");
    let refused = eu
        .put("/api/v1/agent/releases/payments/eves-release", by_eve)
        .await
        .status(403);
    assert!(refused.text.contains("release"), "{}", refused.text);

    // A bad spec is refused naming the resource's field; nothing changes.
    let bad = eu
        .put(
            REL,
            release_sync(
                "rita-k8s",
                2,
                spec("2026-11-28T03:00:00Z", "not-an-address"),
            ),
        )
        .await
        .status(422);
    assert_eq!(
        bad.json["error"]["field"], "spec.runbook[0].owner",
        "{}",
        bad.text
    );

    // A new generation is an edit by its editor.
    let moved = eu
        .put(
            REL,
            release_sync(
                "rita-k8s",
                3,
                spec("2026-11-28T04:00:00Z", "ian@msp.example"),
            ),
        )
        .await
        .ok();
    assert_eq!(moved["number"], rel.as_str());
    let shown = rita.get(&format!("/api/v1/releases/{rel}")).await.ok();
    assert_eq!(shown["planned_end"], "2026-11-28T04:00:00Z");

    // Another tenant's part of the release never shows on the resource.
    let b = crate::releases::standard_in_b(&m).await;
    rita.patch(
        &format!("/api/v1/releases/{rel}"),
        json!({ "changes": [{ "tenant": "client-a", "change": chg }, { "tenant": "client-b", "change": b }],
                "runbook": [{ "kind": "deploy", "title": "Roll out payments", "owner": "ian@msp.example", "change": chg },
                            { "kind": "deploy", "title": "Rotate client-b VPN", "owner": "ian@msp.example", "change": b }] }),
    )
    .await
    .ok();
    let seen = eu
        .put(
            REL,
            release_sync(
                "rita-k8s",
                3,
                spec("2026-11-28T04:00:00Z", "ian@msp.example"),
            ),
        )
        .await
        .ok();
    assert_eq!(seen["steps"].as_array().map(Vec::len), Some(1), "{seen}");
    assert!(
        !seen.to_string().contains("client-b") && !seen.to_string().contains("VPN"),
        "{seen}"
    );

    // The plan authorized schedules the change; deleting the resource
    // cancels the release, which gives the change back.
    rita.post(
        &format!("/api/v1/releases/{rel}/phases"),
        json!({ "phase": "plan" }),
    )
    .await
    .ok();
    let c = m.cm.get(&format!("{A}/changes/{chg}")).await.ok();
    assert_eq!(c["state"], "scheduled", "{c}");
    let gone = eu.delete(&format!("{REL}?uid=rel-0")).await.ok();
    assert_eq!(
        gone["number"],
        Value::Null,
        "an older resource's deletion: {gone}"
    );
    let gone = eu.delete(&format!("{REL}?uid=rel-1")).await.ok();
    assert_eq!(gone["number"], rel.as_str());
    assert_eq!(gone["became"], "cancelled");
    let shown = rita.get(&format!("/api/v1/releases/{rel}")).await.ok();
    assert_eq!(shown["state"], "cancelled");
    let c = m.cm.get(&format!("{A}/changes/{chg}")).await.ok();
    assert_eq!(c["state"], "approved", "{c}");
    let linked = eu.get("/api/v1/agent/releases").await.ok();
    assert_eq!(linked, json!([]));
}

/// A decision written with kubectl, as the operator's webhook sends it.
fn kubectl_decision(user: &str, revision: i64) -> Value {
    json!({ "tenant": "client-a", "uid": "uid-1", "user": user,
            "decision": "Approved", "revision": revision, "comment": "ok" })
}

async fn kubectl_decisions_take_the_one_decision_path_and_a_retry_is_recorded_once(app: TestApp) {
    let (m, eu, _) = cluster(&app).await;
    m.admin
        .put(
            &format!("{A}/clusters/prod-eu/identities/tom-k8s"),
            json!({ "email": "tom@msp.example" }),
        )
        .await
        .ok();
    let n = eu
        .put(
            CHG,
            sync("uid-1", 1, "registry.example/payments@sha256:aaaa"),
        )
        .await
        .ok()["number"]
        .as_str()
        .expect("a number")
        .to_string();
    let approve_path = format!("{CHG}/approvals");
    let approvals_path = format!("{A}/changes/{n}/approvals");
    let approve = |body: Value| eu.post(&approve_path, body);
    let approvals = || m.cm.get(&approvals_path);

    // The tenant's policy has not turned the channel on.
    let off = approve(kubectl_decision("tom-k8s", 1)).await.status(403);
    assert!(
        off.text.contains("does not accept approval by kubectl"),
        "{}",
        off.text
    );
    let routing = json!({ "normal": [ { "from": "low", "boards": ["msp-tech"] },
                                      { "from": "high", "boards": ["msp-tech", "client-a-business"] } ],
                          "emergency": ["msp-tech"] });
    changegate_testkit::msp::policy(
        &app,
        "client-a",
        json!({ "routing": routing, "kubernetesApprovalUpTo": "low" }),
    )
    .await;

    // Refusals, each saying why; nothing is recorded.
    let system = approve(kubectl_decision("system:serviceaccount:ci:deployer", 1))
        .await
        .status(403);
    assert!(
        system.text.contains("only people approve"),
        "{}",
        system.text
    );
    let unmapped = approve(kubectl_decision("nobody", 1)).await.status(422);
    assert_eq!(unmapped.json["error"]["field"], "user");
    let mut other = kubectl_decision("tom-k8s", 1);
    other["uid"] = json!("another-resource");
    approve(other).await.status(409);
    let own = approve(kubectl_decision("eve-k8s", 1)).await.status(403);
    assert!(
        own.text.contains("requester") || own.text.contains("own"),
        "{}",
        own.text
    );
    let stale = approve(kubectl_decision("tom-k8s", 2)).await.status(409);
    assert_eq!(stale.json["error"]["field"], "revision");
    let mut dry = kubectl_decision("tom-k8s", 1);
    dry["dryRun"] = json!(true);
    let judged = approve(dry).await.ok();
    assert_eq!(judged["recorded"], false);
    assert_eq!(judged["phase"], "approved", "what would happen: {judged}");
    assert_eq!(approvals().await.ok(), json!([]));
    let c = m.cm.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(c["state"], "awaiting-approval");

    // Recorded once, with channel kubernetes and the cluster and user name
    // on the audit chain; a retry (the API server failed after the
    // webhook) is answered the same.
    let first = approve(kubectl_decision("tom-k8s", 1)).await.ok();
    assert_eq!(first["recorded"], true);
    assert_eq!(first["approver"], "tom@msp.example");
    assert_eq!(first["phase"], "approved");
    let again = approve(kubectl_decision("tom-k8s", 1)).await.ok();
    assert_eq!(again, first);
    let recorded = approvals().await.ok();
    assert_eq!(recorded.as_array().map(Vec::len), Some(1), "{recorded}");
    assert_eq!(recorded[0]["channel"], "kubernetes");
    let tenant = app.store.tenant_by_slug("client-a").await.expect("tenant");
    let events = app
        .store
        .audit_events_about(tenant.id, &n)
        .await
        .expect("events");
    let recorded = events
        .iter()
        .find(|e| e.body.action == "approval.recorded")
        .expect("the decision is on the chain");
    let detail: Value = serde_json::from_str(&recorded.body.detail).expect("JSON detail");
    assert_eq!(detail["via"]["cluster"], "prod-eu");
    assert_eq!(detail["via"]["kubernetes_user"], "tom-k8s");

    // Above the risk the policy accepts: refused, saying where to approve.
    let mut high = sync("uid-h", 1, "registry.example/payments@sha256:bbbb");
    high["requested"]["content"]["risk_answers"] = changegate_testkit::msp::high_risk();
    let h = eu
        .put("/api/v1/agent/changerequests/payments/risky", high)
        .await
        .ok()["number"]
        .as_str()
        .expect("a number")
        .to_string();
    let mut body = kubectl_decision("tom-k8s", 1);
    body["uid"] = json!("uid-h");
    let risky = eu
        .post(
            "/api/v1/agent/changerequests/payments/risky/approvals",
            body,
        )
        .await
        .status(403);
    assert!(
        risky.text.contains(&format!("{h} is high risk")) && risky.text.contains("in the portal"),
        "{}",
        risky.text
    );
}

async fn a_clusters_oidc_prefix_makes_e_mail_user_names_its_tenants_people(app: TestApp) {
    let (m, eu, us) = cluster(&app).await;
    let by = |user: &str, uid: &str| {
        let mut body = sync(uid, 1, "registry.example/payments@sha256:aaaa");
        body["requestedBy"] = json!(user);
        body
    };
    let at = |name: &str| format!("/api/v1/agent/changerequests/payments/{name}");
    // Without the registration saying so, an address is no mapping.
    let refused = eu
        .put(&at("by-address"), by("oidc:eve@msp.example", "u-1"))
        .await
        .status(422);
    assert_eq!(refused.json["error"]["field"], "requestedBy");
    // Only an installation administrator vouches for a cluster's
    // authenticator; a bad prefix is refused naming the field.
    m.cm.put(
        "/api/v1/clusters/prod-eu",
        json!({ "emailPrefix": "oidc:" }),
    )
    .await
    .status(403);
    let bad = m
        .admin
        .put(
            "/api/v1/clusters/prod-eu",
            json!({ "emailPrefix": "system:" }),
        )
        .await
        .status(422);
    assert_eq!(bad.json["error"]["field"], "emailPrefix");
    m.admin
        .put(
            "/api/v1/clusters/prod-eu",
            json!({ "emailPrefix": "oidc:" }),
        )
        .await
        .ok();
    let raised = eu
        .put(&at("by-address"), by("oidc:eve@msp.example", "u-1"))
        .await
        .ok();
    let n = raised["number"].as_str().expect("a number");
    let c = m.cm.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(c["requester"], "eve@msp.example");
    // Someone with no role in the tenant, a name without the prefix, and
    // another cluster's names stay unmapped.
    eu.put(&at("by-stranger"), by("oidc:bob@client-b.example", "u-2"))
        .await
        .status(422);
    eu.put(&at("by-bare-address"), by("eve@msp.example", "u-3"))
        .await
        .status(422);
    let mut elsewhere = by("oidc:eve@msp.example", "u-4");
    elsewhere["tenant"] = json!("client-b");
    let other = us
        .put("/api/v1/agent/changerequests/shop/by-address", elsewhere)
        .await;
    assert_ne!(other.status.as_u16(), 200, "{}", other.text);
    // An explicit mapping comes first: eve-k8s is Eve whatever the prefix.
    let explicit = eu.put(&at("explicit"), by("eve-k8s", "u-5")).await.ok();
    let n = explicit["number"].as_str().expect("a number");
    let c = m.cm.get(&format!("{A}/changes/{n}")).await.ok();
    assert_eq!(c["requester"], "eve@msp.example");
}

/// Changes raised anywhere but a ChangeRequest of that namespace are
/// mirrored into the namespaces their items are bound in (DESIGN §7):
/// only to the clusters those items are bound to, never beside the
/// change's own resource, and approvable by kubectl on the mirror.
async fn changes_raised_elsewhere_are_mirrored_and_approvable_on_the_mirror(app: TestApp) {
    let (m, eu, us) = cluster(&app).await;
    let feed = |agent: &Actor| {
        let agent = agent.clone();
        async move { agent.get("/api/v1/agent/mirrors").await.ok()["changes"].clone() }
    };
    assert_eq!(feed(&eu).await, json!([]), "nothing raised yet");

    // The tenant's windows, for each of its namespaces, but where a
    // window's own MaintenanceWindow stands.
    let windows = |agent: &Actor| {
        let agent = agent.clone();
        async move { agent.get("/api/v1/agent/mirrors").await.ok()["windows"].clone() }
    };
    let weekly = windows(&eu).await;
    assert_eq!(
        weekly,
        json!([{ "tenant": "client-a", "name": "mw-weekly",
                 "spec": { "kind": "maintenance", "timeZone": "Europe/Berlin",
                           "schedule": { "cron": "0 2 * * SAT" }, "duration": "4h" },
                 "record": { "name": "weekly", "kind": "maintenance", "open": false,
                             "openUntil": null, "nextOpen": "2026-11-28T01:00:00Z" },
                 "except": [] }]),
    );
    assert_eq!(
        windows(&us).await,
        json!([]),
        "client-b has no windows; client-a's are not prod-us's"
    );
    eu.put(
        "/api/v1/agent/maintenancewindows/payments/weekly",
        json!({ "tenant": "client-a", "uid": "mw-1", "generation": 1, "requestedBy": "cm-k8s",
                "spec": { "kind": "maintenance", "timeZone": "Europe/Berlin",
                          "schedule": { "cron": { "expr": "0 2 * * SAT", "duration": "4h" } } } }),
    )
    .await
    .ok();
    assert_eq!(windows(&eu).await[0]["except"], json!(["payments"]));

    // Raised through the API (as the portal and e-mail do): mirrored.
    let n = m.submitted(low_risk()).await;
    let name = n.to_ascii_lowercase();
    let mirrored = feed(&eu).await;
    assert_eq!(mirrored.as_array().map(Vec::len), Some(1), "{mirrored}");
    let mirror = &mirrored[0];
    assert_eq!(
        (
            mirror["tenant"].as_str(),
            mirror["namespace"].as_str(),
            mirror["name"].as_str()
        ),
        (Some("client-a"), Some("payments"), Some(name.as_str()))
    );
    assert_eq!(mirror["spec"]["title"], "Upgrade payments");
    assert_eq!(
        mirror["spec"]["configurationItems"],
        json!(["payments-api"])
    );
    assert_eq!(
        mirror["spec"]["targets"],
        json!([{ "kind": "Deployment", "name": "payments-api",
                 "images": ["registry.example/payments@sha256:aaaa"] }])
    );
    assert_eq!(mirror["record"]["number"], n.as_str());
    assert_eq!(mirror["record"]["phase"], "awaiting-approval");
    // Another cluster sees nothing of it.
    assert_eq!(
        feed(&us).await,
        json!([]),
        "prod-us mirrors nothing of client-a"
    );
    // A person's token is no agent's.
    m.cm.get("/api/v1/agent/mirrors").await.status(403);

    // Raised from a ChangeRequest in that namespace: never mirrored beside it.
    let own = eu
        .put(
            CHG,
            sync("uid-1", 1, "registry.example/payments@sha256:bbbb"),
        )
        .await
        .ok()["number"]
        .as_str()
        .expect("a number")
        .to_string();
    let names: Vec<String> = feed(&eu)
        .await
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names, vec![name.clone()], "{own} has its own resource");
    // Nor is one raised from a ChangeRequest in another namespace.
    eu.put(
        "/api/v1/agent/changerequests/elsewhere/from-elsewhere",
        sync("uid-2", 1, "registry.example/payments@sha256:cccc"),
    )
    .await
    .ok();
    let names: Vec<String> = feed(&eu)
        .await
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        names,
        vec![name.clone()],
        "a change with a resource anywhere has its own"
    );

    // Long-polled like the bundle: the same answer is not sent again.
    let first = eu.get("/api/v1/agent/mirrors").await.status(200);
    let etag = first
        .headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("an ETag")
        .to_string();
    eu.call_with(
        "GET",
        "/api/v1/agent/mirrors?wait=0",
        &[("if-none-match", &etag)],
    )
    .await
    .status(304);

    // Approved with kubectl on the mirror: the one decision path.
    changegate_testkit::msp::policy(
        &app,
        "client-a",
        json!({ "routing": { "normal": [ { "from": "low", "boards": ["msp-tech"] } ] },
                "kubernetesApprovalUpTo": "low" }),
    )
    .await;
    m.admin
        .put(
            &format!("{A}/clusters/prod-eu/identities/tom-k8s"),
            json!({ "email": "tom@msp.example" }),
        )
        .await
        .ok();
    let on = |namespace: &str, name: &str| {
        format!("/api/v1/agent/changerequests/{namespace}/{name}/approvals")
    };
    let mut decision = kubectl_decision("tom-k8s", 1);
    decision["uid"] = json!("mirror-uid");
    // Not where it is mirrored, nor the mirror name of a change with its
    // own resource: nothing to decide.
    eu.post(&on("shop", &name), decision.clone())
        .await
        .status(409);
    eu.post(&on("payments", &own.to_ascii_lowercase()), decision.clone())
        .await
        .status(409);
    let recorded = eu.post(&on("payments", &name), decision.clone()).await.ok();
    assert_eq!(
        (recorded["change"].as_str(), recorded["recorded"].as_bool()),
        (Some(n.as_str()), Some(true)),
        "{recorded}"
    );
    let approvals = m.cm.get(&format!("{A}/changes/{n}/approvals")).await.ok();
    assert_eq!(approvals[0]["channel"], "kubernetes", "{approvals}");
    // The new record reaches the mirror: a new answer at once.
    let after = eu
        .call_with(
            "GET",
            "/api/v1/agent/mirrors?wait=5",
            &[("if-none-match", &etag)],
        )
        .await
        .status(200);
    let approved = after.json["changes"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name.as_str()))
        .expect("still mirrored while approved");
    assert_eq!(approved["record"]["phase"], "approved");
    assert_eq!(approved["record"]["decisions"][0]["channel"], "kubernetes");
}

crate::on_both!(
    changes_raised_elsewhere_are_mirrored_and_approvable_on_the_mirror,
    a_clusters_oidc_prefix_makes_e_mail_user_names_its_tenants_people,
    kubectl_decisions_take_the_one_decision_path_and_a_retry_is_recorded_once,
    a_release_resource_waits_for_approval_then_plans_the_release_as_its_creator,
    a_maintenance_window_resource_writes_the_tenants_window_as_its_author,
    the_operators_reports_show_as_the_resources_rollouts,
    a_change_request_raises_one_change_as_its_mapped_creator,
    a_new_generation_is_an_edit_by_its_editor_who_cannot_approve_it,
    unmapped_and_system_identities_are_refused_and_nothing_is_written,
    a_cluster_acts_only_for_tenants_bound_to_it,
    deleting_cancels_a_change_not_started_and_detaches_a_started_one,
    only_a_tenant_administrator_maps_identities_and_only_to_its_users,
);
