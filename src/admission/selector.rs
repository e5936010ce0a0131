//! Whether a workload is in a change's targets by label selector, with
//! kube's own selector semantics (`matchLabels` and `matchExpressions`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};
use std::collections::BTreeMap;

/// True when `labels` satisfy `selector`. An empty selector matches
/// everything, as in Kubernetes; an unknown operator matches nothing.
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    Selector::try_from(selector.clone()).is_ok_and(|s| s.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(ToString::to_string).collect()),
        }
    }

    #[test]
    fn match_labels_must_all_agree() {
        let s = LabelSelector {
            match_labels: Some(labels(&[("app", "web"), ("tier", "front")])),
            ..Default::default()
        };
        assert!(matches(
            &s,
            &labels(&[("app", "web"), ("tier", "front"), ("x", "y")])
        ));
        assert!(!matches(&s, &labels(&[("app", "web")])));
    }

    #[test]
    fn expressions_follow_kubernetes_semantics() {
        let s = LabelSelector {
            match_expressions: Some(vec![
                expr("env", "In", &["prod", "staging"]),
                expr("canary", "DoesNotExist", &[]),
                expr("team", "NotIn", &["legacy"]),
            ]),
            ..Default::default()
        };
        assert!(matches(&s, &labels(&[("env", "prod")])));
        assert!(!matches(&s, &labels(&[("env", "dev")])));
        assert!(!matches(&s, &labels(&[("env", "prod"), ("canary", "1")])));
        assert!(!matches(
            &s,
            &labels(&[("env", "prod"), ("team", "legacy")])
        ));
        assert!(!matches(
            &LabelSelector {
                match_expressions: Some(vec![expr("a", "Bogus", &[])]),
                ..Default::default()
            },
            &labels(&[])
        ));
    }
}
