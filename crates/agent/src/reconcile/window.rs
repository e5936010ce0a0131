//! The MaintenanceWindow reconciler: the leader writes each resource's
//! latest spec as its tenant's window of that name (windows are
//! tenant-wide), as the resource's last author, and writes into status
//! whether it is open, until when, and when it next opens; woken at each
//! of those boundaries. A deleted resource's window goes, if it still is
//! what the resource wrote.

use super::{Context, Unsynced, apply_status, put_record, requested_by, tenant_of};
use changegate_resources::wire::{WindowDeleted, WindowRecord, WindowSync};
use changegate_resources::{EDITED_BY_ANNOTATION, MaintenanceWindow, from_record};
use chrono::Utc;
use futures::StreamExt;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use reqwest::header::AUTHORIZATION;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn run(ctx: Arc<Context>) {
    let api: Api<MaintenanceWindow> = Api::all(ctx.client.clone());
    let bundles = super::on_every_bundle(&ctx);
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
    // A mirror shows a window of the server: `mirror` writes it.
    if super::mirror::is_mirror(mw.as_ref()) {
        return Ok(Action::await_change());
    }
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
        apply_status(mw.as_ref(), &ctx, &status).await?;
    }
    ctx.metrics
        .reconciled("MaintenanceWindow", result, started.elapsed());
    Ok(action)
}

async fn sync(mw: &MaintenanceWindow, ctx: &Context) -> Result<WindowRecord, Unsynced> {
    let namespace = mw.namespace().unwrap_or_default();
    let tenant = tenant_of(ctx, &namespace)?;
    let requested_by = requested_by(mw)?;
    let annotations = mw.annotations();
    let body = WindowSync {
        tenant,
        uid: mw.uid().unwrap_or_default(),
        generation: mw.metadata.generation.unwrap_or(0),
        requested_by,
        edited_by: annotations.get(EDITED_BY_ANNOTATION).cloned(),
        spec: mw.spec.to_server(),
    };
    put_record(
        ctx,
        &format!("maintenancewindows/{namespace}/{}", mw.name_any()),
        &body,
    )
    .await
}

/// Reports each deleted MaintenanceWindow with its last spec (the leader does).
async fn watch_deletions(api: Api<MaintenanceWindow>, ctx: Arc<Context>) {
    let events = watcher(api, watcher::Config::default());
    futures::pin_mut!(events);
    while let Some(event) = events.next().await {
        let Ok(watcher::Event::Delete(mw)) = event else {
            continue;
        };
        // Deleting a mirror removes nothing on the server.
        if super::mirror::is_mirror(&mw) {
            continue;
        }
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
