//! The records the store reads and writes. Domain types come from
//! `changegate-core`; these add ids, timestamps and optimistic versions.

use changegate_core::approval::ApprovalPlan;
use changegate_core::board::Decision;
use changegate_core::change::{ChangeState, ChangeType, RiskLevel};
use changegate_core::{ChangeNumber, Email, Slug, TenantId, UserId, UserKind};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What an idempotent write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Applied {
    Created,
    Updated,
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTenant {
    pub slug: Slug,
    pub name: String,
    pub time_zone: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    pub id: TenantId,
    pub slug: Slug,
    pub name: String,
    pub time_zone: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: Email,
    pub name: String,
    pub kind: UserKind,
    pub admin: bool,
    /// A client user's company; `None` for MSP staff.
    pub tenant: Option<TenantId>,
    pub password_hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub name: String,
    pub kind: UserKind,
    pub admin: bool,
    pub tenant: Option<TenantId>,
    pub password_hash: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl User {
    /// How pages and messages name them: their name, else their address.
    pub fn name_or_email(&self) -> &str {
        if self.name.trim().is_empty() {
            self.email.as_str()
        } else {
            &self.name
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: i64,
    pub user: UserId,
    pub name: String,
    pub scope: TokenScope,
    pub created_at: DateTime<Utc>,
}

/// A token as its owner and administrators see it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: i64,
    pub user: UserId,
    pub user_email: Email,
    pub name: String,
    pub scope: TokenScope,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Which tokens to list (all given conditions hold).
#[derive(Debug, Clone, Default)]
pub struct TokenFilter {
    pub user: Option<UserId>,
    pub gate_tenant: Option<TenantId>,
    pub id: Option<i64>,
}

/// What a token reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenScope {
    /// Everything its user may do.
    Full,
    /// A pipeline's token: the gate API of this tenant, with its user's roles there.
    Gate(TenantId),
    /// A cluster agent's token: the bundle of this cluster.
    Agent(String),
}

impl TokenScope {
    /// The two nullable columns that store it: gate tenant, agent cluster.
    pub fn columns(&self) -> (Option<i64>, Option<&str>) {
        match self {
            TokenScope::Full => (None, None),
            TokenScope::Gate(t) => (Some(t.0), None),
            TokenScope::Agent(c) => (None, Some(c)),
        }
    }

    pub fn from_columns(gate_tenant: Option<i64>, agent_cluster: Option<String>) -> Self {
        match (gate_tenant, agent_cluster) {
            (Some(t), _) => TokenScope::Gate(TenantId(t)),
            (None, Some(c)) => TokenScope::Agent(c),
            (None, None) => TokenScope::Full,
        }
    }
}

/// Kinds of named per-tenant policy objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Board,
    Window,
    Template,
    ConfigurationItem,
    /// A Kubernetes user name of a cluster mapped to a user of the tenant
    /// (named `<cluster>/<user name>`): who a resource's requester or
    /// editor is, as that cluster vouches.
    ClusterIdentity,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 5] = [
        ObjectKind::Board,
        ObjectKind::Window,
        ObjectKind::Template,
        ObjectKind::ConfigurationItem,
        ObjectKind::ClusterIdentity,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Board => "board",
            ObjectKind::Window => "window",
            ObjectKind::Template => "template",
            ObjectKind::ConfigurationItem => "configuration-item",
            ObjectKind::ClusterIdentity => "cluster-identity",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantObject {
    pub tenant: TenantId,
    pub kind: ObjectKind,
    pub name: String,
    /// JSON text.
    pub spec: String,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewDelegation {
    pub tenant: TenantId,
    pub from: UserId,
    pub to: UserId,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Set by an administrator for someone who cannot (a departed user):
    /// why, recorded with it. `None`: the approver delegated their own seat.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    pub id: i64,
    pub tenant: TenantId,
    pub from: UserId,
    pub to: UserId,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// What a requester writes; the fingerprint covers part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ChangeContent {
    pub title: String,
    pub description: String,
    pub justification: String,
    pub impact: String,
    pub risk_answers: BTreeMap<String, String>,
    pub configuration_items: Vec<String>,
    pub artifacts: Vec<String>,
    pub planned_start: Option<DateTime<Utc>>,
    pub planned_end: Option<DateTime<Utc>>,
    pub implementation_plan: String,
    pub test_plan: String,
    pub test_evidence: String,
    pub backout_plan: String,
    /// The backout plan is automatic: on a failed rollout the agent rolls
    /// the workload back to its previous revision by itself.
    pub automatic_rollback: bool,
    pub communication_plan: String,
    pub attachments: Vec<String>,
    pub template: Option<String>,
    /// The authorized change proposal (`PRP-<n>`) it is raised under.
    pub proposal: Option<String>,
}

impl ChangeContent {
    pub fn fingerprint(&self) -> String {
        changegate_core::fingerprint::fingerprint(&changegate_core::fingerprint::Content {
            description: &self.description,
            implementation_plan: &self.implementation_plan,
            backout_plan: &self.backout_plan,
            configuration_items: &self.configuration_items,
            artifacts: &self.artifacts,
            planned_start: self.planned_start,
            planned_end: self.planned_end,
            automatic_rollback: self.automatic_rollback,
            risk_answers: Some(&self.risk_answers),
            template: self.template.as_deref(),
        })
    }
}

/// Where a Kubernetes resource standing for a record lives (DESIGN §7):
/// one change (or release, or window) per place, adopted again by a
/// resource re-created there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceKey {
    pub cluster: String,
    pub namespace: String,
    /// e.g. `ChangeRequest`.
    pub kind: String,
    pub name: String,
}

/// A resource's link to what it stands for on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceLink {
    pub key: ResourceKey,
    pub tenant: TenantId,
    /// The number of what it stands for: the change (`CHG-n`) of a
    /// ChangeRequest, the release (`REL-n`) of a Release; 0 for a
    /// MaintenanceWindow (it stands for the tenant's window of its name).
    pub number: i64,
    /// The resource's `metadata.uid` last seen.
    pub uid: String,
    /// The resource generation the record holds.
    pub generation: i64,
    pub updated_at: DateTime<Utc>,
}

/// Where a change raised from a ChangeRequest was raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeOrigin {
    pub number: i64,
    pub cluster: String,
    pub namespace: String,
}

#[derive(Debug, Clone)]
pub struct NewChange {
    pub tenant: TenantId,
    pub kind: ChangeType,
    pub requester: UserId,
    pub implementer: Option<UserId>,
    pub content: ChangeContent,
}

/// A change request as stored. `version` is the optimistic lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub number: ChangeNumber,
    pub tenant: TenantId,
    pub kind: ChangeType,
    pub state: ChangeState,
    pub requester: UserId,
    pub implementer: Option<UserId>,
    pub risk_level: Option<RiskLevel>,
    pub risk_score: Option<i64>,
    pub revision: i64,
    /// Set at submission: what approvals sign.
    pub fingerprint: Option<String>,
    pub policy_version: Option<i64>,
    pub plan: ApprovalPlan,
    pub content: ChangeContent,
    pub submitted_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub approval_expires_at: Option<DateTime<Utc>>,
    pub retrospective_due_at: Option<DateTime<Utc>>,
    pub retrospective_overdue: bool,
    /// While awaiting approval: when the approvers still undecided are
    /// reminded (the policy's `reminderHours` after submission); cleared
    /// once they were.
    pub remind_at: Option<DateTime<Utc>>,
    /// While awaiting approval: when the change is escalated to the
    /// policy's backup approver; cleared once it was.
    pub escalate_at: Option<DateTime<Utc>>,
    /// The backup approver it was escalated to: they may decide in any
    /// undecided seat of this change's current revision.
    pub escalated_to: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

/// Approval channels (DESIGN §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    Portal,
    Email,
    Api,
    /// A patch of a ChangeRequest's `status.approvals` with kubectl.
    Kubernetes,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Portal => "portal",
            Channel::Email => "email",
            Channel::Api => "api",
            Channel::Kubernetes => "kubernetes",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Channel::Portal,
            Channel::Email,
            Channel::Api,
            Channel::Kubernetes,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

#[derive(Debug, Clone)]
pub struct NewApproval {
    pub approver: UserId,
    pub on_behalf_of: Option<UserId>,
    pub decision: Decision,
    pub comment: String,
    pub channel: Channel,
    pub at: DateTime<Utc>,
}

/// An approval as recorded: append-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub id: i64,
    pub change: ChangeNumber,
    pub revision: i64,
    pub approver: UserId,
    pub approver_email: Email,
    pub on_behalf_of: Option<UserId>,
    pub decision: Decision,
    pub comment: String,
    pub channel: Channel,
    pub fingerprint: String,
    pub policy_version: i64,
    pub at: DateTime<Utc>,
}

impl Approval {
    /// Whose vote it counts as.
    pub fn seat(&self) -> UserId {
        self.on_behalf_of.unwrap_or(self.approver)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub change: ChangeNumber,
    pub revision: i64,
    pub fingerprint: String,
    pub content: ChangeContent,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub id: i64,
    pub change: ChangeNumber,
    pub author: UserId,
    pub author_email: Email,
    pub body: String,
    pub at: DateTime<Utc>,
}

/// An audit event to append (the store seals it into the tenant's chain).
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: serde_json::Value,
    pub at: DateTime<Utc>,
}

/// Everything written together with a change.
#[derive(Debug, Clone, Default)]
pub struct ChangeWrite {
    pub approval: Option<NewApproval>,
    /// Record the change's current revision (at submission and on every material edit).
    pub record_revision: Option<UserId>,
    pub comment: Option<(UserId, String, DateTime<Utc>)>,
    pub events: Vec<NewEvent>,
    /// E-mails to send once this write commits (the outbox).
    pub messages: Vec<NewMessage>,
    /// Approval links those e-mails carry.
    pub links: Vec<NewLink>,
    /// The approval link this write uses up (by token hash); the write
    /// fails with a conflict on `approval_links.used_at` when it was used.
    pub use_link: Option<String>,
}

/// An e-mail for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub recipient: Email,
    pub subject: String,
    pub body: String,
    /// When it was written (the caller's clock): due from then.
    pub at: DateTime<Utc>,
}

/// An e-mail in the outbox, due for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: i64,
    pub tenant: TenantId,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub attempts: i64,
}

/// An approval link to create, by the hash of its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLink {
    pub token_hash: String,
    /// What the link asks its holder for.
    pub purpose: LinkPurpose,
    pub approver: UserId,
    pub revision: i64,
    pub code_hash: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// What an e-mail link asks its holder for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkPurpose {
    /// An approver's decision on a revision.
    #[default]
    Approve,
    /// A client user's acceptance of the tested change.
    Accept,
}

impl LinkPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Approve => "approve",
            LinkPurpose::Accept => "accept",
        }
    }

    /// As stored; anything else reads as an approval link.
    pub fn parse(s: &str) -> Self {
        match s {
            "accept" => LinkPurpose::Accept,
            _ => LinkPurpose::Approve,
        }
    }
}

/// A change proposal as raised: its number (`PRP-<n>`) and its JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredProposal {
    pub tenant: TenantId,
    pub number: i64,
    /// JSON text: the proposal and its frozen authorization plan.
    pub spec: String,
    pub created_at: DateTime<Utc>,
}

/// A stored approval link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalLink {
    pub purpose: LinkPurpose,
    pub tenant: TenantId,
    pub change: ChangeNumber,
    pub revision: i64,
    pub approver: UserId,
    pub code_hash: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

/// List filters (all optional) and keyset pagination (newest first).
#[derive(Debug, Clone, Default)]
pub struct ChangeFilter {
    /// `None`: every tenant (installation admins); else only these.
    pub tenants: Option<BTreeSet<TenantId>>,
    pub state: Option<ChangeState>,
    pub kind: Option<ChangeType>,
    pub requester: Option<UserId>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    /// Only changes numbered below this (the previous page's last).
    pub before: Option<ChangeNumber>,
    pub limit: u32,
}

/// A change a release delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReleaseItem {
    pub tenant: TenantId,
    pub change: ChangeNumber,
}

/// A release (DESIGN §6): approved changes of one or several tenants
/// delivered together in one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub number: changegate_core::ReleaseNumber,
    pub name: String,
    pub owner: UserId,
    pub state: changegate_core::release::ReleaseState,
    pub planned_start: Option<DateTime<Utc>>,
    pub planned_end: Option<DateTime<Utc>>,
    /// In the order they were added.
    pub changes: Vec<ReleaseItem>,
    pub record: changegate_core::release::Record,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

impl Release {
    /// The tenants whose changes it delivers, each once.
    pub fn tenants(&self) -> std::collections::BTreeSet<TenantId> {
        self.changes.iter().map(|i| i.tenant).collect()
    }
}

#[derive(Debug, Clone)]
pub struct NewRelease {
    pub name: String,
    pub owner: UserId,
    pub planned_start: Option<DateTime<Utc>>,
    pub planned_end: Option<DateTime<Utc>>,
    pub changes: Vec<ReleaseItem>,
    pub record: changegate_core::release::Record,
}

/// Everything written together with a release: the changes it moves
/// (each under its own expected version, with its own write) and the
/// events for each tenant's chain.
#[derive(Debug, Clone, Default)]
pub struct ReleaseWrite {
    pub changes: Vec<(Change, i64, ChangeWrite)>,
    pub events: Vec<(TenantId, NewEvent)>,
}

/// A tenant's iCalendar feed, reached by a revocable token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarFeed {
    pub id: i64,
    pub tenant: TenantId,
    /// Who made it: the feed shows only while they may read the tenant.
    pub user: UserId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_without_a_name_is_named_by_their_address() {
        let mut u = User {
            id: UserId(1),
            email: Email::parse("carol@client-a.example").expect("an address"),
            name: "Carol Becker".into(),
            kind: UserKind::Client,
            admin: false,
            tenant: None,
            password_hash: None,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
        };
        assert_eq!(u.name_or_email(), "Carol Becker");
        u.name = "  ".into();
        assert_eq!(u.name_or_email(), "carol@client-a.example");
    }
}
