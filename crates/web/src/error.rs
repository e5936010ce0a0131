//! The API's one error type: an HTTP status, a stable code, a message that
//! says what to do next, and the offending field when there is one. Store
//! and domain errors become API errors here, in one place.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use changegate_core::authz::Denied;
use changegate_core::ids::InvalidValue;
use changegate_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

/// `{"error": {"code": "...", "message": "...", "field": "..."}}`
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `not-found`, `forbidden`, `invalid`, `conflict`, ...
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("{what} not found"),
        )
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in, or send an API token as `Authorization: Bearer <token>` (create one with `changegate admin token <email>`)",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message).with_field(field)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn state(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "wrong-state", message)
    }

    /// The database cannot be reached now: 503, with `Retry-After`.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database cannot be reached right now; nothing was changed, try again in a few seconds",
        )
    }

    pub fn is_unavailable(&self) -> bool {
        self.status == StatusCode::SERVICE_UNAVAILABLE
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to handle this request; it has been logged",
        )
    }
}

impl From<InvalidValue> for ApiError {
    fn from(e: InvalidValue) -> Self {
        ApiError::invalid(e.field, e.message)
    }
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        match d {
            // Another tenant's data does not exist for this caller.
            Denied::Hidden => ApiError::not_found("tenant"),
            Denied::Forbidden { action, needs: [] } => {
                ApiError::forbidden(format!("{action:?} needs an installation administrator"))
            }
            Denied::Forbidden { needs, .. } => {
                let roles: Vec<&str> = needs.iter().map(|r| r.as_str()).collect();
                ApiError::forbidden(format!(
                    "this needs one of the roles {} in this tenant; ask its tenant admin",
                    roles.join(", ")
                ))
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what } => ApiError::not_found(what),
            StoreError::Conflict { constraint } => ApiError::conflict(format!(
                "this already exists or was changed meanwhile ({constraint}); reload and retry"
            )),
            StoreError::AppendOnly(what) => ApiError::conflict(format!("{what} is append-only")),
            StoreError::Unstorable(why) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("{why}; remove it and send again"),
            ),
            StoreError::Unavailable(why) => {
                note_unavailable(&why);
                ApiError::unavailable()
            }
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::internal()
            }
        }
    }
}

/// Log that the database is away at most once every ten seconds: during
/// an outage every request would say so.
fn note_unavailable(why: &str) {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let last = LAST.load(Ordering::Relaxed);
    if now - last >= 10
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(error = %why, "the database is unreachable; requests are answered 503");
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.is_unavailable() {
            // Said once by `note_unavailable`; the client is told to retry.
            let body = ErrorBody {
                error: ErrorDetail {
                    code: self.code.to_string(),
                    message: self.message,
                    field: self.field,
                },
            };
            return (
                self.status,
                [(axum::http::header::RETRY_AFTER, "2")],
                Json(body),
            )
                .into_response();
        }
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                field: self.field,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
