//! ChangeRequests and their changes. The operator sends a resource's
//! latest spec on every reconcile; the first time, the change is created
//! in the namespace's tenant as the resource's creator (mapped to a user
//! of the tenant) and linked to the resource's place in the same write,
//! so no retry, restart, second replica or delete-and-recreate makes a
//! second change; after that a new generation is an edit by its editor,
//! through the rules every edit follows (a material edit is a new
//! revision). The answer is the record as the resource's status shows it.

use changegate_core::ChangeNumber;
use changegate_core::authz::Action;
use changegate_core::change::ChangeState;
use changegate_resources::change_request::{Awaiting, Decision, NextWindow};
use changegate_resources::wire::{ChangeRecord, ChangeRequestSync, Hold, LinkedResource};
use changegate_store::{
    Change, ChangeWrite, NewChange, ResourceKey, ResourceLink, StoreError, Tenant,
};
use serde_json::json;

use super::{bound_tenant, key, mapped};
use crate::AppState;
use crate::app::change::{event, load, move_to, new_change, save};
use crate::error::{ApiError, ApiResult};
use crate::tenant::InTenant;
use crate::workflow::{self, Emails};

/// The kind of resource a change's link names.
pub const CHANGE_REQUEST: &str = "ChangeRequest";

/// Brings the change of the ChangeRequest `namespace/name` of `cluster`
/// in step with `body` (its latest spec) and answers its record.
pub async fn sync_change_request(
    state: &AppState,
    cluster: &str,
    namespace: &str,
    name: &str,
    body: ChangeRequestSync,
) -> ApiResult<ChangeRecord> {
    let tenant = bound_tenant(state, cluster, &body.tenant).await?;
    let key = key(cluster, namespace, CHANGE_REQUEST, name);
    let store = state.store.as_ref();
    let mut replaces = None;
    if let Some(link) = store.resource_link(&key).await? {
        if link.tenant != tenant.id {
            return Err(ApiError::conflict(format!(
                "this ChangeRequest's place stands for a change of another tenant; the namespace was labelled for {} after it was applied: delete the resource and apply it again",
                tenant.slug
            )));
        }
        let c = store.change(tenant.id, ChangeNumber(link.number)).await?;
        // A finished change stays the resource's until the resource is
        // replaced: a new uid under the same name then raises a new one.
        if !c.state.is_final() || link.uid == body.uid {
            return follow(state, &tenant, &key, &link, c, body).await;
        }
        replaces = Some(ChangeNumber(link.number));
    }
    create(state, &tenant, &key, replaces, body).await
}

/// The first sync of a resource (or of one replacing a resource whose
/// change finished): its change created and linked in one write.
async fn create(
    state: &AppState,
    tenant: &Tenant,
    key: &ResourceKey,
    replaces: Option<ChangeNumber>,
    body: ChangeRequestSync,
) -> ApiResult<ChangeRecord> {
    let requester = mapped(
        state,
        tenant,
        &key.cluster,
        &body.requested_by,
        "requestedBy",
    )
    .await?;
    let t = InTenant {
        caller: requester,
        tenant: tenant.clone(),
    };
    t.authorize(Action::RequestChange)?;
    let (kind, implementer, content) = new_change(state, &t, new_change_json(&body)?).await?;
    if content.title.trim().is_empty() {
        return Err(ApiError::invalid("title", "give the change a title"));
    }
    let now = state.now();
    let link = ResourceLink {
        key: key.clone(),
        tenant: tenant.id,
        number: 0,
        uid: body.uid.clone(),
        generation: body.generation,
        updated_at: now,
    };
    let created = state
        .store
        .create_resource_change(
            NewChange {
                tenant: tenant.id,
                kind,
                requester: t.caller.user,
                implementer,
                content,
            },
            &link,
            replaces,
            &t.actor(),
            now,
        )
        .await;
    let c = match created {
        Ok(c) => c,
        // Another replica (or an earlier try whose answer was lost)
        // created it: follow that one.
        Err(StoreError::Conflict { .. }) => {
            let link = state
                .store
                .resource_link(key)
                .await?
                .ok_or_else(|| ApiError::conflict("the resource's link moved; try again"))?;
            let c = state
                .store
                .change(tenant.id, ChangeNumber(link.number))
                .await?;
            return follow(state, tenant, key, &link, c, body).await;
        }
        Err(e) => return Err(e.into()),
    };
    state.writes.note(Some(tenant.slug.as_str()));
    let c = if body.requested.submit {
        match crate::app::submit::submit(state, &t, &c.number.to_string()).await {
            Ok(submitted) => submitted,
            // Another replica following this resource submitted it first.
            Err(e) if e.status == axum::http::StatusCode::CONFLICT => {
                load(state.store.as_ref(), tenant.id, &c.number.to_string()).await?
            }
            Err(e) => return Err(e),
        }
    } else {
        c
    };
    record(state, tenant, &c, body.generation).await
}

/// A later sync: a new generation of the spec is an edit of the change by
/// the resource's editor (and a submission when the spec asks for one).
async fn follow(
    state: &AppState,
    tenant: &Tenant,
    key: &ResourceKey,
    link: &ResourceLink,
    mut c: Change,
    body: ChangeRequestSync,
) -> ApiResult<ChangeRecord> {
    if body.generation <= link.generation && body.uid == link.uid {
        // A first submission that failed after the create (a board with
        // nobody left to ask, a template past review) is tried again.
        if c.state == ChangeState::Draft && body.requested.submit {
            let t = InTenant {
                caller: mapped(
                    state,
                    tenant,
                    &key.cluster,
                    &body.requested_by,
                    "requestedBy",
                )
                .await?,
                tenant: tenant.clone(),
            };
            match crate::app::submit::submit(state, &t, &c.number.to_string()).await {
                Ok(submitted) => {
                    c = submitted;
                    state.writes.note(Some(tenant.slug.as_str()));
                }
                // Its creator (another replica, or this call's first try)
                // is submitting it right now.
                Err(e) if e.status == axum::http::StatusCode::CONFLICT => {
                    c = load(state.store.as_ref(), tenant.id, &c.number.to_string()).await?;
                }
                Err(e) => return Err(e),
            }
        }
        return record(state, tenant, &c, link.generation).await;
    }
    let author = body.edited_by.as_deref().unwrap_or(&body.requested_by);
    let field = if body.edited_by.is_some() {
        "editedBy"
    } else {
        "requestedBy"
    };
    let editor = mapped(state, tenant, &key.cluster, author, field).await?;
    let t = InTenant {
        caller: editor,
        tenant: tenant.clone(),
    };
    t.authorize(Action::RequestChange)?;
    refuse_unchangeable(state, &c, &body).await?;
    let fields = changed_fields(&c, &body)?;
    let n = c.number.to_string();
    if !fields.is_empty() {
        c = crate::app::submit::edit(state, &t, &n, fields).await?;
        state.writes.note(Some(tenant.slug.as_str()));
    }
    let resubmit = match c.state {
        ChangeState::Draft => true,
        // A rejected revision goes back for approval once its spec changed.
        ChangeState::Rejected => body.generation > link.generation,
        _ => false,
    };
    if body.requested.submit && resubmit {
        c = crate::app::submit::submit(state, &t, &n).await?;
        state.writes.note(Some(tenant.slug.as_str()));
    }
    state
        .store
        .touch_resource_link(key, &body.uid, body.generation, state.now())
        .await?;
    record(state, tenant, &c, body.generation).await
}

/// A change's type and implementer are fixed once raised: a spec that
/// changes them is refused, naming the field, rather than ignored.
async fn refuse_unchangeable(
    state: &AppState,
    c: &Change,
    body: &ChangeRequestSync,
) -> ApiResult<()> {
    use changegate_core::change::ChangeType;
    let wanted = body.requested.kind;
    // A standard change beyond its template may have been approved as a
    // normal one: that is the server's doing, not an edit.
    let same_type =
        wanted == c.kind || (wanted == ChangeType::Standard && c.kind == ChangeType::Normal);
    if !same_type {
        return Err(ApiError::invalid(
            "type",
            format!(
                "{} is a {} change; its type cannot change: raise a new ChangeRequest",
                c.number, c.kind
            ),
        ));
    }
    let now = match c.implementer {
        Some(u) => Some(state.store.user(u).await?.email.to_string()),
        None => None,
    };
    let wanted = body
        .requested
        .implementer
        .as_deref()
        .map(|e| e.trim().to_ascii_lowercase());
    if wanted.is_some() && wanted != now.map(|e| e.to_ascii_lowercase()) {
        return Err(ApiError::invalid(
            "implementer",
            format!(
                "{}'s implementer is set on the server (the portal, or `change start`); it cannot change here",
                c.number
            ),
        ));
    }
    Ok(())
}

/// The body `POST /api/v1/tenants/{tenant}/changes` would take for `body`.
fn new_change_json(body: &ChangeRequestSync) -> ApiResult<serde_json::Value> {
    let mut value =
        serde_json::to_value(&body.requested.content).map_err(|_| ApiError::internal())?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert("type".into(), json!(body.requested.kind.as_str()));
        obj.insert("implementer".into(), json!(body.requested.implementer));
    }
    Ok(value)
}

/// The content fields of `body` that differ from `c`'s.
fn changed_fields(
    c: &Change,
    body: &ChangeRequestSync,
) -> ApiResult<serde_json::Map<String, serde_json::Value>> {
    let now = serde_json::to_value(&c.content).map_err(|_| ApiError::internal())?;
    let wanted = serde_json::to_value(&body.requested.content).map_err(|_| ApiError::internal())?;
    let (Some(now), Some(wanted)) = (now.as_object(), wanted.as_object()) else {
        return Err(ApiError::internal());
    };
    Ok(wanted
        .iter()
        .filter(|(k, v)| now.get(*k).unwrap_or(&serde_json::Value::Null) != *v)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect())
}

/// The ChangeRequest `namespace/name` of `cluster` was deleted: its change
/// is cancelled if it has not started, else the resource is detached and
/// that is recorded on the change. Answers the change's number, if any.
pub async fn delete_change_request(
    state: &AppState,
    cluster: &str,
    namespace: &str,
    name: &str,
    uid: &str,
) -> ApiResult<Option<ChangeRecord>> {
    let key = key(cluster, namespace, CHANGE_REQUEST, name);
    let store = state.store.as_ref();
    let Some(link) = store.resource_link(&key).await? else {
        return Ok(None);
    };
    // Deleting a newer resource under the same name is not ours to judge
    // by an older uid (and the other way round).
    if !uid.is_empty() && link.uid != uid {
        return Ok(None);
    }
    // A cluster acts only for the tenants bound to it, deletions included.
    let tenant = state
        .snapshots
        .bound_to(state, cluster)
        .await?
        .into_iter()
        .find(|t| t.id == link.tenant)
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    let mut c = load(store, tenant.id, &ChangeNumber(link.number).to_string()).await?;
    let actor = format!("operator of cluster {cluster}");
    let now = state.now();
    let place = json!({ "cluster": cluster, "namespace": namespace, "name": name });
    if !c.state.is_final() {
        let expected = c.version;
        let not_started = matches!(
            c.state,
            ChangeState::Draft
                | ChangeState::Submitted
                | ChangeState::AwaitingApproval
                | ChangeState::Approved
                | ChangeState::Scheduled
                | ChangeState::Rejected
        );
        let write = if not_started {
            move_to(&mut c, ChangeState::Cancelled)?;
            ChangeWrite {
                events: vec![event(
                    &actor,
                    &c,
                    "change.cancelled",
                    json!({ "note": "its ChangeRequest was deleted", "resource": place }),
                    now,
                )],
                ..Default::default()
            }
        } else {
            ChangeWrite {
                events: vec![event(
                    &actor,
                    &c,
                    "change.detached",
                    json!({ "resource": place }),
                    now,
                )],
                ..Default::default()
            }
        };
        c = save(state, &c, expected, write, now).await?;
        state.writes.note(Some(tenant.slug.as_str()));
    }
    store.unlink_resource(&key, link.number).await?;
    Ok(Some(record(state, &tenant, &c, link.generation).await?))
}

/// The change as a resource's status shows it.
pub async fn record(
    state: &AppState,
    tenant: &Tenant,
    c: &Change,
    generation: i64,
) -> ApiResult<ChangeRecord> {
    let store = state.store.as_ref();
    let approvals = store.approvals(tenant.id, c.number).await?;
    let mut ids = workflow::ids_in(c);
    ids.extend(approvals.iter().filter_map(|a| a.on_behalf_of));
    let emails = Emails::load(store, ids).await?;
    let given = approvals
        .iter()
        .filter(|a| {
            a.revision == c.revision && a.decision == changegate_core::board::Decision::Approve
        })
        .count() as i64;
    let mut awaiting = Vec::new();
    if !c.plan.is_empty() && c.state.takes_decisions() {
        let votes = workflow::votes(store, c).await?;
        if let changegate_core::approval::PlanStatus::Pending { boards } = c.plan.status(&votes) {
            awaiting = boards
                .into_iter()
                .map(|b| Awaiting {
                    board: b.board,
                    needed: i64::from(b.needed),
                    from: b.awaiting.into_iter().map(|u| emails.of(u)).collect(),
                })
                .collect();
        }
    }
    let needed = given + awaiting.iter().map(|a| a.needed).sum::<i64>();
    let decisions = approvals
        .iter()
        .map(|a| Decision {
            approver: a.approver_email.to_string(),
            decision: a.decision.as_str().to_string(),
            channel: a.channel.as_str().to_string(),
            at: a.at,
            comment: a.comment.clone(),
            on_behalf_of: a.on_behalf_of.map(|u| emails.of(u)),
            revision: a.revision,
        })
        .collect();
    let now = state.now();
    let (hold, next_window) = if c.state.is_final() {
        (None, None)
    } else {
        let snapshot = state.snapshots.of(state, tenant).await?;
        let hold = if c.state.is_approved() {
            snapshot
                .gate
                .holds_back(c.number, now)
                .map(|(reason, message)| Hold {
                    reason: reason.as_str().to_string(),
                    message,
                })
        } else {
            None
        };
        let next = snapshot
            .gate
            .next_window(c.kind, now)
            .map(|(name, opens_at)| NextWindow { name, opens_at });
        (hold, next)
    };
    let (rollout, rollback) = super::followed(state, tenant, c.number).await?;
    Ok(ChangeRecord {
        changed_at: Some(c.updated_at),
        rollout,
        rollback,
        number: c.number.to_string(),
        phase: c.state.as_str().to_string(),
        revision: c.revision,
        fingerprint: c.fingerprint.clone(),
        approvals_given: given,
        approvals_needed: needed,
        awaiting,
        decisions,
        next_window,
        url: format!(
            "{}/t/{}/changes/{}",
            state.public_url.trim_end_matches('/'),
            tenant.slug,
            c.number
        ),
        hold,
        generation,
    })
}

/// The ChangeRequests of `cluster` linked to changes, in the tenants
/// bound to it.
pub async fn linked_change_requests(
    state: &AppState,
    cluster: &str,
) -> ApiResult<Vec<LinkedResource>> {
    super::linked(state, cluster, CHANGE_REQUEST, |n| {
        ChangeNumber(n).to_string()
    })
    .await
}
