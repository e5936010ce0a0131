//! ChangeRequest: the what and why of one change, its approvals, rollout and
//! hash-chained history. Namespaced: it lives with the tenant.

use super::common::{ChangeType, Risk, WorkloadKind, conditions_schema};
use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Annotation stamped by the mutating webhook with the creating user (contract).
pub const REQUESTED_BY: &str = "changegate.dev/requested-by";

/// A request to change workloads in this namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "changegate.dev",
    version = "v1alpha1",
    kind = "ChangeRequest",
    plural = "changerequests",
    shortname = "chg",
    category = "changegate",
    namespaced,
    status = "ChangeRequestStatus",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Risk","type":"string","jsonPath":".spec.risk"}"#,
    printcolumn = r#"{"name":"Approvals","type":"string","jsonPath":".status.approvalSummary"}"#,
    printcolumn = r#"{"name":"Window","type":"string","jsonPath":".status.window"}"#,
    printcolumn = r#"{"name":"Title","type":"string","priority":1,"jsonPath":".spec.title"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("self.type != 'Standard' || has(self.standardChange)")
        .message("spec.standardChange is required when spec.type is Standard").field_path(".standardChange"),
    validation = Rule::new("self.type == 'Standard' || !has(self.standardChange)")
        .message("spec.standardChange is only allowed when spec.type is Standard").field_path(".standardChange")
)]
pub struct ChangeRequestSpec {
    /// `Standard` (pre-approved catalogue item), `Normal` or `Emergency`.
    #[serde(rename = "type")]
    pub change_type: ChangeType,
    /// Name of the catalogue entry in the tenant's ChangePolicy (Standard only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub standard_change: Option<String>,
    /// One line saying what changes.
    #[schemars(length(min = 1, max = 256))]
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Why the change is needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    #[serde(default)]
    pub risk: Risk,
    /// Who or what is affected if it goes wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact: Option<String>,
    /// The workloads in this namespace the change covers.
    #[schemars(length(min = 1, max = 64))]
    pub targets: Vec<Target>,
    /// Optional earliest and latest time the change may be implemented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ChangeSchedule>,
    /// How the change is undone if it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backout: Option<Backout>,
    /// `true` withdraws the change; the only spec edit allowed after the first decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel: Option<bool>,
}

/// A workload the change covers: by name or by label selector.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    cel,
    validation = Rule::new("has(self.name) != has(self.selector)").message("a target sets exactly one of name or selector")
)]
pub struct Target {
    pub kind: WorkloadKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// When set, the only container images this change may roll out
    /// (approval bound to content).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub images: Vec<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("!has(self.notBefore) || !has(self.notAfter) || self.notAfter > self.notBefore")
        .message("schedule.notAfter must be after schedule.notBefore").field_path(".notAfter")
)]
pub struct ChangeSchedule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<DateTime<Utc>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
pub struct Backout {
    pub strategy: BackoutStrategy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum BackoutStrategy {
    Automatic,
    #[default]
    Manual,
    None,
}

/// Lifecycle phase of a change (contract).
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, schemars::JsonSchema,
)]
pub enum ChangePhase {
    #[default]
    PendingApproval,
    Approved,
    Implementing,
    Implemented,
    Failed,
    RolledBack,
    Closed,
    Rejected,
    Expired,
    Cancelled,
}

impl ChangePhase {
    pub const ALL: [ChangePhase; 10] = [
        Self::PendingApproval,
        Self::Approved,
        Self::Implementing,
        Self::Implemented,
        Self::Failed,
        Self::RolledBack,
        Self::Closed,
        Self::Rejected,
        Self::Expired,
        Self::Cancelled,
    ];

    /// No further transition is possible.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Closed | Self::Rejected | Self::Expired | Self::Cancelled
        )
    }
}

impl fmt::Display for ChangePhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum Decision {
    Approved,
    Rejected,
}

/// One approval or rejection. `approver`, `groups` and `at` are stamped by
/// the mutating webhook from the request's userInfo; what a client sends for
/// them is overwritten.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
pub struct ApprovalRecord {
    pub decision: Decision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
}

/// Post-implementation review; `reviewer` and `at` are stamped like approvals.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
pub struct Review {
    pub outcome: ReviewOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum ReviewOutcome {
    Successful,
    PartiallySuccessful,
    Failed,
}

/// Progress of one approval rule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub struct RuleProgress {
    pub group: String,
    pub count: u32,
    pub received: u32,
    /// Owed after implementation (emergency changes).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retrospective: bool,
}

/// A workload change admitted under this change.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
pub struct Implementation {
    pub kind: WorkloadKind,
    pub name: String,
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    pub at: DateTime<Utc>,
}

/// Rollout progress of one target workload.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetRollout {
    pub kind: WorkloadKind,
    pub name: String,
    pub state: RolloutState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum RolloutState {
    Progressing,
    Succeeded,
    Failed,
}

/// What a rollback did.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackRecord {
    pub triggered_at: DateTime<Utc>,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_revision: Option<String>,
}

/// One phase transition; `hash` chains it to the previous entry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
pub struct HistoryEntry {
    pub phase: ChangePhase,
    pub at: DateTime<Utc>,
    pub by: String,
    pub reason: String,
    pub hash: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRequestStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ChangePhase>,
    /// Append-only decisions (contract).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub approvals: Vec<ApprovalRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<Review>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_approvals: Vec<RuleProgress>,
    /// `received/required`, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_summary: Option<String>,
    /// The window the change waits for or runs in, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub implementations: Vec<Implementation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollout: Vec<TargetRollout>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackRecord>,
    /// Append-only, hash-chained transitions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

impl ChangeRequest {
    pub fn phase(&self) -> ChangePhase {
        self.status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or_default()
    }

    pub fn requested_by(&self) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()?
            .get(REQUESTED_BY)
            .map(String::as_str)
    }

    pub fn approvals(&self) -> &[ApprovalRecord] {
        self.status.as_ref().map_or(&[], |s| s.approvals.as_slice())
    }
}
