//! The change calendar (DESIGN §8): for tenants and a stretch of time,
//! their maintenance windows and blackouts (every occurrence, computed in
//! each window's own time zone, so daylight saving moves nothing), their
//! planned changes with what conflicts with each, and their releases.
//! [`entries`] reads; [`ics`] writes an iCalendar feed (times in UTC,
//! which every client shows in its own zone).

use changegate_core::change::ChangeState;
use changegate_core::release::ReleaseState;
use changegate_core::slot::{self, Booking, Rules};
use changegate_core::window::WindowKind;
use changegate_store::{Change, Tenant};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use std::collections::BTreeSet;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiResult;
use crate::workflow;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    Window,
    Blackout,
    Change,
    Release,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Window => "window",
            EntryKind::Blackout => "blackout",
            EntryKind::Change => "change",
            EntryKind::Release => "release",
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Entry {
    /// Stable across reads: `window/<tenant>/<name>/<start>`, `change/CHG-7`, ...
    pub uid: String,
    pub tenant: String,
    pub kind: EntryKind,
    pub title: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// A change's or release's state.
    pub state: Option<String>,
    /// Where the portal shows it.
    pub link: Option<String>,
    /// What is wrong with a change's slot: windows, blackouts, other changes
    /// on its configuration items.
    pub conflicts: Vec<String>,
}

/// A slot without an end lasts an hour.
const DEFAULT_LENGTH: TimeDelta = TimeDelta::hours(1);

/// Changes that no longer take a slot.
fn off_calendar(s: ChangeState) -> bool {
    matches!(
        s,
        ChangeState::Draft | ChangeState::Rejected | ChangeState::Cancelled | ChangeState::Expired
    )
}

/// The calendar of `tenants` over `[from, to)`, by start.
pub async fn entries(
    state: &AppState,
    tenants: &[Tenant],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ApiResult<Vec<Entry>> {
    let store = state.store.as_ref();
    let mut out = Vec::new();
    for t in tenants {
        let slug = t.slug.as_str();
        // Prepared as far as a conflict's next opening is looked for.
        let windows = workflow::windows_prepared(
            store,
            t.id,
            from - TimeDelta::days(2),
            to + TimeDelta::days(64),
        )
        .await?;
        for w in windows.iter().filter(|w| w.applies_to(slug)) {
            let kind = match w.kind() {
                WindowKind::Blackout => EntryKind::Blackout,
                _ => EntryKind::Window,
            };
            for i in w.windows_between(from, to) {
                out.push(Entry {
                    uid: format!(
                        "{}/{slug}/{}/{}",
                        kind.as_str(),
                        w.name(),
                        i.start.timestamp()
                    ),
                    tenant: slug.to_string(),
                    kind,
                    title: match kind {
                        EntryKind::Blackout => format!("Blackout {}", w.name()),
                        _ => format!("Window {}", w.name()),
                    },
                    start: i.start,
                    end: i.end,
                    state: None,
                    link: None,
                    conflicts: Vec::new(),
                });
            }
        }
        // Changes a day either side, so clashes at the edges are seen.
        let changes: Vec<Change> = store
            .changes_planned_between(t.id, from - TimeDelta::days(1), to + TimeDelta::days(1))
            .await?
            .into_iter()
            .filter(|c| !off_calendar(c.state))
            .collect();
        let (_, policy) = workflow::policy(store, t.id).await?;
        let bookings: Vec<Booking> = changes
            .iter()
            .filter(|c| !c.state.is_final())
            .filter_map(|c| {
                let start = c.content.planned_start?;
                Some(Booking {
                    number: c.number.to_string(),
                    configuration_items: c.content.configuration_items.clone(),
                    start,
                    end: c.content.planned_end.unwrap_or(start + DEFAULT_LENGTH),
                })
            })
            .collect();
        for c in &changes {
            let Some(start) = c.content.planned_start else {
                continue;
            };
            let end = c.content.planned_end.unwrap_or(start + DEFAULT_LENGTH);
            if end < from || start >= to {
                continue;
            }
            // Conflicts concern what is still to happen.
            let conflicts = if c.state.is_approved()
                || c.state == ChangeState::AwaitingApproval
                || c.state == ChangeState::Submitted
            {
                let rules = Rules {
                    windows: &windows,
                    tenant: slug,
                    kind: c.kind,
                    requires_window: policy.window_required.contains(&c.kind),
                };
                let own = c.number.to_string();
                slot::check(
                    &rules,
                    &c.content.configuration_items,
                    start,
                    end,
                    &bookings,
                )
                .into_iter()
                .filter(|p| !matches!(p, slot::Problem::Clash { number, .. } if *number == own))
                .map(|p| p.to_string())
                .collect()
            } else {
                Vec::new()
            };
            out.push(Entry {
                uid: format!("change/{}", c.number),
                tenant: slug.to_string(),
                kind: EntryKind::Change,
                title: format!("{} {}", c.number, c.content.title),
                start,
                end,
                state: Some(c.state.to_string()),
                link: Some(format!("/t/{slug}/changes/{}", c.number)),
                conflicts,
            });
        }
    }
    let ids: BTreeSet<_> = tenants.iter().map(|t| t.id).collect();
    for r in state.store.releases(Some(&ids), 500).await? {
        let (Some(start), Some(end)) = (r.planned_start, r.planned_end) else {
            continue;
        };
        if end < from || start >= to || r.state == ReleaseState::Cancelled {
            continue;
        }
        // One entry per tenant of the caller's, naming only their part.
        for t in tenants
            .iter()
            .filter(|t| r.changes.iter().any(|i| i.tenant == t.id))
        {
            let mine: Vec<String> = r
                .changes
                .iter()
                .filter(|i| i.tenant == t.id)
                .map(|i| i.change.to_string())
                .collect();
            out.push(Entry {
                uid: format!("release/{}/{}", r.number, t.slug),
                tenant: t.slug.to_string(),
                kind: EntryKind::Release,
                title: format!("{} {} ({})", r.number, r.name, mine.join(", ")),
                start,
                end,
                state: Some(r.state.to_string()),
                link: Some(format!("/releases/{}", r.number)),
                conflicts: Vec::new(),
            });
        }
    }
    out.sort_by(|a, b| (a.start, a.kind, &a.uid).cmp(&(b.start, b.kind, &b.uid)));
    Ok(out)
}

/// The entries as an iCalendar feed named `name`; `base` is the server's
/// public URL for links.
pub fn ics(name: &str, entries: &[Entry], base: &str, now: DateTime<Utc>) -> String {
    use icalendar::{Calendar, Component, EventLike};
    let mut cal = Calendar::new();
    cal.name(name);
    cal.append_property(icalendar::Property::new(
        "PRODID",
        "-//changegate//calendar feed//EN",
    ));
    for e in entries {
        let mut event = icalendar::Event::new();
        let mut description = format!("{} of {}", e.kind.as_str(), e.tenant);
        if let Some(s) = &e.state {
            description.push_str(&format!(", {s}"));
        }
        for c in &e.conflicts {
            description.push_str(&format!("\nConflict: {c}"));
        }
        event
            .uid(&format!("{}@changegate", e.uid))
            .summary(&e.title)
            .description(&description)
            .starts(e.start)
            .ends(e.end)
            .timestamp(now)
            .add_property("CATEGORIES", e.kind.as_str());
        if let Some(link) = &e.link {
            event.add_property("URL", format!("{}{link}", base.trim_end_matches('/')));
        }
        cal.push(event.done());
    }
    cal.done().to_string()
}
