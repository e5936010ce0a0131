//! The calendar of a tenant as JSON, and its iCalendar feeds: made by one
//! of the tenant's people, reached by a revocable token in the URL (a
//! calendar client sends no other credential), shown only while their
//! maker may still read the tenant.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use changegate_core::authz::{self, Action};
use changegate_store::StoreError;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Body, Params};
use crate::AppState;
use crate::auth::{new_token, token_hash};
use crate::calendar::{self, Entry};
use crate::error::{ApiError, ApiResult};
use crate::tenant::InTenant;

/// The longest stretch one read covers.
const MAX_SPAN: TimeDelta = TimeDelta::days(400);

#[derive(Deserialize, IntoParams, Default)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// First day (YYYY-MM-DD, UTC); today by default.
    pub from: Option<String>,
    /// Day after the last (YYYY-MM-DD); 31 days after `from` by default.
    pub to: Option<String>,
}

/// `[from, to)` of a query, at most 400 days.
pub fn range(
    from: Option<&str>,
    to: Option<&str>,
    today: NaiveDate,
) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
    let day = |field: &str, text: Option<&str>, default: NaiveDate| match text {
        None | Some("") => Ok(default),
        Some(t) => NaiveDate::parse_from_str(t, "%Y-%m-%d").map_err(|_| {
            ApiError::invalid(
                field,
                format!("{t:?} is not a date; write it as YYYY-MM-DD"),
            )
        }),
    };
    let from = day("from", from, today)?;
    let to = day("to", to, from + TimeDelta::days(31))?;
    let (start, end) = (
        from.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
        to.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
    );
    if end <= start {
        return Err(ApiError::invalid("to", "the range ends before it starts"));
    }
    if end - start > MAX_SPAN {
        return Err(ApiError::invalid(
            "to",
            "ask for at most 400 days at a time",
        ));
    }
    Ok((start, end))
}

/// Windows, blackouts, planned changes with their conflicts, and releases.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/calendar", tag = "calendar",
    params(("tenant" = String, Path), RangeQuery), responses((status = 200, body = [Entry])))]
pub async fn show(
    State(state): State<AppState>,
    t: InTenant,
    Params(q): Params<RangeQuery>,
) -> ApiResult<Json<Vec<Entry>>> {
    t.authorize(Action::Read)?;
    let (from, to) = range(q.from.as_deref(), q.to.as_deref(), state.now().date_naive())?;
    Ok(Json(
        calendar::entries(&state, std::slice::from_ref(&t.tenant), from, to).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFeedBody {
    /// Where it is used, e.g. "team calendar".
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct FeedView {
    pub id: i64,
    pub name: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Only when it is made: the feed's address, with its token.
    pub url: Option<String>,
}

/// A new feed of the tenant's calendar; its URL (shown once) is the credential.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/calendar-feeds", tag = "calendar",
    params(("tenant" = String, Path)), request_body = NewFeedBody, responses((status = 201, body = FeedView)))]
pub async fn create_feed(
    State(state): State<AppState>,
    t: InTenant,
    Body(body): Body<NewFeedBody>,
) -> ApiResult<(StatusCode, Json<FeedView>)> {
    t.authorize(Action::Read)?;
    let name = body.name.trim();
    if name.is_empty() {
        return Err(ApiError::invalid(
            "name",
            "name the feed after where it is used, e.g. team calendar",
        ));
    }
    let (token, hash) = new_token();
    let feed = state
        .store
        .create_feed(
            t.tenant.id,
            t.caller.user,
            name,
            &hash,
            &t.actor(),
            state.now(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(FeedView {
            id: feed.id,
            name: feed.name,
            created_by: t.actor(),
            created_at: feed.created_at,
            revoked_at: None,
            url: Some(format!(
                "{}/feeds/{token}.ics",
                state.public_url.trim_end_matches('/')
            )),
        }),
    ))
}

/// The tenant's feeds (without their tokens).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/calendar-feeds", tag = "calendar",
    params(("tenant" = String, Path)), responses((status = 200, body = [FeedView])))]
pub async fn feeds(State(state): State<AppState>, t: InTenant) -> ApiResult<Json<Vec<FeedView>>> {
    t.authorize(Action::Read)?;
    let feeds = state.store.feeds(t.tenant.id).await?;
    let emails =
        crate::workflow::Emails::load(state.store.as_ref(), feeds.iter().map(|f| f.user)).await?;
    Ok(Json(
        feeds
            .into_iter()
            .map(|f| FeedView {
                id: f.id,
                name: f.name,
                created_by: emails.of(f.user),
                created_at: f.created_at,
                revoked_at: f.revoked_at,
                url: None,
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
pub struct FeedPath {
    #[allow(dead_code)]
    pub tenant: String,
    /// A feed's number; anything else finds no feed.
    pub id: String,
}

/// Revoke a feed: its maker, or a tenant admin. The URL stops working at once.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/calendar-feeds/{id}", tag = "calendar",
    params(("tenant" = String, Path), ("id" = i64, Path)), responses((status = 204)))]
pub async fn revoke_feed(
    State(state): State<AppState>,
    t: InTenant,
    Path(p): Path<FeedPath>,
) -> ApiResult<StatusCode> {
    t.authorize(Action::Read)?;
    let id: i64 =
        p.id.parse()
            .map_err(|_| ApiError::not_found("calendar feed"))?;
    let feed = state
        .store
        .feeds(t.tenant.id)
        .await?
        .into_iter()
        .find(|f| f.id == id)
        .ok_or_else(|| ApiError::not_found("calendar feed"))?;
    if feed.user != t.caller.user && t.authorize(Action::AdministerTenant).is_err() {
        return Err(ApiError::forbidden(
            "only the feed's maker or a tenant admin revokes it",
        ));
    }
    if feed.revoked_at.is_some() {
        return Err(ApiError::state(format!(
            "feed {} is already revoked",
            feed.id
        )));
    }
    state
        .store
        .revoke_feed(t.tenant.id, feed.id, &t.actor(), state.now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /feeds/{token}.ics`: the tenant's calendar from 30 days ago to a
/// year ahead. An unknown or revoked token, or one whose maker may no
/// longer read the tenant, finds nothing.
pub async fn feed(State(state): State<AppState>, Path(file): Path<String>) -> ApiResult<Response> {
    let token = file.strip_suffix(".ics").unwrap_or(&file);
    let gone = || ApiError::not_found("calendar feed");
    let feed = match state.store.feed_by_token(&token_hash(token)).await {
        Ok(f) => f,
        Err(StoreError::NotFound { .. }) => return Err(gone()),
        Err(e) => return Err(e.into()),
    };
    let maker = state.store.user(feed.user).await?;
    let roles = state.store.roles_of(feed.user).await?;
    let principal = authz::Principal {
        user: maker.id,
        email: maker.email.clone(),
        name: maker.name.clone(),
        kind: maker.kind,
        admin: maker.admin,
        roles,
    };
    if authz::authorize(&principal, feed.tenant, Action::Read).is_err() {
        return Err(gone());
    }
    let tenant = state.store.tenant(feed.tenant).await?;
    let now = state.now();
    let entries = calendar::entries(
        &state,
        std::slice::from_ref(&tenant),
        now - TimeDelta::days(30),
        now + TimeDelta::days(365),
    )
    .await?;
    let name = format!("changegate: {} ({})", tenant.name, feed.name);
    Ok((
        [(header::CONTENT_TYPE, "text/calendar; charset=utf-8")],
        calendar::ics(&name, &entries, &state.public_url, now),
    )
        .into_response())
}
