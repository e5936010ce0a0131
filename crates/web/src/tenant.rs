//! The tenant a request acts in, as a typed extractor: the `{tenant}` path
//! segment resolved to a tenant the caller may see. Another tenant's slug
//! answers 404 exactly like a slug that does not exist, so nothing leaks.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use changegate_core::authz::{self, Action, Principal};
use changegate_store::Tenant;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// An authenticated caller inside one tenant they are bound to.
#[derive(Clone)]
pub struct InTenant {
    pub caller: Principal,
    pub tenant: Tenant,
}

impl InTenant {
    /// The one authorization call of a handler.
    pub fn authorize(&self, action: Action) -> Result<(), ApiError> {
        authz::authorize(&self.caller, self.tenant.id, action).map_err(ApiError::from)
    }

    pub fn actor(&self) -> String {
        self.caller.email.to_string()
    }

    /// The tenant `slug` for `caller`: 404 alike when it does not exist
    /// and when the caller is not bound to it. For routes that take the
    /// tenant from the body rather than the path.
    pub async fn resolve(
        state: &AppState,
        caller: Principal,
        slug: &str,
    ) -> Result<Self, ApiError> {
        let tenant = state
            .snapshots
            .tenants(state)
            .await?
            .iter()
            .find(|t| t.slug.as_str() == slug)
            .cloned()
            .ok_or_else(|| ApiError::not_found("tenant"))?;
        if !caller.sees(tenant.id) {
            return Err(ApiError::not_found("tenant"));
        }
        Ok(InTenant { caller, tenant })
    }
}

impl FromRequestParts<AppState> for InTenant {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Caller(caller) = Caller::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found("tenant"))?;
        let slug = params
            .iter()
            .find(|(k, _)| *k == "tenant")
            .map(|(_, v)| v.to_string())
            .ok_or_else(|| ApiError::not_found("tenant"))?;
        InTenant::resolve(state, caller, &slug).await
    }
}
