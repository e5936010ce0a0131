//! The handlers, one module per resource. Each handler parses, makes its
//! one authorization call, calls the domain and the store, and answers.

pub mod access;
pub mod audit;
pub mod bundle;
pub mod calendar;
pub mod changes;
pub mod evidence;
pub mod gate;
pub mod kpis;
pub mod lifecycle;
pub mod meta;
pub mod people;
pub mod policy;
pub mod proposals;
pub mod releases;
pub mod report;
pub mod resources;
pub mod session;
pub mod tenants;

use axum::Json;
use axum::extract::rejection::JsonRejection;

use crate::error::ApiError;

/// A JSON body, with a parse failure reported as a 422 naming the field.
pub struct Body<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for Body<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<serde_json::Value>::from_request(req, state).await {
            Ok(Json(value)) => {
                if let Some(field) = nul_in(&value, "") {
                    return Err(ApiError::invalid(
                        field,
                        "text may not contain the NUL character (U+0000)",
                    ));
                }
                let de = serde_path_to_error::deserialize(value);
                de.map(Body).map_err(|e| {
                    let path = e.path().to_string();
                    let field = if path == "." { String::new() } else { path };
                    ApiError::invalid(field, e.into_inner().to_string())
                })
            }
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => ApiError::new(
                    axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "send the body as JSON with `Content-Type: application/json`",
                ),
                other => ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "bad-json",
                    other.body_text(),
                ),
            }),
        }
    }
}

/// Where in `value` a string (or key) holds U+0000, which text columns of
/// PostgreSQL cannot store: refused alike on either database.
fn nul_in(value: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value;
    let here = |key: &str| {
        if at.is_empty() {
            key.to_string()
        } else {
            format!("{at}.{key}")
        }
    };
    match value {
        Value::String(s) if s.contains('\0') => Some(at.to_string()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_in(v, &format!("{at}[{i}]"))),
        Value::Object(fields) => fields.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(here(k))
            } else {
                nul_in(v, &here(k))
            }
        }),
        _ => None,
    }
}

/// A query string, with a value that does not parse reported as a 422
/// naming the parameter (axum's `Query` answers in plain text).
pub struct Params<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for Params<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if let Some((k, _)) = form_urlencoded::parse(query.as_bytes())
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(ApiError::invalid(
                k.into_owned(),
                "text may not contain the NUL character (U+0000)",
            ));
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Params)
            .map_err(|e| {
                let path = e.path().to_string();
                let field = if path == "." { String::new() } else { path };
                ApiError::invalid(field, e.into_inner().to_string())
            })
    }
}

/// `/tenants/{tenant}/changes/{number}/...`
#[derive(serde::Deserialize)]
pub struct ChangePath {
    #[allow(dead_code)]
    pub tenant: String,
    pub number: String,
}

/// `/tenants/{tenant}/<kind>/{name}`
#[derive(serde::Deserialize)]
pub struct NamePath {
    #[allow(dead_code)]
    pub tenant: String,
    pub name: String,
}
