//! When a rollout is over, per kind, from the object's status alone.
//!
//! - Deployment: every replica updated and available, or the
//!   `ProgressDeadlineExceeded` condition.
//! - StatefulSet: the update revision current and every replica ready;
//!   DaemonSet: every scheduled pod updated and available. Neither has a
//!   progress deadline of its own, so the agent applies one: the
//!   annotation [`DEADLINE_ANNOTATION`] (seconds), else
//!   `spec.progressDeadlineSeconds`' default of 600 s, counted from when the
//!   agent saw the rollout start.
//! - CronJob: nothing rolls out; the new spec is in effect once stored.

use crate::report::ReportEvent;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

/// Seconds a StatefulSet or DaemonSet rollout may take before the agent
/// calls it failed.
pub const DEADLINE_ANNOTATION: &str = "changegate.dev/progress-deadline-seconds";

/// What a Deployment's `progressDeadlineSeconds` defaults to.
const DEFAULT_DEADLINE_SECONDS: i64 = 600;

/// The outcome of the rollout of `object` (of `kind`) that started at
/// `since`, once there is one.
pub fn outcome(
    kind: &str,
    object: &Value,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<(ReportEvent, String)> {
    let int = |p: &str| object.pointer(p).and_then(Value::as_i64);
    if kind == "CronJob" {
        return Some((
            ReportEvent::Succeeded,
            "the CronJob's new spec is in effect for its next run".into(),
        ));
    }
    let generation = int("/metadata/generation")?;
    if int("/status/observedGeneration").unwrap_or(0) < generation {
        return overdue(kind, object, since, now);
    }
    match kind {
        "Deployment" => {
            let stalled = object
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|conditions| {
                    conditions.iter().any(|c| {
                        c["type"] == "Progressing"
                            && c["status"] == "False"
                            && c["reason"] == "ProgressDeadlineExceeded"
                    })
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
        "StatefulSet" => {
            let wanted = int("/spec/replicas").unwrap_or(1);
            let ready = int("/status/readyReplicas").unwrap_or(0);
            let updated = int("/status/updatedReplicas").unwrap_or(0);
            let revision = text(object, "/status/updateRevision");
            let current =
                !revision.is_empty() && text(object, "/status/currentRevision") == revision;
            if (current || updated >= wanted) && ready >= wanted {
                Some((
                    ReportEvent::Succeeded,
                    format!("revision {revision} rolled out: {ready} of {wanted} replicas ready"),
                ))
            } else {
                overdue(kind, object, since, now)
            }
        }
        "DaemonSet" => {
            let wanted = int("/status/desiredNumberScheduled").unwrap_or(0);
            let updated = int("/status/updatedNumberScheduled").unwrap_or(0);
            let available = int("/status/numberAvailable").unwrap_or(0);
            if updated >= wanted && available >= wanted {
                Some((
                    ReportEvent::Succeeded,
                    format!(
                        "generation {generation} rolled out: {available} of {wanted} scheduled pods available"
                    ),
                ))
            } else {
                overdue(kind, object, since, now)
            }
        }
        _ => None,
    }
}

/// `Failed` once the agent's deadline for `kind` passed since `since`.
fn overdue(
    kind: &str,
    object: &Value,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<(ReportEvent, String)> {
    if kind == "Deployment" {
        // The controller says when a Deployment is past its deadline.
        return None;
    }
    let seconds = deadline_seconds(object);
    (now - since >= TimeDelta::seconds(seconds)).then(|| {
        (
            ReportEvent::Failed,
            format!(
                "the rollout was not ready {seconds} s after it started (progress deadline, {DEADLINE_ANNOTATION})"
            ),
        )
    })
}

/// The agent's deadline for `object`'s rollouts, in seconds.
pub fn deadline_seconds(object: &Value) -> i64 {
    object
        .pointer(&format!(
            "/metadata/annotations/{}",
            DEADLINE_ANNOTATION.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_DEADLINE_SECONDS)
}

/// The revision running now, as the report of a rollback names it.
pub fn revision(kind: &str, object: &Value) -> String {
    match kind {
        "Deployment" => text(
            object,
            "/metadata/annotations/deployment.kubernetes.io~1revision",
        )
        .to_string(),
        "StatefulSet" => text(object, "/status/currentRevision").to_string(),
        _ => object
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .map(|g| format!("generation {g}"))
            .unwrap_or_default(),
    }
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}
