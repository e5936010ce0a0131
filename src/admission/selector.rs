//! Kubernetes label-selector matching (`matchLabels` and `matchExpressions`),
//! used to decide whether a workload is in a change's targets.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

/// True when `labels` satisfy `selector`. An empty selector matches
/// everything, as in Kubernetes; an unknown operator matches nothing.
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
            "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
            "Exists" => labels.contains_key(&e.key),
            "DoesNotExist" => !labels.contains_key(&e.key),
            _ => false,
        }
    });
    by_labels && by_expressions
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
