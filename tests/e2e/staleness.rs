//! The agent without its server: it keeps deciding from the bundle it
//! holds, also after a restart (from its cache), and past
//! `--max-staleness` it refuses with a message saying why. A private
//! server and a second agent (not registered with the API server) that
//! this test stops at will; AdmissionReviews go straight to its webhook.

use crate::support::server::Server;
use crate::support::{Scratch, Setup, Tenant, TestNamespace, wait_until};
use crate::tls::{free_ports, ready, start_as};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

const V1: &str =
    "example.com/web@sha256:1111111111111111111111111111111111111111111111111111111111111111";
const V2: &str =
    "example.com/web@sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// An image update of Deployment `web` in `ns`, as the API server sends it.
fn review(ns: &str) -> Value {
    let deployment = |image: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": ns, "labels": {"app": "web"}},
               "spec": {"selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "app", "image": image}]}}}})
    };
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "staleness", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "name": "web", "namespace": ns, "operation": "UPDATE",
        "userInfo": {"username": "deployer"},
        "object": deployment(V2), "oldObject": deployment(V1)}})
}

/// The webhook's answer: allowed, and its message.
async fn admit(port: u16, review: &Value) -> Result<(bool, String), String> {
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .map_err(|e| e.to_string())?;
    let answer: Value = http
        .post(format!("https://127.0.0.1:{port}/validate/workloads"))
        .json(review)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let r = &answer["response"];
    Ok((
        r["allowed"].as_bool().unwrap_or(false),
        r["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    ))
}

#[tokio::test]
async fn without_its_server_the_agent_decides_from_its_cache_until_the_bundle_is_stale() {
    let server = Arc::new(Server::private());
    let agent_ns = TestNamespace::new("stale-agent").await;
    let cluster = format!("c-{}", agent_ns.name.rsplit('-').next().unwrap_or("x"));
    let t = Tenant::new(
        "stale",
        Setup {
            on: Some((server.clone(), cluster.clone())),
            ..Setup::default()
        },
    )
    .await;
    let change = t.raise(&[V2]);
    t.approve(&change);

    let scratch = Scratch::new(&format!("stale-{cluster}"));
    let token = scratch.write_private("agent-token", &server.register_cluster(&cluster));
    let cache = scratch.path().join("cache");
    let (token, cache) = (
        token.to_str().expect("utf-8").to_string(),
        cache.to_str().expect("utf-8").to_string(),
    );
    let kubeconfig = concat!(env!("CARGO_MANIFEST_DIR"), "/.cluster/kubeconfig");
    let args = [
        "--server",
        &server.url,
        "--token-file",
        &token,
        "--cache-dir",
        &cache,
        "--max-staleness",
        "20s",
        "--bundle-wait",
        "2s",
    ];
    let (webhook, health) = free_ports();
    let mut agent = start_as(
        &agent_ns.name,
        webhook,
        health,
        &args,
        kubeconfig,
        "webhook-tls",
    );
    ready(&mut agent, health).await;
    let request = review(&t.ns.name);
    let (allowed, message) = admit(webhook, &request).await.expect("an answer");
    assert!(allowed, "the approved digest: {message}");

    // The server goes away; the agent restarts: it decides from its cache.
    server.stop();
    let stopped = Instant::now();
    drop(agent);
    let mut agent = start_as(
        &agent_ns.name,
        webhook,
        health,
        &args,
        kubeconfig,
        "webhook-tls",
    );
    ready(&mut agent, health).await;
    let (allowed, message) = admit(webhook, &request).await.expect("an answer");
    assert!(
        allowed || stopped.elapsed() > Duration::from_secs(20),
        "restarted without its server, from the cache: {message}"
    );

    // Past --max-staleness it refuses, saying why.
    let message = wait_until("the bundle to go stale", Duration::from_secs(60), || {
        let request = request.clone();
        async move {
            match admit(webhook, &request).await {
                Ok((false, m)) if m.contains("the agent's bundle is stale") => Ok(m),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    assert!(
        stopped.elapsed() >= Duration::from_secs(15),
        "stale too early, {:?} after the server stopped: {message}",
        stopped.elapsed()
    );
    assert!(
        message.contains("more than --max-staleness 20s"),
        "{message}"
    );
    drop(agent);
}
