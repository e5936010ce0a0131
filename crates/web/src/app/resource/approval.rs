//! Decisions written with kubectl (DESIGN §7, "Approval by kubectl"): a
//! person's own entry in a ChangeRequest's `status.approvals`, sent by the
//! operator's webhook before the patch is admitted. The Kubernetes user
//! name is mapped per cluster like a resource's author (a cluster vouches
//! only for its tenants' people; `system:` names and service accounts
//! never decide), the tenant's policy must accept the channel up to the
//! change's risk, and the decision then takes the one path every channel
//! takes (separation of duties, frozen approvers, the revision), recorded
//! with channel `kubernetes` and the cluster and user name on the audit
//! chain. A retry of a decision already recorded (the API server failed
//! after the webhook admitted it) is answered the same, recorded once.
//! A Release's phases are authorized the same way (`status.authorizations`,
//! release managers, through the one phase path).

use changegate_core::board::Decision;
use changegate_core::change::RiskLevel;
use changegate_resources::change_request::KubectlDecision;
use changegate_resources::wire::{
    ApprovalByKubectl, ApprovalRecorded, AuthorizationByKubectl, AuthorizationRecorded,
};
use changegate_store::{Change, Channel};
use serde_json::json;

use super::change_request::CHANGE_REQUEST;
use super::release::RELEASE;
use super::{bound_tenant, key, mapped};
use crate::AppState;
use crate::app::change::load;
use crate::app::decide::{Decide, record_decision};
use crate::error::{ApiError, ApiResult};
use crate::tenant::InTenant;
use crate::workflow;

/// Records (or, on a dry run, judges) `body`, the decision its user wrote
/// on the ChangeRequest `namespace/name` of `cluster`.
pub async fn approve_by_kubectl(
    state: &AppState,
    cluster: &str,
    namespace: &str,
    name: &str,
    body: ApprovalByKubectl,
) -> ApiResult<ApprovalRecorded> {
    let tenant = bound_tenant(state, cluster, &body.tenant).await?;
    let user = body.user.as_str();
    only_people(user)?;
    let number = decided_change(state, &tenant, cluster, namespace, name, &body.uid).await?;
    let caller = mapped(state, &tenant, cluster, user, "user").await?;
    let t = InTenant {
        caller,
        tenant: tenant.clone(),
    };
    let n = number.to_string();
    let c = load(state.store.as_ref(), tenant.id, &n).await?;
    accepted_by_policy(state, &t, &c).await?;
    let decision = match body.decision {
        KubectlDecision::Approved => Decision::Approve,
        KubectlDecision::Rejected => Decision::Reject,
    };
    // The same decision on the same revision by the same person through
    // this channel: a retry, answered as the first time.
    let recorded = state.store.approvals(tenant.id, c.number).await?;
    if recorded.iter().any(|a| {
        a.approver == t.caller.user
            && a.revision == body.revision
            && a.decision == decision
            && a.channel == Channel::Kubernetes
    }) {
        return Ok(answer(&t, &c, body.revision, decision, true));
    }
    let via = json!({ "cluster": cluster, "kubernetes_user": user,
                      "resource": { "namespace": namespace, "name": name } });
    let decided = record_decision(
        state,
        &t,
        &n,
        Decide {
            decision,
            comment: &body.comment,
            revision: body.revision,
            on_behalf_of: None,
            channel: Channel::Kubernetes,
            link: None,
            via: Some(via),
            dry_run: body.dry_run,
        },
    )
    .await?;
    if !body.dry_run {
        state.writes.note(Some(tenant.slug.as_str()));
    }
    Ok(answer(&t, &decided, body.revision, decision, !body.dry_run))
}

/// The change the ChangeRequest `namespace/name` (of that uid) stands for:
/// the one it raised, or, for a mirror `chg-<n>`, change n where it is
/// mirrored now.
async fn decided_change(
    state: &AppState,
    tenant: &changegate_store::Tenant,
    cluster: &str,
    namespace: &str,
    name: &str,
    uid: &str,
) -> ApiResult<changegate_core::ChangeNumber> {
    let link = state
        .store
        .resource_link(&key(cluster, namespace, CHANGE_REQUEST, name))
        .await?
        .filter(|l| l.tenant == tenant.id && l.uid == uid);
    if let Some(link) = link {
        return Ok(changegate_core::ChangeNumber(link.number));
    }
    if let Some(number) = changegate_resources::mirrored_number(name)
        && let Ok(number) = number.parse::<changegate_core::ChangeNumber>()
        && super::mirror::mirrored(state, tenant, cluster, namespace, number)
            .await?
            .is_some()
    {
        return Ok(number);
    }
    Err(ApiError::state(format!(
        "ChangeRequest {name} has no change on the server yet; wait until its status shows a number"
    )))
}

/// `system:` names (service accounts included) never decide.
fn only_people(user: &str) -> ApiResult<()> {
    if user.starts_with("system:") {
        return Err(ApiError::forbidden(format!(
            "{user} is a Kubernetes system identity or a service account; only people approve, each under their own name"
        )));
    }
    Ok(())
}

/// Records (or, on a dry run, judges) a phase of the release of the
/// Release `namespace/name` of `cluster`, authorized with kubectl by
/// `body.user` (a release manager of every tenant it delivers to).
pub async fn authorize_by_kubectl(
    state: &AppState,
    cluster: &str,
    namespace: &str,
    name: &str,
    body: AuthorizationByKubectl,
) -> ApiResult<AuthorizationRecorded> {
    let tenant = bound_tenant(state, cluster, &body.tenant).await?;
    let user = body.user.as_str();
    only_people(user)?;
    let link = state
        .store
        .resource_link(&key(cluster, namespace, RELEASE, name))
        .await?
        .filter(|l| l.tenant == tenant.id && l.uid == body.uid)
        .ok_or_else(|| {
            ApiError::state(format!(
                "Release {name} has no release on the server yet; wait until its status shows a number"
            ))
        })?;
    let caller = mapped(state, &tenant, cluster, user, "user").await?;
    let (_, policy) = workflow::policy(state.store.as_ref(), tenant.id).await?;
    if policy.kubernetes_approval_up_to.is_none() {
        return Err(ApiError::forbidden(format!(
            "tenant {}'s policy does not accept authorization by kubectl; authorize the phase in the portal, the CLI or the API",
            tenant.slug
        )));
    }
    let number = changegate_core::ReleaseNumber(link.number).to_string();
    let loaded = crate::app::release::load(state, &caller, &number).await?;
    crate::app::release::authorize_all(
        &caller,
        loaded.tenants.keys().copied(),
        changegate_core::authz::Action::Release,
    )?;
    let phase: changegate_core::release::Phase = body
        .phase
        .parse()
        .map_err(|e: changegate_core::ids::InvalidValue| ApiError::invalid("phase", e.message))?;
    let answer = |state: &str, recorded: bool| AuthorizationRecorded {
        release: number.clone(),
        authorized: phase.as_str().to_string(),
        by: caller.email.to_string(),
        phase: state.to_string(),
        recorded,
    };
    // Already authorized by this person: a retry, answered the same.
    let r = &loaded.release;
    if r.record
        .authorizations
        .iter()
        .any(|a| a.phase == phase && a.by == caller.email.as_str())
    {
        return Ok(answer(r.state.as_str(), true));
    }
    let judged = crate::app::release::judge_phase(
        state,
        &caller,
        &loaded,
        phase,
        &body.note,
        state.now(),
        body.dry_run,
    )
    .await?;
    if !body.dry_run {
        state.writes.note(Some(tenant.slug.as_str()));
    }
    Ok(answer(judged.state.as_str(), !body.dry_run))
}

/// Whether the tenant's policy takes decisions by kubectl on `c`.
async fn accepted_by_policy(state: &AppState, t: &InTenant, c: &Change) -> ApiResult<()> {
    let (_, policy) = workflow::policy(state.store.as_ref(), t.tenant.id).await?;
    let Some(up_to) = policy.kubernetes_approval_up_to else {
        return Err(ApiError::forbidden(format!(
            "tenant {}'s policy does not accept approval by kubectl; approve {} in the portal, by e-mail or through the API",
            t.tenant.slug, c.number
        )));
    };
    // A change whose risk is not known is treated as the highest.
    let risk = c.risk_level.unwrap_or(RiskLevel::Critical);
    if risk > up_to {
        return Err(ApiError::forbidden(format!(
            "{} is {} risk; tenant {}'s policy accepts approval by kubectl up to {} risk: approve it in the portal, by e-mail or through the API",
            c.number, risk, t.tenant.slug, up_to
        )));
    }
    Ok(())
}

fn answer(
    t: &InTenant,
    c: &Change,
    revision: i64,
    decision: Decision,
    recorded: bool,
) -> ApprovalRecorded {
    ApprovalRecorded {
        change: c.number.to_string(),
        revision,
        decision: decision.as_str().to_string(),
        approver: t.caller.email.to_string(),
        phase: c.state.as_str().to_string(),
        recorded,
    }
}
