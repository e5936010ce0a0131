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
    /// The configuration items a change from this template may name.
    #[serde(default)]
    pub configuration_items: Vec<String>,
    /// Kinds of configuration items it may name besides those (e.g.
    /// `m365-tenant`): any item of the tenant of such a kind.
    #[serde(default)]
    pub configuration_item_kinds: Vec<String>,
    /// The artifacts (image digests, artifact hashes) it may ship, as
    /// patterns where `*` stands for any text, e.g.
    /// `registry.example/mailbox-tool@sha256:*`. None: it ships no artifact.
    #[serde(default)]
    pub allowed_artifacts: Vec<String>,
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

    /// What `scope` names beyond what this template pre-approves, each
    /// said in words (empty: the change stays inside the template).
    /// `kind_of` gives the kind of one of the tenant's configuration items.
    pub fn beyond(
        &self,
        scope: &Scope<'_>,
        kind_of: impl Fn(&str) -> Option<String>,
    ) -> Vec<String> {
        let mut outside = Vec::new();
        for item in scope.configuration_items.iter().map(|i| i.trim()) {
            let named = self.configuration_items.iter().any(|i| i.trim() == item);
            let of_kind = kind_of(item)
                .is_some_and(|k| self.configuration_item_kinds.iter().any(|t| t.trim() == k));
            if !named && !of_kind {
                outside.push(format!(
                    "configuration item {item} is not among the template's ({})",
                    listed(
                        self.configuration_items
                            .iter()
                            .chain(&self.configuration_item_kinds)
                    )
                ));
            }
        }
        for artifact in scope.artifacts.iter().map(|a| a.trim()) {
            if !self
                .allowed_artifacts
                .iter()
                .any(|p| matches_pattern(p.trim(), artifact))
            {
                outside.push(format!(
                    "artifact {artifact} is not among the template's allowed artifacts ({})",
                    listed(self.allowed_artifacts.iter())
                ));
            }
        }
        for (what, theirs, ours) in [
            (
                "implementation plan",
                scope.implementation_plan,
                &self.implementation_plan,
            ),
            ("backout plan", scope.backout_plan, &self.backout_plan),
        ] {
            // Left empty, the change follows the template's own plan.
            if !theirs.trim().is_empty() && theirs.trim() != ours.trim() {
                outside.push(format!("its {what} is not the template's"));
            }
        }
        outside
    }
}

/// What a standard change names that its template bounds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    pub configuration_items: &'a [String],
    pub artifacts: &'a [String],
    pub implementation_plan: &'a str,
    pub backout_plan: &'a str,
}

fn listed<'a>(items: impl Iterator<Item = &'a String>) -> String {
    let all: Vec<&str> = items.map(|s| s.as_str()).collect();
    if all.is_empty() {
        "none".into()
    } else {
        all.join(", ")
    }
}

/// Does `text` match `pattern`, where `*` stands for any text (none
/// included) and every other character for itself?
pub fn matches_pattern(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = match parts.split_first() {
        Some(split) => split,
        None => return text.is_empty(),
    };
    let Some(mut tail) = text.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return tail.is_empty();
    };
    for part in middle {
        match tail.find(part) {
            Some(at) => tail = &tail[at + part.len()..],
            None => return false,
        }
    }
    tail.ends_with(last)
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

    fn mailbox() -> Template {
        serde_json::from_value(serde_json::json!({
            "title": "Add a shared mailbox", "implementationPlan": "New-Mailbox -Shared",
            "backoutPlan": "Remove-Mailbox", "configurationItems": ["m365-tenant"],
            "configurationItemKinds": ["mail-domain"],
            "allowedArtifacts": ["registry.example/mailbox-tool@sha256:*"],
            "approvedBy": "cm@msp.example", "approvedOn": "2026-01-05", "reviewDue": "2027-07-01"
        }))
        .expect("parses")
    }

    fn kinds(item: &str) -> Option<String> {
        match item {
            "edge-firewall" => Some("firewall".into()),
            "mail-b" => Some("mail-domain".into()),
            _ => None,
        }
    }

    #[test]
    fn a_change_inside_its_template_is_not_beyond_it() {
        let items = vec!["m365-tenant".to_string(), "mail-b".into()];
        let artifacts = vec!["registry.example/mailbox-tool@sha256:abc".to_string()];
        let scope = Scope {
            configuration_items: &items,
            artifacts: &artifacts,
            implementation_plan: "New-Mailbox -Shared",
            backout_plan: "",
        };
        assert_eq!(mailbox().beyond(&scope, kinds), Vec::<String>::new());
    }

    #[test]
    fn another_item_another_artifact_or_another_plan_is_beyond_the_template() {
        let items = vec!["edge-firewall".to_string()];
        let artifacts = vec!["registry.example/firewall@sha256:bad".to_string()];
        let scope = Scope {
            configuration_items: &items,
            artifacts: &artifacts,
            implementation_plan: "open port 22 to the world",
            backout_plan: "Remove-Mailbox",
        };
        let beyond = mailbox().beyond(&scope, kinds);
        assert_eq!(beyond.len(), 3, "{beyond:?}");
        assert!(beyond[0].contains("edge-firewall"), "{beyond:?}");
        assert!(
            beyond[1].contains("registry.example/firewall@sha256:bad"),
            "{beyond:?}"
        );
        assert!(beyond[2].contains("implementation plan"), "{beyond:?}");
    }

    #[test]
    fn a_template_without_allowed_artifacts_ships_none() {
        let mut t = mailbox();
        t.allowed_artifacts.clear();
        let artifacts = vec!["anything".to_string()];
        let scope = Scope {
            artifacts: &artifacts,
            ..Scope::default()
        };
        assert_eq!(t.beyond(&scope, kinds).len(), 1);
    }

    #[test]
    fn patterns_match_with_stars_and_nothing_else() {
        assert!(matches_pattern("a@sha256:*", "a@sha256:ff"));
        assert!(matches_pattern("a@sha256:*", "a@sha256:"));
        assert!(!matches_pattern("a@sha256:*", "b@sha256:ff"));
        assert!(matches_pattern("*", "anything"));
        assert!(matches_pattern("reg/*/app@*", "reg/team/app@sha256:1"));
        assert!(!matches_pattern("reg/*/app@*", "reg/team/other@sha256:1"));
        assert!(matches_pattern("exact", "exact"));
        assert!(!matches_pattern("exact", "exactly"));
        assert!(!matches_pattern("", "x"));
        assert!(matches_pattern("a*b*c", "abc"));
        assert!(!matches_pattern("a*b*c", "acb"));
        assert!(!matches_pattern("ab*ba", "aba"));
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
