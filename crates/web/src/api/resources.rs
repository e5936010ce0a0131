//! The Kubernetes face of the record (DESIGN §7). A cluster's operator
//! sends each ChangeRequest's, Release's and MaintenanceWindow's latest
//! spec and writes the answer into its status (`PUT`), and says when one
//! was deleted (`DELETE`); a tenant's
//! administrators map the Kubernetes user names a cluster authenticates
//! to the tenant's users, so a resource's creator and editors are known.
//! A cluster vouches only for tenants bound to it.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use changegate_core::Slug;
use changegate_core::authz::Action;
use changegate_resources::wire::{
    ApprovalByKubectl, ApprovalRecorded, AuthorizationByKubectl, AuthorizationRecorded,
    ChangeRecord, ChangeRequestSync, ReleaseDeleted, ReleaseRecord, ReleaseSync, WindowDeleted,
    WindowRecord, WindowSync,
};
use changegate_store::ObjectKind;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Body;
use crate::AppState;
use crate::app::resource::{self, Identity, identity_name};
use crate::auth::Agent;
use crate::dto::{AppliedView, email_field};
use crate::error::{ApiError, ApiResult};
use crate::tenant::InTenant;
use crate::workflow::People;

#[derive(Deserialize)]
pub struct ResourcePath {
    pub namespace: String,
    pub name: String,
}

/// The latest spec of a ChangeRequest, mapped by the operator (see
/// `changegate_resources::wire::ChangeRequestSync`).
#[derive(Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct ChangeRequestSyncBody(pub ChangeRequestSync);

/// The change a ChangeRequest stands for, as its status shows it (see
/// `changegate_resources::wire::ChangeRecord`).
#[derive(Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct ChangeRecordView(pub ChangeRecord);

/// Bring the change of a ChangeRequest in step with its latest spec: the
/// first time, the change is raised in the namespace's tenant as the
/// resource's creator and submitted (unless `submit` is false); after
/// that a newer generation is an edit by its editor (a material edit is a
/// new revision). Idempotent on the resource's place: a retry, a second
/// replica or a resource re-created under the same name never makes a
/// second change.
#[utoipa::path(put, path = "/api/v1/agent/changerequests/{namespace}/{name}", tag = "agent",
    params(("namespace" = String, Path), ("name" = String, Path)),
    request_body = ChangeRequestSyncBody,
    responses((status = 200, body = ChangeRecordView), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn sync_change_request(
    State(state): State<AppState>,
    agent: Agent,
    Path(p): Path<ResourcePath>,
    Body(ChangeRequestSyncBody(body)): Body<ChangeRequestSyncBody>,
) -> ApiResult<axum::response::Response> {
    check_place(&p)?;
    let record =
        resource::sync_change_request(&state, &agent.cluster, &p.namespace, &p.name, body).await?;
    Ok(unnoted(Json(ChangeRecordView(record))))
}

/// An answer whose writes, if any, the app layer noted for their tenant
/// only: an unchanged resource outdates no tenant's snapshot.
fn unnoted(answer: impl axum::response::IntoResponse) -> axum::response::Response {
    let mut response = answer.into_response();
    response.extensions_mut().insert(crate::NothingWritten);
    response
}

/// The latest spec of a MaintenanceWindow (see
/// `changegate_resources::wire::WindowSync`).
#[derive(Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct WindowSyncBody(pub WindowSync);

/// A deleted MaintenanceWindow's tenant and last spec.
#[derive(Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct WindowDeletedBody(pub WindowDeleted);

/// The window a MaintenanceWindow stands for, as its status shows it.
#[derive(Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct WindowRecordView(pub WindowRecord);

/// Write the tenant's window of a MaintenanceWindow's name from its latest
/// spec, as the resource's last author (a maintenance window needs a
/// change manager, a blackout also a tenant admin); answers whether it is
/// open and when it next opens.
#[utoipa::path(put, path = "/api/v1/agent/maintenancewindows/{namespace}/{name}", tag = "agent",
    params(("namespace" = String, Path), ("name" = String, Path)),
    request_body = WindowSyncBody,
    responses((status = 200, body = WindowRecordView), (status = 403, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn sync_window(
    State(state): State<AppState>,
    agent: Agent,
    Path(p): Path<ResourcePath>,
    Body(WindowSyncBody(body)): Body<WindowSyncBody>,
) -> ApiResult<axum::response::Response> {
    check_place(&p)?;
    let record = resource::sync_window(&state, &agent.cluster, &p.namespace, &p.name, body).await?;
    Ok(unnoted(Json(WindowRecordView(record))))
}

/// A MaintenanceWindow was deleted: its window goes if it still is what
/// the resource wrote (204 either way).
#[utoipa::path(delete, path = "/api/v1/agent/maintenancewindows/{namespace}/{name}", tag = "agent",
    params(("namespace" = String, Path), ("name" = String, Path)),
    request_body = WindowDeletedBody, responses((status = 204)))]
pub async fn delete_window(
    State(state): State<AppState>,
    agent: Agent,
    Path(p): Path<ResourcePath>,
    Body(WindowDeletedBody(body)): Body<WindowDeletedBody>,
) -> ApiResult<axum::response::Response> {
    check_place(&p)?;
    resource::delete_window(&state, &agent.cluster, &p.namespace, &p.name, body).await?;
    Ok(unnoted(StatusCode::NO_CONTENT))
}

/// The cluster's ChangeRequests the server links to changes (see
/// `changegate_resources::wire::LinkedResource`).
#[derive(Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct LinkedView(pub Vec<changegate_resources::wire::LinkedResource>);

/// The ChangeRequests of this cluster linked to changes (of the tenants
/// bound to it): the operator reports those it no longer finds, deleted
/// while it was not watching.
#[utoipa::path(get, path = "/api/v1/agent/changerequests", tag = "agent",
    responses((status = 200, body = LinkedView)))]
pub async fn linked_change_requests(
    State(state): State<AppState>,
    agent: Agent,
) -> ApiResult<Json<LinkedView>> {
    Ok(Json(LinkedView(
        resource::linked_change_requests(&state, &agent.cluster).await?,
    )))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeletedQuery {
    /// The deleted resource's `metadata.uid`: a resource re-created under
    /// the same name since is left alone.
    #[serde(default)]
    pub uid: String,
}

/// A ChangeRequest was deleted: its change is cancelled if it has not
/// started, otherwise the resource is detached (recorded on the change).
/// 204 when no change stands for it.
#[utoipa::path(delete, path = "/api/v1/agent/changerequests/{namespace}/{name}", tag = "agent",
    params(("namespace" = String, Path), ("name" = String, Path), DeletedQuery),
    responses((status = 200, body = ChangeRecordView), (status = 204)))]
pub async fn delete_change_request(
    State(state): State<AppState>,
    agent: Agent,
    Path(p): Path<ResourcePath>,
    Query(q): Query<DeletedQuery>,
) -> ApiResult<axum::response::Response> {
    check_place(&p)?;
    let answer =
        resource::delete_change_request(&state, &agent.cluster, &p.namespace, &p.name, &q.uid)
            .await?;
    Ok(match answer {
        Some(record) => unnoted(Json(ChangeRecordView(record))),
        None => unnoted(StatusCode::NO_CONTENT),
    })
}

/// A decision written with kubectl (see
/// `changegate_resources::wire::ApprovalByKubectl`).
#[derive(Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct ApprovalByKubectlBody(pub ApprovalByKubectl);

/// What the server recorded of a decision written with kubectl.
#[derive(Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct ApprovalRecordedView(pub ApprovalRecorded);

/// Record a decision a person wrote with kubectl in the ChangeRequest's
/// `status.approvals` (the operator's webhook asks before it admits the
/// patch): the Kubernetes user mapped to a tenant user, the tenant's
/// policy accepting the channel up to the change's risk, then the one
/// decision path of every channel (channel `kubernetes`). A retry of a
/// decision already recorded is answered the same; `dryRun` records
/// nothing. A refusal says why, for the person who patched.
#[utoipa::path(post, path = "/api/v1/agent/changerequests/{namespace}/{name}/approvals", tag = "agent",
    params(("namespace" = String, Path), ("name" = String, Path)),
    request_body = ApprovalByKubectlBody,
    responses((status = 200, body = ApprovalRecordedView), (status = 403, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn approve_by_kubectl(
    State(state): State<AppState>,
    agent: Agent,
    Path(p): Path<ResourcePath>,
    Body(ApprovalByKubectlBody(body)): Body<ApprovalByKubectlBody>,
) -> ApiResult<axum::response::Response> {
    check_place(&p)?;
    let answer =
        resource::approve_by_kubectl(&state, &agent.cluster, &p.namespace, &p.name, body).await?;
    Ok(unnoted(Json(ApprovalRecordedView(answer))))
}

/// A phase authorized with kubectl (see
/// `changegate_resources::wire::AuthorizationByKubectl`).
#[derive(Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct AuthorizationByKubectlBody(pub AuthorizationByKubectl);

/// What the server recorded of a phase authorized with kubectl.
#[derive(Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct AuthorizationRecordedView(pub AuthorizationRecorded);

/// Authorize a release's phase as a release manager wrote it with kubectl
/// in the Release's `status.authorizations` (the operator's webhook asks
/// before it admits the patch), through the one phase path; a retry is
/// answered the same, `dryRun` records nothing.
#[utoipa::path(post, path = "/api/v1/agent/releases/{namespace}/{name}/authorizations", tag = "agent",
    params(("namespace" = String, Path), ("name" = String, Path)),
    request_body = AuthorizationByKubectlBody,
    responses((status = 200, body = AuthorizationRecordedView), (status = 403, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn authorize_by_kubectl(
    State(state): State<AppState>,
    agent: Agent,
    Path(p): Path<ResourcePath>,
    Body(AuthorizationByKubectlBody(body)): Body<AuthorizationByKubectlBody>,
) -> ApiResult<axum::response::Response> {
    check_place(&p)?;
    let answer =
        resource::authorize_by_kubectl(&state, &agent.cluster, &p.namespace, &p.name, body).await?;
    Ok(unnoted(Json(AuthorizationRecordedView(answer))))
}

/// The latest spec of a Release (see `changegate_resources::wire::ReleaseSync`).
#[derive(Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct ReleaseSyncBody(pub ReleaseSync);

/// The release a Release stands for, as its status shows it (see
/// `changegate_resources::wire::ReleaseRecord`).
#[derive(Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct ReleaseRecordView(pub ReleaseRecord);

/// What became of a deleted Release's release.
#[derive(Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct ReleaseDeletedView(pub ReleaseDeleted);

/// Bring the release of a Release in step with its latest spec: until
/// every change it names is approved the server holds nothing and
/// answers what it waits for (`phase: waiting`); then the release is
/// planned in the namespace's tenant as the resource's creator (a release
/// manager); after that a newer generation is an edit by its editor.
/// Idempotent on the resource's place.
#[utoipa::path(put, path = "/api/v1/agent/releases/{namespace}/{name}", tag = "agent",
    params(("namespace" = String, Path), ("name" = String, Path)),
    request_body = ReleaseSyncBody,
    responses((status = 200, body = ReleaseRecordView), (status = 403, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn sync_release(
    State(state): State<AppState>,
    agent: Agent,
    Path(p): Path<ResourcePath>,
    Body(ReleaseSyncBody(body)): Body<ReleaseSyncBody>,
) -> ApiResult<axum::response::Response> {
    check_place(&p)?;
    let record =
        resource::sync_release(&state, &agent.cluster, &p.namespace, &p.name, body).await?;
    Ok(unnoted(Json(ReleaseRecordView(record))))
}

/// A Release was deleted: its release is cancelled if it has not
/// deployed, otherwise the resource is detached (recorded on the release).
#[utoipa::path(delete, path = "/api/v1/agent/releases/{namespace}/{name}", tag = "agent",
    params(("namespace" = String, Path), ("name" = String, Path), DeletedQuery),
    responses((status = 200, body = ReleaseDeletedView)))]
pub async fn delete_release(
    State(state): State<AppState>,
    agent: Agent,
    Path(p): Path<ResourcePath>,
    Query(q): Query<DeletedQuery>,
) -> ApiResult<axum::response::Response> {
    check_place(&p)?;
    let answer =
        resource::delete_release(&state, &agent.cluster, &p.namespace, &p.name, &q.uid).await?;
    Ok(unnoted(Json(ReleaseDeletedView(answer))))
}

/// The Releases of this cluster linked to releases (of the tenants bound
/// to it), for the operator's sweep of deletions it did not see.
#[utoipa::path(get, path = "/api/v1/agent/releases", tag = "agent",
    responses((status = 200, body = LinkedView)))]
pub async fn linked_releases(
    State(state): State<AppState>,
    agent: Agent,
) -> ApiResult<Json<LinkedView>> {
    Ok(Json(LinkedView(
        resource::linked_releases(&state, &agent.cluster).await?,
    )))
}

/// Kubernetes object names: DNS labels and subdomains.
fn check_place(p: &ResourcePath) -> ApiResult<()> {
    let dns = |s: &str| {
        !s.is_empty()
            && s.len() <= 253
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
    };
    if !dns(&p.namespace) {
        return Err(ApiError::invalid(
            "namespace",
            "not a Kubernetes namespace name",
        ));
    }
    if !dns(&p.name) {
        return Err(ApiError::invalid("name", "not a Kubernetes object name"));
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct IdentitiesPath {
    #[allow(dead_code)]
    pub tenant: String,
    pub cluster: String,
}

#[derive(Deserialize)]
pub struct IdentityPath {
    #[allow(dead_code)]
    pub tenant: String,
    pub cluster: String,
    pub user: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityBody {
    /// The tenant's user the Kubernetes user name stands for.
    pub email: String,
}

#[derive(Serialize, ToSchema)]
pub struct IdentityView {
    /// The Kubernetes user name, as the cluster's API server authenticates
    /// it (e.g. `alice`, `oidc:alice@client.example`,
    /// `system:serviceaccount:argocd:argocd-application-controller`).
    pub user: String,
    pub email: String,
}

/// The Kubernetes user names of `cluster` mapped to the tenant's users.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/clusters/{cluster}/identities", tag = "people",
    params(("tenant" = String, Path), ("cluster" = String, Path)),
    responses((status = 200, body = [IdentityView])))]
pub async fn list_identities(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<IdentitiesPath>,
) -> ApiResult<Json<Vec<IdentityView>>> {
    t.authorize(Action::Read)?;
    let prefix = identity_name(&p.cluster, "");
    let mut out = Vec::new();
    for o in state
        .store
        .objects(t.tenant.id, ObjectKind::ClusterIdentity)
        .await?
    {
        if let Some(user) = o.name.strip_prefix(&prefix)
            && let Ok(identity) = serde_json::from_str::<Identity>(&o.spec)
        {
            out.push(IdentityView {
                user: user.to_string(),
                email: identity.email,
            });
        }
    }
    Ok(Json(out))
}

/// Map a Kubernetes user name of `cluster` to a user of the tenant: the
/// resources they create or edit there are requested or edited by that
/// user (who then cannot approve that revision). A service account (a
/// GitOps controller's) may be mapped to a service user holding the roles
/// its kinds need; other `system:` names never.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/clusters/{cluster}/identities/{user}", tag = "people",
    params(("tenant" = String, Path), ("cluster" = String, Path), ("user" = String, Path)),
    request_body = IdentityBody, responses((status = 200, body = AppliedView)))]
pub async fn put_identity(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<IdentityPath>,
    Body(body): Body<IdentityBody>,
) -> ApiResult<Json<AppliedView>> {
    t.authorize(Action::AdministerTenant)?;
    Slug::parse(&p.cluster).map_err(|e| ApiError::invalid("cluster", e.message))?;
    check_user_name(&p.user)?;
    let email = email_field("email", &body.email)?;
    let people = People::load(state.store.as_ref(), t.tenant.id).await?;
    let Some(user) = people.id_of(email.as_str()) else {
        return Err(ApiError::invalid(
            "email",
            format!("{email} is not a user of this tenant; add them first"),
        ));
    };
    // Whoever maps a name acts as its user through the cluster: a tenant
    // administrator maps only the client's own people (or themself); the
    // MSP's staff only an installation administrator.
    if !t.caller.admin && user != t.caller.user {
        let target = state.store.user(user).await?;
        if target.kind == changegate_core::UserKind::Msp {
            return Err(ApiError::forbidden(format!(
                "{email} is MSP staff: only an installation administrator maps a Kubernetes user to them"
            )));
        }
    }
    let spec = serde_json::to_string(&Identity {
        email: email.to_string(),
    })
    .map_err(|_| ApiError::internal())?;
    let applied = state
        .store
        .put_object(
            t.tenant.id,
            ObjectKind::ClusterIdentity,
            &identity_name(&p.cluster, &p.user),
            &spec,
            &t.actor(),
            state.now(),
        )
        .await?;
    state.writes.note(Some(t.tenant.slug.as_str()));
    Ok(Json(applied.into()))
}

/// End a mapping: the name's resources are refused from then on.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/clusters/{cluster}/identities/{user}", tag = "people",
    params(("tenant" = String, Path), ("cluster" = String, Path), ("user" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete_identity(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<IdentityPath>,
) -> ApiResult<StatusCode> {
    t.authorize(Action::AdministerTenant)?;
    state
        .store
        .delete_object(
            t.tenant.id,
            ObjectKind::ClusterIdentity,
            &identity_name(&p.cluster, &p.user),
            &t.actor(),
            state.now(),
        )
        .await?;
    state.writes.note(Some(t.tenant.slug.as_str()));
    Ok(StatusCode::NO_CONTENT)
}

fn check_user_name(user: &str) -> ApiResult<()> {
    if user.trim().is_empty() || user.len() > 253 || user.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "user",
            "give the Kubernetes user name as the API server authenticates it",
        ));
    }
    if user.starts_with("system:") && !user.starts_with("system:serviceaccount:") {
        return Err(ApiError::invalid(
            "user",
            format!(
                "{user} is a Kubernetes system identity; only people and service accounts are mapped"
            ),
        ));
    }
    Ok(())
}
