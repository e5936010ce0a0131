//! A cluster's custom resources and the records they stand for (DESIGN
//! §7): the server is the one record, a resource its Kubernetes view and
//! input. ChangeRequests and their changes in [`change_request`],
//! Releases and their releases in [`release`], MaintenanceWindows and the
//! tenant's windows in [`window`]; changes raised elsewhere mirrored into
//! the cluster in [`mirror`]. Here: who a cluster's user names stand
//! for, and which tenants a cluster vouches for.

use changegate_core::authz::Principal;
use changegate_store::{ObjectKind, ResourceKey, StoreError, Tenant};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::principal_of;
use crate::error::{ApiError, ApiResult};

mod approval;
mod change_request;
mod mirror;
mod release;
mod window;

pub use approval::{approve_by_kubectl, authorize_by_kubectl};

pub use change_request::{
    CHANGE_REQUEST, delete_change_request, linked_change_requests, record, sync_change_request,
};
pub use mirror::mirrors;
pub use release::{RELEASE, delete_release, linked_releases, sync_release};
pub use window::{MAINTENANCE_WINDOW, delete_window, sync_window};

/// What the operator followed under change `number` of `tenant` (its
/// `deployment.recorded` events), as a resource's `rollout[]` and `rollback`.
pub(crate) async fn followed(
    state: &AppState,
    tenant: &Tenant,
    number: changegate_core::ChangeNumber,
) -> ApiResult<(
    Vec<changegate_resources::change_request::Rollout>,
    Option<changegate_resources::change_request::Rollback>,
)> {
    use changegate_resources::outcome;
    let events = state
        .store
        .audit_events_about(tenant.id, &number.to_string())
        .await?;
    let details: Vec<(chrono::DateTime<chrono::Utc>, serde_json::Value)> = events
        .iter()
        .filter(|e| e.body.action == "deployment.recorded")
        .filter_map(|e| Some((e.body.at, serde_json::from_str(&e.body.detail).ok()?)))
        .collect();
    Ok(outcome::fold(
        details
            .iter()
            .map(|(at, detail)| outcome::Recorded { at: *at, detail }),
    ))
}

/// The resources of `kind` in `cluster` linked to records, in the tenants
/// bound to it (`number` spells a link's number, e.g. `CHG-n`).
pub(crate) async fn linked(
    state: &AppState,
    cluster: &str,
    kind: &str,
    number: impl Fn(i64) -> String,
) -> ApiResult<Vec<changegate_resources::wire::LinkedResource>> {
    let bound: Vec<_> = state
        .snapshots
        .bound_to(state, cluster)
        .await?
        .into_iter()
        .map(|t| t.id)
        .collect();
    Ok(state
        .store
        .resource_links(cluster, kind)
        .await?
        .into_iter()
        .filter(|l| bound.contains(&l.tenant))
        .map(|l| changegate_resources::wire::LinkedResource {
            namespace: l.key.namespace,
            name: l.key.name,
            uid: l.uid,
            number: number(l.number),
        })
        .collect())
}

/// Where the resource `namespace/name` of `kind` in `cluster` lives.
pub(crate) fn key(cluster: &str, namespace: &str, kind: &str, name: &str) -> ResourceKey {
    ResourceKey {
        cluster: cluster.to_string(),
        namespace: namespace.to_string(),
        kind: kind.to_string(),
        name: name.to_string(),
    }
}

/// What a `cluster-identity` object of a tenant holds: the user a cluster's
/// Kubernetes user name stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub email: String,
}

/// The name a mapping is stored under.
pub fn identity_name(cluster: &str, user: &str) -> String {
    format!("{cluster}/{user}")
}

/// The tenant `slug`, when it has something bound to `cluster` (a cluster
/// vouches only for tenants bound to it); else not found.
pub async fn bound_tenant(state: &AppState, cluster: &str, slug: &str) -> ApiResult<Tenant> {
    state
        .snapshots
        .bound_to(state, cluster)
        .await?
        .into_iter()
        .find(|t| t.slug.as_str() == slug)
        .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "not-found",
                format!(
                    "tenant {slug:?} has no configuration item bound to cluster {cluster}; bind one, or label the namespace for a tenant that has"
                ),
            )
            .with_field("tenant")
        })
}

/// The user of `tenant` that Kubernetes user `user` of `cluster` is mapped
/// to, as a principal; `field` names where the name came from.
pub async fn mapped(
    state: &AppState,
    tenant: &Tenant,
    cluster: &str,
    user: &str,
    field: &str,
) -> ApiResult<Principal> {
    if user.trim().is_empty() {
        return Err(ApiError::invalid(
            field,
            "the resource does not say who wrote it (its changegate.dev/requested-by annotation is stamped by the operator's webhook)",
        ));
    }
    if user.starts_with("system:") && !user.starts_with("system:serviceaccount:") {
        return Err(ApiError::forbidden(format!(
            "{user} is a Kubernetes system identity; it never requests changes"
        )));
    }
    let name = identity_name(cluster, user);
    let unmapped = || {
        ApiError::invalid(
            field,
            format!(
                "Kubernetes user {user} of cluster {cluster} is not mapped to a user of tenant {}: a tenant administrator maps it with PUT /api/v1/tenants/{}/clusters/{cluster}/identities/{user}",
                tenant.slug, tenant.slug
            ),
        )
    };
    let object = state
        .store
        .objects(tenant.id, ObjectKind::ClusterIdentity)
        .await?
        .into_iter()
        .find(|o| o.name == name);
    let email = match object {
        Some(object) => {
            let identity: Identity =
                serde_json::from_str(&object.spec).map_err(|_| ApiError::internal())?;
            crate::dto::email_field("email", &identity.email)?
        }
        // Where the cluster's registration says its API server names OIDC
        // users by e-mail under a prefix, the name is the address.
        None => {
            let address = match state.store.cluster_email_prefix(cluster).await? {
                Some(prefix) => user.strip_prefix(prefix.as_str()),
                None => None,
            };
            match address.and_then(|a| changegate_core::Email::parse(a).ok()) {
                Some(email) => email,
                None => return Err(unmapped()),
            }
        }
    };
    let user = match state.store.user_by_email(&email).await {
        Ok(u) => u,
        Err(StoreError::NotFound { .. }) => return Err(unmapped()),
        Err(e) => return Err(e.into()),
    };
    let principal = principal_of(state.store.as_ref(), user).await?;
    // A cluster vouches only for people of its own tenants.
    if !principal.sees(tenant.id) {
        return Err(unmapped());
    }
    Ok(principal)
}
