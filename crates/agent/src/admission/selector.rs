//! Kubernetes label-selector matching (`matchLabels` and `matchExpressions`),
//! used to decide whether a workload is in a change's targets.
//!
//! kube's `Selector` has the same semantics (a property test holds this
//! matcher to it) but converts an owned `LabelSelector` on every call;
//! admission matches every change's selector targets on every request, and
//! with 1,000 of them that conversion made the decision five times slower.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

/// True when `labels` satisfy `selector`. An empty selector matches
/// everything, as in Kubernetes; an unknown operator, or `In` / `NotIn`
/// without values, matches nothing.
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref();
        match (e.operator.as_str(), values) {
            ("In", Some(values)) => labels.get(&e.key).is_some_and(|v| values.contains(v)),
            ("NotIn", Some(values)) => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
            ("Exists", _) => labels.contains_key(&e.key),
            ("DoesNotExist", _) => !labels.contains_key(&e.key),
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

    mod agrees_with_kube {
        use super::*;
        use kube::core::{Selector, SelectorExt};
        use proptest::prelude::*;

        fn word() -> impl Strategy<Value = String> {
            prop::sample::select(vec!["a", "b", "c"]).prop_map(String::from)
        }

        fn requirement() -> impl Strategy<Value = LabelSelectorRequirement> {
            (
                word(),
                prop::sample::select(vec!["In", "NotIn", "Exists", "DoesNotExist", "Bogus"]),
                prop::option::of(prop::collection::vec(word(), 0..3)),
            )
                .prop_map(|(key, op, values)| LabelSelectorRequirement {
                    key,
                    operator: op.into(),
                    values,
                })
        }

        proptest! {
            #[test]
            fn on_any_selector_and_labels(
                match_labels in prop::option::of(prop::collection::btree_map(word(), word(), 0..3)),
                match_expressions in prop::option::of(prop::collection::vec(requirement(), 0..3)),
                labels in prop::collection::btree_map(word(), word(), 0..3),
            ) {
                let selector = LabelSelector { match_labels, match_expressions };
                let kube = Selector::try_from(selector.clone()).is_ok_and(|s| s.matches(&labels));
                prop_assert_eq!(matches(&selector, &labels), kube);
            }
        }
    }
}
