//! What the gate decides from, per tenant: its policy, configuration items,
//! windows and the changes in flight, read from the store once and shared
//! by the gate API and the agents' bundles instead of read per request.
//!
//! A snapshot is rebuilt when a write to its tenant, or to no tenant in
//! particular, went through this server since it was built (the
//! [`crate::Writes`] counters). Past [`FRESH_FOR`] it is checked against
//! the tenant's audit head, which every write of the tenant's records moves
//! (the scheduler's, another replica's, the CLI's), and rebuilt only if
//! the head moved; the heads of every tenant are read together, once a
//! second at most. Time-bound rules (windows, planned slots, approval
//! expiry) are evaluated at each decision, never frozen into a snapshot.
//! One build per tenant at a time: a burst of requests after a write waits
//! for the one build rather than each reading the store.

use changegate_core::ChangeNumber;
use changegate_core::TenantId;
use changegate_core::approval::PlanStatus;
use changegate_core::audit;
use changegate_core::authz::Principal;
use changegate_core::catalogue::{ConfigurationItem, Enforcement as Binding};
use changegate_core::change::ChangeState;
use changegate_core::gate::{GateChange, TenantGate};
use changegate_core::policy::PolicySpec;
use changegate_core::window::{CompiledWindow, WindowSpec};
use changegate_store::{Change, ChangeFilter, Store, StoreError, Tenant, TokenScope, User};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::workflow;

/// The longest a snapshot serves without a rebuild.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// One tenant's gate inputs at one moment.
pub struct TenantSnapshot {
    /// The tenant's audit head, read before the rest.
    pub head: i64,
    pub policy: PolicySpec,
    pub items: Vec<(String, ConfigurationItem)>,
    /// The windows as written (what an agent's bundle carries).
    pub windows: BTreeMap<String, WindowSpec>,
    /// Every change that can cover a deployment or is on its way to.
    pub changes: Vec<GateChange>,
    /// The same, indexed for decisions.
    pub gate: TenantGate,
}

/// An answer encoded once for every reader: a cluster's bundle.
pub struct Encoded {
    pub body: Vec<u8>,
    pub etag: String,
    /// The tenants in it: only their writes (and writes to no tenant in
    /// particular, configuration items among them) make it out of date.
    pub tenants: Vec<String>,
    /// The audit head of each tenant in it when it was built.
    pub heads: BTreeMap<TenantId, i64>,
}

/// What a bundle was encoded at: writes to no tenant in particular, and
/// each of its tenants' own, by slug.
type BundleVersion = (u64, Vec<(String, u64)>);

/// Which tenants have configuration items bound to each cluster.
struct Bindings {
    /// Every tenant's audit head, read before the items.
    heads: BTreeMap<TenantId, i64>,
    clusters: HashMap<String, Vec<Tenant>>,
}

/// How long the change page's verdict on a tenant's chain stands.
pub const CHAIN_VERIFIED_FOR: Duration = Duration::from_secs(60);

/// A tenant's audit chain as verified at one moment.
pub struct ChainVerdict {
    pub report: audit::Report,
    verified: Instant,
    /// When, for the page.
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Every tenant's audit head, read together.
struct Heads {
    /// When the read began: what it confirms holds from then on.
    at: Instant,
    of: BTreeMap<TenantId, i64>,
}

/// The server's shared reads: per-tenant snapshots, the tenant list, the
/// principal behind each API token and each cluster's encoded bundle (a
/// thousand agents woken by one write share one build).
#[derive(Default)]
pub struct Snapshots {
    tenants: Cache<String, (u64, u64), TenantSnapshot>,
    list: Cache<(), u64, Vec<Tenant>>,
    bearers: Cache<String, u64, (User, TokenScope, Principal)>,
    bundles: Cache<String, BundleVersion, Encoded>,
    /// Each cluster's mirrors (`GET /api/v1/agent/mirrors`), kept like its bundle.
    mirrors: Cache<String, BundleVersion, Encoded>,
    /// The tenants of each cluster's last bundle.
    bound: Mutex<HashMap<String, Vec<String>>>,
    bindings: Cache<(), u64, Bindings>,
    heads: Cache<(), (), Heads>,
    chains: Cache<String, (), ChainVerdict>,
    /// Each tenant's windows prepared for slot searches, with the audit
    /// head and the day they were prepared at.
    prepared: Mutex<HashMap<TenantId, Prepared>>,
}

type Prepared = (i64, chrono::NaiveDate, Arc<Vec<Arc<CompiledWindow>>>);

impl Snapshots {
    /// `tenant`'s windows prepared from two days before today to 800 days
    /// ahead (a slot search asks them thousands of questions): kept while
    /// its snapshot's audit head stands and the day is the same.
    pub async fn windows_ahead(
        &self,
        state: &AppState,
        tenant: &Tenant,
    ) -> ApiResult<Arc<Vec<Arc<CompiledWindow>>>> {
        let head = self.of(state, tenant).await?.head;
        let day = state.now().date_naive();
        let known = self
            .prepared
            .lock()
            .ok()
            .and_then(|m| m.get(&tenant.id).cloned())
            .filter(|(h, d, _)| (*h, *d) == (head, day));
        if let Some((_, _, w)) = known {
            return Ok(w);
        }
        let start = day.and_time(chrono::NaiveTime::MIN).and_utc();
        let w = Arc::new(
            workflow::windows_prepared(
                state.store.as_ref(),
                tenant.id,
                start - chrono::TimeDelta::days(2),
                start + chrono::TimeDelta::days(801),
            )
            .await?,
        );
        if let Ok(mut m) = self.prepared.lock() {
            m.insert(tenant.id, (head, day, Arc::clone(&w)));
        }
        Ok(w)
    }

    /// `tenant`'s snapshot: rebuilt after a write to it or to no tenant in
    /// particular (a write to another tenant leaves it be).
    pub async fn of(&self, state: &AppState, tenant: &Tenant) -> ApiResult<Arc<TenantSnapshot>> {
        let slug = tenant.slug.to_string();
        let version = state.writes.of_tenant(&slug);
        let store = state.store.as_ref();
        self.tenants
            .get(
                slug,
                version,
                |built| async move {
                    let heads = self.heads(state).await?;
                    Ok((heads.of.get(&tenant.id) == Some(&built.head)).then_some(heads.at))
                },
                || build(store, tenant),
            )
            .await
    }

    /// Every tenant's audit head, read again past [`FRESH_FOR`]: one read
    /// confirms every snapshot and bundle for the next second.
    async fn heads(&self, state: &AppState) -> ApiResult<Arc<Heads>> {
        self.heads
            .get((), (), rebuild, || async {
                let at = Instant::now();
                let of = state.store.audit_heads().await?;
                Ok(Heads { at, of })
            })
            .await
    }

    /// The verdict on `tenant`'s whole audit chain for the change page,
    /// verified again once it is [`CHAIN_VERIFIED_FOR`] old: reading and
    /// hashing every event of the tenant per view made the page slow (an
    /// edit behind the server's back moves no counter, so only time can
    /// tell when to look again). `changegate audit verify`, the API and
    /// the evidence view verify in full on every call.
    pub async fn chain(&self, state: &AppState, tenant: &Tenant) -> ApiResult<Arc<ChainVerdict>> {
        self.chains
            .get(
                tenant.slug.to_string(),
                (),
                |built| async move {
                    Ok((built.verified.elapsed() < CHAIN_VERIFIED_FOR).then(Instant::now))
                },
                || async {
                    let verified = Instant::now();
                    let at = state.now();
                    let (events, head) = state.store.audit_events(tenant.id).await?;
                    Ok(ChainVerdict {
                        report: audit::verify(&events, &head),
                        verified,
                        at,
                    })
                },
            )
            .await
    }

    /// Every tenant.
    pub async fn tenants(&self, state: &AppState) -> ApiResult<Arc<Vec<Tenant>>> {
        self.list
            .get((), state.writes.anywhere(), rebuild, || async {
                Ok(state.store.tenants(None).await?)
            })
            .await
    }

    /// The user, scope and roles behind the API token hashed `hash`: read
    /// again after any write (a revoked token, a changed role) and at
    /// least every [`FRESH_FOR`].
    pub async fn bearer(
        &self,
        state: &AppState,
        hash: String,
    ) -> ApiResult<Arc<(User, TokenScope, Principal)>> {
        let store = state.store.as_ref();
        self.bearers
            .get(hash.clone(), state.writes.count(), rebuild, || async move {
                let (user, scope) = match store.user_by_token(&hash).await {
                    Ok(found) => found,
                    Err(StoreError::NotFound { .. }) => return Err(ApiError::unauthenticated()),
                    Err(e) => return Err(e.into()),
                };
                // Its last use, for its owner's list: written when the
                // shared read is renewed (at most once a second), kept to
                // the minute by the store. Bookkeeping: a failed write is
                // logged and the request goes on.
                if let Err(e) = store.token_used(&hash, state.now()).await {
                    tracing::warn!(error = %e, "a token's last use was not recorded");
                }
                let principal = crate::auth::principal_of(store, user.clone()).await?;
                Ok((user, scope, principal))
            })
            .await
    }

    /// The tenants with a configuration item bound to `cluster`: read again
    /// after a write to no tenant in particular (a binding is one) and,
    /// past [`FRESH_FOR`], after any tenant's audit head moved.
    pub async fn bound_to(&self, state: &AppState, cluster: &str) -> ApiResult<Vec<Tenant>> {
        let store = state.store.as_ref();
        let bindings = self
            .bindings
            .get(
                (),
                state.writes.anywhere(),
                |built| async move {
                    let heads = self.heads(state).await?;
                    Ok((heads.of == built.heads).then_some(heads.at))
                },
                || async {
                    let heads = store.audit_heads().await?;
                    let mut clusters: HashMap<String, Vec<Tenant>> = HashMap::new();
                    for tenant in self.tenants(state).await?.iter() {
                        let mut seen = BTreeSet::new();
                        for (_, item) in workflow::configuration_items(store, tenant.id).await? {
                            if let Some(Binding::Kubernetes(b)) = item.enforcement
                                && seen.insert(b.cluster.clone())
                            {
                                clusters.entry(b.cluster).or_default().push(tenant.clone());
                            }
                        }
                    }
                    Ok(Bindings { heads, clusters })
                },
            )
            .await?;
        Ok(bindings.clusters.get(cluster).cloned().unwrap_or_default())
    }

    /// `cluster`'s bundle, encoded by `encode` again after a write to a
    /// tenant in it or to no tenant in particular; past [`FRESH_FOR`],
    /// after a write elsewhere that moved any tenant's audit head.
    pub async fn bundle<F, Fut>(
        &self,
        state: &AppState,
        cluster: &str,
        encode: F,
    ) -> ApiResult<Arc<Encoded>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ApiResult<Encoded>>,
    {
        self.of_cluster(&self.bundles, state, cluster, encode).await
    }

    /// `cluster`'s mirrors, kept as its bundle is (the same tenants' writes
    /// outdate them).
    pub async fn mirrors<F, Fut>(
        &self,
        state: &AppState,
        cluster: &str,
        encode: F,
    ) -> ApiResult<Arc<Encoded>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ApiResult<Encoded>>,
    {
        self.of_cluster(&self.mirrors, state, cluster, encode).await
    }

    async fn of_cluster<F, Fut>(
        &self,
        cache: &Cache<String, BundleVersion, Encoded>,
        state: &AppState,
        cluster: &str,
        encode: F,
    ) -> ApiResult<Arc<Encoded>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ApiResult<Encoded>>,
    {
        let bound = self
            .bound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(cluster)
            .cloned()
            .unwrap_or_default();
        let version = state.writes.of_tenants(&bound);
        let encoded = cache
            .get(
                cluster.to_string(),
                version,
                |built| async move {
                    let heads = self.heads(state).await?;
                    let moved = built
                        .heads
                        .iter()
                        .any(|(tenant, head)| heads.of.get(tenant) != Some(head));
                    let bound: Vec<String> = self
                        .bound_to(state, cluster)
                        .await?
                        .iter()
                        .map(|t| t.slug.to_string())
                        .collect();
                    Ok((!moved && bound == built.tenants).then_some(heads.at))
                },
                encode,
            )
            .await?;
        if encoded.tenants != bound {
            self.bound
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(cluster.to_string(), encoded.tenants.clone());
        }
        Ok(encoded)
    }
}

/// Values by key, each built by one caller at a time and shared while the
/// version it was built at holds. Past [`FRESH_FOR`] a value is used again
/// only if `still` confirms it (for a tenant snapshot: the tenant's audit
/// head has not moved) and says from when, else rebuilt. A failed build
/// leaves nothing behind, unless the database was unavailable: then the
/// last value built keeps serving until it answers again.
struct Cache<K, V, T> {
    slots: Mutex<HashMap<K, Slot<V, T>>>,
}

type Slot<V, T> = Arc<tokio::sync::Mutex<Option<Built<V, T>>>>;

impl<K, V, T> Default for Cache<K, V, T> {
    fn default() -> Self {
        Cache {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

struct Built<V, T> {
    version: V,
    /// When the build began, or from when the last confirmation holds.
    at: Instant,
    value: Arc<T>,
}

impl<K: Eq + Hash + Clone, V: PartialEq, T> Cache<K, V, T> {
    /// `version` is read by the caller before anything is built: a write
    /// that commits during the build leaves the value already out of
    /// date, and the next caller rebuilds.
    async fn get<S, SFut, F, Fut>(
        &self,
        key: K,
        version: V,
        still: S,
        build: F,
    ) -> ApiResult<Arc<T>>
    where
        S: FnOnce(Arc<T>) -> SFut,
        SFut: Future<Output = ApiResult<Option<Instant>>>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = ApiResult<T>>,
    {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.entry(key.clone()).or_default().clone()
        };
        let mut held = slot.lock().await;
        if let Some(built) = held.as_mut()
            && built.version == version
        {
            if built.at.elapsed() < FRESH_FOR {
                return Ok(built.value.clone());
            }
            match still(built.value.clone()).await {
                Ok(Some(at)) => {
                    built.at = at;
                    return Ok(built.value.clone());
                }
                Ok(None) => {}
                // The database is away: the last value serves until it is
                // back (an agent keeps its bundle, a gate its inputs).
                Err(e) if e.is_unavailable() => return Ok(built.value.clone()),
                Err(e) => return Err(e),
            }
        }
        let at = Instant::now();
        match build().await {
            Ok(value) => {
                let value = Arc::new(value);
                *held = Some(Built {
                    version,
                    at,
                    value: value.clone(),
                });
                Ok(value)
            }
            Err(e) if e.is_unavailable() && held.is_some() => match held.as_ref() {
                Some(built) => Ok(built.value.clone()),
                None => Err(e),
            },
            Err(e) => {
                *held = None;
                drop(held);
                self.slots
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key);
                Err(e)
            }
        }
    }
}

/// For values nothing cheaper can confirm: rebuilt past [`FRESH_FOR`].
async fn rebuild<T>(_: Arc<T>) -> ApiResult<Option<Instant>> {
    Ok(None)
}

async fn build(store: &dyn Store, tenant: &Tenant) -> ApiResult<TenantSnapshot> {
    let head = store.audit_head(tenant.id).await?;
    let (_, policy) = workflow::policy(store, tenant.id).await?;
    let items = workflow::configuration_items(store, tenant.id).await?;
    let mut windows = BTreeMap::new();
    let mut compiled = Vec::new();
    for (name, spec, window) in workflow::windows_as_written(store, tenant.id).await? {
        compiled.push(window);
        windows.insert(name, spec);
    }
    let flying = in_flight(store, tenant.id).await?;
    let acceptance = Acceptances::load(store, tenant.id, &policy, &flying).await?;
    let mut changes = Vec::new();
    for c in flying {
        changes.push(gate_change(store, tenant.id, &policy, &acceptance, c).await?);
    }
    let gate = TenantGate::new(
        tenant.slug.as_str(),
        &policy,
        items.clone(),
        compiled,
        changes.clone(),
    );
    Ok(TenantSnapshot {
        head,
        policy,
        items,
        windows,
        changes,
        gate,
    })
}

/// Every change of the tenant in a state that can cover a deployment or
/// is on its way to (page by page: none is left out).
async fn in_flight(store: &dyn Store, tenant: TenantId) -> ApiResult<Vec<Change>> {
    const PAGE: u32 = 500;
    let mut all = Vec::new();
    for state in [
        ChangeState::Submitted,
        ChangeState::AwaitingApproval,
        ChangeState::Approved,
        ChangeState::Scheduled,
        ChangeState::Implementing,
    ] {
        let mut before: Option<ChangeNumber> = None;
        loop {
            let page = store
                .list_changes(&ChangeFilter {
                    tenants: Some(BTreeSet::from([tenant])),
                    state: Some(state),
                    before,
                    limit: PAGE,
                    ..ChangeFilter::default()
                })
                .await?;
            let full = page.len() == PAGE as usize;
            before = page.last().map(|c| c.number);
            all.extend(page);
            if !full {
                break;
            }
        }
    }
    Ok(all)
}

/// What the client's acceptance of the approved changes the policy's
/// `acceptance` covers needs, read once for all of them: the events about
/// those changes and the names of who may accept.
#[derive(Default)]
struct Acceptances {
    events: Vec<changegate_core::audit::Event>,
    names: Vec<String>,
}

impl Acceptances {
    async fn load(
        store: &dyn Store,
        tenant: TenantId,
        policy: &PolicySpec,
        changes: &[Change],
    ) -> ApiResult<Self> {
        let Some(a) = policy.acceptance.as_ref() else {
            return Ok(Self::default());
        };
        let covered: Vec<String> = changes
            .iter()
            .filter(|c| {
                c.state == ChangeState::Approved
                    && crate::app::accept::covering(policy, c).is_some()
            })
            .map(|c| c.number.to_string())
            .collect();
        if covered.is_empty() {
            return Ok(Self::default());
        }
        Ok(Acceptances {
            events: store.audit_events_about_each(tenant, &covered).await?,
            names: crate::app::accept::acceptor_names(store, tenant, a).await?,
        })
    }

    /// What `c` waits for of the client's acceptance, if anything.
    fn missing(&self, policy: &PolicySpec, c: &Change) -> Option<String> {
        crate::app::accept::covering(policy, c)?;
        if crate::app::accept::accepted_in(&self.events, c).is_some() {
            return None;
        }
        Some(crate::app::accept::waiting_sentence(c, &self.names))
    }
}

/// What the gate needs of a change, with what its approval still waits on.
async fn gate_change(
    store: &dyn Store,
    tenant: TenantId,
    policy: &PolicySpec,
    acceptance: &Acceptances,
    c: Change,
) -> ApiResult<GateChange> {
    let mut awaiting = Vec::new();
    if c.state == ChangeState::AwaitingApproval {
        match c.plan.status(&workflow::votes(store, &c).await?) {
            PlanStatus::Pending { boards } => {
                for b in boards {
                    let plural = if b.needed == 1 { "" } else { "s" };
                    awaiting.push(format!("{} approval{plural} from {}", b.needed, b.board));
                }
            }
            // The deciding vote committed after the change was read (it
            // moves the state in the same transaction): read it again.
            _ => {
                let fresh = store.change(tenant, c.number).await?;
                if fresh.state != ChangeState::AwaitingApproval {
                    // Approved meanwhile: its acceptance is read afresh.
                    let fresh_acceptance =
                        Acceptances::load(store, tenant, policy, std::slice::from_ref(&fresh))
                            .await?;
                    return Box::pin(gate_change(store, tenant, policy, &fresh_acceptance, fresh))
                        .await;
                }
            }
        }
    }
    let awaiting_acceptance = if c.state == ChangeState::Approved {
        acceptance.missing(policy, &c)
    } else {
        None
    };
    Ok(GateChange {
        number: c.number,
        kind: c.kind,
        state: c.state,
        configuration_items: c.content.configuration_items,
        artifacts: c.content.artifacts,
        fingerprint: c.fingerprint,
        planned_start: c.content.planned_start,
        planned_end: c.content.planned_end,
        awaiting,
        automatic_rollback: c.content.automatic_rollback,
        approval_expires_at: c.approval_expires_at,
        awaiting_acceptance,
    })
}
