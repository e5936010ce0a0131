//! Mirrors (DESIGN §7): the changes raised on the server (in the portal,
//! by e-mail, through the API) for items bound to this cluster, as
//! read-only ChangeRequests `chg-<n>` labelled `changegate.dev/origin:
//! server`, so `kubectl get chg` shows every change of a namespace and
//! kubectl approval works wherever a change was raised; and the tenant's
//! windows and blackouts as MaintenanceWindows `mw-<name>` in each of its
//! namespaces, so `kubectl get chg,mw` shows the whole truth. Their content
//! comes from a feed of its own (`GET /api/v1/agent/mirrors`, long-polled),
//! not the admission bundle. The leader writes them (spec and status, by
//! server-side apply) into namespaces labelled for the change's tenant
//! only, removes those the feed no longer names, and writes a deleted one
//! again at once: deleting a mirror cancels nothing.

use super::{Context, apply_status};
use changegate_resources::wire::{MirroredChange, MirroredWindow, Mirrors};
use changegate_resources::{
    CHANGE_ANNOTATION, ChangeRequest, FIELD_MANAGER, MaintenanceWindow, ORIGIN_LABEL,
    ORIGIN_SERVER, from_record,
};
use chrono::Utc;
use futures::StreamExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, ETAG, IF_NONE_MATCH};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Whether `resource` is a mirror: the operator writes it from the
/// server's record; nobody edits it, no reconciler raises it.
pub fn is_mirror(resource: &impl ResourceExt) -> bool {
    resource.labels().get(ORIGIN_LABEL).map(String::as_str) == Some(ORIGIN_SERVER)
}

/// How long one long-poll of the feed waits on the server.
const WAIT_SECONDS: u64 = 25;

pub async fn run(ctx: Arc<Context>) {
    let deleted = Arc::new(Notify::new());
    tokio::join!(
        follow_feed(ctx.clone(), deleted.clone()),
        watch_deletions(ctx, deleted)
    );
}

async fn follow_feed(ctx: Arc<Context>, deleted: Arc<Notify>) {
    let mut etag: Option<String> = None;
    let mut last: Option<Mirrors> = None;
    // Whether what `last` says is written: a fresh leader, or a write that
    // failed, writes it again soon.
    let mut written = false;
    let mut memo = Memo::default();
    loop {
        if ctx.leadership.is_leader()
            && !written
            && let Some(mirrors) = &last
        {
            written = write_all(&ctx, mirrors, &mut memo).await;
        }
        if !ctx.leadership.is_leader() {
            written = false;
            // Another leader may write meanwhile: write all again when leading.
            memo.clear();
        }
        let poll = fetch(&ctx, etag.as_deref());
        let retry = tokio::time::sleep(Duration::from_secs(if written { 3600 } else { 5 }));
        let fetched = tokio::select! {
            fetched = poll => fetched,
            // A mirror was deleted: it comes back from what is known.
            () = deleted.notified() => {
                written = false;
                continue;
            }
            () = retry => continue,
        };
        match fetched {
            Ok(Some((mirrors, tag))) => {
                etag = Some(tag);
                last = Some(mirrors);
                written = false;
            }
            // Unchanged: looked over again all the same (a namespace
            // labelled since, a mirror someone removed unseen), which
            // writes only what is missing.
            Ok(None) => written = false,
            Err(why) => {
                tracing::warn!(%why, "cannot read the mirrors from the server; trying again");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// The feed, or `None` when it did not change within the wait.
async fn fetch(ctx: &Context, etag: Option<&str>) -> Result<Option<(Mirrors, String)>, String> {
    let url = format!(
        "{}/api/v1/agent/mirrors?wait={WAIT_SECONDS}",
        ctx.server.trim_end_matches('/')
    );
    let mut request = ctx
        .http
        .get(&url)
        .timeout(Duration::from_secs(WAIT_SECONDS + 15))
        .header(AUTHORIZATION, format!("Bearer {}", ctx.token));
    if let Some(tag) = etag {
        request = request.header(IF_NONE_MATCH, tag);
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    match response.status() {
        StatusCode::NOT_MODIFIED => Ok(None),
        s if s.is_success() => {
            let tag = response
                .headers()
                .get(ETAG)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let mirrors = response
                .json::<Mirrors>()
                .await
                .map_err(|e| e.to_string())?;
            Ok(Some((mirrors, tag)))
        }
        s => Err(format!("the server answered {s}")),
    }
}

/// Every mirror the feed names written (into namespaces labelled for its
/// tenant only), every other mirror removed; false when something could
/// not be written (tried again soon).
async fn write_all(ctx: &Context, mirrors: &Mirrors, memo: &mut Memo) -> bool {
    let changes = write_changes(ctx, mirrors, memo).await;
    let windows = write_windows(ctx, mirrors, memo).await;
    changes && windows
}

/// What this leader last wrote of each mirror (kind, namespace, name):
/// a digest of its spec and record. A mirror that is there and unchanged
/// is not written again: a thousand mirrors cost one list per feed, not
/// two thousand writes.
#[derive(Default)]
struct Memo(HashMap<(&'static str, String, String), u64>);

impl Memo {
    fn clear(&mut self) {
        self.0.clear();
    }

    /// Whether `what` (digested) is what was written at `key` and still is there.
    fn unchanged(&self, key: &(&'static str, String, String), what: u64, present: bool) -> bool {
        present && self.0.get(key) == Some(&what)
    }
}

fn digest(what: &impl serde::Serialize) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(what).unwrap_or_default().hash(&mut h);
    h.finish()
}

/// The mirrors of `K` there are, by (namespace, name); `None` when they
/// cannot be listed.
async fn present<K>(ctx: &Context) -> Option<Vec<K>>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let all: Api<K> = Api::all(ctx.client.clone());
    match all
        .list(&ListParams::default().labels(&format!("{ORIGIN_LABEL}={ORIGIN_SERVER}")))
        .await
    {
        Ok(list) => Some(list.items),
        Err(e) => {
            tracing::warn!(error = %e, kind = K::kind(&()).as_ref(), "cannot list the mirrors; trying again");
            None
        }
    }
}

async fn write_changes(ctx: &Context, mirrors: &Mirrors, memo: &mut Memo) -> bool {
    let Some(present) = present::<ChangeRequest>(ctx).await else {
        return false;
    };
    let there: BTreeSet<(String, String)> = present
        .iter()
        .map(|c| (c.namespace().unwrap_or_default(), c.name_any()))
        .collect();
    let mut all_written = true;
    let mut wanted = BTreeSet::new();
    for m in &mirrors.changes {
        if ctx.stores.tenant_of(&m.namespace).as_deref() != Some(m.tenant.as_str()) {
            continue;
        }
        let place = (m.namespace.clone(), m.name.clone());
        let key = ("ChangeRequest", m.namespace.clone(), m.name.clone());
        let what = digest(m);
        if memo.unchanged(&key, what, there.contains(&place)) {
            wanted.insert(place);
            continue;
        }
        wanted.insert(place);
        match write(ctx, m).await {
            Ok(()) => {
                memo.0.insert(key, what);
            }
            Err(e) => {
                all_written = false;
                memo.0.remove(&key);
                tracing::warn!(error = %e, namespace = %m.namespace, name = %m.name, "cannot write a mirror; trying again");
            }
        }
    }
    for stale in present
        .iter()
        .filter(|c| !wanted.contains(&(c.namespace().unwrap_or_default(), c.name_any())))
    {
        let api: Api<ChangeRequest> =
            Api::namespaced(ctx.client.clone(), &stale.namespace().unwrap_or_default());
        if let Err(e) = api
            .delete(&stale.name_any(), &DeleteParams::default())
            .await
        {
            all_written = false;
            tracing::warn!(error = %e, name = %stale.name_any(), "cannot remove a mirror; trying again");
        }
    }
    all_written
}

/// One mirror: spec and labels, then status from the record.
async fn write(ctx: &Context, m: &MirroredChange) -> Result<(), String> {
    let api: Api<ChangeRequest> = Api::namespaced(ctx.client.clone(), &m.namespace);
    let object = serde_json::json!({
        "apiVersion": ChangeRequest::api_version(&()),
        "kind": ChangeRequest::kind(&()),
        "metadata": {
            "name": m.name,
            "namespace": m.namespace,
            "labels": { ORIGIN_LABEL: ORIGIN_SERVER },
            "annotations": { CHANGE_ANNOTATION: m.record.number },
        },
        "spec": m.spec,
    });
    let written = api
        .patch(
            &m.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(|e| e.to_string())?;
    let previous = written
        .status
        .as_ref()
        .map(|s| s.observed.clone())
        .unwrap_or_default();
    let generation = written.metadata.generation.unwrap_or(0);
    let mut record = m.record.clone();
    record.generation = generation;
    let observed = from_record::observed(&record, &previous.conditions, generation, Utc::now());
    if observed != previous {
        apply_status(&written, ctx, &observed)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Every window of each tenant written into each namespace labelled for
/// it (but where its own MaintenanceWindow stands), every other window
/// mirror removed.
async fn write_windows(ctx: &Context, mirrors: &Mirrors, memo: &mut Memo) -> bool {
    let Some(present) = present::<MaintenanceWindow>(ctx).await else {
        return false;
    };
    let there: BTreeSet<(String, String)> = present
        .iter()
        .map(|w| (w.namespace().unwrap_or_default(), w.name_any()))
        .collect();
    let mut all_written = true;
    let mut wanted = BTreeSet::new();
    for w in &mirrors.windows {
        let what = digest(w);
        for namespace in ctx.stores.namespaces_of(&w.tenant) {
            if w.except.contains(&namespace) {
                continue;
            }
            let place = (namespace.clone(), w.name.clone());
            let key = ("MaintenanceWindow", namespace.clone(), w.name.clone());
            let unchanged = memo.unchanged(&key, what, there.contains(&place));
            wanted.insert(place);
            if unchanged {
                continue;
            }
            match write_window(ctx, &namespace, w).await {
                Ok(()) => {
                    memo.0.insert(key, what);
                }
                Err(e) => {
                    all_written = false;
                    memo.0.remove(&key);
                    tracing::warn!(error = %e, %namespace, name = %w.name, "cannot write a window mirror; trying again");
                }
            }
        }
    }
    for stale in present
        .iter()
        .filter(|w| !wanted.contains(&(w.namespace().unwrap_or_default(), w.name_any())))
    {
        let api: Api<MaintenanceWindow> =
            Api::namespaced(ctx.client.clone(), &stale.namespace().unwrap_or_default());
        if let Err(e) = api
            .delete(&stale.name_any(), &DeleteParams::default())
            .await
        {
            all_written = false;
            tracing::warn!(error = %e, name = %stale.name_any(), "cannot remove a window mirror; trying again");
        }
    }
    all_written
}

async fn write_window(ctx: &Context, namespace: &str, w: &MirroredWindow) -> Result<(), String> {
    let api: Api<MaintenanceWindow> = Api::namespaced(ctx.client.clone(), namespace);
    let object = serde_json::json!({
        "apiVersion": MaintenanceWindow::api_version(&()),
        "kind": MaintenanceWindow::kind(&()),
        "metadata": {
            "name": w.name,
            "namespace": namespace,
            "labels": { ORIGIN_LABEL: ORIGIN_SERVER },
        },
        "spec": w.spec,
    });
    let written = api
        .patch(
            &w.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(|e| e.to_string())?;
    let previous = written.status.clone().unwrap_or_default();
    let generation = written.metadata.generation.unwrap_or(0);
    let status =
        from_record::window_status(&w.record, &previous.conditions, generation, Utc::now());
    if status != previous {
        apply_status(&written, ctx, &status)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A deleted mirror wakes the feed's loop, which writes it again.
async fn watch_deletions(ctx: Arc<Context>, deleted: Arc<Notify>) {
    let mirrors = || watcher::Config::default().labels(&format!("{ORIGIN_LABEL}={ORIGIN_SERVER}"));
    let changes = watcher(Api::<ChangeRequest>::all(ctx.client.clone()), mirrors())
        .map(|e| e.map(|e| matches!(e, watcher::Event::Delete(_))));
    let windows = watcher(Api::<MaintenanceWindow>::all(ctx.client.clone()), mirrors())
        .map(|e| e.map(|e| matches!(e, watcher::Event::Delete(_))));
    let events = futures::stream::select(changes, windows);
    futures::pin_mut!(events);
    while let Some(event) = events.next().await {
        match event {
            Ok(true) => deleted.notify_one(),
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, "mirror watch interrupted; it resumes"),
        }
    }
}
