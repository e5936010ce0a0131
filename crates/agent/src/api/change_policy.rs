//! ChangePolicy: who must approve what, per tenant. Cluster-scoped, owned by
//! the MSP; a policy with no tenants is the default for tenants without one.

use super::common::{ChangeType, GroupCount, Risk, WorkloadKind, conditions_schema};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Approval rules, risk routing, the standard-change catalogue and the
/// process controls for one or more tenants.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "changegate.dev",
    version = "v1alpha1",
    kind = "ChangePolicy",
    plural = "changepolicies",
    shortname = "cpol",
    category = "changegate",
    status = "ChangePolicyStatus",
    printcolumn = r#"{"name":"Enforcement","type":"string","jsonPath":".spec.enforcement"}"#,
    printcolumn = r#"{"name":"Tenants","type":"string","jsonPath":".spec.tenants"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ChangePolicySpec {
    /// Tenants this policy governs; empty makes it the default for every
    /// tenant that no other policy names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub tenants: Vec<String>,
    /// `Enforce` denies uncovered changes, `Warn` admits them with warnings,
    /// `Off` disables gating.
    #[serde(default)]
    pub enforcement: Enforcement,
    /// Approvals each change type needs; all rules must be met.
    #[serde(default)]
    pub approvals: Approvals,
    /// Extra approvals by risk level, on top of the type's rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub risk_routing: Vec<RiskRoute>,
    /// The pre-approved catalogue of standard changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(max = 128))]
    pub standard_changes: Vec<StandardChange>,
    /// The requester may not approve their own change, and one person's
    /// approval counts once. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separation_of_duties: Option<bool>,
    /// Change types that may deploy only inside an open maintenance window.
    /// Default `[Normal, Standard]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub require_window: Option<Vec<ChangeType>>,
    /// Change types that need a post-implementation review before they
    /// close. Default `[Normal, Emergency]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub require_review: Option<Vec<ChangeType>>,
    /// A change not approved within this time expires, e.g. `72h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("duration(self) > duration('0s')").message("approvalTimeout must be greater than zero"))]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"))]
    pub approval_timeout: Option<kube::core::Duration>,
    /// Extra spec paths (besides `spec.replicas`) whose changes admission
    /// ignores, e.g. `spec.template.metadata.annotations`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub ignore_paths: Vec<String>,
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, schemars::JsonSchema,
)]
pub enum Enforcement {
    #[default]
    Enforce,
    Warn,
    Off,
}

/// Approval rules per change type.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Approvals {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["group".into()]))]
    #[schemars(length(max = 16))]
    pub standard: Vec<GroupCount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["group".into()]))]
    #[schemars(length(max = 16))]
    pub normal: Vec<GroupCount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["group".into()]))]
    #[schemars(length(max = 16))]
    pub emergency: Vec<GroupCount>,
    /// Approvals owed after an emergency change was implemented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrospective: Option<Retrospective>,
}

/// Approvals an emergency change owes after implementation, and by when.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Retrospective {
    #[x_kube(merge_strategy = ListMerge::Map(vec!["group".into()]))]
    #[schemars(length(min = 1, max = 16))]
    pub rules: Vec<GroupCount>,
    /// Deadline after implementation, e.g. `24h`.
    #[x_kube(validation = Rule::new("duration(self) > duration('0s')").message("retrospective.within must be greater than zero"))]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"))]
    pub within: kube::core::Duration,
}

/// Extra approvals for changes at or above a risk level.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RiskRoute {
    pub min_risk: Risk,
    #[x_kube(merge_strategy = ListMerge::Map(vec!["group".into()]))]
    #[schemars(length(min = 1, max = 16))]
    pub require: Vec<GroupCount>,
}

/// A pre-approved, repeatable change: needs no approval, but may touch only
/// `allowedPaths` of the listed kinds.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StandardChange {
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[schemars(length(min = 1))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub kinds: Vec<WorkloadKind>,
    /// Paths the change may touch, e.g. `spec.template.spec.containers[*].image`.
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub allowed_paths: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangePolicyStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// Lets code that selects among policies take owned objects or the `Arc`s
/// of a reflector store alike.
impl AsRef<ChangePolicy> for ChangePolicy {
    fn as_ref(&self) -> &ChangePolicy {
        self
    }
}

impl ChangePolicySpec {
    pub fn separation_of_duties(&self) -> bool {
        self.separation_of_duties.unwrap_or(true)
    }

    pub fn requires_window(&self, t: ChangeType) -> bool {
        match &self.require_window {
            Some(types) => types.contains(&t),
            None => matches!(t, ChangeType::Normal | ChangeType::Standard),
        }
    }

    pub fn requires_review(&self, t: ChangeType) -> bool {
        match &self.require_review {
            Some(types) => types.contains(&t),
            None => matches!(t, ChangeType::Normal | ChangeType::Emergency),
        }
    }

    pub fn standard_change(&self, name: &str) -> Option<&StandardChange> {
        self.standard_changes.iter().find(|s| s.name == name)
    }
}
