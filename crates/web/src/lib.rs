//! changegate's HTTP layer: the REST API under `/api/v1` (JSON, API
//! tokens), its OpenAPI document, and health. Every route is declared once
//! in `routes()` with the access it requires; the router and the
//! authorization-matrix tests are both built from that table.

pub mod api;
pub mod app;
pub mod auth;
pub mod calendar;
pub mod dto;
pub mod error;
pub mod evidence;
pub mod kpi;
pub mod limit;
pub mod mail;
pub mod openapi;
pub mod portal;
pub mod preview;
pub(crate) mod schedule;
pub mod snapshot;
pub mod starter;
pub mod tenant;
mod workflow;

use axum::Router;
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use changegate_core::authz::Action;
use changegate_store::Store;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// The clock handlers read, and pass to every store write; tests pin it.
pub use changegate_store::Clock;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub clock: Clock,
    /// Mark session cookies `Secure` (off only for plain-HTTP development).
    pub secure_cookies: bool,
    /// Counted after every successful write through the server: wakes
    /// long-polling agents and outdates the shared reads of `snapshots`.
    pub writes: Arc<Writes>,
    /// Where people reach this server: the base of links in e-mails.
    pub public_url: String,
    /// Each tenant's gate inputs, shared by gate checks and bundles.
    pub snapshots: Arc<snapshot::Snapshots>,
    /// `/metrics` as last rendered.
    pub metrics: Arc<api::kpis::MetricsCache>,
    /// Gate checks waiting (`wait`) for a decision to change.
    pub gate_waits: Arc<Waiting>,
    /// When the database was last found unreachable: for a second after,
    /// requests are answered 503 at once instead of each waiting to find
    /// out again (`/readyz` and an agent's cached bundle excepted).
    pub away: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

impl AppState {
    /// The state of a server over `store` whose every handler, and every
    /// write they make, takes the time from `clock`.
    pub fn new(store: Arc<dyn Store>, clock: Clock) -> Self {
        AppState {
            store,
            clock,
            secure_cookies: true,
            writes: Arc::default(),
            public_url: "http://127.0.0.1:8080".into(),
            snapshots: Arc::default(),
            metrics: Arc::default(),
            gate_waits: Arc::default(),
            away: Arc::default(),
        }
    }

    pub fn with_secure_cookies(mut self, secure: bool) -> Self {
        self.secure_cookies = secure;
        self
    }

    pub fn with_public_url(mut self, url: &str) -> Self {
        self.public_url = url.trim_end_matches('/').to_string();
        self
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, the OpenAPI document).
    Public,
    /// Any authenticated caller; the handler scopes the answer to them.
    Caller,
    /// A caller bound to the `{tenant}` of the path, holding a role that grants the action.
    Tenant(Action),
    /// Like `Tenant`, for the tenant named in the JSON body's `tenant`
    /// (the gate API, whose path is fixed).
    TenantInBody(Action),
    /// A caller who sees a tenant of the `{number}` release (else 404),
    /// holding a role that grants the action in every tenant it delivers
    /// to (a conflict's override: in the conflict's tenant).
    InRelease(Action),
    /// Installation administrators.
    Admin,
    /// A cluster's agent, with its agent token; no person.
    Agent,
}

/// One row of the route table.
#[derive(Debug, Clone, Copy)]
pub struct RouteInfo {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
}

/// One row of a route or page table.
pub(crate) fn row(
    method: &'static str,
    path: &'static str,
    access: Access,
    handler: MethodRouter<AppState>,
) -> (RouteInfo, MethodRouter<AppState>) {
    (
        RouteInfo {
            method,
            path,
            access,
        },
        handler,
    )
}

/// Every route, once: method, path, access and handler.
fn routes() -> Vec<(RouteInfo, MethodRouter<AppState>)> {
    use Access::*;
    use Action::*;
    use api::*;
    let r = row;
    vec![
        r("GET", "/healthz", Public, get(meta::healthz)),
        r("GET", "/readyz", Public, get(meta::readyz)),
        r("GET", "/api/v1/openapi.json", Public, get(meta::openapi)),
        r("POST", "/api/v1/session", Public, post(session::sign_in)),
        r(
            "DELETE",
            "/api/v1/session",
            Caller,
            delete(session::sign_out),
        ),
        r("GET", "/api/v1/me", Caller, get(people::me)),
        r("POST", "/api/v1/tokens", Caller, post(people::create_token)),
        r("GET", "/api/v1/tokens", Caller, get(access::list_tokens)),
        r(
            "DELETE",
            "/api/v1/tokens/{id}",
            Caller,
            delete(access::revoke_token),
        ),
        r(
            "PUT",
            "/api/v1/me/password",
            Caller,
            put(access::change_password),
        ),
        r(
            "POST",
            "/api/v1/users/{email}/disable",
            Admin,
            post(access::disable_user),
        ),
        r("GET", "/api/v1/tenants", Caller, get(tenants::list)),
        r(
            "POST",
            "/api/v1/clusters",
            Admin,
            post(bundle::register_cluster),
        ),
        r(
            "PUT",
            "/api/v1/clusters/{cluster}",
            Admin,
            put(bundle::put_cluster),
        ),
        r("GET", "/api/v1/agent/bundle", Agent, get(bundle::bundle)),
        r("GET", "/api/v1/agent/mirrors", Agent, get(bundle::mirrors)),
        r("POST", "/api/v1/agent/reports", Agent, post(report::report)),
        r(
            "GET",
            "/api/v1/agent/changerequests",
            Agent,
            get(resources::linked_change_requests),
        ),
        r(
            "PUT",
            "/api/v1/agent/changerequests/{namespace}/{name}",
            Agent,
            put(resources::sync_change_request),
        ),
        r(
            "DELETE",
            "/api/v1/agent/changerequests/{namespace}/{name}",
            Agent,
            delete(resources::delete_change_request),
        ),
        r(
            "POST",
            "/api/v1/agent/changerequests/{namespace}/{name}/approvals",
            Agent,
            post(resources::approve_by_kubectl),
        ),
        r(
            "GET",
            "/api/v1/agent/releases",
            Agent,
            get(resources::linked_releases),
        ),
        r(
            "POST",
            "/api/v1/agent/releases/{namespace}/{name}/authorizations",
            Agent,
            post(resources::authorize_by_kubectl),
        ),
        r(
            "PUT",
            "/api/v1/agent/releases/{namespace}/{name}",
            Agent,
            put(resources::sync_release),
        ),
        r(
            "DELETE",
            "/api/v1/agent/releases/{namespace}/{name}",
            Agent,
            delete(resources::delete_release),
        ),
        r(
            "PUT",
            "/api/v1/agent/maintenancewindows/{namespace}/{name}",
            Agent,
            put(resources::sync_window),
        ),
        r(
            "DELETE",
            "/api/v1/agent/maintenancewindows/{namespace}/{name}",
            Agent,
            delete(resources::delete_window),
        ),
        r("POST", "/api/v1/tenants", Admin, post(tenants::create)),
        r("GET", "/api/v1/releases", Caller, get(releases::list)),
        r(
            "POST",
            "/api/v1/releases",
            TenantInBody(Release),
            post(releases::create),
        ),
        r(
            "GET",
            "/api/v1/releases/{number}",
            InRelease(Read),
            get(releases::show),
        ),
        r(
            "PATCH",
            "/api/v1/releases/{number}",
            InRelease(Release),
            patch(releases::edit),
        ),
        r(
            "POST",
            "/api/v1/releases/{number}/phases",
            InRelease(Release),
            post(releases::authorize_phase),
        ),
        r(
            "POST",
            "/api/v1/releases/{number}/overrides",
            InRelease(OverrideConflict),
            post(releases::override_conflict),
        ),
        r(
            "POST",
            "/api/v1/releases/{number}/steps/{step}",
            InRelease(Release),
            post(releases::record_step),
        ),
        r(
            "POST",
            "/api/v1/releases/{number}/rollback",
            InRelease(Release),
            post(releases::rollback),
        ),
        r(
            "POST",
            "/api/v1/releases/{number}/finish",
            InRelease(Release),
            post(releases::finish),
        ),
        r(
            "POST",
            "/api/v1/releases/{number}/close",
            InRelease(Release),
            post(releases::close),
        ),
        r(
            "POST",
            "/api/v1/releases/{number}/cancel",
            InRelease(Release),
            post(releases::cancel),
        ),
        r("GET", "/api/v1/changes", Caller, get(changes::list_all)),
        r(
            "GET",
            "/api/v1/tenants/{tenant}",
            Tenant(Read),
            get(tenants::show),
        ),
        r(
            "PUT",
            "/api/v1/tenants/{tenant}",
            Admin,
            put(tenants::apply),
        ),
        r(
            "GET",
            "/api/v1/tenants/{tenant}/users",
            Tenant(Read),
            get(people::list),
        ),
        r(
            "POST",
            "/api/v1/tenants/{tenant}/users",
            Tenant(AdministerTenant),
            post(people::add),
        ),
        r(
            "DELETE",
            "/api/v1/tenants/{tenant}/users/{email}/roles/{role}",
            Tenant(AdministerTenant),
            delete(access::unbind_role),
        ),
        r(
            "POST",
            "/api/v1/tenants/{tenant}/users/{email}/disable",
            Tenant(AdministerTenant),
            post(access::disable_tenant_user),
        ),
        r(
            "GET",
            "/api/v1/tenants/{tenant}/clusters/{cluster}/identities",
            Tenant(Read),
            get(resources::list_identities),
        ),
        r(
            "PUT",
            "/api/v1/tenants/{tenant}/clusters/{cluster}/identities/{user}",
            Tenant(AdministerTenant),
            put(resources::put_identity),
        ),
        r(
            "DELETE",
            "/api/v1/tenants/{tenant}/clusters/{cluster}/identities/{user}",
            Tenant(AdministerTenant),
            delete(resources::delete_identity),
        ),
        r(
            "GET",
            "/api/v1/tenants/{tenant}/policy",
            Tenant(Read),
            get(policy::show),
        ),
        r(
            "PUT",
            "/api/v1/tenants/{tenant}/policy",
            Tenant(ManagePolicy),
            put(policy::replace),
        ),
        r(
            "GET",
            "/api/v1/tenants/{tenant}/boards",
            Tenant(Read),
            get(policy::list_boards),
        ),
        r(
            "PUT",
            "/api/v1/tenants/{tenant}/boards/{name}",
            Tenant(ManagePolicy),
            put(policy::put_board),
        ),
        r(
            "GET",
            "/api/v1/tenants/{tenant}/windows",
            Tenant(Read),
            get(policy::list_windows),
        ),
        r(
            "PUT",
            "/api/v1/tenants/{tenant}/windows/{name}",
            Tenant(ManageBlackouts),
            put(policy::put_window),
        ),
        r(
            "DELETE",
            "/api/v1/tenants/{tenant}/windows/{name}",
            Tenant(ManageBlackouts),
            delete(policy::delete_window),
        ),
        r(
            "GET",
            "/api/v1/tenants/{tenant}/templates",
            Tenant(Read),
            get(policy::list_templates),
        ),
        r(
            "PUT",
            "/api/v1/tenants/{tenant}/templates/{name}",
            Tenant(ManagePolicy),
            put(policy::put_template),
        ),
        r(
            "GET",
            "/api/v1/tenants/{tenant}/configuration-items",
            Tenant(Read),
            get(policy::list_cis),
        ),
        r(
            "PUT",
            "/api/v1/tenants/{tenant}/configuration-items/{name}",
            Tenant(ManagePolicy),
            put(policy::put_ci),
        ),
        r(
            "POST",
            "/api/v1/tenants/{tenant}/delegations",
            Tenant(Decide),
            post(policy::delegate),
        ),
        r(
            "GET",
            "/api/v1/tenants/{tenant}/changes",
            Tenant(Read),
            get(changes::list),
        ),
        r(
            "POST",
            "/api/v1/gate/check",
            TenantInBody(Read),
            post(gate::check),
        ),
        r(
            "POST",
            "/api/v1/tenants/{tenant}/gate-tokens",
            Tenant(Implement),
            post(gate::create_token),
        ),
        r(
            "GET",
            "/api/v1/tenants/{tenant}/gate-tokens",
            Tenant(AdministerTenant),
            get(access::list_gate_tokens),
        ),
        r(
            "DELETE",
            "/api/v1/tenants/{tenant}/gate-tokens/{id}",
            Tenant(AdministerTenant),
            delete(access::revoke_gate_token),
        ),
        r(
            "GET",
            "/api/v1/tenants/{tenant}/deployments",
            Tenant(Read),
            get(gate::deployments),
        ),
        r(
            "POST",
            "/api/v1/tenants/{tenant}/changes",
            Tenant(RequestChange),
            post(changes::create),
        ),
        r(
            "POST",
            "/api/v1/tenants/{tenant}/changes/preview",
            Tenant(RequestChange),
            post(changes::preview),
        ),
        r(
            "GET",
            "/api/v1/tenants/{tenant}/changes/{number}",
            Tenant(Read),
            get(changes::show),
        ),
        r(
            "PATCH",
            "/api/v1/tenants/{tenant}/changes/{number}",
            Tenant(RequestChange),
            patch(changes::edit),
        ),
        r(
            "POST",
            "/api/v1/tenants/{tenant}/changes/{number}/submit",
            Tenant(RequestChange),
            post(lifecycle::submit),
        ),
        r(
            "POST",
            "/api/v1/tenants/{tenant}/changes/{number}/cancel",
            Tenant(RequestChange),
            post(lifecycle::cancel),
        ),
        r(
            "GET",
            "/api/v1/tenants/{tenant}/changes/{number}/approvals",
            Tenant(Read),
            get(lifecycle::approvals),
        ),
        r(
            "POST",
            "/api/v1/tenants/{tenant}/changes/{number}/decisions",
            Tenant(Decide),
            post(lifecycle::decide),
        ),
        r(
            "POST",
            "/api/v1/tenants/{tenant}/changes/{number}/start",
            Tenant(Implement),
            post(lifecycle::start),
        ),
        r(
            "POST",
            "/api/v1/tenants/{tenant}/changes/{number}/complete",
            Tenant(Implement),
            post(lifecycle::complete),
        ),
        r(
            "POST",
            "/api/v1/tenants/{tenant}/changes/{number}/fail",
            Tenant(Implement),
            post(lifecycle::fail),
        ),
        r(
            "POST",
            "/api/v1/tenants/{tenant}/changes/{number}/review",
            Tenant(Implement),
            post(lifecycle::review),
        ),
        r(
            "GET",
            "/api/v1/tenants/{tenant}/proposals",
            Tenant(Read),
            get(proposals::list),
        ),
        r(
            "POST",
            "/api/v1/tenants/{tenant}/proposals",
            Tenant(RequestChange),
            post(proposals::create),
        ),
        r(
            "GET",
            "/api/v1/tenants/{tenant}/proposals/{number}",
            Tenant(Read),
            get(proposals::show),
        ),
        r(
            "POST",
            "/api/v1/tenants/{tenant}/proposals/{number}/decisions",
            Tenant(Decide),
            post(proposals::decide),
        ),
        r(
            "POST",
            "/api/v1/tenants/{tenant}/proposals/{number}/withdraw",
            Tenant(RequestChange),
            post(proposals::withdraw),
        ),
        r(
            "POST",
            "/api/v1/tenants/{tenant}/changes/{number}/acceptance",
            Tenant(Read),
            post(lifecycle::accept),
        ),
        r(
            "GET",
            "/api/v1/tenants/{tenant}/changes/{number}/revisions",
            Tenant(Read),
            get(changes::revisions),
        ),
        r(
            "GET",
            "/api/v1/tenants/{tenant}/changes/{number}/comments",
            Tenant(Read),
            get(changes::comments),
        ),
        r(
            "POST",
            "/api/v1/tenants/{tenant}/changes/{number}/comments",
            Tenant(Comment),
            post(changes::comment),
        ),
        r(
            "GET",
            "/api/v1/tenants/{tenant}/audit",
            Tenant(Read),
            get(audit::verify),
        ),
        r(
            "GET",
            "/api/v1/tenants/{tenant}/kpis",
            Tenant(Read),
            get(kpis::show),
        ),
        r("GET", "/metrics", Admin, get(kpis::metrics)),
        r(
            "GET",
            "/api/v1/tenants/{tenant}/calendar",
            Tenant(Read),
            get(api::calendar::show),
        ),
        r(
            "GET",
            "/api/v1/tenants/{tenant}/calendar-feeds",
            Tenant(Read),
            get(api::calendar::feeds),
        ),
        r(
            "POST",
            "/api/v1/tenants/{tenant}/calendar-feeds",
            Tenant(Read),
            post(api::calendar::create_feed),
        ),
        r(
            "DELETE",
            "/api/v1/tenants/{tenant}/calendar-feeds/{id}",
            Tenant(Read),
            delete(api::calendar::revoke_feed),
        ),
        // The token in the path is the credential (calendar clients send no other).
        r("GET", "/feeds/{token}", Public, get(api::calendar::feed)),
        r(
            "GET",
            "/api/v1/tenants/{tenant}/evidence",
            Tenant(Read),
            get(api::evidence::export),
        ),
    ]
}

/// The route table without handlers: what the authorization matrix walks.
pub fn route_table() -> Vec<RouteInfo> {
    routes().into_iter().map(|(info, _)| info).collect()
}

pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for (info, handler) in routes() {
        router = router.route(info.path, handler);
    }
    router
        .merge(portal::router())
        .fallback(api::meta::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            note_writes,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            fail_fast_while_away,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        // A bug that panics answers this request with the API's 500 (and
        // is logged) instead of dropping the connection; the tests treat
        // either as a failure.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                axum::response::IntoResponse::into_response(error::ApiError::internal())
            },
        ))
        .with_state(state)
}

/// While the database was found unreachable less than a second ago, a
/// request is answered 503 (with `Retry-After`) at once; the first after
/// that second tries the database again. `/healthz`, `/readyz` and the
/// agents' bundle (served from what the server holds) always go through.
async fn fail_fast_while_away(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = request.uri().path();
    let exempt = matches!(path, "/healthz" | "/readyz" | "/api/v1/agent/bundle");
    let away = *state.away.lock().unwrap_or_else(|e| e.into_inner());
    if !exempt && away.is_some_and(|at| at.elapsed() < std::time::Duration::from_secs(1)) {
        let e = error::ApiError::unavailable();
        return if path.starts_with("/api/") {
            axum::response::IntoResponse::into_response(e)
        } else {
            portal::pages::problem(e)
        };
    }
    let response = next.run(request).await;
    if response.status() == axum::http::StatusCode::SERVICE_UNAVAILABLE
        && response
            .headers()
            .contains_key(axum::http::header::RETRY_AFTER)
    {
        *state.away.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now());
    }
    response
}

/// A response extension: this request, though not a GET, wrote nothing
/// (a gate check without `record`), so it neither wakes agents nor makes
/// the tenants' snapshots rebuild.
#[derive(Clone, Copy)]
pub struct NothingWritten;

/// After a successful write, wake whoever waits for one (agents long-polling
/// their bundle).
async fn note_writes(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::Method;
    let write = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let tenant = confined_to(request.uri().path());
    let response = next.run(request).await;
    // A portal form answers a write with a redirect.
    if write
        && (response.status().is_success() || response.status().is_redirection())
        && response.extensions().get::<NothingWritten>().is_none()
    {
        state.writes.note(tenant.as_deref());
    }
    response
}

/// The tenant a write is confined to: the slug of `/api/v1/tenants/{t}/…`
/// or `/t/{t}/…` (a route below the tenant, whose handler acts in that
/// tenant only). Anything else, the tenant record itself included, may
/// touch any tenant.
fn confined_to(path: &str) -> Option<String> {
    let rest = path
        .strip_prefix("/api/v1/tenants/")
        .or_else(|| path.strip_prefix("/t/"))?;
    let (slug, below) = rest.split_once('/')?;
    (!slug.is_empty() && !below.is_empty()).then(|| slug.to_string())
}

#[cfg(test)]
mod writes_tests {
    use super::Writes;

    #[test]
    fn a_tenant_wait_is_woken_by_its_own_writes_and_by_unconfined_ones_only() {
        let writes = Writes::default();
        let mut a = writes.subscribe_tenant("client-a");
        let mut all = writes.subscribe();
        writes.note(Some("client-b"));
        assert!(!a.has_changed().expect("open"), "another tenant's write");
        assert!(all.has_changed().expect("open"));
        all.mark_unchanged();
        writes.note(Some("client-a"));
        assert!(a.has_changed().expect("open"), "its own write");
        a.mark_unchanged();
        writes.note(None);
        assert!(
            a.has_changed().expect("open"),
            "a write to no tenant in particular"
        );
        assert_eq!(writes.of_tenant("client-a"), (1, 1));
    }
}

/// How many requests are waiting now (each holds a [`WaitingOne`] while
/// it waits; dropping it, also when the caller goes away, counts it out).
#[derive(Default, Debug)]
pub struct Waiting(std::sync::atomic::AtomicUsize);

impl Waiting {
    pub fn enter(self: &Arc<Self>) -> WaitingOne {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        WaitingOne(self.clone())
    }

    pub fn now(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// One waiting request; see [`Waiting`].
#[derive(Debug)]
pub struct WaitingOne(Arc<Waiting>);

impl Drop for WaitingOne {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Writes through this server, counted: in all (what long-polls wait on),
/// not confined to a tenant, and per tenant (what `snapshot` compares);
/// each tenant has its own wake besides, for what waits on one tenant only.
pub struct Writes {
    wake: tokio::sync::watch::Sender<u64>,
    anywhere: std::sync::atomic::AtomicU64,
    tenants: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    tenant_wakes:
        std::sync::Mutex<std::collections::HashMap<String, tokio::sync::watch::Sender<u64>>>,
}

impl Default for Writes {
    fn default() -> Self {
        Writes {
            wake: tokio::sync::watch::Sender::new(0),
            anywhere: std::sync::atomic::AtomicU64::new(0),
            tenants: std::sync::Mutex::default(),
            tenant_wakes: std::sync::Mutex::default(),
        }
    }
}

impl Writes {
    /// A write committed, confined to `tenant` when it names one.
    pub fn note(&self, tenant: Option<&str>) {
        match tenant {
            Some(slug) => {
                let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
                *tenants.entry(slug.to_string()).or_default() += 1;
                drop(tenants);
                let wakes = self.tenant_wakes.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(wake) = wakes.get(slug) {
                    wake.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
            None => {
                self.anywhere
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // Not confined: it can have changed any tenant.
                let wakes = self.tenant_wakes.lock().unwrap_or_else(|e| e.into_inner());
                for wake in wakes.values() {
                    wake.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
        }
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Woken on a write to tenant `slug` or to no tenant in particular,
    /// not by other tenants' writes: what a check waiting on one tenant's
    /// gate waits on, so that a write wakes only the waits it can settle.
    pub fn subscribe_tenant(&self, slug: &str) -> tokio::sync::watch::Receiver<u64> {
        let mut wakes = self.tenant_wakes.lock().unwrap_or_else(|e| e.into_inner());
        wakes
            .entry(slug.to_string())
            .or_insert_with(|| tokio::sync::watch::Sender::new(0))
            .subscribe()
    }

    /// Every write so far.
    pub fn count(&self) -> u64 {
        *self.wake.borrow()
    }

    /// Woken on every write.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.wake.subscribe()
    }

    /// Writes not confined to one tenant.
    pub fn anywhere(&self) -> u64 {
        self.anywhere.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// What can have changed any of `slugs`: writes anywhere, and their own.
    pub fn of_tenants(&self, slugs: &[String]) -> (u64, Vec<(String, u64)>) {
        let tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        let own = slugs
            .iter()
            .map(|s| (s.clone(), tenants.get(s).copied().unwrap_or(0)))
            .collect();
        (self.anywhere(), own)
    }

    /// What can have changed tenant `slug`: writes anywhere, and its own.
    pub fn of_tenant(&self, slug: &str) -> (u64, u64) {
        let own = self
            .tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(slug)
            .copied()
            .unwrap_or(0);
        (self.anywhere(), own)
    }
}
