//! The MaintenanceWindow reconciler: the leader writes each resource's
//! latest spec as its tenant's window of that name (windows are
//! tenant-wide), as the resource's last author, and writes into status
//! whether it is open, until when, and when it next opens; woken at each
//! of those boundaries. A deleted resource's window goes, if it still is
//! what the resource wrote.

use super::{Context, Unsynced, server_error};
use changegate_resources::maintenance_window::MaintenanceWindowStatus;
use changegate_resources::wire::{WindowDeleted, WindowRecord, WindowSync};
use changegate_resources::{
    EDITED_BY_ANNOTATION, FIELD_MANAGER, MaintenanceWindow, REQUESTED_BY_ANNOTATION, from_record,
};
use chrono::Utc;
use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use reqwest::header::AUTHORIZATION;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn run(ctx: Arc<Context>) {
    let api: Api<MaintenanceWindow> = Api::all(ctx.client.clone());
    let bundles = futures::stream::unfold(ctx.bundle.subscribe(), |mut taken| async move {
        taken.changed().await.ok().map(|()| ((), taken))
    });
    let deletions = watch_deletions(api.clone(), ctx.clone());
    let controller = Controller::new(api, watcher::Config::default())
        .reconcile_all_on(bundles)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {});
    tokio::join!(controller, deletions);
}

fn error_policy(_: Arc<MaintenanceWindow>, e: &Unsynced, _: Arc<Context>) -> Action {
    tracing::warn!(error = %e, "window reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile(mw: Arc<MaintenanceWindow>, ctx: Arc<Context>) -> Result<Action, Unsynced> {
    if !ctx.leadership.is_leader() {
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    let started = Instant::now();
    let now = Utc::now();
    let generation = mw.metadata.generation.unwrap_or(0);
    let previous = mw.status.clone().unwrap_or_default();
    let (status, action, result) = match sync(&mw, &ctx).await {
        Ok(record) => {
            // Wake when it closes or opens next, to say so.
            let boundary = if record.open {
                record.open_until
            } else {
                record.next_open
            };
            let wait = boundary
                .and_then(|at| (at - now).to_std().ok())
                .map_or(Duration::from_secs(300), |d| {
                    (d + Duration::from_secs(1)).min(Duration::from_secs(300))
                });
            (
                from_record::window_status(&record, &previous.conditions, generation, now),
                Action::requeue(wait),
                "synced",
            )
        }
        Err(Unsynced::Refused(why)) => (
            from_record::window_unsynced(&previous, &why, true, generation, now),
            Action::requeue(Duration::from_secs(30)),
            "refused",
        ),
        Err(Unsynced::Unavailable(why)) => (
            from_record::window_unsynced(&previous, &why, false, generation, now),
            Action::requeue(Duration::from_secs(5)),
            "unavailable",
        ),
    };
    if status != previous {
        write_status(&mw, &ctx, &status).await?;
    }
    ctx.metrics
        .reconciled("MaintenanceWindow", result, started.elapsed());
    Ok(action)
}

async fn sync(mw: &MaintenanceWindow, ctx: &Context) -> Result<WindowRecord, Unsynced> {
    let namespace = mw.namespace().unwrap_or_default();
    let tenant = ctx.stores.tenant_of(&namespace).ok_or_else(|| {
        Unsynced::Refused(format!(
            "namespace {namespace} is not labelled changegate.dev/tenant; label it with its tenant's slug"
        ))
    })?;
    let annotations = mw.annotations();
    let requested_by = annotations
        .get(REQUESTED_BY_ANNOTATION)
        .cloned()
        .ok_or_else(|| {
            Unsynced::Refused(format!(
                "the resource has no {REQUESTED_BY_ANNOTATION} annotation (it was created while the operator's webhook was not registered); delete it and apply it again"
            ))
        })?;
    let body = WindowSync {
        tenant,
        uid: mw.uid().unwrap_or_default(),
        generation: mw.metadata.generation.unwrap_or(0),
        requested_by,
        edited_by: annotations.get(EDITED_BY_ANNOTATION).cloned(),
        spec: mw.spec.to_server(),
    };
    let url = format!(
        "{}/api/v1/agent/maintenancewindows/{namespace}/{}",
        ctx.server.trim_end_matches('/'),
        mw.name_any()
    );
    let response = ctx
        .http
        .put(&url)
        .header(AUTHORIZATION, format!("Bearer {}", ctx.token))
        .json(&body)
        .send()
        .await
        .map_err(|e| Unsynced::Unavailable(format!("cannot reach the changegate server: {e}")))?;
    let status = response.status();
    if status.is_success() {
        return response
            .json::<WindowRecord>()
            .await
            .map_err(|e| Unsynced::Unavailable(format!("the server's answer does not read: {e}")));
    }
    let text = response.text().await.unwrap_or_default();
    let why = server_error(&text).unwrap_or_else(|| format!("the server answered {status}"));
    if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
        Err(Unsynced::Refused(why))
    } else {
        Err(Unsynced::Unavailable(why))
    }
}

async fn write_status(
    mw: &MaintenanceWindow,
    ctx: &Context,
    status: &MaintenanceWindowStatus,
) -> Result<(), Unsynced> {
    let api: Api<MaintenanceWindow> =
        Api::namespaced(ctx.client.clone(), &mw.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": MaintenanceWindow::api_version(&()),
        "kind": MaintenanceWindow::kind(&()),
        "status": status,
    });
    api.patch_status(
        &mw.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
    .map_err(|e| Unsynced::Unavailable(format!("cannot write the status: {e}")))
}

/// Reports each deleted MaintenanceWindow with its last spec (the leader does).
async fn watch_deletions(api: Api<MaintenanceWindow>, ctx: Arc<Context>) {
    let events = watcher(api, watcher::Config::default());
    futures::pin_mut!(events);
    while let Some(event) = events.next().await {
        let Ok(watcher::Event::Delete(mw)) = event else {
            continue;
        };
        if !ctx.leadership.is_leader() {
            continue;
        }
        let namespace = mw.namespace().unwrap_or_default();
        let Some(tenant) = ctx.stores.tenant_of(&namespace) else {
            continue;
        };
        let url = format!(
            "{}/api/v1/agent/maintenancewindows/{namespace}/{}",
            ctx.server.trim_end_matches('/'),
            mw.name_any()
        );
        let body = WindowDeleted {
            tenant,
            uid: mw.uid().unwrap_or_default(),
            spec: mw.spec.to_server(),
        };
        let sent = ctx
            .http
            .delete(&url)
            .header(AUTHORIZATION, format!("Bearer {}", ctx.token))
            .json(&body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                tracing::info!(window = %mw.name_any(), "deleted MaintenanceWindow reported to the server");
            }
            other => {
                tracing::warn!(window = %mw.name_any(), result = ?other.map(|r| r.status()), "cannot report a deleted MaintenanceWindow; its window stays on the server");
            }
        }
    }
}
