//! The MSP of the tests: two clients with different approval chains, and
//! one person per role, created through the store (so the API under test
//! is not needed to set up).
//!
//! client-a: boards `msp-tech` (tom, tina: any) and `client-a-business`
//! (every business approver: any); low risk needs msp-tech, high risk
//! both; emergencies msp-tech. client-b: board `client-b-business` (bob).

use changegate_core::Role;
use changegate_core::board::BoardSpec;
use changegate_core::policy::PolicySpec;
use changegate_store::ObjectKind;
use serde_json::json;

use crate::app::{Actor, TestApp};

pub struct Msp {
    pub admin: Actor,
    /// MSP engineer: requester in both tenants.
    pub eve: Actor,
    /// MSP implementer in both tenants.
    pub ian: Actor,
    /// MSP technical approvers of client-a (tom also of client-b).
    pub tom: Actor,
    pub tina: Actor,
    /// Change manager of both tenants.
    pub cm: Actor,
    /// client-a business approvers.
    pub carol: Actor,
    pub dan: Actor,
    /// client-a tenant admin (a client user).
    pub alice: Actor,
    /// client-a auditor.
    pub audrey: Actor,
    /// client-b business approver.
    pub bob: Actor,
}

pub async fn board(app: &TestApp, tenant: &str, spec: serde_json::Value) {
    let t = app.store.tenant_by_slug(tenant).await.expect("tenant");
    let b: BoardSpec = serde_json::from_value(spec).expect("board spec");
    let text = serde_json::to_string(&b).expect("serialises");
    app.store
        .put_object(t.id, ObjectKind::Board, &b.name, &text, "test", app.now())
        .await
        .expect("board stored");
}

pub async fn policy(app: &TestApp, tenant: &str, spec: serde_json::Value) {
    let t = app.store.tenant_by_slug(tenant).await.expect("tenant");
    let p: PolicySpec = serde_json::from_value(spec).expect("policy spec");
    let text = serde_json::to_string(&p).expect("serialises");
    app.store
        .put_policy(t.id, &text, "test", app.now())
        .await
        .expect("policy stored");
}

impl Msp {
    pub async fn setup(app: &TestApp) -> Msp {
        use Role::*;
        app.tenant("client-a").await;
        app.tenant("client-b").await;
        let admin = app.admin().await;
        let eve = app
            .msp(
                "eve@msp.example",
                &[("client-a", Requester), ("client-b", Requester)],
            )
            .await;
        let ian = app
            .msp(
                "ian@msp.example",
                &[("client-a", Implementer), ("client-b", Implementer)],
            )
            .await;
        let tom = app
            .msp(
                "tom@msp.example",
                &[
                    ("client-a", TechnicalApprover),
                    ("client-b", TechnicalApprover),
                ],
            )
            .await;
        let tina = app
            .msp("tina@msp.example", &[("client-a", TechnicalApprover)])
            .await;
        let cm = app
            .msp(
                "cm@msp.example",
                &[("client-a", ChangeManager), ("client-b", ChangeManager)],
            )
            .await;
        let audrey = app
            .msp("audrey@audit.example", &[("client-a", Auditor)])
            .await;
        let carol = app
            .client("carol@client-a.example", &[("client-a", BusinessApprover)])
            .await;
        let dan = app
            .client("dan@client-a.example", &[("client-a", BusinessApprover)])
            .await;
        let alice = app
            .client("alice@client-a.example", &[("client-a", TenantAdmin)])
            .await;
        let bob = app
            .client("bob@client-b.example", &[("client-b", BusinessApprover)])
            .await;
        board(app, "client-a", json!({ "name": "msp-tech", "members": ["tom@msp.example", "tina@msp.example"], "rule": "any" })).await;
        board(app, "client-a", json!({ "name": "client-a-business", "members": ["role:business-approver"], "rule": "any" })).await;
        policy(
            app,
            "client-a",
            json!({ "routing": { "normal": [ { "from": "low", "boards": ["msp-tech"] },
                                             { "from": "high", "boards": ["msp-tech", "client-a-business"] } ],
                                 "emergency": ["msp-tech"] } }),
        )
        .await;
        board(app, "client-b", json!({ "name": "client-b-business", "members": ["bob@client-b.example"], "rule": "any" })).await;
        policy(app, "client-b", json!({ "routing": { "normal": [ { "from": "low", "boards": ["client-b-business"] } ] } })).await;
        Msp {
            admin,
            eve,
            ian,
            tom,
            tina,
            cm,
            carol,
            dan,
            alice,
            audrey,
            bob,
        }
    }
}

impl Msp {
    /// Eve raises "Upgrade payments" in client-a with `risk` answers and
    /// submits it: its number, awaiting approval.
    pub async fn submitted(&self, risk: serde_json::Value) -> String {
        let c = self
            .eve
            .post(
                "/api/v1/tenants/client-a/changes",
                normal_change("Upgrade payments", risk),
            )
            .await
            .status(201)
            .json;
        let n = c["number"].as_str().expect("number").to_string();
        let submitted = self
            .eve
            .post(
                &format!("/api/v1/tenants/client-a/changes/{n}/submit"),
                json!({}),
            )
            .await
            .ok();
        assert_eq!(submitted["state"], "awaiting-approval");
        n
    }

    /// Ian starts client-a's approved change `n` now, completes it with
    /// `documentation` and reviews it as a success: closed.
    pub async fn carried_out(&self, n: &str, documentation: &str) {
        let change = format!("/api/v1/tenants/client-a/changes/{n}");
        self.ian
            .post(&format!("{change}/start"), json!({}))
            .await
            .ok();
        self.ian
            .post(
                &format!("{change}/complete"),
                json!({ "documentation": documentation }),
            )
            .await
            .ok();
        let c = self
            .ian
            .post(
                &format!("{change}/review"),
                json!({ "outcome": "succeeded", "notes": "smooth", "lessons": "none" }),
            )
            .await
            .ok();
        assert_eq!(c["state"], "closed", "{c}");
    }
}

/// Risk answers scoring `high` on the default questionnaire (production + outage).
pub fn high_risk() -> serde_json::Value {
    json!({ "production": "yes", "outage": "yes", "untested": "no", "no-backout": "no" })
}

/// Risk answers scoring `low`.
pub fn low_risk() -> serde_json::Value {
    json!({ "production": "no", "outage": "no", "untested": "no", "no-backout": "no" })
}

/// A normal change body for client-a.
pub fn normal_change(title: &str, risk: serde_json::Value) -> serde_json::Value {
    json!({
        "type": "normal",
        "title": title,
        "description": "Upgrade the payments API to 2.4.1",
        "risk_answers": risk,
        "configuration_items": ["payments-api"],
        "artifacts": ["registry.example/payments@sha256:aaaa"],
        "implementation_plan": "helm upgrade payments 2.4.1",
        "backout_plan": "helm rollback payments",
        "test_plan": "smoke tests in staging",
    })
}
