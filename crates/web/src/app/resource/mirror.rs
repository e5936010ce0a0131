//! Mirrors (DESIGN §7): every change in flight on a configuration item
//! bound to a cluster that has no resource of its own (raised in the
//! portal, by e-mail or through the API, not from a ChangeRequest), shown there
//! as a read-only ChangeRequest `chg-<n>` in each namespace its items are
//! bound in, so `kubectl get chg` shows the whole truth and kubectl
//! approval works wherever a change was raised; and every window and
//! blackout of the tenant as a MaintenanceWindow `mw-<name>` in each of its
//! namespaces (but where the window's own resource stands). Only the
//! tenants bound to the cluster, only into their own namespaces (the
//! operator checks the namespace's label).

use changegate_core::ChangeNumber;
use changegate_core::catalogue::Enforcement as Binding;
use changegate_core::change::ChangeState;
use changegate_resources::change_request::{Backout, ChangeRequestSpec, Target, WorkloadKind};
use changegate_resources::maintenance_window::MaintenanceWindowSpec;
use changegate_resources::wire::{MirroredChange, MirroredWindow, Mirrors};
use changegate_store::{Change, Tenant};
use std::collections::{BTreeMap, BTreeSet};

use crate::AppState;
use crate::error::ApiResult;

/// What `cluster` mirrors now.
pub async fn mirrors(state: &AppState, cluster: &str) -> ApiResult<Mirrors> {
    let mut changes = Vec::new();
    let mut windows = Vec::new();
    let own_windows = state
        .store
        .resource_links(cluster, super::MAINTENANCE_WINDOW)
        .await?;
    for tenant in state.snapshots.bound_to(state, cluster).await?.iter() {
        changes.extend(of_tenant(state, tenant, cluster).await?);
        let snapshot = state.snapshots.of(state, tenant).await?;
        for (name, spec) in &snapshot.windows {
            windows.push(MirroredWindow {
                tenant: tenant.slug.to_string(),
                name: changegate_resources::window_mirror_name(name),
                spec: MaintenanceWindowSpec::from_server(spec),
                record: super::window::window_record(state, name, spec)?,
                except: own_windows
                    .iter()
                    .filter(|l| l.tenant == tenant.id && l.key.name == *name)
                    .map(|l| l.key.namespace.clone())
                    .collect(),
            });
        }
    }
    Ok(Mirrors { changes, windows })
}

/// The change `number` of `tenant` mirrored as `name` in `namespace` of
/// `cluster`, if it is mirrored there now.
pub async fn mirrored(
    state: &AppState,
    tenant: &Tenant,
    cluster: &str,
    namespace: &str,
    number: ChangeNumber,
) -> ApiResult<Option<Change>> {
    let snapshot = state.snapshots.of(state, tenant).await?;
    let Some(gc) = snapshot.changes.iter().find(|c| c.number == number) else {
        return Ok(None);
    };
    let here = bound_here(&snapshot.items, cluster);
    let in_namespace = gc.configuration_items.iter().any(|i| {
        here.get(i.as_str())
            .is_some_and(|b| b.namespace == namespace)
    });
    if !in_flight(gc.state) || !in_namespace {
        return Ok(None);
    }
    let has_its_own = state
        .store
        .change_origins(tenant.id)
        .await?
        .into_iter()
        .any(|o| o.number == number.0);
    if has_its_own {
        return Ok(None);
    }
    Ok(Some(state.store.change(tenant.id, number).await?))
}

async fn of_tenant(
    state: &AppState,
    tenant: &Tenant,
    cluster: &str,
) -> ApiResult<Vec<MirroredChange>> {
    let snapshot = state.snapshots.of(state, tenant).await?;
    let here = bound_here(&snapshot.items, cluster);
    if here.is_empty() {
        return Ok(Vec::new());
    }
    // Changes raised from a ChangeRequest have a resource of their own.
    let has_its_own: BTreeSet<i64> = state
        .store
        .change_origins(tenant.id)
        .await?
        .into_iter()
        .map(|o| o.number)
        .collect();
    let mut out = Vec::new();
    for gc in snapshot
        .changes
        .iter()
        .filter(|c| in_flight(c.state) && !has_its_own.contains(&c.number.0))
    {
        let namespaces: BTreeSet<&str> = gc
            .configuration_items
            .iter()
            .filter_map(|i| here.get(i.as_str()).map(|b| b.namespace.as_str()))
            .collect();
        if namespaces.is_empty() {
            continue;
        }
        let c = state.store.change(tenant.id, gc.number).await?;
        let record = super::change_request::record(state, tenant, &c, 0).await?;
        for namespace in namespaces {
            out.push(MirroredChange {
                tenant: tenant.slug.to_string(),
                namespace: namespace.to_string(),
                name: changegate_resources::mirror_name(&c.number.to_string()),
                spec: spec_of(&c, &here, namespace),
                record: record.clone(),
            });
        }
    }
    Ok(out)
}

/// Raised and not over: drafts are nobody's business yet.
fn in_flight(s: ChangeState) -> bool {
    !s.is_final() && s != ChangeState::Draft
}

/// The tenant's configuration items bound to workloads of `cluster`.
fn bound_here<'a>(
    items: &'a [(String, changegate_core::catalogue::ConfigurationItem)],
    cluster: &str,
) -> BTreeMap<&'a str, &'a changegate_core::catalogue::WorkloadBinding> {
    items
        .iter()
        .filter_map(|(name, item)| match &item.enforcement {
            Some(Binding::Kubernetes(b)) if b.cluster == cluster => Some((name.as_str(), b)),
            _ => None,
        })
        .collect()
}

/// The change as a ChangeRequest's spec says it: its content, and each of
/// its items bound in `namespace` by name as a target with the approved
/// content as images.
fn spec_of(
    c: &Change,
    here: &BTreeMap<&str, &changegate_core::catalogue::WorkloadBinding>,
    namespace: &str,
) -> ChangeRequestSpec {
    let content = &c.content;
    let targets = content
        .configuration_items
        .iter()
        .filter_map(|i| here.get(i.as_str()))
        .filter(|b| b.namespace == namespace)
        .filter_map(|b| {
            let kind: WorkloadKind =
                serde_json::from_value(serde_json::Value::String(b.kind.clone())).ok()?;
            Some(Target {
                kind,
                name: Some(b.name.clone()?),
                selector: None,
                images: content.artifacts.clone(),
            })
        })
        .collect();
    ChangeRequestSpec {
        type_: c.kind,
        title: content.title.clone(),
        description: content.description.clone(),
        justification: content.justification.clone(),
        risk_answers: content.risk_answers.clone(),
        template: content.template.clone(),
        configuration_items: content.configuration_items.clone(),
        targets,
        planned_start: content.planned_start,
        planned_end: content.planned_end,
        window: None,
        implementation_plan: content.implementation_plan.clone(),
        backout: Backout {
            plan: content.backout_plan.clone(),
            automatic: content.automatic_rollback,
        },
        test_plan: content.test_plan.clone(),
        test_evidence: content.test_evidence.clone(),
        implementer: None,
        communication_plan: content.communication_plan.clone(),
        submit: true,
    }
}
