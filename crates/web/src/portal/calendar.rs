//! The calendar pages: month, week and agenda views of one tenant
//! (`/t/{t}/calendar`) or of every tenant the viewer sees (`/calendar`),
//! with windows, blackouts, changes (conflicts flagged) and releases, in
//! each tenant's time zone or one the viewer picks; and the tenant's
//! iCalendar feeds.

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use changegate_core::authz::Action;
use changegate_store::Tenant;
use chrono::{DateTime, Datelike, NaiveDate, TimeDelta};
use chrono_tz::Tz;
use serde::Deserialize;

use super::pages::{Nav, in_tenant, nav, render};
use super::{PageError, PageResult, Viewer};
use crate::AppState;
use crate::calendar::{self, Entry};
use crate::error::ApiError;

#[derive(Deserialize, Default)]
pub struct CalendarQuery {
    /// `month` (default), `week` or `agenda`.
    #[serde(default)]
    view: String,
    /// A day in the period shown (YYYY-MM-DD); today by default.
    #[serde(default)]
    date: String,
    /// `tenant` (each entry in its tenant's zone, the default) or an IANA zone.
    #[serde(default)]
    tz: String,
}

pub struct Item {
    pub time: String,
    pub title: String,
    pub kind: &'static str,
    pub tenant: String,
    pub link: Option<String>,
    pub conflicts: Vec<String>,
}

pub struct Day {
    pub date: NaiveDate,
    pub label: String,
    /// In the month (or week) shown.
    pub inside: bool,
    pub items: Vec<Item>,
}

pub struct Feed {
    pub id: i64,
    pub name: String,
    pub created_by: String,
    pub revoked: bool,
}

#[derive(Template)]
#[template(path = "calendar.html")]
struct CalendarPage {
    viewer: Option<Nav>,
    /// The tenant, or none for every tenant's calendar.
    tenant: Option<String>,
    base: String,
    view: String,
    title: String,
    zone: String,
    tz: String,
    previous: String,
    next: String,
    /// Rows of seven days (month, week), or the days that have entries (agenda).
    weeks: Vec<Vec<Day>>,
    agenda: Vec<Day>,
    feeds: Vec<Feed>,
    csrf: String,
    /// A feed just made: its address, shown this once.
    created: Option<String>,
    problem: Option<String>,
}

struct Frame {
    view: &'static str,
    first: NaiveDate,
    /// The day after the last.
    end: NaiveDate,
    title: String,
    previous: NaiveDate,
    next: NaiveDate,
}

fn frame(view: &str, day: NaiveDate) -> PageResult<Frame> {
    let monday = |d: NaiveDate| d - TimeDelta::days(i64::from(d.weekday().num_days_from_monday()));
    Ok(match view {
        "" | "month" => {
            let first = day.with_day(1).unwrap_or(day);
            let next_month = (first + TimeDelta::days(32)).with_day(1).unwrap_or(first);
            Frame {
                view: "month",
                first: monday(first),
                end: monday(next_month - TimeDelta::days(1)) + TimeDelta::days(7),
                title: first.format("%B %Y").to_string(),
                previous: (first - TimeDelta::days(1)).with_day(1).unwrap_or(first),
                next: next_month,
            }
        }
        "week" => {
            let first = monday(day);
            Frame {
                view: "week",
                first,
                end: first + TimeDelta::days(7),
                title: format!("Week of {}", first.format("%a %Y-%m-%d")),
                previous: first - TimeDelta::days(7),
                next: first + TimeDelta::days(7),
            }
        }
        "agenda" => Frame {
            view: "agenda",
            first: day,
            end: day + TimeDelta::days(31),
            title: format!("31 days from {}", day.format("%a %Y-%m-%d")),
            previous: day - TimeDelta::days(31),
            next: day + TimeDelta::days(31),
        },
        other => {
            return Err(PageError(ApiError::invalid(
                "view",
                format!("{other:?} is not a view; use month, week or agenda"),
            )));
        }
    })
}

fn zone_of(text: &str) -> PageResult<Option<Tz>> {
    match text {
        "" | "tenant" => Ok(None),
        name => name.parse::<Tz>().map(Some).map_err(|_| {
            PageError(ApiError::invalid(
                "tz",
                format!("{name:?} is not an IANA time zone, e.g. Europe/Berlin"),
            ))
        }),
    }
}

async fn page(
    state: &AppState,
    viewer: &Viewer,
    tenants: &[Tenant],
    one: Option<&Tenant>,
    q: CalendarQuery,
    notice: (Option<String>, Option<String>),
) -> PageResult<Response> {
    let today = state.now().date_naive();
    let day = if q.date.is_empty() {
        today
    } else {
        NaiveDate::parse_from_str(&q.date, "%Y-%m-%d").map_err(|_| {
            PageError(ApiError::invalid(
                "date",
                format!("{:?} is not a date; write it as YYYY-MM-DD", q.date),
            ))
        })?
    };
    let f = frame(&q.view, day)?;
    let chosen = zone_of(&q.tz)?;
    let at = |d: NaiveDate| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    // A day of margin either side: local days start up to 14 h off UTC.
    let entries = calendar::entries(
        state,
        tenants,
        at(f.first) - TimeDelta::days(1),
        at(f.end) + TimeDelta::days(1),
    )
    .await?;
    let zone_for = |e: &Entry| -> Tz {
        chosen.unwrap_or_else(|| {
            tenants
                .iter()
                .find(|t| t.slug.as_str() == e.tenant)
                .and_then(|t| t.time_zone.parse().ok())
                .unwrap_or(Tz::UTC)
        })
    };
    let mut days: Vec<Day> = Vec::new();
    let mut d = f.first;
    let month = day.with_day(1).unwrap_or(day).month();
    while d < f.end {
        days.push(Day {
            date: d,
            label: d.format("%a %d").to_string(),
            inside: f.view != "month" || d.month() == month,
            items: Vec::new(),
        });
        d += TimeDelta::days(1);
    }
    for e in &entries {
        let tz = zone_for(e);
        let local: DateTime<Tz> = e.start.with_timezone(&tz);
        let Some(slot) = days.iter_mut().find(|x| x.date == local.date_naive()) else {
            continue;
        };
        let end = e.end.with_timezone(&tz);
        slot.items.push(Item {
            time: format!(
                "{}–{} {}",
                local.format("%H:%M"),
                end.format("%H:%M"),
                local.format("%Z")
            ),
            title: e.title.clone(),
            kind: e.kind.as_str(),
            tenant: e.tenant.clone(),
            link: e.link.clone(),
            conflicts: e.conflicts.clone(),
        });
    }
    let (weeks, agenda) = if f.view == "agenda" {
        (
            Vec::new(),
            days.into_iter().filter(|d| !d.items.is_empty()).collect(),
        )
    } else {
        let mut weeks = Vec::new();
        let mut it = days.into_iter().peekable();
        while it.peek().is_some() {
            weeks.push(it.by_ref().take(7).collect());
        }
        (weeks, Vec::new())
    };
    let feeds = match one {
        Some(t) => {
            let all = state.store.feeds(t.id).await?;
            let emails =
                crate::workflow::Emails::load(state.store.as_ref(), all.iter().map(|f| f.user))
                    .await?;
            all.into_iter()
                .map(|f| Feed {
                    id: f.id,
                    name: f.name,
                    created_by: emails.of(f.user),
                    revoked: f.revoked_at.is_some(),
                })
                .collect()
        }
        None => Vec::new(),
    };
    let nav = nav(state, viewer).await?;
    let page = CalendarPage {
        csrf: nav.csrf.clone(),
        viewer: Some(nav),
        tenant: one.map(|t| t.slug.to_string()),
        base: match one {
            Some(t) => format!("/t/{}/calendar", t.slug),
            None => "/calendar".into(),
        },
        view: f.view.into(),
        title: f.title,
        zone: match chosen {
            Some(tz) => tz.name().to_string(),
            None => "each tenant's time zone".into(),
        },
        tz: if q.tz.is_empty() {
            "tenant".into()
        } else {
            q.tz
        },
        previous: f.previous.to_string(),
        next: f.next.to_string(),
        weeks,
        agenda,
        feeds,
        created: notice.0,
        problem: notice.1,
    };
    Ok(render(&page))
}

/// One tenant's calendar, with its feeds.
pub async fn tenant(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    Query(q): Query<CalendarQuery>,
) -> PageResult<Response> {
    let t = in_tenant(&state, &viewer, &slug).await?;
    t.authorize(Action::Read)?;
    let tenant = t.tenant.clone();
    page(
        &state,
        &viewer,
        std::slice::from_ref(&tenant),
        Some(&tenant),
        q,
        (None, None),
    )
    .await
}

/// Every tenant the viewer sees, in one calendar.
pub async fn all(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<CalendarQuery>,
) -> PageResult<Response> {
    let tenants = state
        .store
        .tenants(viewer.principal.visible_tenants().as_ref())
        .await?;
    page(&state, &viewer, &tenants, None, q, (None, None)).await
}

#[derive(Deserialize)]
pub struct FeedForm {
    csrf: String,
    #[serde(default)]
    name: String,
}

/// Make a feed through the API's handler; the page shows its address once.
pub async fn create_feed(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    Form(form): Form<FeedForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let t = in_tenant(&state, &viewer, &slug).await?;
    let tenant = t.tenant.clone();
    let outcome = crate::api::calendar::create_feed(
        State(state.clone()),
        t,
        crate::api::Body(crate::api::calendar::NewFeedBody { name: form.name }),
    )
    .await;
    let (status, notice) = match outcome {
        Ok((_, made)) => (StatusCode::OK, (made.0.url, None)),
        Err(e) => (e.status, (None, Some(e.message))),
    };
    let mut response = page(
        &state,
        &viewer,
        std::slice::from_ref(&tenant),
        Some(&tenant),
        CalendarQuery::default(),
        notice,
    )
    .await?;
    *response.status_mut() = status;
    Ok(response)
}

#[derive(Deserialize)]
pub struct RevokeForm {
    csrf: String,
}

/// Revoke a feed through the API's handler (its maker, or a tenant admin).
pub async fn revoke_feed(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((slug, id)): Path<(String, String)>,
    Form(form): Form<RevokeForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let t = in_tenant(&state, &viewer, &slug).await?;
    crate::api::calendar::revoke_feed(
        State(state.clone()),
        t,
        Path(crate::api::calendar::FeedPath {
            tenant: slug.clone(),
            id,
        }),
    )
    .await?;
    Ok(Redirect::to(&format!("/t/{slug}/calendar")).into_response())
}
