//! Reading an AdmissionReview off the wire in one pass.
//!
//! kube's `AdmissionReview` flattens its type fields, which makes serde
//! buffer the whole body before reading it a second time; this envelope
//! reads the request directly. Gated workloads, the hot path, are read as
//! [`WorkloadObject`]: only what admission looks at is kept, and
//! `managedFields`, `status` and the rest are skipped while parsing.

use kube::Resource;
use kube::core::admission::{AdmissionRequest, META_API_VERSION_V1, META_KIND};
use kube::core::{ApiResource, DynamicResourceScope, ObjectMeta, TypeMeta};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The request of a v1 AdmissionReview, or a message saying why the body is
/// not one (answered with HTTP 400).
pub fn parse<T>(body: &[u8]) -> Result<AdmissionRequest<T>, String>
where
    T: Resource + DeserializeOwned,
{
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Envelope<T: Resource> {
        api_version: String,
        kind: String,
        request: Option<AdmissionRequest<T>>,
    }
    let review: Envelope<T> = serde_json::from_slice(body)
        .map_err(|e| format!("changegate: malformed AdmissionReview: {e}"))?;
    // Registered for v1 only; the answer echoes the request's apiVersion and
    // kind, so anything else would be answered as something that is not a review.
    if review.api_version != META_API_VERSION_V1 || review.kind != META_KIND {
        return Err(format!(
            "changegate: expected an {META_API_VERSION_V1} {META_KIND}, got apiVersion {:?} kind {:?}",
            review.api_version, review.kind
        ));
    }
    let mut request = review
        .request
        .ok_or_else(|| "changegate: the AdmissionReview has no request".to_string())?;
    request.types = TypeMeta {
        api_version: review.api_version,
        kind: review.kind,
    };
    Ok(request)
}

/// A gated workload as the workload webhook reads it: its name, namespace,
/// labels and annotations in `metadata`, and in `object` the JSON the
/// decision core reads (`metadata.labels`, `metadata.annotations`, `spec`).
#[derive(Clone, Debug, Default)]
pub struct WorkloadObject {
    pub metadata: ObjectMeta,
    pub object: Value,
}

impl<'de> Deserialize<'de> for WorkloadObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Fields not named here are skipped without being built.
        #[derive(Deserialize, Default)]
        struct Metadata {
            name: Option<String>,
            namespace: Option<String>,
            labels: Option<BTreeMap<String, String>>,
            annotations: Option<BTreeMap<String, String>>,
        }
        #[derive(Deserialize)]
        struct Wire {
            #[serde(default)]
            metadata: Metadata,
            #[serde(default)]
            spec: Value,
        }
        let Wire { metadata: m, spec } = Wire::deserialize(deserializer)?;
        // Built by hand: `json!` would serialize `spec` again to copy it.
        let strings = |map: &Option<BTreeMap<String, String>>| {
            map.as_ref().map_or(Value::Null, |m| {
                Value::Object(
                    m.iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect(),
                )
            })
        };
        let metadata = Map::from_iter([
            ("labels".to_string(), strings(&m.labels)),
            ("annotations".to_string(), strings(&m.annotations)),
        ]);
        let object = Value::Object(Map::from_iter([
            ("metadata".to_string(), Value::Object(metadata)),
            ("spec".to_string(), spec),
        ]));
        Ok(WorkloadObject {
            metadata: ObjectMeta {
                name: m.name,
                namespace: m.namespace,
                labels: m.labels,
                annotations: m.annotations,
                ..ObjectMeta::default()
            },
            object,
        })
    }
}

/// Like `DynamicObject`: the type is known at run time.
impl Resource for WorkloadObject {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::DynamicObject;
    use serde_json::json;

    fn review(object: Value) -> Vec<u8> {
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "u-1", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": "web", "namespace": "shop", "operation": "UPDATE",
            "userInfo": {"username": "carol", "groups": ["devs"]},
            "object": object, "oldObject": null, "dryRun": true}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_workload_keeps_labels_annotations_and_spec_and_drops_the_rest() {
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"},
                "annotations": {"changegate.dev/change": "chg-1"},
                "managedFields": [{"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {}}}],
                "resourceVersion": "7"},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": "x:1"}]}}},
            "status": {"replicas": 2}});
        let req = parse::<WorkloadObject>(&review(deployment.clone())).expect("parses");
        assert_eq!(req.uid, "u-1");
        assert!(req.dry_run);
        assert_eq!(req.types.kind, "AdmissionReview");
        assert!(req.old_object.is_none());
        let w = req.object.expect("object");
        assert_eq!(w.metadata.name.as_deref(), Some("web"));
        assert_eq!(w.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(
            w.object,
            json!({"metadata": {"labels": {"app": "web"}, "annotations": {"changegate.dev/change": "chg-1"}},
                   "spec": deployment["spec"]})
        );
    }

    #[test]
    fn a_workload_without_metadata_or_spec_reads_as_empty() {
        let req = parse::<WorkloadObject>(&review(json!({"kind": "Deployment"}))).expect("parses");
        let w = req.object.expect("object");
        assert_eq!(
            w.object,
            json!({"metadata": {"labels": null, "annotations": null}, "spec": null})
        );
    }

    #[test]
    fn the_envelope_reads_the_same_request_as_kube() {
        let body = review(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"replicas": 1}}));
        let ours = parse::<DynamicObject>(&body).expect("parses");
        let kube: kube::core::admission::AdmissionReview<DynamicObject> =
            serde_json::from_slice(&body).expect("kube parses");
        let kube: AdmissionRequest<DynamicObject> = kube.try_into().expect("request");
        assert_eq!(
            serde_json::to_value(&ours).expect("ours"),
            serde_json::to_value(&kube).expect("kube")
        );
        assert_eq!(ours.types, kube.types);
    }

    #[test]
    fn what_is_not_a_v1_review_is_refused_with_a_message() {
        for (body, says) in [
            (
                &b"{}"[..],
                "malformed AdmissionReview: missing field `apiVersion`",
            ),
            (&b"[]"[..], "malformed AdmissionReview"),
            (
                br#"{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}"#,
                "expected an admission.k8s.io/v1 AdmissionReview",
            ),
            (
                br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}"#,
                "the AdmissionReview has no request",
            ),
        ] {
            let err = parse::<WorkloadObject>(body).expect_err("refused");
            assert!(err.contains(says), "{err}");
        }
    }
}
