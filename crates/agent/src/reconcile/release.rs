//! The Release reconciler: the leader sends each resource's latest spec
//! to the server and writes the release's record into status (never
//! `status.authorizations`, which people write). Until every change it
//! names is approved the server holds nothing and status says what it
//! waits for; every new bundle (an approval anywhere) reconciles again.
//! Phases, steps and outcomes recorded on the server change no bundle:
//! while a release is under way the reconciler looks again every few
//! seconds (3 while it deploys, 5 before), so status follows them. A deleted resource is reported
//! so its release is cancelled (not deployed) or detached.

use super::{Context, Unsynced, annotate, apply_status, put_record, requested_by, tenant_of};
use changegate_resources::from_release::{release_happened, release_status, release_unsynced};
use changegate_resources::release::ReleaseObserved;
use changegate_resources::wire::{ReleaseRecord, ReleaseSync};
use changegate_resources::{EDITED_BY_ANNOTATION, RELEASE_ANNOTATION, Release};
use chrono::Utc;
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn run(ctx: Arc<Context>) {
    let api: Api<Release> = Api::all(ctx.client.clone());
    let bundles = super::on_every_bundle(&ctx);
    let deletions = super::deletions::watch(api.clone(), ctx.clone(), "releases");
    let sweeps = super::deletions::sweep(api.clone(), ctx.clone(), "releases");
    let controller = Controller::new(api, watcher::Config::default())
        .reconcile_all_on(bundles)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {});
    tokio::join!(controller, deletions, sweeps);
}

fn error_policy(_: Arc<Release>, e: &Unsynced, _: Arc<Context>) -> Action {
    tracing::warn!(error = %e, "release reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile(rel: Arc<Release>, ctx: Arc<Context>) -> Result<Action, Unsynced> {
    if !ctx.leadership.is_leader() {
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    let started = Instant::now();
    let now = Utc::now();
    let generation = rel.metadata.generation.unwrap_or(0);
    let previous = rel
        .status
        .as_ref()
        .map(|s| s.observed.clone())
        .unwrap_or_default();
    let (observed, action, result) = match sync(&rel, &ctx).await {
        Ok(record) => {
            if let Some(n) = &record.number {
                annotate(rel.as_ref(), &ctx, RELEASE_ANNOTATION, n).await;
            }
            // Phases, steps and outcomes are recorded on the server and
            // change no bundle: look again within seconds while the
            // release is under way (releases are few), rarely once over.
            let wait = Duration::from_secs(match record.phase.as_str() {
                "deploying" | "rolling-back" => 3,
                "closed" | "cancelled" => 300,
                _ => 5,
            });
            (
                release_status(&record, &previous.conditions, generation, now),
                Action::requeue(wait),
                "synced",
            )
        }
        Err(Unsynced::Refused(why)) => (
            release_unsynced(&previous, &why, true, generation, now),
            Action::requeue(Duration::from_secs(30)),
            "refused",
        ),
        Err(Unsynced::Unavailable(why)) => (
            release_unsynced(&previous, &why, false, generation, now),
            Action::requeue(Duration::from_secs(5)),
            "unavailable",
        ),
    };
    if observed != previous {
        apply_status(rel.as_ref(), &ctx, &observed).await?;
        record_events(&rel, &ctx, &previous, &observed).await;
    }
    ctx.metrics.reconciled("Release", result, started.elapsed());
    Ok(action)
}

/// What changed, as events on the resource; a lost event is logged.
async fn record_events(
    rel: &Release,
    ctx: &Context,
    before: &ReleaseObserved,
    after: &ReleaseObserved,
) {
    use kube::runtime::events::{Event, EventType};
    let reference = rel.object_ref(&());
    for h in release_happened(before, after) {
        let event = Event {
            type_: if h.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: h.reason.into(),
            note: Some(h.note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, reason = h.reason, "cannot record an event on the Release");
        }
    }
}

/// The resource's latest spec to the server; its record back.
async fn sync(rel: &Release, ctx: &Context) -> Result<ReleaseRecord, Unsynced> {
    let namespace = rel.namespace().unwrap_or_default();
    let tenant = tenant_of(ctx, &namespace)?;
    if let Some(invalid) = rel.spec.refusal() {
        return Err(Unsynced::Refused(invalid.to_string()));
    }
    let body = ReleaseSync {
        tenant,
        uid: rel.uid().unwrap_or_default(),
        generation: rel.metadata.generation.unwrap_or(0),
        requested_by: requested_by(rel)?,
        edited_by: rel.annotations().get(EDITED_BY_ANNOTATION).cloned(),
        spec: rel.spec.clone(),
    };
    put_record(
        ctx,
        &format!("releases/{namespace}/{}", rel.name_any()),
        &body,
    )
    .await
}
