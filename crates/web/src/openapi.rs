//! The OpenAPI document, generated from the handlers' annotations and
//! committed as `docs/openapi.json` (a test fails when they drift).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::*;

#[derive(OpenApi)]
#[openapi(
    info(title = "changegate", description = "Change and release management for managed service providers. Authenticate with `Authorization: Bearer <token>`; errors are `{\"error\": {\"code\", \"message\", \"field\"}}`."),
    paths(
        session::sign_in, session::sign_out,
        people::me, people::create_token, people::list, people::add,
        access::list_tokens, access::revoke_token, access::list_gate_tokens, access::revoke_gate_token,
        access::unbind_role, access::disable_user, access::disable_tenant_user, access::change_password,
        tenants::list, tenants::create, tenants::show, tenants::apply,
        policy::show, policy::replace, policy::list_boards, policy::put_board,
        policy::list_windows, policy::put_window, policy::delete_window,
        policy::list_templates, policy::put_template, policy::list_cis, policy::put_ci, policy::delegate,
        changes::list_all, changes::list, changes::create, changes::preview, changes::show, changes::edit,
        changes::revisions, changes::comments, changes::comment,
        lifecycle::submit, lifecycle::cancel, lifecycle::approvals, lifecycle::decide,
        lifecycle::start, lifecycle::complete, lifecycle::fail, lifecycle::review, lifecycle::accept,
        gate::check, gate::create_token, gate::deployments,
        bundle::register_cluster, bundle::put_cluster, bundle::bundle, bundle::mirrors, report::report,
        resources::linked_change_requests, resources::sync_change_request, resources::delete_change_request,
        resources::approve_by_kubectl, resources::authorize_by_kubectl,
        resources::sync_window, resources::delete_window,
        resources::linked_releases, resources::sync_release, resources::delete_release,
        resources::list_identities, resources::put_identity, resources::delete_identity,
        releases::list, releases::create, releases::show, releases::edit, releases::authorize_phase,
        releases::override_conflict, releases::record_step, releases::rollback, releases::finish,
        releases::close, releases::cancel,
        audit::verify, evidence::export, kpis::show,
        calendar::show, calendar::create_feed, calendar::feeds, calendar::revoke_feed,
        proposals::list, proposals::create, proposals::show, proposals::decide, proposals::withdraw,
    ),
    modifiers(&BearerAuth),
    security(("token" = [])),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("cg_...")
                    .build(),
            ),
        );
    }
}

pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// The document as committed: pretty JSON with a trailing newline.
pub fn document_json() -> String {
    let mut s = document().to_pretty_json().unwrap_or_default();
    s.push('\n');
    s
}
