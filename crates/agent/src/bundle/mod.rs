//! The bundle the server serves this cluster's agent (DESIGN §7), and what
//! the agent makes of it: one [`TenantGate`] per tenant, built once per
//! bundle so admission decides from memory.
//!
//! [`BundleState`] holds the current [`Snapshot`] and when the server last
//! confirmed it (a fresh bundle or a `304`); `sync` keeps both current and
//! `cache` keeps them on disk so a restarted agent decides while the server
//! is down, until the bundle is older than `--max-staleness`.

pub mod cache;
pub mod sync;

use changegate_core::catalogue::ConfigurationItem;
use changegate_core::change::ChangeType;
use changegate_core::gate::{GateChange, TenantGate};
use changegate_core::ids::ChangeNumber;
use changegate_core::policy::{Enforcement, PolicySpec};
use changegate_core::window::{CompiledWindow, WindowSpec};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

/// Windows are precomputed over this span around the time a bundle
/// arrives (every approval brings a new one); outside it they are computed.
const PREPARE_BEHIND: chrono::TimeDelta = chrono::TimeDelta::days(2);
const PREPARE_AHEAD: chrono::TimeDelta = chrono::TimeDelta::days(400);

/// The server's bundle as it travels (`GET /api/v1/agent/bundle`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    /// The cluster the agent token was minted for.
    pub cluster: String,
    /// The prefix the cluster's API server gives OIDC user names that are
    /// e-mail addresses, if its registration says so.
    #[serde(default)]
    pub email_prefix: Option<String>,
    pub tenants: Vec<TenantBundle>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantBundle {
    pub tenant: String,
    pub enforcement: Enforcement,
    #[serde(default)]
    pub window_required: Vec<ChangeType>,
    #[serde(default)]
    pub configuration_items: BTreeMap<String, ConfigurationItem>,
    #[serde(default)]
    pub windows: BTreeMap<String, WindowSpec>,
    #[serde(default)]
    pub changes: Vec<GateChange>,
    /// The tenant's standard-change templates by name.
    #[serde(default)]
    pub templates: Vec<String>,
    /// Kubernetes user names of this cluster mapped to the tenant's people.
    #[serde(default)]
    pub identities: Vec<String>,
}

/// A bundle ready for admission: its gates by tenant slug.
#[derive(Debug)]
pub struct Snapshot {
    pub etag: String,
    pub cluster: String,
    pub bundle: Bundle,
    gates: HashMap<String, TenantGate>,
    /// The same gates with enforcement on, to tell whether a change seen
    /// by watching was authorized whatever the tenant's enforcement mode.
    strict: HashMap<String, TenantGate>,
}

impl Snapshot {
    /// Compiles every tenant's windows and indexes its changes. A window
    /// that does not compile (the server validates them on write, so only
    /// a newer server's syntax could) is left out with a warning: it can
    /// only have opened a window, never closed one that this agent knows.
    /// Windows are prepared around `now`, the time the bundle arrived.
    pub fn new(etag: String, bundle: Bundle, now: DateTime<Utc>) -> Self {
        let mut gates = HashMap::new();
        let mut strict = HashMap::new();
        for t in &bundle.tenants {
            // Compiled once, with openings precomputed around now: a check
            // is then a lookup, not a walk through every cron occurrence.
            // Both gates of the tenant share them.
            let windows: Vec<Arc<CompiledWindow>> = t
                .windows
                .iter()
                .filter_map(|(name, spec)| match CompiledWindow::compile(name, spec) {
                    Ok(w) => Some(Arc::new(w.prepared(now - PREPARE_BEHIND, now + PREPARE_AHEAD))),
                    Err(e) => {
                        tracing::warn!(tenant = %t.tenant, window = %name, error = %e, "window in the bundle does not compile; left out");
                        None
                    }
                })
                .collect();
            let gate = |enforcement: Enforcement| {
                let policy = PolicySpec {
                    enforcement,
                    window_required: t.window_required.clone(),
                    ..PolicySpec::default()
                };
                TenantGate::new(
                    t.tenant.clone(),
                    &policy,
                    t.configuration_items.clone(),
                    windows.clone(),
                    t.changes.clone(),
                )
            };
            gates.insert(t.tenant.clone(), gate(t.enforcement));
            // Following judges as if the tenant enforced, whatever its mode.
            strict.insert(t.tenant.clone(), gate(Enforcement::Enforce));
        }
        Snapshot {
            etag,
            cluster: bundle.cluster.clone(),
            bundle,
            gates,
            strict,
        }
    }

    /// The gate of `tenant`, if the tenant has anything bound to this cluster.
    pub fn gate(&self, tenant: &str) -> Option<&TenantGate> {
        self.gates.get(tenant)
    }

    /// Change `number` of `tenant`, if the bundle has it.
    pub fn change(&self, tenant: &str, number: ChangeNumber) -> Option<&GateChange> {
        self.bundle
            .tenants
            .iter()
            .find(|t| t.tenant == tenant)?
            .changes
            .iter()
            .find(|c| c.number == number)
    }

    /// The gate of `tenant` as if it enforced: what an approved change
    /// covers, for judging changes seen after the fact.
    pub fn strict_gate(&self, tenant: &str) -> Option<&TenantGate> {
        self.strict.get(tenant)
    }
}

/// The agent's current bundle and when the server last confirmed it.
#[derive(Default)]
pub struct BundleState {
    current: RwLock<Option<(Arc<Snapshot>, DateTime<Utc>)>>,
    /// Counts the bundles taken: the reconcilers wake on each.
    taken: tokio::sync::watch::Sender<u64>,
}

impl BundleState {
    /// The snapshot and when the server last confirmed it; `None` before
    /// the first bundle (from the server or the cache).
    pub fn current(&self) -> Option<(Arc<Snapshot>, DateTime<Utc>)> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn replace(&self, snapshot: Arc<Snapshot>, confirmed_at: DateTime<Utc>) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((snapshot, confirmed_at));
        self.taken.send_modify(|n| *n += 1);
    }

    /// Wakes on every new bundle.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.taken.subscribe()
    }

    /// The server answered `304`: the current bundle is still its latest.
    pub fn confirm(&self, confirmed_at: DateTime<Utc>) {
        if let Some((_, at)) = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_mut()
        {
            *at = confirmed_at;
        }
    }
}
