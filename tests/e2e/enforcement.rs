//! The agent enforcing the server's approvals on the local control plane
//! (DESIGN §7): a real server (`make up`), the agent long-polling its
//! bundle, and Deployment updates through the real API server.

use crate::support::tenant::outcome;
use crate::support::{Setup, Tenant, wait_until};
use chrono::{Duration as Span, SubsecRound, Utc};
use serde_json::Value;
use std::time::Duration;

const V2: &str =
    "example.com/web@sha256:2222222222222222222222222222222222222222222222222222222222222222";
const V2B: &str =
    "example.com/web@sha256:2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b";
const V3: &str =
    "example.com/web@sha256:3333333333333333333333333333333333333333333333333333333333333333";

#[tokio::test]
async fn an_update_waits_for_approval_ships_only_the_approved_digest_and_stops_when_the_window_closes()
 {
    // The window closes a minute from now: long enough for the approval
    // to reach the agent, short enough to watch it close.
    let closes = (Utc::now() + Span::seconds(60)).trunc_subsecs(0);
    let t = Tenant::new(
        "enforce",
        Setup {
            window: Some((Utc::now() - Span::hours(1), closes)),
            ..Setup::default()
        },
    )
    .await;
    let number = t.raise(&[V2]);

    let refused = outcome(&t.apply_web(V2, false)).expect_err("refused while awaiting approval");
    assert!(
        refused.contains(&format!(
            "denied the request: changegate: {number} awaits 1 approval from client"
        )),
        "{refused}"
    );

    let approved = std::time::Instant::now();
    t.approve(&number);
    // Once the approval reaches the agent, only the approved digest ships.
    t.refused_eventually(
        "the approval to reach the agent",
        V3,
        &format!("{number} approved {V2}; {V3} is not approved content"),
    )
    .await;
    t.admitted_eventually("the approved digest to be admitted", V2)
        .await;
    let took = approved.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "the approval reached the agent after {took:?}"
    );
    eprintln!("approval → admitted on the agent: {took:?}");
    // The agent follows the rollout and reports it: the change is implemented.
    wait_until(
        "the change to be implemented",
        Duration::from_secs(30),
        || {
            let state = t.state_of(&number);
            async move {
                if matches!(state.as_str(), "implemented" | "closed") {
                    Ok(())
                } else {
                    Err(state)
                }
            }
        },
    )
    .await;
    let recorded: Vec<Value> = t.deployments();
    assert!(
        recorded.iter().any(|d| d["event"] == "deployment.recorded"
            && d["subject"] == number.as_str()
            && d["actor"] == "agent of local"),
        "{recorded:?}"
    );

    // Its change is done: another digest needs a change of its own.
    let refused = outcome(&t.apply_web(V3, false)).expect_err("another digest is refused");
    assert!(
        refused.contains(&format!("no change of {} covers", t.name)),
        "{refused}"
    );
    // Scaling is not a change: admitted whatever the approvals.
    let scaled =
        crate::support::kubectl(&["scale", "deployment/web", "--replicas=2", "-n", &t.ns.name]);
    assert!(
        scaled.status.success(),
        "{}",
        String::from_utf8_lossy(&scaled.stderr)
    );

    // A second change, approved; once the window closes it is refused.
    let second = t.raise(&[V2B]);
    t.approve(&second);
    let inside = outcome(&t.apply_web(V2B, true));
    assert!(
        inside.is_ok() || Utc::now() >= closes,
        "inside the window the approved digest ships: {inside:?}"
    );
    let refused = t
        .refused_eventually(
            "the window to close",
            V2B,
            &format!("{second} is approved but"),
        )
        .await;
    assert!(
        Utc::now() >= closes,
        "refused before the window closed: {refused}"
    );
    assert!(
        refused.contains("no maintenance window is open"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_change_past_a_non_enforcing_tenant_is_reported_unauthorized() {
    // Enforcement Off: the webhook admits everything, as if bypassed; the
    // agent still judges what it sees and reports it to the server.
    let t = Tenant::new(
        "bypass",
        Setup {
            enforcement: "Off",
            ..Setup::default()
        },
    )
    .await;
    let said = t
        .admitted_eventually("an unapproved digest admitted", V3)
        .await;
    eprintln!("admitted with enforcement off after {said:?}");
    let recorded = wait_until(
        "the unauthorized change on the server",
        Duration::from_secs(30),
        || {
            let recorded = t.deployments();
            async move {
                match recorded
                    .iter()
                    .find(|d| d["event"] == "deployment.unauthorized")
                {
                    Some(d) => Ok(d.clone()),
                    None => Err(format!("{recorded:?}")),
                }
            }
        },
    )
    .await;
    assert_eq!(recorded["actor"], "agent of local", "{recorded}");
    assert_eq!(
        recorded["detail"]["artifacts"],
        serde_json::json!([V3]),
        "{recorded}"
    );
    assert!(
        recorded["detail"]["note"]
            .as_str()
            .is_some_and(|n| n.contains("no change of")),
        "{recorded}"
    );
}

#[tokio::test]
async fn one_tenants_approval_never_admits_another_tenants_workload() {
    let a = Tenant::new("tenant-a", Setup::default()).await;
    // Tenant B binds an item of its own to A's Deployment and approves a
    // change for it: A's namespace belongs to A, so only A's approvals count.
    let b = Tenant::new(
        "tenant-b",
        Setup {
            bind_to: Some(a.ns.name.clone()),
            ..Setup::default()
        },
    )
    .await;
    let theirs = b.raise(&[V2]);
    b.approve(&theirs);
    let own = b.raise(&[V3]);
    b.approve(&own);
    // B's own namespace is not bound to B's item, so B's update there is
    // not governed; A's update of V2 stays refused, naming no change of B.
    let refused = a
        .refused_eventually(
            "A's update to stay refused after B's approval",
            V2,
            &format!("no change of {}", a.name),
        )
        .await;
    assert!(
        !refused.contains(&theirs) || !refused.contains(&b.name),
        "{refused}"
    );

    // A approves its own change: now it ships.
    let mine = a.raise(&[V2]);
    a.approve(&mine);
    a.admitted_eventually("A's own approval to admit it", V2)
        .await;
}

#[tokio::test]
async fn warn_mode_admits_with_the_refusal_as_a_warning() {
    let t = Tenant::new(
        "warn",
        Setup {
            enforcement: "Warn",
            ..Setup::default()
        },
    )
    .await;
    let said = t
        .admitted_and_warned_eventually(V2, "changegate (warn mode, would be denied): no change of")
        .await;
    assert!(said.contains(&t.name), "{said}");
}

#[tokio::test]
async fn a_failing_rollout_is_rolled_back_automatically_and_the_change_is_rolled_back_on_the_server()
 {
    rolled_back_automatically("Deployment", "ProgressDeadlineExceeded").await;
}

#[tokio::test]
async fn a_failing_stateful_set_is_rolled_back_to_its_previous_controller_revision() {
    rolled_back_automatically("StatefulSet", "not ready 15 s after it started").await;
}

/// Workload `web` of `kind` gets an approved image that never becomes
/// ready; the failure is reported saying `why`, the agent restores the
/// previous revision and the change is `rolled-back` on the server.
async fn rolled_back_automatically(kind: &'static str, why: &str) {
    const FAILING: &str = "example.com/web:2-fail";
    let t = Tenant::new(
        &format!("rollback-{}", kind.to_lowercase()),
        Setup {
            kind,
            ..Setup::default()
        },
    )
    .await;
    let number = t.raise_with(&[FAILING], &["--automatic-rollback"]);
    t.approve(&number);
    t.admitted_eventually("the approved (failing) image to be admitted", FAILING)
        .await;
    // The deadline (15 s) passes; the agent reports the failure, restores
    // the previous revision and reports the rollback once healthy.
    wait_until(
        "the change to be rolled back",
        Duration::from_secs(120),
        || {
            let state = t.state_of(&number);
            async move {
                if state == "rolled-back" {
                    Ok(())
                } else {
                    Err(state)
                }
            }
        },
    )
    .await;
    let image = crate::support::kubectl(&[
        "get",
        &kind.to_lowercase(),
        "web",
        "-n",
        &t.ns.name,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(String::from_utf8_lossy(&image.stdout), "example.com/web:1");
    let recorded = t.deployments();
    let notes: Vec<&str> = recorded
        .iter()
        .filter(|d| d["subject"] == number.as_str())
        .filter_map(|d| d["detail"]["note"].as_str())
        .collect();
    assert!(
        notes.iter().any(|n| n.contains(why))
            && notes.iter().any(|n| n.contains("rolled back automatically")
                && n.contains("runs example.com/web:1 again")),
        "{recorded:?}"
    );
}
