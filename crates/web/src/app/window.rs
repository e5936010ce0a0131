//! A tenant's windows as every entry point writes them (the API, the
//! portal's settings, a cluster's MaintenanceWindows): checked with the
//! core's rules, a maintenance window the change manager's, a blackout
//! also the client's tenant admin's.

use changegate_core::authz::Action;
use changegate_core::window::{CompiledWindow, WindowKind, WindowSpec};
use changegate_store::{Applied, ObjectKind};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::tenant::InTenant;

/// A window name: letters, digits, `-`, `_` and `.`.
pub fn check_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "name",
            format!("{name:?}: use letters, digits, '-', '_' and '.' (at most 100)"),
        ))
    }
}

/// A window's spec from a body, checked as the core compiles it.
pub fn window_spec(name: &str, body: serde_json::Value) -> ApiResult<WindowSpec> {
    let spec: WindowSpec = serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        ApiError::invalid(
            if path == "." { String::new() } else { path },
            e.into_inner().to_string(),
        )
    })?;
    if !spec.tenants.is_empty() {
        return Err(ApiError::invalid(
            "tenants",
            "a tenant's window applies to the tenant in its URL; leave tenants out",
        ));
    }
    CompiledWindow::compile(name, &spec).map_err(|e| {
        let field = e.field();
        let message = e.to_string();
        let message = message
            .strip_prefix(&format!("{field}: "))
            .unwrap_or(&message)
            .to_string();
        ApiError::invalid(field.trim_start_matches("spec.").to_string(), message)
    })?;
    Ok(spec)
}

/// The tenant's window `name` as stored, if there is one.
pub async fn stored(
    state: &AppState,
    tenant: changegate_core::TenantId,
    name: &str,
) -> ApiResult<Option<WindowSpec>> {
    Ok(state
        .store
        .objects(tenant, ObjectKind::Window)
        .await?
        .into_iter()
        .find(|o| o.name == name)
        .and_then(|o| serde_json::from_str::<WindowSpec>(&o.spec).ok()))
}

/// Create or replace window `name` of `t`'s tenant as `t.caller`.
pub async fn put(
    state: &AppState,
    t: &InTenant,
    name: &str,
    body: serde_json::Value,
) -> ApiResult<(Applied, WindowSpec)> {
    t.authorize(Action::ManageBlackouts)?;
    check_name(name)?;
    let spec = window_spec(name, body)?;
    // A maintenance window is the change manager's, whether it is being
    // written or is the one being replaced.
    let replaces_maintenance = state
        .store
        .objects(t.tenant.id, ObjectKind::Window)
        .await?
        .iter()
        .find(|o| o.name == name)
        .is_some_and(|o| {
            serde_json::from_str::<WindowSpec>(&o.spec)
                .map_or(true, |w| w.kind != WindowKind::Blackout)
        });
    if spec.kind != WindowKind::Blackout || replaces_maintenance {
        t.authorize(Action::ManagePolicy)?;
    }
    let text = serde_json::to_string(&spec).map_err(|_| ApiError::internal())?;
    let applied = state
        .store
        .put_object(
            t.tenant.id,
            ObjectKind::Window,
            name,
            &text,
            &t.actor(),
            state.now(),
        )
        .await?;
    Ok((applied, spec))
}
