//! The agent enforcing the server's approvals on the local control plane
//! (DESIGN §7): a real server (`make up`), the agent long-polling its
//! bundle, and Deployment updates through the real API server.

use crate::support::tenant::outcome;
use crate::support::{Setup, Tenant};
use chrono::{Duration as Span, SubsecRound, Utc};
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
    let number = t.raise(&[V2, V2B]);

    let refused = outcome(&t.apply_web(V2, false)).expect_err("refused while awaiting approval");
    assert!(
        refused.contains(&format!(
            "denied the request: changegate: {number} awaits 1 approval from client"
        )),
        "{refused}"
    );

    t.approve(&number);
    let took = t
        .admitted_eventually("the approved digest to be admitted", V2)
        .await;
    assert!(
        took < Duration::from_secs(10),
        "the approval reached the agent after {took:?}"
    );
    eprintln!("approval → admitted on the agent: {took:?}");

    let refused = outcome(&t.apply_web(V3, false)).expect_err("another digest is refused");
    assert!(
        refused.contains(&format!("{number} approved"))
            && refused.contains(&format!("{V3} is not approved content")),
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

    // The window closes: the other approved digest is refused from then on.
    let inside = outcome(&t.apply_web(V2B, true));
    assert!(
        inside.is_ok() || Utc::now() >= closes,
        "inside the window the second approved digest ships: {inside:?}"
    );
    let refused = t
        .refused_eventually(
            "the window to close",
            V2B,
            &format!("{number} is approved but"),
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
