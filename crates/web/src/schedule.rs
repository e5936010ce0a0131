//! Where a release's slot stands: what its tenants' windows, blackouts
//! and other bookings say about it (conflicts), and the earliest slot
//! every tenant involved allows. Reads the records; the judging is
//! `core::slot`.
//!
//! Bookings of several tenants share one list: configuration items are
//! written `tenant/item`, and the implementer a change names is booked
//! as `implementer:<id>`, so a clash on it is an implementer double-booked.

use changegate_core::change::ChangeState;
use changegate_core::policy::PolicySpec;
use changegate_core::release::Conflict;
use changegate_core::slot::{self, Booking, Problem, Rules};
use changegate_core::window::{CompiledWindow, WindowKind};
use changegate_core::{ChangeNumber, TenantId, UserId};
use changegate_store::{Change, Release, Tenant};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::AppState;
use crate::app::release::Loaded;
use crate::error::ApiResult;

/// A slot's length when none is planned.
pub const DEFAULT_LENGTH: TimeDelta = TimeDelta::hours(1);

/// One tenant of a release: its changes in the release, windows and policy.
pub struct Involved {
    pub tenant: Tenant,
    pub changes: Vec<Change>,
    pub windows: Vec<Arc<CompiledWindow>>,
    pub policy: PolicySpec,
}

/// Each tenant of the release with its changes (in the release's order).
pub async fn involved(state: &AppState, loaded: &Loaded) -> ApiResult<Vec<Involved>> {
    let store = state.store.as_ref();
    let mut out = Vec::new();
    for (id, tenant) in &loaded.tenants {
        let mut changes = Vec::new();
        for item in loaded.release.changes.iter().filter(|i| i.tenant == *id) {
            changes.push(store.change(*id, item.change).await?);
        }
        out.push(Involved {
            tenant: tenant.clone(),
            changes,
            // Prepared once a day and write: a slot search asks the
            // windows thousands of times.
            windows: state
                .snapshots
                .windows_ahead(state, tenant)
                .await?
                .as_ref()
                .clone(),
            policy: state.snapshots.of(state, tenant).await?.policy.clone(),
        });
    }
    Ok(out)
}

fn items(slug: &str, c: &Change) -> Vec<String> {
    c.content
        .configuration_items
        .iter()
        .map(|i| format!("{slug}/{i}"))
        .chain(c.implementer.map(|u| format!("implementer:{}", u.0)))
        .collect()
}

/// The states in which a change with a planned slot books it.
pub(crate) const IN_FLIGHT: [ChangeState; 4] = [
    ChangeState::AwaitingApproval,
    ChangeState::Approved,
    ChangeState::Scheduled,
    ChangeState::Implementing,
];

/// Each booking's number with the tenants it belongs to: a conflict names
/// another tenant's booking only as "another client's booking".
type Owners = BTreeMap<String, BTreeSet<String>>;

/// How another client's booking is named: by when it starts, never by
/// its number.
pub(crate) fn hidden_booking(start: DateTime<Utc>) -> String {
    format!(
        "another client's booking from {}",
        start.format("%Y-%m-%d %H:%M UTC")
    )
}

/// Where `user` is booked over `[from, to)` in every tenant: their changes
/// in flight with a planned slot (not those in `skip`), each a booking of
/// the item `implementer:<id>`, with its tenant and number.
pub(crate) async fn implementer_bookings(
    state: &AppState,
    user: UserId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    skip: &BTreeSet<ChangeNumber>,
) -> ApiResult<Vec<(TenantId, ChangeNumber, Booking)>> {
    let item = format!("implementer:{}", user.0);
    Ok(state
        .store
        .changes_implemented_between(user, from, to)
        .await?
        .into_iter()
        .filter(|c| IN_FLIGHT.contains(&c.state) && !skip.contains(&c.number))
        .filter_map(|c| {
            let start = c.content.planned_start?;
            Some((
                c.tenant,
                c.number,
                Booking {
                    number: c.number.to_string(),
                    configuration_items: vec![item.clone()],
                    start,
                    end: c.content.planned_end.unwrap_or(start + DEFAULT_LENGTH),
                },
            ))
        })
        .collect())
}

/// The implementers `involved`'s changes name.
fn implementers(involved: &[Involved]) -> BTreeSet<UserId> {
    involved
        .iter()
        .flat_map(|inv| inv.changes.iter())
        .filter_map(|c| c.implementer)
        .collect()
}

/// The other releases not yet finished whose slot overlaps `[from, to)`,
/// in every tenant: one of another client may book the same implementer.
async fn other_releases(
    state: &AppState,
    r: &Release,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ApiResult<Vec<Release>> {
    Ok(state
        .store
        .active_releases(None)
        .await?
        .into_iter()
        .filter(|o| o.number != r.number)
        .filter(|o| matches!((o.planned_start, o.planned_end), (Some(s), Some(e)) if s < to && e > from))
        .collect())
}

/// Everything else booked over `[from, to)`: the changes in flight with a
/// planned slot of `r`'s tenants (not those `r` delivers), the changes of
/// any tenant its implementers are named on, and the other releases with
/// a slot that have not finished (booking what their changes hold).
async fn bookings(
    state: &AppState,
    r: &Release,
    involved: &[Involved],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ApiResult<(Vec<Booking>, Owners)> {
    let store = state.store.as_ref();
    let mine: BTreeSet<ChangeNumber> = r.changes.iter().map(|i| i.change).collect();
    let tenants = state.snapshots.tenants(state).await?;
    let slug_of = |t: TenantId| {
        tenants
            .iter()
            .find(|x| x.id == t)
            .map(|x| x.slug.to_string())
            .unwrap_or_default()
    };
    let mut bookings = Vec::new();
    let mut owners = Owners::new();
    let mut known: BTreeMap<ChangeNumber, (String, Change)> = BTreeMap::new();
    let mut planned = Vec::new();
    for inv in involved {
        for c in store
            .changes_planned_between(inv.tenant.id, from, to)
            .await?
        {
            planned.push((inv.tenant.slug.to_string(), c));
        }
    }
    for user in implementers(involved) {
        for c in store.changes_implemented_between(user, from, to).await? {
            planned.push((slug_of(c.tenant), c));
        }
    }
    for (slug, c) in planned {
        if known.contains_key(&c.number) {
            continue;
        }
        if IN_FLIGHT.contains(&c.state)
            && !mine.contains(&c.number)
            && let Some(start) = c.content.planned_start
        {
            owners
                .entry(c.number.to_string())
                .or_default()
                .insert(slug.clone());
            bookings.push(Booking {
                number: c.number.to_string(),
                configuration_items: items(&slug, &c),
                start,
                end: c.content.planned_end.unwrap_or(start + DEFAULT_LENGTH),
            });
        }
        known.insert(c.number, (slug, c));
    }
    for other in other_releases(state, r, from, to).await? {
        let (Some(start), Some(end)) = (other.planned_start, other.planned_end) else {
            continue;
        };
        // Its changes (those planned elsewhere in time were not read above).
        for i in &other.changes {
            if let std::collections::btree_map::Entry::Vacant(slot) = known.entry(i.change) {
                slot.insert((slug_of(i.tenant), store.change(i.tenant, i.change).await?));
            }
        }
        let held = other
            .changes
            .iter()
            .filter_map(|i| known.get(&i.change))
            .flat_map(|(slug, c)| items(slug, c))
            .collect();
        let of = owners.entry(other.number.to_string()).or_default();
        of.extend(
            other
                .changes
                .iter()
                .filter_map(|i| known.get(&i.change))
                .map(|(slug, _)| slug.clone()),
        );
        bookings.push(Booking {
            number: other.number.to_string(),
            configuration_items: held,
            start,
            end,
        });
    }
    Ok((bookings, owners))
}

/// The blackouts of `inv`'s tenant overridden for `r`, and the tenant's
/// windows without them.
fn lift<'a>(r: &'a Release, inv: &Involved) -> (Vec<&'a str>, Vec<Arc<CompiledWindow>>) {
    let prefix = format!("blackout:{}:", inv.tenant.slug);
    let lifted: Vec<&str> = r
        .record
        .overrides
        .iter()
        .filter_map(|o| o.conflict.strip_prefix(&prefix))
        .collect();
    let windows = inv
        .windows
        .iter()
        .filter(|w| !(w.kind() == WindowKind::Blackout && lifted.contains(&w.name())))
        .cloned()
        .collect();
    (lifted, windows)
}

/// What stands in the way of delivering `r` in `[start, end)`, per tenant:
/// closed windows (not overridable: choose another slot), blackouts, other
/// changes or releases on the same configuration items and implementers
/// booked twice (a change manager of the tenant may override these with a
/// reason). A blackout overridden for `r` is left out when the windows
/// are judged, so what it hid (a closed window) still shows.
pub async fn conflicts(
    state: &AppState,
    r: &Release,
    involved: &[Involved],
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
) -> ApiResult<Vec<Conflict>> {
    let (Some(start), Some(end)) = (start, end) else {
        return Ok(involved
            .iter()
            .map(|inv| Conflict {
                key: format!("slot:{}", inv.tenant.slug),
                tenant: inv.tenant.slug.to_string(),
                message: format!("{} has no slot yet: plan its start and end", r.number),
                overridable: false,
            })
            .collect());
    };
    // Only bookings overlapping the slot can clash with it.
    let (bookings, owners) = bookings(
        state,
        r,
        involved,
        start - TimeDelta::days(1),
        end + TimeDelta::days(1),
    )
    .await?;
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut found: Vec<Conflict> = Vec::new();
    for inv in involved {
        let slug = inv.tenant.slug.as_str();
        let (lifted, windows) = lift(r, inv);
        for name in &lifted {
            if inv
                .windows
                .iter()
                .any(|w| w.name() == *name && !w.windows_between(start, end).is_empty())
            {
                found.push(Conflict {
                    key: format!("blackout:{slug}:{name}"),
                    tenant: slug.into(),
                    message: format!("blackout {name} of {slug} covers the slot"),
                    overridable: true,
                });
            }
        }
        for c in &inv.changes {
            let rules = Rules {
                windows: &windows,
                tenant: slug,
                kind: c.kind,
                requires_window: inv.policy.window_required.contains(&c.kind),
            };
            for problem in slot::check(&rules, &items(slug, c), start, end, &bookings) {
                let conflict = match problem {
                    Problem::Windows(why) => Conflict {
                        key: format!("window:{slug}:{}", c.number),
                        tenant: slug.into(),
                        message: format!("{} of {slug}: {why}", c.number),
                        overridable: false,
                    },
                    p @ Problem::RunsPastClose { .. } => Conflict {
                        key: format!("window:{slug}:{}", c.number),
                        tenant: slug.into(),
                        message: format!("{} of {slug}: {p}", c.number),
                        overridable: false,
                    },
                    Problem::Blackout { window, why } => Conflict {
                        key: format!("blackout:{slug}:{window}"),
                        tenant: slug.into(),
                        message: format!("{} of {slug}: {why}", c.number),
                        overridable: true,
                    },
                    Problem::BlackoutDuring { window, from } => Conflict {
                        key: format!("blackout:{slug}:{window}"),
                        tenant: slug.into(),
                        message: format!(
                            "{} of {slug}: {}",
                            c.number,
                            Problem::BlackoutDuring {
                                window: window.clone(),
                                from
                            }
                        ),
                        overridable: true,
                    },
                    Problem::Clash { number, item } => {
                        // Another client's booking is named by when it
                        // starts, never by its number.
                        let (number, key_part) =
                            if owners.get(&number).is_some_and(|o| o.contains(slug)) {
                                (number.clone(), number)
                            } else {
                                let at = bookings
                                    .iter()
                                    .find(|b| b.number == number)
                                    .map(|b| b.start)
                                    .unwrap_or(start);
                                (
                                    hidden_booking(at),
                                    format!("other-{}", at.format("%Y%m%dT%H%MZ")),
                                )
                            };
                        match item.strip_prefix("implementer:") {
                            Some(id) => {
                                if !names.contains_key(id) {
                                    let email = match id.parse::<i64>() {
                                        Ok(n) => {
                                            state.store.user(UserId(n)).await?.email.to_string()
                                        }
                                        Err(_) => id.to_string(),
                                    };
                                    names.insert(id.to_string(), email);
                                }
                                Conflict {
                                    key: format!("double-booked:{slug}:{}:{key_part}", c.number),
                                    tenant: slug.into(),
                                    message: format!(
                                        "{} implements {} of {slug} and is booked on {number} in the same slot",
                                        names[id], c.number
                                    ),
                                    overridable: true,
                                }
                            }
                            None => {
                                let ci = item.strip_prefix(&format!("{slug}/")).unwrap_or(&item);
                                Conflict {
                                    key: format!("clash:{slug}:{key_part}:{ci}"),
                                    tenant: slug.into(),
                                    message: format!(
                                        "{number} is booked on {ci} of {slug} in the same slot as {}",
                                        c.number
                                    ),
                                    overridable: true,
                                }
                            }
                        }
                    }
                };
                if !found.iter().any(|f| f.key == conflict.key) {
                    found.push(conflict);
                }
            }
        }
    }
    Ok(found)
}

/// The earliest start, from now on, of a slot as long as `r`'s planned
/// one that every tenant's windows allow for every change of the release
/// (blackouts overridden for it aside) and no other booking holds: no
/// configuration item of it, and none of its implementers.
pub async fn proposal(
    state: &AppState,
    r: &Release,
    involved: &[Involved],
) -> ApiResult<Option<DateTime<Utc>>> {
    let length = match (r.planned_start, r.planned_end) {
        (Some(s), Some(e)) => e - s,
        _ => DEFAULT_LENGTH,
    };
    let now = state.now();
    let mut all_items = Vec::new();
    let lifted: Vec<Vec<Arc<CompiledWindow>>> = involved.iter().map(|inv| lift(r, inv).1).collect();
    let mut rules = Vec::new();
    for (inv, windows) in involved.iter().zip(&lifted) {
        let slug = inv.tenant.slug.as_str();
        let kinds: BTreeSet<_> = inv.changes.iter().map(|c| c.kind).collect();
        for c in &inv.changes {
            all_items.extend(items(slug, c));
        }
        for kind in kinds {
            rules.push(Rules {
                windows: windows.as_slice(),
                tenant: slug,
                kind,
                requires_window: inv.policy.window_required.contains(&kind),
            });
        }
    }
    // The bookings ahead, from each tenant's shared snapshot of its
    // changes in flight (read once per write, not per question); one
    // sharing no configuration item with the release never moves the
    // slot.
    let mine: BTreeSet<ChangeNumber> = r.changes.iter().map(|i| i.change).collect();
    let mut bookings = Vec::new();
    let mut in_flight: BTreeMap<ChangeNumber, Vec<String>> = BTreeMap::new();
    for inv in involved {
        let slug = inv.tenant.slug.as_str();
        let snapshot = state.snapshots.of(state, &inv.tenant).await?;
        for c in &snapshot.changes {
            let held: Vec<String> = c
                .configuration_items
                .iter()
                .map(|i| format!("{slug}/{i}"))
                .collect();
            in_flight.insert(c.number, held.clone());
            let Some(start) = c.planned_start else {
                continue;
            };
            let end = c.planned_end.unwrap_or(start + DEFAULT_LENGTH);
            if mine.contains(&c.number) || end <= now || !held.iter().any(|i| all_items.contains(i))
            {
                continue;
            }
            bookings.push(Booking {
                number: c.number.to_string(),
                configuration_items: held,
                start,
                end,
            });
        }
    }
    // The releases ahead holding its items or its implementers.
    let people = implementers(involved);
    let far = now + TimeDelta::days(800);
    for other in other_releases(state, r, now, far).await? {
        let (Some(start), Some(end)) = (other.planned_start, other.planned_end) else {
            continue;
        };
        let mut held: Vec<String> = Vec::new();
        for i in &other.changes {
            if let Some(items) = in_flight.get(&i.change) {
                held.extend(items.iter().filter(|x| all_items.contains(x)).cloned());
            }
            if !people.is_empty()
                && let Some(user) = state.store.change(i.tenant, i.change).await?.implementer
                && people.contains(&user)
            {
                held.push(format!("implementer:{}", user.0));
            }
        }
        if !held.is_empty() {
            bookings.push(Booking {
                number: other.number.to_string(),
                configuration_items: held,
                start,
                end,
            });
        }
    }
    earliest_with_people(state, &rules, &all_items, length, bookings, &people, mine).await
}

/// The earliest start from now of a slot of `length` that `rules` allow
/// and no booking holds, `people`'s bookings in every tenant included
/// (not the changes in `skip`). Their bookings are read as far ahead as
/// the search needs: two weeks first, four times further each time the
/// slot found lies past what was read (a busy engineer's year is not read
/// to find a slot next Saturday).
pub(crate) async fn earliest_with_people<W: AsRef<CompiledWindow>>(
    state: &AppState,
    rules: &[Rules<'_, W>],
    items: &[String],
    length: TimeDelta,
    mut bookings: Vec<Booking>,
    people: &BTreeSet<UserId>,
    mut skip: BTreeSet<ChangeNumber>,
) -> ApiResult<Option<DateTime<Utc>>> {
    let now = state.now();
    let far = now + TimeDelta::days(800);
    let (mut from, mut until) = (now, now + TimeDelta::days(14));
    loop {
        for user in people {
            for (_, n, b) in implementer_bookings(state, *user, from, until, &skip).await? {
                skip.insert(n); // read once, though its slot spans two stretches
                bookings.push(b);
            }
        }
        let found = slot::earliest_for_all(rules, items, now, length, &bookings);
        if until >= far || found.is_some_and(|t| t + length <= until) {
            return Ok(found);
        }
        from = until;
        until = (now + (until - now) * 4).min(far);
    }
}
