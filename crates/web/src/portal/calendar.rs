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
    /// Part of an entry over several days (drawn shaded on each).
    pub spans: bool,
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
    // An entry shows on every day it covers: a 43-day freeze is drawn
    // across all of them, not as one entry on its first day.
    for e in &entries {
        let tz = zone_for(e);
        let local: DateTime<Tz> = e.start.with_timezone(&tz);
        let end = e.end.with_timezone(&tz);
        for slot in days.iter_mut() {
            let Some((time, spans)) = on_day(local.naive_local(), end.naive_local(), slot.date)
            else {
                continue;
            };
            slot.items.push(Item {
                time: format!("{time} {}", local.format("%Z")),
                spans,
                title: e.title.clone(),
                kind: e.kind.as_str(),
                tenant: e.tenant.clone(),
                link: e.link.clone(),
                conflicts: e.conflicts.clone(),
            });
        }
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

/// How an entry from `start` to `end` (local wall-clock times) shows on
/// `day`: its hours, and whether it is part of an entry over several
/// days; `None` when it does not touch that day.
fn on_day(
    start: chrono::NaiveDateTime,
    end: chrono::NaiveDateTime,
    day: NaiveDate,
) -> Option<(String, bool)> {
    let from = day.and_hms_opt(0, 0, 0)?;
    let to = from + TimeDelta::days(1);
    let touches = if start == end {
        from <= start && start < to
    } else {
        start < to && end > from
    };
    if !touches {
        return None;
    }
    let hour = |t: chrono::NaiveDateTime| {
        if t == to {
            "24:00".to_string()
        } else {
            t.format("%H:%M").to_string()
        }
    };
    Some(match (start >= from, end <= to) {
        (true, true) => (format!("{}–{}", start.format("%H:%M"), hour(end)), false),
        (true, false) => (format!("from {}", start.format("%H:%M")), true),
        (false, true) => (format!("until {}", hour(end)), true),
        (false, false) => ("all day".to_string(), true),
    })
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

#[cfg(test)]
mod tests {
    use super::on_day;
    use chrono::NaiveDate;

    fn at(d: u32, h: u32) -> chrono::NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 12, d)
            .and_then(|d| d.and_hms_opt(h, 0, 0))
            .expect("a time")
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, d).expect("a day")
    }

    #[test]
    fn an_entry_over_several_days_shows_on_each_of_them() {
        // A freeze from the 18th 00:00 to the 21st 00:00.
        let (s, e) = (at(18, 0), at(21, 0));
        assert_eq!(on_day(s, e, day(17)), None);
        assert_eq!(on_day(s, e, day(18)), Some(("from 00:00".into(), true)));
        assert_eq!(on_day(s, e, day(19)), Some(("all day".into(), true)));
        assert_eq!(on_day(s, e, day(20)), Some(("until 24:00".into(), true)));
        assert_eq!(on_day(s, e, day(21)), None, "it ends as the 21st begins");
        // Within one day, as before.
        assert_eq!(
            on_day(at(5, 2), at(5, 6), day(5)),
            Some(("02:00–06:00".into(), false))
        );
        // A moment (a change with no end) on its day only.
        assert_eq!(
            on_day(at(5, 10), at(5, 10), day(5)),
            Some(("10:00–10:00".into(), false))
        );
        assert_eq!(on_day(at(5, 10), at(5, 10), day(6)), None);
        // Over midnight: on both days.
        assert_eq!(
            on_day(at(5, 22), at(6, 2), day(5)),
            Some(("from 22:00".into(), true))
        );
        assert_eq!(
            on_day(at(5, 22), at(6, 2), day(6)),
            Some(("until 02:00".into(), true))
        );
    }
}
