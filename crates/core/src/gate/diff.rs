//! What a workload update really changes: the leaf paths under `spec` whose
//! values differ, with `spec.replicas` (owned by autoscalers) and a policy's
//! ignore list left out.

use super::paths::{FieldPath, PathPattern};
use serde_json::Value;

/// Paths admission always ignores: autoscalers own the replica count.
const ALWAYS_IGNORED: &[&str] = &["spec.replicas"];

/// The changed paths between `old.spec` and `new.spec`, minus `ignored`.
pub fn spec_changes(old: &Value, new: &Value, ignored: &[PathPattern]) -> Vec<FieldPath> {
    let root = FieldPath::default().child_key("spec");
    let mut changes = Vec::new();
    diff(
        old.get("spec").unwrap_or(&Value::Null),
        new.get("spec").unwrap_or(&Value::Null),
        &root,
        &mut changes,
    );
    changes.retain(|p| !ignored.iter().any(|pattern| pattern.covers(p)));
    changes
}

/// The always-ignored paths plus the policy's own, skipping any that do not
/// parse (the policy webhook rejects those at write time).
pub fn ignore_list(policy_paths: &[String]) -> Vec<PathPattern> {
    ALWAYS_IGNORED
        .iter()
        .copied()
        .chain(policy_paths.iter().map(String::as_str))
        .filter_map(|p| PathPattern::parse(p).ok())
        .collect()
}

fn diff(old: &Value, new: &Value, at: &FieldPath, out: &mut Vec<FieldPath>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                diff(va, b.get(k).unwrap_or(&Value::Null), &at.child_key(k), out);
            }
            for (k, vb) in b {
                if !a.contains_key(k) {
                    diff(&Value::Null, vb, &at.child_key(k), out);
                }
            }
        }
        // Element-wise, so `containers[*].image` patterns can match; a
        // length change is a change of the list itself.
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                diff(va, vb, &at.child_index(i), out);
            }
        }
        (a, b) if a == b => {}
        // An empty object or list is the same as an absent one.
        (Value::Null, Value::Object(m)) | (Value::Object(m), Value::Null) if m.is_empty() => {}
        (Value::Null, Value::Array(v)) | (Value::Array(v), Value::Null) if v.is_empty() => {}
        _ => out.push(at.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(image: &str, replicas: u32) -> Value {
        json!({"metadata": {"name": "web", "labels": {"app": "web"}},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}}})
    }

    fn changes(old: &Value, new: &Value, extra: &[&str]) -> Vec<String> {
        let ignored = ignore_list(&extra.iter().map(ToString::to_string).collect::<Vec<_>>());
        spec_changes(old, new, &ignored)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn an_image_change_is_a_spec_change() {
        assert_eq!(
            changes(&deployment("a:1", 3), &deployment("a:2", 3), &[]),
            ["spec.template.spec.containers[0].image"]
        );
    }

    #[test]
    fn scaling_is_not_a_change() {
        assert!(changes(&deployment("a:1", 3), &deployment("a:1", 7), &[]).is_empty());
    }

    #[test]
    fn metadata_only_updates_are_not_changes() {
        let mut new = deployment("a:1", 3);
        new["metadata"]["labels"]["team"] = json!("payments");
        assert!(changes(&deployment("a:1", 3), &new, &[]).is_empty());
    }

    #[test]
    fn the_policy_ignore_list_is_honoured() {
        let mut new = deployment("a:1", 3);
        new["spec"]["template"]["metadata"] =
            json!({"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}});
        assert_eq!(
            changes(&deployment("a:1", 3), &new, &[]),
            ["spec.template.metadata"]
        );
        assert!(changes(&deployment("a:1", 3), &new, &["spec.template.metadata"]).is_empty());
    }

    #[test]
    fn adding_a_container_changes_the_list() {
        let mut new = deployment("a:1", 3);
        new["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .expect("list")
            .push(json!({"name": "sidecar", "image": "b:1"}));
        assert_eq!(
            changes(&deployment("a:1", 3), &new, &[]),
            ["spec.template.spec.containers"]
        );
    }

    #[test]
    fn empty_and_absent_are_the_same() {
        let old = json!({"spec": {"template": {}}});
        let new = json!({"spec": {"template": {}, "strategy": {}}});
        assert!(changes(&old, &new, &[]).is_empty());
    }
}
