//! Standard-change templates and configuration items: the per-tenant
//! catalogue a change refers to.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::ids::{Email, InvalidValue};

/// A pre-approved standard change: its fields, steps, the configuration
/// items it may touch and (for Kubernetes) the spec paths, who approved
/// it and when it is due for review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Template {
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub implementation_plan: String,
    #[serde(default)]
    pub test_plan: String,
    #[serde(default)]
    pub backout_plan: String,
    /// Variables the requester fills in, with their defaults.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub steps: Vec<String>,
    #[serde(default)]
    pub configuration_items: Vec<String>,
    /// Kubernetes spec paths a standard change may touch, e.g. `spec.replicas`.
    #[serde(default)]
    pub allowed_paths: Vec<String>,
    pub approved_by: Email,
    pub approved_on: NaiveDate,
    pub review_due: NaiveDate,
}

impl Template {
    pub fn validate(&self) -> Result<(), InvalidValue> {
        if self.title.trim().is_empty() {
            return Err(InvalidValue::new("title", "a template needs a title"));
        }
        if self.review_due <= self.approved_on {
            return Err(InvalidValue::new(
                "reviewDue",
                "the review is due after the approval date",
            ));
        }
        Ok(())
    }

    /// Past its review date a template no longer pre-approves anything.
    pub fn is_current(&self, today: NaiveDate) -> bool {
        today < self.review_due
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Criticality {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

/// A service or system a change affects, optionally bound to an
/// enforcement point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigurationItem {
    /// e.g. `kubernetes-workload`, `firewall`, `m365-tenant`, `application`.
    pub kind: String,
    #[serde(default)]
    pub owner: Option<Email>,
    #[serde(default)]
    pub criticality: Criticality,
    #[serde(default)]
    pub environment: String,
    #[serde(default)]
    pub enforcement: Option<Enforcement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum Enforcement {
    Kubernetes(WorkloadBinding),
    Pipeline { environment: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadBinding {
    pub cluster: String,
    pub namespace: String,
    /// Deployment, StatefulSet, DaemonSet or CronJob.
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
}

impl ConfigurationItem {
    pub fn validate(&self) -> Result<(), InvalidValue> {
        if self.kind.trim().is_empty() {
            return Err(InvalidValue::new(
                "kind",
                "say what kind of item this is, e.g. firewall",
            ));
        }
        if let Some(Enforcement::Kubernetes(w)) = &self.enforcement {
            const KINDS: [&str; 4] = ["Deployment", "StatefulSet", "DaemonSet", "CronJob"];
            if !KINDS.contains(&w.kind.as_str()) {
                return Err(InvalidValue::new(
                    "enforcement.kubernetes.kind",
                    format!(
                        "{:?} cannot be gated; use one of {}",
                        w.kind,
                        KINDS.join(", ")
                    ),
                ));
            }
            if w.name.is_some() != w.selector.is_empty() {
                return Err(InvalidValue::new(
                    "enforcement.kubernetes",
                    "bind a workload by name or by selector, not both and not neither",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workload_binding_needs_a_name_or_a_selector() {
        let ci: ConfigurationItem = serde_json::from_value(serde_json::json!({
            "kind": "kubernetes-workload",
            "enforcement": {"kubernetes": {"cluster": "prod", "namespace": "pay", "kind": "Deployment"}}
        }))
        .expect("parses");
        assert_eq!(ci.validate().unwrap_err().field, "enforcement.kubernetes");
    }

    #[test]
    fn ungateable_kinds_are_refused() {
        let ci: ConfigurationItem = serde_json::from_value(serde_json::json!({
            "kind": "kubernetes-workload",
            "enforcement": {"kubernetes": {"cluster": "prod", "namespace": "pay", "kind": "Pod", "name": "x"}}
        }))
        .expect("parses");
        assert_eq!(
            ci.validate().unwrap_err().field,
            "enforcement.kubernetes.kind"
        );
    }

    #[test]
    fn templates_expire_at_their_review_date() {
        let t: Template = serde_json::from_value(serde_json::json!({
            "title": "Restart app pool", "approvedBy": "cab@msp.example",
            "approvedOn": "2026-01-01", "reviewDue": "2027-01-01"
        }))
        .expect("parses");
        assert!(t.validate().is_ok());
        assert!(t.is_current(NaiveDate::from_ymd_opt(2026, 12, 31).expect("date")));
        assert!(!t.is_current(NaiveDate::from_ymd_opt(2027, 1, 1).expect("date")));
    }
}
