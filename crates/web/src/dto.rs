//! What the API reads and writes: request bodies and views, with their
//! OpenAPI schemas. Views are built from store records; bodies are parsed
//! into domain values in the handlers.

use changegate_core::approval::PlanStatus;
use changegate_core::{Email, UserId};
use changegate_store::{Approval, Change, ChangeContent, Comment, Revision, Tenant};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct TenantView {
    pub slug: String,
    pub name: String,
    pub time_zone: String,
    pub created_at: DateTime<Utc>,
}

impl From<&Tenant> for TenantView {
    fn from(t: &Tenant) -> Self {
        TenantView {
            slug: t.slug.to_string(),
            name: t.name.clone(),
            time_zone: t.time_zone.clone(),
            created_at: t.created_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenantBody {
    /// Short name used in URLs, e.g. `client-a`.
    pub slug: String,
    pub name: String,
    /// IANA time zone, e.g. `Europe/Berlin`.
    #[serde(default = "utc")]
    pub time_zone: String,
}

fn utc() -> String {
    "UTC".into()
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInBody {
    pub email: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct MeView {
    pub email: String,
    pub name: String,
    pub kind: String,
    pub admin: bool,
    /// Roles per tenant slug.
    pub roles: BTreeMap<String, Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub email: String,
    pub name: String,
    pub kind: String,
    pub roles: Vec<String>,
    /// On adding: `created`, `updated` (roles granted) or `unchanged`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddUserBody {
    pub email: String,
    /// Needed when the user does not exist yet.
    #[serde(default)]
    pub name: Option<String>,
    /// `client` (default: a user of this tenant's company) or `msp`.
    #[serde(default)]
    pub kind: Option<String>,
    pub roles: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenBody {
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenView {
    /// Its id, to revoke it (`DELETE /api/v1/tokens/{id}`).
    pub id: i64,
    pub name: String,
    /// Shown once; only its hash is stored.
    pub token: String,
}

#[derive(Serialize, ToSchema)]
pub struct NamedSpec {
    pub name: String,
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct AppliedView {
    /// `created`, `updated` or `unchanged`.
    pub applied: String,
}

impl From<changegate_store::Applied> for AppliedView {
    fn from(a: changegate_store::Applied) -> Self {
        let s = match a {
            changegate_store::Applied::Created => "created",
            changegate_store::Applied::Updated => "updated",
            changegate_store::Applied::Unchanged => "unchanged",
        };
        AppliedView { applied: s.into() }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyTenantBody {
    pub name: String,
    #[serde(default = "utc")]
    pub time_zone: String,
}

#[derive(Serialize, ToSchema)]
pub struct PolicyView {
    /// On replacing: `created`, `updated` or `unchanged`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<String>,
    /// 0 is the built-in default a tenant works under until its policy is written.
    pub version: i64,
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DelegationBody {
    /// The approver whose seat is delegated: yourself, or (as an
    /// administrator of the tenant) someone who cannot, e.g. a departed user.
    pub from: String,
    /// Who decides in that seat meanwhile; never the administrator setting
    /// it for someone else.
    pub to: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Required when an administrator delegates someone else's seat: why.
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct NewChangeBody {
    /// `standard`, `normal` or `emergency`.
    #[serde(rename = "type")]
    pub kind: String,
    /// E-mail of the implementer, if already known.
    #[serde(default)]
    pub implementer: Option<String>,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub content: ChangeContent,
}

#[derive(Serialize, ToSchema)]
pub struct RiskView {
    pub level: String,
    pub score: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ChangeView {
    /// `CHG-<n>`
    pub number: String,
    pub tenant: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub state: String,
    pub title: String,
    pub requester: String,
    pub implementer: Option<String>,
    pub risk: Option<RiskView>,
    pub revision: i64,
    pub fingerprint: Option<String>,
    pub policy_version: Option<i64>,
    /// The boards frozen at submission and where each stands.
    #[schema(value_type = Object)]
    pub approval: Option<serde_json::Value>,
    #[schema(value_type = Object)]
    pub content: ChangeContent,
    pub submitted_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub approval_expires_at: Option<DateTime<Utc>>,
    pub retrospective_due_at: Option<DateTime<Utc>>,
    pub retrospective_overdue: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct ChangePage {
    pub items: Vec<ChangeView>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<String>,
}

/// Frozen approvers by e-mail, with each board's status.
#[derive(Serialize)]
pub struct ApprovalStatusView {
    pub status: PlanStatusView,
    pub boards: Vec<FrozenBoardView>,
}

#[derive(Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum PlanStatusView {
    Approved,
    Rejected {
        board: String,
        reason: serde_json::Value,
    },
    Pending {
        waiting_for: Vec<PendingView>,
    },
}

#[derive(Serialize)]
pub struct PendingView {
    pub board: String,
    pub needed: u32,
    pub awaiting: Vec<String>,
}

#[derive(Serialize)]
pub struct FrozenBoardView {
    pub name: String,
    pub rule: String,
    pub members: Vec<String>,
    pub mandatory: Vec<String>,
    pub chair: Option<String>,
}

impl PlanStatusView {
    pub fn from(status: PlanStatus, email: &dyn Fn(UserId) -> String) -> Self {
        match status {
            PlanStatus::Approved => PlanStatusView::Approved,
            PlanStatus::Rejected { board, reason } => PlanStatusView::Rejected {
                board,
                reason: serde_json::to_value(reason).unwrap_or_default(),
            },
            PlanStatus::Pending { boards } => PlanStatusView::Pending {
                waiting_for: boards
                    .into_iter()
                    .map(|b| PendingView {
                        board: b.board,
                        needed: b.needed,
                        awaiting: b.awaiting.into_iter().map(email).collect(),
                    })
                    .collect(),
            },
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct EditChangeBody {
    /// Content fields to replace; the others are kept.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// `approve` or `reject`.
    pub decision: String,
    #[serde(default)]
    pub comment: String,
    /// Decide in the seat of this approver (needs their active delegation to you).
    #[serde(default)]
    pub on_behalf_of: Option<String>,
    /// The revision you reviewed (required): a decision binds to what was
    /// read, and is refused when the change has another revision.
    #[serde(default)]
    #[schema(required = true)]
    pub revision: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ApprovalView {
    pub approver: String,
    pub on_behalf_of: Option<String>,
    pub decision: String,
    pub comment: String,
    pub channel: String,
    pub revision: i64,
    pub fingerprint: String,
    pub policy_version: i64,
    pub at: DateTime<Utc>,
}

impl ApprovalView {
    pub fn from(a: &Approval, email: &dyn Fn(UserId) -> String) -> Self {
        ApprovalView {
            approver: a.approver_email.to_string(),
            on_behalf_of: a.on_behalf_of.map(email),
            decision: a.decision.as_str().to_string(),
            comment: a.comment.clone(),
            channel: a.channel.as_str().to_string(),
            revision: a.revision,
            fingerprint: a.fingerprint.clone(),
            policy_version: a.policy_version,
            at: a.at,
        }
    }
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TransitionBody {
    /// A note for the record (why, what happened).
    pub note: String,
    /// complete: what was updated in the configuration items' documentation.
    pub documentation: String,
    /// fail: `true` when the backout plan was executed and the previous state restored.
    pub rolled_back: bool,
    /// fail with rollback: what was restored.
    pub restored: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    /// `succeeded`, `failed` or `rolled-back`.
    pub outcome: String,
    #[serde(default)]
    pub notes: String,
    #[serde(default)]
    pub lessons: String,
}

/// The client's acceptance of a tested change.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct AcceptanceBody {
    #[serde(default)]
    pub comment: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    pub body: String,
}

#[derive(Serialize, ToSchema)]
pub struct CommentView {
    pub author: String,
    pub body: String,
    pub at: DateTime<Utc>,
}

impl From<&Comment> for CommentView {
    fn from(c: &Comment) -> Self {
        CommentView {
            author: c.author_email.to_string(),
            body: c.body.clone(),
            at: c.at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RevisionView {
    pub revision: i64,
    pub fingerprint: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// Content fields that differ from the previous revision.
    pub changed: Vec<String>,
    #[schema(value_type = Object)]
    pub content: ChangeContent,
}

impl RevisionView {
    pub fn from(r: &Revision, prev: Option<&Revision>, email: &dyn Fn(UserId) -> String) -> Self {
        let changed = match prev {
            None => vec![],
            Some(p) => {
                let (a, b) = (
                    serde_json::to_value(&p.content).unwrap_or_default(),
                    serde_json::to_value(&r.content).unwrap_or_default(),
                );
                match (a, b) {
                    (serde_json::Value::Object(a), serde_json::Value::Object(b)) => b
                        .iter()
                        .filter(|(k, v)| a.get(*k) != Some(v))
                        .map(|(k, _)| k.clone())
                        .collect(),
                    _ => vec![],
                }
            }
        };
        RevisionView {
            revision: r.revision,
            fingerprint: r.fingerprint.clone(),
            created_by: email(r.created_by),
            created_at: r.created_at,
            changed,
            content: r.content.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditView {
    pub tenant: String,
    pub events: usize,
    pub intact: bool,
    /// The first broken link, when the chain was tampered with.
    #[schema(value_type = Object)]
    pub first_break: Option<serde_json::Value>,
    /// The hash of the chain's last event.
    pub head_hash: String,
    /// The sequence number of the last event the server recorded.
    pub head_seq: i64,
}

/// Build a change view; `email` maps user ids to addresses.
pub fn change_view(
    c: &Change,
    tenant_slug: &str,
    email: &dyn Fn(UserId) -> String,
    approval: Option<serde_json::Value>,
) -> ChangeView {
    ChangeView {
        number: c.number.to_string(),
        tenant: tenant_slug.to_string(),
        kind: c.kind.as_str().to_string(),
        state: c.state.as_str().to_string(),
        title: c.content.title.clone(),
        requester: email(c.requester),
        implementer: c.implementer.map(email),
        risk: c.risk_level.map(|l| RiskView {
            level: l.as_str().to_string(),
            score: c.risk_score.unwrap_or(0),
        }),
        revision: c.revision,
        fingerprint: c.fingerprint.clone(),
        policy_version: c.policy_version,
        approval,
        content: c.content.clone(),
        submitted_at: c.submitted_at,
        decided_at: c.decided_at,
        approval_expires_at: c.approval_expires_at,
        retrospective_due_at: c.retrospective_due_at,
        retrospective_overdue: c.retrospective_overdue,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

/// An e-mail parsed from a body field, with the field named on error.
pub fn email_field(field: &str, s: &str) -> Result<Email, crate::error::ApiError> {
    Email::parse(s).map_err(|e| crate::error::ApiError::invalid(field, e.message))
}
