//! What the operator and the server say to each other about a
//! ChangeRequest (`PUT /api/v1/agent/changerequests/{namespace}/{name}`):
//! the resource's latest spec, mapped, with who wrote it; and the server's
//! record of the change it stands for.

use crate::change_request::{Awaiting, Decision, NextWindow, Rollback, Rollout};
use crate::to_record::Requested;
use serde::{Deserialize, Serialize};

/// The latest spec of a ChangeRequest, sent on every reconcile (level
/// triggered): the server creates the change the first time, and after
/// that applies what differs as an edit would.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRequestSync {
    /// The namespace's tenant (its `changegate.dev/tenant` label).
    pub tenant: String,
    /// `metadata.uid`: a new one under the same name is the resource
    /// deleted and created again.
    pub uid: String,
    /// `metadata.generation` of the spec sent.
    pub generation: i64,
    /// Who created the resource (`changegate.dev/requested-by`).
    pub requested_by: String,
    /// Who last edited its spec (`changegate.dev/edited-by`), if not its creator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_by: Option<String>,
    /// The change the resource names in `changegate.dev/change`, if any
    /// (restored from a backup, or re-created by a GitOps tool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
    pub requested: Requested,
}

/// The server's record of the change a resource stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRecord {
    /// `CHG-n`.
    pub number: String,
    /// The change's state, e.g. `awaiting-approval`.
    pub phase: String,
    pub revision: i64,
    #[serde(default)]
    pub fingerprint: Option<String>,
    pub approvals_given: i64,
    pub approvals_needed: i64,
    #[serde(default)]
    pub awaiting: Vec<Awaiting>,
    #[serde(default)]
    pub decisions: Vec<Decision>,
    #[serde(default)]
    pub next_window: Option<NextWindow>,
    /// The change's page in the portal.
    pub url: String,
    /// Why the change may not deploy now, when it is approved but may not
    /// (a closed window, a blackout, a release holding it, its approval
    /// expired), as the gate judged it at the server's time.
    #[serde(default)]
    pub hold: Option<Hold>,
    /// The resource generation the change holds.
    pub generation: i64,
    /// The rollouts the operator followed under the change, as recorded.
    #[serde(default)]
    pub rollout: Vec<Rollout>,
    #[serde(default)]
    pub rollback: Option<Rollback>,
    /// When the server last wrote the change (the operator measures how
    /// long its status took to show it).
    #[serde(default)]
    pub changed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The gate's reason and message for holding an approved change back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    /// The gate's reason, e.g. `window-closed`, `blackout`, `held-by-release`, `finished`.
    pub reason: String,
    pub message: String,
}

/// The latest spec of a MaintenanceWindow: the tenant's window of the
/// resource's name (windows are tenant-wide).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowSync {
    pub tenant: String,
    pub uid: String,
    pub generation: i64,
    pub requested_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_by: Option<String>,
    /// The window as the server's API takes it.
    pub spec: serde_json::Value,
}

/// A deleted MaintenanceWindow: its window goes only if it still is what
/// the resource wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowDeleted {
    pub tenant: String,
    /// The deleted resource's `metadata.uid`: only the resource that wrote
    /// the window removes it.
    pub uid: String,
    pub spec: serde_json::Value,
}

/// The server's window, as a MaintenanceWindow's status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowRecord {
    pub name: String,
    /// `maintenance` or `blackout`.
    pub kind: String,
    /// Open at the server's time.
    pub open: bool,
    #[serde(default)]
    pub open_until: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub next_open: Option<chrono::DateTime<chrono::Utc>>,
}

/// A resource the server links to a record (`GET
/// /api/v1/agent/changerequests`, `GET /api/v1/agent/releases`): the
/// operator reports those it no longer finds, deleted while it was not
/// watching.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkedResource {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// `CHG-n` or `REL-n`.
    pub number: String,
}

/// The latest spec of a Release (`PUT
/// /api/v1/agent/releases/{namespace}/{name}`), sent on every reconcile:
/// the server creates the release once every change it names is
/// approved, and after that applies what differs as an edit would.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseSync {
    pub tenant: String,
    pub uid: String,
    pub generation: i64,
    pub requested_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_by: Option<String>,
    /// The spec as written; the server resolves the ChangeRequests it
    /// names through their links.
    pub spec: crate::release::ReleaseSpec,
}

/// The server's release, as a Release's status shows it; before the
/// server holds it (a change it names is not approved yet), only what it
/// waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseRecord {
    /// `REL-n`, once the server holds it.
    #[serde(default)]
    pub number: Option<String>,
    /// The release's state (`planning`, …, `closed`), or `waiting` while
    /// the server does not hold it yet.
    pub phase: String,
    /// What it waits for before the server creates it.
    #[serde(default)]
    pub waiting: Option<String>,
    #[serde(default)]
    pub steps: Vec<crate::release::StepStatus>,
    /// What stands in the way of its slot, while it is planned.
    #[serde(default)]
    pub conflicts: Vec<String>,
    #[serde(default)]
    pub outcome: Option<String>,
    /// The release's page in the portal.
    #[serde(default)]
    pub url: Option<String>,
    /// The resource generation the release holds.
    pub generation: i64,
    /// The rollouts followed under its changes (of the resource's tenant).
    #[serde(default)]
    pub rollout: Vec<crate::change_request::Rollout>,
    #[serde(default)]
    pub rollback: Option<crate::change_request::Rollback>,
}

/// A deleted Release (`DELETE /api/v1/agent/releases/{namespace}/{name}`):
/// what became of its release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseDeleted {
    /// `REL-n`, if the resource stood for one.
    #[serde(default)]
    pub number: Option<String>,
    /// `cancelled` (it had not deployed) or `detached` (it had: it goes on
    /// on the server).
    #[serde(default)]
    pub became: Option<String>,
}

/// A decision a person wrote with kubectl into a ChangeRequest's
/// `status.approvals`, as the operator's webhook sends it (`POST
/// /api/v1/agent/changerequests/{namespace}/{name}/approvals`) before the
/// patch is admitted. Idempotent on (cluster, resource uid, user,
/// revision): a retry is answered the same and recorded once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalByKubectl {
    pub tenant: String,
    /// The ChangeRequest's `metadata.uid`.
    pub uid: String,
    /// The caller's Kubernetes user name, as the API server authenticated
    /// them (the key of their entry).
    pub user: String,
    pub decision: crate::change_request::KubectlDecision,
    /// The revision decided on.
    pub revision: i64,
    #[serde(default)]
    pub comment: String,
    /// Judge and answer, record nothing (`kubectl --dry-run=server`).
    #[serde(default)]
    pub dry_run: bool,
}

/// The server's answer to a decision by kubectl: what it recorded (or,
/// on a dry run, would record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRecorded {
    /// `CHG-n`.
    pub change: String,
    pub revision: i64,
    /// `approve` or `reject`.
    pub decision: String,
    /// The tenant user it was recorded for.
    pub approver: String,
    /// The change's state after it (`approved` once every board is).
    pub phase: String,
    /// False on a dry run.
    pub recorded: bool,
}

/// A phase authorization a release manager wrote with kubectl into a
/// Release's `status.authorizations` (`POST
/// /api/v1/agent/releases/{namespace}/{name}/authorizations`), sent by the
/// operator's webhook before the patch is admitted; idempotent like a
/// decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationByKubectl {
    pub tenant: String,
    pub uid: String,
    pub user: String,
    /// `plan`, `build-and-test` or `deploy`.
    pub phase: String,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub dry_run: bool,
}

/// What the server recorded of a phase authorized with kubectl.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationRecorded {
    /// `REL-n`.
    pub release: String,
    /// The phase authorized.
    pub authorized: String,
    /// The tenant user it was recorded for.
    pub by: String,
    /// The release's state after it.
    pub phase: String,
    pub recorded: bool,
}

/// What the server mirrors into a cluster (`GET /api/v1/agent/mirrors`,
/// long-polled like the bundle): every change in flight on a
/// configuration item bound to the cluster that has no resource of its
/// own (not raised from a ChangeRequest), once per namespace its items
/// are bound in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Mirrors {
    pub changes: Vec<MirroredChange>,
    /// Every window and blackout of each tenant bound to the cluster, for
    /// every namespace labelled for that tenant.
    #[serde(default)]
    pub windows: Vec<MirroredWindow>,
}

/// One window mirrored as the MaintenanceWindow `name` (`mw-<window>`)
/// into every namespace labelled for `tenant` but `except`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MirroredWindow {
    pub tenant: String,
    pub name: String,
    pub spec: crate::maintenance_window::MaintenanceWindowSpec,
    /// Whether it is open and when it next opens, at the server's time.
    pub record: WindowRecord,
    /// Namespaces where the window's own MaintenanceWindow stands: no
    /// mirror beside it.
    #[serde(default)]
    pub except: Vec<String>,
}

/// One mirror: the ChangeRequest `name` (`chg-n`) in `namespace`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MirroredChange {
    /// The tenant whose change it is: the namespace must be labelled so.
    pub tenant: String,
    pub namespace: String,
    pub name: String,
    /// The change's content as a ChangeRequest's spec names it.
    pub spec: crate::change_request::ChangeRequestSpec,
    /// Its record, as the mirror's status shows it.
    pub record: ChangeRecord,
}
