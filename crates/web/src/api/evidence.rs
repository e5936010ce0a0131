//! The evidence export of one tenant and one period, for auditors: JSON,
//! CSV, or a bundle with a manifest of SHA-256 hashes (see `crate::evidence`).

use super::Params;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use changegate_core::authz::Action;
use chrono::{Datelike, NaiveDate};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::evidence::{self, Period};
use crate::tenant::InTenant;

/// The period and the format of an export.
#[derive(Deserialize, IntoParams, Default)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// First day (YYYY-MM-DD, UTC); the first of the current month by default.
    pub from: Option<String>,
    /// Last day, included (YYYY-MM-DD, UTC); today by default.
    pub to: Option<String>,
    /// `json` (default), `csv` or `bundle` (`.tar.gz` with `SHA256SUMS`).
    pub format: Option<String>,
}

fn day(field: &str, text: Option<&str>, default: NaiveDate) -> ApiResult<NaiveDate> {
    match text {
        None | Some("") => Ok(default),
        Some(t) => NaiveDate::parse_from_str(t, "%Y-%m-%d").map_err(|_| {
            ApiError::invalid(
                field,
                format!("{t:?} is not a date; write it as YYYY-MM-DD"),
            )
        }),
    }
}

/// The period a query asks for, defaulting to this month so far.
pub fn period(q: &ExportQuery, today: NaiveDate) -> ApiResult<Period> {
    let first = today.with_day(1).unwrap_or(today);
    Period::new(
        day("from", q.from.as_deref(), first)?,
        day("to", q.to.as_deref(), today)?,
    )
}

/// Every change raised in the period with its approvals, window, tests,
/// implementer, deployments, outcome, releases and review; unauthorized
/// deployments; the seed-003 controls mapped to the records proving them.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/evidence", tag = "audit",
    params(("tenant" = String, Path), ExportQuery),
    responses((status = 200, body = crate::evidence::Evidence, description = "JSON; text/csv or application/gzip by `format`"),
              (status = 422, body = crate::error::ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    t: InTenant,
    Params(q): Params<ExportQuery>,
) -> ApiResult<Response> {
    t.authorize(Action::Read)?;
    let now = state.now();
    let period = period(&q, now.date_naive())?;
    let format = q.format.as_deref().unwrap_or("json");
    if !matches!(format, "json" | "csv" | "bundle") {
        return Err(ApiError::invalid("format", "use json, csv or bundle"));
    }
    if format == "bundle" {
        let gz = evidence::export_bundle(state.store.as_ref(), &t.tenant, period, now).await?;
        let name = evidence::write::folder(t.tenant.slug.as_str(), period.from, period.to);
        // Streamed from its temporary file: never in memory whole.
        let length = gz.len.to_string();
        let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
            tokio::fs::File::from_std(gz.file),
            1 << 16,
        ));
        return Ok((
            [
                (header::CONTENT_TYPE, "application/gzip".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}.tar.gz\""),
                ),
                (header::CONTENT_LENGTH, length),
            ],
            body,
        )
            .into_response());
    }
    let e = evidence::gather(state.store.as_ref(), &t.tenant, period, now)
        .await?
        .evidence;
    Ok(match format {
        "csv" => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"{}.csv\"",
                        evidence::write::folder(&e.tenant, e.from, e.to)
                    ),
                ),
            ],
            evidence::csv(&e)?,
        )
            .into_response(),
        _ => axum::Json(e).into_response(),
    })
}
