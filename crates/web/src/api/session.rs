//! Signing in and out with a local account: an argon2id password check,
//! then a random session id in an HttpOnly, SameSite=Strict cookie (Secure
//! unless the server runs with `--insecure-cookies`); the store keeps only
//! the id's hash. The portal builds on these sessions.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use changegate_core::Email;
use chrono::TimeDelta;

use super::Body;
use crate::auth::{
    Caller, SESSION_COOKIE, cookie, new_token, principal_of, token_hash, verify_password,
};
use crate::dto::SignInBody;
use crate::error::{ApiError, ApiResult};
use crate::{AppState, limit};

/// How long a session lasts.
const LIFETIME: TimeDelta = TimeDelta::hours(12);

fn wrong() -> ApiError {
    // The same answer whether the account exists or not.
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "wrong e-mail address or password",
    )
}

fn set_cookie(state: &AppState, value: &str, max_age: i64) -> Result<HeaderValue, ApiError> {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .map_err(|_| ApiError::internal())
}

/// Sign in with e-mail and password; the answer sets the session cookie.
#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = SignInBody, security(()),
    responses((status = 200, body = crate::dto::MeView), (status = 401, body = crate::error::ErrorBody)))]
pub async fn sign_in(
    State(state): State<AppState>,
    Body(body): Body<SignInBody>,
) -> ApiResult<Response> {
    let user = authenticate(&state, &body.email, body.password).await?;
    let cookie = start(&state, &user).await?;
    let principal = principal_of(state.store.as_ref(), user).await?;
    let me = super::people::me_view(&state, &principal).await?;
    let mut headers = HeaderMap::new();
    headers.insert(header::SET_COOKIE, cookie);
    Ok((headers, Json(me)).into_response())
}

/// The user whose password this is; the same refusal, after the same
/// password check, whether the account exists or not. The attempt is
/// counted (in the database, under the address's lock) before the check.
pub(crate) async fn authenticate(
    state: &AppState,
    email: &str,
    password: String,
) -> ApiResult<changegate_store::User> {
    let email = Email::parse(email).map_err(|_| wrong())?;
    let now = state.now();
    let key = limit::address_key(email.as_str());
    if let Some(until) = state
        .store
        .sign_in_attempt(&key, now, limit::WINDOW, limit::MAX_FAILURES)
        .await?
    {
        let minutes = (until - now).num_minutes() + 1;
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-attempts",
            format!(
                "too many wrong passwords for this address; try again in {minutes} minutes or ask an administrator to reset it"
            ),
        ));
    }
    let user = match state.store.user_by_email(&email).await {
        Ok(u) => Some(u),
        Err(changegate_store::StoreError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let hash = user
        .as_ref()
        .and_then(|u| u.password_hash.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| limit::nobodys_hash().to_string());
    // argon2 is deliberately slow: keep it off the async workers.
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    match user {
        Some(user) if ok => {
            state.store.sign_in_succeeded(&key).await?;
            Ok(user)
        }
        _ => {
            tracing::info!(email = %email, "sign-in refused");
            Err(wrong())
        }
    }
}

/// Start a session for `user`: the `Set-Cookie` value that carries it.
pub(crate) async fn start(
    state: &AppState,
    user: &changegate_store::User,
) -> ApiResult<HeaderValue> {
    let (id, id_hash) = new_token();
    state
        .store
        .create_session(user.id, &id_hash, state.now() + LIFETIME, state.now())
        .await?;
    set_cookie(state, &id, LIFETIME.num_seconds())
}

/// The `Set-Cookie` value that ends the session cookie.
pub(crate) fn clear(state: &AppState) -> ApiResult<HeaderValue> {
    set_cookie(state, "", 0)
}

/// Sign out: the session ends on the server and the cookie is cleared.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session", responses((status = 204)))]
pub async fn sign_out(
    State(state): State<AppState>,
    _caller: Caller,
    request_headers: HeaderMap,
) -> ApiResult<Response> {
    if let Some(id) = cookie(&request_headers, SESSION_COOKIE) {
        state.store.delete_session(&token_hash(id)).await?;
    }
    let mut headers = HeaderMap::new();
    headers.insert(header::SET_COOKIE, clear(&state)?);
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}
