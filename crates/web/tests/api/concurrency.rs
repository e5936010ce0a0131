//! Many approvers deciding one change at the same moment: every decision
//! is recorded once, none is lost to the optimistic lock, and the audit
//! chain stays one unbroken line.

use changegate_core::Role;
use changegate_testkit::msp::{self, Msp, low_risk, normal_change};
use changegate_testkit::{Actor, TestApp};
use serde_json::json;
use std::time::Instant;

const A: &str = "/api/v1/tenants/client-a";
const APPROVERS: usize = 50;

async fn fifty_approvers_deciding_at_once_are_all_recorded(app: TestApp) {
    let m = Msp::setup(&app).await;
    let mut approvers: Vec<Actor> = Vec::with_capacity(APPROVERS);
    for i in 1..=APPROVERS {
        approvers.push(
            app.msp(
                &format!("tech-{i:02}@msp.example"),
                &[("client-a", Role::TechnicalApprover)],
            )
            .await,
        );
    }
    let members: Vec<&str> = approvers.iter().map(|a| a.email.as_str()).collect();
    msp::board(
        &app,
        "client-a",
        json!({ "name": "fifty", "members": members, "rule": "all" }),
    )
    .await;
    msp::policy(
        &app,
        "client-a",
        json!({ "routing": { "normal": [ { "from": "low", "boards": ["fifty"] } ] } }),
    )
    .await;

    let c = m
        .eve
        .post(
            &format!("{A}/changes"),
            normal_change("Fifty eyes", low_risk()),
        )
        .await
        .status(201)
        .json;
    let n = c["number"].as_str().expect("a number").to_string();
    let c = m
        .eve
        .post(&format!("{A}/changes/{n}/submit"), json!({}))
        .await
        .ok();
    assert_eq!(
        c["approval"]["boards"][0]["members"]
            .as_array()
            .map(Vec::len),
        Some(APPROVERS)
    );

    let started = Instant::now();
    let decisions = approvers.into_iter().map(|a| {
        let path = format!("{A}/changes/{n}/decisions");
        tokio::spawn(async move {
            (
                a.email.clone(),
                a.post(&path, json!({ "decision": "approve", "revision": 1 }))
                    .await,
            )
        })
    });
    let answers = futures::future::join_all(decisions).await;
    eprintln!(
        "{APPROVERS} concurrent decisions on {}: {:?}",
        app.store.backend(),
        started.elapsed()
    );

    for answer in answers {
        let (who, r) = answer.expect("the request task finished");
        assert_eq!(r.status.as_u16(), 200, "{who}: {}", r.text);
    }
    let approvals = m
        .audrey
        .get(&format!("{A}/changes/{n}/approvals"))
        .await
        .ok();
    let approvals = approvals.as_array().expect("a list");
    assert_eq!(approvals.len(), APPROVERS);
    let mut who: Vec<&str> = approvals
        .iter()
        .filter_map(|a| a["approver"].as_str())
        .collect();
    who.sort_unstable();
    who.dedup();
    assert_eq!(who.len(), APPROVERS, "each approver is recorded once");
    assert_eq!(
        m.eve.get(&format!("{A}/changes/{n}")).await.ok()["state"],
        "approved"
    );

    let audit = m.audrey.get(&format!("{A}/audit")).await.ok();
    assert_eq!(audit["intact"], true, "{audit}");
    let tenant = app
        .store
        .tenant_by_slug("client-a")
        .await
        .expect("client-a");
    let (events, _) = app
        .store
        .audit_events(tenant.id)
        .await
        .expect("the audit events");
    let count = |action: &str| {
        events
            .iter()
            .filter(|e| e.body.action == action && e.body.subject == n)
            .count()
    };
    assert_eq!(count("approval.recorded"), APPROVERS);
    assert_eq!(
        count("change.approved"),
        1,
        "the change is approved once, by the last decision"
    );
    assert_eq!(audit["events"], json!(events.len()));
}

crate::on_both!(fifty_approvers_deciding_at_once_are_all_recorded);
