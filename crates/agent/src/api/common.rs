//! Vocabulary shared by every changegate resource: change types, risk levels,
//! approval rules, time intervals and status conditions.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The ITIL change type: how much process a change goes through.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub enum ChangeType {
    /// Pre-approved, low-risk and repeatable; listed in a policy's catalogue.
    Standard,
    /// Assessed and approved before implementation.
    Normal,
    /// Fixes an incident now; approvals may follow retrospectively.
    Emergency,
}

impl ChangeType {
    pub const ALL: [ChangeType; 3] = [
        ChangeType::Standard,
        ChangeType::Normal,
        ChangeType::Emergency,
    ];
}

impl fmt::Display for ChangeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The CRDs spell change types in PascalCase, the domain in kebab-case;
/// the variants are the same three.
impl From<ChangeType> for changegate_core::change::ChangeType {
    fn from(change_type: ChangeType) -> Self {
        match change_type {
            ChangeType::Standard => Self::Standard,
            ChangeType::Normal => Self::Normal,
            ChangeType::Emergency => Self::Emergency,
        }
    }
}

/// Risk of a change, ordered from lowest to highest.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    JsonSchema,
)]
pub enum Risk {
    #[default]
    Low,
    Medium,
    High,
    Critical,
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// `count` distinct people from Kubernetes group `group` must approve.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub struct GroupCount {
    /// A Kubernetes group as the API server reports it in `userInfo.groups`,
    /// for example `client-a:approvers` or `msp:cab`.
    #[schemars(length(min = 1))]
    pub group: String,
    /// How many distinct members of the group must approve.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 20))]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// A half-open time interval `[start, end)`.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub struct Interval {
    /// RFC 3339 start, inclusive.
    pub start: DateTime<Utc>,
    /// RFC 3339 end, exclusive.
    pub end: DateTime<Utc>,
}

impl Interval {
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }
}

/// The kinds of workload changegate gates.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    CronJob,
}

impl WorkloadKind {
    pub fn from_kind(kind: &str) -> Option<Self> {
        match kind {
            "Deployment" => Some(Self::Deployment),
            "StatefulSet" => Some(Self::StatefulSet),
            "DaemonSet" => Some(Self::DaemonSet),
            "CronJob" => Some(Self::CronJob),
            _ => None,
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Schema for `conditions`: a list-map keyed by `type`, as Kubernetes API
/// conventions ask, so server-side apply merges conditions one by one.
pub fn conditions_schema(generator: &mut SchemaGenerator) -> Schema {
    let item = generator.subschema_for::<Condition>();
    json_schema!({
        "type": "array",
        "description": "Conditions in Kubernetes convention, one per type.",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": item,
    })
}
