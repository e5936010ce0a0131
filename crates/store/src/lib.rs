//! The storage port: the `Store` trait every database implements (SQLite
//! in `changegate-store-sqlite`, PostgreSQL in `changegate-store-postgres`),
//! the records it returns and its small error. Every method that writes
//! does so in one transaction, together with the audit events it appends.

mod error;
pub mod outage;
mod records;
pub mod sign_in;

pub use error::StoreError;
pub use records::*;

use async_trait::async_trait;
use changegate_core::audit::{Event, Head};
use changegate_core::change::ChangeState;
use changegate_core::{ChangeNumber, Email, ReleaseNumber, Role, TenantId, UserId};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The one clock of a server: handlers, the scheduler and the stores'
/// writes all take their time from it (tests pin it).
pub type Clock = std::sync::Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// One database, behind one trait: the server never branches on which.
///
/// Every write takes `at`, the time of the request it serves (the clock
/// the handler was given): the store never reads the wall clock, so what
/// it stamps agrees with what the handler decided, and tests pinned to
/// any date see that date in every row.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which backend this is, for logs and `/readyz`.
    fn backend(&self) -> &'static str;

    /// Answers when the database does (readiness).
    async fn ping(&self) -> Result<()>;

    // Tenants
    async fn create_tenant(
        &self,
        tenant: NewTenant,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Tenant>;
    /// Create or update by slug; `Unchanged` when nothing differs.
    async fn apply_tenant(
        &self,
        tenant: NewTenant,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<(Tenant, Applied)>;
    async fn tenant(&self, id: TenantId) -> Result<Tenant>;
    async fn tenant_by_slug(&self, slug: &str) -> Result<Tenant>;
    /// All tenants, or only `only` when given.
    async fn tenants(&self, only: Option<&BTreeSet<TenantId>>) -> Result<Vec<Tenant>>;

    // Users, roles, tokens
    /// Create a user and grant `roles` in one transaction: a refused
    /// grant leaves no user behind.
    async fn create_user(
        &self,
        user: NewUser,
        roles: &[(TenantId, Role)],
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<User>;
    async fn user(&self, id: UserId) -> Result<User>;
    /// The enabled user with this address (a disabled one is not found:
    /// they sign in and are reached by address no more).
    async fn user_by_email(&self, email: &Email) -> Result<User>;
    async fn set_password(&self, user: UserId, password_hash: &str) -> Result<()>;
    async fn users_in_tenant(&self, tenant: TenantId) -> Result<Vec<(User, BTreeSet<Role>)>>;
    /// Grant `role` in `tenant`; `Unchanged` when already held.
    async fn bind_role(
        &self,
        user: UserId,
        tenant: TenantId,
        role: Role,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Applied>;
    async fn roles_of(&self, user: UserId) -> Result<BTreeMap<TenantId, BTreeSet<Role>>>;
    /// A token created by `user`, with what it may reach.
    async fn create_token(
        &self,
        user: UserId,
        name: &str,
        token_hash: &str,
        scope: &TokenScope,
        at: DateTime<Utc>,
    ) -> Result<ApiToken>;
    /// The user behind a live token's hash and the token's scope
    /// (revoked tokens find nobody).
    async fn user_by_token(&self, token_hash: &str) -> Result<(User, TokenScope)>;
    /// Tokens matching `filter`, newest first, revoked ones included.
    async fn tokens(&self, filter: &TokenFilter) -> Result<Vec<TokenInfo>>;
    /// Revoke live token `id` at `at`, appending `events` to their
    /// tenants' chains in the same transaction (`NotFound` when there is no
    /// such live token).
    async fn revoke_token(
        &self,
        id: i64,
        at: DateTime<Utc>,
        events: Vec<(TenantId, NewEvent)>,
    ) -> Result<()>;
    /// The token with this hash was used at `at` (kept to the minute).
    async fn token_used(&self, token_hash: &str, at: DateTime<Utc>) -> Result<()>;
    /// Take `role` in `tenant` from `user` (`NotFound` when not held), with
    /// `role.revoked` on the tenant's chain.
    async fn unbind_role(
        &self,
        user: UserId,
        tenant: TenantId,
        role: Role,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Disable `user` at `at`: authentication finds them no more, their
    /// sessions end and their live tokens are revoked, with `events` on
    /// their tenants' chains, in one transaction (`NotFound` when the user
    /// does not exist or is disabled already).
    async fn disable_user(
        &self,
        user: UserId,
        at: DateTime<Utc>,
        events: Vec<(TenantId, NewEvent)>,
    ) -> Result<()>;
    /// A user's new password: their sessions but the one with hash `keep`
    /// end, and `events` go on their tenants' chains, in one transaction.
    /// How many sessions ended.
    async fn change_password(
        &self,
        user: UserId,
        password_hash: &str,
        keep: Option<&str>,
        events: Vec<(TenantId, NewEvent)>,
    ) -> Result<u64>;
    /// Record a signed-in session by the hash of its id.
    async fn create_session(
        &self,
        user: UserId,
        id_hash: &str,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Count a sign-in attempt for the address with this hash at `now`,
    /// under a lock on the address (parallel attempts count one by one,
    /// across replicas): `Some(until)` when `max` attempts failed within
    /// `window` (nothing is counted then), else `None` with this attempt
    /// counted as a failure until `sign_in_succeeded` clears the address.
    /// Addresses without a failure within `window` are forgotten.
    async fn sign_in_attempt(
        &self,
        address_hash: &str,
        now: DateTime<Utc>,
        window: chrono::TimeDelta,
        max: usize,
    ) -> Result<Option<DateTime<Utc>>>;
    /// The address signed in: its failures are forgotten.
    async fn sign_in_succeeded(&self, address_hash: &str) -> Result<()>;
    /// The user of a session that has not expired at `now`.
    async fn user_by_session(&self, id_hash: &str, now: DateTime<Utc>) -> Result<User>;
    /// Sign out: the session is gone (no error when it already was).
    async fn delete_session(&self, id_hash: &str) -> Result<()>;

    // Policy objects: boards, windows, templates, configuration items, ...
    /// Create or replace by (kind, name); the spec is JSON text.
    async fn put_object(
        &self,
        tenant: TenantId,
        kind: ObjectKind,
        name: &str,
        spec: &str,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Applied>;
    async fn objects(&self, tenant: TenantId, kind: ObjectKind) -> Result<Vec<TenantObject>>;
    async fn delete_object(
        &self,
        tenant: TenantId,
        kind: ObjectKind,
        name: &str,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Store a new policy version when `spec` differs from the current one.
    async fn put_policy(
        &self,
        tenant: TenantId,
        spec: &str,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<(i64, Applied)>;
    /// The current version and spec; `NotFound` when the tenant has none yet.
    async fn policy(&self, tenant: TenantId) -> Result<(i64, String)>;
    async fn delegation_active(
        &self,
        tenant: TenantId,
        from: UserId,
        to: UserId,
        at: DateTime<Utc>,
    ) -> Result<bool>;
    /// Writes a new proposal of `tenant` with `spec` (JSON) and the
    /// events `events(number)` gives for its number, in one transaction.
    async fn create_proposal(
        &self,
        tenant: TenantId,
        spec: &str,
        events: &(dyn Fn(i64) -> Vec<NewEvent> + Send + Sync),
        at: DateTime<Utc>,
    ) -> Result<StoredProposal>;
    /// Proposal `number` of `tenant` (`NotFound` in another tenant).
    async fn proposal(&self, tenant: TenantId, number: i64) -> Result<StoredProposal>;
    /// Every proposal of `tenant`, newest first.
    async fn proposals(&self, tenant: TenantId) -> Result<Vec<StoredProposal>>;
    /// The delegations of `tenant` from or to `user` not yet ended at
    /// `at`, soonest first.
    async fn delegations_of(
        &self,
        tenant: TenantId,
        user: UserId,
        at: DateTime<Utc>,
    ) -> Result<Vec<Delegation>>;
    async fn create_delegation(
        &self,
        delegation: NewDelegation,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Delegation>;

    // Changes
    async fn create_change(
        &self,
        change: NewChange,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Change>;
    async fn change(&self, tenant: TenantId, number: ChangeNumber) -> Result<Change>;
    /// The change the resource at `key` stands for, if one does.
    async fn resource_link(&self, key: &ResourceKey) -> Result<Option<ResourceLink>>;
    /// Creates `change` for the resource `link.key` and links them, in one
    /// transaction (`link.number` is ignored). `replaces`: the change the
    /// key is linked to now (a finished one), if any; `Conflict` when the
    /// key's link is anything else (another replica created it first).
    async fn create_resource_change(
        &self,
        change: NewChange,
        link: &ResourceLink,
        replaces: Option<ChangeNumber>,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Change>;
    /// Creates `release` for the Release resource `link.key` and links
    /// them, in one transaction, as [`Store::create_resource_change`] does.
    async fn create_resource_release(
        &self,
        release: NewRelease,
        link: &ResourceLink,
        replaces: Option<changegate_core::ReleaseNumber>,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Release>;
    /// Records the resource's uid and the generation its record holds.
    async fn touch_resource_link(
        &self,
        key: &ResourceKey,
        uid: &str,
        generation: i64,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// The changes of `tenant` raised from a ChangeRequest, with where
    /// (cluster, namespace): recorded when each was created, kept after
    /// its resource is gone.
    async fn change_origins(&self, tenant: TenantId) -> Result<Vec<ChangeOrigin>>;
    /// Every link of `cluster`'s resources of `kind`.
    async fn resource_links(&self, cluster: &str, kind: &str) -> Result<Vec<ResourceLink>>;
    /// Records a link that stands for no numbered record (a
    /// MaintenanceWindow's window, `number` 0), replacing the key's link.
    async fn put_resource_link(&self, link: &ResourceLink) -> Result<()>;
    /// The prefix cluster `cluster`'s API server gives OIDC user names
    /// that are e-mail addresses, if an installation administrator set one.
    async fn cluster_email_prefix(&self, cluster: &str) -> Result<Option<String>>;
    /// Sets (or, with `None`, clears) that prefix.
    async fn set_cluster_email_prefix(
        &self,
        cluster: &str,
        prefix: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Ends the link of `key` to `number` (the resource was deleted).
    async fn unlink_resource(&self, key: &ResourceKey, number: i64) -> Result<()>;
    async fn list_changes(&self, filter: &ChangeFilter) -> Result<Vec<Change>>;
    /// Write `change` if its row still has `expected_version` (else
    /// `Conflict`), with the approval, revision and comment of `write` and
    /// its audit events, in one transaction. Returns the stored change.
    async fn save_change(
        &self,
        change: &Change,
        expected_version: i64,
        write: ChangeWrite,
        at: DateTime<Utc>,
    ) -> Result<Change>;
    async fn approvals(&self, tenant: TenantId, change: ChangeNumber) -> Result<Vec<Approval>>;
    /// The approvals of the tenant's changes numbered `first` to `last`
    /// (both included), by change and in order: a page of a period's
    /// evidence in one read.
    async fn approvals_of_changes(
        &self,
        tenant: TenantId,
        first: ChangeNumber,
        last: ChangeNumber,
    ) -> Result<Vec<Approval>>;
    async fn revisions(&self, tenant: TenantId, change: ChangeNumber) -> Result<Vec<Revision>>;
    async fn comments(&self, tenant: TenantId, change: ChangeNumber) -> Result<Vec<Comment>>;
    /// Changes whose approval expiry, retrospective deadline, reminder or
    /// escalation has come.
    async fn changes_due(&self, now: DateTime<Utc>) -> Result<Vec<Change>>;

    /// A page of the tenant's changes created in `[from, to)`, by number
    /// from the first after `after`: a period read in order without being
    /// held whole.
    async fn changes_created_page(
        &self,
        tenant: TenantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: ChangeNumber,
        limit: i64,
    ) -> Result<Vec<Change>>;

    /// The tenant's changes with a planned slot overlapping `[from, to)`
    /// (a slot without an end counts as starting and ending at its start),
    /// by planned start.
    async fn changes_planned_between(
        &self,
        tenant: TenantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Change>>;

    /// Changes of `tenants` (`None`: every tenant) in one of `states`
    /// whose planned start falls in `[from, to)`, by planned start, at
    /// most `limit`: what is due soon, read by the index on planned start
    /// rather than by listing every change in those states.
    async fn changes_starting_between(
        &self,
        tenants: Option<&BTreeSet<TenantId>>,
        states: &[ChangeState],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Change>>;

    /// The tenant's changes raised under `proposal` (`PRP-<n>`), oldest first.
    async fn changes_under_proposal(&self, tenant: TenantId, proposal: &str)
    -> Result<Vec<Change>>;

    /// How many of the tenant's changes each proposal has under it
    /// (proposals with none are absent).
    async fn proposal_change_counts(&self, tenant: TenantId) -> Result<BTreeMap<String, i64>>;

    /// Changes of every tenant that `user` is named to implement, with a
    /// planned slot overlapping `[from, to)`, by planned start: where an
    /// implementer is already booked.
    async fn changes_implemented_between(
        &self,
        user: UserId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Change>>;

    // Calendar feeds
    /// A feed of `tenant` made by `user`; `calendar-feed.created` is
    /// appended to the tenant's chain.
    async fn create_feed(
        &self,
        tenant: TenantId,
        user: UserId,
        name: &str,
        token_hash: &str,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<CalendarFeed>;
    /// The live feed with this token hash (revoked feeds find nothing).
    async fn feed_by_token(&self, token_hash: &str) -> Result<CalendarFeed>;
    async fn feeds(&self, tenant: TenantId) -> Result<Vec<CalendarFeed>>;
    /// Revoke feed `id` of `tenant` (`NotFound` when it is not the tenant's
    /// or already revoked).
    async fn revoke_feed(
        &self,
        tenant: TenantId,
        id: i64,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<()>;

    // Releases
    /// Create a release; `release.created` is appended to the chain of
    /// every tenant whose changes it delivers.
    async fn create_release(
        &self,
        release: NewRelease,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Release>;
    async fn release(&self, number: ReleaseNumber) -> Result<Release>;
    /// Releases delivering a change of one of `tenants` (all when `None`),
    /// newest first.
    async fn releases(
        &self,
        tenants: Option<&BTreeSet<TenantId>>,
        limit: i64,
    ) -> Result<Vec<Release>>;
    /// The releases of `tenants` (all when `None`) that have not finished,
    /// closed or been cancelled, oldest first: every booking still ahead.
    async fn active_releases(&self, tenants: Option<&BTreeSet<TenantId>>) -> Result<Vec<Release>>;
    /// The releases delivering one change, oldest first.
    async fn releases_of_change(
        &self,
        tenant: TenantId,
        change: ChangeNumber,
    ) -> Result<Vec<Release>>;
    /// Write `release` if its row still has `expected_version` (else
    /// `Conflict`), with its list of changes, the changes `write` moves
    /// and its audit events, in one transaction.
    async fn save_release(
        &self,
        release: &Release,
        expected_version: i64,
        write: ReleaseWrite,
        at: DateTime<Utc>,
    ) -> Result<Release>;

    // Scheduler marks
    /// How far the job `key` has got, if it ran before.
    async fn job_mark(&self, key: &str) -> Result<Option<DateTime<Utc>>>;
    /// Move the job's mark from `from` (none: first run) to `to` and append
    /// `events` to `tenant`'s chain, in one transaction; `false`, writing
    /// nothing, when the mark is no longer `from` (another replica moved it).
    async fn advance_job_mark(
        &self,
        key: &str,
        from: Option<DateTime<Utc>>,
        to: DateTime<Utc>,
        tenant: TenantId,
        events: Vec<NewEvent>,
    ) -> Result<bool>;

    // Audit
    /// The tenant's events in stored order and the head recorded with the
    /// last append (sequence and hash).
    async fn audit_events(&self, tenant: TenantId) -> Result<(Vec<Event>, Head)>;
    /// Where the tenant's chain ends, as recorded with its last append.
    async fn audit_chain_head(&self, tenant: TenantId) -> Result<Head>;
    /// A page of the tenant's events in stored order: at most `limit`
    /// after the cursor `after` (0 before the first), with the cursor to
    /// ask for the next page. A chain is read whole this way without
    /// being held whole.
    async fn audit_events_page(
        &self,
        tenant: TenantId,
        after: i64,
        limit: i64,
    ) -> Result<(Vec<Event>, i64)>;
    /// The sequence number of the tenant's last audit event. Every write
    /// to a tenant's records appends one in its transaction, so an
    /// unchanged head means nothing of the tenant changed.
    async fn audit_head(&self, tenant: TenantId) -> Result<i64>;
    /// Every tenant's audit head, in one read.
    async fn audit_heads(&self) -> Result<BTreeMap<TenantId, i64>>;
    /// The tenant's events about `subject` (a change number, ...), in order.
    async fn audit_events_about(&self, tenant: TenantId, subject: &str) -> Result<Vec<Event>>;
    /// The tenant's events about any of `subjects`, in stored order: what
    /// a list of many subjects reads in one go.
    async fn audit_events_about_each(
        &self,
        tenant: TenantId,
        subjects: &[String],
    ) -> Result<Vec<Event>>;
    // E-mail
    /// The approval link with this token hash.
    async fn approval_link(&self, token_hash: &str) -> Result<ApprovalLink>;
    /// Unsent messages whose next attempt is due at `now`, oldest first.
    async fn due_messages(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<Message>>;
    /// Claim up to `limit` messages due at `now` for sending, until
    /// `lease_until`, in one write: a message another sender claimed (and
    /// whose lease has not run out) is not claimed again, so replicas
    /// sharing one database send each message once.
    async fn claim_messages(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<Message>>;
    /// Delivered under the claim until `lease_until`: never sent again;
    /// its body is cleared. False, and nothing written, when that claim no
    /// longer holds the message (it ran out and another sender claimed
    /// it, or it was sent).
    async fn message_sent(
        &self,
        id: i64,
        lease_until: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<bool>;
    /// Not delivered under the claim until `lease_until`: tried again at
    /// `retry_at`. False, and nothing written, when that claim no longer
    /// holds the message.
    async fn message_failed(
        &self,
        id: i64,
        lease_until: DateTime<Utc>,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<bool>;

    /// Append events that belong to no change (e.g. a deployment no
    /// approved change covers) to the tenant's chain, in one transaction.
    async fn record_events(&self, tenant: TenantId, events: Vec<NewEvent>) -> Result<()>;
}

/// The votes recorded on `c`'s current revision: what its plan counts.
pub async fn votes(store: &dyn Store, c: &Change) -> Result<Vec<changegate_core::approval::Vote>> {
    Ok(store
        .approvals(c.tenant, c.number)
        .await?
        .iter()
        .filter(|a| a.revision == c.revision)
        .map(|a| changegate_core::approval::Vote {
            seat: a.seat(),
            by: a.approver,
            decision: a.decision,
        })
        .collect())
}
