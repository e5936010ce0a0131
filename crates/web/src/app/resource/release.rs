//! Releases and the server's releases they stand for. A Release names its
//! changes as ChangeRequests of its namespace (through their links) or as
//! `CHG-n` of the namespace's tenant. A release delivers approved
//! changes: until every change named is approved, the server holds
//! nothing and answers what the resource waits for; then the release is
//! created as the resource's creator (a release manager of the tenant)
//! and linked in the same write. After that a new generation is an edit
//! by its editor, through the rules every edit of a release follows (a
//! moved slot or a changed runbook reopens what was authorized). Phases,
//! steps and outcome are recorded on the server (portal, CLI, API); the
//! status shows them, for the resource's tenant only.

use changegate_core::authz::Principal;
use changegate_core::change::ChangeState;
use changegate_core::release::ReleaseState;
use changegate_core::{ChangeNumber, ReleaseNumber, TenantId};
use changegate_resources::release::{ReleaseSpec, StepStatus};
use changegate_resources::wire::{LinkedResource, ReleaseDeleted, ReleaseRecord, ReleaseSync};
use changegate_store::{Release, ReleaseWrite, ResourceKey, ResourceLink, StoreError, Tenant};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

use super::change_request::CHANGE_REQUEST;
use super::{bound_tenant, key, mapped};
use crate::AppState;
use crate::app::release::plan::{
    self, EditReleaseBody, NewReleaseBody, ReleaseChangeRef, StepBody,
};
use crate::app::release::{Loaded, save, steps_seen_by, to_all};
use crate::error::{ApiError, ApiResult};
use crate::schedule;

/// The kind of resource a release's link names.
pub const RELEASE: &str = "Release";

/// Brings the release of the Release `namespace/name` of `cluster` in
/// step with `body` (its latest spec) and answers its record.
pub async fn sync_release(
    state: &AppState,
    cluster: &str,
    namespace: &str,
    name: &str,
    body: ReleaseSync,
) -> ApiResult<ReleaseRecord> {
    let tenant = bound_tenant(state, cluster, &body.tenant).await?;
    let key = key(cluster, namespace, RELEASE, name);
    let mut replaces = None;
    if let Some(link) = state.store.resource_link(&key).await? {
        if link.tenant != tenant.id {
            return Err(ApiError::conflict(format!(
                "this Release's place stands for a release of another tenant; the namespace was labelled for {} after it was applied: delete the resource and apply it again",
                tenant.slug
            )));
        }
        let number = ReleaseNumber(link.number);
        let r = state.store.release(number).await?;
        // A finished release stays the resource's until the resource is
        // replaced: a new uid under the same name plans a new one.
        let over = matches!(r.state, ReleaseState::Closed | ReleaseState::Cancelled);
        if !over || link.uid == body.uid {
            return follow(state, &tenant, &key, &link, r, body).await;
        }
        replaces = Some(number);
    }
    create(state, &tenant, &key, replaces, body).await
}

/// The changes a spec names, as numbers of the tenant; or what the
/// release waits for (a ChangeRequest not on the server yet, a change
/// not approved yet).
enum Named {
    Changes(Vec<(String, ChangeNumber)>),
    Waiting(String),
}

async fn named(
    state: &AppState,
    tenant: &Tenant,
    key: &ResourceKey,
    spec: &ReleaseSpec,
) -> ApiResult<Named> {
    let mut out = Vec::new();
    for (i, r) in spec.changes.iter().enumerate() {
        let number = match r.parse::<ChangeNumber>() {
            Ok(n) => n,
            Err(_) => {
                let at = super::key(&key.cluster, &key.namespace, CHANGE_REQUEST, r);
                match state.store.resource_link(&at).await? {
                    Some(link) if link.tenant == tenant.id => ChangeNumber(link.number),
                    _ => {
                        return Ok(Named::Waiting(format!(
                            "spec.changes[{i}]: ChangeRequest {r} of namespace {} has no change on the server yet; the release is created once it has and is approved",
                            key.namespace
                        )));
                    }
                }
            }
        };
        out.push((r.clone(), number));
    }
    Ok(Named::Changes(out))
}

/// The change number a spec's reference stands for.
fn number_of(named: &[(String, ChangeNumber)], r: &str) -> Option<ChangeNumber> {
    let wanted = r.parse::<ChangeNumber>().ok();
    named
        .iter()
        .find(|(name, n)| name == r || Some(*n) == wanted)
        .map(|(_, n)| *n)
}

/// The runbook of `spec` as the release API takes it, each step's change
/// as its number.
fn runbook(spec: &ReleaseSpec, named: &[(String, ChangeNumber)]) -> Vec<StepBody> {
    spec.runbook
        .iter()
        .map(|s| StepBody {
            kind: s.kind.to_string(),
            title: s.title.clone(),
            owner: s.owner.clone(),
            change: s.change.as_deref().map(|c| match number_of(named, c) {
                Some(n) => n.to_string(),
                // Not one of the changes: refused by the plan, naming it.
                None => c.to_string(),
            }),
        })
        .collect()
}

/// The changes of `named` as the release API takes them.
fn refs(tenant: &Tenant, named: &[(String, ChangeNumber)]) -> Vec<ReleaseChangeRef> {
    named
        .iter()
        .map(|(_, n)| ReleaseChangeRef {
            tenant: tenant.slug.to_string(),
            change: n.to_string(),
        })
        .collect()
}

/// An error of the release API, naming the resource's field instead.
fn in_spec(mut e: ApiError) -> ApiError {
    if let Some(field) = e.field.take() {
        let field = match field.strip_suffix(".change") {
            Some(change) if change.starts_with("changes[") => change.to_string(),
            _ => field,
        };
        let field = match field.as_str() {
            "planned_start" => "plannedStart".to_string(),
            "planned_end" => "plannedEnd".to_string(),
            _ => field,
        };
        e.field = Some(format!("spec.{field}"));
    }
    e
}

fn waiting(why: String, generation: i64) -> ReleaseRecord {
    ReleaseRecord {
        number: None,
        phase: "waiting".into(),
        waiting: Some(why),
        steps: Vec::new(),
        conflicts: Vec::new(),
        outcome: None,
        url: None,
        generation,
        rollout: Vec::new(),
        rollback: None,
    }
}

/// The first sync that finds every change approved: the release created
/// and linked in one write.
async fn create(
    state: &AppState,
    tenant: &Tenant,
    key: &ResourceKey,
    replaces: Option<ReleaseNumber>,
    body: ReleaseSync,
) -> ApiResult<ReleaseRecord> {
    let owner = mapped(
        state,
        tenant,
        &key.cluster,
        &body.requested_by,
        "requestedBy",
    )
    .await?;
    let named = match named(state, tenant, key, &body.spec).await? {
        Named::Changes(n) => n,
        Named::Waiting(why) => return Ok(waiting(why, body.generation)),
    };
    for (i, (r, n)) in named.iter().enumerate() {
        let c = match state.store.change(tenant.id, *n).await {
            Ok(c) => c,
            Err(StoreError::NotFound { .. }) => {
                return Err(ApiError::invalid(
                    format!("spec.changes[{i}]"),
                    format!("tenant {} has no change {n}", tenant.slug),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        if matches!(
            c.state,
            ChangeState::Draft
                | ChangeState::Submitted
                | ChangeState::AwaitingApproval
                | ChangeState::Rejected
        ) {
            let named_as = if r.parse::<ChangeNumber>().is_ok() {
                String::new()
            } else {
                format!(" (ChangeRequest {r})")
            };
            return Ok(waiting(
                format!(
                    "{n}{named_as} is {}; the release is created once every change it ships is approved",
                    c.state
                ),
                body.generation,
            ));
        }
    }
    let planned = plan::new_release(
        state,
        &owner,
        NewReleaseBody {
            name: key.name.clone(),
            description: body.spec.description.clone(),
            changes: refs(tenant, &named),
            planned_start: body.spec.planned_start,
            planned_end: body.spec.planned_end,
            runbook: runbook(&body.spec, &named),
        },
    )
    .await
    .map_err(in_spec)?;
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
        .create_resource_release(planned, &link, replaces, owner.email.as_str(), now)
        .await;
    let r = match created {
        Ok(r) => r,
        // Another replica (or an earlier try whose answer was lost)
        // created it: follow that one.
        Err(StoreError::Conflict { .. }) => {
            let link = state
                .store
                .resource_link(key)
                .await?
                .ok_or_else(|| ApiError::conflict("the resource's link moved; try again"))?;
            let r = state.store.release(ReleaseNumber(link.number)).await?;
            return follow(state, tenant, key, &link, r, body).await;
        }
        Err(e) => return Err(e.into()),
    };
    state.writes.note(Some(tenant.slug.as_str()));
    record(state, tenant, &r, body.generation).await
}

/// A later sync: what a new generation changes is an edit of the release
/// by the resource's editor.
async fn follow(
    state: &AppState,
    tenant: &Tenant,
    key: &ResourceKey,
    link: &ResourceLink,
    r: Release,
    body: ReleaseSync,
) -> ApiResult<ReleaseRecord> {
    if body.generation <= link.generation && body.uid == link.uid {
        return record(state, tenant, &r, link.generation).await;
    }
    let (author, field) = match &body.edited_by {
        Some(editor) => (editor.as_str(), "editedBy"),
        None => (body.requested_by.as_str(), "requestedBy"),
    };
    let editor = mapped(state, tenant, &key.cluster, author, field).await?;
    let named = match named(state, tenant, key, &body.spec).await? {
        Named::Changes(n) => n,
        Named::Waiting(why) => return Err(ApiError::invalid("spec.changes", why)),
    };
    let edit = edit_of(&r, tenant, &body.spec, &named);
    let r = if edit_is_empty(&edit) {
        r
    } else {
        let loaded = loaded(state, &editor, &r).await?;
        let edited = plan::edit(state, &editor, loaded, edit)
            .await
            .map_err(in_spec)?;
        state.writes.note(Some(tenant.slug.as_str()));
        edited
    };
    state
        .store
        .touch_resource_link(key, &body.uid, body.generation, state.now())
        .await?;
    record(state, tenant, &r, body.generation).await
}

/// The release as `caller` may act on it.
async fn loaded(state: &AppState, caller: &Principal, r: &Release) -> ApiResult<Loaded> {
    crate::app::release::load(state, caller, &r.number.to_string()).await
}

/// What of `spec` differs from the release `r`, as an edit.
fn edit_of(
    r: &Release,
    tenant: &Tenant,
    spec: &ReleaseSpec,
    named: &[(String, ChangeNumber)],
) -> EditReleaseBody {
    let wanted: Vec<(TenantId, ChangeNumber)> =
        named.iter().map(|(_, n)| (tenant.id, *n)).collect();
    let now: Vec<(TenantId, ChangeNumber)> =
        r.changes.iter().map(|i| (i.tenant, i.change)).collect();
    let steps = runbook(spec, named);
    let same_runbook = steps.len() == r.record.runbook.len()
        && steps.iter().zip(&r.record.runbook).all(|(a, b)| {
            a.kind == b.kind.to_string()
                && a.title.trim() == b.title
                && a.owner == b.owner
                && a.change == b.change
        });
    EditReleaseBody {
        name: None,
        description: (spec.description != r.record.description).then(|| spec.description.clone()),
        changes: (wanted != now).then(|| refs(tenant, named)),
        planned_start: spec.planned_start.filter(|s| Some(*s) != r.planned_start),
        planned_end: spec.planned_end.filter(|e| Some(*e) != r.planned_end),
        runbook: (!same_runbook).then_some(steps),
    }
}

fn edit_is_empty(e: &EditReleaseBody) -> bool {
    e.name.is_none()
        && e.description.is_none()
        && e.changes.is_none()
        && e.planned_start.is_none()
        && e.planned_end.is_none()
        && e.runbook.is_none()
}

/// The release as the resource's status shows it: only what concerns the
/// resource's tenant (a release may deliver other tenants' changes too).
async fn record(
    state: &AppState,
    tenant: &Tenant,
    r: &Release,
    generation: i64,
) -> ApiResult<ReleaseRecord> {
    let seen = BTreeSet::from([tenant.id]);
    let steps = steps_seen_by(r, &seen)
        .map(|(_, s)| StepStatus {
            title: s.title.clone(),
            status: s.status.to_string(),
            recorded_by: s.recorded_by.clone(),
        })
        .collect();
    let conflicts = if r.state.plannable() {
        let loaded = all_of(state, r).await?;
        let involved = schedule::involved(state, &loaded).await?;
        schedule::conflicts(state, r, &involved, r.planned_start, r.planned_end)
            .await?
            .into_iter()
            .filter(|c| c.tenant == tenant.slug.as_str())
            .filter(|c| {
                !r.record
                    .overrides
                    .iter()
                    .any(|o| c.overridable && o.conflict == c.key)
            })
            .map(|c| c.message)
            .collect()
    } else {
        Vec::new()
    };
    // What the operator followed under its changes (this tenant's).
    let mut rollout = Vec::new();
    let mut rollback = None;
    for item in r.changes.iter().filter(|i| i.tenant == tenant.id) {
        let (followed, rolled_back) = super::followed(state, tenant, item.change).await?;
        rollout.extend(followed);
        rollback = rollback.or(rolled_back);
    }
    Ok(ReleaseRecord {
        rollout,
        rollback,
        number: Some(r.number.to_string()),
        phase: r.state.to_string(),
        waiting: None,
        steps,
        conflicts,
        outcome: r.record.outcome.map(|o| o.to_string()),
        url: Some(format!(
            "{}/releases/{}",
            state.public_url.trim_end_matches('/'),
            r.number
        )),
        generation,
    })
}

/// The release with every tenant it delivers to (the operator acts for
/// the cluster, not for a person).
async fn all_of(state: &AppState, r: &Release) -> ApiResult<Loaded> {
    let tenants: BTreeMap<TenantId, Tenant> = state
        .snapshots
        .tenants(state)
        .await?
        .iter()
        .filter(|t| r.changes.iter().any(|i| i.tenant == t.id))
        .map(|t| (t.id, t.clone()))
        .collect();
    Ok(Loaded {
        release: r.clone(),
        tenants,
    })
}

/// The Release `namespace/name` of `cluster` was deleted: its release is
/// cancelled if it has not deployed, else the resource is detached and
/// that is recorded on the release (it goes on on the server).
pub async fn delete_release(
    state: &AppState,
    cluster: &str,
    namespace: &str,
    name: &str,
    uid: &str,
) -> ApiResult<ReleaseDeleted> {
    let key = key(cluster, namespace, RELEASE, name);
    let nothing = ReleaseDeleted {
        number: None,
        became: None,
    };
    let Some(link) = state.store.resource_link(&key).await? else {
        return Ok(nothing);
    };
    if !uid.is_empty() && link.uid != uid {
        return Ok(nothing);
    }
    let tenant = state
        .snapshots
        .bound_to(state, cluster)
        .await?
        .into_iter()
        .find(|t| t.id == link.tenant)
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    let r = state.store.release(ReleaseNumber(link.number)).await?;
    let loaded = all_of(state, &r).await?;
    let actor = format!("operator of cluster {cluster}");
    let place = json!({ "cluster": cluster, "namespace": namespace, "name": name });
    let became = if r.state.plannable() {
        plan::cancel(state, &loaded, &actor).await?;
        Some("cancelled")
    } else if !matches!(r.state, ReleaseState::Closed | ReleaseState::Cancelled) {
        let now = state.now();
        let write = ReleaseWrite {
            events: to_all(
                &loaded,
                &actor,
                "release.detached",
                json!({ "resource": place }),
                now,
            ),
            ..Default::default()
        };
        save(state, &r, r.version, write, now).await?;
        Some("detached")
    } else {
        None
    };
    if became.is_some() {
        state.writes.note(Some(tenant.slug.as_str()));
    }
    state.store.unlink_resource(&key, link.number).await?;
    Ok(ReleaseDeleted {
        number: Some(r.number.to_string()),
        became: became.map(str::to_string),
    })
}

/// The Releases of `cluster` linked to releases, in the tenants bound to it.
pub async fn linked_releases(state: &AppState, cluster: &str) -> ApiResult<Vec<LinkedResource>> {
    super::linked(state, cluster, RELEASE, |n| ReleaseNumber(n).to_string()).await
}
