//! Verifying a tenant's audit chain.

use axum::Json;
use axum::extract::State;
use changegate_core::audit;
use changegate_core::authz::Action;

use crate::AppState;
use crate::dto::AuditView;
use crate::error::ApiResult;
use crate::tenant::InTenant;

/// Walk the tenant's hash chain and report the first broken link, if any,
/// and whether it ends at the head recorded with its last append. Keep the
/// head (`head_seq`, `head_hash`) elsewhere: a later chain must extend it.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/audit", tag = "audit",
    params(("tenant" = String, Path)), responses((status = 200, body = AuditView)))]
pub async fn verify(State(state): State<AppState>, t: InTenant) -> ApiResult<Json<AuditView>> {
    t.authorize(Action::Read)?;
    let (events, head) = state.store.audit_events(t.tenant.id).await?;
    let report = audit::verify(&events, &head);
    Ok(Json(AuditView {
        tenant: t.tenant.slug.to_string(),
        events: report.events,
        intact: report.intact,
        first_break: report
            .first_break
            .map(|b| serde_json::to_value(b).unwrap_or_default()),
        head_seq: report.head_seq,
        head_hash: report.head_hash,
    }))
}
