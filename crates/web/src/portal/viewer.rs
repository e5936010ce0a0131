//! Who is looking at a page: the signed-in session (never a bearer
//! token), its principal, and the CSRF token its forms carry. Without a
//! live session every page but sign-in sends the browser there.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use changegate_core::authz::Principal;
use changegate_store::StoreError;
use sha2::{Digest, Sha256};

use super::PageError;
use crate::AppState;
use crate::auth::{SESSION_COOKIE, cookie, principal_of, token_hash};
use crate::error::ApiError;

pub struct Viewer {
    pub principal: Principal,
    /// Bound to the session: derived from its secret id, which only the
    /// browser (HttpOnly cookie) and the server know.
    pub csrf: String,
    /// The hash the store keeps of the session id.
    pub session: String,
}

/// The CSRF token of a session id.
pub fn csrf_of(session_id: &str) -> String {
    let digest = Sha256::digest(format!("changegate-csrf\x1f{session_id}").as_bytes());
    hex::encode(digest)[..32].to_string()
}

/// Equal in constant time (no early exit on the first differing byte).
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Viewer {
    /// Refuse a form whose token is not this session's.
    pub fn check_csrf(&self, sent: &str) -> Result<(), PageError> {
        if same(&self.csrf, sent) {
            Ok(())
        } else {
            Err(PageError(ApiError::forbidden(
                "this form has expired or came from another site; reload the page and try again",
            )))
        }
    }
}

/// `Option<Viewer>`: signed in or not, without redirecting.
impl axum::extract::OptionalFromRequestParts<AppState> for Viewer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <Viewer as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(Redirect::to("/sign-in").into_response());
        };
        let session = token_hash(id);
        let user = match state.store.user_by_session(&session, state.now()).await {
            Ok(u) => u,
            Err(StoreError::NotFound { .. }) => {
                return Err(Redirect::to("/sign-in").into_response());
            }
            Err(e) => return Err(PageError::from(e).into_response()),
        };
        let principal = principal_of(state.store.as_ref(), user)
            .await
            .map_err(|e| PageError(e).into_response())?;
        Ok(Viewer {
            principal,
            csrf: csrf_of(id),
            session,
        })
    }
}
