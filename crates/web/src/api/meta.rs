//! Health, readiness and the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::AppState;
use crate::error::ApiError;

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready once the database answers (migrations ran before the server
/// listened); not ready, at once, while it does not answer within a second.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    let ping = tokio::time::timeout(std::time::Duration::from_secs(1), state.store.ping()).await;
    match ping {
        Ok(Ok(())) => (StatusCode::OK, format!("ready ({})", state.store.backend())),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database unavailable: {e}"),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "database unavailable: no answer within a second".to_string(),
        ),
    }
}

pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(crate::openapi::document())
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("route")
}
