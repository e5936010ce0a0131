//! Tenants: the client companies (and the MSP's own IT).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use changegate_core::Slug;
use changegate_core::authz::{self, Action};
use changegate_store::NewTenant;

use super::Body;
use crate::AppState;
use crate::auth::Caller;
use crate::dto::{AppliedView, ApplyTenantBody, NewTenantBody, TenantView};
use crate::error::{ApiError, ApiResult};
use crate::tenant::InTenant;

/// Validate an IANA time zone name.
pub fn time_zone(field: &str, tz: &str) -> ApiResult<()> {
    tz.parse::<chrono_tz::Tz>().map(|_| ()).map_err(|_| {
        ApiError::invalid(
            field,
            format!("{tz:?} is not an IANA time zone, e.g. Europe/Berlin"),
        )
    })
}

#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants",
    responses((status = 200, body = [TenantView])))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> ApiResult<Json<Vec<TenantView>>> {
    let visible = caller.visible_tenants();
    let tenants = state.store.tenants(visible.as_ref()).await?;
    Ok(Json(tenants.iter().map(TenantView::from).collect()))
}

#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = NewTenantBody,
    responses((status = 201, body = TenantView), (status = 409, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Body(body): Body<NewTenantBody>,
) -> ApiResult<(StatusCode, Json<TenantView>)> {
    authz::authorize_admin(&caller)?;
    let slug = Slug::parse(&body.slug)?;
    time_zone("time_zone", &body.time_zone)?;
    if body.name.trim().is_empty() {
        return Err(ApiError::invalid("name", "a tenant needs a name"));
    }
    let tenant = state
        .store
        .create_tenant(
            NewTenant {
                slug,
                name: body.name,
                time_zone: body.time_zone,
            },
            caller.email.as_str(),
            state.now(),
        )
        .await
        .map_err(|e| match e {
            changegate_store::StoreError::Conflict { .. } => {
                ApiError::conflict(format!("a tenant named {} already exists", body.slug))
                    .with_field("slug")
            }
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(TenantView::from(&tenant))))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path)), responses((status = 200, body = TenantView)))]
pub async fn show(t: InTenant) -> ApiResult<Json<TenantView>> {
    t.authorize(Action::Read)?;
    Ok(Json(TenantView::from(&t.tenant)))
}

/// Create or update a tenant by slug (policy as code): `unchanged` when it already matches.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}", tag = "tenants", request_body = ApplyTenantBody,
    params(("tenant" = String, Path)), responses((status = 200, body = AppliedView)))]
pub async fn apply(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(slug): Path<String>,
    Body(body): Body<ApplyTenantBody>,
) -> ApiResult<Json<AppliedView>> {
    authz::authorize_admin(&caller)?;
    let slug = Slug::parse(&slug)?;
    time_zone("time_zone", &body.time_zone)?;
    if body.name.trim().is_empty() {
        return Err(ApiError::invalid("name", "a tenant needs a name"));
    }
    let (_, applied) = state
        .store
        .apply_tenant(
            NewTenant {
                slug,
                name: body.name,
                time_zone: body.time_zone,
            },
            caller.email.as_str(),
            state.now(),
        )
        .await?;
    Ok(Json(AppliedView::from(applied)))
}
