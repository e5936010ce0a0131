//! Following governed workloads after admission (DESIGN §7): every real
//! spec change of a Deployment, StatefulSet, DaemonSet or CronJob in a
//! tenant's namespace is judged again from the bundle. One an approved
//! change covers is followed until it is rolled out (reported `succeeded`)
//! or its progress deadline passes (`failed`; see [`rollout`]); one no
//! approved change covers, whatever the tenant's enforcement mode or
//! however it got past admission, is reported `unauthorized`. When a
//! followed rollout fails and its change's backout is automatic, the agent
//! restores the previous revision (as `kubectl rollout undo` does: a
//! Deployment's previous ReplicaSet template, a StatefulSet's or
//! DaemonSet's previous ControllerRevision), marked with
//! `changegate.dev/rollback-of`, follows that until it is healthy and
//! reports `rolled-back` with the revision restored. [`Tracker`] is the
//! pure part; [`run`] watches, acts and sends.

pub mod rollout;

use crate::bundle::BundleState;
use crate::enforce::{images, labels};
use crate::report::{Report, ReportEvent, Reporter};
use crate::webhook::stores::Stores;
use changegate_core::gate::{Reason, Target, Verdict, Workload, diff};
use changegate_core::ids::ChangeNumber;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
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
    /// When the rollout followed (or the rollback) was seen to start.
    since: DateTime<Utc>,
    /// As last seen, to judge again when no event comes ([`Tracker::recheck`]).
    tenant: String,
    kind: String,
    object: Value,
}

/// What to do about a workload.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Report(Report),
    /// Restore the previous revision of `kind` `namespace/name`,
    /// undoing the rollout of `change`.
    RollBack {
        kind: String,
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
        let mut since = previous.as_ref().map_or(now, |t| t.since);
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
            let was_following = following;
            following = None;
            rolling_back = None;
            if let Some(gate) = snapshot.strict_gate(seen.tenant) {
                let target = target(seen, &snapshot.cluster);
                let d = gate.check(&target, &images(seen.kind, object), now);
                match (d.verdict, d.reason, d.change) {
                    (_, Reason::NotGoverned, _) => {}
                    // Another spec change under the change whose rollout
                    // is still followed: the same rollout goes on, already
                    // reported started.
                    (Verdict::Allow, Reason::Covered, Some(n)) if was_following == Some(n) => {
                        following = Some(n);
                    }
                    (Verdict::Allow, Reason::Covered, Some(n)) => {
                        following = Some(n);
                        since = now;
                        reports.push(Action::Report(Report {
                            fingerprint: d.fingerprint.clone(),
                            ..report(seen, ReportEvent::Started, Some(n), d.message)
                        }));
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
            && let Some((event, note)) = rollout::outcome(seen.kind, object, since, now)
        {
            reports.push(Action::Report(report(seen, event, Some(n), note)));
            following = None;
            let automatic = snapshot
                .and_then(|s| s.change(seen.tenant, n))
                .is_some_and(|c| c.automatic_rollback);
            if event == ReportEvent::Failed && automatic {
                rolling_back = Some(n);
                since = now;
                reports.push(Action::RollBack {
                    kind: seen.kind.to_string(),
                    namespace: text(object, "/metadata/namespace").to_string(),
                    name: text(object, "/metadata/name").to_string(),
                    change: n,
                });
            }
        } else if let Some(n) = rolling_back
            && rollback_of == Some(n)
            && let Some((ReportEvent::Succeeded, _)) =
                rollout::outcome(seen.kind, object, since, now)
        {
            let revision = rollout::revision(seen.kind, object);
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
                since,
                tenant: seen.tenant.to_string(),
                kind: seen.kind.to_string(),
                object: object.clone(),
            },
        );
        reports
    }

    /// Judges again every workload with a rollout or rollback in progress,
    /// as last seen: a StatefulSet or DaemonSet that stays unready sends
    /// no event when the agent's deadline passes.
    pub fn recheck(
        &mut self,
        snapshot: Option<&crate::bundle::Snapshot>,
        now: DateTime<Utc>,
    ) -> Vec<Action> {
        let pending: Vec<(String, String, Value)> = self
            .seen
            .values()
            .filter(|t| t.following.is_some() || t.rolling_back.is_some())
            .map(|t| (t.tenant.clone(), t.kind.clone(), t.object.clone()))
            .collect();
        let mut actions = Vec::new();
        for (tenant, kind, object) in pending {
            let seen = Seen {
                tenant: &tenant,
                kind: &kind,
                object: &object,
                initial: false,
            };
            actions.extend(self.observe(&seen, snapshot, now));
        }
        actions
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
        fingerprint: None,
        note,
    }
}

/// One watch event of a workload of any followed kind, as JSON.
enum Watched {
    /// A (re)list begins: what follows is history until `Listed`.
    Listing,
    Listed,
    Seen(Value),
    Gone(String),
}

/// The watch of every `K` in the cluster, as [`Watched`] events tagged
/// with the kind.
fn watch<K>(client: &Client, kind: &'static str) -> BoxStream<'static, (&'static str, Watched)>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug
        + Send
        + 'static,
{
    watcher(Api::<K>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .filter_map(move |event| async move {
            let watched = match event {
                Ok(watcher::Event::Init) => Watched::Listing,
                Ok(watcher::Event::InitDone) => Watched::Listed,
                Ok(watcher::Event::InitApply(o) | watcher::Event::Apply(o)) => {
                    Watched::Seen(serde_json::to_value(&o).ok()?)
                }
                Ok(watcher::Event::Delete(o)) => Watched::Gone(o.meta().uid.clone()?),
                Err(e) => {
                    tracing::warn!(kind, error = %e, "watch error; retrying with backoff");
                    return None;
                }
            };
            Some((kind, watched))
        })
        .boxed()
}

/// How often workloads in rollout are judged again without an event.
const RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Watches Deployments, StatefulSets, DaemonSets and CronJobs in every
/// namespace and reports through `reporter` until the process ends.
/// The agent's own namespace is left alone, as admission leaves it.
/// Started once `stores` has synced: a workload's tenant is read from the
/// namespace store, and one listed before it synced would be skipped,
/// then taken for a new change when its status next moved.
pub async fn run(
    client: Client,
    stores: Stores,
    bundle: Arc<BundleState>,
    reporter: Reporter,
    own_namespace: String,
    leadership: Arc<crate::lease::Leadership>,
) {
    let mut tracker = Tracker::default();
    let mut listing: HashMap<&'static str, bool> = HashMap::new();
    let mut events = futures::stream::select_all([
        watch::<Deployment>(&client, "Deployment"),
        watch::<StatefulSet>(&client, "StatefulSet"),
        watch::<DaemonSet>(&client, "DaemonSet"),
        watch::<CronJob>(&client, "CronJob"),
    ]);
    let mut recheck = tokio::time::interval(RECHECK);
    loop {
        let actions = tokio::select! {
            event = events.next() => {
                let Some((kind, watched)) = event else { return };
                let object = match watched {
                    Watched::Listing => {
                        listing.insert(kind, true);
                        continue;
                    }
                    Watched::Listed => {
                        listing.insert(kind, false);
                        continue;
                    }
                    Watched::Gone(uid) => {
                        tracker.forget(&uid);
                        continue;
                    }
                    Watched::Seen(object) => object,
                };
                let Some(tenant) = object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .filter(|ns| *ns != own_namespace)
                    .and_then(|ns| stores.tenant_of(ns))
                else {
                    continue;
                };
                let held = bundle.current();
                let seen = Seen {
                    tenant: &tenant,
                    kind,
                    object: &object,
                    initial: listing.get(kind).copied().unwrap_or(true),
                };
                tracker.observe(&seen, held.as_ref().map(|(s, _)| s.as_ref()), Utc::now())
            }
            _ = recheck.tick() => {
                let held = bundle.current();
                tracker.recheck(held.as_ref().map(|(s, _)| s.as_ref()), Utc::now())
            }
        };
        // Every replica tracks; only the Lease holder acts and reports.
        if !leadership.is_leader() {
            continue;
        }
        for action in actions {
            match action {
                Action::Report(report) => reporter.send(report),
                Action::RollBack {
                    kind,
                    namespace,
                    name,
                    change,
                } => {
                    let client = client.clone();
                    tokio::spawn(async move {
                        match roll_back(&client, &kind, &namespace, &name, change).await {
                            Ok(revision) => {
                                tracing::info!(%kind, %namespace, %name, %change, %revision, "rolled back to the previous revision")
                            }
                            Err(e) => {
                                tracing::error!(%kind, %namespace, %name, %change, error = %e, "cannot roll back; the change stays failed")
                            }
                        }
                    });
                }
            }
        }
    }
}

/// Restores the previous revision of `kind` `namespace/name`, marked with
/// [`ROLLBACK_ANNOTATION`]; the revision restored.
async fn roll_back(
    client: &Client,
    kind: &str,
    namespace: &str,
    name: &str,
    change: ChangeNumber,
) -> Result<String, String> {
    match kind {
        "Deployment" => roll_back_deployment(client, namespace, name, change).await,
        "StatefulSet" => {
            roll_back_to_revision::<StatefulSet>(client, namespace, name, change).await
        }
        "DaemonSet" => roll_back_to_revision::<DaemonSet>(client, namespace, name, change).await,
        other => Err(format!("a {other} has no revisions to roll back to")),
    }
}

/// Restores the pod template of the Deployment's previous ReplicaSet (the
/// highest revision below the current one).
async fn roll_back_deployment(
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
        .filter(|rs| owned_by(&rs.metadata, &uid))
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

/// Restores a StatefulSet's or DaemonSet's previous ControllerRevision (the
/// highest revision below the newest), as `kubectl rollout undo` does: its
/// data is the strategic-merge patch of the pod template. A StatefulSet
/// does not replace a pod that never became ready, so the agent deletes
/// its unready pods of other revisions; the controller recreates them from
/// the restored one.
async fn roll_back_to_revision<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    change: ChangeNumber,
) -> Result<String, String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    use k8s_openapi::api::apps::v1::ControllerRevision;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
    let workloads: Api<K> = Api::namespaced(client.clone(), namespace);
    let workload = workloads.get(name).await.map_err(|e| e.to_string())?;
    let uid = workload.meta().uid.clone().unwrap_or_default();
    let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), namespace);
    let mut owned: Vec<ControllerRevision> = revisions
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?
        .items
        .into_iter()
        .filter(|r| owned_by(&r.metadata, &uid))
        .collect();
    owned.sort_by_key(|r| r.revision);
    let [.., previous, _newest] = owned.as_slice() else {
        return Err("no previous revision to roll back to".into());
    };
    let mut patch = previous
        .data
        .as_ref()
        .map(|d| d.0.clone())
        .ok_or("the previous revision holds no pod template")?;
    patch["metadata"] =
        serde_json::json!({"annotations": {ROLLBACK_ANNOTATION: change.to_string()}});
    workloads
        .patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .map_err(|e| e.to_string())?;
    let restored = previous.metadata.name.clone().unwrap_or_default();
    if K::kind(&()) == "StatefulSet" {
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        for pod in pods
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?
            .items
        {
            let revision = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("controller-revision-hash"))
                .cloned()
                .unwrap_or_default();
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if owned_by(&pod.metadata, &uid) && revision != restored && !ready {
                let pod_name = pod.metadata.name.unwrap_or_default();
                pods.delete(&pod_name, &DeleteParams::default())
                    .await
                    .map_err(|e| format!("delete unready pod {pod_name}: {e}"))?;
            }
        }
    }
    Ok(format!("{restored} (revision {})", previous.revision))
}

fn owned_by(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|o| o.uid == uid)
}

#[cfg(test)]
mod tests;
