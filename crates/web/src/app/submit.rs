//! Submission and revision: the moments a change's content is judged.
//! Both assess it afresh (risk from its answers, routing, approvers
//! frozen, a standard change against its template), fingerprint what the
//! approvers will sign, and either approve it at once (no board routed) or
//! ask its approvers, by e-mail through the outbox, in the same write.

use changegate_core::Role;
use changegate_core::change::{ChangeState, ChangeType};
use changegate_store::{Change, ChangeContent, ChangeWrite, NewEvent};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::assess::{Assessment, Authors, assess};
use super::change::{approve, check_planned, event, load, move_to, nudges, save};
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::tenant::InTenant;

/// Submit change `n` (a draft, or a rejected change as a new revision).
pub async fn submit(state: &AppState, t: &InTenant, n: &str) -> ApiResult<Change> {
    let mut c = load(state.store.as_ref(), t.tenant.id, n).await?;
    if c.requester != t.caller.user
        && !t.caller.has_role(t.tenant.id, Role::ChangeManager)
        && !t.caller.admin
    {
        return Err(ApiError::forbidden(
            "only the requester or a change manager submits a change",
        ));
    }
    let expected = c.version;
    let now = state.now();
    if c.state == ChangeState::Rejected {
        move_to(&mut c, ChangeState::Draft)?;
        c.revision += 1;
    }
    move_to(&mut c, ChangeState::Submitted)?;
    let mut write = open_approval(state, t, &mut c, "change.submitted", now).await?;
    write.record_revision = Some(t.caller.user);
    save(state, &c, expected, write, now).await
}

/// A material edit of a submitted change (its fingerprint moved): a new
/// revision, judged again from its new content as at submission; earlier
/// approvals no longer count.
pub async fn revise(
    state: &AppState,
    t: &InTenant,
    c: &mut Change,
    now: DateTime<Utc>,
) -> ApiResult<ChangeWrite> {
    c.revision += 1;
    c.state = ChangeState::Submitted;
    let mut write = open_approval(state, t, c, "change.revised", now).await?;
    write.record_revision = Some(t.caller.user);
    Ok(write)
}

/// Assess `c` (submitted) and open its approval: approved at once when no
/// board is routed, else awaiting its frozen approvers, who are asked.
/// Returns the write that records it, with `action` as its first event.
async fn open_approval(
    state: &AppState,
    t: &InTenant,
    c: &mut Change,
    action: &str,
    now: DateTime<Utc>,
) -> ApiResult<ChangeWrite> {
    let store = state.store.as_ref();
    let Assessment {
        policy_version,
        policy,
        kind,
        level,
        score,
        routed,
        plan,
        beyond_template,
    } = assess(
        store,
        t.tenant.id,
        c.kind,
        &c.content,
        Authors {
            requester: c.requester,
            // Whoever records a revision (submits or edits it) does not approve it.
            editor: Some(t.caller.user),
            implementer: c.implementer,
        },
        now.date_naive(),
    )
    .await?;
    let routed_as_normal = kind != c.kind;
    c.kind = kind;
    c.risk_score = Some(score);
    c.risk_level = Some(level);
    c.plan = plan;
    c.fingerprint = Some(c.content.fingerprint());
    c.policy_version = Some(policy_version);
    c.submitted_at = Some(now);
    c.decided_at = None;
    c.approval_expires_at = None;
    let actor = t.actor();
    let mut events = vec![event(
        &actor,
        c,
        action,
        json!({ "revision": c.revision, "fingerprint": c.fingerprint, "policy_version": policy_version,
                "risk": { "level": level.as_str(), "score": c.risk_score }, "boards": routed }),
        now,
    )];
    if routed_as_normal {
        events.push(event(
            &actor,
            c,
            "change.routed-as-normal",
            json!({ "template": c.content.template, "beyond_template": beyond_template }),
            now,
        ));
    }
    let mut write = ChangeWrite::default();
    if c.plan.is_empty() {
        approve(c, &policy, now)?;
        let why = if c.kind == ChangeType::Standard {
            "pre-approved template"
        } else {
            "no board is routed"
        };
        events.push(approved_event(&actor, c, why, now));
        (write.messages, write.links) =
            super::accept::requests(store, &state.public_url, &t.tenant, c, &policy, now).await?;
    } else {
        move_to(c, ChangeState::AwaitingApproval)?;
        (write.messages, write.links) = crate::mail::approval_requests(
            store,
            &state.public_url,
            &t.tenant.name,
            c,
            &policy,
            now,
        )
        .await?;
    }
    nudges(c, &policy, now);
    write.events = events;
    Ok(write)
}

fn approved_event(actor: &str, c: &Change, why: &str, now: DateTime<Utc>) -> NewEvent {
    event(
        actor,
        c,
        "change.approved",
        json!({ "by": why, "revision": c.revision, "expires_at": c.approval_expires_at }),
        now,
    )
}

/// Edit change `n`'s content by `t.caller` (its requester or a change
/// manager), replacing the `fields` given: before submission as it is;
/// after, an edit that moves the fingerprint is a new revision, judged
/// afresh (risk, routing, approvers frozen, a standard change against its
/// template), and earlier approvals no longer count.
pub async fn edit(
    state: &AppState,
    t: &InTenant,
    n: &str,
    fields: serde_json::Map<String, serde_json::Value>,
) -> ApiResult<Change> {
    let mut c = load(state.store.as_ref(), t.tenant.id, n).await?;
    may_edit(t, &c)?;
    let mut content = serde_json::to_value(&c.content).map_err(|_| ApiError::internal())?;
    if let Some(obj) = content.as_object_mut() {
        for (k, v) in fields {
            obj.insert(k, v);
        }
    }
    let new: ChangeContent = serde_path_to_error::deserialize(content)
        .map_err(|e| ApiError::invalid(e.path().to_string(), e.into_inner().to_string()))?;
    if new.title.trim().is_empty() {
        return Err(ApiError::invalid("title", "give the change a title"));
    }
    check_planned(&new)?;
    if new.proposal != c.content.proposal {
        super::proposal::check_link(state.store.as_ref(), t.tenant.id, &new).await?;
    }
    let expected = c.version;
    let now = state.now();
    let material = is_material(&c, &new);
    // An approved change's test evidence, recorded for the first time:
    // the client may accept it now, where the policy asks.
    let tested_now = !material
        && c.state == ChangeState::Approved
        && c.content.test_evidence.trim().is_empty()
        && !new.test_evidence.trim().is_empty();
    c.content = new;
    let mut events = vec![event(
        &t.actor(),
        &c,
        "change.edited",
        json!({ "material": material }),
        now,
    )];
    let mut write = ChangeWrite::default();
    if material {
        let revised = revise(state, t, &mut c, now).await?;
        events.extend(revised.events);
        write = ChangeWrite {
            events: Vec::new(),
            ..revised
        };
    }
    if tested_now {
        let (_, policy) = crate::workflow::policy(state.store.as_ref(), t.tenant.id).await?;
        (write.messages, write.links) = super::accept::requests(
            state.store.as_ref(),
            &state.public_url,
            &t.tenant,
            &c,
            &policy,
            now,
        )
        .await?;
    }
    write.events = events;
    save(state, &c, expected, write, now).await
}

/// May `t.caller` edit `c` now? The requester or a change manager, while
/// its state allows edits; the error says why not.
pub fn may_edit(t: &InTenant, c: &Change) -> ApiResult<()> {
    if c.requester != t.caller.user && !t.caller.has_role(t.tenant.id, Role::ChangeManager) {
        return Err(ApiError::forbidden(
            "only the requester or a change manager edits a change",
        ));
    }
    if !c.state.editable() {
        return Err(ApiError::state(format!(
            "{} is {}; it can no longer be edited",
            c.number, c.state
        )));
    }
    Ok(())
}

/// The edit of `c`'s content by `t.caller`: the new content, and whether
/// it is material (a submitted change whose fingerprint moves).
pub fn is_material(c: &Change, new: &ChangeContent) -> bool {
    let submitted = c.fingerprint.is_some()
        && c.state != ChangeState::Draft
        && c.state != ChangeState::Rejected;
    submitted && c.fingerprint.as_deref() != Some(new.fingerprint().as_str())
}
