//! Two agent replicas of one cluster share the Lease `changegate-agent`:
//! both decide admission and track rollouts, only the holder reports, and
//! when the holder dies the other takes the Lease over and reports from
//! then on. A private server and two agents of a private cluster (not
//! registered with the API server); changes reach them through their
//! watches.

use crate::support::server::Server;
use crate::support::{Scratch, Setup, Tenant, TestNamespace, kubectl, wait_until};
use crate::tls::{Operator, free_ports, ready, start_as};
use std::sync::Arc;
use std::time::Duration;

/// An agent of `cluster` on `server`; its Lease identity starts with
/// `agent-<webhook port>-` (its host name, then its process id).
async fn replica(ns: &str, server: &Server, token: &str, scratch: &Scratch) -> (Operator, String) {
    let (webhook, health) = free_ports();
    let cache = scratch.path().join(format!("cache-{webhook}"));
    let args = [
        "--server",
        &server.url,
        "--token-file",
        token,
        "--cache-dir",
        cache.to_str().expect("utf-8"),
        "--bundle-wait",
        "2s",
    ];
    let kubeconfig = concat!(env!("CARGO_MANIFEST_DIR"), "/.cluster/kubeconfig");
    let mut agent = start_as(ns, webhook, health, &args, kubeconfig, "webhook-tls");
    ready(&mut agent, health).await;
    (agent, format!("agent-{webhook}-"))
}

fn holder(ns: &str) -> String {
    let out = kubectl(&[
        "get",
        "lease",
        "changegate-agent",
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The `deployment.unauthorized` records of tenant `t`.
fn unauthorized(t: &Tenant) -> usize {
    t.deployments()
        .iter()
        .filter(|d| d["event"] == "deployment.unauthorized")
        .count()
}

#[tokio::test]
async fn two_replicas_share_one_lease_only_its_holder_reports_and_the_other_takes_over() {
    let server = Arc::new(Server::private());
    let agent_ns = TestNamespace::new("leader-agent").await;
    let cluster = format!("c-{}", agent_ns.name.rsplit('-').next().unwrap_or("x"));
    let t = Tenant::new(
        "leader",
        Setup {
            // The agent of `make up` has nothing of this tenant and admits;
            // the two replicas here, whose webhooks the API server does
            // not call, judge what their watches see.
            on: Some((server.clone(), cluster.clone())),
            ..Setup::default()
        },
    )
    .await;
    let scratch = Scratch::new(&format!("leader-{cluster}"));
    let token = scratch.write_private("agent-token", &server.register_cluster(&cluster));
    let token = token.to_str().expect("utf-8").to_string();
    let first = replica(&agent_ns.name, &server, &token, &scratch).await;
    let second = replica(&agent_ns.name, &server, &token, &scratch).await;
    let leader = wait_until(
        "one replica to hold the Lease",
        Duration::from_secs(60),
        || {
            let h = holder(&agent_ns.name);
            let known = [first.1.clone(), second.1.clone()];
            async move {
                if let Some(k) = known.into_iter().find(|k| h.starts_with(k.as_str())) {
                    Ok(k)
                } else {
                    Err(format!("holder {h:?}"))
                }
            }
        },
    )
    .await;
    let (mut leading, standing_by) = if leader == first.1 {
        (Some(first), second)
    } else {
        (Some(second), first)
    };

    // An image no change approved: both replicas see it, one reports it.
    let out = t.apply_web("example.com/web:rogue-1", false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until(
        "the unauthorized change on the server",
        Duration::from_secs(60),
        || {
            let n = unauthorized(&t);
            async move {
                if n >= 1 {
                    Ok(())
                } else {
                    Err(format!("{n} recorded"))
                }
            }
        },
    )
    .await;

    // The holder dies without releasing the Lease: once it expires the
    // other replica holds it and reports.
    drop(leading.take());
    let other = standing_by.1.clone();
    wait_until(
        "the other replica to take the Lease over",
        Duration::from_secs(60),
        || {
            let h = holder(&agent_ns.name);
            let other = other.clone();
            async move {
                if h.starts_with(other.as_str()) {
                    Ok(())
                } else {
                    Err(format!("holder {h:?}"))
                }
            }
        },
    )
    .await;
    let out = t.apply_web("example.com/web:rogue-2", false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until(
        "the second unauthorized change on the server",
        Duration::from_secs(60),
        || {
            let n = unauthorized(&t);
            async move {
                if n >= 2 {
                    Ok(())
                } else {
                    Err(format!("{n} recorded"))
                }
            }
        },
    )
    .await;
    assert_eq!(
        unauthorized(&t),
        2,
        "each change reported once, by the replica holding the Lease: {:?}",
        t.deployments()
    );
    drop(standing_by);
}
