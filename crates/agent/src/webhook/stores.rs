//! The in-memory reflector store of what admission reads from the cluster
//! itself, so no request makes an API call: Namespaces, for the tenant
//! label and whether a namespace is being deleted. What is approved comes
//! from the server's bundle (`crate::bundle`), not from the cluster.

use futures::{StreamExt, future::BoxFuture};
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};

/// The label naming the tenant a namespace belongs to; the webhook
/// configuration gates only namespaces that carry it.
pub const TENANT_LABEL: &str = "changegate.dev/tenant";

#[derive(Clone)]
pub struct Stores {
    namespaces: Store<Namespace>,
}

/// Starts the reflector; the returned future runs it until the process ends.
pub fn start(client: &Client) -> (Stores, BoxFuture<'static, ()>) {
    let (namespaces, writer) = reflector::store();
    let events = watcher(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff();
    let run = store_events(writer, events).for_each(|event| {
        if let Err(e) = event {
            tracing::warn!(error = %e, "namespace watch error; retrying with backoff");
        }
        futures::future::ready(())
    });
    (Stores { namespaces }, Box::pin(run))
}

/// Writes watch events into a store. Admission never reads
/// `managedFields`, so objects are stored without them.
fn store_events<S>(
    writer: reflector::store::Writer<Namespace>,
    events: S,
) -> impl futures::Stream<Item = S::Item>
where
    S: futures::Stream<Item = Result<watcher::Event<Namespace>, watcher::Error>>,
{
    let events = events.modify(|object: &mut Namespace| object.meta_mut().managed_fields = None);
    reflector::reflector(writer, events)
}

impl Stores {
    /// A store filled with fixed namespaces, for handler tests.
    pub fn from_namespaces(namespaces: Vec<Namespace>) -> Self {
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Init);
        for o in namespaces {
            writer.apply_watcher_event(&watcher::Event::InitApply(o));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        Self { namespaces: store }
    }

    /// Once the first list is in. Await it from one task only: kube wakes
    /// only the last of several tasks waiting at once.
    pub async fn wait_until_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.namespaces.wait_until_ready().await
    }

    /// The tenant a namespace belongs to, from its `changegate.dev/tenant` label.
    pub fn tenant_of(&self, namespace: &str) -> Option<String> {
        let ns = self.namespaces.get(&reflector::ObjectRef::new(namespace))?;
        ns.labels()
            .get(TENANT_LABEL)
            .filter(|t| !t.is_empty())
            .cloned()
    }

    /// The namespaces labelled for `tenant` (and not being deleted).
    pub fn namespaces_of(&self, tenant: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .namespaces
            .state()
            .iter()
            .filter(|ns| ns.metadata.deletion_timestamp.is_none())
            .filter(|ns| ns.labels().get(TENANT_LABEL).map(String::as_str) == Some(tenant))
            .map(|ns| ns.name_any())
            .collect();
        names.sort();
        names
    }

    /// The namespace is being deleted: its workloads go with it.
    pub fn namespace_terminating(&self, namespace: &str) -> bool {
        self.namespaces
            .get(&reflector::ObjectRef::new(namespace))
            .is_some_and(|ns| ns.metadata.deletion_timestamp.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    #[tokio::test]
    async fn stored_namespaces_have_no_managed_fields() {
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": {"name": "shop", "labels": {TENANT_LABEL: "client-a"},
                         "managedFields": [{"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}}}]}}))
        .expect("namespace");
        let (store, writer) = reflector::store();
        let events = futures::stream::iter([
            Ok(Event::Init),
            Ok(Event::InitApply(ns)),
            Ok(Event::InitDone),
        ]);
        store_events(writer, events)
            .for_each(|_| futures::future::ready(()))
            .await;
        let stored = store.state();
        assert_eq!(stored[0].meta().managed_fields, None);
        let stores = Stores { namespaces: store };
        assert_eq!(stores.tenant_of("shop").as_deref(), Some("client-a"));
        assert_eq!(stores.tenant_of("elsewhere"), None);
    }
}
