//! Admission of a governed workload from the bundle held in memory: pure,
//! the caller passes the bundle, the time and the request. Only a real
//! spec change is judged; a bundle older than `--max-staleness` refuses
//! (fail closed) with a message saying so; otherwise the tenant's gate
//! decides, with the workload's pod-template images as the content that
//! must match what the change approved.

use crate::bundle::Snapshot;
use changegate_core::gate::{Target, Verdict, Workload, diff};
use changegate_core::ids::ChangeNumber;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use std::collections::BTreeMap;

/// The kinds the agent gates.
pub const GATED_KINDS: [&str; 4] = ["Deployment", "StatefulSet", "DaemonSet", "CronJob"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

/// A gated workload request in a namespace labelled for `tenant`.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub tenant: &'a str,
    pub operation: Operation,
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub old: Option<&'a Value>,
    pub new: Option<&'a Value>,
}

/// The bundle admission decides from.
#[derive(Debug, Clone, Copy)]
pub struct Held<'a> {
    pub snapshot: &'a Snapshot,
    /// When the server last confirmed it.
    pub confirmed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    /// Why, for the API server's answer (and kubectl's output) when denied.
    pub message: String,
    pub warnings: Vec<String>,
    /// A bounded label for metrics.
    pub reason: &'static str,
    /// The change that covers the request, or the one closest to it.
    pub change: Option<ChangeNumber>,
}

impl Decision {
    fn allow(reason: &'static str, message: impl Into<String>) -> Self {
        Decision {
            allowed: true,
            message: message.into(),
            warnings: Vec::new(),
            reason,
            change: None,
        }
    }

    fn deny(reason: &'static str, message: impl Into<String>) -> Self {
        Decision {
            allowed: false,
            message: message.into(),
            warnings: Vec::new(),
            reason,
            change: None,
        }
    }
}

pub fn decide(
    held: Option<Held<'_>>,
    max_staleness: Duration,
    request: &Request<'_>,
    now: DateTime<Utc>,
) -> Decision {
    if request.operation == Operation::Update
        && let (Some(old), Some(new)) = (request.old, request.new)
        && diff::spec_changes(old, new, &diff::ignore_list(&[])).is_empty()
    {
        return Decision::allow(
            "NoSpecChange",
            "the update changes no part of the spec that is gated",
        );
    }
    let Some(held) = held else {
        return Decision::deny(
            "NoBundle",
            "changegate: this agent has no bundle from the changegate server yet, so it cannot tell what is approved; \
             check the agent's --server and token, then retry",
        );
    };
    let age = now - held.confirmed_at;
    if age > max_staleness {
        return Decision::deny(
            "BundleStale",
            format!(
                "changegate: the agent's bundle is stale: the server last confirmed it {} ago (at {}), more than --max-staleness {}; \
                 changes are refused until the agent reaches the changegate server again",
                human(age),
                held.confirmed_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                human(max_staleness),
            ),
        );
    }
    let Some(gate) = held.snapshot.gate(request.tenant) else {
        return Decision::allow(
            "NotGoverned",
            format!(
                "no configuration item of {} is bound to cluster {}",
                request.tenant, held.snapshot.cluster
            ),
        );
    };
    let object = request.new.or(request.old);
    let target = Target::Workload(Workload {
        cluster: held.snapshot.cluster.clone(),
        namespace: request.namespace.to_string(),
        kind: request.kind.to_string(),
        name: request.name.to_string(),
        labels: object.map(labels).unwrap_or_default(),
    });
    let artifacts = match (request.operation, request.new) {
        (Operation::Delete, _) | (_, None) => Vec::new(),
        (_, Some(new)) => images(request.kind, new),
    };
    let d = gate.check(&target, &artifacts, now);
    let reason = d.reason.as_str();
    match d.verdict {
        Verdict::Allow => Decision {
            change: d.change,
            ..Decision::allow(reason, d.message)
        },
        Verdict::Warn => Decision {
            warnings: vec![format!(
                "changegate (warn mode, would be denied): {}",
                d.message
            )],
            change: d.change,
            ..Decision::allow(reason, d.message)
        },
        Verdict::Deny => Decision {
            change: d.change,
            ..Decision::deny(reason, format!("changegate: {}", d.message))
        },
    }
}

/// `1h05m`, `3m20s`, `12s`.
fn human(d: Duration) -> String {
    let s = d.num_seconds().max(0);
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

/// The object's `metadata.labels`.
pub fn labels(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Every container, init container and ephemeral container image of the
/// pod template of a gated kind.
pub fn images(kind: &str, object: &Value) -> Vec<String> {
    let pod = match kind {
        "CronJob" => object.pointer("/spec/jobTemplate/spec/template/spec"),
        _ => object.pointer("/spec/template/spec"),
    };
    let Some(pod) = pod else {
        return Vec::new();
    };
    ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .filter_map(|list| pod.get(*list)?.as_array())
        .flatten()
        .filter_map(|c| Some(c.get("image")?.as_str()?.to_string()))
        .collect()
}

#[cfg(test)]
mod tests;
