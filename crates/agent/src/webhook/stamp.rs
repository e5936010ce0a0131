//! The mutating half of identity: stamp who did what from the request's
//! userInfo, overwriting whatever the client sent. Pure: request in, JSON
//! patch out.

use crate::api::{ChangeRequest, REQUESTED_BY};
use chrono::{DateTime, SecondsFormat, Utc};
use json_patch::{AddOperation, Patch, PatchOperation, jsonptr::PointerBuf};
use serde_json::{Value, json};

/// The caller as the API server reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub username: String,
    pub groups: Vec<String>,
}

/// CREATE of a ChangeRequest: `changegate.dev/requested-by` is the creator.
pub fn on_create(change: &Value, who: &Identity) -> Patch {
    let mut ops = Vec::new();
    match change.pointer("/metadata/annotations") {
        Some(Value::Object(_)) => {}
        _ => ops.push(add(&["metadata", "annotations"], json!({}))),
    }
    ops.push(add(
        &["metadata", "annotations", REQUESTED_BY],
        json!(who.username),
    ));
    Patch(ops)
}

/// UPDATE of `changerequests/status`: every approval appended by this
/// request, and a newly written review, carry the caller's identity and the
/// time. Entries that already existed are left alone (the validating
/// webhook refuses edits to them).
pub fn on_status_update(
    old: &ChangeRequest,
    new: &ChangeRequest,
    who: &Identity,
    now: DateTime<Utc>,
) -> Patch {
    let at = json!(now.to_rfc3339_opts(SecondsFormat::Secs, true));
    let mut ops = Vec::new();
    let old_len = old.approvals().len();
    for (i, _) in new.approvals().iter().enumerate().skip(old_len) {
        let base = ["status".to_string(), "approvals".to_string(), i.to_string()];
        for (field, value) in [
            ("approver", json!(who.username)),
            ("groups", json!(who.groups)),
            ("at", at.clone()),
        ] {
            let path: Vec<String> = base.iter().cloned().chain([field.to_string()]).collect();
            ops.push(add(&path, value));
        }
    }
    let old_review = old.status.as_ref().and_then(|s| s.review.as_ref());
    let new_review = new.status.as_ref().and_then(|s| s.review.as_ref());
    if new_review.is_some() && old_review.is_none() {
        ops.push(add(&["status", "review", "reviewer"], json!(who.username)));
        ops.push(add(&["status", "review", "at"], at));
    }
    Patch(ops)
}

/// `add` on an existing member replaces it (RFC 6902 §4.1): whatever the
/// client sent for a stamped field is overwritten.
fn add<S: AsRef<str>>(path: &[S], value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: PointerBuf::from_tokens(path.iter().map(AsRef::as_ref)),
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::fixtures::change;

    fn alice() -> Identity {
        Identity {
            username: "alice".into(),
            groups: vec!["client-a:approvers".into(), "system:authenticated".into()],
        }
    }

    fn apply(value: &ChangeRequest, patch: &Patch) -> Value {
        let mut doc = serde_json::to_value(value).expect("serialize");
        json_patch::patch(&mut doc, patch).expect("patch applies");
        doc
    }

    #[test]
    fn the_creator_is_stamped_even_over_a_forged_annotation() {
        let forged = json!({"metadata": {"name": "c", "annotations": {REQUESTED_BY: "mallory"}}});
        let mut doc = forged.clone();
        json_patch::patch(&mut doc, &on_create(&forged, &alice())).expect("applies");
        assert_eq!(doc["metadata"]["annotations"][REQUESTED_BY], "alice");
        let bare = json!({"metadata": {"name": "c"}});
        let mut doc = bare.clone();
        json_patch::patch(&mut doc, &on_create(&bare, &alice())).expect("applies");
        assert_eq!(doc["metadata"]["annotations"][REQUESTED_BY], "alice");
    }

    #[test]
    fn an_approval_sent_in_someone_elses_name_is_stamped_with_the_real_identity() {
        let old = change(json!({}));
        let new = change(
            json!({"approvals": [{"decision": "Approved", "approver": "carol", "groups": ["msp:cab"], "at": "2020-01-01T00:00:00Z"}]}),
        );
        let now = DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let doc = apply(&new, &on_status_update(&old, &new, &alice(), now));
        assert_eq!(doc["status"]["approvals"][0]["approver"], "alice");
        assert_eq!(
            doc["status"]["approvals"][0]["groups"],
            json!(["client-a:approvers", "system:authenticated"])
        );
        assert_eq!(doc["status"]["approvals"][0]["at"], "2026-11-22T10:00:00Z");
    }

    #[test]
    fn existing_approvals_are_not_restamped() {
        let first = json!({"decision": "Approved", "approver": "dave", "groups": ["g"], "at": "2026-11-21T00:00:00Z"});
        let old = change(json!({"approvals": [first.clone()]}));
        let new = change(json!({"approvals": [first, {"decision": "Rejected"}]}));
        let now = Utc::now();
        let doc = apply(&new, &on_status_update(&old, &new, &alice(), now));
        assert_eq!(doc["status"]["approvals"][0]["approver"], "dave");
        assert_eq!(doc["status"]["approvals"][1]["approver"], "alice");
    }

    #[test]
    fn a_new_review_is_stamped() {
        let old = change(json!({}));
        let new = change(json!({"review": {"outcome": "Successful", "reviewer": "someone-else"}}));
        let doc = apply(&new, &on_status_update(&old, &new, &alice(), Utc::now()));
        assert_eq!(doc["status"]["review"]["reviewer"], "alice");
    }
}
