//! Following governed workloads after admission (DESIGN §7): every real
//! spec change of a Deployment in a tenant's namespace is judged again
//! from the bundle. One an approved change covers is followed until it is
//! available (reported `succeeded`) or its progress deadline passes
//! (`failed`); one no approved change covers, whatever the tenant's
//! enforcement mode or however it got past admission, is reported
//! `unauthorized`. [`Tracker`] is the pure part; [`run`] watches and sends.

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
use std::collections::HashMap;
use std::sync::Arc;

/// What the tracker knows of one workload.
#[derive(Debug, Clone)]
struct Tracked {
    /// `{"spec": …}` as last seen, to tell real spec changes.
    spec: Value,
    /// The change covering the rollout in progress, until its outcome is reported.
    following: Option<ChangeNumber>,
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
    /// What to report about `seen`, judged from `snapshot` at `now`.
    pub fn observe(
        &mut self,
        seen: &Seen<'_>,
        snapshot: Option<&crate::bundle::Snapshot>,
        now: DateTime<Utc>,
    ) -> Vec<Report> {
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
        let mut following = previous.and_then(|t| t.following);
        if changed && let Some(snapshot) = snapshot {
            following = None;
            if let Some(gate) = snapshot.strict_gate(seen.tenant) {
                let target = target(seen, &snapshot.cluster);
                let d = gate.check(&target, &images(seen.kind, object), now);
                match (d.verdict, d.reason, d.change) {
                    (_, Reason::NotGoverned, _) => {}
                    (Verdict::Allow, Reason::Covered, Some(n)) => {
                        following = Some(n);
                        reports.push(report(seen, ReportEvent::Started, Some(n), d.message));
                    }
                    _ => reports.push(report(seen, ReportEvent::Unauthorized, None, d.message)),
                }
            }
        }
        if let Some(n) = following
            && let Some((event, note)) = outcome(object)
        {
            reports.push(report(seen, event, Some(n), note));
            following = None;
        }
        self.seen
            .insert(uid.to_string(), Tracked { spec, following });
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
) {
    let mut tracker = Tracker::default();
    let mut initial = true;
    let events =
        watcher(Api::<Deployment>::all(client), watcher::Config::default()).default_backoff();
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
        for report in tracker.observe(&seen, held.as_ref().map(|(s, _)| s.as_ref()), Utc::now()) {
            reporter.send(report);
        }
    }
}

#[cfg(test)]
mod tests;
