//! A namespace per test, labelled as a tenant's, deleted when the test ends
//! (also when it panics).

use super::cluster::{admin, kubectl};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    /// An ungoverned namespace `e2e-<prefix>-<unique>` (no tenant label).
    pub async fn new(prefix: &str) -> Self {
        Self::create(prefix, None).await
    }

    /// A governed namespace: labelled `changegate.dev/tenant=<tenant>`.
    pub async fn for_tenant(prefix: &str, tenant: &str) -> Self {
        Self::create(prefix, Some(tenant)).await
    }

    async fn create(prefix: &str, tenant: Option<&str>) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::UNIX_EPOCH
            .elapsed()
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "e2e-{prefix}-{:x}{:x}",
            std::process::id() & 0xffff,
            (nanos >> 8) ^ SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut labels = BTreeMap::from([("changegate.dev/e2e".to_string(), "true".to_string())]);
        if let Some(tenant) = tenant {
            labels.insert(
                changegate_agent::webhook::stores::TENANT_LABEL.to_string(),
                tenant.to_string(),
            );
        }
        let api: Api<Namespace> = Api::all(admin().await);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(labels),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        api.create(&PostParams::default(), &ns)
            .await
            .expect("create the test namespace");
        Self { name }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Drop cannot await; kubectl deletes without waiting for finalization.
        let out = kubectl(&[
            "delete",
            "namespace",
            &self.name,
            "--wait=false",
            "--ignore-not-found",
        ]);
        if !out.status.success() {
            eprintln!(
                "could not delete namespace {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
