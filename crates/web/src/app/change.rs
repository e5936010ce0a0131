//! A change's record as the layer moves it: reading one by number, moving
//! it between states the core allows, approving it (with the expiry every
//! approval has), the reminders of one awaiting approval, and saving it
//! under its version with what belongs to the move.

use changegate_core::change::{self, ChangeState, ChangeType};
use changegate_core::policy::PolicySpec;
use changegate_core::{ChangeNumber, TenantId, UserId};
use changegate_store::{Change, ChangeContent, ChangeWrite, NewEvent, Store, StoreError};
use chrono::{DateTime, TimeDelta, Utc};

use crate::dto::{NewChangeBody, email_field};
use crate::error::{ApiError, ApiResult};
use crate::tenant::InTenant;
use crate::{AppState, workflow};

/// A change number from a path: one that does not parse is not found.
pub fn number(s: &str) -> ApiResult<ChangeNumber> {
    s.parse::<ChangeNumber>()
        .map_err(|_| ApiError::not_found("change"))
}

pub async fn load(store: &dyn Store, tenant: TenantId, n: &str) -> ApiResult<Change> {
    store
        .change(tenant, number(n)?)
        .await
        .map_err(ApiError::from)
}

/// An event about `c` by `actor`.
pub fn event(
    actor: &str,
    c: &Change,
    action: &str,
    detail: serde_json::Value,
    at: DateTime<Utc>,
) -> NewEvent {
    NewEvent {
        actor: actor.into(),
        action: action.into(),
        subject: c.number.to_string(),
        detail,
        at,
    }
}

/// Move `c` to `to`, if the core's state machine allows it.
pub fn move_to(c: &mut Change, to: ChangeState) -> ApiResult<()> {
    if !change::allowed(c.state, to) {
        return Err(ApiError::state(format!(
            "{} is {}; it cannot become {to}",
            c.number, c.state
        )));
    }
    c.state = to;
    Ok(())
}

/// `c` is approved at `now`: decided then, and valid for the policy's
/// expiry (every approval expires; the policy's default applies when it
/// sets none).
pub fn approve(c: &mut Change, policy: &PolicySpec, now: DateTime<Utc>) -> ApiResult<()> {
    move_to(c, ChangeState::Approved)?;
    c.decided_at = Some(now);
    c.approval_expires_at = Some(now + policy.approval_validity());
    Ok(())
}

/// When a change that starts awaiting approval at `now` reminds its
/// approvers and is escalated, by the policy's delays; never for a change
/// in any other state.
pub fn nudges(c: &mut Change, policy: &PolicySpec, now: DateTime<Utc>) {
    c.escalated_to = None;
    if c.state != ChangeState::AwaitingApproval {
        (c.remind_at, c.escalate_at) = (None, None);
        return;
    }
    c.remind_at = policy
        .reminder_hours
        .map(|h| now + TimeDelta::hours(i64::from(h)));
    c.escalate_at = policy
        .escalation
        .as_ref()
        .map(|e| now + TimeDelta::hours(i64::from(e.after_hours)));
}

/// Save `c` if it is still at `expected` (a lost race is a clear 409),
/// with `write`, at `at`. Reminders and escalation concern a change
/// awaiting approval only, so they are dropped on any other state.
pub async fn save(
    state: &AppState,
    c: &Change,
    expected: i64,
    write: ChangeWrite,
    at: DateTime<Utc>,
) -> ApiResult<Change> {
    let cleared;
    let c = if c.state != ChangeState::AwaitingApproval
        && (c.remind_at.is_some() || c.escalate_at.is_some())
    {
        cleared = Change {
            remind_at: None,
            escalate_at: None,
            ..c.clone()
        };
        &cleared
    } else {
        c
    };
    state
        .store
        .save_change(c, expected, write, at)
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => {
                ApiError::conflict(format!("{} changed meanwhile; reload and retry", c.number))
            }
            other => other.into(),
        })
}

/// A planned slot ends after it starts.
pub fn check_planned(c: &ChangeContent) -> ApiResult<()> {
    if let (Some(s), Some(e)) = (c.planned_start, c.planned_end)
        && e <= s
    {
        return Err(ApiError::invalid(
            "planned_end",
            "the planned end must be after the planned start",
        ));
    }
    Ok(())
}

/// A new change's type, implementer and content from a request body.
pub async fn new_change(
    state: &AppState,
    t: &InTenant,
    body: serde_json::Value,
) -> ApiResult<(ChangeType, Option<UserId>, ChangeContent)> {
    let body = new_change_body(body)?;
    let kind: ChangeType = body
        .kind
        .parse()
        .map_err(|e: changegate_core::ids::InvalidValue| ApiError::invalid("type", e.message))?;
    check_planned(&body.content)?;
    let implementer = match &body.implementer {
        None => None,
        Some(e) => {
            let email = email_field("implementer", e)?;
            let people = workflow::People::load(state.store.as_ref(), t.tenant.id).await?;
            Some(people.id_of(email.as_str()).ok_or_else(|| {
                ApiError::invalid(
                    "implementer",
                    format!("{email} is not a user of this tenant"),
                )
            })?)
        }
    };
    Ok((kind, implementer, body.content))
}

/// `type` and `implementer` beside the content fields; an unknown field
/// is refused by name (serde's `flatten` would let it through).
fn new_change_body(body: serde_json::Value) -> ApiResult<NewChangeBody> {
    let serde_json::Value::Object(mut fields) = body else {
        return Err(ApiError::invalid("", "send the change as a JSON object"));
    };
    let kind = match fields.remove("type") {
        Some(serde_json::Value::String(s)) => s,
        Some(_) => {
            return Err(ApiError::invalid(
                "type",
                "use standard, normal or emergency",
            ));
        }
        None => {
            return Err(ApiError::invalid(
                "type",
                "say which type of change: standard, normal or emergency",
            ));
        }
    };
    let implementer = match fields.remove("implementer") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(_) => {
            return Err(ApiError::invalid(
                "implementer",
                "give the implementer's e-mail address",
            ));
        }
    };
    let content: ChangeContent =
        serde_path_to_error::deserialize(serde_json::Value::Object(fields)).map_err(|e| {
            ApiError::invalid(
                e.path().to_string().trim_start_matches('.').to_string(),
                e.into_inner().to_string(),
            )
        })?;
    Ok(NewChangeBody {
        kind,
        implementer,
        content,
    })
}
