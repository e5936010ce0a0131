//! What a change's content decides under its tenant's current policy: the
//! risk level, the boards routed and their approvers frozen, and for a
//! standard change whether it stays inside what its template
//! pre-approves. Submission and every material edit record it; the change
//! form's preview shows it.

use changegate_core::approval::{self, ApprovalPlan, FreezeError};
use changegate_core::board::BoardSpec;
use changegate_core::catalogue::Scope;
use changegate_core::change::{ChangeType, RiskLevel};
use changegate_core::policy::{BeyondTemplate, PolicySpec};
use changegate_core::{TenantId, UserId};
use changegate_store::{ChangeContent, Store};
use chrono::NaiveDate;

use crate::error::ApiError;
use crate::workflow::{self, People};

/// The people of a change who do not approve its revision: its
/// requester, whoever recorded the revision (submitted or edited it), and
/// its implementer where the policy says so.
#[derive(Debug, Clone, Copy)]
pub struct Authors {
    pub requester: UserId,
    pub editor: Option<UserId>,
    pub implementer: Option<UserId>,
}

/// Freeze the approvers a change by `authors` needs now under `policy`.
pub fn freeze(
    authors: Authors,
    policy: &PolicySpec,
    routed: &[String],
    boards: &[BoardSpec],
    people: &People,
) -> Result<ApprovalPlan, ApiError> {
    let mut excluded = vec![authors.requester];
    excluded.extend(authors.editor);
    if policy.implementer_may_not_approve {
        excluded.extend(authors.implementer);
    }
    approval::freeze(routed, boards, |m| people.resolve(m), &excluded).map_err(|e| match e {
        FreezeError::UnknownBoard { .. } => {
            ApiError::invalid("routing", format!("{e}; fix the tenant's policy"))
        }
        _ => ApiError::invalid(
            "approvers",
            format!("{e}; ask the change manager to fix the board"),
        ),
    })
}

/// What submitting a change decides under the tenant's current policy.
pub struct Assessment {
    pub policy_version: i64,
    pub policy: PolicySpec,
    /// The type it is approved as: a standard change beyond its template
    /// is approved as a normal one where the policy routes it so.
    pub kind: ChangeType,
    pub level: RiskLevel,
    pub score: i64,
    /// The boards the policy routes the change to.
    pub routed: Vec<String>,
    /// Their members, frozen: who must approve.
    pub plan: ApprovalPlan,
    /// What a standard change names beyond its template (routed as normal).
    pub beyond_template: Vec<String>,
}

/// Assess a change of `kind` with `content`: its risk (a standard change
/// inside its current template is low risk, pre-approved; any other from
/// the questionnaire), the boards routed and the approvers frozen from
/// them.
pub async fn assess(
    store: &dyn Store,
    tenant: TenantId,
    kind: ChangeType,
    content: &ChangeContent,
    authors: Authors,
    today: NaiveDate,
) -> Result<Assessment, ApiError> {
    let (policy_version, policy) = workflow::policy(store, tenant).await?;
    let mut approved_as = kind;
    let mut beyond_template = Vec::new();
    if kind == ChangeType::Standard {
        beyond_template = beyond_template_of(store, tenant, content, today).await?;
        if !beyond_template.is_empty() {
            match policy.standard_beyond_template {
                BeyondTemplate::Refuse => {
                    return Err(ApiError::invalid(
                        "template",
                        format!(
                            "this standard change goes beyond its template {:?}: {}; keep to the template, or raise a normal change",
                            content.template.as_deref().unwrap_or_default(),
                            beyond_template.join("; ")
                        ),
                    ));
                }
                BeyondTemplate::RouteAsNormal => approved_as = ChangeType::Normal,
            }
        }
    }
    let (level, score) = match approved_as {
        ChangeType::Standard => (RiskLevel::Low, 0),
        _ => {
            let a = policy.questionnaire.assess(&content.risk_answers)?;
            (a.level, i64::from(a.score))
        }
    };
    let routed = policy.routing.boards_for(approved_as, level);
    let boards = workflow::boards(store, tenant).await?;
    let people = People::load(store, tenant).await?;
    let plan = freeze(authors, &policy, &routed, &boards, &people)?;
    Ok(Assessment {
        policy_version,
        policy,
        kind: approved_as,
        level,
        score,
        routed,
        plan,
        beyond_template,
    })
}

/// What a standard change names beyond its template; the template must
/// exist and be current.
async fn beyond_template_of(
    store: &dyn Store,
    tenant: TenantId,
    content: &ChangeContent,
    today: NaiveDate,
) -> Result<Vec<String>, ApiError> {
    let name = content.template.clone().ok_or_else(|| {
        ApiError::invalid(
            "template",
            "a standard change names its pre-approved template",
        )
    })?;
    let template = workflow::template(store, tenant, &name)
        .await?
        .ok_or_else(|| {
            ApiError::invalid(
                "template",
                format!("no template {name:?} in this tenant; raise a normal change instead"),
            )
        })?;
    if !template.is_current(today) {
        return Err(ApiError::invalid(
            "template",
            format!(
                "template {name:?} was due for review on {}; ask the change manager to renew it, or raise a normal change",
                template.review_due
            ),
        ));
    }
    let items = workflow::configuration_items(store, tenant).await?;
    let scope = Scope {
        configuration_items: &content.configuration_items,
        artifacts: &content.artifacts,
        implementation_plan: &content.implementation_plan,
        backout_plan: &content.backout_plan,
    };
    Ok(template.beyond(&scope, |item| {
        items
            .iter()
            .find(|(name, _)| name == item)
            .map(|(_, ci)| ci.kind.clone())
    }))
}
