//! Change proposals (seed 001): raised with a business case, authorized by
//! every board the policy names (frozen when raised, the requester never
//! among them), weighed against the change schedule; the changes raised
//! under an authorized proposal still need their own approval, and the
//! proposal shows their progress. Nobody else decides, nobody decides
//! twice, another client sees nothing.

use changegate_testkit::TestApp;
use changegate_testkit::msp::{Msp, low_risk, normal_change};
use serde_json::{Value, json};

use crate::portal::{csrf, sign_in};

const A: &str = "/api/v1/tenants/client-a";

async fn proposing_policy(app: &TestApp) {
    changegate_testkit::msp::policy(
        app,
        "client-a",
        json!({ "routing": { "normal": [ { "from": "low", "boards": ["msp-tech"] } ] },
                "proposals": { "boards": ["msp-tech", "client-a-business"] } }),
    )
    .await;
}

fn proposal() -> Value {
    json!({
        "title": "Move payments to the new cluster",
        "business_case": "the old cluster's support ends in March",
        "description": "rebuild payments-api on the new cluster, then switch traffic",
        "risks": "a longer outage if the switch fails",
        "alternatives": "extend the old support contract",
        "budget": "20 person-days",
        "schedule_start": "2026-11-28T00:00:00Z",
        "schedule_end": "2026-12-20T00:00:00Z",
        "services": ["payments-api"],
    })
}

async fn a_proposal_is_authorized_and_its_changes_are_still_approved_on_their_own(app: TestApp) {
    let m = Msp::setup(&app).await;
    proposing_policy(&app).await;
    m.cm.put(
        &format!("{A}/configuration-items/payments-api"),
        json!({ "kind": "application" }),
    )
    .await
    .ok();

    // Client B's policy names no board for proposals.
    let refused = m
        .eve
        .post("/api/v1/tenants/client-b/proposals", proposal())
        .await
        .status(409);
    assert!(
        refused.text.contains("does not use change proposals"),
        "{}",
        refused.text
    );
    let mut bad = proposal();
    bad["business_case"] = json!(" ");
    let r = m.eve.post(&format!("{A}/proposals"), bad).await.status(422);
    assert_eq!(r.field(), "businessCase", "{}", r.text);
    let mut bad = proposal();
    bad["services"] = json!(["mainframe"]);
    let r = m.eve.post(&format!("{A}/proposals"), bad).await.status(422);
    assert_eq!(r.field(), "services", "{}", r.text);
    assert_eq!(
        m.cm.get(&format!("{A}/proposals")).await.ok(),
        json!([]),
        "nothing raised on bad input"
    );

    // A change already booked on payments-api within the schedule.
    let mut booked = normal_change("Resize payments database", low_risk());
    booked["planned_start"] = json!("2026-12-05T01:00:00Z");
    booked["planned_end"] = json!("2026-12-05T03:00:00Z");
    let other = m
        .eve
        .post(&format!("{A}/changes"), booked)
        .await
        .status(201)
        .json["number"]
        .as_str()
        .expect("number")
        .to_string();
    m.eve
        .post(&format!("{A}/changes/{other}/submit"), json!({}))
        .await
        .ok();

    let p = m
        .eve
        .post(&format!("{A}/proposals"), proposal())
        .await
        .status(201)
        .json;
    let n = p["number"].as_str().expect("number").to_string();
    assert_eq!(p["state"], "awaiting-authorization");
    let boards: Vec<_> = p["boards"]
        .as_array()
        .expect("boards")
        .iter()
        .map(|b| b["name"].clone())
        .collect();
    assert_eq!(boards, [json!("msp-tech"), json!("client-a-business")]);
    assert!(
        p["conflicts"][0]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("{other} Resize payments database")),
        "{p}"
    );

    // Not authorized yet: nothing is raised under it.
    let mut under = normal_change("Build payments on the new cluster", low_risk());
    under["proposal"] = json!(n);
    let early = m
        .eve
        .post(&format!("{A}/changes"), under.clone())
        .await
        .status(422);
    assert!(
        early.text.contains("is awaiting authorization"),
        "{}",
        early.text
    );

    // Only the frozen boards decide; each person once.
    m.audrey
        .post(
            &format!("{A}/proposals/{n}/decisions"),
            json!({ "decision": "approve" }),
        )
        .await
        .status(403);
    m.ian
        .post(
            &format!("{A}/proposals/{n}/decisions"),
            json!({ "decision": "approve" }),
        )
        .await
        .status(403);
    let tom = sign_in(&app, "tom@msp.example").await;
    let page = tom
        .get(&format!("/t/client-a/proposals/{n}"))
        .await
        .status(200);
    assert!(
        page.text.contains(&format!(">Authorize {n}</button>")),
        "{}",
        page.text
    );
    assert!(
        page.text.contains("Resize payments database"),
        "the schedule's clash: {}",
        page.text
    );
    tom.form(
        &format!("/t/client-a/proposals/{n}/decide"),
        &[
            ("csrf", &csrf(&page.text)),
            ("decision", "approve"),
            ("comment", "worth it"),
        ],
    )
    .await
    .status(303);
    let twice = m
        .tom
        .post(
            &format!("{A}/proposals/{n}/decisions"),
            json!({ "decision": "reject" }),
        )
        .await
        .status(409);
    assert!(twice.text.contains("you decided on"), "{}", twice.text);
    let p = m
        .carol
        .post(
            &format!("{A}/proposals/{n}/decisions"),
            json!({ "decision": "approve", "comment": "budget agreed" }),
        )
        .await
        .ok();
    assert_eq!(p["state"], "authorized", "{p}");
    assert_eq!(p["decisions"][0]["channel"], "portal");
    assert_eq!(p["decisions"][1]["by"], "carol@client-a.example");
    let late = m
        .dan
        .post(
            &format!("{A}/proposals/{n}/decisions"),
            json!({ "decision": "reject" }),
        )
        .await
        .status(409);
    assert!(
        late.text.contains("it takes no more decisions"),
        "{}",
        late.text
    );

    // Authorized: a change is raised under it, and still needs its own approval.
    let c = m
        .eve
        .post(&format!("{A}/changes"), under)
        .await
        .status(201)
        .json;
    let change = c["number"].as_str().expect("number").to_string();
    let submitted = m
        .eve
        .post(&format!("{A}/changes/{change}/submit"), json!({}))
        .await
        .ok();
    assert_eq!(submitted["state"], "awaiting-approval", "{submitted}");
    let p = m.cm.get(&format!("{A}/proposals/{n}")).await.ok();
    assert_eq!(
        p["changes"],
        json!([{ "number": change, "title": "Build payments on the new cluster", "state": "awaiting-approval" }])
    );
    // The list summarizes it: where it stands and how many changes are under it.
    let list = m.cm.get(&format!("{A}/proposals")).await.ok();
    assert_eq!(
        (
            &list[0]["number"],
            &list[0]["state"],
            &list[0]["change_count"]
        ),
        (&json!(n), &json!("authorized"), &json!(1)),
        "{list}"
    );
    assert!(list[0].get("conflicts").is_none(), "a summary: {list}");
    let page = tom
        .get(&format!("/t/client-a/changes/{change}"))
        .await
        .status(200);
    assert!(
        page.text
            .contains(&format!("href=\"/t/client-a/proposals/{n}\"")),
        "{}",
        page.text
    );

    // Edited away from the proposal, the change is no longer under it.
    m.eve
        .patch(
            &format!("{A}/changes/{change}"),
            json!({ "proposal": null }),
        )
        .await
        .ok();
    let p = m.cm.get(&format!("{A}/proposals/{n}")).await.ok();
    assert_eq!(p["changes"], json!([]), "{p}");
    let list = m.cm.get(&format!("{A}/proposals")).await.ok();
    assert_eq!(list[0]["change_count"], 0, "{list}");
    // The list page names the requester, not their address.
    let listed = tom.get("/t/client-a/proposals").await.status(200);
    assert!(
        listed
            .text
            .contains("<td data-label=\"Requested by\">eve</td>"),
        "{}",
        listed.text
    );
    // Another client's user sees nothing of it.
    m.bob.get(&format!("{A}/proposals/{n}")).await.status(404);
    let bob = sign_in(&app, "bob@client-b.example").await;
    bob.get(&format!("/t/client-a/proposals/{n}"))
        .await
        .status(404);
}

async fn the_requester_withdraws_a_proposal_and_nobody_decides_on_it_after(app: TestApp) {
    let m = Msp::setup(&app).await;
    proposing_policy(&app).await;
    let mut body = proposal();
    body["services"] = json!([]);
    let n = m
        .eve
        .post(&format!("{A}/proposals"), body)
        .await
        .status(201)
        .json["number"]
        .as_str()
        .expect("number")
        .to_string();
    m.tom
        .post(&format!("{A}/proposals/{n}/withdraw"), json!({}))
        .await
        .status(403);
    let p = m
        .eve
        .post(&format!("{A}/proposals/{n}/withdraw"), json!({}))
        .await
        .ok();
    assert_eq!(p["state"], "withdrawn");
    let r = m
        .tom
        .post(
            &format!("{A}/proposals/{n}/decisions"),
            json!({ "decision": "approve" }),
        )
        .await
        .status(409);
    assert!(r.text.contains("withdrawn"), "{}", r.text);
}

crate::on_both!(
    a_proposal_is_authorized_and_its_changes_are_still_approved_on_their_own,
    the_requester_withdraws_a_proposal_and_nobody_decides_on_it_after,
);
