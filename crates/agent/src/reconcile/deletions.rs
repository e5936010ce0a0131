//! Deleted ChangeRequests and Releases, reported to the server so their
//! change or release is cancelled (not started) or detached (started).
//! The watch reports what it sees (after a grace period: a GitOps tool
//! replacing a resource deletes and creates it again at once, and the new
//! one adopts the record); the leader's sweep finds deletions no watch saw
//! (the operator down, a leader change): the server's links of this
//! cluster against the resources there are.

use super::Context;
use changegate_resources::wire::LinkedResource;
use futures::StreamExt;
use kube::api::Api;
use kube::core::NamespaceResourceScope;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use reqwest::header::AUTHORIZATION;
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

/// What a resource kind needs to be watched and listed here.
pub trait Watched:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Watched for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static
{
}

/// Reports each deleted resource of the kind the server calls `plural`
/// (the leader does).
pub async fn watch<K: Watched>(api: Api<K>, ctx: Arc<Context>, plural: &'static str) {
    let events = watcher(api.clone(), watcher::Config::default());
    futures::pin_mut!(events);
    while let Some(event) = events.next().await {
        let gone = match event {
            // A mirror's change is not the resource's: deleting it cancels nothing.
            Ok(watcher::Event::Delete(gone)) if !super::mirror::is_mirror(&gone) => gone,
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(error = %e, plural, "watch interrupted; it resumes");
                continue;
            }
        };
        if !ctx.leadership.is_leader() {
            continue;
        }
        tokio::spawn(unless_replaced(gone, ctx.clone(), plural));
    }
}

/// How often the leader looks for resources deleted while no operator
/// was watching (the first look comes soon after it leads).
const SWEEP_EVERY: Duration = Duration::from_secs(300);

/// Deletions no watch saw: one the server links that is gone is
/// reported as deleted, as the watch would have.
pub async fn sweep<K: Watched>(api: Api<K>, ctx: Arc<Context>, plural: &'static str) {
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
        let url = format!("{}/api/v1/agent/{plural}", ctx.server.trim_end_matches('/'));
        let linked: Vec<LinkedResource> = match ctx
            .http
            .get(&url)
            .header(AUTHORIZATION, format!("Bearer {}", ctx.token))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
            other => {
                tracing::debug!(result = ?other.map(|r| r.status()), plural, "cannot list the linked resources; next sweep");
                continue;
            }
        };
        let present = match api.list(&Default::default()).await {
            Ok(list) => list
                .items
                .iter()
                .map(|c| (c.namespace().unwrap_or_default(), c.name_any()))
                .collect::<BTreeSet<_>>(),
            Err(e) => {
                tracing::debug!(error = %e, plural, "cannot list the resources; next sweep");
                continue;
            }
        };
        for gone in linked
            .into_iter()
            .filter(|l| !present.contains(&(l.namespace.clone(), l.name.clone())))
        {
            tracing::info!(namespace = %gone.namespace, name = %gone.name, number = %gone.number, plural,
                "a resource deleted while no operator watched: reporting it");
            report(&ctx, plural, &gone.namespace, &gone.name, &gone.uid).await;
        }
    }
}

/// A GitOps tool replacing a resource deletes and creates it again at
/// once: the new one adopts the record. So a deletion is reported only if
/// no resource of that name is back after a grace period.
const REPLACE_GRACE: Duration = Duration::from_secs(5);

async fn unless_replaced<K: Watched>(gone: K, ctx: Arc<Context>, plural: &'static str) {
    tokio::time::sleep(REPLACE_GRACE).await;
    let namespace = gone.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    match api.get_opt(&gone.name_any()).await {
        Ok(Some(_)) => {
            tracing::info!(resource = %gone.name_any(), %namespace, plural, "replaced: its successor adopts the record");
            return;
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell whether the resource was replaced; reporting its deletion")
        }
    }
    report(
        &ctx,
        plural,
        &namespace,
        &gone.name_any(),
        &gone.uid().unwrap_or_default(),
    )
    .await;
}

/// Tells the server the resource `namespace/name` (`uid`) is gone,
/// retrying a few times while it cannot be reached.
async fn report(ctx: &Context, plural: &str, namespace: &str, name: &str, uid: &str) {
    let url = format!(
        "{}/api/v1/agent/{plural}/{namespace}/{name}?uid={uid}",
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
                tracing::info!(resource = %name, %namespace, plural, "deletion reported to the server");
                return;
            }
            Ok(r) if r.status().is_client_error() => {
                tracing::warn!(status = %r.status(), resource = %name, plural, "the server refused the deletion report");
                return;
            }
            other => {
                tracing::warn!(attempt, result = ?other.map(|r| r.status()), plural, "cannot report a deletion; retrying");
                tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
            }
        }
    }
}
