//! Window openings and closings, recorded as they happen: every boundary
//! of every tenant's maintenance windows and blackouts becomes one
//! `window.opened` or `window.closed` event in the tenant's chain (what a
//! gate or an agent allowed then can be read against it), exactly once.
//!
//! Each tenant has a mark (`windows:<tenant id>`): every boundary up to it
//! was recorded. A pass records the boundaries in (mark, now] and moves
//! the mark in the same transaction, only from the mark it read. So a
//! restart resumes from the mark (nothing missed), and a second replica
//! passing over the same stretch writes nothing (nothing doubled). A
//! tenant's first pass starts its mark at that moment; with nothing to
//! record, the mark moves at most once a minute. Compiled windows are
//! kept between passes until the tenant's audit head moves.

use changegate_core::TenantId;
use changegate_core::window::{CompiledWindow, WindowKind, WindowSpec};
use changegate_store::{NewEvent, ObjectKind, Store, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

/// How far back a pass catches up after a long stop.
const CATCH_UP: TimeDelta = TimeDelta::days(31);

/// With nothing to record, a tenant's mark moves at most this often: not
/// a write a second per tenant for nothing.
const MARK_EVERY: TimeDelta = TimeDelta::minutes(1);

/// Each tenant's compiled windows with the audit head they were read at:
/// a pass reads and compiles a tenant's windows again only once a write
/// (every write of a tenant's records moves its head) may have changed
/// them.
#[derive(Default)]
pub struct Windows(HashMap<TenantId, (i64, Arc<Vec<CompiledWindow>>)>);

/// A boundary a pass recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boundary {
    pub tenant: TenantId,
    pub window: String,
    /// `window.opened` or `window.closed`.
    pub action: &'static str,
    pub at: DateTime<Utc>,
}

fn mark_of(tenant: TenantId) -> String {
    format!("windows:{}", tenant.0)
}

/// The tenant's windows; one that does not parse is skipped and logged
/// (the API never stores one).
async fn windows(store: &dyn Store, tenant: TenantId) -> Result<Vec<CompiledWindow>, StoreError> {
    let mut out = Vec::new();
    for o in store.objects(tenant, ObjectKind::Window).await? {
        let compiled = serde_json::from_str::<WindowSpec>(&o.spec)
            .map_err(|e| e.to_string())
            .and_then(|spec| CompiledWindow::compile(&o.name, &spec).map_err(|e| e.to_string()));
        match compiled {
            Ok(w) => out.push(w),
            Err(e) => tracing::error!(window = %o.name, error = %e, "stored window skipped"),
        }
    }
    Ok(out)
}

/// The boundaries of `windows` for tenant `slug` in `(since, now]`, in order.
pub fn boundaries(
    windows: &[CompiledWindow],
    slug: &str,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<(String, WindowKind, &'static str, DateTime<Utc>)> {
    let mut out = Vec::new();
    for w in windows.iter().filter(|w| w.applies_to(slug)) {
        for i in w.windows_between(since, now + TimeDelta::nanoseconds(1)) {
            if since < i.start && i.start <= now {
                out.push((w.name().to_string(), w.kind(), "window.opened", i.start));
            }
            if since < i.end && i.end <= now {
                out.push((w.name().to_string(), w.kind(), "window.closed", i.end));
            }
        }
    }
    out.sort_by(|a, b| (a.3, a.2, &a.0).cmp(&(b.3, b.2, &b.0)));
    out
}

/// What a pass did, and when the next boundary comes (within a day), so
/// the scheduler can wake for it rather than wait for its next second.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    pub recorded: Vec<Boundary>,
    pub next: Option<DateTime<Utc>>,
}

/// One pass at `now` over every tenant.
pub async fn run(store: &dyn Store, now: DateTime<Utc>) -> Result<Pass, StoreError> {
    run_with(store, now, &mut Windows::default()).await
}

/// [`run`], with the windows compiled by earlier passes.
pub async fn run_with(
    store: &dyn Store,
    now: DateTime<Utc>,
    cache: &mut Windows,
) -> Result<Pass, StoreError> {
    let mut done = Vec::new();
    let mut next: Option<DateTime<Utc>> = None;
    let heads = store.audit_heads().await?;
    for tenant in store.tenants(None).await? {
        let key = mark_of(tenant.id);
        let mark = store.job_mark(&key).await?;
        let Some(since) = mark else {
            store
                .advance_job_mark(&key, None, now, tenant.id, Vec::new())
                .await?;
            continue;
        };
        if since >= now {
            continue;
        }
        let from = since.max(now - CATCH_UP);
        let head = heads.get(&tenant.id).copied().unwrap_or_default();
        let windows = match cache.0.get(&tenant.id) {
            Some((at, w)) if *at == head => Arc::clone(w),
            _ => {
                let w = Arc::new(windows(store, tenant.id).await?);
                cache.0.insert(tenant.id, (head, Arc::clone(&w)));
                w
            }
        };
        let slug = tenant.slug.as_str();
        let coming = boundaries(&windows, slug, now, now + TimeDelta::days(1))
            .first()
            .map(|b| b.3);
        next = match (next, coming) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let found = boundaries(&windows, slug, from, now);
        if found.is_empty() && now - since < MARK_EVERY {
            continue;
        }
        let events: Vec<NewEvent> = found
            .iter()
            .map(|(name, kind, action, at)| NewEvent {
                actor: super::ACTOR.into(),
                action: (*action).into(),
                subject: format!("window {name}"),
                detail: json!({ "window": name, "kind": kind, "at": at }),
                at: *at,
            })
            .collect();
        if store
            .advance_job_mark(&key, Some(since), now, tenant.id, events)
            .await?
        {
            done.extend(found.into_iter().map(|(window, _, action, at)| Boundary {
                tenant: tenant.id,
                window,
                action,
                at,
            }));
        }
    }
    Ok(Pass {
        recorded: done,
        next,
    })
}
