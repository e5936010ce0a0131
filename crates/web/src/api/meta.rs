//! Health, readiness and the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::AppState;
use crate::error::ApiError;

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready once the database answers (migrations ran before the server listened).
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, format!("ready ({})", state.store.backend())),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database unavailable: {e}"),
        ),
    }
}

pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(crate::openapi::document())
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("route")
}
