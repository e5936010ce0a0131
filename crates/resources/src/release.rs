//! `Release` (`rel`): approved changes packaged to ship together in one
//! slot, with their runbook. The spec is people's; the status is the
//! server's release as the operator last read it, plus the map
//! `authorizations` people write with kubectl.

use crate::condition::Condition;
use crate::to_record::Invalid;
use chrono::{DateTime, Utc};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A release of changegate: the changes it ships (ChangeRequests of this
/// namespace by name, or `CHG-n` of the tenant), its slot and runbook.
// Each printer column repeats `type_`: not a duplicate, though clippy reads it so.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "changegate.dev",
    version = "v1",
    kind = "Release",
    namespaced,
    shortname = "rel",
    category = "changegate",
    status = "ReleaseStatus",
    doc = "A release of changegate: approved changes shipped together in one slot with a runbook; status shows the server's release.",
    printcolumn(
        name = "Number",
        type_ = "string",
        json_path = ".status.number",
        description = "The server's release number"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Where the release stands on the server"
    ),
    printcolumn(
        name = "Outcome",
        type_ = "string",
        json_path = ".status.outcome",
        description = "How it went"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("!has(self.plannedStart) || !has(self.plannedEnd) || timestamp(self.plannedEnd) > timestamp(self.plannedStart)").message("plannedEnd must be after plannedStart").field_path(".plannedEnd"))]
#[serde(rename_all = "camelCase")]
pub struct ReleaseSpec {
    /// The changes it ships: ChangeRequests of this namespace by name, or
    /// `CHG-n` of the namespace's tenant.
    #[schemars(length(min = 1, max = 50))]
    pub changes: Vec<String>,
    /// What the release delivers, for the people who authorize it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 20000))]
    pub description: String,
    /// When it may start (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_start: Option<DateTime<Utc>>,
    /// When its slot ends (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_end: Option<DateTime<Utc>>,
    /// Its steps, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub runbook: Vec<RunbookStep>,
}

/// One planned step of a runbook.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunbookStep {
    /// `deploy`, `validate` or `rollback`.
    pub kind: changegate_core::release::StepKind,
    #[schemars(length(min = 1, max = 200))]
    pub title: String,
    /// E-mail of who carries it out.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 254))]
    pub owner: String,
    /// The change it delivers or checks (a ChangeRequest's name or `CHG-n`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
}

/// The status of a Release.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseStatus {
    #[serde(flatten)]
    pub observed: ReleaseObserved,
    /// Phase authorizations people wrote with kubectl: user name → phase →
    /// note. Only what the server recorded counts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 50))]
    pub authorizations: BTreeMap<String, BTreeMap<String, Authorization>>,
}

/// One phase authorization written with kubectl.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 5000))]
    pub note: String,
}

/// What the operator writes into a Release's status.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseObserved {
    /// The server's number, `REL-n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// Where it stands on the server: `planning`, `build-and-test`,
    /// `ready`, `deploying`, `rolling-back`, `finished`, `closed` or
    /// `cancelled`; `waiting` until every change it names is approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The runbook's steps as recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub steps: Vec<StepStatus>,
    /// Conflicts with other work in its slot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub conflicts: Vec<String>,
    /// `succeeded`, `failed` or `rolled-back`, once it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The release's page in the portal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The rollouts the operator followed under the release's changes, as
    /// the server recorded them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub rollout: Vec<crate::change_request::Rollout>,
    /// A rollback of one of its changes, if there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<crate::change_request::Rollback>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A runbook step as recorded.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StepStatus {
    pub title: String,
    /// `pending`, `done`, `failed` or `skipped`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_by: Option<String>,
}

impl ReleaseSpec {
    /// Why this spec cannot be applied, judged without the server: each
    /// change named once, as a ChangeRequest's name or `CHG-n`; each step
    /// about a change the release ships; each owner an e-mail address.
    pub fn refusal(&self) -> Option<Invalid> {
        let invalid = |field: String, message: String| Some(Invalid { field, message });
        for (i, c) in self.changes.iter().enumerate() {
            if !is_change_ref(c) {
                return invalid(
                    format!("spec.changes[{i}]"),
                    format!(
                        "{c:?} is neither a ChangeRequest's name in this namespace nor a change number like CHG-12"
                    ),
                );
            }
            if self.changes[..i].iter().any(|d| same_ref(d, c)) {
                return invalid(format!("spec.changes[{i}]"), format!("{c} is named twice"));
            }
        }
        for (i, s) in self.runbook.iter().enumerate() {
            if s.title.trim().is_empty() {
                return invalid(
                    format!("spec.runbook[{i}].title"),
                    "say what the step does".into(),
                );
            }
            if let Some(c) = &s.change
                && !self.changes.iter().any(|d| same_ref(d, c))
            {
                return invalid(
                    format!("spec.runbook[{i}].change"),
                    format!(
                        "{c} is not one of spec.changes; a step is about a change the release ships"
                    ),
                );
            }
            if !s.owner.is_empty()
                && let Err(e) = changegate_core::Email::parse(&s.owner)
            {
                return invalid(format!("spec.runbook[{i}].owner"), e.message);
            }
        }
        None
    }
}

/// `CHG-n`, or a Kubernetes object name (RFC 1123 subdomain).
fn is_change_ref(s: &str) -> bool {
    if s.parse::<changegate_core::ChangeNumber>().is_ok() {
        return true;
    }
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// Two references to one change: the same name, or the same number.
fn same_ref(a: &str, b: &str) -> bool {
    match (
        a.parse::<changegate_core::ChangeNumber>(),
        b.parse::<changegate_core::ChangeNumber>(),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(changes: &[&str], steps: &[(&str, &str, Option<&str>)]) -> ReleaseSpec {
        ReleaseSpec {
            changes: changes.iter().map(|c| c.to_string()).collect(),
            description: String::new(),
            planned_start: None,
            planned_end: None,
            runbook: steps
                .iter()
                .map(|(title, owner, change)| RunbookStep {
                    kind: changegate_core::release::StepKind::Deploy,
                    title: title.to_string(),
                    owner: owner.to_string(),
                    change: change.map(str::to_string),
                })
                .collect(),
        }
    }

    fn field(s: &ReleaseSpec) -> Option<String> {
        s.refusal().map(|i| i.field)
    }

    #[test]
    fn a_release_spec_is_refused_naming_the_field() {
        assert_eq!(field(&spec(&["web-2-4-1", "CHG-7"], &[])), None);
        assert_eq!(
            field(&spec(&["Web_2"], &[])).as_deref(),
            Some("spec.changes[0]")
        );
        assert_eq!(
            field(&spec(&["CHG-7", "chg-7"], &[])).as_deref(),
            Some("spec.changes[1]")
        );
        assert_eq!(
            field(&spec(&["web"], &[("Deploy", "", Some("api"))])).as_deref(),
            Some("spec.runbook[0].change")
        );
        assert_eq!(
            field(&spec(&["web"], &[("Deploy", "not-mail", Some("web"))])).as_deref(),
            Some("spec.runbook[0].owner")
        );
        assert_eq!(
            field(&spec(&["web"], &[("  ", "", None)])).as_deref(),
            Some("spec.runbook[0].title")
        );
        assert_eq!(
            field(&spec(
                &["web", "CHG-3"],
                &[("Deploy", "eve@a.example", Some("CHG-3"))]
            )),
            None
        );
    }
}
