//! `Release` (`rel`): approved changes packaged to ship together in one
//! slot, with their runbook. The spec is people's; the status is the
//! server's release as the operator last read it, plus the map
//! `authorizations` people write with kubectl.

use crate::condition::Condition;
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
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
