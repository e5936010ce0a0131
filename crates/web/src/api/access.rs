//! Taking access back. Tokens (API, gate, agent) listed with their last
//! use and revoked; a role taken from a user; a user disabled (sessions
//! ended, tokens revoked, the approvals they still owe moved to the
//! escalation backup or flagged); a password changed, ending the user's
//! other sessions. Each is an audit event on the tenants it concerns, and
//! takes effect on every replica within a second (the shared reads of
//! tokens and people are outdated by it).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use changegate_core::authz::{Action, Principal};
use changegate_core::{Email, Role, TenantId, UserKind};
use changegate_store::{NewEvent, StoreError, TokenFilter, TokenInfo, TokenScope, User};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::Body;
use crate::AppState;
use crate::auth::{Caller, SESSION_COOKIE, cookie, hash_password, token_hash, verify_password};
use crate::error::{ApiError, ApiResult};
use crate::tenant::InTenant;

#[derive(Serialize, ToSchema)]
pub struct TokenListItem {
    pub id: i64,
    pub name: String,
    /// `api`, `gate` or `agent`.
    pub kind: String,
    /// Whose token it is.
    pub owner: String,
    /// A gate token's tenant, or an agent token's cluster.
    pub reaches: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When it was last used (to the minute); never, when absent.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

async fn item(state: &AppState, t: TokenInfo) -> ApiResult<TokenListItem> {
    let (kind, reaches) = match &t.scope {
        TokenScope::Full => ("api", None),
        TokenScope::Gate(tenant) => (
            "gate",
            Some(state.store.tenant(*tenant).await?.slug.to_string()),
        ),
        TokenScope::Agent(cluster) => ("agent", Some(cluster.clone())),
    };
    Ok(TokenListItem {
        id: t.id,
        name: t.name,
        kind: kind.into(),
        owner: t.user_email.to_string(),
        reaches,
        created_at: t.created_at,
        last_used_at: t.last_used_at,
        revoked_at: t.revoked_at,
    })
}

/// Your tokens (an installation admin: every token, agents' included),
/// newest first, with when each was last used.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "people",
    responses((status = 200, body = [TokenListItem])))]
pub async fn list_tokens(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> ApiResult<Json<Vec<TokenListItem>>> {
    let filter = TokenFilter {
        user: (!caller.admin).then_some(caller.user),
        ..TokenFilter::default()
    };
    let mut out = Vec::new();
    for t in state.store.tokens(&filter).await? {
        out.push(item(&state, t).await?);
    }
    Ok(Json(out))
}

#[derive(Deserialize)]
pub struct TokenPath {
    pub id: String,
}

/// The tenants whose chains hear of `token`: a gate token's tenant, the
/// tenants bound to an agent's cluster, the owner's tenants for an API
/// token (every tenant for an installation admin's).
async fn concerned(state: &AppState, token: &TokenInfo) -> ApiResult<Vec<TenantId>> {
    Ok(match &token.scope {
        TokenScope::Gate(t) => vec![*t],
        TokenScope::Agent(cluster) => state
            .snapshots
            .bound_to(state, cluster)
            .await?
            .iter()
            .map(|t| t.id)
            .collect(),
        TokenScope::Full => {
            let owner = state.store.user(token.user).await?;
            if owner.admin {
                state
                    .store
                    .tenants(None)
                    .await?
                    .iter()
                    .map(|t| t.id)
                    .collect()
            } else {
                state
                    .store
                    .roles_of(token.user)
                    .await?
                    .into_keys()
                    .collect()
            }
        }
    })
}

async fn revoke(state: &AppState, actor: &Principal, token: &TokenInfo) -> ApiResult<()> {
    let now = state.now();
    let events = concerned(state, token)
        .await?
        .into_iter()
        .map(|t| {
            (
                t,
                NewEvent {
                    actor: actor.email.to_string(),
                    action: "token.revoked".into(),
                    subject: token.user_email.to_string(),
                    detail: json!({ "token": token.id, "name": token.name,
                                    "scope": format!("{:?}", token.scope).to_lowercase() }),
                    at: now,
                },
            )
        })
        .collect();
    state
        .store
        .revoke_token(token.id, now, events)
        .await
        .map_err(|e| match e {
            StoreError::NotFound { .. } => ApiError::state("the token is revoked already"),
            other => other.into(),
        })?;
    // Every token's cached owner is read again.
    state.writes.note(None);
    Ok(())
}

fn token_id(s: &str) -> ApiResult<i64> {
    s.parse().map_err(|_| ApiError::not_found("token"))
}

/// Revoke one of your tokens (an installation admin: any token). It stops
/// working at once on this server, within a second on the others.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "people",
    params(("id" = i64, Path)), responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(p): Path<TokenPath>,
) -> ApiResult<StatusCode> {
    let id = token_id(&p.id)?;
    let token = state
        .store
        .tokens(&TokenFilter {
            id: Some(id),
            user: (!caller.admin).then_some(caller.user),
            ..TokenFilter::default()
        })
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found("token"))?;
    revoke(&state, &caller, &token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant's gate tokens, with their owners and last use: for its
/// administrators.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/gate-tokens", tag = "gate",
    params(("tenant" = String, Path)), responses((status = 200, body = [TokenListItem])))]
pub async fn list_gate_tokens(
    State(state): State<AppState>,
    t: InTenant,
) -> ApiResult<Json<Vec<TokenListItem>>> {
    t.authorize(Action::AdministerTenant)?;
    let mut out = Vec::new();
    for token in state
        .store
        .tokens(&TokenFilter {
            gate_tenant: Some(t.tenant.id),
            ..TokenFilter::default()
        })
        .await?
    {
        out.push(item(&state, token).await?);
    }
    Ok(Json(out))
}

#[derive(Deserialize)]
pub struct TenantTokenPath {
    #[allow(dead_code)]
    pub tenant: String,
    pub id: String,
}

/// Revoke a gate token of the tenant, as its administrator (its owner
/// revokes it with `DELETE /api/v1/tokens/{id}`).
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/gate-tokens/{id}", tag = "gate",
    params(("tenant" = String, Path), ("id" = i64, Path)), responses((status = 204)))]
pub async fn revoke_gate_token(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<TenantTokenPath>,
) -> ApiResult<StatusCode> {
    t.authorize(Action::AdministerTenant)?;
    let token = state
        .store
        .tokens(&TokenFilter {
            id: Some(token_id(&p.id)?),
            gate_tenant: Some(t.tenant.id),
            ..TokenFilter::default()
        })
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found("token"))?;
    revoke(&state, &t.caller, &token).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct RolePath {
    #[allow(dead_code)]
    pub tenant: String,
    pub email: String,
    pub role: String,
}

/// Take a role in the tenant from a user.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/users/{email}/roles/{role}", tag = "people",
    params(("tenant" = String, Path), ("email" = String, Path), ("role" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn unbind_role(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<RolePath>,
) -> ApiResult<StatusCode> {
    t.authorize(Action::AdministerTenant)?;
    let role: Role = p
        .role
        .parse()
        .map_err(|_| ApiError::not_found("role binding"))?;
    let email = Email::parse(&p.email).map_err(|_| ApiError::not_found("user"))?;
    let user = state.store.user_by_email(&email).await?;
    // As with adding people: MSP staff's roles are the MSP's to change.
    if user.kind == UserKind::Msp && !t.caller.admin {
        return Err(ApiError::forbidden(
            "an installation admin changes the roles of MSP staff",
        ));
    }
    state
        .store
        .unbind_role(user.id, t.tenant.id, role, &t.actor(), state.now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableBody {
    /// Why, for the record, e.g. "left the company on 2026-12-04".
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct DisabledView {
    pub email: String,
    /// Changes whose undecided seat of theirs went to the tenant's backup approver.
    pub moved_to_backup: Vec<String>,
    /// Changes still waiting on their seat, with no backup to take it: flagged.
    pub flagged: Vec<String>,
}

#[derive(Deserialize)]
pub struct EmailPath {
    pub email: String,
}

#[derive(Deserialize)]
pub struct TenantEmailPath {
    #[allow(dead_code)]
    pub tenant: String,
    pub email: String,
}

/// Disable a user, as an installation admin. Their sessions end, their
/// tokens stop, they are no longer an approver of new changes; the seats
/// they have not decided on changes awaiting approval go to the tenant's
/// escalation backup, or are flagged where it has none.
#[utoipa::path(post, path = "/api/v1/users/{email}/disable", tag = "people", request_body = DisableBody,
    params(("email" = String, Path)), responses((status = 200, body = DisabledView)))]
pub async fn disable_user(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(p): Path<EmailPath>,
    Body(body): Body<DisableBody>,
) -> ApiResult<Json<DisabledView>> {
    if !caller.admin {
        return Err(ApiError::forbidden(
            "an installation admin disables users; a tenant's administrator disables its client users with POST /api/v1/tenants/{tenant}/users/{email}/disable",
        ));
    }
    let email = Email::parse(&p.email).map_err(|_| ApiError::not_found("user"))?;
    let user = state.store.user_by_email(&email).await?;
    disable(&state, &caller, user, &body.reason).await
}

/// Disable a client user of the tenant, as its administrator (MSP staff
/// are disabled by an installation admin).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/users/{email}/disable", tag = "people", request_body = DisableBody,
    params(("tenant" = String, Path), ("email" = String, Path)), responses((status = 200, body = DisabledView)))]
pub async fn disable_tenant_user(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<TenantEmailPath>,
    Body(body): Body<DisableBody>,
) -> ApiResult<Json<DisabledView>> {
    t.authorize(Action::AdministerTenant)?;
    let email = Email::parse(&p.email).map_err(|_| ApiError::not_found("user"))?;
    let user = state.store.user_by_email(&email).await?;
    if user.tenant != Some(t.tenant.id) {
        return Err(if user.kind == UserKind::Msp {
            ApiError::forbidden("an installation admin disables MSP staff")
        } else {
            ApiError::not_found("user")
        });
    }
    disable(&state, &t.caller, user, &body.reason).await
}

async fn disable(
    state: &AppState,
    caller: &Principal,
    user: User,
    reason: &str,
) -> ApiResult<Json<DisabledView>> {
    if user.id == caller.user {
        return Err(ApiError::invalid("email", "you cannot disable yourself"));
    }
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ApiError::invalid("reason", "say why, for the record"));
    }
    let now = state.now();
    let tenants: Vec<TenantId> = state.store.roles_of(user.id).await?.into_keys().collect();
    let events = tenants
        .iter()
        .map(|t| {
            (
                *t,
                NewEvent {
                    actor: caller.email.to_string(),
                    action: "user.disabled".into(),
                    subject: user.email.to_string(),
                    detail: json!({ "reason": reason }),
                    at: now,
                },
            )
        })
        .collect();
    state
        .store
        .disable_user(user.id, now, events)
        .await
        .map_err(|e| match e {
            StoreError::NotFound { .. } => {
                ApiError::state(format!("{} is disabled already", user.email))
            }
            other => other.into(),
        })?;
    state.writes.note(None);
    let (moved_to_backup, flagged) =
        crate::app::decide::reassign_seats_of(state, &user, &caller.email, &tenants).await?;
    Ok(Json(DisabledView {
        email: user.email.to_string(),
        moved_to_backup,
        flagged,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    pub current: String,
    /// At least 12 characters.
    pub new: String,
}

/// Change your password: your other sessions end (the one you use, if
/// any, goes on).
#[utoipa::path(put, path = "/api/v1/me/password", tag = "session", request_body = PasswordBody,
    responses((status = 204), (status = 403, body = crate::error::ErrorBody)))]
pub async fn change_password(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: axum::http::HeaderMap,
    Body(body): Body<PasswordBody>,
) -> ApiResult<StatusCode> {
    let user: User = state.store.user(caller.user).await?;
    let current = user.password_hash.clone().unwrap_or_default();
    let given = body.current.clone();
    let ok = !current.is_empty()
        && tokio::task::spawn_blocking(move || verify_password(&given, &current))
            .await
            .unwrap_or(false);
    if !ok {
        return Err(ApiError::forbidden("the current password is not right").with_field("current"));
    }
    let hash = hash_password(&body.new).map_err(|e| e.with_field("new"))?;
    let keep = cookie(&headers, SESSION_COOKIE).map(token_hash);
    let now = state.now();
    let events = state
        .store
        .roles_of(user.id)
        .await?
        .into_keys()
        .map(|t| {
            (
                t,
                NewEvent {
                    actor: caller.email.to_string(),
                    action: "user.password-changed".into(),
                    subject: caller.email.to_string(),
                    detail: json!({ "other_sessions": "ended" }),
                    at: now,
                },
            )
        })
        .collect();
    state
        .store
        .change_password(user.id, &hash, keep.as_deref(), events)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
