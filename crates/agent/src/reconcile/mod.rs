//! The reconcilers of the custom resources (DESIGN §7): ChangeRequests
//! here, MaintenanceWindows in [`window`]. The ChangeRequest reconciler is
//! level-triggered: the leader
//! sends each resource's latest spec to the server and writes the record
//! it answers into status (server-side apply under the operator's own
//! field manager; never spec, never `status.approvals`). It wakes on
//! every change of a resource, on every new bundle (a decision anywhere
//! reaches status that way), and at the next window boundary; a deleted
//! resource is reported so its change is cancelled or detached.

use crate::bundle::BundleState;
use crate::lease::Leadership;
use crate::webhook::metrics::Metrics;
use crate::webhook::stores::Stores;
use changegate_resources::change_request::Observed;
use changegate_resources::to_record::{self, Known, Place};
use changegate_resources::wire::{ChangeRecord, ChangeRequestSync};
use changegate_resources::{
    CHANGE_ANNOTATION, ChangeRequest, EDITED_BY_ANNOTATION, FIELD_MANAGER, REQUESTED_BY_ANNOTATION,
    from_record,
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

/// What every reconcile shares.
pub struct Context {
    pub client: kube::Client,
    pub http: reqwest::Client,
    /// The server's base URL.
    pub server: String,
    pub token: String,
    pub stores: Stores,
    pub bundle: Arc<BundleState>,
    pub leadership: Arc<Leadership>,
    pub metrics: Arc<Metrics>,
    /// Events on the resources (`kubectl describe chg`).
    pub recorder: kube::runtime::events::Recorder,
}

/// Why a resource's spec did not reach the server.
#[derive(Debug, thiserror::Error)]
pub enum Unsynced {
    /// Terminal until the spec (or the server's setup) changes.
    #[error("{0}")]
    Refused(String),
    /// The server could not be asked; retried.
    #[error("{0}")]
    Unavailable(String),
}

pub mod window;

/// Runs the reconcilers and the deletion watches until the process ends.
pub async fn run(ctx: Arc<Context>) {
    tokio::join!(change_requests(ctx.clone()), window::run(ctx));
}

async fn change_requests(ctx: Arc<Context>) {
    let api: Api<ChangeRequest> = Api::all(ctx.client.clone());
    // Every new bundle (a decision anywhere, a window moved) reconciles all.
    let bundles = futures::stream::unfold(ctx.bundle.subscribe(), |mut taken| async move {
        taken.changed().await.ok().map(|()| ((), taken))
    });
    let deletions = watch_deletions(api.clone(), ctx.clone());
    let sweeps = sweep(api.clone(), ctx.clone());
    let controller = Controller::new(api, watcher::Config::default())
        .reconcile_all_on(bundles)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {});
    tokio::join!(controller, deletions, sweeps);
}

async fn reconcile(chg: Arc<ChangeRequest>, ctx: Arc<Context>) -> Result<Action, Unsynced> {
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
    let (observed, action, result) = match sync(&chg, &ctx).await {
        Ok(record) => {
            annotate(&chg, &ctx, &record).await;
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
        write_status(&chg, &ctx, &observed).await?;
        record_events(&chg, &ctx, &previous, &observed).await;
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
    let tenant = ctx.stores.tenant_of(&namespace).ok_or_else(|| {
        Unsynced::Refused(format!(
            "namespace {namespace} is not labelled changegate.dev/tenant; label it with its tenant's slug"
        ))
    })?;
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
    let annotations = chg.annotations();
    let requested_by = annotations
        .get(REQUESTED_BY_ANNOTATION)
        .cloned()
        .ok_or_else(|| {
            Unsynced::Refused(format!(
                "the resource has no {REQUESTED_BY_ANNOTATION} annotation (it was created while the operator's webhook was not registered); delete it and apply it again"
            ))
        })?;
    let body = ChangeRequestSync {
        tenant,
        uid: chg.uid().unwrap_or_default(),
        generation: chg.metadata.generation.unwrap_or(0),
        requested_by,
        edited_by: annotations.get(EDITED_BY_ANNOTATION).cloned(),
        change: annotations.get(CHANGE_ANNOTATION).cloned(),
        requested,
    };
    let url = format!(
        "{}/api/v1/agent/changerequests/{namespace}/{name}",
        ctx.server.trim_end_matches('/')
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
            .json::<ChangeRecord>()
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

/// The server's `{"error": {"message", "field"}}`, as one line.
pub(crate) fn server_error(text: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let message = v["error"]["message"].as_str()?;
    Some(match v["error"]["field"].as_str() {
        Some(field) if !field.is_empty() => format!("{field}: {message}"),
        _ => message.to_string(),
    })
}

/// `changegate.dev/change: CHG-n` on the resource, so a copy of it (a
/// backup, a Git repository it is exported to) names its change.
async fn annotate(chg: &ChangeRequest, ctx: &Context, record: &ChangeRecord) {
    if chg.annotations().get(CHANGE_ANNOTATION) == Some(&record.number) {
        return;
    }
    let api: Api<ChangeRequest> =
        Api::namespaced(ctx.client.clone(), &chg.namespace().unwrap_or_default());
    let patch =
        serde_json::json!({"metadata": {"annotations": {CHANGE_ANNOTATION: record.number}}});
    if let Err(e) = api
        .patch(
            &chg.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        tracing::warn!(error = %e, change = %record.number, "cannot write the change annotation; retrying at the next reconcile");
    }
}

/// Server-side apply of what the operator owns in status.
async fn write_status(
    chg: &ChangeRequest,
    ctx: &Context,
    observed: &Observed,
) -> Result<(), Unsynced> {
    let api: Api<ChangeRequest> =
        Api::namespaced(ctx.client.clone(), &chg.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": ChangeRequest::api_version(&()),
        "kind": ChangeRequest::kind(&()),
        "status": observed,
    });
    api.patch_status(
        &chg.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
    .map_err(|e| Unsynced::Unavailable(format!("cannot write the status: {e}")))
}

/// Reports each deleted ChangeRequest to the server (the leader does).
async fn watch_deletions(api: Api<ChangeRequest>, ctx: Arc<Context>) {
    let events = watcher(api, watcher::Config::default());
    futures::pin_mut!(events);
    while let Some(event) = events.next().await {
        let chg = match event {
            Ok(watcher::Event::Delete(chg)) => chg,
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "ChangeRequest watch interrupted; it resumes");
                continue;
            }
        };
        if !ctx.leadership.is_leader() {
            continue;
        }
        tokio::spawn(report_deletion(chg, ctx.clone()));
    }
}

/// How often the leader looks for ChangeRequests deleted while no
/// operator was watching (the first look comes soon after it leads).
const SWEEP_EVERY: Duration = Duration::from_secs(300);

/// Deletions no watch saw (the operator down, a leader change): the
/// server's links of this cluster against the ChangeRequests there are;
/// one that is gone is reported as deleted, as the watch would have.
async fn sweep(api: Api<ChangeRequest>, ctx: Arc<Context>) {
    let mut led = false;
    loop {
        tokio::time::sleep(if led {
            SWEEP_EVERY
        } else {
            Duration::from_secs(2)
        })
        .await;
        if !ctx.leadership.is_leader() {
            led = false;
            continue;
        }
        if !led {
            // Leading since a moment: its watches have just listed.
            led = true;
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        let url = format!(
            "{}/api/v1/agent/changerequests",
            ctx.server.trim_end_matches('/')
        );
        let linked: Vec<changegate_resources::wire::LinkedResource> = match ctx
            .http
            .get(&url)
            .header(AUTHORIZATION, format!("Bearer {}", ctx.token))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
            other => {
                tracing::debug!(result = ?other.map(|r| r.status()), "cannot list the linked ChangeRequests; next sweep");
                continue;
            }
        };
        let present = match api.list(&Default::default()).await {
            Ok(list) => list
                .items
                .iter()
                .map(|c| (c.namespace().unwrap_or_default(), c.name_any()))
                .collect::<std::collections::BTreeSet<_>>(),
            Err(e) => {
                tracing::debug!(error = %e, "cannot list the ChangeRequests; next sweep");
                continue;
            }
        };
        for gone in linked
            .into_iter()
            .filter(|l| !present.contains(&(l.namespace.clone(), l.name.clone())))
        {
            tracing::info!(namespace = %gone.namespace, name = %gone.name, change = %gone.change,
                "a ChangeRequest deleted while no operator watched: reporting it");
            report_deleted(&ctx, &gone.namespace, &gone.name, &gone.uid).await;
        }
    }
}

/// A GitOps tool replacing a resource deletes and creates it again at
/// once: the new one adopts the change. So a deletion is reported only if
/// no resource of that name is back after a grace period.
const REPLACE_GRACE: Duration = Duration::from_secs(5);

async fn report_deletion(chg: ChangeRequest, ctx: Arc<Context>) {
    tokio::time::sleep(REPLACE_GRACE).await;
    let namespace = chg.namespace().unwrap_or_default();
    let api: Api<ChangeRequest> = Api::namespaced(ctx.client.clone(), &namespace);
    match api.get_opt(&chg.name_any()).await {
        Ok(Some(_)) => {
            tracing::info!(resource = %chg.name_any(), %namespace, "ChangeRequest replaced: its successor adopts the change");
            return;
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell whether the ChangeRequest was replaced; reporting its deletion")
        }
    }
    report_deleted(
        &ctx,
        &namespace,
        &chg.name_any(),
        &chg.uid().unwrap_or_default(),
    )
    .await;
}

/// Tells the server the ChangeRequest `namespace/name` (`uid`) is gone,
/// retrying a few times while it cannot be reached.
async fn report_deleted(ctx: &Context, namespace: &str, name: &str, uid: &str) {
    let url = format!(
        "{}/api/v1/agent/changerequests/{namespace}/{name}?uid={uid}",
        ctx.server.trim_end_matches('/'),
    );
    for attempt in 0..5u32 {
        let sent = ctx
            .http
            .delete(&url)
            .header(AUTHORIZATION, format!("Bearer {}", ctx.token))
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                tracing::info!(resource = %name, %namespace, "deleted ChangeRequest reported to the server");
                return;
            }
            Ok(r) if r.status().is_client_error() => {
                tracing::warn!(status = %r.status(), resource = %name, "the server refused the deletion report");
                return;
            }
            other => {
                tracing::warn!(attempt, result = ?other.map(|r| r.status()), "cannot report a deleted ChangeRequest; retrying");
                tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
            }
        }
    }
}
