//! The ChangeRequest reconciler: the leader sends each resource's latest
//! spec to the server and writes the change's record into status (never
//! `status.approvals`). It wakes on every change of a resource, on every
//! new bundle (a decision anywhere reaches status that way), and at the
//! next window boundary; a deleted resource is reported so its change is
//! cancelled or detached, and the leader's sweep finds deletions no watch
//! saw.

use super::{Context, Unsynced, annotate, apply_status, put_record, requested_by, tenant_of};
use changegate_resources::change_request::Observed;
use changegate_resources::to_record::{self, Known, Place};
use changegate_resources::wire::{ChangeRecord, ChangeRequestSync};
use changegate_resources::{CHANGE_ANNOTATION, ChangeRequest, EDITED_BY_ANNOTATION, from_record};
use chrono::Utc;
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn run(ctx: Arc<Context>) {
    let api: Api<ChangeRequest> = Api::all(ctx.client.clone());
    let bundles = super::on_every_bundle(&ctx);
    let deletions = super::deletions::watch(api.clone(), ctx.clone(), "changerequests");
    let sweeps = super::deletions::sweep(api.clone(), ctx.clone(), "changerequests");
    let controller = Controller::new(api, watcher::Config::default())
        .reconcile_all_on(bundles)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {});
    tokio::join!(controller, deletions, sweeps);
}

async fn reconcile(chg: Arc<ChangeRequest>, ctx: Arc<Context>) -> Result<Action, Unsynced> {
    // A mirror stands for a change raised on the server: `mirror` writes it.
    if super::mirror::is_mirror(chg.as_ref()) {
        return Ok(Action::await_change());
    }
    if !ctx.leadership.is_leader() {
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    let started = Instant::now();
    let now = Utc::now();
    let generation = chg.metadata.generation.unwrap_or(0);
    let previous = chg
        .status
        .as_ref()
        .map(|s| s.observed.clone())
        .unwrap_or_default();
    let mut changed_at = None;
    let (observed, action, result) = match sync(&chg, &ctx).await {
        Ok(record) => {
            changed_at = record.changed_at;
            annotate(chg.as_ref(), &ctx, CHANGE_ANNOTATION, &record.number).await;
            let next = record.next_window.as_ref().map(|w| w.opens_at);
            let observed = from_record::observed(&record, &previous.conditions, generation, now);
            // Wake at the next window's opening, to turn Ready; soon while
            // a rollout is under way or just failed (its outcome, or the
            // rollback, changes no bundle).
            let settling = matches!(record.phase.as_str(), "implementing" | "failed");
            let idle = Duration::from_secs(if settling { 3 } else { 300 });
            let wait = next
                .and_then(|at| (at - now).to_std().ok())
                .map_or(idle, |d| (d + Duration::from_secs(1)).min(idle));
            (observed, Action::requeue(wait), "synced")
        }
        // Asked again a while later: what was refused may be fixed on the
        // server (a mapping added, a binding written) without any change here.
        Err(Unsynced::Refused(why)) => (
            from_record::unsynced(&previous, &why, true, generation, now),
            Action::requeue(Duration::from_secs(30)),
            "refused",
        ),
        Err(Unsynced::Unavailable(why)) => (
            from_record::unsynced(&previous, &why, false, generation, now),
            Action::requeue(Duration::from_secs(5)),
            "unavailable",
        ),
    };
    if observed != previous {
        apply_status(chg.as_ref(), &ctx, &observed).await?;
        record_events(&chg, &ctx, &previous, &observed).await;
        // How long the record took to show, when it is what changed.
        if let Some(at) = changed_at
            && observed.phase != previous.phase
            && let Ok(lag) = (Utc::now() - at).to_std()
        {
            ctx.metrics.status_lag("ChangeRequest", lag);
        }
    }
    ctx.metrics
        .reconciled("ChangeRequest", result, started.elapsed());
    Ok(action)
}

fn error_policy(_: Arc<ChangeRequest>, e: &Unsynced, _: Arc<Context>) -> Action {
    tracing::warn!(error = %e, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// What changed, as events on the resource; a lost event is logged.
async fn record_events(chg: &ChangeRequest, ctx: &Context, before: &Observed, after: &Observed) {
    use kube::runtime::events::{Event, EventType};
    let reference = chg.object_ref(&());
    for h in from_record::happened(before, after) {
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
            tracing::warn!(error = %e, reason = h.reason, "cannot record an event on the ChangeRequest");
        }
    }
}

/// The resource's latest spec to the server; its record back.
async fn sync(chg: &ChangeRequest, ctx: &Context) -> Result<ChangeRecord, Unsynced> {
    let namespace = chg.namespace().unwrap_or_default();
    let name = chg.name_any();
    let tenant = tenant_of(ctx, &namespace)?;
    let (snapshot, _) = ctx.bundle.current().ok_or_else(|| {
        Unsynced::Unavailable("the operator has no bundle from the server yet".into())
    })?;
    let known = snapshot
        .bundle
        .tenants
        .iter()
        .find(|t| t.tenant == tenant)
        .ok_or_else(|| {
            Unsynced::Refused(format!(
                "tenant {tenant} has no configuration item bound to cluster {}; bind the workloads this change ships",
                snapshot.cluster
            ))
        })?;
    let created = chg
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| {
            chrono::DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
        })
        .unwrap_or_else(Utc::now);
    let requested = to_record::requested(
        &chg.spec,
        Place {
            cluster: &snapshot.cluster,
            namespace: &namespace,
            tenant: &tenant,
        },
        Known {
            items: &known.configuration_items,
            windows: &known.windows,
        },
        created,
    )
    .map_err(|e| Unsynced::Refused(e.to_string()))?;
    let requested_by = requested_by(chg)?;
    let annotations = chg.annotations();
    let body = ChangeRequestSync {
        tenant,
        uid: chg.uid().unwrap_or_default(),
        generation: chg.metadata.generation.unwrap_or(0),
        requested_by,
        edited_by: annotations.get(EDITED_BY_ANNOTATION).cloned(),
        change: annotations.get(CHANGE_ANNOTATION).cloned(),
        requested,
    };
    put_record(ctx, &format!("changerequests/{namespace}/{name}"), &body).await
}
