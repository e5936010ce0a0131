//! The web portal: server-rendered pages (askama templates, compiled with
//! the binary) over the same sessions, authorization and domain calls as
//! the API. Plain forms, no script (the change form's preview posts the
//! form back); every form carries a CSRF token bound
//! to the session; every page is served with a strict Content-Security-Policy.
//!
//! Pages are declared once in `pages()`, like the API's routes, so the
//! page authorization matrix is built from the same table.

mod away;
mod cab;
mod calendar;
mod confirm;
mod evidence;
mod kpis;
mod package;
pub(crate) mod pages;
mod proposals;
mod questionnaire;
mod raise;
mod releases;
mod settings;
mod templates;
mod viewer;
mod words;

pub use viewer::Viewer;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use changegate_core::authz::Action;

use crate::error::ApiError;
use crate::{Access, AppState, RouteInfo};

/// Every page and form target, once.
fn pages() -> Vec<(RouteInfo, MethodRouter<AppState>)> {
    use Access::*;
    use Action::*;
    let r = crate::row;
    vec![
        r("GET", "/", Public, get(pages::home)),
        r("GET", "/static/app.css", Public, get(pages::stylesheet)),
        r("GET", "/sign-in", Public, get(pages::sign_in_form)),
        r("POST", "/sign-in", Public, post(pages::sign_in)),
        r("POST", "/sign-out", Caller, post(pages::sign_out)),
        r("GET", "/inbox", Caller, get(pages::inbox)),
        r("GET", "/tokens", Caller, get(settings::tokens)),
        r("POST", "/tokens", Caller, post(settings::create_token)),
        r("GET", "/admin/tenants", Admin, get(settings::tenants)),
        r(
            "POST",
            "/admin/tenants",
            Admin,
            post(settings::create_tenant),
        ),
        r(
            "GET",
            "/t/{tenant}/settings",
            Tenant(Read),
            get(settings::settings),
        ),
        r(
            "POST",
            "/t/{tenant}/settings/blackouts",
            Tenant(ManageBlackouts),
            post(settings::add_blackout),
        ),
        r(
            "POST",
            "/t/{tenant}/settings/boards",
            Tenant(ManagePolicy),
            post(settings::put_board_form),
        ),
        r(
            "POST",
            "/t/{tenant}/settings/routing",
            Tenant(ManagePolicy),
            post(settings::put_routing_form),
        ),
        r(
            "POST",
            "/t/{tenant}/settings/questionnaire",
            Tenant(ManagePolicy),
            post(questionnaire::put_questionnaire_form),
        ),
        r(
            "POST",
            "/t/{tenant}/settings/templates",
            Tenant(ManagePolicy),
            post(templates::put_template_form),
        ),
        r(
            "POST",
            "/t/{tenant}/settings/items",
            Tenant(ManagePolicy),
            post(settings::put_ci_form),
        ),
        r(
            "POST",
            "/t/{tenant}/settings/windows",
            Tenant(ManageBlackouts),
            post(settings::add_window),
        ),
        r(
            "POST",
            "/t/{tenant}/settings/blackouts/remove",
            Tenant(ManageBlackouts),
            post(settings::remove_blackout),
        ),
        r(
            "POST",
            "/t/{tenant}/settings/people",
            Tenant(AdministerTenant),
            post(settings::add_person),
        ),
        r(
            "POST",
            "/t/{tenant}/settings/identities",
            Tenant(AdministerTenant),
            post(settings::map_identity),
        ),
        r(
            "POST",
            "/t/{tenant}/settings/identities/remove",
            Tenant(AdministerTenant),
            post(settings::unmap_identity),
        ),
        r(
            "POST",
            "/t/{tenant}/settings/objects",
            Tenant(ManageBlackouts),
            post(settings::put_object),
        ),
        // The link's token is the credential: the approver's, for one revision.
        r("GET", "/approve/{token}", Public, get(confirm::show)),
        r("POST", "/approve/{token}", Public, post(confirm::decide)),
        // An acceptance link: the client user's, for one tested revision.
        r(
            "GET",
            "/accept/{token}",
            Public,
            get(confirm::show_acceptance),
        ),
        r("POST", "/accept/{token}", Public, post(confirm::accept)),
        r(
            "GET",
            "/t/{tenant}/changes",
            Tenant(Read),
            get(pages::changes),
        ),
        r(
            "GET",
            "/t/{tenant}/changes/new",
            Tenant(RequestChange),
            get(raise::form),
        ),
        r(
            "POST",
            "/t/{tenant}/changes/new",
            Tenant(RequestChange),
            post(raise::raise),
        ),
        r(
            "GET",
            "/t/{tenant}/changes/{number}",
            Tenant(Read),
            get(pages::change),
        ),
        r(
            "GET",
            "/t/{tenant}/delegations",
            Tenant(Read),
            get(away::show),
        ),
        r(
            "POST",
            "/t/{tenant}/delegations",
            Tenant(Read),
            post(away::hand_over),
        ),
        r(
            "GET",
            "/t/{tenant}/proposals",
            Tenant(Read),
            get(proposals::list),
        ),
        r(
            "GET",
            "/t/{tenant}/proposals/new",
            Tenant(RequestChange),
            get(proposals::new_form),
        ),
        r(
            "POST",
            "/t/{tenant}/proposals/new",
            Tenant(RequestChange),
            post(proposals::create),
        ),
        r(
            "GET",
            "/t/{tenant}/proposals/{number}",
            Tenant(Read),
            get(proposals::show),
        ),
        r(
            "POST",
            "/t/{tenant}/proposals/{number}/decide",
            Tenant(Decide),
            post(proposals::decide),
        ),
        r(
            "POST",
            "/t/{tenant}/proposals/{number}/withdraw",
            Tenant(RequestChange),
            post(proposals::withdraw),
        ),
        r("GET", "/t/{tenant}/boards", Tenant(Read), get(cab::boards)),
        r(
            "GET",
            "/t/{tenant}/boards/{board}",
            Tenant(Read),
            get(cab::agenda),
        ),
        r(
            "GET",
            "/t/{tenant}/evidence",
            Tenant(Read),
            get(evidence::evidence),
        ),
        r("GET", "/t/{tenant}/kpis", Tenant(Read), get(kpis::kpis)),
        r(
            "GET",
            "/t/{tenant}/calendar",
            Tenant(Read),
            get(calendar::tenant),
        ),
        r("GET", "/calendar", Caller, get(calendar::all)),
        r("GET", "/releases", Caller, get(releases::list)),
        r("GET", "/releases/new", Caller, get(package::new_form)),
        r("POST", "/releases/new", Caller, post(package::create)),
        r(
            "POST",
            "/releases/{number}/changes",
            InRelease(Release),
            post(package::add_change),
        ),
        r(
            "POST",
            "/releases/{number}/runbook",
            InRelease(Release),
            post(package::add_step),
        ),
        r(
            "GET",
            "/releases/{number}",
            InRelease(Read),
            get(releases::show),
        ),
        r(
            "POST",
            "/releases/{number}/phases",
            InRelease(Release),
            post(releases::authorize_phase),
        ),
        r(
            "POST",
            "/releases/{number}/steps/{step}",
            InRelease(Release),
            post(releases::record_step),
        ),
        r(
            "POST",
            "/releases/{number}/rollback",
            InRelease(Release),
            post(releases::rollback),
        ),
        r(
            "POST",
            "/releases/{number}/overrides",
            InRelease(OverrideConflict),
            post(releases::override_conflict),
        ),
        r(
            "POST",
            "/releases/{number}/finish",
            InRelease(Release),
            post(releases::finish),
        ),
        r(
            "POST",
            "/releases/{number}/close",
            InRelease(Release),
            post(releases::close),
        ),
        r(
            "POST",
            "/t/{tenant}/calendar/feeds",
            Tenant(Read),
            post(calendar::create_feed),
        ),
        r(
            "POST",
            "/t/{tenant}/calendar/feeds/{id}/revoke",
            Tenant(Read),
            post(calendar::revoke_feed),
        ),
        r(
            "POST",
            "/t/{tenant}/changes/{number}/decide",
            Tenant(Decide),
            post(pages::decide),
        ),
        r(
            "POST",
            "/t/{tenant}/changes/{number}/review",
            Tenant(Implement),
            post(pages::review),
        ),
        r(
            "POST",
            "/t/{tenant}/changes/{number}/comment",
            Tenant(Comment),
            post(pages::comment),
        ),
        r(
            "GET",
            "/t/{tenant}/changes/{number}/edit",
            Tenant(RequestChange),
            get(raise::edit_form),
        ),
        r(
            "POST",
            "/t/{tenant}/changes/{number}/edit",
            Tenant(RequestChange),
            post(raise::edit),
        ),
        r(
            "POST",
            "/t/{tenant}/changes/{number}/accept",
            Tenant(Read),
            post(pages::accept),
        ),
        r(
            "POST",
            "/t/{tenant}/changes/{number}/submit",
            Tenant(RequestChange),
            post(pages::submit),
        ),
        r(
            "POST",
            "/t/{tenant}/changes/{number}/start",
            Tenant(Implement),
            post(pages::start),
        ),
        r(
            "POST",
            "/t/{tenant}/changes/{number}/complete",
            Tenant(Implement),
            post(pages::complete),
        ),
        r(
            "POST",
            "/t/{tenant}/changes/{number}/fail",
            Tenant(Implement),
            post(pages::fail),
        ),
        r(
            "POST",
            "/t/{tenant}/changes/{number}/withdraw",
            Tenant(RequestChange),
            post(pages::withdraw),
        ),
    ]
}

/// The page table, for the page authorization matrix.
pub fn page_table() -> Vec<RouteInfo> {
    pages().into_iter().map(|(info, _)| info).collect()
}

/// The portal's routes, with its security headers.
pub fn router() -> Router<AppState> {
    let mut router = Router::new();
    for (info, handler) in pages() {
        router = router.route(info.path, handler);
    }
    router.layer(axum::middleware::from_fn(security_headers))
}

/// Scripts, styles, images and form targets from this origin only; no
/// framing; no referrer leaks the change numbers in our URLs.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// An error shown as a page with the same status the API would answer.
pub struct PageError(pub ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e)
    }
}

impl From<changegate_store::StoreError> for PageError {
    fn from(e: changegate_store::StoreError) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        pages::problem(self.0)
    }
}

pub type PageResult<T> = Result<T, PageError>;

/// A form body as its fields in order, repeated keys kept (a group of
/// checkboxes), which `axum::Form` cannot read.
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    pub(crate) fn parse(body: &[u8]) -> Self {
        Fields(form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of `name`, or empty.
    pub(crate) fn one(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// Every value of `name`, in order.
    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The non-empty fields named `prefix` + key, as (key, value).
    pub(crate) fn under(&self, prefix: &str) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone())))
            .filter(|(_, v)| !v.is_empty())
            .collect()
    }
}
