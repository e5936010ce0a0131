//! Who wrote a custom resource (a ChangeRequest, a Release, a
//! MaintenanceWindow), as the API server authenticated them (DESIGN §7):
//! the mutating webhook stamps its creator in
//! `changegate.dev/requested-by` (immutable: an update cannot change or
//! remove it) and the author of each spec edit in
//! `changegate.dev/edited-by`. The server maps both to the tenant's users;
//! whoever edited a revision cannot approve it. Pure: the admission
//! request in, the patch out. The object is read loosely (mutation runs
//! before the schema is checked): a spec the schema refuses is refused by
//! the API server naming the field, not here.

use changegate_resources::{EDITED_BY_ANNOTATION, REQUESTED_BY_ANNOTATION};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use std::collections::BTreeMap;

/// The annotations `req`'s object is to carry, or `None` when they are
/// already right.
pub fn annotations(req: &AdmissionRequest<DynamicObject>) -> Option<BTreeMap<String, String>> {
    let object = req.object.as_ref()?;
    let user = req.user_info.username.clone().unwrap_or_default();
    let current = object.metadata.annotations.clone().unwrap_or_default();
    let mut wanted = current.clone();
    match (&req.operation, req.old_object.as_ref()) {
        (Operation::Update, Some(old)) => {
            let before = old.metadata.annotations.clone().unwrap_or_default();
            for key in [REQUESTED_BY_ANNOTATION, EDITED_BY_ANNOTATION] {
                match before.get(key) {
                    Some(v) => wanted.insert(key.to_string(), v.clone()),
                    None => wanted.remove(key),
                };
            }
            if old.data.get("spec") != object.data.get("spec") {
                wanted.insert(EDITED_BY_ANNOTATION.to_string(), user);
            }
        }
        _ => {
            wanted.insert(REQUESTED_BY_ANNOTATION.to_string(), user);
            wanted.remove(EDITED_BY_ANNOTATION);
        }
    }
    (wanted != current).then_some(wanted)
}

/// The answer: allowed, with the patch that sets the annotations.
pub fn respond(req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
    let response = AdmissionResponse::from(req);
    let Some(wanted) = annotations(req) else {
        return response;
    };
    let patch: json_patch::Patch = match serde_json::from_value(serde_json::json!([
        { "op": "add", "path": "/metadata/annotations", "value": wanted }
    ])) {
        Ok(p) => p,
        Err(e) => return response.deny(format!("changegate: cannot build the patch: {e}")),
    };
    match response.clone().with_patch(patch) {
        Ok(r) => r,
        Err(e) => response.deny(format!("changegate: cannot encode the patch: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn review(
        op: &str,
        user: &str,
        object: serde_json::Value,
        old: Option<serde_json::Value>,
    ) -> AdmissionRequest<DynamicObject> {
        let review = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u", "kind": {"group": "changegate.dev", "version": "v1", "kind": "ChangeRequest"},
                "resource": {"group": "changegate.dev", "version": "v1", "resource": "changerequests"},
                "name": "web", "namespace": "shop", "operation": op,
                "userInfo": {"username": user}, "object": object, "oldObject": old, "dryRun": false
            }
        });
        crate::webhook::review::parse(review.to_string().as_bytes()).expect("a review")
    }

    fn chg(title: &str, annotations: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "changegate.dev/v1", "kind": "ChangeRequest",
               "metadata": {"name": "web", "namespace": "shop", "annotations": annotations},
               "spec": {"title": title}})
    }

    #[test]
    fn the_creator_is_stamped_whatever_the_resource_claims() {
        let r = review(
            "CREATE",
            "alice",
            chg(
                "Ship",
                json!({"changegate.dev/requested-by": "bob", "changegate.dev/edited-by": "bob"}),
            ),
            None,
        );
        let a = annotations(&r).expect("stamped");
        assert_eq!(a[REQUESTED_BY_ANNOTATION], "alice");
        assert!(!a.contains_key(EDITED_BY_ANNOTATION));
    }

    #[test]
    fn a_spec_edit_names_its_author_and_the_creator_stays() {
        let old = chg("Ship", json!({"changegate.dev/requested-by": "alice"}));
        let r = review(
            "UPDATE",
            "carol",
            chg("Ship it", json!({"changegate.dev/requested-by": "carol"})),
            Some(old.clone()),
        );
        let a = annotations(&r).expect("stamped");
        assert_eq!(a[REQUESTED_BY_ANNOTATION], "alice", "immutable");
        assert_eq!(a[EDITED_BY_ANNOTATION], "carol");

        // A metadata-only update (the operator writing its annotation)
        // names no editor and removes nothing.
        let mut same = chg(
            "Ship",
            json!({"changegate.dev/requested-by": "alice", "changegate.dev/change": "CHG-4"}),
        );
        same["metadata"]["labels"] = json!({"x": "y"});
        let r = review(
            "UPDATE",
            "system:serviceaccount:changegate-system:changegate",
            same,
            Some(old),
        );
        assert_eq!(annotations(&r), None, "already right");
    }

    #[test]
    fn a_spec_the_schema_refuses_is_stamped_and_left_to_the_schema() {
        let mut bad = chg("Ship", json!({}));
        bad["spec"]["type"] = json!("urgent");
        let r = review("CREATE", "alice", bad, None);
        assert_eq!(
            annotations(&r).expect("stamped")[REQUESTED_BY_ANNOTATION],
            "alice"
        );
        assert!(respond(&r).allowed);
    }

    #[test]
    fn removing_the_stamps_is_undone() {
        let old = chg(
            "Ship",
            json!({"changegate.dev/requested-by": "alice", "changegate.dev/edited-by": "carol"}),
        );
        let r = review("UPDATE", "mallory", chg("Ship", json!({})), Some(old));
        let a = annotations(&r).expect("restored");
        assert_eq!(a[REQUESTED_BY_ANNOTATION], "alice");
        assert_eq!(a[EDITED_BY_ANNOTATION], "carol");
        let response = respond(&r);
        assert!(response.allowed);
        assert!(response.patch.is_some());
    }
}
