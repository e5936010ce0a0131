//! The caller, their API tokens, and a tenant's users and role bindings.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use changegate_core::authz::{Action, Principal};
use changegate_core::{Role, UserKind};
use changegate_store::{NewUser, StoreError, TokenScope};
use std::collections::BTreeMap;

use super::Body;
use crate::AppState;
use crate::auth::{Caller, new_token};
use crate::dto::{AddUserBody, MeView, NewTokenBody, TokenView, UserView, email_field};
use crate::error::{ApiError, ApiResult};
use crate::tenant::InTenant;

#[utoipa::path(get, path = "/api/v1/me", tag = "people", responses((status = 200, body = MeView)))]
pub async fn me(State(state): State<AppState>, Caller(caller): Caller) -> ApiResult<Json<MeView>> {
    Ok(Json(me_view(&state, &caller).await?))
}

pub(crate) async fn me_view(state: &AppState, caller: &Principal) -> ApiResult<MeView> {
    let mut roles = BTreeMap::new();
    for (tenant, rs) in &caller.roles {
        let t = state.store.tenant(*tenant).await?;
        roles.insert(
            t.slug.to_string(),
            rs.iter().map(|r| r.as_str().to_string()).collect(),
        );
    }
    Ok(MeView {
        email: caller.email.to_string(),
        name: caller.name.clone(),
        kind: caller.kind.as_str().to_string(),
        admin: caller.admin,
        roles,
    })
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "people", request_body = NewTokenBody,
    responses((status = 201, body = TokenView)))]
pub async fn create_token(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Body(body): Body<NewTokenBody>,
) -> ApiResult<(StatusCode, Json<TokenView>)> {
    if body.name.trim().is_empty() {
        return Err(ApiError::invalid(
            "name",
            "name the token after where it is used, e.g. ci-pipeline",
        ));
    }
    let (token, hash) = new_token();
    let created = state
        .store
        .create_token(
            caller.user,
            body.name.trim(),
            &hash,
            &TokenScope::Full,
            state.now(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenView {
            id: created.id,
            name: body.name,
            token,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/users", tag = "people",
    params(("tenant" = String, Path)), responses((status = 200, body = [UserView])))]
pub async fn list(State(state): State<AppState>, t: InTenant) -> ApiResult<Json<Vec<UserView>>> {
    t.authorize(Action::Read)?;
    let users = state.store.users_in_tenant(t.tenant.id).await?;
    Ok(Json(
        users
            .into_iter()
            .map(|(u, roles)| UserView {
                email: u.email.to_string(),
                name: u.name,
                kind: u.kind.as_str().to_string(),
                roles: roles.iter().map(|r| r.as_str().to_string()).collect(),
                applied: None,
            })
            .collect(),
    ))
}

/// Add a person to the tenant with roles: a new client user of this
/// company, or an existing user bound here. Binding MSP staff, or creating
/// them, is for installation admins.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/users", tag = "people", request_body = AddUserBody,
    params(("tenant" = String, Path)), responses((status = 200, body = UserView)))]
pub async fn add(
    State(state): State<AppState>,
    t: InTenant,
    Body(body): Body<AddUserBody>,
) -> ApiResult<Json<UserView>> {
    t.authorize(Action::AdministerTenant)?;
    let email = email_field("email", &body.email)?;
    let roles = body
        .roles
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.parse::<Role>()
                .map_err(|e| ApiError::invalid(format!("roles[{i}]"), e.message))
        })
        .collect::<ApiResult<Vec<Role>>>()?;
    if roles.is_empty() {
        return Err(ApiError::invalid(
            "roles",
            "grant at least one role, e.g. business-approver",
        ));
    }
    let kind = match body.kind.as_deref() {
        None => UserKind::Client,
        Some(k) => k.parse::<UserKind>()?,
    };
    let mut applied = "unchanged";
    let user = match state.store.user_by_email(&email).await {
        Ok(u) => u,
        Err(StoreError::NotFound { .. }) => {
            if kind == UserKind::Msp && !t.caller.admin {
                return Err(ApiError::forbidden(
                    "only an installation admin adds MSP staff",
                ));
            }
            let name = body
                .name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .ok_or_else(|| ApiError::invalid("name", "a new user needs a name"))?;
            let tenant = (kind == UserKind::Client).then_some(t.tenant.id);
            applied = "created";
            let grants: Vec<_> = roles.iter().map(|r| (t.tenant.id, *r)).collect();
            state
                .store
                .create_user(
                    NewUser {
                        email: email.clone(),
                        name,
                        kind,
                        admin: false,
                        tenant,
                        password_hash: None,
                    },
                    &grants,
                    &t.actor(),
                    state.now(),
                )
                .await?
        }
        Err(e) => return Err(e.into()),
    };
    match user.kind {
        UserKind::Client if user.tenant != Some(t.tenant.id) => {
            return Err(
                ApiError::conflict(format!("{email} is a user of another company"))
                    .with_field("email"),
            );
        }
        UserKind::Msp if !t.caller.admin => {
            return Err(ApiError::forbidden(
                "only an installation admin grants roles to MSP staff",
            ));
        }
        _ => {}
    }
    // A user created just now holds the roles already.
    let created = applied == "created";
    for role in roles.iter().filter(|_| !created) {
        let granted = state
            .store
            .bind_role(user.id, t.tenant.id, *role, &t.actor(), state.now())
            .await?;
        if granted != changegate_store::Applied::Unchanged && applied == "unchanged" {
            applied = "updated";
        }
    }
    let all = state.store.roles_of(user.id).await?;
    let held = all.get(&t.tenant.id).cloned().unwrap_or_default();
    Ok(Json(UserView {
        email: user.email.to_string(),
        name: user.name,
        kind: user.kind.as_str().to_string(),
        roles: held.iter().map(|r| r.as_str().to_string()).collect(),
        applied: Some(applied.to_string()),
    }))
}
