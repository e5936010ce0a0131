//! In-memory reflector stores of everything admission reads, so no request
//! makes an API call: ChangeRequests, Releases, MaintenanceWindows (with
//! their compiled schedules cached by resourceVersion), ChangePolicies and
//! Namespaces.

use crate::api::{ChangePolicy, ChangeRequest, MaintenanceWindow, Release, TENANT_LABEL};
use crate::window::CompiledWindow;
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

/// Compiled windows by name, with the resourceVersion they were compiled from.
type CompiledCache = HashMap<String, (String, Arc<CompiledWindow>)>;

#[derive(Clone)]
pub struct Stores {
    pub changes: Store<ChangeRequest>,
    pub releases: Store<Release>,
    pub windows: Store<MaintenanceWindow>,
    pub policies: Store<ChangePolicy>,
    pub namespaces: Store<Namespace>,
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
    reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .for_each(|event| {
            if let Err(e) = event {
                tracing::warn!(%kind, error = %e, "watch error; retrying with backoff");
            }
            futures::future::ready(())
        })
        .await;
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

    pub fn policies(&self) -> Vec<Arc<ChangePolicy>> {
        self.policies.state()
    }

    pub fn changes_in(&self, namespace: &str) -> Vec<Arc<ChangeRequest>> {
        self.changes
            .state_filter(|c| c.namespace().as_deref() == Some(namespace))
    }

    pub fn releases_for(&self, namespace: &str, operations_namespace: &str) -> Vec<Arc<Release>> {
        self.releases.state_filter(|r| matches!(r.namespace().as_deref(), Some(ns) if ns == namespace || ns == operations_namespace))
    }

    /// Every window that compiles, prepared around `now`. A window that
    /// does not compile (it predates the webhook) is skipped with a log
    /// line: admission then treats it as absent.
    pub fn compiled_windows(&self, now: DateTime<Utc>) -> Vec<Arc<CompiledWindow>> {
        let mut cache = self
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.windows.state();
        cache.retain(|name, _| current.iter().any(|w| &w.name_any() == name));
        current
            .iter()
            .filter_map(|w| {
                let name = w.name_any();
                let version = w.resource_version().unwrap_or_default();
                if let Some((v, compiled)) = cache.get(&name) {
                    let fresh = compiled.prepared_horizon().is_some_and(|h| h.start <= now && h.end - now > REPREPARE_WHEN_LEFT);
                    if *v == version && fresh {
                        return Some(compiled.clone());
                    }
                }
                match CompiledWindow::compile(&name, &w.spec) {
                    Ok(c) => {
                        let c = Arc::new(c.prepared(now - PREPARE_BEHIND, now + PREPARE_AHEAD));
                        cache.insert(name, (version, c.clone()));
                        Some(c)
                    }
                    Err(e) => {
                        tracing::warn!(window = %name, error = %e, "skipping a MaintenanceWindow that does not compile");
                        None
                    }
                }
            })
            .collect()
    }
}
