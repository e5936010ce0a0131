//! The reconcilers of the custom resources (DESIGN §7): ChangeRequests in
//! [`change_request`], Releases in [`release`], MaintenanceWindows in
//! [`window`]; the server's changes mirrored as ChangeRequests in [`mirror`]. Each is level-triggered: the leader sends a resource's
//! latest spec to the server and writes the record it answers into status
//! (server-side apply under the operator's own field manager; never spec,
//! never the entries people write with kubectl). This module holds what
//! they share: the context, how a spec is sent, how status is written.

use crate::bundle::BundleState;
use crate::lease::Leadership;
use crate::webhook::metrics::Metrics;
use crate::webhook::stores::Stores;
use changegate_resources::{FIELD_MANAGER, REQUESTED_BY_ANNOTATION};
use kube::api::{Api, Patch, PatchParams};
use kube::core::NamespaceResourceScope;
use kube::{Resource, ResourceExt};
use reqwest::header::AUTHORIZATION;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

pub mod change_request;
mod deletions;
pub mod mirror;
pub mod release;
pub mod window;

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

/// Runs the reconcilers and the deletion watches until the process ends.
pub async fn run(ctx: Arc<Context>) {
    tokio::join!(
        change_request::run(ctx.clone()),
        release::run(ctx.clone()),
        window::run(ctx.clone()),
        mirror::run(ctx)
    );
}

/// A stream that yields once per new bundle (a decision anywhere, a
/// window moved): each reconciler reconciles all its resources on it.
pub(crate) fn on_every_bundle(ctx: &Context) -> impl futures::Stream<Item = ()> + Send + 'static {
    futures::stream::unfold(ctx.bundle.subscribe(), |mut taken| async move {
        taken.changed().await.ok().map(|()| ((), taken))
    })
}

/// The tenant of the resource's namespace (its `changegate.dev/tenant`
/// label), or why there is none.
pub(crate) fn tenant_of(ctx: &Context, namespace: &str) -> Result<String, Unsynced> {
    ctx.stores.tenant_of(namespace).ok_or_else(|| {
        Unsynced::Refused(format!(
            "namespace {namespace} is not labelled changegate.dev/tenant; label it with its tenant's slug"
        ))
    })
}

/// Who created the resource, as the operator's webhook stamped it.
pub(crate) fn requested_by(resource: &impl ResourceExt) -> Result<String, Unsynced> {
    resource
        .annotations()
        .get(REQUESTED_BY_ANNOTATION)
        .cloned()
        .ok_or_else(|| {
            Unsynced::Refused(format!(
                "the resource has no {REQUESTED_BY_ANNOTATION} annotation (it was created while the operator's webhook was not registered); delete it and apply it again"
            ))
        })
}

/// `PUT` of `body` to the server's agent route `path` (e.g.
/// `changerequests/shop/web`); the record it answers. A 4xx other than 429
/// is a refusal (terminal until something changes), anything else is
/// retried.
pub(crate) async fn put_record<T: DeserializeOwned>(
    ctx: &Context,
    path: &str,
    body: &impl Serialize,
) -> Result<T, Unsynced> {
    let url = format!("{}/api/v1/agent/{path}", ctx.server.trim_end_matches('/'));
    let response = ctx
        .http
        .put(&url)
        .header(AUTHORIZATION, format!("Bearer {}", ctx.token))
        .json(body)
        .send()
        .await
        .map_err(|e| Unsynced::Unavailable(format!("cannot reach the changegate server: {e}")))?;
    let status = response.status();
    if status.is_success() {
        return response
            .json::<T>()
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

/// Server-side apply of what the operator owns in `resource`'s status.
pub(crate) async fn apply_status<K>(
    resource: &K,
    ctx: &Context,
    status: &impl Serialize,
) -> Result<(), Unsynced>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(
        ctx.client.clone(),
        &resource.namespace().unwrap_or_default(),
    );
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &resource.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
    .map_err(|e| Unsynced::Unavailable(format!("cannot write the status: {e}")))
}

/// `annotation: value` on the resource (e.g. `changegate.dev/change:
/// CHG-n`), so a copy of it (a backup, a Git repository it is exported
/// to) names what it stands for; a failure is retried at the next
/// reconcile.
pub(crate) async fn annotate<K>(resource: &K, ctx: &Context, annotation: &str, value: &str)
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    if resource.annotations().get(annotation).map(String::as_str) == Some(value) {
        return;
    }
    let api: Api<K> = Api::namespaced(
        ctx.client.clone(),
        &resource.namespace().unwrap_or_default(),
    );
    let patch = serde_json::json!({"metadata": {"annotations": {annotation: value}}});
    if let Err(e) = api
        .patch(
            &resource.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        tracing::warn!(error = %e, %annotation, %value, "cannot write the annotation; retrying at the next reconcile");
    }
}
