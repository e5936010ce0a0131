//! The evidence export of a tenant and a period: JSON, CSV and the bundle
//! an auditor verifies offline; nothing of another tenant in it.

use changegate_store::NewEvent;
use changegate_testkit::TestApp;
use changegate_testkit::msp::{Msp, low_risk, normal_change};
use chrono::{TimeDelta, TimeZone, Utc};
use serde_json::{Value, json};

const A: &str = "/api/v1/tenants/client-a";

/// Client A's change: approved by tom by API, started in the weekly
/// window by ian, completed, reviewed. Its number.
async fn a_change_through_its_life(app: &TestApp, m: &Msp) -> String {
    m.cm.put(
        &format!("{A}/windows/weekly"),
        json!({ "timeZone": "Europe/Berlin", "schedule": { "cron": { "expr": "0 2 * * SAT", "duration": "4h" } } }),
    )
    .await
    .ok();
    let mut body = normal_change("Upgrade payments", low_risk());
    body["test_evidence"] = json!("staging run 2026-11-26 green");
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
    m.tom
        .post(
            &format!("{A}/changes/{n}/decisions"),
            json!({ "decision": "approve", "comment": "fine", "revision": 1 }),
        )
        .await
        .ok();
    app.set_now(
        Utc.with_ymd_and_hms(2026, 11, 28, 1, 30, 0)
            .single()
            .expect("a valid time"),
    );
    m.carried_out(&n, "payments-api runbook: version 2.4.1")
        .await;
    n
}

async fn an_auditor_exports_a_period_and_verifies_the_bundle_offline(app: TestApp) {
    let m = Msp::setup(&app).await;
    let n = a_change_through_its_life(&app, &m).await;
    let a = app.store.tenant_by_slug("client-a").await.expect("tenant");
    app.store
        .record_events(
            a.id,
            vec![NewEvent {
                actor: "agent:prod".into(),
                action: "deployment.unauthorized".into(),
                subject: "Deployment payments/payments-api".into(),
                detail: json!({ "namespace": "payments", "name": "payments-api" }),
                at: app.now(),
            }],
        )
        .await
        .expect("recorded");
    // Client B raises something that must not appear in A's evidence.
    m.eve
        .post(
            "/api/v1/tenants/client-b/changes",
            normal_change("Zebra move of client B", low_risk()),
        )
        .await
        .status(201);

    let period = "from=2026-11-01&to=2026-11-30";
    let e = m.audrey.get(&format!("{A}/evidence?{period}")).await.ok();
    assert_eq!(e["tenant"], "client-a");
    assert_eq!(e["chain"]["intact"], true);
    let changes = e["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{e}");
    let c = &changes[0];
    assert_eq!(c["number"], n.as_str());
    assert_eq!(c["requester"], "eve@msp.example");
    assert_eq!(c["approvals"][0]["approver"], "tom@msp.example");
    assert_eq!(c["approvals"][0]["channel"], "api");
    assert_eq!(c["approvals"][0]["decision"], "approve");
    assert_eq!(c["policy_version"], 1);
    assert_eq!(c["window"], "weekly");
    assert_eq!(c["test_evidence"], "staging run 2026-11-26 green");
    assert_eq!(c["implementer"], "ian@msp.example");
    assert_eq!(c["started_at"], "2026-11-28T01:30:00Z");
    assert_eq!(c["outcome"], "succeeded");
    assert_eq!(c["documentation"], "payments-api runbook: version 2.4.1");
    assert_eq!(c["review"]["detail"]["notes"], "smooth");
    assert_eq!(e["unauthorized"].as_array().map(Vec::len), Some(1));
    let control = |id: &str| -> Value {
        e["controls"]
            .as_array()
            .expect("controls")
            .iter()
            .find(|c| c["id"] == id)
            .cloned()
            .expect("control")
    };
    for id in [
        "authorized-before-implementation",
        "tested-before-deployment",
        "implemented-by-approved-individual",
        "periodic-review",
    ] {
        assert_eq!(control(id)["evidence"], json!([n]), "{id}");
        assert_eq!(control(id)["exceptions"], json!([]), "{id}");
    }
    assert_eq!(
        control("no-unsupervised-production-changes")["exceptions"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert!(!e.to_string().contains("Zebra"), "nothing of client B");
    // An earlier period holds nothing.
    let before = m
        .audrey
        .get(&format!("{A}/evidence?from=2026-10-01&to=2026-10-31"))
        .await
        .ok();
    assert_eq!(before["changes"], json!([]));

    let csv = m
        .audrey
        .get(&format!("{A}/evidence?{period}&format=csv"))
        .await
        .status(200);
    let mut lines = csv.text.lines();
    assert!(
        lines
            .next()
            .is_some_and(|h| h.starts_with("number,title,type,state"))
    );
    assert!(
        lines
            .next()
            .is_some_and(|r| r.starts_with(&format!("{n},Upgrade payments,normal,closed")))
    );

    let bundle = m
        .audrey
        .call_with("GET", &format!("{A}/evidence?{period}&format=bundle"), &[])
        .await
        .status(200);
    let check = changegate_web::evidence::verify_bundle(&bundle.bytes).expect("a readable bundle");
    assert!(check.intact(), "{check:?}");
    let names: Vec<&str> = check.files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["evidence.json", "changes.csv", "README.txt", "audit.jsonl"]
    );
    assert!(check.chain.events > 5);

    // Refusals: another client's user, bad dates, an unknown format.
    m.bob.get(&format!("{A}/evidence")).await.status(404);
    let r = m
        .audrey
        .get(&format!("{A}/evidence?from=yesterday"))
        .await
        .status(422);
    assert_eq!(r.field(), "from");
    let r = m
        .audrey
        .get(&format!("{A}/evidence?from=2026-11-30&to=2026-11-01"))
        .await
        .status(422);
    assert_eq!(r.field(), "to");
    let r = m
        .audrey
        .get(&format!("{A}/evidence?format=xml"))
        .await
        .status(422);
    assert_eq!(r.field(), "format");
}

async fn the_kpis_of_a_period_match_its_records_and_reach_prometheus(app: TestApp) {
    let m = Msp::setup(&app).await;
    a_change_through_its_life(&app, &m).await;
    // A second change, emergency, raised and left awaiting approval.
    let mut emergency = normal_change("Hotfix", low_risk());
    emergency["type"] = json!("emergency");
    m.eve
        .post(&format!("{A}/changes"), emergency)
        .await
        .status(201);
    let k = m
        .audrey
        .get(&format!("{A}/kpis?from=2026-11-01&to=2026-11-30"))
        .await
        .ok();
    assert_eq!(k["changes"], 2);
    // Submitted and approved on the same pinned instant.
    assert_eq!(
        k["approval_cycle_hours"],
        json!({ "count": 1, "median": 0.0, "p90": 0.0 })
    );
    assert_eq!(k["approvers"][0]["approver"], "tom@msp.example");
    assert_eq!(
        k["success_rate"],
        json!({ "part": 1, "whole": 1, "ratio": 1.0 })
    );
    assert_eq!(
        k["emergency_share"],
        json!({ "part": 1, "whole": 2, "ratio": 0.5 })
    );
    assert_eq!(k["pir_completion"]["part"], 1);
    assert_eq!(k["rollback_rate"]["ratio"], 0.0);
    assert_eq!(k["time_to_restore_minutes"]["count"], 0);
    m.bob.get(&format!("{A}/kpis")).await.status(404);

    // Prometheus: installation admins only, one label per tenant.
    m.audrey.get("/metrics").await.status(403);
    let metrics = m.admin.get("/metrics").await.status(200);
    assert!(
        metrics
            .text
            .contains("changegate_kpi_success_ratio{tenant=\"client-a\"} 1.0"),
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .text
            .contains("changegate_kpi_changes{tenant=\"client-b\"} 0")
    );
    // Counted live beside the cached KPIs, and one end marker, last.
    assert!(
        metrics
            .text
            .contains("\nchangegate_gate_checks_waiting 0\n")
            && metrics.text.ends_with("# EOF\n")
            && metrics.text.matches("# EOF").count() == 1,
        "{}",
        metrics.text
    );
}

/// Someone with database access rewrites client A's last event and the
/// head the store keeps: the chain verifies on its own, the server's
/// signed checkpoint log still finds it.
async fn a_history_rewritten_head_and_all_is_found_against_the_checkpoint_log(app: TestApp) {
    use changegate_jobs::checkpoint::{Checkpoints, check};
    let m = Msp::setup(&app).await;
    a_change_through_its_life(&app, &m).await;
    let dir = tempfile::tempdir().expect("a directory");
    let log = dir.path().join("checkpoints.jsonl");
    let mut checkpoints = Checkpoints::open(&log).expect("the log opens");
    let written = checkpoints
        .write_due(app.store.as_ref(), app.now())
        .await
        .expect("written");
    assert!(written.iter().any(|l| l.checkpoint.tenant == "client-a"));
    assert!(
        checkpoints
            .write_due(app.store.as_ref(), app.now())
            .await
            .expect("a second pass")
            .is_empty(),
        "nothing moved, nothing written"
    );
    let key = std::fs::read_to_string(dir.path().join("checkpoints.jsonl.pub"))
        .expect("the public key, named after the log");
    let lines: Vec<changegate_jobs::checkpoint::Line> = std::fs::read_to_string(&log)
        .expect("the log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a line"))
        .collect();
    let period = "from=2026-11-01&to=2026-11-30&format=bundle";
    let bundle = async || {
        let r = m
            .audrey
            .get(&format!("{A}/evidence?{period}"))
            .await
            .status(200);
        let wanted = lines.iter().map(|l| l.checkpoint.seq).collect();
        changegate_web::evidence::verify_bundle_keeping(r.bytes.as_slice(), &wanted)
            .expect("a readable bundle")
    };
    let before = bundle().await;
    assert!(before.intact());
    let made_at = before
        .generated_at
        .expect("the bundle says when it was made");
    let found = check(
        &lines,
        &key,
        "client-a",
        made_at,
        before.chain.events as i64,
        &before.hashes_at,
    );
    assert_eq!((found.problems.len(), found.held), (0, 1), "{found:?}");
    assert!(found.anchored());
    // A bundle made before the checkpoint was signed cannot hold it, and
    // checks nothing; one cut short after it has lost events.
    let signed_at = lines[0].checkpoint.at;
    let older = check(
        &lines,
        &key,
        "client-a",
        signed_at - TimeDelta::seconds(1),
        before.chain.events as i64 - 1,
        &before.hashes_at,
    );
    assert_eq!((older.held, older.later), (0, 1), "{older:?}");
    assert!(!older.anchored(), "nothing checked is not verified");
    let cut = check(
        &lines,
        &key,
        "client-a",
        made_at,
        lines[0].checkpoint.seq - 1,
        &before.hashes_at,
    );
    assert!(cut.problems[0].contains("removed"), "{cut:?}");
    // Another tenant's name on the bundle finds none of its checkpoints.
    assert!(
        !check(
            &lines,
            &key,
            "client-z",
            made_at,
            i64::MAX,
            &before.hashes_at
        )
        .anchored()
    );

    // The last event rewritten and re-hashed, and the head moved with it.
    let db = app.db().expect("the app's database");
    db.drop_append_only_triggers()
        .await
        .expect("triggers dropped");
    let a = app.store.tenant_by_slug("client-a").await.expect("tenant");
    let (events, head) = app.store.audit_events(a.id).await.expect("events");
    let mut last = events.last().expect("events").clone();
    last.body.actor = "nobody@example.com".into();
    let forged = changegate_core::audit::seal(&last.prev_hash, last.body.clone());
    db.exec(&format!(
        "UPDATE audit_events SET actor = 'nobody@example.com', hash = '{}' WHERE tenant_id = {} AND seq = {};
         UPDATE tenants SET audit_hash = '{}' WHERE id = {};",
        forged.hash, a.id, head.seq, forged.hash, a.id
    ))
    .await
    .expect("rewritten");
    let after = bundle().await;
    assert!(after.intact(), "the rewritten chain verifies on its own");
    let problems = check(
        &lines,
        &key,
        "client-a",
        after.generated_at.expect("made at"),
        after.chain.events as i64,
        &after.hashes_at,
    )
    .problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("rewritten"), "{problems:?}");
    // A line signed by another key is no anchor.
    let mut forged_line = lines[0].clone();
    forged_line.checkpoint.hash = forged.hash.clone();
    let problems = check(
        &[forged_line],
        &key,
        &lines[0].checkpoint.tenant,
        made_at,
        i64::MAX,
        &after.hashes_at,
    )
    .problems;
    assert!(problems[0].contains("not signed"), "{problems:?}");
}

crate::on_both!(
    a_history_rewritten_head_and_all_is_found_against_the_checkpoint_log,
    an_auditor_exports_a_period_and_verifies_the_bundle_offline,
    the_kpis_of_a_period_match_its_records_and_reach_prometheus,
);
