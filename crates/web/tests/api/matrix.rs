//! The authorization matrix, generated from `changegate_web::route_table()`:
//! every route, asked by every kind of caller, in the caller's own tenant
//! (client-a) and in another one (client-b). A new route is covered as soon
//! as it is in the table; one that takes a body fails here until `body_for`
//! has a body for it.
//!
//! Each caller gets an app of their own, so what one caller's requests do
//! (submit, cancel, delete a window) cannot change another caller's answers.

use changegate_core::Role;
use changegate_core::authz::Action;
use changegate_store::NewTenant;
use changegate_testkit::msp::{self, low_risk, normal_change};
use changegate_testkit::{Actor, Resp, TestApp};
use changegate_web::{Access, RouteInfo};
use serde_json::{Value, json};
use std::future::Future;

const OWN: &str = "client-a";
const OTHER: &str = "client-b";

/// Text only client-b's data contains: none of it may reach a caller of client-a.
const CLIENT_B_MARKERS: [&str; 5] = [
    "client-b",
    "Zulu Bravo",
    "zebra",
    "zed@client-b.example",
    "zoe@client-b.example",
];

/// The callers of the matrix. MSP staff hold one role each in client-a
/// only; client users are people of client-a's company.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    Admin,
    Msp(Role),
    Client(Role),
    /// Held every role of client-a, then was disabled by an installation
    /// admin: nothing answers them but the public routes.
    Disabled,
}

impl Who {
    fn all() -> Vec<Who> {
        let mut all = vec![Who::Anonymous, Who::Admin];
        all.extend(Role::ALL.map(Who::Msp));
        all.extend([Role::Requester, Role::BusinessApprover, Role::TenantAdmin].map(Who::Client));
        all.push(Who::Disabled);
        all
    }

    fn role(self) -> Option<Role> {
        match self {
            Who::Msp(r) | Who::Client(r) => Some(r),
            Who::Anonymous | Who::Admin | Who::Disabled => None,
        }
    }

    fn email(self) -> String {
        match self {
            Who::Anonymous => String::new(),
            Who::Admin => "admin@msp.example".into(),
            Who::Msp(r) => format!("{r}@msp.example"),
            Who::Client(r) => format!("{r}@client-a.example"),
            Who::Disabled => "disabled@msp.example".into(),
        }
    }

    fn label(self) -> String {
        match self {
            Who::Anonymous => "anonymous".into(),
            Who::Admin => "admin".into(),
            Who::Msp(r) => format!("msp {r}"),
            Who::Client(r) => format!("client {r}"),
            Who::Disabled => "disabled user".into(),
        }
    }
}

const IMPLEMENTER: &str = "implementer@msp.example";

fn a_policy() -> Value {
    json!({
        "routing": { "normal": [ { "from": "low", "boards": ["matrix-board"] } ], "emergency": ["matrix-board"] },
        "windowRequired": [],
        "reviewRequired": ["normal", "emergency", "standard"],
        "proposals": { "boards": ["matrix-board"] },
    })
}

fn a_board() -> Value {
    json!({ "members": ["role:technical-approver", "role:business-approver", "role:change-manager"], "rule": "all" })
}

/// In the future, so it never blocks a change of the matrix.
fn a_blackout() -> Value {
    json!({ "kind": "blackout", "timeZone": "Europe/Berlin",
            "schedule": { "ranges": [ { "start": "2027-12-24T00:00:00Z", "end": "2027-12-27T00:00:00Z" } ] } })
}

fn a_template() -> Value {
    json!({ "title": "Restart app pool", "approvedBy": "change-manager@msp.example",
            "approvedOn": "2026-01-05", "reviewDue": "2027-06-01" })
}

fn a_ci() -> Value {
    json!({ "kind": "application", "criticality": "high" })
}

/// The admin signs in with it (the sign-in route is public).
const ADMIN_PASSWORD: &str = "matrix admin password";
/// Every other caller's password (they change it through the API).
const CALLER_PASSWORD: &str = "matrix caller password";
/// A client user of each tenant whom the user routes disable and strip
/// of a role: never a caller.
const VICTIM_OF_OWN: &str = "victim@client-a.example";
const VICTIM_OF_OTHER: &str = "zed@client-b.example";
/// The user the installation-wide disable route disables.
const VICTIM_OF_ADMIN: &str = "zeta@client-a.example";
/// The client user of client-a a Kubernetes name is mapped to.
const MAPPED: &str = "kube-user@client-a.example";

/// A plausible, valid body for every route that takes one, keyed by
/// method and path; `me` is the caller's e-mail.
fn body_for(method: &str, path: &str, me: &str, tenant: &str) -> Option<Value> {
    const T: &str = "/api/v1/tenants/{tenant}";
    const C: &str = "/api/v1/tenants/{tenant}/changes/{number}";
    const R: &str = "/api/v1/releases/{number}";
    let p = path;
    let body = match method {
        "POST" if p == "/api/v1/tokens" => json!({ "name": "matrix-token" }),
        "PUT" if p == "/api/v1/me/password" => {
            let current = if me == "admin@msp.example" {
                ADMIN_PASSWORD
            } else {
                CALLER_PASSWORD
            };
            json!({ "current": current, "new": "a new matrix password" })
        }
        "POST"
            if p == "/api/v1/users/{email}/disable"
                || p == format!("{T}/users/{{email}}/disable") =>
        {
            json!({ "reason": "the matrix asks" })
        }
        "POST" if p == "/api/v1/clusters" => json!({ "name": "matrix-cluster" }),
        "PUT" if p == "/api/v1/clusters/{cluster}" => json!({ "emailPrefix": "oidc:" }),
        "POST" if p == "/api/v1/agent/reports" => {
            json!({ "tenant": "client-a", "namespace": "payments",
            "kind": "Deployment", "name": "payments-api", "event": "unauthorized" })
        }
        "POST" if p == format!("{T}/gate-tokens") => json!({ "name": "matrix-pipeline" }),
        "PUT" if p == "/api/v1/agent/changerequests/{namespace}/{name}" => {
            json!({ "tenant": "client-a", "uid": "matrix-uid", "generation": 1,
            "requestedBy": "matrix-user", "requested": { "type": "normal", "implementer": null,
            "submit": true, "content": { "title": "Matrix resource" } } })
        }
        "POST" if p == "/api/v1/agent/changerequests/{namespace}/{name}/approvals" => {
            json!({ "tenant": "client-a", "uid": "matrix-uid", "user": "matrix-user",
            "decision": "Approved", "revision": 1 })
        }
        "POST" if p == "/api/v1/agent/releases/{namespace}/{name}/authorizations" => {
            json!({ "tenant": "client-a", "uid": "matrix-uid", "user": "matrix-user", "phase": "plan" })
        }
        "PUT" if p == "/api/v1/agent/releases/{namespace}/{name}" => {
            json!({ "tenant": "client-a", "uid": "matrix-uid", "generation": 1,
            "requestedBy": "matrix-user", "spec": { "changes": ["CHG-1"] } })
        }
        "PUT" if p == "/api/v1/agent/maintenancewindows/{namespace}/{name}" => {
            json!({ "tenant": "client-a", "uid": "matrix-uid", "generation": 1,
            "requestedBy": "matrix-user", "spec": a_blackout() })
        }
        "PUT" if p == format!("{T}/clusters/{{cluster}}/identities/{{user}}") => {
            json!({ "email": MAPPED })
        }
        "POST" if p == "/api/v1/gate/check" => json!({ "tenant": tenant,
            "target": { "configuration_item": "payments-api" }, "artifacts": ["app@sha256:1"] }),
        "POST" if p == "/api/v1/session" => {
            json!({ "email": "admin@msp.example", "password": ADMIN_PASSWORD })
        }
        "POST" if p == "/api/v1/tenants" => json!({ "slug": "client-c", "name": "Client C" }),
        "PUT" if p == T => json!({ "name": "Matrix Tenant", "time_zone": "Europe/Berlin" }),
        "POST" if p == format!("{T}/users") => {
            json!({ "email": "newcomer@client-a.example", "name": "Newcomer", "roles": ["requester"] })
        }
        "PUT" if p == format!("{T}/policy") => a_policy(),
        "PUT" if p == format!("{T}/boards/{{name}}") => a_board(),
        "PUT" if p == format!("{T}/windows/{{name}}") => a_blackout(),
        "PUT" if p == format!("{T}/templates/{{name}}") => a_template(),
        "PUT" if p == format!("{T}/configuration-items/{{name}}") => a_ci(),
        "POST" if p == format!("{T}/delegations") => json!({ "from": me, "to": IMPLEMENTER,
            "starts_at": "2026-11-25T00:00:00Z", "ends_at": "2026-12-02T00:00:00Z" }),
        "POST" if p == format!("{T}/changes") => normal_change("Matrix change", low_risk()),
        "POST" if p == format!("{T}/changes/preview") => {
            normal_change("Matrix preview", low_risk())
        }
        "PATCH" if p == C => json!({ "justification": "asked for by the matrix" }),
        "POST" if p == format!("{C}/submit") => json!({}),
        "POST" if p == format!("{C}/cancel") => json!({ "note": "matrix" }),
        "POST" if p == format!("{C}/decisions") => {
            json!({ "decision": "approve", "comment": "matrix", "revision": 1 })
        }
        "POST" if p == format!("{C}/start") => json!({ "note": "matrix" }),
        "POST" if p == format!("{C}/complete") => json!({ "documentation": "runbook updated" }),
        "POST" if p == format!("{C}/fail") => {
            json!({ "rolled_back": true, "restored": "payments-api 1.4.2" })
        }
        "POST" if p == format!("{C}/review") => {
            json!({ "outcome": "succeeded", "notes": "matrix" })
        }
        "POST" if p == format!("{C}/comments") => json!({ "body": "a matrix comment" }),
        "POST" if p == format!("{C}/acceptance") => json!({ "comment": "matrix" }),
        "POST" if p == format!("{T}/proposals") => json!({ "title": "Matrix proposal",
            "business_case": "asked for by the matrix", "description": "a matrix proposal" }),
        "POST" if p == format!("{T}/proposals/{{number}}/decisions") => {
            json!({ "decision": "approve", "comment": "matrix" })
        }
        "POST" if p == format!("{T}/proposals/{{number}}/withdraw") => json!({}),
        "POST" if p == format!("{T}/calendar-feeds") => json!({ "name": "matrix feed" }),
        // The change is filled in by the world (`World::release_body`).
        "POST" if p == "/api/v1/releases" => json!({ "name": "Matrix release",
            "changes": [ { "tenant": tenant, "change": "" } ] }),
        "PATCH" if p == R => json!({ "name": "Matrix release, renamed" }),
        "POST" if p == format!("{R}/phases") => json!({ "phase": "plan", "note": "matrix" }),
        "POST" if p == format!("{R}/overrides") => {
            json!({ "conflict": "slot:client-a", "reason": "matrix" })
        }
        "POST" if p == format!("{R}/steps/{{step}}") => {
            json!({ "status": "done", "evidence": "matrix" })
        }
        "POST" if p == format!("{R}/rollback") => json!({ "reason": "matrix" }),
        "POST"
            if p == format!("{R}/finish")
                || p == format!("{R}/close")
                || p == format!("{R}/cancel") =>
        {
            json!({})
        }
        _ => return None,
    };
    Some(body)
}

fn takes_body(route: &RouteInfo) -> bool {
    matches!(route.method, "POST" | "PUT" | "PATCH")
}

/// Changes in every state a route needs, and client-b's change.
struct Changes {
    draft: String,
    awaiting: String,
    approved: String,
    implementing_to_complete: String,
    implementing_to_fail: String,
    implemented: String,
    of_client_b: String,
    /// A release of client-a's approved change, and one of client-b's.
    release: String,
    release_of_client_b: String,
    /// A proposal of each tenant, awaiting authorization.
    proposal: String,
    proposal_of_client_b: String,
    /// Calendar feeds of client-a made by the caller (the admin for an
    /// anonymous caller): one to revoke (its id), one to read (its token);
    /// and one of client-b's.
    feed: (String, String),
    feed_of_client_b: String,
    /// A throwaway token of the caller's (not the one they call with).
    own_token: String,
    /// A gate token of each tenant.
    gate_token: String,
    gate_token_of_client_b: String,
}

/// One caller's app: both tenants, client-a's cast and client-b's distinctive data.
struct World {
    app: TestApp,
    caller: Actor,
    changes: Changes,
}

fn number_of(r: Resp) -> String {
    let c = r.ok();
    c["number"].as_str().expect("a change number").to_string()
}

impl World {
    async fn setup(app: TestApp, who: Who) -> World {
        use Role::*;
        app.tenant(OWN).await;
        app.store
            .create_tenant(
                NewTenant {
                    slug: changegate_core::Slug::parse(OTHER).expect("a slug"),
                    name: "Zulu Bravo Holdings".into(),
                    time_zone: "Europe/Berlin".into(),
                },
                "test",
                app.now(),
            )
            .await
            .expect("client-b created");
        let admin = app.admin().await;
        app.set_password("admin@msp.example", ADMIN_PASSWORD).await;
        let mut cast = vec![(Who::Admin, admin.clone())];
        for who in Who::all() {
            let actor = match who {
                Who::Msp(r) => app.msp(&who.email(), &[(OWN, r)]).await,
                Who::Client(r) => app.client(&who.email(), &[(OWN, r)]).await,
                Who::Disabled => {
                    let every: Vec<(&str, Role)> = Role::ALL.iter().map(|r| (OWN, *r)).collect();
                    app.msp(&who.email(), &every).await
                }
                Who::Anonymous | Who::Admin => continue,
            };
            cast.push((who, actor));
        }
        let find = |w: Who| {
            cast.iter()
                .find(|(c, _)| *c == w)
                .map(|(_, a)| a.clone())
                .expect("in the cast")
        };
        let caller = if who == Who::Anonymous {
            app.anonymous()
        } else {
            find(who)
        };
        let cm = find(Who::Msp(ChangeManager));
        let implementer = find(Who::Msp(Implementer));
        // The caller raises client-a's changes when they may, so that the
        // requester-only checks of edit, submit and cancel pass for them.
        let requester = if who.role() == Some(Requester) {
            caller.clone()
        } else {
            find(Who::Msp(Requester))
        };

        msp::board(
            &app,
            OWN,
            json!({ "name": "matrix-board", "members": a_board()["members"], "rule": "all" }),
        )
        .await;
        msp::policy(&app, OWN, a_policy()).await;
        let a = format!("/api/v1/tenants/{OWN}");
        cm.put(&format!("{a}/windows/matrix-blackout"), a_blackout())
            .await
            .ok();
        cm.put(&format!("{a}/templates/matrix-template"), a_template())
            .await
            .ok();
        cm.put(&format!("{a}/configuration-items/matrix-ci"), a_ci())
            .await
            .ok();

        let raise =
            async |body: Value| number_of(requester.post(&format!("{a}/changes"), body).await);
        let submit = async |n: &str| {
            requester
                .post(&format!("{a}/changes/{n}/submit"), json!({}))
                .await
                .ok()
        };
        let standard = || json!({ "type": "standard", "title": "Restart app pool", "template": "matrix-template" });
        let started = async || {
            let n = raise(standard()).await;
            assert_eq!(submit(&n).await["state"], "approved");
            implementer
                .post(&format!("{a}/changes/{n}/start"), json!({}))
                .await
                .ok();
            n
        };
        let draft = raise(normal_change("Upgrade payments", low_risk())).await;
        let awaiting = raise(normal_change("Upgrade ledger", low_risk())).await;
        assert_eq!(submit(&awaiting).await["state"], "awaiting-approval");
        let approved = raise(standard()).await;
        assert_eq!(submit(&approved).await["state"], "approved");
        let implementing_to_complete = started().await;
        let implementing_to_fail = started().await;
        let implemented = started().await;
        let done = implementer
            .post(&format!("{a}/changes/{implemented}/complete"), json!({}))
            .await
            .ok();
        assert_eq!(done["state"], "implemented");

        // client-b: people, policy and objects whose text is distinctive.
        let zed = app
            .client("zed@client-b.example", &[(OTHER, Requester)])
            .await;
        let zoe = app
            .client("zoe@client-b.example", &[(OTHER, BusinessApprover)])
            .await;
        msp::board(
            &app,
            OTHER,
            json!({ "name": "zebra-board", "description": "the zebra board of Zulu Bravo",
            "members": ["zoe@client-b.example"], "rule": "any" }),
        )
        .await;
        msp::policy(
            &app,
            OTHER,
            json!({ "routing": { "normal": [ { "from": "low", "boards": ["zebra-board"] } ] },
                    "proposals": { "boards": ["zebra-board"] } }),
        )
        .await;
        let b = format!("/api/v1/tenants/{OTHER}");
        let mut zebra_blackout = a_blackout();
        zebra_blackout["exclusions"] = json!([{ "date": "2027-12-25" }]);
        admin
            .put(&format!("{b}/windows/zebra-blackout"), zebra_blackout)
            .await
            .ok();
        let mut zebra_template = a_template();
        zebra_template["title"] = json!("Restart the zebra pool");
        admin
            .put(&format!("{b}/templates/zebra-template"), zebra_template)
            .await
            .ok();
        admin
            .put(
                &format!("{b}/configuration-items/zebra-ci"),
                json!({ "kind": "zebra-firewall" }),
            )
            .await
            .ok();
        admin
            .put(
                &format!("{b}/clusters/prod-eu/identities/matrix-user"),
                json!({ "email": "zed@client-b.example" }),
            )
            .await
            .ok();
        let of_client_b = number_of(
            zed.post(
                &format!("{b}/changes"),
                normal_change("Zebra migration for Zulu Bravo", low_risk()),
            )
            .await,
        );
        zed.post(&format!("{b}/changes/{of_client_b}/submit"), json!({}))
            .await
            .ok();
        zoe.post(
            &format!("{b}/changes/{of_client_b}/decisions"),
            json!({ "decision": "approve", "revision": 1 }),
        )
        .await
        .ok();
        let release_of_client_b = admin
            .post(
                "/api/v1/releases",
                json!({ "name": "Zebra release for Zulu Bravo",
                        "changes": [ { "tenant": OTHER, "change": of_client_b } ],
                        "runbook": [ { "kind": "deploy", "title": "zebra step" } ] }),
            )
            .await
            .status(201)
            .json["number"]
            .as_str()
            .expect("a release number")
            .to_string();
        let release = find(Who::Msp(ReleaseManager))
            .post(
                "/api/v1/releases",
                json!({ "name": "Matrix release", "changes": [ { "tenant": OWN, "change": approved } ],
                        "runbook": [ { "kind": "deploy", "title": "matrix step", "owner": "nobody@msp.example" } ] }),
            )
            .await
            .status(201)
            .json["number"]
            .as_str()
            .expect("a release number")
            .to_string();

        // A proposal of each tenant, awaiting its boards.
        let proposal_body = json!({ "title": "Matrix proposal", "business_case": "the matrix",
                                    "description": "a proposal to act on" });
        let proposal = requester
            .post(&format!("{a}/proposals"), proposal_body.clone())
            .await
            .status(201)
            .json["number"]
            .as_str()
            .expect("a proposal number")
            .to_string();
        let proposal_of_client_b = zed
            .post(&format!("{b}/proposals"), proposal_body)
            .await
            .status(201)
            .json["number"]
            .as_str()
            .expect("a proposal number")
            .to_string();

        // A disabled user's feeds die with them: the admin makes these.
        let feed_maker = if matches!(who, Who::Anonymous | Who::Disabled) {
            admin.clone()
        } else {
            caller.clone()
        };
        let made = feed_maker
            .post(
                &format!("{a}/calendar-feeds"),
                json!({ "name": "the caller's feed" }),
            )
            .await
            .status(201)
            .json;
        let token = made["url"]
            .as_str()
            .and_then(|u| u.rsplit('/').next())
            .expect("a feed URL")
            .to_string();
        // A second one to revoke, so that the first still answers.
        let to_revoke = feed_maker
            .post(
                &format!("{a}/calendar-feeds"),
                json!({ "name": "the caller's other feed" }),
            )
            .await
            .status(201)
            .json["id"]
            .to_string();
        let feed = (to_revoke, token);
        let feed_of_client_b = admin
            .post(
                &format!("{b}/calendar-feeds"),
                json!({ "name": "zebra feed" }),
            )
            .await
            .status(201)
            .json["id"]
            .to_string();
        if who != Who::Anonymous {
            app.set_password(
                &who.email(),
                if who == Who::Admin {
                    ADMIN_PASSWORD
                } else {
                    CALLER_PASSWORD
                },
            )
            .await;
        }
        app.client(VICTIM_OF_OWN, &[(OWN, Requester)]).await;
        // The client user a Kubernetes name is mapped to (tenant admins
        // map only the client's own people).
        app.client(MAPPED, &[(OWN, Requester)]).await;
        app.client(VICTIM_OF_ADMIN, &[(OWN, Requester)]).await;
        let own_token = caller
            .post("/api/v1/tokens", json!({ "name": "the caller's spare" }))
            .await
            .json["id"]
            .to_string();
        let token_id = |all: Value| {
            all.as_array()
                .and_then(|l| l.iter().find(|t| t["kind"] == "gate"))
                .map(|t| t["id"].to_string())
                .expect("a gate token")
        };
        implementer
            .post(
                &format!("{a}/gate-tokens"),
                json!({ "name": "matrix-pipeline" }),
            )
            .await
            .status(201);
        admin
            .post(
                &format!("{b}/gate-tokens"),
                json!({ "name": "zebra-pipeline" }),
            )
            .await
            .status(201);
        let all_tokens = admin.get("/api/v1/tokens").await.ok();
        let gate_token = token_id(json!(
            all_tokens
                .as_array()
                .expect("tokens")
                .iter()
                .filter(|t| t["reaches"] == OWN)
                .collect::<Vec<_>>()
        ));
        let gate_token_of_client_b = token_id(json!(
            all_tokens
                .as_array()
                .expect("tokens")
                .iter()
                .filter(|t| t["reaches"] == OTHER)
                .collect::<Vec<_>>()
        ));
        let changes = Changes {
            draft,
            awaiting,
            approved,
            implementing_to_complete,
            implementing_to_fail,
            implemented,
            of_client_b,
            release,
            release_of_client_b,
            proposal,
            proposal_of_client_b,
            feed,
            feed_of_client_b,
            own_token,
            gate_token,
            gate_token_of_client_b,
        };
        if who == Who::Disabled {
            admin
                .post(
                    &format!("/api/v1/users/{}/disable", who.email()),
                    json!({ "reason": "the matrix disables this caller" }),
                )
                .await
                .ok();
        }
        World {
            app,
            caller,
            changes,
        }
    }

    /// The body of `POST /api/v1/releases`: the tenant's approved change.
    fn release_body(&self, mut body: Value, tenant: &str) -> Value {
        let c = &self.changes;
        body["changes"][0]["change"] = json!(if tenant == OWN {
            &c.approved
        } else {
            &c.of_client_b
        });
        body
    }

    /// The change a route acts on: one in the state the route needs.
    fn change_for(&self, path: &str, tenant: &str) -> &str {
        let c = &self.changes;
        if path.starts_with("/api/v1/releases/") {
            return if tenant == OWN {
                &c.release
            } else {
                &c.release_of_client_b
            };
        }
        if path.contains("/proposals/") {
            return if tenant == OWN {
                &c.proposal
            } else {
                &c.proposal_of_client_b
            };
        }
        if tenant == OTHER {
            return &c.of_client_b;
        }
        match path.rsplit('/').next() {
            Some("decisions") => &c.awaiting,
            Some("start") => &c.approved,
            Some("complete") => &c.implementing_to_complete,
            Some("fail") => &c.implementing_to_fail,
            Some("review") => &c.implemented,
            _ => &c.draft,
        }
    }

    /// The path with its parameters filled in for `tenant`.
    fn fill(&self, path: &str, tenant: &str) -> String {
        let own = tenant == OWN;
        let mut filled = Vec::new();
        let segments: Vec<&str> = path.split('/').collect();
        for (i, segment) in segments.iter().enumerate() {
            let value = match *segment {
                "{tenant}" => tenant.to_string(),
                "{step}" => "1".to_string(),
                "{id}" if segments.get(i.wrapping_sub(1)) == Some(&"tokens") => {
                    self.changes.own_token.clone()
                }
                "{id}" if segments.get(i.wrapping_sub(1)) == Some(&"gate-tokens") => {
                    if own {
                        self.changes.gate_token.clone()
                    } else {
                        self.changes.gate_token_of_client_b.clone()
                    }
                }
                "{id}" if own => self.changes.feed.0.clone(),
                "{id}" => self.changes.feed_of_client_b.clone(),
                "{email}" if path.starts_with("/api/v1/users/") => VICTIM_OF_ADMIN.to_string(),
                "{email}" if own => VICTIM_OF_OWN.to_string(),
                "{email}" => VICTIM_OF_OTHER.to_string(),
                "{role}" => "requester".to_string(),
                "{cluster}" => "prod-eu".to_string(),
                "{user}" => "matrix-user".to_string(),
                "{namespace}" => "payments".to_string(),
                "{token}" => self.changes.feed.1.clone(),
                "{number}" => self.change_for(path, tenant).to_string(),
                "{name}" => {
                    let prefix = if own { "matrix" } else { "zebra" };
                    let object = match segments.get(i.wrapping_sub(1)).copied() {
                        Some("boards") => "board",
                        Some("windows") => "blackout",
                        Some("templates") => "template",
                        Some("configuration-items") => "ci",
                        Some("{namespace}") => "chg",
                        other => panic!("teach the matrix which {other:?} to name in {path}"),
                    };
                    format!("{prefix}-{object}")
                }
                s if s.starts_with('{') => panic!("teach the matrix to fill {s} in {path}"),
                s => s.to_string(),
            };
            filled.push(value);
        }
        filled.join("/")
    }
}

/// What the route table says a caller gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A success (public and caller routes).
    Success,
    /// Past authorization: anything but 401, 403 and 404.
    Allowed,
    /// An installation admin inside a tenant: past authorization, though the
    /// handler may still refuse what no role allows them either (deciding
    /// outside the frozen approvers, finishing someone else's implementation).
    AllowedForAdmin,
    Unauthenticated,
    Forbidden,
    Hidden,
}

fn expect(route: &RouteInfo, who: Who, tenant: &str) -> Expect {
    match (route.access, who) {
        (Access::Public, _) => Expect::Success,
        (_, Who::Anonymous | Who::Disabled) => Expect::Unauthenticated,
        (Access::Caller, _) => Expect::Success,
        // No person's token or session is an agent's.
        (Access::Agent, _) => Expect::Forbidden,
        (Access::Admin, Who::Admin) => Expect::Allowed,
        (Access::Admin, _) => Expect::Forbidden,
        (Access::Tenant(_) | Access::TenantInBody(_) | Access::InRelease(_), Who::Admin) => {
            Expect::AllowedForAdmin
        }
        (Access::Tenant(_) | Access::TenantInBody(_) | Access::InRelease(_), _)
            if tenant != OWN =>
        {
            Expect::Hidden
        }
        (Access::Tenant(action) | Access::TenantInBody(action) | Access::InRelease(action), w) => {
            let role = w.role().expect("a role");
            if action.granted_by().contains(&role) {
                Expect::Allowed
            } else {
                Expect::Forbidden
            }
        }
    }
}

/// The role table's own refusal, as opposed to a handler's refusal of one request.
fn is_role_refusal(r: &Resp) -> bool {
    let message = r.json["error"]["message"].as_str().unwrap_or("");
    message.contains("needs one of the roles")
        || message.contains("needs an installation administrator")
}

/// Why the answer breaks the table, if it does.
fn check(expected: Expect, r: &Resp) -> Option<String> {
    let s = r.status.as_u16();
    if r.status.is_server_error() {
        return Some(format!("a server error {s}"));
    }
    let wrong = match expected {
        Expect::Success => !r.status.is_success(),
        Expect::Allowed => matches!(s, 401 | 403 | 404),
        Expect::AllowedForAdmin => matches!(s, 401 | 404) || (s == 403 && is_role_refusal(r)),
        Expect::Unauthenticated => s != 401 || r.code() != "unauthenticated",
        Expect::Forbidden => s != 403 || r.code() != "forbidden",
        Expect::Hidden => s != 404 || r.code() != "not-found",
    };
    wrong.then(|| format!("expected {expected:?}, got {s}"))
}

#[derive(Default)]
struct Tally {
    requests: usize,
    leaks: Vec<String>,
    failures: Vec<String>,
    /// Handler refusals an installation admin met inside a tenant.
    admin_refusals: Vec<String>,
    /// Cells past authorization: how many the domain carried out, and how
    /// many it refused for the state they found (409, 422).
    carried_out: usize,
    refused_by_the_domain: usize,
}

async fn ask_everything(world: &World, who: Who, tally: &mut Tally) {
    for route in changegate_web::route_table() {
        let tenants: &[&str] = if route.path.contains("{tenant}")
            || matches!(route.access, Access::TenantInBody(_) | Access::InRelease(_))
        {
            &[OWN, OTHER]
        } else {
            &[OWN]
        };
        for &tenant in tenants {
            let path = world.fill(route.path, tenant);
            let body = if takes_body(&route) {
                body_for(route.method, route.path, &who.email(), tenant)
            } else {
                None
            };
            let body = match body {
                Some(b) if route.path == "/api/v1/releases" => Some(world.release_body(b, tenant)),
                other => other,
            };
            let method = route.method.parse().expect("an HTTP method");
            let r = world.caller.call(method, &path, body).await;
            tally.requests += 1;
            let expected = expect(&route, who, tenant);
            let cell = format!(
                "{} {} as {} ({path})",
                route.method,
                route.path,
                who.label()
            );
            if let Some(why) = check(expected, &r) {
                tally.failures.push(format!("{cell}: {why}: {}", r.text));
            }
            if matches!(expected, Expect::Allowed | Expect::AllowedForAdmin) {
                if r.status.is_success() {
                    tally.carried_out += 1;
                } else {
                    tally.refused_by_the_domain += 1;
                }
            }
            if expected == Expect::AllowedForAdmin && r.status.as_u16() == 403 {
                tally
                    .admin_refusals
                    .push(format!("{cell}: {}", r.json["error"]["message"]));
            }
            let admin_or_public = who == Who::Admin || route.access == Access::Public;
            if !admin_or_public
                && let Some(marker) = CLIENT_B_MARKERS.iter().find(|m| r.text.contains(**m))
            {
                tally.leaks.push(format!(
                    "{cell} answered {} with {marker:?}: {}",
                    r.status, r.text
                ));
            }
        }
    }
}

async fn every_route_answers_every_caller_as_the_route_table_says<F, Fut>(new_app: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = TestApp>,
{
    let routes = changegate_web::route_table();
    let missing: Vec<String> = routes
        .iter()
        .filter(|r| takes_body(r) && body_for(r.method, r.path, "me@msp.example", OWN).is_none())
        .map(|r| {
            format!(
                "add a body for {} {} to the matrix (body_for in crates/web/tests/api/matrix.rs)",
                r.method, r.path
            )
        })
        .collect();
    assert!(missing.is_empty(), "{}", missing.join("\n"));

    let started = std::time::Instant::now();
    let callers = Who::all();
    let mut tally = Tally::default();
    let mut backend = "";
    for &who in &callers {
        let world = World::setup(new_app().await, who).await;
        backend = world.app.store.backend();
        ask_everything(&world, who, &mut tally).await;
    }
    eprintln!(
        "authorization matrix on {backend}: {} routes × {} callers × 2 tenants ({} requests; routes without {{tenant}} asked once), {} leaks, in {:?}",
        routes.len(),
        callers.len(),
        tally.requests,
        tally.leaks.len(),
        started.elapsed()
    );
    eprintln!(
        "  past authorization: {} carried out, {} refused by the domain for the state they found",
        tally.carried_out, tally.refused_by_the_domain
    );
    for refusal in &tally.admin_refusals {
        eprintln!("  an admin refused by the handler: {refusal}");
    }
    assert!(
        tally.leaks.is_empty(),
        "client-b's data reached a caller of client-a:\n{}",
        tally.leaks.join("\n")
    );
    assert!(
        tally.failures.is_empty(),
        "{} cells break the route table:\n{}",
        tally.failures.len(),
        tally.failures.join("\n")
    );
}

mod every_route_answers_every_caller_as_the_route_table_says {
    use changegate_testkit::TestApp;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::every_route_answers_every_caller_as_the_route_table_says(TestApp::sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::every_route_answers_every_caller_as_the_route_table_says(TestApp::postgres).await
    }
}

/// The route lets tenant admins at windows for blackouts; a maintenance
/// window needs what `ManagePolicy` grants.
async fn a_tenant_admin_may_put_a_blackout_but_not_a_maintenance_window(app: TestApp) {
    let m = msp::Msp::setup(&app).await;
    let windows = "/api/v1/tenants/client-a/windows";
    assert!(
        Action::ManageBlackouts
            .granted_by()
            .contains(&Role::TenantAdmin)
    );
    assert!(
        !Action::ManagePolicy
            .granted_by()
            .contains(&Role::TenantAdmin)
    );
    m.alice
        .put(&format!("{windows}/freeze"), a_blackout())
        .await
        .ok();
    let maintenance = json!({ "kind": "maintenance", "timeZone": "Europe/Berlin",
        "schedule": { "cron": { "expr": "0 2 * * SAT", "duration": "4h" } } });
    let refused = m
        .alice
        .put(&format!("{windows}/weekly"), maintenance.clone())
        .await
        .status(403);
    assert_eq!(refused.code(), "forbidden");
    m.cm.put(&format!("{windows}/weekly"), maintenance)
        .await
        .ok();
    // Nor may she delete the maintenance window the change manager made.
    m.alice
        .delete(&format!("{windows}/weekly"))
        .await
        .status(403);
    m.alice
        .delete(&format!("{windows}/freeze"))
        .await
        .status(204);
}

crate::on_both!(a_tenant_admin_may_put_a_blackout_but_not_a_maintenance_window);
