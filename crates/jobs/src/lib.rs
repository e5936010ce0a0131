//! Background jobs of the server: approvals that expired before
//! implementation started, emergency changes whose retrospective
//! approval is overdue, and the reminders and escalation of changes still
//! awaiting approval (`nudge`). `run_due` does one pass at a given time
//! (tests call it with a pinned clock); `run` repeats it every second
//! until shut down, and delivers the e-mail outbox (`mail`).

use changegate_core::ChangeNumber;
use changegate_core::change::{self, ChangeState};
use changegate_store::{Change, ChangeWrite, Clock, NewEvent, Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// What a pass did to one change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Expired(ChangeNumber),
    RetrospectiveOverdue(ChangeNumber),
    /// The approvers who had not decided were reminded.
    Reminded(ChangeNumber),
    /// The backup approver may now decide in the undecided seats.
    Escalated(ChangeNumber),
    /// Decided before its reminder: the reminder and escalation are off.
    RemindersDropped(ChangeNumber),
}

const ACTOR: &str = "changegate-scheduler";

fn apply(c: &mut Change, now: DateTime<Utc>) -> Option<(Outcome, NewEvent)> {
    let event = |action: &str, detail| NewEvent {
        actor: ACTOR.into(),
        action: action.into(),
        subject: c.number.to_string(),
        detail,
        at: now,
    };
    if c.state.is_approved()
        && c.approval_expires_at.is_some_and(|e| e <= now)
        && change::allowed(c.state, ChangeState::Expired)
    {
        let e = event(
            "change.expired",
            json!({ "approval_expired_at": c.approval_expires_at }),
        );
        c.state = ChangeState::Expired;
        return Some((Outcome::Expired(c.number), e));
    }
    if !c.retrospective_overdue
        && c.decided_at.is_none()
        && c.retrospective_due_at.is_some_and(|d| d <= now)
    {
        let e = event(
            "change.retrospective-overdue",
            json!({ "due": c.retrospective_due_at }),
        );
        c.retrospective_overdue = true;
        return Some((Outcome::RetrospectiveOverdue(c.number), e));
    }
    None
}

/// One pass over the changes due at `now`. Each change is written in its
/// own transaction under its optimistic lock; a change that moved
/// meanwhile is re-read and re-judged, so an action is never doubled.
/// `public_url` is where the portal is reached, for the links in the
/// reminders and escalations.
pub async fn run_due(
    store: &dyn Store,
    public_url: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Outcome>, StoreError> {
    let mut done = Vec::new();
    for due in store.changes_due(now).await? {
        let mut current = due;
        for _ in 0..10 {
            let expected = current.version;
            let mut next = current.clone();
            let (outcome, write) = match apply(&mut next, now) {
                Some((outcome, event)) => (
                    outcome,
                    ChangeWrite {
                        events: vec![event],
                        ..Default::default()
                    },
                ),
                None => match nudge::nudge(store, public_url, &mut next, now).await? {
                    Some(done) => done,
                    None => break,
                },
            };
            match store.save_change(&next, expected, write, now).await {
                Ok(_) => {
                    done.push(outcome);
                    break;
                }
                Err(StoreError::Conflict { .. }) => {
                    current = store.change(current.tenant, current.number).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(done)
}

pub mod boundaries;
pub mod checkpoint;
pub mod mail;
mod nudge;

/// Run a pass every second until `shutdown` resolves; with a mailer, the
/// outbox is delivered in the same rhythm. A window boundary due before
/// the next second wakes the boundary pass at its moment. Every pass
/// reads the time from `clock`, the server's one clock.
pub async fn run(
    store: Arc<dyn Store>,
    clock: Clock,
    mailer: Option<mail::Mailer>,
    mut checkpoints: Option<checkpoint::Checkpoints>,
    public_url: String,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut checkpointed: Option<tokio::time::Instant> = None;
    // While the database is away: said once, tried again with growing pauses.
    let mut outage = changegate_store::outage::Outage::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let mut boundary: Option<tokio::time::Instant> = None;
    let mut windows = boundaries::Windows::default();
    loop {
        let wake = async {
            match boundary {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let full = tokio::select! {
            _ = &mut shutdown => return,
            _ = tick.tick() => true,
            _ = wake => false,
        };
        if outage.waiting() {
            continue;
        }
        if full {
            match run_due(store.as_ref(), &public_url, clock()).await {
                Ok(done) => {
                    outage.succeeded("the scheduler");
                    for o in done {
                        tracing::info!(outcome = ?o, "scheduler");
                    }
                }
                Err(e) => {
                    outage.failed("the scheduler", &e);
                    continue;
                }
            }
        }
        boundary = None;
        match boundaries::run_with(store.as_ref(), clock(), &mut windows).await {
            Ok(pass) => {
                for b in pass.recorded {
                    tracing::info!(tenant = %b.tenant, window = %b.window, action = b.action, at = %b.at, "window boundary");
                }
                // Wake for a boundary due before the next second (a few
                // milliseconds after it, so it has passed).
                if let Some(next) = pass.next
                    && let Ok(wait) = (next - clock()).to_std()
                    && wait < Duration::from_secs(1)
                {
                    boundary = Some(tokio::time::Instant::now() + wait + Duration::from_millis(2));
                }
            }
            Err(e) => {
                outage.failed("the window boundary pass", &e);
                continue;
            }
        }
        if full
            && let Some(m) = &mailer
            && let Err(e) = mail::send_due(store.as_ref(), m, clock()).await
        {
            outage.failed("the outbox", &e);
        }
        // Each tenant's audit head, signed into the checkpoint log, at
        // most once a minute and only when it moved.
        if full
            && let Some(c) = checkpoints.as_mut()
            && checkpointed.is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            checkpointed = Some(tokio::time::Instant::now());
            match c.write_due(store.as_ref(), clock()).await {
                Ok(lines) if !lines.is_empty() => {
                    tracing::info!(tenants = lines.len(), "audit heads checkpointed")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "checkpoint pass failed; retrying in a minute")
                }
            }
        }
    }
}
