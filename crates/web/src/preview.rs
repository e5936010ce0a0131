//! What the change form shows before a change is submitted: the risk its
//! answers give, the approvers it will need by name, the windows and
//! blackouts around its slot, the other changes booked on its
//! configuration items in that slot, and the earliest slot the windows
//! and those bookings allow. Nothing is written.

use changegate_core::change::ChangeType;
use changegate_core::slot::{self, Booking, Rules};
use changegate_core::window::{CompiledWindow, WindowKind};
use changegate_core::{TenantId, UserId};
use changegate_store::{ChangeContent, Store, Tenant};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiResult;
use crate::schedule;
use crate::workflow;

/// A slot asked for without a planned end lasts this long.
pub const DEFAULT_SLOT: TimeDelta = TimeDelta::hours(1);

#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    /// The risk the answers (or a standard change's template) give.
    pub risk: Option<RiskView>,
    /// The boards submission would ask, with who sits on each.
    pub approvers: Vec<BoardNeed>,
    /// What stops the change from being submitted as it stands.
    pub problems: Vec<String>,
    /// The tenant's windows and blackouts, each with its next opening
    /// from the planned start (or from now).
    pub windows: Vec<WindowNote>,
    /// The planned slot, with what is wrong with it.
    pub slot: Option<SlotNote>,
    /// Other changes on the same configuration items whose slots
    /// overlap the planned one.
    pub others: Vec<OtherChange>,
    /// The earliest start from now of a slot as long as the planned one
    /// (an hour without one) that the windows and bookings allow.
    pub earliest: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RiskView {
    pub level: String,
    pub score: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BoardNeed {
    pub board: String,
    /// How many must approve: `all`, `any`, `majority` or `quorum N`.
    pub rule: String,
    /// Its members who may approve this change, as `Name <address>`.
    pub people: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WindowNote {
    pub name: String,
    /// `maintenance` or `blackout`.
    pub kind: String,
    pub time_zone: String,
    /// The occurrence holding the moment looked from, or the next one.
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SlotNote {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Empty when the windows allow the slot and nothing clashes.
    pub problems: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OtherChange {
    pub number: String,
    pub state: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub configuration_items: Vec<String>,
}

/// The preview of a change of `kind` with `content`, raised by `requester`.
pub async fn preview(
    state: &AppState,
    tenant: &Tenant,
    kind: ChangeType,
    content: &ChangeContent,
    requester: UserId,
    implementer: Option<UserId>,
) -> ApiResult<Preview> {
    let store = state.store.as_ref();
    let now = state.now();
    let mut problems = Vec::new();
    let (risk, approvers, requires_window) = match crate::app::assess::assess(
        store,
        tenant.id,
        kind,
        content,
        crate::app::assess::Authors {
            requester,
            editor: None,
            implementer,
        },
        now.date_naive(),
    )
    .await
    {
        Ok(a) => {
            let names = names(store, tenant.id).await?;
            let approvers = a
                .plan
                .boards
                .iter()
                .map(|b| BoardNeed {
                    board: b.name.clone(),
                    rule: b.rule.to_string(),
                    people: b.members.iter().map(|m| names.label(*m)).collect(),
                })
                .collect();
            let risk = RiskView {
                level: a.level.as_str().to_string(),
                score: a.score,
            };
            (
                Some(risk),
                approvers,
                a.policy.window_required.contains(&kind),
            )
        }
        Err(e) => {
            problems.push(e.message);
            let (_, policy) = workflow::policy(store, tenant.id).await?;
            (None, Vec::new(), policy.window_required.contains(&kind))
        }
    };
    if content.title.trim().is_empty() {
        problems.push("give the change a title".into());
    }

    let windows = workflow::windows(store, tenant.id).await?;
    let (bookings, states) = bookings(state, tenant).await?;
    let rules = Rules {
        windows: &windows,
        tenant: tenant.slug.as_str(),
        kind,
        requires_window,
    };
    let items = &content.configuration_items;
    let from = content.planned_start.unwrap_or(now);
    let planned = content
        .planned_start
        .map(|start| (start, content.planned_end.unwrap_or(start + DEFAULT_SLOT)));
    // Where the implementer is booked in the planned slot, in any tenant.
    let (busy, implementer_item, implementer_name) = match (implementer, planned) {
        (Some(u), Some((start, end))) => (
            implementer_bookings(state, tenant, u, start, end).await?,
            Some(format!("implementer:{}", u.0)),
            store.user(u).await?.email.to_string(),
        ),
        _ => (Vec::new(), None, String::new()),
    };
    let slot = planned.map(|(start, end)| {
        let mut problems: Vec<String> = slot::check(&rules, items, start, end, &bookings)
            .iter()
            .map(ToString::to_string)
            .collect();
        if let Some(item) = &implementer_item {
            for (b, _) in slot::clashes(std::slice::from_ref(item), start, end, &busy) {
                problems.push(format!(
                    "{implementer_name} is booked on {} in the same slot",
                    b.number
                ));
            }
        }
        SlotNote {
            start,
            end,
            problems,
        }
    });
    let others = match &slot {
        Some(s) => slot::clashes(items, s.start, s.end, &bookings)
            .into_iter()
            .map(|(b, _)| OtherChange {
                number: b.number.clone(),
                state: states.get(&b.number).cloned().unwrap_or_default(),
                start: b.start,
                end: b.end,
                configuration_items: b.configuration_items.clone(),
            })
            .collect(),
        None => Vec::new(),
    };
    let length = slot.as_ref().map_or(DEFAULT_SLOT, |s| s.end - s.start);
    // The earliest slot also leaves the implementer free.
    let earliest = match implementer {
        Some(u) => {
            let items: Vec<String> = items
                .iter()
                .cloned()
                .chain([format!("implementer:{}", u.0)])
                .collect();
            schedule::earliest_with_people(
                state,
                std::slice::from_ref(&rules),
                &items,
                length,
                bookings,
                &[u].into(),
                Default::default(),
            )
            .await?
        }
        None => slot::earliest(&rules, items, now, length, &bookings),
    };
    Ok(Preview {
        risk,
        approvers,
        problems,
        windows: window_notes(&windows, tenant.slug.as_str(), from),
        slot,
        others,
        earliest,
    })
}

/// The tenant's changes in flight that hold a planned slot, and the state
/// of each by number.
async fn bookings(
    state: &AppState,
    tenant: &Tenant,
) -> ApiResult<(Vec<Booking>, HashMap<String, String>)> {
    let snapshot = state.snapshots.of(state, tenant).await?;
    let mut bookings = Vec::new();
    let mut states = HashMap::new();
    for c in &snapshot.changes {
        let Some(start) = c.planned_start else {
            continue;
        };
        let number = c.number.to_string();
        states.insert(number.clone(), c.state.as_str().to_string());
        bookings.push(Booking {
            number,
            configuration_items: c.configuration_items.clone(),
            start,
            end: c.planned_end.unwrap_or(start + DEFAULT_SLOT),
        });
    }
    Ok((bookings, states))
}

/// Where `user` is booked over `[from, to)`, in any tenant: a change of
/// `tenant` by its number, another client's only by when it starts.
async fn implementer_bookings(
    state: &AppState,
    tenant: &Tenant,
    user: UserId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ApiResult<Vec<Booking>> {
    Ok(
        schedule::implementer_bookings(state, user, from, to, &Default::default())
            .await?
            .into_iter()
            .map(|(t, _, mut b)| {
                if t != tenant.id {
                    b.number = schedule::hidden_booking(b.start);
                }
                b
            })
            .collect(),
    )
}

fn window_notes(
    windows: &[Arc<CompiledWindow>],
    tenant: &str,
    from: DateTime<Utc>,
) -> Vec<WindowNote> {
    windows
        .iter()
        .filter(|w| w.applies_to(tenant))
        .map(|w| {
            let next = w.current(from).or_else(|| w.next_window(from));
            WindowNote {
                name: w.name().to_string(),
                kind: match w.kind() {
                    WindowKind::Maintenance => "maintenance",
                    WindowKind::Blackout => "blackout",
                }
                .into(),
                time_zone: w.time_zone().to_string(),
                start: next.map(|i| i.start),
                end: next.map(|i| i.end),
            }
        })
        .collect()
}

/// People of the tenant as `Name <address>`.
struct Names(std::collections::BTreeMap<UserId, String>);

impl Names {
    fn label(&self, id: UserId) -> String {
        self.0
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("user-{id}"))
    }
}

async fn names(store: &dyn Store, tenant: TenantId) -> ApiResult<Names> {
    Ok(Names(
        store
            .users_in_tenant(tenant)
            .await?
            .into_iter()
            .map(|(u, _)| {
                let label = if u.name.trim().is_empty() {
                    u.email.to_string()
                } else {
                    format!("{} <{}>", u.name, u.email)
                };
                (u.id, label)
            })
            .collect(),
    ))
}
