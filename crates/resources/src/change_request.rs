//! `ChangeRequest` (`chg`): a change as the server knows it, written as
//! YAML next to the workloads it ships. The spec is people's (the
//! operator never writes it); the status is the server's record as the
//! operator last read it, plus the map `approvals` people write with
//! kubectl.

use crate::condition::Condition;
use changegate_core::change::ChangeType;
use chrono::{DateTime, Utc};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A change request: what ships, to which workloads, when, with which
/// plans. Applying it raises the change on the changegate server (in the
/// namespace's tenant) and submits it for approval; `status` shows where
/// the change stands there.
// Each printer column repeats `type_`: not a duplicate, though clippy reads it so.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "changegate.dev",
    version = "v1",
    kind = "ChangeRequest",
    namespaced,
    shortname = "chg",
    category = "changegate",
    status = "ChangeRequestStatus",
    doc = "A change request of changegate: applying it raises the change on the changegate server in the namespace's tenant; status shows the server's record (approvals, phase, window, rollouts).",
    printcolumn(
        name = "Number",
        type_ = "string",
        json_path = ".status.number",
        description = "The server's change number"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Where the change stands on the server"
    ),
    printcolumn(
        name = "Given",
        type_ = "integer",
        json_path = ".status.approvalsGiven",
        description = "Approvals given"
    ),
    printcolumn(
        name = "Needed",
        type_ = "integer",
        json_path = ".status.approvalsNeeded",
        description = "Approvals needed"
    ),
    printcolumn(
        name = "Next window",
        type_ = "string",
        json_path = ".status.nextWindow.opensAt",
        description = "When the next window it may deploy in opens"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("!has(self.window) || (!has(self.plannedStart) && !has(self.plannedEnd))").message("give either window or plannedStart/plannedEnd, not both").field_path(".window"))]
#[x_kube(validation = Rule::new("!has(self.plannedStart) || !has(self.plannedEnd) || timestamp(self.plannedEnd) > timestamp(self.plannedStart)").message("plannedEnd must be after plannedStart").field_path(".plannedEnd"))]
#[serde(rename_all = "camelCase")]
pub struct ChangeRequestSpec {
    /// `standard` (from a pre-approved template), `normal` or `emergency`.
    #[serde(rename = "type", default = "normal")]
    pub type_: ChangeType,
    /// What the change does, in a line.
    #[schemars(length(min = 1, max = 200))]
    pub title: String,
    /// What changes and why, for the approvers.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 20000))]
    pub description: String,
    /// Why it is needed now.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 5000))]
    pub justification: String,
    /// Answers to the tenant's risk questionnaire, by question id, e.g.
    /// `production: "yes"`; the server assesses the risk from them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 50))]
    pub risk_answers: BTreeMap<String, String>,
    /// The tenant's standard-change template this change follows (for `type: standard`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Configuration items of the tenant the change touches, by name,
    /// besides those bound to its targets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub configuration_items: Vec<String>,
    /// The workloads of this namespace the change ships, and the images
    /// they may run once it is approved (the approved content).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub targets: Vec<Target>,
    /// When the change may start (RFC 3339), if planned to a slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_start: Option<DateTime<Utc>>,
    /// When the slot ends (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_end: Option<DateTime<Utc>>,
    /// A maintenance window of the tenant to deploy in, by name, instead
    /// of a planned slot: the change is planned to the opening that holds,
    /// or else follows, the resource's creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// How the change is carried out, step by step.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 20000))]
    pub implementation_plan: String,
    /// How the change is undone if it fails.
    #[serde(default, skip_serializing_if = "Backout::is_empty")]
    pub backout: Backout,
    /// How the change is tested before and after.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 20000))]
    pub test_plan: String,
    /// What testing showed (links, results).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 20000))]
    pub test_evidence: String,
    /// E-mail of who carries the change out, if already known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 254))]
    pub implementer: Option<String>,
    /// Who is told, when and how.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 5000))]
    pub communication_plan: String,
    /// Submit the change for approval (default); `false` keeps it a draft.
    #[serde(default = "yes")]
    pub submit: bool,
}

fn normal() -> ChangeType {
    ChangeType::Normal
}

fn yes() -> bool {
    true
}

/// Workloads of the resource's namespace a change ships to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.name) != has(self.selector)").message("name a workload or select workloads by labels, not both and not neither"))]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// `Deployment`, `StatefulSet`, `DaemonSet` or `CronJob`.
    pub kind: WorkloadKind,
    /// The workload's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub name: Option<String>,
    /// Workloads whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<Selector>,
    /// The images the workloads may run once approved (the approved
    /// content), ideally by digest, e.g. `registry.example/web@sha256:…`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub images: Vec<String>,
}

/// The kinds of workload changegate governs.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    CronJob,
}

impl WorkloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::CronJob => "CronJob",
        }
    }
}

/// A label selector (equality only).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    /// Labels a workload must carry, all of them.
    #[schemars(extend("minProperties" = 1, "maxProperties" = 20))]
    pub match_labels: BTreeMap<String, String>,
}

/// The backout plan.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Backout {
    /// How the change is undone.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 20000))]
    pub plan: String,
    /// On a failed rollout the operator rolls the workload back to its
    /// previous revision by itself.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub automatic: bool,
}

impl Backout {
    fn is_empty(&self) -> bool {
        self.plan.is_empty() && !self.automatic
    }
}

/// The status of a ChangeRequest: what the operator writes from the
/// server's record, and the kubectl entries people write.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRequestStatus {
    #[serde(flatten)]
    pub observed: Observed,
    /// Decisions people wrote with kubectl, keyed by their Kubernetes user
    /// name. Only what the server recorded counts (`decisions`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 100))]
    pub approvals: BTreeMap<String, KubectlApproval>,
}

/// One person's decision written with kubectl.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubectlApproval {
    /// `Approved` or `Rejected`.
    pub decision: KubectlDecision,
    /// The revision decided on; the one in status when written, if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 5000))]
    pub comment: String,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KubectlDecision {
    Approved,
    Rejected,
}

/// What the operator writes into a ChangeRequest's status (server-side
/// apply under its own field manager). It has no `approvals`: those are
/// people's, and the operator's apply never touches them.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Observed {
    /// The server's number, `CHG-n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// The change's state on the server, e.g. `awaiting-approval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The revision approvals are asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// The content fingerprint approvals sign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Approvals given to the current revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals_given: Option<i64>,
    /// Approvals the current revision needs in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals_needed: Option<i64>,
    /// What each board still awaits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub awaiting: Vec<Awaiting>,
    /// Every decision the server recorded, from any channel (the truth;
    /// `approvals` is only what people wrote here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200))]
    pub decisions: Vec<Decision>,
    /// The next window the change may deploy in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_window: Option<NextWindow>,
    /// The change's page in the portal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Rollouts of the change's workloads, as the operator followed them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub rollout: Vec<Rollout>,
    /// The rollback of the change, if there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Rollback>,
    /// `Ready`, `Stalled` and `Synced`, as kstatus reads them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the server has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// What one board still awaits.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Awaiting {
    pub board: String,
    /// Approvals still needed from it.
    pub needed: i64,
    /// Who may still give them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub from: Vec<String>,
}

/// A decision the server recorded.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub approver: String,
    /// `approve` or `reject`.
    pub decision: String,
    /// `portal`, `email`, `api` or `kubernetes`.
    pub channel: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// The approver whose seat this was decided in, if not the approver's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    pub revision: i64,
}

/// The next opening of a window.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NextWindow {
    pub name: String,
    pub opens_at: DateTime<Utc>,
}

/// One rollout of a workload the change covers.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// `Kind/name`.
    pub workload: String,
    /// The workload's revision rolled out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub images: Vec<String>,
    /// `progressing`, `succeeded` or `failed`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

/// A rollback of the change.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Rollback {
    /// What set it off, e.g. `rollout-failed`.
    pub trigger: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_revision: Option<String>,
    /// `succeeded` or `failed`.
    pub outcome: String,
    pub at: DateTime<Utc>,
}
