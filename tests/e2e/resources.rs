//! The custom resources on the local control plane (DESIGN §7), against
//! the server and operator `make up` runs: the examples apply as written
//! (the invalid one is refused naming the field), a ChangeRequest becomes
//! its creator's change on the server, a decision anywhere reaches its
//! status and `kubectl wait --for=condition=Ready` returns, a spec edit is
//! a new revision its editor cannot approve, a rejection stalls it, and
//! deleting one whose change has not started cancels that change.

use crate::support::cluster::repo_root;
use crate::support::server::{Server, server};
use crate::support::{
    TestNamespace, admin, kubectl, kubectl_plugin, kubectl_stdin, wait_for, wait_until,
};
use changegate_resources::{ChangeRequest, MaintenanceWindow, Release};
use kube::Api;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SYNC: Duration = Duration::from_secs(30);

/// A tenant of the examples: `examples/changegate/client-a.yaml` applied
/// under a tenant slug, a namespace and addresses of this test's own, the
/// kubectl user of the tests mapped to Eve, `rita-k8s` to Rita (change
/// manager, and a technical approver here).
struct Story {
    tenant: String,
    ns: TestNamespace,
    server: Arc<Server>,
    chg: Api<ChangeRequest>,
}

impl Story {
    async fn new(prefix: &str) -> Story {
        let probe = TestNamespace::new(prefix).await;
        let tenant = format!("t-{}", probe.name.rsplit('-').next().unwrap_or("x"));
        drop(probe);
        let ns = TestNamespace::for_tenant(prefix, &tenant).await;
        let s = server();
        let yaml = std::fs::read_to_string(repo_root().join("examples/changegate/client-a.yaml"))
            .expect("the example tenant")
            .replace("client-a", &tenant)
            .replace("@msp.example", &format!("@msp.{tenant}.example"))
            .replace("namespace: shop", &format!("namespace: {}", ns.name))
            .replace(
                "roles: [release-manager, change-manager]",
                "roles: [release-manager, change-manager, technical-approver]",
            );
        s.apply(&yaml);
        s.apply(&format!(
            "kind: ClusterIdentity\ntenant: {tenant}\ncluster: local\nuser: rita-k8s\nemail: rita@msp.{tenant}.example\n"
        ));
        let chg = Api::namespaced(admin().await, &ns.name);
        Story {
            tenant,
            ns,
            server: s,
            chg,
        }
    }

    fn email(&self, who: &str) -> String {
        match who {
            "carol" => format!("carol@{}.example", self.tenant),
            other => format!("{other}@msp.{}.example", self.tenant),
        }
    }

    /// `kubectl apply -n <ns> -f examples/<file>`.
    fn apply(&self, file: &str) -> Output {
        let path = repo_root().join("examples").join(file);
        kubectl(&["apply", "-n", &self.ns.name, "-f", &path.to_string_lossy()])
    }

    /// The ChangeRequest `name` once the server's number is in its status.
    async fn synced(&self, name: &str) -> ChangeRequest {
        wait_for(
            &self.chg,
            name,
            "the server's number in status",
            SYNC,
            |c| {
                c.status
                    .as_ref()
                    .is_some_and(|s| s.observed.number.is_some())
            },
        )
        .await
    }

    /// `changegate change <verb> <number>` as `who`.
    fn decide(&self, who: &str, verb: &str, number: &str) -> Output {
        let token = self.server.token(&self.email(who));
        self.server.run(
            Some(&token),
            &["change", verb, number, "--tenant", &self.tenant],
        )
    }

    fn change(&self, number: &str) -> serde_json::Value {
        self.server
            .get(&format!("/api/v1/tenants/{}/changes/{number}", self.tenant))
    }
}

fn number(c: &ChangeRequest) -> String {
    c.status
        .as_ref()
        .and_then(|s| s.observed.number.clone())
        .expect("a number")
}

fn condition(c: &ChangeRequest, type_: &str) -> Option<(String, String, String)> {
    let s = c.status.as_ref()?;
    let found = s.observed.conditions.iter().find(|k| k.type_ == type_)?;
    Some((
        found.status.clone(),
        found.reason.clone(),
        found.message.clone(),
    ))
}

fn succeeded(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn the_examples_apply_and_the_invalid_one_is_refused_naming_the_field() {
    let story = Story::new("examples").await;
    let dir = repo_root().join("examples");
    succeeded(&kubectl(&[
        "apply",
        "-n",
        &story.ns.name,
        "-f",
        &dir.to_string_lossy(),
    ]));
    let refused = kubectl(&[
        "apply",
        "-n",
        &story.ns.name,
        "-f",
        &dir.join("invalid").to_string_lossy(),
    ]);
    assert!(
        !refused.status.success(),
        "the invalid example was admitted"
    );
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("spec.type: Unsupported value: \"urgent\""),
        "the refusal names the field: {why}"
    );
    // The GitOps examples' ChangeRequests are admitted as they are.
    for gitops in ["gitops/argocd/shop", "gitops/flux/shop/change"] {
        succeeded(&kubectl(&[
            "apply",
            "--dry-run=server",
            "-n",
            &story.ns.name,
            "-f",
            &dir.join(gitops)
                .join("change-request.yaml")
                .to_string_lossy(),
        ]));
    }

    for name in ["web-2-4-1", "restart-web", "api-certificate"] {
        let c = story.synced(name).await;
        let n = number(&c);
        let change = story.change(&n);
        assert_eq!(
            change["requester"],
            story.email("eve").as_str(),
            "{name} is requested by the mapped kubectl user"
        );
        assert_eq!(
            c.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("changegate.dev/change")),
            Some(&n),
            "{name} names its change"
        );
    }
    // The standard change keeps to its template: approved at submission
    // (whether it may deploy today is the windows' business).
    let standard = story.synced("restart-web").await;
    assert_eq!(
        standard
            .status
            .as_ref()
            .and_then(|s| s.observed.phase.as_deref()),
        Some("approved")
    );
    let normal = story.synced("web-2-4-1").await;
    let status = &normal.status.as_ref().expect("status").observed;
    assert_eq!(status.approvals_needed, Some(2), "medium risk: two boards");
    assert_eq!(status.awaiting.len(), 2);
    assert_eq!(
        condition(&normal, "Ready").map(|(s, r, _)| (s, r)),
        Some(("False".into(), "AwaitingApproval".into()))
    );

    let listed = succeeded(&kubectl(&["get", "chg", "-n", &story.ns.name]));
    assert!(
        listed.contains("NUMBER")
            && listed.contains("PHASE")
            && listed.contains("awaiting-approval"),
        "{listed}"
    );
    let explained = succeeded(&kubectl(&["explain", "chg.spec.targets"]));
    assert!(explained.contains("images"), "{explained}");
    let windows = succeeded(&kubectl(&["get", "mw,rel", "-n", &story.ns.name]));
    assert!(
        windows.contains("client-a-weekly") && windows.contains("shop-2026-12-12"),
        "{windows}"
    );

    // The MaintenanceWindows are the tenant's windows on the server.
    let mw: Api<MaintenanceWindow> = Api::namespaced(admin().await, &story.ns.name);
    let weekly = wait_for(&mw, "client-a-weekly", "its next opening", SYNC, |w| {
        w.status
            .as_ref()
            .is_some_and(|s| s.next_open.is_some() || s.open == Some(true))
    })
    .await;
    assert!(
        weekly.status.as_ref().is_some_and(|s| s
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")),
        "{weekly:?}"
    );
    wait_for(
        &mw,
        "client-a-year-end-freeze",
        "on the server",
        SYNC,
        |w| w.status.as_ref().is_some_and(|s| s.open.is_some()),
    )
    .await;
    let on_server = story
        .server
        .get(&format!("/api/v1/tenants/{}/windows", story.tenant));
    let names: Vec<&str> = on_server
        .as_array()
        .expect("windows")
        .iter()
        .filter_map(|w| w["name"].as_str())
        .collect();
    assert!(
        names.contains(&"client-a-weekly") && names.contains(&"client-a-year-end-freeze"),
        "{on_server}"
    );
    // A change planned into that window: its next opening after the
    // resource's creation (or the one open then).
    let planned = "apiVersion: changegate.dev/v1\nkind: ChangeRequest\nmetadata: {name: in-the-window}\nspec:\n  \
                   title: Ship in the window\n  window: client-a-weekly\n  configurationItems: [web]\n  \
                   riskAnswers: {production: \"no\", outage: \"no\", untested: \"no\", no-backout: \"no\"}\n";
    let ns = story.ns.name.clone();
    wait_until("a ChangeRequest naming the window admitted", SYNC, || {
        let out = kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], planned);
        let seen = String::from_utf8_lossy(&out.stderr).into_owned();
        async move {
            if out.status.success() {
                Ok(())
            } else {
                Err(seen)
            }
        }
    })
    .await;
    let n = number(&story.synced("in-the-window").await);
    let content = story.change(&n)["content"].clone();
    let at = |v: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a planned time")).expect("RFC 3339")
    };
    let (start, end) = (at(&content["planned_start"]), at(&content["planned_end"]));
    assert_eq!(end - start, chrono::TimeDelta::hours(4), "{content}");
    let weekly_status = weekly.status.as_ref().expect("status");
    assert!(
        weekly_status.next_open.is_some_and(|t| t == start)
            || weekly_status.open_until.is_some_and(|t| t == end),
        "planned {start}..{end}, window {weekly_status:?}"
    );
    succeeded(&kubectl(&[
        "delete",
        "mw",
        "client-a-weekly",
        "-n",
        &story.ns.name,
    ]));
    wait_until("the deleted window gone from the server", SYNC, || {
        let windows = story
            .server
            .get(&format!("/api/v1/tenants/{}/windows", story.tenant))
            .to_string();
        async move {
            if windows.contains("client-a-weekly") {
                Err(windows)
            } else {
                Ok(())
            }
        }
    })
    .await;
}

#[tokio::test]
async fn an_approval_anywhere_reaches_status_and_an_editor_cannot_approve_their_revision() {
    let story = Story::new("approve").await;
    succeeded(&story.apply("normal-change.yaml"));
    let n = number(&story.synced("web-2-4-1").await);

    // Rita edits the spec (a new image): a new revision, by her.
    succeeded(&kubectl(&[
        "patch",
        "chg",
        "web-2-4-1",
        "-n",
        &story.ns.name,
        "--as=rita-k8s",
        "--as-group=system:masters",
        "--type=merge",
        "-p",
        r#"{"spec":{"targets":[{"kind":"Deployment","name":"web","images":["registry.example/shop/web:2.4.2"]}]}}"#,
    ]));
    let revised = wait_for(&story.chg, "web-2-4-1", "revision 2", SYNC, |c| {
        c.status
            .as_ref()
            .is_some_and(|s| s.observed.revision == Some(2))
    })
    .await;
    assert_eq!(
        revised
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("changegate.dev/edited-by"))
            .map(String::as_str),
        Some("rita-k8s")
    );
    assert_eq!(
        condition(&revised, "Ready").map(|(s, _, _)| s),
        Some("False".into())
    );
    let refused = story.decide("rita", "approve", &n);
    assert!(
        !refused.status.success(),
        "the editor approved her own revision"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("edited or submitted revision 2"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    succeeded(&story.decide("tom", "approve", &n));
    succeeded(&story.decide("carol", "approve", &n));
    let approved_at = Instant::now();
    let ready = wait_for(&story.chg, "web-2-4-1", "Ready", SYNC, |c| {
        condition(c, "Ready").is_some_and(|(s, _, _)| s == "True")
    })
    .await;
    eprintln!(
        "approval → Ready True in {} ms",
        approved_at.elapsed().as_millis()
    );
    let decisions = &ready.status.as_ref().expect("status").observed.decisions;
    assert!(
        decisions
            .iter()
            .any(|d| d.approver == story.email("carol") && d.channel == "api" && d.revision == 2),
        "{decisions:?}"
    );
    succeeded(&kubectl(&[
        "wait",
        "-n",
        &story.ns.name,
        "--for=condition=Ready",
        "chg/web-2-4-1",
        "--timeout=10s",
    ]));
    // What happened is in the resource's events.
    let ns = story.ns.name.clone();
    wait_until("the resource's events", SYNC, || {
        let out = kubectl(&["events", "-n", &ns, "--for", "changerequest/web-2-4-1"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        async move {
            if ["Raised", "Revised", "Approved"]
                .iter()
                .all(|r| text.contains(r))
            {
                Ok(())
            } else {
                Err(text)
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_rejection_stalls_and_deleting_a_change_not_started_cancels_it() {
    let story = Story::new("reject").await;
    succeeded(&story.apply("normal-change.yaml"));
    succeeded(&story.apply("standard-change.yaml"));
    let normal = number(&story.synced("web-2-4-1").await);
    let standard = number(&story.synced("restart-web").await);

    // Carol is the client's only business approver: her rejection decides.
    succeeded(&story.decide("carol", "reject", &normal));
    let stalled = wait_for(&story.chg, "web-2-4-1", "Stalled", SYNC, |c| {
        condition(c, "Stalled").is_some_and(|(s, _, _)| s == "True")
    })
    .await;
    assert_eq!(
        condition(&stalled, "Stalled").map(|(_, r, _)| r),
        Some("Rejected".into())
    );
    succeeded(&kubectl(&[
        "wait",
        "-n",
        &story.ns.name,
        "--for=condition=Stalled",
        "chg/web-2-4-1",
        "--timeout=10s",
    ]));

    succeeded(&kubectl(&[
        "delete",
        "chg",
        "restart-web",
        "-n",
        &story.ns.name,
    ]));
    wait_until("the deleted resource's change cancelled", SYNC, || {
        let state = story.change(&standard)["state"].clone();
        let n = standard.clone();
        async move {
            if state == "cancelled" {
                Ok(())
            } else {
                Err(format!("{n} is {state}"))
            }
        }
    })
    .await;
}

/// The Deployment `web` of the story's namespace with `image`, failing its
/// rollout after 15 s.
fn release_condition(r: &Release, type_: &str) -> Option<(String, String, String)> {
    let s = r.status.as_ref()?;
    let found = s.observed.conditions.iter().find(|k| k.type_ == type_)?;
    Some((
        found.status.clone(),
        found.reason.clone(),
        found.message.clone(),
    ))
}

fn phase(r: &Release) -> Option<String> {
    r.status.as_ref().and_then(|s| s.observed.phase.clone())
}

#[tokio::test]
async fn a_release_waits_for_its_changes_then_shows_the_servers_release_and_deleting_it_cancels() {
    let story = Story::new("release").await;
    succeeded(&story.apply("normal-change.yaml"));
    succeeded(&story.apply("standard-change.yaml"));
    succeeded(&story.apply("release.yaml"));
    let rel: Api<Release> = Api::namespaced(admin().await, &story.ns.name);
    let name = "shop-2026-12-12";

    // web-2-4-1 awaits approval: the server holds no release yet, and
    // status says what it waits for.
    let waiting = wait_for(&rel, name, "waiting for its changes", SYNC, |r| {
        phase(r).as_deref() == Some("waiting")
    })
    .await;
    let (ready, reason, message) = release_condition(&waiting, "Ready").expect("Ready");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "AwaitingApproval")
    );
    assert!(
        message.contains("web-2-4-1") && message.contains("awaiting-approval"),
        "{message}"
    );
    let listed = succeeded(&kubectl(&["get", "rel", "-n", &story.ns.name]));
    assert!(listed.contains("waiting"), "{listed}");

    // Approved by both boards: the release is planned on the server as
    // the resource's creator, and status follows it.
    let n = number(&story.synced("web-2-4-1").await);
    succeeded(&story.decide("tom", "approve", &n));
    succeeded(&story.decide("carol", "approve", &n));
    let planned = wait_for(&rel, name, "the server's release", SYNC, |r| {
        r.status
            .as_ref()
            .is_some_and(|s| s.observed.number.is_some())
    })
    .await;
    let status = &planned.status.as_ref().expect("status").observed;
    let number = status.number.clone().expect("REL-n");
    assert_eq!(status.phase.as_deref(), Some("planning"));
    assert_eq!(status.steps.len(), 3, "{status:?}");
    assert_eq!(
        planned
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("changegate.dev/release")),
        Some(&number)
    );
    assert_eq!(
        release_condition(&planned, "Ready").map(|(s, r, _)| (s, r)),
        Some(("False".into(), "Planning".into()))
    );
    let on_server = story.server.get(&format!("/api/v1/releases/{number}"));
    assert_eq!(
        on_server["owner"],
        story.email("eve").as_str(),
        "{on_server}"
    );
    assert_eq!(on_server["changes"].as_array().map(Vec::len), Some(2));

    // Rita (release manager) authorizes its plan with kubectl: her own
    // entry in status.authorizations, recorded through the one phase path
    // before it is admitted; status follows.
    succeeded(&kubectl(&[
        "create",
        "rolebinding",
        "rita-releases",
        "-n",
        &story.ns.name,
        "--clusterrole=changegate-release-manager",
        "--user=rita-k8s",
    ]));
    let authorize = |who: &str, phase: &str| {
        kubectl(&[
            "patch",
            "rel",
            name,
            "-n",
            &story.ns.name,
            "--subresource=status",
            "--type=merge",
            &format!("--as={who}"),
            "-p",
            &format!(
                r#"{{"status":{{"authorizations":{{"{who}":{{"{phase}":{{"note":"slot agreed"}}}}}}}}}}"#
            ),
        ])
    };
    let out = authorize("rita-k8s", "plan");
    let said = succeeded(&out) + &String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!(
            "{number}: phase plan recorded for {}",
            story.email("rita")
        )),
        "{said}"
    );
    wait_for(&rel, name, "phase build-and-test", SYNC, |r| {
        phase(r).as_deref() == Some("build-and-test")
    })
    .await;
    assert_eq!(story.change(&n)["state"], "scheduled");
    let on_server = story.server.get(&format!("/api/v1/releases/{number}"));
    assert_eq!(
        on_server["authorizations"][0]["by"],
        story.email("rita").as_str()
    );
    // Someone who may patch status but holds no `authorize` is refused,
    // saying so.
    succeeded(&kubectl(&[
        "create",
        "role",
        "release-status-patcher",
        "-n",
        &story.ns.name,
        "--verb=get,patch",
        "--resource=releases.changegate.dev/status",
    ]));
    succeeded(&kubectl(&[
        "create",
        "rolebinding",
        "carol-patches",
        "-n",
        &story.ns.name,
        "--role=release-status-patcher",
        "--user=carol",
    ]));
    let out = authorize("carol", "build-and-test");
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("does not hold the verb authorize"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Deleted before it deployed: the release is cancelled and its
    // changes are approved again, for another release.
    succeeded(&kubectl(&["delete", "rel", name, "-n", &story.ns.name]));
    wait_until("the release cancelled on the server", SYNC, || {
        let state = story.server.get(&format!("/api/v1/releases/{number}"))["state"].clone();
        async move {
            if state == "cancelled" {
                Ok(())
            } else {
                Err(state.to_string())
            }
        }
    })
    .await;
    assert_eq!(story.change(&n)["state"], "approved");
}

/// A change raised through the API for an item bound here appears as the
/// read-only mirror `chg-<n>` (DESIGN §7): nobody edits it or takes its
/// name, kubectl approval works on it like on any ChangeRequest, and
/// deleting it cancels nothing (it comes back). The tenant's windows show
/// as `mw-<name>` the same way.
#[tokio::test]
async fn a_change_raised_in_the_api_is_mirrored_read_only_and_approved_with_kubectl() {
    let story = Story::new("mirror").await;
    let ns = story.ns.name.clone();
    let eve = story.server.token(&story.email("eve"));
    let post = |path: &str, body: &serde_json::Value| {
        let out = std::process::Command::new("curl")
            .args(["-fsS", "-X", "POST", &format!("{}{path}", story.server.url)])
            .args(["-H", &format!("authorization: Bearer {eve}")])
            .args(["-H", "content-type: application/json"])
            .args(["-d", &body.to_string()])
            .output()
            .expect("curl");
        let text = succeeded(&out);
        serde_json::from_str::<serde_json::Value>(&text).expect("JSON")
    };
    let changes = format!("/api/v1/tenants/{}/changes", story.tenant);
    let raised = post(
        &changes,
        &serde_json::json!({
            "type": "normal", "title": "Raise the web shop's replicas",
            "risk_answers": { "production": "yes", "outage": "no", "untested": "no", "no-backout": "no" },
            "configuration_items": ["web"], "artifacts": ["registry.example/shop/web:2.5.0"],
            "implementation_plan": "helm upgrade", "backout_plan": "helm rollback",
        }),
    );
    let n = raised["number"].as_str().expect("a number").to_string();
    post(&format!("{changes}/{n}/submit"), &serde_json::json!({}));
    let name = n.to_ascii_lowercase();

    let mirror = wait_for(&story.chg, &name, "the mirror with its record", SYNC, |c| {
        c.status
            .as_ref()
            .is_some_and(|s| s.observed.number.as_deref() == Some(n.as_str()))
    })
    .await;
    assert_eq!(
        mirror
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("changegate.dev/origin"))
            .map(String::as_str),
        Some("server")
    );
    assert_eq!(mirror.spec.title, "Raise the web shop's replicas");
    let listed = succeeded(&kubectl(&["get", "chg", "-n", &ns]));
    assert!(
        listed.contains(&name) && listed.contains("awaiting-approval"),
        "{listed}"
    );

    // Read-only, its name reserved; refusals say why.
    refused(
        &kubectl(&[
            "patch",
            "chg",
            &name,
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"title":"Something else"}}"#,
        ]),
        "is read-only here",
    );
    refused(
        &kubectl_stdin(
            &["apply", "-n", &ns, "-f", "-"],
            "apiVersion: changegate.dev/v1\nkind: ChangeRequest\nmetadata: {name: chg-999999}\nspec:\n  title: Mine\n  configurationItems: [web]\n",
        ),
        "reserved for the mirror of CHG-999999",
    );

    // Tom in the CLI, Carol with kubectl on the mirror: approved.
    succeeded(&story.decide("tom", "approve", &n));
    succeeded(&kubectl(&[
        "create",
        "rolebinding",
        "carol-approves",
        "-n",
        &ns,
        "--clusterrole=changegate-approver",
        "--user=carol",
    ]));
    succeeded(&kubectl(&[
        "patch",
        "chg",
        &name,
        "-n",
        &ns,
        "--subresource=status",
        "--type=merge",
        "--as=carol",
        "-p",
        &entry("carol", "Approved"),
    ]));
    assert_eq!(story.change(&n)["state"], "approved");
    let approved = wait_for(&story.chg, &name, "the mirror approved", SYNC, |c| {
        c.status.as_ref().is_some_and(|s| {
            s.observed.phase.as_deref() == Some("approved")
                && s.observed
                    .decisions
                    .iter()
                    .any(|d| d.channel == "kubernetes")
        })
    })
    .await;

    // Deleted, it comes back; the change is as it was.
    succeeded(&kubectl(&["delete", "chg", &name, "-n", &ns]));
    let old = approved.metadata.uid.clone();
    wait_for(&story.chg, &name, "the mirror back", SYNC, |c| {
        c.metadata.uid != old
            && c.status
                .as_ref()
                .is_some_and(|s| s.observed.phase.as_deref() == Some("approved"))
    })
    .await;
    assert_eq!(
        story.change(&n)["state"],
        "approved",
        "deleting the mirror cancelled nothing"
    );

    // The tenant's window, written on the server, shows as mw-<name>.
    let put = std::process::Command::new("curl")
        .args(["-fsS", "-X", "PUT"])
        .arg(format!("{}/api/v1/tenants/{}/windows/nightly", story.server.url, story.tenant))
        .args(["-H", &format!("authorization: Bearer {}", story.server.token(&story.email("rita")))])
        .args(["-H", "content-type: application/json"])
        .args(["-d", r#"{"timeZone": "Europe/Berlin", "schedule": {"cron": {"expr": "0 1 * * *", "duration": "2h"}}, "exclusions": [{"date": "2026-12-24"}]}"#])
        .output()
        .expect("curl");
    succeeded(&put);
    let windows: Api<MaintenanceWindow> = Api::namespaced(admin().await, &ns);
    let mirror = wait_for(
        &windows,
        "mw-nightly",
        "the window's mirror with its status",
        SYNC,
        |w| {
            w.status
                .as_ref()
                .is_some_and(|s| s.next_open.is_some() || s.open == Some(true))
        },
    )
    .await;
    assert_eq!(mirror.spec.schedule.cron.as_deref(), Some("0 1 * * *"));
    assert_eq!(mirror.spec.exclusions.len(), 1, "{:?}", mirror.spec);
    refused(
        &kubectl(&[
            "patch",
            "mw",
            "mw-nightly",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"duration":"9h"}}"#,
        ]),
        "is read-only here",
    );
    succeeded(&kubectl(&["delete", "mw", "mw-nightly", "-n", &ns]));
    let old = mirror.metadata.uid.clone();
    wait_for(
        &windows,
        "mw-nightly",
        "the window's mirror back",
        SYNC,
        |w| w.metadata.uid != old,
    )
    .await;
    let still = story
        .server
        .get(&format!("/api/v1/tenants/{}/windows", story.tenant));
    assert!(
        still.to_string().contains("nightly"),
        "deleting the mirror removed the window: {still}"
    );
}

/// `kubectl patch chg NAME --subresource=status` of `who`'s entry (the
/// documented approval patch), as `who`; `extra` arguments after it.
fn patch_approval(story: &Story, who: &str, body: &str, extra: &[&str]) -> Output {
    let as_who = format!("--as={who}");
    let mut args = vec![
        "patch",
        "chg",
        "web-2-4-1",
        "-n",
        &story.ns.name,
        "--subresource=status",
        "--type=merge",
        "-p",
        body,
        as_who.as_str(),
    ];
    args.extend_from_slice(extra);
    kubectl(&args)
}

fn refused(out: &Output, why: &str) {
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains(why),
        "expected a refusal saying {why:?}, got: {}{said}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn entry(user: &str, decision: &str) -> String {
    format!(
        r#"{{"status":{{"approvals":{{"{user}":{{"decision":"{decision}","comment":"looks good"}}}}}}}}"#
    )
}

#[tokio::test]
async fn an_approver_decides_with_kubectl_and_every_refusal_says_why() {
    let story = Story::new("kubectl").await;
    let ns = story.ns.name.clone();
    for (user, role) in [
        ("carol", "changegate-approver"),
        ("mallory", "changegate-approver"),
    ] {
        succeeded(&kubectl(&[
            "create",
            "rolebinding",
            &format!("{user}-approves"),
            "-n",
            &ns,
            &format!("--clusterrole={role}"),
            &format!("--user={user}"),
        ]));
    }
    // Pat may patch status but holds no `approve`.
    succeeded(&kubectl(&[
        "create",
        "role",
        "status-patcher",
        "-n",
        &ns,
        "--verb=get,patch",
        "--resource=changerequests.changegate.dev/status",
    ]));
    succeeded(&kubectl(&[
        "create",
        "rolebinding",
        "pat-patches",
        "-n",
        &ns,
        "--role=status-patcher",
        "--user=pat",
    ]));
    succeeded(&story.apply("normal-change.yaml"));
    let n = number(&story.synced("web-2-4-1").await);
    let carols = || {
        story
            .server
            .get(&format!(
                "/api/v1/tenants/{}/changes/{n}/approvals",
                story.tenant
            ))
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|x| x["approver"] == story.email("carol").as_str())
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };

    // Each refusal says why, and nothing is recorded.
    refused(
        &patch_approval(&story, "pat", &entry("pat", "Approved"), &[]),
        "does not hold the verb approve",
    );
    refused(
        &patch_approval(&story, "mallory", &entry("mallory", "Approved"), &[]),
        "is not mapped to a user of tenant",
    );
    refused(
        &patch_approval(&story, "carol", &entry("dan", "Approved"), &[]),
        "you may write only your own entry",
    );
    refused(
        &patch_approval(
            &story,
            "system:serviceaccount:kube-system:default",
            &entry("system:serviceaccount:kube-system:default", "Approved"),
            &["--as-group=system:masters"],
        ),
        "only people approve",
    );
    // The requester (the admin's kubectl user is Eve) never decides her own change.
    refused(
        &patch_approval(
            &story,
            "changegate-admin",
            &entry("changegate-admin", "Approved"),
            &["--as-group=system:masters"],
        ),
        "changegate:",
    );
    // A dry run answers what would happen and records nothing.
    let dry = patch_approval(
        &story,
        "carol",
        &entry("carol", "Approved"),
        &["--dry-run=server"],
    );
    let said = succeeded(&dry) + &String::from_utf8_lossy(&dry.stderr);
    assert!(said.contains("would be recorded (dry run)"), "{said}");
    assert!(carols().is_empty(), "a dry run recorded {:?}", carols());

    // Carol (the documented patch) and Rita (a technical approver here,
    // with the plugin: `kubectl changegate approve`) decide at the same
    // moment: both count, each recorded with channel kubernetes.
    succeeded(&kubectl(&[
        "create",
        "rolebinding",
        "rita-approves",
        "-n",
        &ns,
        "--clusterrole=changegate-approver",
        "--user=rita-k8s",
    ]));
    let (approved, plugin) = std::thread::scope(|s| {
        let carol = s.spawn(|| patch_approval(&story, "carol", &entry("carol", "Approved"), &[]));
        let rita = s.spawn(|| {
            kubectl_plugin(&[
                "approve",
                "chg/web-2-4-1",
                "-n",
                &ns,
                "--as",
                "rita-k8s",
                "-m",
                "checked",
            ])
        });
        (
            carol.join().expect("carol's patch"),
            rita.join().expect("rita's plugin"),
        )
    });
    let said = succeeded(&approved) + &String::from_utf8_lossy(&approved.stderr);
    assert!(
        said.contains(&format!(
            "{n} revision 1: approve recorded for {}",
            story.email("carol")
        )),
        "{said}"
    );
    let said = succeeded(&plugin);
    assert!(
        said.contains(&format!(
            "{n} revision 1: approve recorded for {}",
            story.email("rita")
        )),
        "{said}{}",
        String::from_utf8_lossy(&plugin.stderr)
    );
    let recorded = carols();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0]["channel"], "kubernetes");
    let ready = wait_for(
        &story.chg,
        "web-2-4-1",
        "Ready, both in decisions[]",
        SYNC,
        |c| {
            condition(c, "Ready").is_some_and(|(s, _, _)| s == "True")
                && c.status.as_ref().is_some_and(|s| {
                    s.observed
                        .decisions
                        .iter()
                        .filter(|d| d.channel == "kubernetes")
                        .count()
                        == 2
                })
        },
    )
    .await;
    assert_eq!(story.change(&n)["state"], "approved", "{ready:?}");
    // The same entry again is no second decision.
    refused(
        &patch_approval(&story, "carol", &entry("carol", "Approved"), &[]),
        "already says this",
    );
    assert_eq!(carols().len(), 1);
    let out = kubectl_plugin(&["approve", "chg/web-2-4-1", "-n", &ns, "--as", "mallory"]);
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("is not mapped to a user of tenant"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A material edit (Eve, a new image): revision 2 awaits approval again,
    // and Carol replaces her entry for it.
    succeeded(&kubectl(&[
        "patch",
        "chg",
        "web-2-4-1",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"targets":[{"kind":"Deployment","name":"web","images":["registry.example/shop/web:2.4.2"]}]}}"#,
    ]));
    wait_for(&story.chg, "web-2-4-1", "revision 2", SYNC, |c| {
        c.status
            .as_ref()
            .is_some_and(|s| s.observed.revision == Some(2))
    })
    .await;
    let again = patch_approval(
        &story,
        "carol",
        r#"{"status":{"approvals":{"carol":{"decision":"Approved","revision":2,"comment":"still fine"}}}}"#,
        &[],
    );
    let said = succeeded(&again) + &String::from_utf8_lossy(&again.stderr);
    assert!(
        said.contains(&format!("{n} revision 2: approve recorded")),
        "{said}"
    );
    let revisions: Vec<i64> = carols()
        .iter()
        .filter_map(|a| a["revision"].as_i64())
        .collect();
    assert_eq!(revisions, vec![1, 2]);
}

/// A validating webhook of the test's own on `changerequests/status` in
/// one namespace that denies Carol's first real (not dry-run) request and
/// admits the rest: the API server failing a patch after changegate's
/// webhook admitted (and recorded) it. Unregistered when dropped.
struct DenyOnce {
    name: String,
    seen: std::sync::Arc<std::sync::atomic::AtomicBool>,
    denied: std::sync::Arc<std::sync::atomic::AtomicU32>,
    handle: axum_server::Handle<std::net::SocketAddr>,
}

impl DenyOnce {
    async fn start(ns: &str) -> DenyOnce {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
        let now = time::OffsetDateTime::now_utc();
        let lifetimes = changegate_agent::webhook::certs::Lifetimes::default();
        let ca = changegate_agent::webhook::certs::generate_ca(now, &lifetimes).expect("a CA");
        let serving = changegate_agent::webhook::certs::issue_serving(
            &ca,
            &["127.0.0.1".to_string()],
            now,
            &lifetimes,
        )
        .expect("a serving certificate");
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
            serving.cert_pem.into_bytes(),
            serving.key_pem.into_bytes(),
        )
        .await
        .expect("TLS");
        let seen = Arc::new(AtomicBool::new(false));
        let denied = Arc::new(AtomicU32::new(0));
        let (s, d) = (seen.clone(), denied.clone());
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(move |body: axum::Json<serde_json::Value>| {
                let (seen, denied) = (s.clone(), d.clone());
                async move {
                    let request = &body.0["request"];
                    // Only Carol's patches: the operator writes status in
                    // this namespace too, at moments of its own.
                    let carols = request["userInfo"]["username"] == "carol";
                    if carols {
                        seen.store(true, Ordering::SeqCst);
                    }
                    let dry = request["dryRun"].as_bool().unwrap_or(false);
                    let allowed = dry || !carols || denied.fetch_add(1, Ordering::SeqCst) > 0;
                    axum::Json(serde_json::json!({
                        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                        "response": { "uid": request["uid"], "allowed": allowed,
                                      "status": { "message": "the e2e test's webhook denies this once" } }
                    }))
                }
            }),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("an address").port();
        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp_rustls(listener, tls)
            .expect("a TLS listener")
            .handle(handle.clone())
            .serve(app.into_make_service());
        tokio::spawn(server);
        let name = format!("{ns}-deny-once");
        let config = serde_json::json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": { "name": name },
            "webhooks": [{ "name": "deny-once.e2e.changegate.dev",
                "clientConfig": { "url": format!("https://127.0.0.1:{port}/"),
                                  "caBundle": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, ca.cert_pem) },
                "rules": [{ "operations": ["UPDATE"], "apiGroups": ["changegate.dev"], "apiVersions": ["v1"],
                            "resources": ["changerequests/status"], "scope": "Namespaced" }],
                "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": ns } },
                "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 10 }]
        });
        succeeded(&kubectl_stdin(&["apply", "-f", "-"], &config.to_string()));
        DenyOnce {
            name,
            seen,
            denied,
            handle,
        }
    }
}

impl Drop for DenyOnce {
    fn drop(&mut self) {
        kubectl(&[
            "delete",
            "validatingwebhookconfiguration",
            &self.name,
            "--ignore-not-found",
            "--wait=false",
        ]);
        self.handle.shutdown();
    }
}

// Multi-threaded: the test's own webhook answers while kubectl blocks one thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_the_api_server_fails_after_the_server_recorded_it_is_answered_the_same_when_retried()
 {
    use std::sync::atomic::Ordering;
    let story = Story::new("retry").await;
    let ns = story.ns.name.clone();
    succeeded(&kubectl(&[
        "create",
        "rolebinding",
        "carol-approves",
        "-n",
        &ns,
        "--clusterrole=changegate-approver",
        "--user=carol",
    ]));
    succeeded(&story.apply("normal-change.yaml"));
    let n = number(&story.synced("web-2-4-1").await);
    let deny = DenyOnce::start(&ns).await;
    // Dry runs (recording nothing) until the API server calls the new webhook.
    wait_until("the test's webhook in force", SYNC, || {
        let out = patch_approval(
            &story,
            "carol",
            &entry("carol", "Approved"),
            &["--dry-run=server"],
        );
        let seen = deny.seen.load(Ordering::SeqCst);
        async move {
            if seen && out.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        }
    })
    .await;
    let approvals = || {
        story.server.get(&format!(
            "/api/v1/tenants/{}/changes/{n}/approvals",
            story.tenant
        ))
    };
    // changegate's webhook records the decision; the API server then
    // fails the patch (the other webhook): nothing in status.approvals.
    refused(
        &patch_approval(&story, "carol", &entry("carol", "Approved"), &[]),
        "denies this once",
    );
    assert_eq!(deny.denied.load(Ordering::SeqCst), 1);
    assert_eq!(approvals().as_array().map(Vec::len), Some(1));
    // Carol retries the same patch: answered as recorded, recorded once.
    let retried = patch_approval(&story, "carol", &entry("carol", "Approved"), &[]);
    let said = succeeded(&retried) + &String::from_utf8_lossy(&retried.stderr);
    assert!(
        said.contains(&format!("{n} revision 1: approve recorded")),
        "{said}"
    );
    let recorded = approvals();
    assert_eq!(recorded.as_array().map(Vec::len), Some(1), "{recorded}");
    assert_eq!(recorded[0]["channel"], "kubernetes");
}

/// Stops the shared server, so it runs alone after the others.
#[tokio::test]
async fn serial_an_approval_while_the_server_is_down_is_refused_saying_why_and_records_nothing() {
    let story = Story::new("approve-outage").await;
    let ns = story.ns.name.clone();
    succeeded(&kubectl(&[
        "create",
        "rolebinding",
        "carol-approves",
        "-n",
        &ns,
        "--clusterrole=changegate-approver",
        "--user=carol",
    ]));
    succeeded(&story.apply("normal-change.yaml"));
    let n = number(&story.synced("web-2-4-1").await);
    let stopped = StoppedServer::stop();
    refused(
        &patch_approval(&story, "carol", &entry("carol", "Approved"), &[]),
        "approve in the portal or try again",
    );
    let status = succeeded(&kubectl(&[
        "get",
        "chg",
        "web-2-4-1",
        "-n",
        &ns,
        "-o",
        "jsonpath={.status.approvals}",
    ]));
    assert_eq!(status.trim(), "", "nothing written in status");
    stopped.start().await;
    let approvals = story.server.get(&format!(
        "/api/v1/tenants/{}/changes/{n}/approvals",
        story.tenant
    ));
    assert_eq!(approvals, serde_json::json!([]), "nothing recorded");
    // Once it is back, the same patch is recorded.
    let out = patch_approval(&story, "carol", &entry("carol", "Approved"), &[]);
    let said = succeeded(&out) + &String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("approve recorded"), "{said}");
}

fn apply_web(story: &Story, image: &str) -> Output {
    let deployment = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": story.ns.name, "labels": {"app": "web"}},
        "spec": {"replicas": 1, "progressDeadlineSeconds": 15,
                 "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": image}]}}}});
    kubectl_stdin(
        &["apply", "--server-side", "--field-manager=e2e", "-f", "-"],
        &deployment.to_string(),
    )
}

/// A ChangeRequest `name` shipping `image` to Deployment web, backed out
/// automatically; approved by Tom and Carol once synced.
async fn approved_change(story: &Story, name: &str, image: &str) -> String {
    let chg = format!(
        "apiVersion: changegate.dev/v1\nkind: ChangeRequest\nmetadata: {{name: {name}}}\nspec:\n  title: Ship {image}\n  \
         riskAnswers: {{production: \"yes\", outage: \"no\", untested: \"no\", no-backout: \"no\"}}\n  \
         targets: [{{kind: Deployment, name: web, images: [\"{image}\"]}}]\n  \
         backout: {{plan: roll back, automatic: true}}\n"
    );
    succeeded(&kubectl_stdin(
        &["apply", "-n", &story.ns.name, "-f", "-"],
        &chg,
    ));
    let n = number(&story.synced(name).await);
    succeeded(&story.decide("tom", "approve", &n));
    succeeded(&story.decide("carol", "approve", &n));
    wait_for(&story.chg, name, "Ready", SYNC, |c| {
        condition(c, "Ready").is_some_and(|(s, _, _)| s == "True")
    })
    .await;
    n
}

#[tokio::test]
async fn rollouts_and_the_automatic_rollback_are_written_back_onto_the_resource() {
    let story = Story::new("rollout").await;
    let first = approved_change(&story, "web-1", "registry.example/shop/web:1").await;
    succeeded(&apply_web(&story, "registry.example/shop/web:1"));
    let shipped = wait_for(
        &story.chg,
        "web-1",
        "its rollout succeeded",
        Duration::from_secs(90),
        |c| {
            c.status.as_ref().is_some_and(|s| {
                s.observed
                    .rollout
                    .first()
                    .is_some_and(|r| r.state == "succeeded")
            })
        },
    )
    .await;
    let rollout = &shipped.status.as_ref().expect("status").observed.rollout[0];
    assert_eq!(rollout.workload, "Deployment/web");
    assert_eq!(rollout.images, ["registry.example/shop/web:1"]);
    assert!(rollout.started_at.is_some() && rollout.finished_at.is_some());
    assert_ne!(story.change(&first)["state"], "implementing");

    let second = approved_change(&story, "web-2", "registry.example/shop/web:2-fail").await;
    succeeded(&apply_web(&story, "registry.example/shop/web:2-fail"));
    let undone = wait_for(
        &story.chg,
        "web-2",
        "the failed rollout and its rollback",
        Duration::from_secs(120),
        |c| {
            c.status.as_ref().is_some_and(|s| {
                s.observed.rollback.is_some()
                    && s.observed
                        .rollout
                        .first()
                        .is_some_and(|r| r.state == "failed")
                    && s.observed.phase.as_deref() == Some("rolled-back")
            })
        },
    )
    .await;
    let status = &undone.status.as_ref().expect("status").observed;
    let rollback = status.rollback.as_ref().expect("a rollback");
    assert!(rollback.restored_revision.is_some(), "{rollback:?}");
    assert_eq!(story.change(&second)["state"], "rolled-back");
    assert_eq!(
        condition(&undone, "Stalled").map(|(s, r, _)| (s, r)),
        Some(("True".into(), "Failed".into()))
    );
}

#[tokio::test]
async fn a_spec_the_bundle_refuses_is_refused_at_apply_naming_the_field() {
    let story = Story::new("refused").await;
    // Once the bundle holds the tenant, a target nothing binds is refused.
    let unbound = "apiVersion: changegate.dev/v1\nkind: ChangeRequest\nmetadata: {name: ship-cart}\nspec:\n  title: Ship the cart\n  \
                   targets: [{kind: Deployment, name: cart, images: [registry.example/shop/cart:1]}]\n";
    let ns = story.ns.name.clone();
    let why = wait_until("the unbound target refused", SYNC, || {
        let out = kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], unbound);
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        let refused = !out.status.success() && text.contains("spec.targets[0]");
        if !refused {
            // Admitted before the bundle held the tenant: try again.
            let _ = kubectl(&[
                "delete",
                "chg",
                "ship-cart",
                "-n",
                &ns,
                "--ignore-not-found",
            ]);
        }
        let seen = format!("{}{text}", String::from_utf8_lossy(&out.stdout));
        async move { if refused { Ok(text) } else { Err(seen) } }
    })
    .await;
    assert!(
        why.contains("name: cart") && why.contains("changegate apply -f"),
        "says which binding to add: {why}"
    );
    let bad_zone = "apiVersion: changegate.dev/v1\nkind: MaintenanceWindow\nmetadata: {name: mars}\nspec:\n  timeZone: Mars/Olympus\n  \
                    schedule: {cron: '0 2 * * SAT'}\n  duration: 4h\n";
    let out = kubectl_stdin(&["apply", "-n", &story.ns.name, "-f", "-"], bad_zone);
    assert!(!out.status.success(), "a window on Mars was admitted");
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(why.contains("spec.timeZone"), "{why}");
    // A template the tenant does not have, and a creator the cluster maps
    // to nobody of the tenant: refused at apply, naming the field.
    let template = "apiVersion: changegate.dev/v1\nkind: ChangeRequest\nmetadata: {name: reboot}\nspec:\n  type: standard\n  \
                    title: Reboot\n  template: reboot-everything\n  configurationItems: [web]\n";
    let out = kubectl_stdin(&["apply", "-n", &story.ns.name, "-f", "-"], template);
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && why.contains("spec.template") && why.contains("restart-web"),
        "{why}"
    );
    let stranger = "apiVersion: changegate.dev/v1\nkind: ChangeRequest\nmetadata: {name: strangers}\nspec:\n  title: A stranger's change\n  \
                    configurationItems: [web]\n";
    let out = kubectl_stdin(
        &[
            "apply",
            "-n",
            &story.ns.name,
            "--as=stranger",
            "--as-group=system:masters",
            "-f",
            "-",
        ],
        stranger,
    );
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && why.contains("metadata.annotations[changegate.dev/requested-by]")
            && why.contains("Kubernetes user stranger of cluster local is not mapped"),
        "{why}"
    );
}

/// A process of `make up` (`server` or `operator`), stopped and started
/// again with its own command line and environment (the server on the
/// same database).
pub(crate) struct StoppedServer {
    what: &'static str,
    args: Vec<String>,
    vars: Vec<(String, String)>,
    started: bool,
}

impl Drop for StoppedServer {
    /// A test that failed with the server down leaves it running for the
    /// next one (and for `make down`).
    fn drop(&mut self) {
        if !self.started {
            let _ = self.spawn();
        }
    }
}

impl StoppedServer {
    fn stop() -> StoppedServer {
        Self::stop_process("server")
    }

    pub(crate) fn stop_process(what: &'static str) -> StoppedServer {
        let pid_file = repo_root().join(format!(".cluster/{what}.pid"));
        let pid: u32 = std::fs::read_to_string(&pid_file)
            .expect("make up's server pid")
            .trim()
            .parse()
            .expect("a pid");
        let split = |bytes: Vec<u8>| -> Vec<String> {
            bytes
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        };
        let args = split(std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline"));
        let vars = split(std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default())
            .into_iter()
            .filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        std::process::Command::new("kill")
            .arg(pid.to_string())
            .status()
            .expect("kill");
        // Gone, or a zombie of this test process (one an earlier test here
        // started again) that nobody reaps.
        let running = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit(')')
                    .next()
                    .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
            })
        };
        while running() {
            std::thread::sleep(Duration::from_millis(20));
        }
        StoppedServer {
            what,
            args,
            vars,
            started: false,
        }
    }

    /// Starts the server's process again, writing its pid file. It is
    /// `make up`'s server from then on (`make down` stops it by that
    /// file), never waited on here.
    #[allow(clippy::zombie_processes)]
    fn spawn(&mut self) -> std::io::Result<()> {
        self.started = true;
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(repo_root().join(format!(".cluster/logs/{}.log", self.what)))?;
        let child = std::process::Command::new(&self.args[0])
            .args(&self.args[1..])
            .env_clear()
            .envs(self.vars.clone())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        std::fs::write(
            repo_root().join(format!(".cluster/{}.pid", self.what)),
            child.id().to_string(),
        )
    }

    /// Starts it again; returns once it answers.
    pub(crate) async fn start(mut self) {
        self.spawn().expect("start it again");
        let url = match self.what {
            "server" => format!("{}/readyz", server().url),
            _ => "http://127.0.0.1:9080/readyz".to_string(),
        };
        wait_until("it to answer again", SYNC, || {
            let ok = std::process::Command::new("curl")
                .args(["-fsS", &url])
                .output()
                .is_ok_and(|o| o.status.success());
            async move {
                if ok {
                    Ok(())
                } else {
                    Err("not yet".to_string())
                }
            }
        })
        .await;
    }
}

/// Stops the shared server, so it runs alone: `make test-e2e` runs the
/// `serial_` tests after the others, one at a time.
#[tokio::test]
async fn serial_an_edit_applied_while_the_server_is_down_reaches_it_once_it_is_back() {
    let story = Story::new("outage").await;
    succeeded(&story.apply("normal-change.yaml"));
    let n = number(&story.synced("web-2-4-1").await);

    let stopped = StoppedServer::stop();
    // Admitted without the server: the webhooks judge from what they hold.
    succeeded(&kubectl(&[
        "patch",
        "chg",
        "web-2-4-1",
        "-n",
        &story.ns.name,
        "--type=merge",
        "-p",
        r#"{"spec":{"targets":[{"kind":"Deployment","name":"web","images":["registry.example/shop/web:2.4.2"]}]}}"#,
    ]));
    let unsynced = wait_for(&story.chg, "web-2-4-1", "Synced False", SYNC, |c| {
        condition(c, "Synced").is_some_and(|(s, _, _)| s == "False")
    })
    .await;
    let (_, reason, message) = condition(&unsynced, "Synced").expect("Synced");
    assert_eq!(reason, "ServerUnavailable");
    assert!(
        message.contains("cannot reach the changegate server"),
        "{message}"
    );
    assert_eq!(
        unsynced
            .status
            .as_ref()
            .and_then(|s| s.observed.observed_generation),
        Some(1),
        "the server still holds generation 1"
    );

    stopped.start().await;
    let synced = wait_for(
        &story.chg,
        "web-2-4-1",
        "the edit on the server",
        SYNC,
        |c| {
            c.status
                .as_ref()
                .is_some_and(|s| s.observed.revision == Some(2))
                && condition(c, "Synced").is_some_and(|(s, _, _)| s == "True")
        },
    )
    .await;
    assert_eq!(number(&synced), n, "the same change");
    assert_eq!(
        story.change(&n)["content"]["artifacts"],
        serde_json::json!(["registry.example/shop/web:2.4.2"]),
        "nothing lost"
    );
}

/// Stops the shared operator, so it runs alone after the others.
#[tokio::test]
async fn serial_a_change_request_deleted_while_the_operator_is_down_cancels_its_change() {
    let story = Story::new("sweep").await;
    succeeded(&story.apply("normal-change.yaml"));
    let n = number(&story.synced("web-2-4-1").await);
    let stopped = StoppedServer::stop_process("operator");
    succeeded(&kubectl(&[
        "delete",
        "chg",
        "web-2-4-1",
        "-n",
        &story.ns.name,
    ]));
    assert_eq!(
        story.change(&n)["state"],
        "awaiting-approval",
        "nobody watched"
    );
    stopped.start().await;
    wait_until(
        "the change of the resource deleted meanwhile cancelled",
        SYNC,
        || {
            let state = story.change(&n)["state"].clone();
            let n = n.clone();
            async move {
                if state == "cancelled" {
                    Ok(())
                } else {
                    Err(format!("{n} is {state}"))
                }
            }
        },
    )
    .await;
}
