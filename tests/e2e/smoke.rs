//! The local control plane behaves like a real one for what changegate
//! tracks: Deployments roll out, `-fail` images stall until the progress
//! deadline, and `kubectl rollout undo` recovers.

use crate::support::{TestNamespace, admin, kubectl, wait_for};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use std::time::Duration;

const ROLLOUT: Duration = Duration::from_secs(90);

fn deployment(name: &str, image: &str, replicas: i32, progress_deadline: i32) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": progress_deadline,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}
            }
        }
    }))
    .expect("valid Deployment")
}

fn condition<'a>(
    d: &'a Deployment,
    type_: &str,
) -> Option<&'a k8s_openapi::api::apps::v1::DeploymentCondition> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Fully rolled out: the controller saw the latest spec and every replica is
/// updated, ready and available.
fn rolled_out(d: &Deployment, replicas: i32) -> bool {
    let (Some(status), Some(generation)) = (d.status.as_ref(), d.metadata.generation) else {
        return false;
    };
    status.observed_generation == Some(generation)
        && status.updated_replicas == Some(replicas)
        && status.ready_replicas == Some(replicas)
        && status.available_replicas == Some(replicas)
        && status.replicas == Some(replicas)
        && condition(d, "Available").is_some_and(|c| c.status == "True")
}

fn image_of(d: &Deployment) -> Option<&str> {
    d.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .as_deref()
}

#[tokio::test]
async fn a_deployment_with_three_replicas_becomes_available() {
    let ns = TestNamespace::new("smoke-available").await;
    let api: Api<Deployment> = Api::namespaced(admin().await, &ns.name);
    api.create(
        &PostParams::default(),
        &deployment("web", "example.com/web:1.0", 3, 600),
    )
    .await
    .expect("create");

    let d = wait_for(
        &api,
        "web",
        "all 3 replicas ready and available",
        ROLLOUT,
        |d| rolled_out(d, 3),
    )
    .await;
    assert_eq!(
        condition(&d, "Progressing").and_then(|c| c.reason.as_deref()),
        Some("NewReplicaSetAvailable")
    );
}

#[tokio::test]
async fn a_fail_image_stalls_until_the_progress_deadline_and_rollout_undo_recovers() {
    let ns = TestNamespace::new("smoke-fail").await;
    let api: Api<Deployment> = Api::namespaced(admin().await, &ns.name);
    api.create(
        &PostParams::default(),
        &deployment("payments", "example.com/payments:1.0", 3, 10),
    )
    .await
    .expect("create");
    wait_for(&api, "payments", "the first rollout", ROLLOUT, |d| {
        rolled_out(d, 3)
    })
    .await;

    let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "example.com/payments:2.0-fail"}
    ]}}}});
    api.patch(
        "payments",
        &PatchParams::default(),
        &Patch::Strategic(patch),
    )
    .await
    .expect("roll out a bad image");
    let stalled = wait_for(
        &api,
        "payments",
        "Progressing=False with ProgressDeadlineExceeded",
        ROLLOUT,
        |d| {
            condition(d, "Progressing").is_some_and(|c| {
                c.status == "False" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
            })
        },
    )
    .await;
    // The old pods keep serving: the bad ReplicaSet never became ready.
    let status = stalled.status.expect("status");
    assert_eq!(
        status.available_replicas,
        Some(3),
        "old replicas stay available during a stalled rollout"
    );
    assert!(
        status.updated_replicas.unwrap_or(0) >= 1,
        "the controller did start the bad rollout"
    );

    let undo = kubectl(&["rollout", "undo", "deployment/payments", "-n", &ns.name]);
    assert!(
        undo.status.success(),
        "kubectl rollout undo failed: {}",
        String::from_utf8_lossy(&undo.stderr)
    );
    let recovered = wait_for(
        &api,
        "payments",
        "the undo to roll back to 1.0",
        ROLLOUT,
        |d| {
            rolled_out(d, 3)
                && image_of(d) == Some("example.com/payments:1.0")
                && condition(d, "Progressing")
                    .is_some_and(|c| c.reason.as_deref() == Some("NewReplicaSetAvailable"))
        },
    )
    .await;
    assert_eq!(image_of(&recovered), Some("example.com/payments:1.0"));
}
