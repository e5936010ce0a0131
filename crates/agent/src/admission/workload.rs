//! The few facts admission needs from a gated workload object, read from its
//! JSON so every gated kind is handled the same way.

use crate::api::{CHANGE_ANNOTATION, RELEASE_ANNOTATION, WorkloadKind};
use serde_json::Value;
use std::collections::BTreeMap;

/// A gated workload as admission sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload<'a> {
    pub kind: WorkloadKind,
    pub namespace: &'a str,
    pub name: &'a str,
    pub object: &'a Value,
}

impl<'a> Workload<'a> {
    pub fn labels(&self) -> BTreeMap<String, String> {
        string_map(self.object.pointer("/metadata/labels"))
    }

    pub fn annotation(&self, key: &str) -> Option<&'a str> {
        self.object
            .pointer("/metadata/annotations")?
            .get(key)?
            .as_str()
    }

    /// The ChangeRequest named by `changegate.dev/change`, if any.
    pub fn bound_change(&self) -> Option<&'a str> {
        self.annotation(CHANGE_ANNOTATION).filter(|s| !s.is_empty())
    }

    /// The Release named by `changegate.dev/release`, if any.
    pub fn bound_release(&self) -> Option<&'a str> {
        self.annotation(RELEASE_ANNOTATION)
            .filter(|s| !s.is_empty())
    }

    /// Every container and init container image of the pod template.
    pub fn images(&self) -> Vec<&'a str> {
        let Some(pod) = pod_spec(self.kind, self.object) else {
            return Vec::new();
        };
        ["containers", "initContainers", "ephemeralContainers"]
            .iter()
            .filter_map(|list| pod.get(*list)?.as_array())
            .flatten()
            .filter_map(|c| c.get("image")?.as_str())
            .collect()
    }
}

/// The pod template's spec for each gated kind.
fn pod_spec(kind: WorkloadKind, object: &Value) -> Option<&Value> {
    match kind {
        WorkloadKind::Deployment | WorkloadKind::StatefulSet | WorkloadKind::DaemonSet => {
            object.pointer("/spec/template/spec")
        }
        WorkloadKind::CronJob => object.pointer("/spec/jobTemplate/spec/template/spec"),
    }
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn images_come_from_the_pod_template_of_each_kind() {
        let cron = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "a", "image": "x:1"}], "initContainers": [{"name": "i", "image": "y:1"}]}}}}}});
        let w = Workload {
            kind: WorkloadKind::CronJob,
            namespace: "ns",
            name: "job",
            object: &cron,
        };
        assert_eq!(w.images(), ["x:1", "y:1"]);
        let deploy = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "z:2"}]}}}});
        let w = Workload {
            kind: WorkloadKind::Deployment,
            namespace: "ns",
            name: "d",
            object: &deploy,
        };
        assert_eq!(w.images(), ["z:2"]);
    }

    #[test]
    fn binding_annotations_are_read() {
        let obj = json!({"metadata": {"annotations": {"changegate.dev/change": "chg-1", "changegate.dev/release": ""}}});
        let w = Workload {
            kind: WorkloadKind::Deployment,
            namespace: "ns",
            name: "d",
            object: &obj,
        };
        assert_eq!(w.bound_change(), Some("chg-1"));
        assert_eq!(w.bound_release(), None);
    }
}
