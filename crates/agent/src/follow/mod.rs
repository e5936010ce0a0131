//! Following governed workloads after admission (DESIGN §7): every real
//! spec change of a Deployment in a tenant's namespace is judged again
//! from the bundle. One an approved change covers is followed until it is
//! available (reported `succeeded`) or its progress deadline passes
//! (`failed`); one no approved change covers, whatever the tenant's
//! enforcement mode or however it got past admission, is reported
//! `unauthorized`. When a followed rollout fails and its change's backout
//! is automatic, the agent restores the previous ReplicaSet's pod template
//! (as `kubectl rollout undo` does), marked with `changegate.dev/rollback-of`,
//! follows that until it is available and reports `rolled-back` with the
//! revision restored. [`Tracker`] is the pure part; [`run`] watches, acts
//! and sends.

use crate::bundle::BundleState;
use crate::enforce::{images, labels};
use crate::report::{Report, ReportEvent, Reporter};
use crate::webhook::stores::Stores;
use changegate_core::gate::{Reason, Target, Verdict, Workload, diff};
use changegate_core::ids::ChangeNumber;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The annotation the agent puts on a workload it rolls back: the change
/// whose failed rollout it undoes. Admission lets the agent's own update
/// carrying it through (`webhook::server`).
pub const ROLLBACK_ANNOTATION: &str = "changegate.dev/rollback-of";

/// What the tracker knows of one workload.
#[derive(Debug, Clone)]
struct Tracked {
    /// `{"spec": …}` as last seen, to tell real spec changes.
    spec: Value,
    /// The change covering the rollout in progress, until its outcome is reported.
    following: Option<ChangeNumber>,
    /// The change whose failed rollout the agent is undoing.
    rolling_back: Option<ChangeNumber>,
}

/// What to do about a workload.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Report(Report),
    /// Restore the previous revision of Deployment `namespace/name`,
    /// undoing the rollout of `change`.
    RollBack {
        namespace: String,
        name: String,
        change: ChangeNumber,
    },
}

/// The workloads seen, by uid.
#[derive(Debug, Default)]
pub struct Tracker {
    seen: HashMap<String, Tracked>,
}

/// A workload as the watch delivers it.
pub struct Seen<'a> {
    pub tenant: &'a str,
    pub kind: &'a str,
    /// The object as JSON (metadata, spec, status).
    pub object: &'a Value,
    /// Part of the initial list: history the agent did not see happen.
    pub initial: bool,
}

impl Tracker {
    /// What to do about `seen`, judged from `snapshot` at `now`.
    pub fn observe(
        &mut self,
        seen: &Seen<'_>,
        snapshot: Option<&crate::bundle::Snapshot>,
        now: DateTime<Utc>,
    ) -> Vec<Action> {
        let object = seen.object;
        let Some(uid) = object.pointer("/metadata/uid").and_then(Value::as_str) else {
            return Vec::new();
        };
        let spec = serde_json::json!({"spec": object.get("spec").cloned().unwrap_or(Value::Null)});
        let mut reports = Vec::new();
        let previous = self.seen.get(uid).cloned();
        let changed = match &previous {
            None => !seen.initial,
            Some(t) => !diff::spec_changes(&t.spec, &spec, &diff::ignore_list(&[])).is_empty(),
        };
        let mut following = previous.as_ref().and_then(|t| t.following);
        let mut rolling_back = previous.as_ref().and_then(|t| t.rolling_back);
        let rollback_of = text(
            object,
            &format!(
                "/metadata/annotations/{}",
                ROLLBACK_ANNOTATION.replace('/', "~1")
            ),
        )
        .parse::<ChangeNumber>()
        .ok();
        let own_rollback = rolling_back.is_some() && rollback_of == rolling_back;
        if changed
            && !own_rollback
            && let Some(snapshot) = snapshot
        {
            following = None;
            rolling_back = None;
            if let Some(gate) = snapshot.strict_gate(seen.tenant) {
                let target = target(seen, &snapshot.cluster);
                let d = gate.check(&target, &images(seen.kind, object), now);
                match (d.verdict, d.reason, d.change) {
                    (_, Reason::NotGoverned, _) => {}
                    (Verdict::Allow, Reason::Covered, Some(n)) => {
                        following = Some(n);
                        reports.push(Action::Report(report(
                            seen,
                            ReportEvent::Started,
                            Some(n),
                            d.message,
                        )));
                    }
                    _ => reports.push(Action::Report(report(
                        seen,
                        ReportEvent::Unauthorized,
                        None,
                        d.message,
                    ))),
                }
            }
        }
        if let Some(n) = following
            && let Some((event, note)) = outcome(object)
        {
            reports.push(Action::Report(report(seen, event, Some(n), note)));
            following = None;
            let automatic = snapshot
                .and_then(|s| s.change(seen.tenant, n))
                .is_some_and(|c| c.automatic_rollback);
            if event == ReportEvent::Failed && automatic {
                rolling_back = Some(n);
                reports.push(Action::RollBack {
                    namespace: text(object, "/metadata/namespace").to_string(),
                    name: text(object, "/metadata/name").to_string(),
                    change: n,
                });
            }
        } else if let Some(n) = rolling_back
            && rollback_of == Some(n)
            && let Some((ReportEvent::Succeeded, _)) = outcome(object)
        {
            let revision = text(
                object,
                "/metadata/annotations/deployment.kubernetes.io~1revision",
            );
            let note = format!(
                "rolled back automatically after the failed rollout of {n}: revision {revision} runs {} again",
                images(seen.kind, object).join(", ")
            );
            reports.push(Action::Report(report(
                seen,
                ReportEvent::RolledBack,
                Some(n),
                note,
            )));
            rolling_back = None;
        }
        self.seen.insert(
            uid.to_string(),
            Tracked {
                spec,
                following,
                rolling_back,
            },
        );
        reports
    }

    pub fn forget(&mut self, uid: &str) {
        self.seen.remove(uid);
    }
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn target(seen: &Seen<'_>, cluster: &str) -> Target {
    Target::Workload(Workload {
        cluster: cluster.to_string(),
        namespace: text(seen.object, "/metadata/namespace").to_string(),
        kind: seen.kind.to_string(),
        name: text(seen.object, "/metadata/name").to_string(),
        labels: labels(seen.object),
    })
}

fn report(
    seen: &Seen<'_>,
    event: ReportEvent,
    change: Option<ChangeNumber>,
    note: String,
) -> Report {
    Report {
        tenant: seen.tenant.to_string(),
        namespace: text(seen.object, "/metadata/namespace").to_string(),
        kind: seen.kind.to_string(),
        name: text(seen.object, "/metadata/name").to_string(),
        labels: labels(seen.object),
        artifacts: images(seen.kind, seen.object),
        event,
        change: change.map(|n| n.to_string()),
        revision: seen
            .object
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .map(|g| format!("generation {g}")),
        note,
    }
}

/// A Deployment's rollout outcome, once there is one: available with
/// every replica updated, or past its progress deadline.
fn outcome(object: &Value) -> Option<(ReportEvent, String)> {
    let int = |p: &str| object.pointer(p).and_then(Value::as_i64);
    let generation = int("/metadata/generation")?;
    let observed = int("/status/observedGeneration").unwrap_or(0);
    if observed < generation {
        return None;
    }
    let conditions = object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let stalled = conditions.iter().any(|c| {
        c["type"] == "Progressing"
            && c["status"] == "False"
            && c["reason"] == "ProgressDeadlineExceeded"
    });
    if stalled {
        return Some((
            ReportEvent::Failed,
            "the rollout passed its progress deadline (ProgressDeadlineExceeded)".into(),
        ));
    }
    let wanted = int("/spec/replicas").unwrap_or(1);
    let updated = int("/status/updatedReplicas").unwrap_or(0);
    let available = int("/status/availableReplicas").unwrap_or(0);
    let total = int("/status/replicas").unwrap_or(0);
    (updated >= wanted && available >= wanted && total == updated).then(|| {
        (
            ReportEvent::Succeeded,
            format!(
                "generation {generation} rolled out: {available} of {wanted} replicas available"
            ),
        )
    })
}

/// Watches Deployments in every namespace and reports through `reporter`
/// until the process ends.
/// The agent's own namespace is left alone, as admission leaves it.
pub async fn run(
    client: Client,
    stores: Stores,
    bundle: Arc<BundleState>,
    reporter: Reporter,
    own_namespace: String,
    leadership: Arc<crate::lease::Leadership>,
) {
    let mut tracker = Tracker::default();
    let mut initial = true;
    let events = watcher(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff();
    futures::pin_mut!(events);
    while let Some(event) = events.next().await {
        let (object, is_initial) = match event {
            Ok(watcher::Event::Init) => {
                initial = true;
                continue;
            }
            Ok(watcher::Event::InitDone) => {
                initial = false;
                continue;
            }
            Ok(watcher::Event::InitApply(d)) => (d, initial),
            Ok(watcher::Event::Apply(d)) => (d, false),
            Ok(watcher::Event::Delete(d)) => {
                if let Some(uid) = d.metadata.uid.as_deref() {
                    tracker.forget(uid);
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "Deployment watch error; retrying with backoff");
                continue;
            }
        };
        let Some(tenant) = object
            .metadata
            .namespace
            .as_deref()
            .filter(|ns| *ns != own_namespace)
            .and_then(|ns| stores.tenant_of(ns))
        else {
            continue;
        };
        let Ok(json) = serde_json::to_value(&object) else {
            continue;
        };
        let held = bundle.current();
        let seen = Seen {
            tenant: &tenant,
            kind: "Deployment",
            object: &json,
            initial: is_initial,
        };
        let actions = tracker.observe(&seen, held.as_ref().map(|(s, _)| s.as_ref()), Utc::now());
        // Every replica tracks; only the Lease holder acts and reports.
        if !leadership.is_leader() {
            continue;
        }
        for action in actions {
            match action {
                Action::Report(report) => reporter.send(report),
                Action::RollBack {
                    namespace,
                    name,
                    change,
                } => {
                    let client = client.clone();
                    tokio::spawn(async move {
                        match roll_back(&client, &namespace, &name, change).await {
                            Ok(revision) => {
                                tracing::info!(%namespace, %name, %change, %revision, "rolled back to the previous revision")
                            }
                            Err(e) => {
                                tracing::error!(%namespace, %name, %change, error = %e, "cannot roll back; the change stays failed")
                            }
                        }
                    });
                }
            }
        }
    }
}

/// Restores the pod template of the Deployment's previous ReplicaSet (the
/// highest revision below the current one), marked with
/// [`ROLLBACK_ANNOTATION`]; the revision restored.
async fn roll_back(
    client: &Client,
    namespace: &str,
    name: &str,
    change: ChangeNumber,
) -> Result<String, String> {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use kube::api::{ListParams, Patch, PatchParams};
    const REVISION: &str = "deployment.kubernetes.io/revision";
    let revision_of = |annotations: Option<&BTreeMap<String, String>>| {
        annotations
            .and_then(|a| a.get(REVISION))
            .and_then(|r| r.parse::<i64>().ok())
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deployment = deployments.get(name).await.map_err(|e| e.to_string())?;
    let uid = deployment.metadata.uid.clone().unwrap_or_default();
    let current = revision_of(deployment.metadata.annotations.as_ref()).unwrap_or(i64::MAX);
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    let previous = sets
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?
        .items
        .into_iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid)
        })
        .filter_map(|rs| Some((revision_of(rs.metadata.annotations.as_ref())?, rs)))
        .filter(|(r, _)| *r < current)
        .max_by_key(|(r, _)| *r)
        .ok_or("no previous revision to roll back to")?;
    let (revision, rs) = previous;
    let mut template = rs
        .spec
        .and_then(|s| s.template)
        .ok_or("the previous ReplicaSet has no pod template")?;
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove("pod-template-hash");
    }
    let patch = serde_json::json!({
        "metadata": {"annotations": {ROLLBACK_ANNOTATION: change.to_string()}},
        "spec": {"template": template},
    });
    deployments
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| e.to_string())?;
    Ok(revision.to_string())
}

#[cfg(test)]
mod tests;
