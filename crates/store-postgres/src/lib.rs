//! changegate's store on PostgreSQL: the twin of `changegate-store-sqlite`,
//! with the same tables, the same append-only triggers and the same
//! behaviour for every `Store` method, so several server replicas can share
//! one database.
//!
//! Concurrency: every write that touches a tenant is one transaction that
//! first locks the tenant's row (`FOR NO KEY UPDATE`). That is what
//! `BEGIN IMMEDIATE` is on SQLite, narrowed to one tenant: the tenant's
//! audit chain stays linear and its policy versions gap-free however many
//! replicas write. `NO KEY UPDATE` rather than `UPDATE` because it is just
//! as exclusive between writers but does not wait for, nor deadlock with,
//! the foreign-key checks (`KEY SHARE`) of transactions that insert rows
//! referencing the tenant.

mod access;
mod audit;
mod changes;
mod clusters;
mod feeds;
mod links;
mod mail;
mod marks;
mod objects;
mod people;
mod proposals;
mod releases;
mod rows;

use async_trait::async_trait;
use changegate_core::audit::{Event, Head};
use changegate_core::change::ChangeState;
use changegate_core::{ChangeNumber, Email, ReleaseNumber, Role, TenantId, UserId};
use changegate_store::*;
use chrono::{DateTime, Utc};
use sqlx::error::DatabaseError;
use sqlx::postgres::{PgConnectOptions, PgDatabaseError, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::Duration;

pub struct PostgresStore {
    pool: PgPool,
}

/// How long a store call waits for a connection before it is told the
/// database is unavailable (a request makes a few: it is answered within
/// about two seconds).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(700);

impl PostgresStore {
    /// Connect to a `postgres://` URL and run the migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_pool_size(url, 16).await
    }

    /// [`connect`](Self::connect) with at most `max_connections` connections.
    pub async fn connect_with_pool_size(url: &str, max_connections: u32) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Database(format!("bad PostgreSQL URL: {e}")))?
            .application_name("changegate");
        // A call that finds no connection in time (the database is away)
        // fails as unavailable: the request is answered 503, not left waiting.
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(db)?;
        let store = PostgresStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Run the migrations (sqlx takes an advisory lock, so replicas
    /// starting together run them once).
    pub async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations")
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Database(format!("migrations failed: {e}")))
    }

    /// The pool, for tests that tamper with the database behind the store's back.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A write transaction that does not belong to a tenant yet.
    async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(db)
    }

    /// A write transaction holding `tenant`'s row lock (see the module
    /// comment).
    async fn write(&self, tenant: TenantId) -> Result<Transaction<'static, Postgres>> {
        self.write_all([tenant]).await
    }

    /// A write transaction holding the row locks of every tenant in
    /// `tenants`, taken in id order (so two such writes cannot wait on
    /// each other), before anything is written.
    async fn write_all(
        &self,
        tenants: impl IntoIterator<Item = TenantId>,
    ) -> Result<Transaction<'static, Postgres>> {
        let mut tx = self.begin().await?;
        for tenant in tenants.into_iter().collect::<BTreeSet<_>>() {
            audit::lock_tenant(&mut tx, tenant).await?;
        }
        Ok(tx)
    }
}

/// Map a driver error to the store's: unique violations are conflicts
/// named like SQLite names them (`table.column`), so callers and their
/// messages do not depend on the backend.
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => StoreError::not_found("record"),
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict {
            constraint: unique_columns(d.as_ref()),
        },
        sqlx::Error::Database(d) if d.message().contains("append-only") => {
            StoreError::AppendOnly("this record")
        }
        // Text with U+0000, which a text column cannot hold (22021, and
        // 22P05 from a JSON value).
        sqlx::Error::Database(d)
            if d.code()
                .is_some_and(|c| matches!(c.as_ref(), "22021" | "22P05")) =>
        {
            StoreError::Unstorable("text may not contain the NUL character (U+0000)".to_string())
        }
        // Connection exceptions (08), the server shutting down or
        // restarting (57P01..57P03): it is away, not the request wrong.
        sqlx::Error::Database(d)
            if d.code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Database(e.to_string()),
    }
}

/// `policies.tenant_id, policies.version` from the violation's detail
/// (`Key (tenant_id, version)=(1, 2) already exists.`); the constraint's
/// name when the detail is not there. The key's values are left out: they
/// may be someone else's data.
fn unique_columns(d: &dyn DatabaseError) -> String {
    let columns = d
        .try_downcast_ref::<PgDatabaseError>()
        .and_then(|pg| pg.detail())
        .and_then(|detail| detail.strip_prefix("Key ("))
        .and_then(|rest| rest.split_once(")=").map(|(columns, _)| columns));
    match (d.table(), columns) {
        (Some(table), Some(columns)) => columns
            .split(", ")
            .map(|c| format!("{table}.{c}"))
            .collect::<Vec<_>>()
            .join(", "),
        _ => d.constraint().unwrap_or_else(|| d.message()).to_string(),
    }
}

/// `NotFound` for a missing row, the mapped error otherwise.
pub(crate) fn found<T>(
    what: &'static str,
    r: std::result::Result<Option<T>, sqlx::Error>,
) -> Result<T> {
    r.map_err(db)?.ok_or(StoreError::not_found(what))
}

/// The write's time at the microsecond precision PostgreSQL keeps, so
/// that what a write returns equals what a later read returns.
pub(crate) fn stamp(at: DateTime<Utc>) -> DateTime<Utc> {
    changegate_core::audit::normalise(at)
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query_scalar!(r#"SELECT 1 AS "one!""#)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn create_tenant(
        &self,
        tenant: NewTenant,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Tenant> {
        let mut tx = self.begin().await?;
        let t = people::insert_tenant(&mut tx, &tenant, actor, at).await?;
        tx.commit().await.map_err(db)?;
        Ok(t)
    }

    async fn apply_tenant(
        &self,
        tenant: NewTenant,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<(Tenant, Applied)> {
        let mut tx = self.begin().await?;
        let r = people::apply_tenant(&mut tx, &tenant, actor, at).await?;
        tx.commit().await.map_err(db)?;
        Ok(r)
    }

    async fn tenant(&self, id: TenantId) -> Result<Tenant> {
        people::tenant(&self.pool, id).await
    }

    async fn tenant_by_slug(&self, slug: &str) -> Result<Tenant> {
        people::tenant_by_slug(&self.pool, slug).await
    }

    async fn tenants(&self, only: Option<&BTreeSet<TenantId>>) -> Result<Vec<Tenant>> {
        let all = people::tenants(&self.pool).await?;
        Ok(all
            .into_iter()
            .filter(|t| only.is_none_or(|o| o.contains(&t.id)))
            .collect())
    }

    async fn create_user(
        &self,
        user: NewUser,
        roles: &[(TenantId, Role)],
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<User> {
        let mut tx = self
            .write_all(user.tenant.into_iter().chain(roles.iter().map(|(t, _)| *t)))
            .await?;
        let u = people::insert_user(&mut tx, &user, actor, at).await?;
        for (tenant, role) in roles {
            people::bind_role(&mut tx, u.id, *tenant, *role, actor, at).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(u)
    }

    async fn user(&self, id: UserId) -> Result<User> {
        people::user(&self.pool, id).await
    }

    async fn user_by_email(&self, email: &Email) -> Result<User> {
        people::user_by_email(&self.pool, email).await
    }

    async fn set_password(&self, user: UserId, password_hash: &str) -> Result<()> {
        people::set_password(&self.pool, user, password_hash).await
    }

    async fn users_in_tenant(&self, tenant: TenantId) -> Result<Vec<(User, BTreeSet<Role>)>> {
        people::users_in_tenant(&self.pool, tenant).await
    }

    async fn bind_role(
        &self,
        user: UserId,
        tenant: TenantId,
        role: Role,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Applied> {
        let mut tx = self.write(tenant).await?;
        let r = people::bind_role(&mut tx, user, tenant, role, actor, at).await?;
        tx.commit().await.map_err(db)?;
        Ok(r)
    }

    async fn roles_of(&self, user: UserId) -> Result<BTreeMap<TenantId, BTreeSet<Role>>> {
        people::roles_of(&self.pool, user).await
    }

    async fn create_token(
        &self,
        user: UserId,
        name: &str,
        token_hash: &str,
        scope: &TokenScope,
        at: DateTime<Utc>,
    ) -> Result<ApiToken> {
        people::create_token(&self.pool, user, name, token_hash, scope, at).await
    }

    async fn user_by_token(&self, token_hash: &str) -> Result<(User, TokenScope)> {
        people::user_by_token(&self.pool, token_hash).await
    }

    async fn tokens(&self, filter: &TokenFilter) -> Result<Vec<TokenInfo>> {
        access::tokens(&self.pool, filter).await
    }

    async fn revoke_token(
        &self,
        id: i64,
        at: DateTime<Utc>,
        events: Vec<(TenantId, NewEvent)>,
    ) -> Result<()> {
        let mut tx = self.write_all(events.iter().map(|(t, _)| *t)).await?;
        access::revoke_token(&mut tx, id, at, &events).await?;
        tx.commit().await.map_err(db)
    }

    async fn token_used(&self, token_hash: &str, at: DateTime<Utc>) -> Result<()> {
        access::token_used(&self.pool, token_hash, at).await
    }

    async fn unbind_role(
        &self,
        user: UserId,
        tenant: TenantId,
        role: Role,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.write(tenant).await?;
        access::unbind_role(&mut tx, user, tenant, role, actor, at).await?;
        tx.commit().await.map_err(db)
    }

    async fn disable_user(
        &self,
        user: UserId,
        at: DateTime<Utc>,
        events: Vec<(TenantId, NewEvent)>,
    ) -> Result<()> {
        let mut tx = self.write_all(events.iter().map(|(t, _)| *t)).await?;
        access::disable_user(&mut tx, user, at, &events).await?;
        tx.commit().await.map_err(db)
    }

    async fn change_password(
        &self,
        user: UserId,
        password_hash: &str,
        keep: Option<&str>,
        events: Vec<(TenantId, NewEvent)>,
    ) -> Result<u64> {
        let mut tx = self.write_all(events.iter().map(|(t, _)| *t)).await?;
        let ended = access::change_password(&mut tx, user, password_hash, keep, &events).await?;
        tx.commit().await.map_err(db)?;
        Ok(ended)
    }

    async fn create_session(
        &self,
        user: UserId,
        id_hash: &str,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        people::create_session(&self.pool, user, id_hash, expires_at, at).await
    }

    async fn sign_in_attempt(
        &self,
        address_hash: &str,
        now: DateTime<Utc>,
        window: chrono::TimeDelta,
        max: usize,
    ) -> Result<Option<DateTime<Utc>>> {
        let mut tx = self.begin().await?;
        let locked = people::sign_in_attempt(&mut tx, address_hash, now, window, max).await?;
        tx.commit().await.map_err(db)?;
        Ok(locked)
    }

    async fn sign_in_succeeded(&self, address_hash: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        people::sign_in_succeeded(&mut tx, address_hash).await?;
        tx.commit().await.map_err(db)
    }

    async fn user_by_session(&self, id_hash: &str, now: DateTime<Utc>) -> Result<User> {
        people::user_by_session(&self.pool, id_hash, now).await
    }

    async fn delete_session(&self, id_hash: &str) -> Result<()> {
        people::delete_session(&self.pool, id_hash).await
    }

    async fn put_object(
        &self,
        tenant: TenantId,
        kind: ObjectKind,
        name: &str,
        spec: &str,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Applied> {
        let mut tx = self.write(tenant).await?;
        let r = objects::put(&mut tx, tenant, kind, name, spec, actor, at).await?;
        tx.commit().await.map_err(db)?;
        Ok(r)
    }

    async fn objects(&self, tenant: TenantId, kind: ObjectKind) -> Result<Vec<TenantObject>> {
        objects::list(&self.pool, tenant, kind).await
    }

    async fn delete_object(
        &self,
        tenant: TenantId,
        kind: ObjectKind,
        name: &str,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.write(tenant).await?;
        objects::delete(&mut tx, tenant, kind, name, actor, at).await?;
        tx.commit().await.map_err(db)
    }

    async fn put_policy(
        &self,
        tenant: TenantId,
        spec: &str,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<(i64, Applied)> {
        let mut tx = self.write(tenant).await?;
        let r = objects::put_policy(&mut tx, tenant, spec, actor, at).await?;
        tx.commit().await.map_err(db)?;
        Ok(r)
    }

    async fn policy(&self, tenant: TenantId) -> Result<(i64, String)> {
        objects::policy(&self.pool, tenant).await
    }

    async fn delegation_active(
        &self,
        tenant: TenantId,
        from: UserId,
        to: UserId,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        objects::delegation_active(&self.pool, tenant, from, to, at).await
    }

    async fn create_proposal(
        &self,
        tenant: TenantId,
        spec: &str,
        events: &(dyn Fn(i64) -> Vec<NewEvent> + Send + Sync),
        at: DateTime<Utc>,
    ) -> Result<StoredProposal> {
        let mut tx = self.write(tenant).await?;
        let p = proposals::create(&mut tx, tenant, spec, at).await?;
        audit::append(&mut tx, tenant, &events(p.number)).await?;
        tx.commit().await.map_err(db)?;
        Ok(p)
    }

    async fn proposal(&self, tenant: TenantId, number: i64) -> Result<StoredProposal> {
        proposals::one(&self.pool, tenant, number).await
    }

    async fn proposals(&self, tenant: TenantId) -> Result<Vec<StoredProposal>> {
        proposals::all(&self.pool, tenant).await
    }

    async fn delegations_of(
        &self,
        tenant: TenantId,
        user: UserId,
        at: DateTime<Utc>,
    ) -> Result<Vec<Delegation>> {
        objects::delegations_of(&self.pool, tenant, user, at).await
    }

    async fn create_delegation(
        &self,
        delegation: NewDelegation,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Delegation> {
        let mut tx = self.write(delegation.tenant).await?;
        let d = objects::create_delegation(&mut tx, &delegation, actor, at).await?;
        tx.commit().await.map_err(db)?;
        Ok(d)
    }

    async fn create_change(
        &self,
        change: NewChange,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Change> {
        let mut tx = self.write(change.tenant).await?;
        let c = changes::insert(&mut tx, &change, actor, at).await?;
        tx.commit().await.map_err(db)?;
        Ok(c)
    }

    async fn change(&self, tenant: TenantId, number: ChangeNumber) -> Result<Change> {
        changes::get(&self.pool, tenant, number).await
    }

    async fn resource_link(&self, key: &ResourceKey) -> Result<Option<ResourceLink>> {
        links::get(&self.pool, key).await
    }

    async fn create_resource_change(
        &self,
        change: NewChange,
        link: &ResourceLink,
        replaces: Option<ChangeNumber>,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Change> {
        let mut tx = self.write(change.tenant).await?;
        let c = changes::insert(&mut tx, &change, actor, at).await?;
        links::link(&mut tx, link, c.number.0, replaces.map(|n| n.0), at).await?;
        links::originate(&mut tx, link, c.number.0).await?;
        tx.commit().await.map_err(db)?;
        Ok(c)
    }

    async fn create_resource_release(
        &self,
        release: NewRelease,
        link: &ResourceLink,
        replaces: Option<ReleaseNumber>,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Release> {
        let mut tx = self
            .write_all(release.changes.iter().map(|i| i.tenant))
            .await?;
        let r = releases::insert(&mut tx, &release, actor, at).await?;
        links::link(&mut tx, link, r.number.0, replaces.map(|n| n.0), at).await?;
        tx.commit().await.map_err(db)?;
        Ok(r)
    }

    async fn touch_resource_link(
        &self,
        key: &ResourceKey,
        uid: &str,
        generation: i64,
        at: DateTime<Utc>,
    ) -> Result<()> {
        links::touch(&self.pool, key, uid, generation, at).await
    }

    async fn change_origins(&self, tenant: TenantId) -> Result<Vec<ChangeOrigin>> {
        links::origins(&self.pool, tenant).await
    }

    async fn resource_links(&self, cluster: &str, kind: &str) -> Result<Vec<ResourceLink>> {
        links::of_cluster(&self.pool, cluster, kind).await
    }

    async fn put_resource_link(&self, link: &ResourceLink) -> Result<()> {
        links::put(&self.pool, link).await
    }

    async fn cluster_email_prefix(&self, cluster: &str) -> Result<Option<String>> {
        clusters::email_prefix(&self.pool, cluster).await
    }

    async fn set_cluster_email_prefix(
        &self,
        cluster: &str,
        prefix: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        clusters::set_email_prefix(&self.pool, cluster, prefix, at).await
    }

    async fn unlink_resource(&self, key: &ResourceKey, number: i64) -> Result<()> {
        links::unlink(&self.pool, key, number).await
    }

    async fn list_changes(&self, filter: &ChangeFilter) -> Result<Vec<Change>> {
        changes::list(&self.pool, filter).await
    }

    async fn save_change(
        &self,
        change: &Change,
        expected_version: i64,
        write: ChangeWrite,
        at: DateTime<Utc>,
    ) -> Result<Change> {
        let mut tx = self.write(change.tenant).await?;
        let c = changes::save(&mut tx, change, expected_version, write, at).await?;
        tx.commit().await.map_err(db)?;
        Ok(c)
    }

    async fn approvals(&self, tenant: TenantId, change: ChangeNumber) -> Result<Vec<Approval>> {
        changes::approvals(&self.pool, tenant, change).await
    }

    async fn approvals_of_changes(
        &self,
        tenant: TenantId,
        first: ChangeNumber,
        last: ChangeNumber,
    ) -> Result<Vec<Approval>> {
        changes::approvals_of_changes(&self.pool, tenant, first, last).await
    }

    async fn revisions(&self, tenant: TenantId, change: ChangeNumber) -> Result<Vec<Revision>> {
        changes::revisions(&self.pool, tenant, change).await
    }

    async fn comments(&self, tenant: TenantId, change: ChangeNumber) -> Result<Vec<Comment>> {
        changes::comments(&self.pool, tenant, change).await
    }

    async fn changes_due(&self, now: DateTime<Utc>) -> Result<Vec<Change>> {
        changes::due(&self.pool, now).await
    }

    async fn changes_created_page(
        &self,
        tenant: TenantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: ChangeNumber,
        limit: i64,
    ) -> Result<Vec<Change>> {
        changes::created_page(&self.pool, tenant, from, to, after, limit).await
    }

    async fn changes_planned_between(
        &self,
        tenant: TenantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Change>> {
        changes::planned_between(&self.pool, tenant, from, to).await
    }

    async fn changes_starting_between(
        &self,
        tenants: Option<&BTreeSet<TenantId>>,
        states: &[ChangeState],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Change>> {
        changes::starting_between(&self.pool, tenants, states, from, to, limit).await
    }

    async fn changes_under_proposal(
        &self,
        tenant: TenantId,
        proposal: &str,
    ) -> Result<Vec<Change>> {
        changes::under_proposal(&self.pool, tenant, proposal).await
    }

    async fn proposal_change_counts(&self, tenant: TenantId) -> Result<BTreeMap<String, i64>> {
        changes::proposal_counts(&self.pool, tenant).await
    }

    async fn changes_implemented_between(
        &self,
        user: UserId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Change>> {
        changes::implemented_between(&self.pool, user, from, to).await
    }

    async fn create_feed(
        &self,
        tenant: TenantId,
        user: UserId,
        name: &str,
        token_hash: &str,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<CalendarFeed> {
        let mut tx = self.write(tenant).await?;
        let f = feeds::create(&mut tx, tenant, user, name, token_hash, actor, at).await?;
        tx.commit().await.map_err(db)?;
        Ok(f)
    }

    async fn feed_by_token(&self, token_hash: &str) -> Result<CalendarFeed> {
        feeds::by_token(&self.pool, token_hash).await
    }

    async fn feeds(&self, tenant: TenantId) -> Result<Vec<CalendarFeed>> {
        feeds::list(&self.pool, tenant).await
    }

    async fn revoke_feed(
        &self,
        tenant: TenantId,
        id: i64,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.write(tenant).await?;
        feeds::revoke(&mut tx, tenant, id, actor, at).await?;
        tx.commit().await.map_err(db)
    }

    async fn create_release(
        &self,
        release: NewRelease,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Release> {
        let mut tx = self
            .write_all(release.changes.iter().map(|i| i.tenant))
            .await?;
        let r = releases::insert(&mut tx, &release, actor, at).await?;
        tx.commit().await.map_err(db)?;
        Ok(r)
    }

    async fn release(&self, number: ReleaseNumber) -> Result<Release> {
        releases::get(&self.pool, number).await
    }

    async fn releases(
        &self,
        tenants: Option<&BTreeSet<TenantId>>,
        limit: i64,
    ) -> Result<Vec<Release>> {
        releases::list(&self.pool, tenants, limit).await
    }

    async fn active_releases(&self, tenants: Option<&BTreeSet<TenantId>>) -> Result<Vec<Release>> {
        releases::active(&self.pool, tenants).await
    }

    async fn releases_of_change(
        &self,
        tenant: TenantId,
        change: ChangeNumber,
    ) -> Result<Vec<Release>> {
        releases::of_change(&self.pool, tenant, change).await
    }

    async fn save_release(
        &self,
        release: &Release,
        expected_version: i64,
        write: ReleaseWrite,
        at: DateTime<Utc>,
    ) -> Result<Release> {
        // Every tenant it touches (no deadlock between two releases
        // sharing tenants).
        let mut tenants = release.tenants();
        tenants.extend(write.events.iter().map(|(t, _)| *t));
        tenants.extend(write.changes.iter().map(|(c, _, _)| c.tenant));
        let mut tx = self.write_all(tenants).await?;
        let r = releases::save(&mut tx, release, expected_version, write, at).await?;
        tx.commit().await.map_err(db)?;
        Ok(r)
    }

    async fn job_mark(&self, key: &str) -> Result<Option<DateTime<Utc>>> {
        marks::get(&self.pool, key).await
    }

    async fn advance_job_mark(
        &self,
        key: &str,
        from: Option<DateTime<Utc>>,
        to: DateTime<Utc>,
        tenant: TenantId,
        events: Vec<NewEvent>,
    ) -> Result<bool> {
        let mut tx = self.write(tenant).await?;
        let moved = marks::advance(&mut tx, key, from, to, tenant, &events).await?;
        tx.commit().await.map_err(db)?;
        Ok(moved)
    }

    async fn audit_events(&self, tenant: TenantId) -> Result<(Vec<Event>, Head)> {
        audit::events(&self.pool, tenant).await
    }

    async fn audit_events_page(
        &self,
        tenant: TenantId,
        after: i64,
        limit: i64,
    ) -> Result<(Vec<Event>, i64)> {
        audit::page(&self.pool, tenant, after, limit).await
    }

    async fn audit_chain_head(&self, tenant: TenantId) -> Result<Head> {
        audit::chain_head(&self.pool, tenant).await
    }

    async fn audit_head(&self, tenant: TenantId) -> Result<i64> {
        audit::head(&self.pool, tenant).await
    }

    async fn audit_heads(&self) -> Result<BTreeMap<TenantId, i64>> {
        audit::heads(&self.pool).await
    }

    async fn audit_events_about(&self, tenant: TenantId, subject: &str) -> Result<Vec<Event>> {
        audit::about(&self.pool, tenant, subject).await
    }

    async fn audit_events_about_each(
        &self,
        tenant: TenantId,
        subjects: &[String],
    ) -> Result<Vec<Event>> {
        audit::about_each(&self.pool, tenant, subjects).await
    }

    async fn approval_link(&self, token_hash: &str) -> Result<ApprovalLink> {
        mail::approval_link(&self.pool, token_hash).await
    }

    async fn due_messages(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<Message>> {
        mail::due(&self.pool, now, limit).await
    }

    async fn claim_messages(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<Message>> {
        let mut tx = self.begin().await?;
        let claimed = mail::claim(&mut tx, now, limit, lease_until).await?;
        tx.commit().await.map_err(db)?;
        Ok(claimed)
    }

    async fn message_sent(
        &self,
        id: i64,
        lease_until: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let held = mail::sent(&mut tx, id, lease_until, at).await?;
        tx.commit().await.map_err(db)?;
        Ok(held)
    }

    async fn message_failed(
        &self,
        id: i64,
        lease_until: DateTime<Utc>,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let held = mail::failed(&mut tx, id, lease_until, error, retry_at).await?;
        tx.commit().await.map_err(db)?;
        Ok(held)
    }

    async fn record_events(&self, tenant: TenantId, events: Vec<NewEvent>) -> Result<()> {
        let mut tx = self.write(tenant).await?;
        audit::append(&mut tx, tenant, &events).await?;
        tx.commit().await.map_err(db)
    }
}
