//! Objects shared by the webhook's unit tests.

use crate::api::{ChangeRequest, REQUESTED_BY};
use serde_json::{Value, json};

/// `client-a-prod/chg-1`, requested by bob, a Normal change of
/// Deployment `web`, with the given status.
pub fn change(status: Value) -> ChangeRequest {
    serde_json::from_value(json!({
        "apiVersion": "changegate.dev/v1alpha1", "kind": "ChangeRequest",
        "metadata": {"name": "chg-1", "namespace": "client-a-prod", "annotations": {REQUESTED_BY: "bob"}},
        "spec": {"type": "Normal", "title": "t", "targets": [{"kind": "Deployment", "name": "web"}]},
        "status": status
    }))
    .expect("valid change")
}
