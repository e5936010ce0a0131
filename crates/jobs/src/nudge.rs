//! Reminders and escalation of a change still awaiting approval, on the
//! delays its tenant's policy set when it was submitted (`remind_at`,
//! `escalate_at` on the change). A reminder e-mails every approver who
//! has not decided yet, once. An escalation lets the policy's backup
//! approver decide in the undecided seats of this change's current
//! revision (`escalated_to` on the change, on the audit chain with its
//! event) and tells them by e-mail. Each clears its time, so it happens
//! once.

use changegate_core::approval::PlanStatus;
use changegate_core::change::ChangeState;
use changegate_core::policy::PolicySpec;
use changegate_core::{Email, UserId};
use changegate_store::{Change, ChangeWrite, NewEvent, NewMessage, Store, StoreError, votes};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{ACTOR, Outcome};

/// The reminder or escalation due on `c` at `now`, applied to `c`, with
/// the write that records it; `None` when neither is due.
pub(crate) async fn nudge(
    store: &dyn Store,
    public_url: &str,
    c: &mut Change,
    now: DateTime<Utc>,
) -> Result<Option<(Outcome, ChangeWrite)>, StoreError> {
    let remind = c.remind_at.is_some_and(|t| t <= now);
    let escalate = c.escalate_at.is_some_and(|t| t <= now);
    if !remind && !escalate {
        return Ok(None);
    }
    let event = |action: &str, detail| NewEvent {
        actor: ACTOR.into(),
        action: action.into(),
        subject: c.number.to_string(),
        detail,
        at: now,
    };
    if c.state != ChangeState::AwaitingApproval {
        // Decided meanwhile: nothing to remind of.
        c.remind_at = None;
        c.escalate_at = None;
        let e = event(
            "change.reminders-dropped",
            json!({ "state": c.state.as_str() }),
        );
        return Ok(Some((Outcome::RemindersDropped(c.number), only(e))));
    }
    let undecided: Vec<UserId> = match c.plan.status(&votes(store, c).await?) {
        PlanStatus::Pending { boards } => {
            let mut seats: Vec<UserId> = boards.into_iter().flat_map(|b| b.awaiting).collect();
            seats.sort();
            seats.dedup();
            seats
        }
        _ => Vec::new(),
    };
    let tenant = store.tenant(c.tenant).await?;
    // Everyone a reminder or an escalation can name, in one read.
    let people: Vec<(UserId, Email)> = store
        .users_in_tenant(c.tenant)
        .await?
        .into_iter()
        .map(|(u, _)| (u.id, u.email))
        .collect();
    let page = format!("{public_url}/t/{}/changes/{}", tenant.slug, c.number);
    if remind {
        c.remind_at = None;
        let mut messages = Vec::new();
        let mut told = Vec::new();
        for (_, email) in people.iter().filter(|(id, _)| undecided.contains(id)) {
            messages.push(NewMessage {
                recipient: email.clone(),
                subject: format!("Reminder: {} waits for your decision", c.number),
                body: format!(
                    "{number} for {tenant} still waits for your decision.\n\nTitle: {title}\n\n\
                     Decide with the link in the first message about it, or sign in:\n{page}\n",
                    number = c.number,
                    tenant = tenant.name,
                    title = c.content.title,
                ),
                at: now,
            });
            told.push(email.to_string());
        }
        let e = event("change.reminded", json!({ "to": told }));
        return Ok(Some((
            Outcome::Reminded(c.number),
            ChangeWrite {
                events: vec![e],
                messages,
                ..Default::default()
            },
        )));
    }
    c.escalate_at = None;
    let backup = backup(store, c, &people).await?;
    let Some(backup) = backup else {
        let e = event(
            "change.escalation-failed",
            json!({ "reason": "the policy names no backup approver who is a user of the tenant" }),
        );
        return Ok(Some((Outcome::Escalated(c.number), only(e))));
    };
    c.escalated_to = Some(backup.0);
    let message = NewMessage {
        recipient: backup.1.clone(),
        subject: format!("{} was escalated to you", c.number),
        body: format!(
            "{number} for {tenant} has waited for approval since {since} and was escalated to you \
             as the backup approver.\n\nTitle: {title}\n\n\
             You may decide in the place of those who have not, until it is decided or revised. \
             Sign in and decide:\n{page}\n",
            number = c.number,
            tenant = tenant.name,
            since = c.submitted_at.map_or("its submission".into(), |t| t
                .format("%Y-%m-%d %H:%M UTC")
                .to_string()),
            title = c.content.title,
        ),
        at: now,
    };
    let e = event(
        "change.escalated",
        json!({ "to": backup.1.to_string(), "undecided": undecided, "revision": c.revision }),
    );
    Ok(Some((
        Outcome::Escalated(c.number),
        ChangeWrite {
            events: vec![e],
            messages: vec![message],
            ..Default::default()
        },
    )))
}

fn only(e: NewEvent) -> ChangeWrite {
    ChangeWrite {
        events: vec![e],
        ..Default::default()
    }
}

/// The tenant policy's backup approver, if they are one of `people`.
async fn backup(
    store: &dyn Store,
    c: &Change,
    people: &[(UserId, Email)],
) -> Result<Option<(UserId, Email)>, StoreError> {
    let policy: PolicySpec = match store.policy(c.tenant).await {
        Ok((_, text)) => serde_json::from_str(&text).unwrap_or_default(),
        Err(StoreError::NotFound { .. }) => PolicySpec::default(),
        Err(e) => return Err(e),
    };
    let Some(escalation) = policy.escalation else {
        return Ok(None);
    };
    Ok(people.iter().find(|(_, e)| *e == escalation.to).cloned())
}
