//! In-memory reflector stores of everything admission reads, so no request
//! makes an API call: ChangeRequests, Releases, MaintenanceWindows (with
//! their compiled schedules cached by resourceVersion), ChangePolicies and
//! Namespaces.

use crate::api::{ChangePolicy, ChangeRequest, MaintenanceWindow, Release, TENANT_LABEL};
use crate::policy::select_policy;
use crate::window::{self, CompiledWindow};
use chrono::{DateTime, Duration, Utc};
use futures::{StreamExt, future::BoxFuture};
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// Windows are precomputed over this span around "now" and recompiled when
/// the span runs short.
const PREPARE_BEHIND: Duration = Duration::days(2);
const PREPARE_AHEAD: Duration = Duration::days(400);
const REPREPARE_WHEN_LEFT: Duration = Duration::days(300);

/// Compiled windows by name, with the resourceVersion they were compiled
/// from; `None` for a version that does not compile, so it is reported once.
type CompiledCache = HashMap<String, (String, Option<Arc<CompiledWindow>>)>;

#[derive(Clone)]
pub struct Stores {
    changes: Store<ChangeRequest>,
    releases: Store<Release>,
    windows: Store<MaintenanceWindow>,
    policies: Store<ChangePolicy>,
    namespaces: Store<Namespace>,
    compiled: Arc<Mutex<CompiledCache>>,
}

/// Starts a reflector per kind; the returned future runs them until the
/// process ends.
pub fn start(client: &Client) -> (Stores, BoxFuture<'static, ()>) {
    let (changes, w1) = reflector::store();
    let (releases, w2) = reflector::store();
    let (windows, w3) = reflector::store();
    let (policies, w4) = reflector::store();
    let (namespaces, w5) = reflector::store();
    let run = futures::future::join5(
        reflect(Api::<ChangeRequest>::all(client.clone()), w1),
        reflect(Api::<Release>::all(client.clone()), w2),
        reflect(Api::<MaintenanceWindow>::all(client.clone()), w3),
        reflect(Api::<ChangePolicy>::all(client.clone()), w4),
        reflect(Api::<Namespace>::all(client.clone()), w5),
    );
    let stores = Stores {
        changes,
        releases,
        windows,
        policies,
        namespaces,
        compiled: Arc::default(),
    };
    (
        stores,
        Box::pin(async move {
            run.await;
        }),
    )
}

async fn reflect<K>(api: Api<K>, writer: reflector::store::Writer<K>)
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let events = watcher(api, watcher::Config::default()).default_backoff();
    store_events(writer, events)
        .for_each(|event| {
            if let Err(e) = event {
                tracing::warn!(%kind, error = %e, "watch error; retrying with backoff");
            }
            futures::future::ready(())
        })
        .await;
}

/// Writes watch events into a store. Admission never reads
/// `managedFields`, often the largest part of an object, so objects are
/// stored without them.
fn store_events<K, S>(
    writer: reflector::store::Writer<K>,
    events: S,
) -> impl futures::Stream<Item = S::Item>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    let events = events.modify(|object: &mut K| object.meta_mut().managed_fields = None);
    reflector::reflector(writer, events)
}

impl Stores {
    /// Stores built from fixed objects, for handler tests.
    pub fn from_objects(
        changes: Vec<ChangeRequest>,
        releases: Vec<Release>,
        windows: Vec<MaintenanceWindow>,
        policies: Vec<ChangePolicy>,
        namespaces: Vec<Namespace>,
    ) -> Self {
        fn fill<K>(objects: Vec<K>) -> Store<K>
        where
            K: Resource + Clone + 'static,
            K::DynamicType: Default + Eq + Hash + Clone,
        {
            let (store, mut writer) = reflector::store();
            writer.apply_watcher_event(&watcher::Event::Init);
            for o in objects {
                writer.apply_watcher_event(&watcher::Event::InitApply(o));
            }
            writer.apply_watcher_event(&watcher::Event::InitDone);
            store
        }
        Self {
            changes: fill(changes),
            releases: fill(releases),
            windows: fill(windows),
            policies: fill(policies),
            namespaces: fill(namespaces),
            compiled: Arc::default(),
        }
    }

    pub async fn wait_until_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.changes.wait_until_ready().await?;
        self.releases.wait_until_ready().await?;
        self.windows.wait_until_ready().await?;
        self.policies.wait_until_ready().await?;
        self.namespaces.wait_until_ready().await
    }

    /// The store has the namespace with a `changegate.dev/tenant` label,
    /// whatever its value: what the webhook configurations select on.
    pub fn labelled_for_a_tenant(&self, namespace: &str) -> bool {
        self.namespaces
            .get(&reflector::ObjectRef::new(namespace))
            .is_some_and(|ns| ns.labels().contains_key(TENANT_LABEL))
    }

    /// The tenant a namespace belongs to, from its `changegate.dev/tenant` label.
    pub fn tenant_of(&self, namespace: &str) -> Option<String> {
        let ns = self.namespaces.get(&reflector::ObjectRef::new(namespace))?;
        ns.labels()
            .get(TENANT_LABEL)
            .filter(|t| !t.is_empty())
            .cloned()
    }

    /// The namespace is being deleted: its workloads go with it.
    pub fn namespace_terminating(&self, namespace: &str) -> bool {
        self.namespaces
            .get(&reflector::ObjectRef::new(namespace))
            .is_some_and(|ns| ns.metadata.deletion_timestamp.is_some())
    }

    /// The ChangePolicy governing `tenant` (see `policy::select_policy`).
    pub fn policy_for(&self, tenant: &str) -> Option<Arc<ChangePolicy>> {
        let policies = self.policies.state();
        let selected = select_policy(&policies, tenant)?.policy;
        policies
            .iter()
            .find(|p| std::ptr::eq(p.as_ref(), selected))
            .cloned()
    }

    pub fn changes_in(&self, namespace: &str) -> Vec<Arc<ChangeRequest>> {
        self.changes
            .state_filter(|c| c.metadata.namespace.as_deref() == Some(namespace))
    }

    pub fn releases_for(&self, namespace: &str, operations_namespace: &str) -> Vec<Arc<Release>> {
        self.releases.state_filter(|r| matches!(r.metadata.namespace.as_deref(), Some(ns) if ns == namespace || ns == operations_namespace))
    }

    /// Every window that compiles, prepared around `now`. A window that
    /// does not compile (it predates the webhook) is skipped with one log
    /// line per resourceVersion: admission then treats it as absent.
    pub fn compiled_windows(&self, now: DateTime<Utc>) -> Vec<Arc<CompiledWindow>> {
        let mut cache = self
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The cache is rebuilt from the store's current windows on every
        // call, taking over the entries still valid: deleted windows drop
        // out, and nothing is compared more than once.
        let mut previous = std::mem::take(&mut *cache);
        let windows = self.windows.state();
        let mut compiled = Vec::with_capacity(windows.len());
        for w in &windows {
            let name = w.metadata.name.as_deref().unwrap_or_default();
            let version = w.metadata.resource_version.as_deref().unwrap_or_default();
            let reusable = previous.remove_entry(name).filter(|(_, (v, c))| {
                v == version
                    && c.as_ref().is_none_or(|c| {
                        c.prepared_horizon()
                            .is_some_and(|h| h.start <= now && h.end - now > REPREPARE_WHEN_LEFT)
                    })
            });
            let (name, (version, window)) = match reusable {
                Some(entry) => entry,
                None => {
                    let window = match window::compile(name, &w.spec) {
                        Ok(c) => Some(Arc::new(
                            c.prepared(now - PREPARE_BEHIND, now + PREPARE_AHEAD),
                        )),
                        Err(e) => {
                            tracing::warn!(window = %name, resource_version = %version, error = %e, "skipping a MaintenanceWindow that does not compile");
                            None
                        }
                    };
                    (name.to_string(), (version.to_string(), window))
                }
            };
            compiled.extend(window.clone());
            cache.insert(name, (version, window));
        }
        compiled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    fn window(tenant: &str, version: &str, timezone: &str) -> MaintenanceWindow {
        serde_json::from_value(
            json!({"apiVersion": "changegate.dev/v1alpha1", "kind": "MaintenanceWindow",
            "metadata": {"name": "nightly", "resourceVersion": version},
            "spec": {"tenants": [tenant], "timeZone": timezone,
                     "schedule": {"cron": "0 2 * * *", "duration": "4h"}}}),
        )
        .expect("window")
    }

    fn stores_over(windows: Store<MaintenanceWindow>) -> Stores {
        let empty = Stores::from_objects(vec![], vec![], vec![], vec![], vec![]);
        Stores { windows, ..empty }
    }

    #[tokio::test]
    async fn stored_objects_have_no_managed_fields() {
        let mut change: ChangeRequest = serde_json::from_value(json!({
            "apiVersion": "changegate.dev/v1alpha1", "kind": "ChangeRequest",
            "metadata": {"name": "chg-1", "namespace": "client-a-prod",
                         "managedFields": [{"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"type": "Normal", "title": "t", "targets": [{"kind": "Deployment", "name": "web"}]}}))
        .expect("change");
        assert!(change.meta().managed_fields.is_some());
        let (store, writer) = reflector::store();
        let events = futures::stream::iter([
            Ok(Event::Init),
            Ok(Event::InitApply(change.clone())),
            Ok(Event::InitDone),
        ]);
        store_events(writer, events)
            .for_each(|_| futures::future::ready(()))
            .await;
        let stored = store.state();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].meta().managed_fields, None);
        change.meta_mut().managed_fields = None;
        assert_eq!(stored[0].spec, change.spec, "nothing else changes");
    }

    #[test]
    fn compiled_windows_are_reused_recompiled_on_change_and_dropped_on_delete() {
        let now = Utc::now();
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitApply(window("client-a", "1", "UTC")));
        writer.apply_watcher_event(&Event::InitDone);
        let stores = stores_over(store);

        let first = stores.compiled_windows(now);
        let again = stores.compiled_windows(now);
        assert_eq!(first.len(), 1);
        assert!(
            Arc::ptr_eq(&first[0], &again[0]),
            "compiled once, then reused"
        );

        writer.apply_watcher_event(&Event::Apply(window("client-b", "2", "Asia/Tokyo")));
        let updated = stores.compiled_windows(now);
        assert_eq!(updated.len(), 1);
        assert!(
            !Arc::ptr_eq(&first[0], &updated[0]),
            "a new resourceVersion recompiles"
        );
        assert!(updated[0].applies_to("client-b") && !updated[0].applies_to("client-a"));
        assert_eq!(updated[0].time_zone(), chrono_tz::Asia::Tokyo);

        writer.apply_watcher_event(&Event::Delete(window("client-b", "2", "Asia/Tokyo")));
        assert!(stores.compiled_windows(now).is_empty());
        assert!(
            stores.compiled.lock().expect("cache").is_empty(),
            "the deleted window left the cache"
        );
    }

    #[test]
    fn a_window_that_does_not_compile_is_skipped() {
        let now = Utc::now();
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitApply(window("client-a", "1", "Mars/Olympus")));
        writer.apply_watcher_event(&Event::InitDone);
        let stores = stores_over(store);
        assert!(stores.compiled_windows(now).is_empty());
        writer.apply_watcher_event(&Event::Apply(window("client-a", "2", "Europe/Berlin")));
        assert_eq!(stores.compiled_windows(now).len(), 1, "fixed, it compiles");
    }

    #[test]
    fn changes_and_releases_are_read_by_namespace() {
        let change = |ns: &str, name: &str| -> ChangeRequest {
            serde_json::from_value(json!({"apiVersion": "changegate.dev/v1alpha1", "kind": "ChangeRequest",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"type": "Normal", "title": "t", "targets": [{"kind": "Deployment", "name": "web"}]}}))
            .expect("change")
        };
        let release = |ns: &str, name: &str| -> Release {
            serde_json::from_value(
                json!({"apiVersion": "changegate.dev/v1alpha1", "kind": "Release",
                "metadata": {"name": name, "namespace": ns}, "spec": {"changes": []}}),
            )
            .expect("release")
        };
        let stores = Stores::from_objects(
            vec![
                change("shop", "a"),
                change("shop", "b"),
                change("other", "c"),
            ],
            vec![
                release("shop", "r1"),
                release("ops", "r2"),
                release("other", "r3"),
            ],
            vec![],
            vec![],
            vec![],
        );
        let mut names: Vec<_> = stores
            .changes_in("shop")
            .iter()
            .map(|c| c.name_any())
            .collect();
        names.sort();
        assert_eq!(names, ["a", "b"]);
        let mut names: Vec<_> = stores
            .releases_for("shop", "ops")
            .iter()
            .map(|r| r.name_any())
            .collect();
        names.sort();
        assert_eq!(names, ["r1", "r2"]);
    }
}
