//! The bundle API (DESIGN §7): what a cluster's agent needs to decide
//! admission alone. A cluster is registered by an installation admin and
//! gets an agent token; its bundle holds, for each tenant with a
//! configuration item bound to that cluster, those items, the tenant's
//! enforcement mode and window duties, its windows, and the changes in
//! flight that name those items, with their approved content and
//! fingerprints. A tenant with nothing bound to the cluster is not in it.
//!
//! Served with an `ETag`; `If-None-Match` with `?wait=N` long-polls: the
//! answer comes as soon as a write changes the bundle (or `304` after N
//! seconds, at most 60).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use changegate_core::catalogue::{ConfigurationItem, Enforcement as Binding};
use changegate_core::change::ChangeType;
use changegate_core::gate::GateChange;
use changegate_core::policy::Enforcement;
use changegate_core::window::WindowSpec;
use changegate_core::{Slug, TenantId};
use changegate_store::TokenScope;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;
use utoipa::ToSchema;

use super::{Body, Params};
use crate::AppState;
use crate::auth::{Agent, Caller, new_token};
use crate::dto::TokenView;
use crate::error::{ApiError, ApiResult};
use crate::snapshot::Encoded;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClusterBody {
    /// The cluster's name as configuration items bind it, e.g. `prod-eu`.
    pub name: String,
}

/// Register a cluster and mint its agent token (shown once).
#[utoipa::path(post, path = "/api/v1/clusters", tag = "agent", request_body = NewClusterBody,
    responses((status = 201, body = TokenView)))]
pub async fn register_cluster(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Body(body): Body<NewClusterBody>,
) -> ApiResult<(StatusCode, Json<TokenView>)> {
    changegate_core::authz::authorize_admin(&caller)?;
    let name = Slug::parse(&body.name).map_err(|e| ApiError::invalid("name", e.message))?;
    let (token, hash) = new_token();
    let created = state
        .store
        .create_token(
            caller.user,
            &format!("agent of {name}"),
            &hash,
            &TokenScope::Agent(name.to_string()),
            state.now(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenView {
            id: created.id,
            name: name.to_string(),
            token,
        }),
    ))
}

/// What the installation says of a registered cluster.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterSettings {
    /// The prefix the cluster's API server gives OIDC user names that are
    /// e-mail addresses (its `--oidc-username-prefix`, e.g. `oidc:`): a
    /// Kubernetes user `oidc:carol@client.example` with no explicit mapping
    /// then stands for that user, when she has a role in the namespace's
    /// tenant. `null`: explicit mappings only.
    #[serde(default)]
    pub email_prefix: Option<String>,
}

#[derive(Deserialize)]
pub struct ClusterPath {
    pub cluster: String,
}

/// Say how a cluster's API server names people: with `emailPrefix`, user
/// names that are that prefix and an e-mail address stand for that user
/// (explicit mappings still come first). Only an installation
/// administrator vouches for a cluster's authenticator.
#[utoipa::path(put, path = "/api/v1/clusters/{cluster}", tag = "agent", request_body = ClusterSettings,
    params(("cluster" = String, Path)),
    responses((status = 200, body = ClusterSettings), (status = 403, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn put_cluster(
    State(state): State<AppState>,
    Caller(caller): Caller,
    axum::extract::Path(p): axum::extract::Path<ClusterPath>,
    Body(body): Body<ClusterSettings>,
) -> ApiResult<Json<ClusterSettings>> {
    changegate_core::authz::authorize_admin(&caller)?;
    let name = Slug::parse(&p.cluster).map_err(|e| ApiError::invalid("cluster", e.message))?;
    if let Some(prefix) = &body.email_prefix
        && (prefix.is_empty()
            || prefix.starts_with("system:")
            || prefix.len() > 64
            || prefix.chars().any(char::is_whitespace))
    {
        return Err(ApiError::invalid(
            "emailPrefix",
            "the prefix the API server puts before OIDC user names, e.g. oidc: (not empty, no spaces, never system:)",
        ));
    }
    state
        .store
        .set_cluster_email_prefix(name.as_str(), body.email_prefix.as_deref(), state.now())
        .await?;
    Ok(Json(body))
}

#[derive(Serialize, ToSchema)]
pub struct Bundle {
    pub cluster: String,
    /// The prefix this cluster's API server gives OIDC user names that are
    /// e-mail addresses, if its registration says so.
    pub email_prefix: Option<String>,
    pub tenants: Vec<TenantBundle>,
}

#[derive(Serialize, ToSchema)]
pub struct TenantBundle {
    pub tenant: String,
    /// `Enforce`, `Warn` or `Off`.
    #[schema(value_type = String)]
    pub enforcement: Enforcement,
    /// Change types that deploy only inside a maintenance window.
    #[schema(value_type = Vec<String>)]
    pub window_required: Vec<ChangeType>,
    /// The tenant's configuration items bound to this cluster.
    #[schema(value_type = Object)]
    pub configuration_items: BTreeMap<String, ConfigurationItem>,
    /// The tenant's maintenance windows and blackouts by name.
    #[schema(value_type = Object)]
    pub windows: BTreeMap<String, WindowSpec>,
    /// Changes in flight naming those items.
    #[schema(value_type = Vec<Object>)]
    pub changes: Vec<GateChange>,
    /// The names of the tenant's standard-change templates (a
    /// ChangeRequest naming another is refused at apply time).
    pub templates: Vec<String>,
    /// Kubernetes user names of this cluster mapped to the tenant's
    /// people (a resource created by anyone else is refused at apply time).
    pub identities: Vec<String>,
}

#[derive(Deserialize)]
pub struct BundleQuery {
    /// Seconds to wait for a change when `If-None-Match` names the current bundle.
    #[serde(default)]
    pub wait: u64,
}

/// The cluster's bundle. With `If-None-Match` and `wait`, long-polls.
#[utoipa::path(get, path = "/api/v1/agent/bundle", tag = "agent",
    params(("wait" = Option<u64>, Query, description = "seconds to wait for a newer bundle (at most 60)")),
    responses((status = 200, body = Bundle), (status = 304, description = "unchanged")))]
pub async fn bundle(
    State(state): State<AppState>,
    agent: Agent,
    Params(q): Params<BundleQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    long_poll(&state, &headers, q.wait, || {
        state
            .snapshots
            .bundle(&state, &agent.cluster, || encode(&state, &agent.cluster))
    })
    .await
}

/// What the cluster mirrors (DESIGN §7): every change in flight on an item
/// bound to it that has no resource of its own (not raised from a
/// ChangeRequest), as the read-only ChangeRequest `chg-<n>` to write
/// there, and the tenants' windows.
/// With `If-None-Match` and `wait`, long-polls like the bundle.
#[utoipa::path(get, path = "/api/v1/agent/mirrors", tag = "agent",
    params(("wait" = Option<u64>, Query, description = "seconds to wait for a change when If-None-Match names the current answer (at most 60)")),
    responses((status = 200, body = MirrorsView), (status = 304, description = "unchanged")))]
pub async fn mirrors(
    State(state): State<AppState>,
    agent: Agent,
    Params(q): Params<BundleQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    long_poll(&state, &headers, q.wait, || {
        state.snapshots.mirrors(&state, &agent.cluster, || async {
            let bound = state.snapshots.bound_to(&state, &agent.cluster).await?;
            // Each tenant's head before its records are read: a write
            // meanwhile leaves this answer out of date at once.
            let mut heads = BTreeMap::new();
            for t in bound.iter() {
                heads.insert(t.id, state.snapshots.of(&state, t).await?.head);
            }
            let mirrors = crate::app::resource::mirrors(&state, &agent.cluster).await?;
            let body = serde_json::to_vec(&mirrors).map_err(|_| ApiError::internal())?;
            Ok(Encoded {
                etag: etag_of(&body),
                body,
                tenants: bound.iter().map(|t| t.slug.to_string()).collect(),
                heads,
            })
        })
    })
    .await
}

/// The mirrors of a cluster (see `changegate_resources::wire::Mirrors`).
#[derive(Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct MirrorsView(pub changegate_resources::wire::Mirrors);

/// Answers what `current` gives unless the caller's `If-None-Match` names
/// it; then waits up to `wait` seconds (at most 60) for it to change,
/// woken by any write through this server and every few seconds for what
/// the scheduler or another replica wrote.
async fn long_poll<F, Fut>(
    state: &AppState,
    headers: &HeaderMap,
    wait: u64,
    current: F,
) -> ApiResult<Response>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ApiResult<std::sync::Arc<Encoded>>>,
{
    let known = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let deadline = Instant::now() + Duration::from_secs(wait.min(60));
    let mut writes = state.writes.subscribe();
    loop {
        let encoded = current().await?;
        let etag = encoded.etag.as_str();
        let etag_header = HeaderValue::from_str(etag).map_err(|_| ApiError::internal())?;
        if known.as_deref() != Some(etag) {
            return Ok((
                [
                    (header::ETAG, etag_header),
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    ),
                ],
                encoded.body.clone(),
            )
                .into_response());
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_header)]).into_response());
        }
        let recheck = (now + Duration::from_secs(3)).min(deadline);
        tokio::select! {
            _ = writes.changed() => {}
            _ = tokio::time::sleep_until(recheck) => {}
        }
    }
}

fn etag_of(body: &[u8]) -> String {
    format!("\"{}\"", &hex::encode(Sha256::digest(body))[..32])
}

async fn encode(state: &AppState, cluster: &str) -> ApiResult<Encoded> {
    let (bundle, heads) = build(state, cluster).await?;
    let body = serde_json::to_vec(&bundle).map_err(|_| ApiError::internal())?;
    let etag = etag_of(&body);
    let tenants = bundle.tenants.into_iter().map(|t| t.tenant).collect();
    Ok(Encoded {
        body,
        etag,
        tenants,
        heads,
    })
}

/// The bundle, and the audit head of each tenant in it.
async fn build(state: &AppState, cluster: &str) -> ApiResult<(Bundle, BTreeMap<TenantId, i64>)> {
    let mut tenants = Vec::new();
    let mut heads = BTreeMap::new();
    for tenant in state.snapshots.bound_to(state, cluster).await?.iter() {
        let snapshot = state.snapshots.of(state, tenant).await?;
        let items: BTreeMap<String, ConfigurationItem> = snapshot
            .items
            .iter()
            .filter(|(_, item)| {
                matches!(&item.enforcement, Some(Binding::Kubernetes(b)) if b.cluster == cluster)
            })
            .cloned()
            .collect();
        if items.is_empty() {
            continue;
        }
        heads.insert(tenant.id, snapshot.head);
        let templates = state
            .store
            .objects(tenant.id, changegate_store::ObjectKind::Template)
            .await?
            .into_iter()
            .map(|o| o.name)
            .collect();
        let mapped_here = format!("{cluster}/");
        let identities = state
            .store
            .objects(tenant.id, changegate_store::ObjectKind::ClusterIdentity)
            .await?
            .into_iter()
            .filter_map(|o| o.name.strip_prefix(&mapped_here).map(str::to_string))
            .collect();
        tenants.push(TenantBundle {
            templates,
            identities,
            tenant: tenant.slug.to_string(),
            enforcement: snapshot.policy.enforcement,
            window_required: snapshot.policy.window_required.clone(),
            windows: snapshot.windows.clone(),
            changes: snapshot
                .changes
                .iter()
                .filter(|c| c.configuration_items.iter().any(|i| items.contains_key(i)))
                .cloned()
                .collect(),
            configuration_items: items,
        });
    }
    Ok((
        Bundle {
            cluster: cluster.to_string(),
            email_prefix: state.store.cluster_email_prefix(cluster).await?,
            tenants,
        },
        heads,
    ))
}
