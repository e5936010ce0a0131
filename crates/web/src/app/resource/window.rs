//! MaintenanceWindows and the tenant's windows of their names (windows
//! are tenant-wide), written as the resource's last author through the
//! rules every window write follows.

use changegate_resources::wire::{WindowDeleted, WindowRecord, WindowSync};
use changegate_store::{ObjectKind, ResourceLink};

use super::{bound_tenant, key, mapped};
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::tenant::InTenant;

/// The kind of resource a window comes from.
pub const MAINTENANCE_WINDOW: &str = "MaintenanceWindow";

/// Writes the window of the MaintenanceWindow `name` (windows are
/// tenant-wide: the tenant's window of that name) as the resource's last
/// author, through the rules every window write follows, and answers the
/// window as its status shows it.
pub async fn sync_window(
    state: &AppState,
    cluster: &str,
    namespace: &str,
    name: &str,
    body: WindowSync,
) -> ApiResult<WindowRecord> {
    let tenant = bound_tenant(state, cluster, &body.tenant).await?;
    let key = key(cluster, namespace, MAINTENANCE_WINDOW, name);
    // A generation already written is not written again: a window edited
    // in the portal since stays until the resource's spec changes.
    if let Some(link) = state.store.resource_link(&key).await?
        && link.tenant == tenant.id
        && link.uid == body.uid
        && link.generation >= body.generation
        && let Some(spec) = crate::app::window::stored(state, tenant.id, name).await?
    {
        return window_record(state, name, &spec);
    }
    let (author, field) = match &body.edited_by {
        Some(editor) => (editor.as_str(), "editedBy"),
        None => (body.requested_by.as_str(), "requestedBy"),
    };
    let caller = mapped(state, &tenant, cluster, author, field).await?;
    let t = InTenant {
        caller,
        tenant: tenant.clone(),
    };
    let (_, spec) = crate::app::window::put(state, &t, name, body.spec).await?;
    state
        .store
        .put_resource_link(&ResourceLink {
            key,
            tenant: tenant.id,
            number: 0,
            uid: body.uid,
            generation: body.generation,
            updated_at: state.now(),
        })
        .await?;
    state.writes.note(Some(tenant.slug.as_str()));
    window_record(state, name, &spec)
}

/// The MaintenanceWindow `name` was deleted: its window goes when this
/// resource wrote it and it is still what the resource wrote (a window
/// changed since in the portal or by `apply -f` stays; a resource that
/// never wrote it, or another one, removes nothing). Answers whether it went.
pub async fn delete_window(
    state: &AppState,
    cluster: &str,
    namespace: &str,
    name: &str,
    body: WindowDeleted,
) -> ApiResult<bool> {
    let tenant = bound_tenant(state, cluster, &body.tenant).await?;
    let key = key(cluster, namespace, MAINTENANCE_WINDOW, name);
    let Some(link) = state.store.resource_link(&key).await? else {
        return Ok(false);
    };
    if link.tenant != tenant.id || link.uid != body.uid {
        return Ok(false);
    }
    state.store.unlink_resource(&key, 0).await?;
    let Ok(written) = crate::app::window::window_spec(name, body.spec) else {
        return Ok(false);
    };
    if crate::app::window::stored(state, tenant.id, name).await? != Some(written) {
        return Ok(false);
    }
    state
        .store
        .delete_object(
            tenant.id,
            ObjectKind::Window,
            name,
            &format!("operator of cluster {cluster}"),
            state.now(),
        )
        .await?;
    state.writes.note(Some(tenant.slug.as_str()));
    Ok(true)
}

/// Whether `spec` is open at the server's time, until when, and when it
/// next opens.
pub(super) fn window_record(
    state: &AppState,
    name: &str,
    spec: &changegate_core::window::WindowSpec,
) -> ApiResult<WindowRecord> {
    let compiled = changegate_core::window::CompiledWindow::compile(name, spec)
        .map_err(|_| ApiError::internal())?;
    let now = state.now();
    let current = compiled.current(now);
    let next = compiled.next_window(match current {
        Some(open) => open.end,
        None => now,
    });
    Ok(WindowRecord {
        name: name.to_string(),
        kind: match spec.kind {
            changegate_core::window::WindowKind::Maintenance => "maintenance",
            changegate_core::window::WindowKind::Blackout => "blackout",
        }
        .to_string(),
        open: current.is_some(),
        open_until: current.map(|i| i.end),
        next_open: next.map(|i| i.start),
    })
}
