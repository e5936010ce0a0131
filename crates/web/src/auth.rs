//! Who is calling: API tokens (`Authorization: Bearer cg_...`, stored as
//! SHA-256 hashes, shown once) and argon2id password hashes for local
//! accounts. The principal is always built from the store, never from a
//! field in the request.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use changegate_core::authz::Principal;
use changegate_store::{Store, StoreError, TokenScope, User};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;

pub const TOKEN_PREFIX: &str = "cg_";
/// The session cookie of local accounts (HttpOnly, SameSite=Strict).
pub const SESSION_COOKIE: &str = "changegate_session";

/// The value of a cookie in the request, if sent.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A new random API token (256 bits) and the hash the store keeps.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn hash_password(password: &str) -> Result<String, ApiError> {
    if password.chars().count() < 12 {
        return Err(ApiError::invalid("password", "use at least 12 characters"));
    }
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|_| ApiError::internal())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| ApiError::internal())
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// The principal behind a user: their roles per tenant.
pub async fn principal_of(store: &dyn Store, user: User) -> Result<Principal, ApiError> {
    let roles = store.roles_of(user.id).await?;
    Ok(Principal {
        user: user.id,
        email: user.email,
        name: user.name,
        kind: user.kind,
        admin: user.admin,
        roles,
    })
}

/// The routes a gate token (`POST /api/v1/tenants/{tenant}/gate-tokens`) reaches.
pub const GATE_PATH: &str = "/api/v1/gate/";

/// The authenticated caller of an API route.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let Some(header) = header else {
            // A signed-in session. Other sites cannot send it
            // (SameSite=Strict); and a write must carry a JSON content type
            // (which a cross-site form cannot send without a preflight this
            // server never grants) or this server's own origin, bodiless
            // POSTs included.
            let session =
                cookie(&parts.headers, SESSION_COOKIE).ok_or_else(ApiError::unauthenticated)?;
            same_site_write(parts, state)?;
            let user = match state
                .store
                .user_by_session(&token_hash(session), state.now())
                .await
            {
                Ok(u) => u,
                Err(StoreError::NotFound { .. }) => return Err(ApiError::unauthenticated()),
                Err(e) => return Err(e.into()),
            };
            return Ok(Caller(principal_of(state.store.as_ref(), user).await?));
        };
        let token = bearer_token(header)?;
        let found = state.snapshots.bearer(state, token_hash(token)).await?;
        let (_, scope, principal) = found.as_ref();
        let (scope, mut principal) = (scope.clone(), principal.clone());
        match scope {
            TokenScope::Full => {}
            TokenScope::Gate(tenant) => {
                // A pipeline's token: the gate API of one tenant, with its
                // creator's roles there and nothing else.
                if !parts.uri.path().starts_with(GATE_PATH) {
                    return Err(ApiError::forbidden(format!(
                        "this token only reaches the gate API ({GATE_PATH}check) of its tenant; use a personal API token for anything else"
                    )));
                }
                principal.admin = false;
                principal.roles.retain(|t, _| *t == tenant);
            }
            TokenScope::Agent(cluster) => {
                return Err(ApiError::forbidden(format!(
                    "this is the agent token of cluster {cluster}; it reaches only {AGENT_PATH}bundle"
                )));
            }
        }
        Ok(Caller(principal))
    }
}

/// A write authenticated by the session cookie comes from this server's
/// pages or a script of its own: an `Origin` other than this server's is
/// refused, and without one of this server's origin the request must say
/// `Content-Type: application/json`.
fn same_site_write(parts: &Parts, state: &AppState) -> Result<(), ApiError> {
    use axum::http::{Method, header};
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let origin = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    let own_origin = |o: &str| {
        o.eq_ignore_ascii_case(&state.public_url)
            || host.is_some_and(|h| {
                o.eq_ignore_ascii_case(&format!("https://{h}"))
                    || o.eq_ignore_ascii_case(&format!("http://{h}"))
            })
    };
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    match origin {
        Some(o) if own_origin(o) => Ok(()),
        Some(o) => Err(ApiError::forbidden(format!(
            "a write from {o} with this server's session cookie is refused; call the API from this server's pages, or with an API token"
        ))),
        None if json => Ok(()),
        None => Err(ApiError::forbidden(
            "a write with the session cookie needs `Content-Type: application/json` (send `{}` when there is no body), or use an API token",
        )),
    }
}

/// The token of an `Authorization: Bearer cg_...` header.
fn bearer_token(header: &str) -> Result<&str, ApiError> {
    header
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| t.starts_with(TOKEN_PREFIX))
        .ok_or_else(ApiError::unauthenticated)
}

/// The routes an agent token reaches.
pub const AGENT_PATH: &str = "/api/v1/agent/";

/// A cluster's agent, authenticated by its agent token (`POST
/// /api/v1/clusters`); no person's token or session is one.
pub struct Agent {
    pub cluster: String,
}

impl FromRequestParts<AppState> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthenticated)?;
        let found = state
            .snapshots
            .bearer(state, token_hash(bearer_token(header)?))
            .await?;
        match &found.1 {
            TokenScope::Agent(cluster) => Ok(Agent {
                cluster: cluster.clone(),
            }),
            _ => Err(ApiError::forbidden(
                "an agent token is needed: an installation admin registers the cluster with POST /api/v1/clusters",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, ha) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == 3 + 64);
        assert_eq!(ha, token_hash(&a));
        assert!(!ha.contains(&a[3..]));
    }

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse battery").expect("hashes");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong horse battery", &h));
        assert!(hash_password("short").is_err());
    }
}
