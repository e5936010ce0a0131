//! Tenants, users, role bindings and API tokens.

use changegate_core::{Email, Role, Slug, TenantId, UserId, UserKind};
use changegate_store::*;
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::{BTreeMap, BTreeSet};

use crate::rows::parse;
use crate::{audit, db, found, stamp};

fn event(
    actor: &str,
    at: DateTime<Utc>,
    action: &str,
    subject: String,
    detail: serde_json::Value,
) -> NewEvent {
    NewEvent {
        actor: actor.to_string(),
        action: action.to_string(),
        subject,
        detail,
        at,
    }
}

struct TenantRow {
    id: i64,
    slug: String,
    name: String,
    time_zone: String,
    created_at: DateTime<Utc>,
}

impl TenantRow {
    fn into_tenant(self) -> Result<Tenant> {
        Ok(Tenant {
            id: TenantId(self.id),
            slug: Slug::parse(&self.slug).map_err(|e| StoreError::corrupt("tenant slug", e))?,
            name: self.name,
            time_zone: self.time_zone,
            created_at: self.created_at,
        })
    }
}

/// The audit event of a tenant just inserted (its first).
async fn tenant_created(
    tx: &mut Transaction<'_, Postgres>,
    t: &NewTenant,
    id: i64,
    now: DateTime<Utc>,
    actor: &str,
) -> Result<Tenant> {
    let tenant = Tenant {
        id: TenantId(id),
        slug: t.slug.clone(),
        name: t.name.clone(),
        time_zone: t.time_zone.clone(),
        created_at: now,
    };
    audit::append(
        tx,
        tenant.id,
        &[event(
            actor,
            now,
            "tenant.created",
            t.slug.to_string(),
            json!({ "name": t.name, "time_zone": t.time_zone }),
        )],
    )
    .await?;
    Ok(tenant)
}

pub(crate) async fn insert_tenant(
    tx: &mut Transaction<'_, Postgres>,
    t: &NewTenant,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<Tenant> {
    let now = stamp(at);
    let slug = t.slug.as_str();
    let id = sqlx::query_scalar!(
        "INSERT INTO tenants (slug, name, time_zone, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        slug,
        t.name,
        t.time_zone,
        now
    )
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?;
    tenant_created(tx, t, id, now, actor).await
}

pub(crate) async fn apply_tenant(
    tx: &mut Transaction<'_, Postgres>,
    t: &NewTenant,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<(Tenant, Applied)> {
    let now = stamp(at);
    let slug = t.slug.as_str();
    // Insert unless the slug exists. A concurrent apply of the same new
    // slug waits here for ours to commit and then finds it, as it would
    // behind SQLite's single writer, instead of failing on the unique key.
    let inserted = sqlx::query_scalar!(
        "INSERT INTO tenants (slug, name, time_zone, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (slug) DO NOTHING RETURNING id",
        slug,
        t.name,
        t.time_zone,
        now
    )
    .fetch_optional(&mut **tx)
    .await
    .map_err(db)?;
    if let Some(id) = inserted {
        return Ok((
            tenant_created(tx, t, id, now, actor).await?,
            Applied::Created,
        ));
    }
    let current = sqlx::query_as!(
        TenantRow,
        "SELECT id, slug, name, time_zone, created_at FROM tenants WHERE slug = $1 FOR NO KEY UPDATE",
        slug
    )
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?
    .into_tenant()?;
    if current.name == t.name && current.time_zone == t.time_zone {
        return Ok((current, Applied::Unchanged));
    }
    sqlx::query!(
        "UPDATE tenants SET name = $1, time_zone = $2 WHERE id = $3",
        t.name,
        t.time_zone,
        current.id.0
    )
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    audit::append(
        tx,
        current.id,
        &[event(
            actor,
            at,
            "tenant.updated",
            t.slug.to_string(),
            json!({ "name": t.name, "time_zone": t.time_zone }),
        )],
    )
    .await?;
    Ok((
        Tenant {
            name: t.name.clone(),
            time_zone: t.time_zone.clone(),
            ..current
        },
        Applied::Updated,
    ))
}

pub(crate) async fn tenant(pool: &PgPool, id: TenantId) -> Result<Tenant> {
    found(
        "tenant",
        sqlx::query_as!(
            TenantRow,
            "SELECT id, slug, name, time_zone, created_at FROM tenants WHERE id = $1",
            id.0
        )
        .fetch_optional(pool)
        .await,
    )?
    .into_tenant()
}

pub(crate) async fn tenant_by_slug(pool: &PgPool, slug: &str) -> Result<Tenant> {
    found(
        "tenant",
        sqlx::query_as!(
            TenantRow,
            "SELECT id, slug, name, time_zone, created_at FROM tenants WHERE slug = $1",
            slug
        )
        .fetch_optional(pool)
        .await,
    )?
    .into_tenant()
}

pub(crate) async fn tenants(pool: &PgPool) -> Result<Vec<Tenant>> {
    // COLLATE "C": byte order, as SQLite sorts, whatever the database's locale.
    sqlx::query_as!(
        TenantRow,
        r#"SELECT id, slug, name, time_zone, created_at FROM tenants ORDER BY slug COLLATE "C""#
    )
    .fetch_all(pool)
    .await
    .map_err(db)?
    .into_iter()
    .map(TenantRow::into_tenant)
    .collect()
}

struct UserRow {
    id: i64,
    email: String,
    name: String,
    kind: String,
    admin: bool,
    tenant_id: Option<i64>,
    password_hash: Option<String>,
    created_at: DateTime<Utc>,
}

impl UserRow {
    fn into_user(self) -> Result<User> {
        Ok(User {
            id: UserId(self.id),
            email: Email::parse(&self.email).map_err(|e| StoreError::corrupt("user email", e))?,
            name: self.name,
            kind: parse::<UserKind>("user kind", &self.kind)?,
            admin: self.admin,
            tenant: self.tenant_id.map(TenantId),
            password_hash: self.password_hash,
            created_at: self.created_at,
        })
    }
}

pub(crate) async fn insert_user(
    tx: &mut Transaction<'_, Postgres>,
    u: &NewUser,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<User> {
    let now = stamp(at);
    let (email, kind) = (u.email.as_str(), u.kind.as_str());
    let tenant = u.tenant.map(|t| t.0);
    let id = sqlx::query_scalar!(
        "INSERT INTO users (email, name, kind, admin, tenant_id, password_hash, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        email,
        u.name,
        kind,
        u.admin,
        tenant,
        u.password_hash,
        now
    )
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?;
    if let Some(t) = u.tenant {
        audit::append(
            tx,
            t,
            &[event(
                actor,
                at,
                "user.created",
                email.to_string(),
                json!({ "kind": kind }),
            )],
        )
        .await?;
    }
    Ok(User {
        id: UserId(id),
        email: u.email.clone(),
        name: u.name.clone(),
        kind: u.kind,
        admin: u.admin,
        tenant: u.tenant,
        password_hash: u.password_hash.clone(),
        created_at: now,
    })
}

pub(crate) async fn user(pool: &PgPool, id: UserId) -> Result<User> {
    found(
        "user",
        sqlx::query_as!(
            UserRow,
            "SELECT id, email, name, kind, admin, tenant_id, password_hash, created_at FROM users WHERE id = $1",
            id.0
        )
        .fetch_optional(pool)
        .await,
    )?
    .into_user()
}

pub(crate) async fn user_by_email(pool: &PgPool, email: &Email) -> Result<User> {
    let email = email.as_str();
    found(
        "user",
        sqlx::query_as!(
            UserRow,
            "SELECT id, email, name, kind, admin, tenant_id, password_hash, created_at FROM users WHERE email = $1 AND disabled_at IS NULL",
            email
        )
        .fetch_optional(pool)
        .await,
    )?
    .into_user()
}

pub(crate) async fn set_password(pool: &PgPool, user: UserId, hash: &str) -> Result<()> {
    let done = sqlx::query!(
        "UPDATE users SET password_hash = $1 WHERE id = $2",
        hash,
        user.0
    )
    .execute(pool)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::not_found("user"));
    }
    Ok(())
}

pub(crate) async fn users_in_tenant(
    pool: &PgPool,
    tenant: TenantId,
) -> Result<Vec<(User, BTreeSet<Role>)>> {
    // Ordered by e-mail, so each user's rows are adjacent; byte order as on SQLite.
    let rows = sqlx::query!(
        r#"SELECT u.id, u.email, u.name, u.kind, u.admin, u.tenant_id, u.password_hash, u.created_at, b.role
           FROM users u JOIN role_bindings b ON b.user_id = u.id
           WHERE b.tenant_id = $1 AND u.disabled_at IS NULL ORDER BY u.email COLLATE "C", b.role COLLATE "C""#,
        tenant.0
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    let mut out: Vec<(User, BTreeSet<Role>)> = Vec::new();
    for r in rows {
        let role = parse::<Role>("role", &r.role)?;
        match out.last_mut() {
            Some((u, roles)) if u.id.0 == r.id => {
                roles.insert(role);
            }
            _ => {
                let user = UserRow {
                    id: r.id,
                    email: r.email,
                    name: r.name,
                    kind: r.kind,
                    admin: r.admin,
                    tenant_id: r.tenant_id,
                    password_hash: r.password_hash,
                    created_at: r.created_at,
                }
                .into_user()?;
                out.push((user, BTreeSet::from([role])));
            }
        }
    }
    Ok(out)
}

pub(crate) async fn bind_role(
    tx: &mut Transaction<'_, Postgres>,
    user: UserId,
    tenant: TenantId,
    role: Role,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<Applied> {
    let role_name = role.as_str();
    let done = sqlx::query!(
        "INSERT INTO role_bindings (user_id, tenant_id, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        user.0,
        tenant.0,
        role_name
    )
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Ok(Applied::Unchanged);
    }
    let email = sqlx::query_scalar!("SELECT email FROM users WHERE id = $1", user.0)
        .fetch_one(&mut **tx)
        .await
        .map_err(db)?;
    audit::append(
        tx,
        tenant,
        &[event(
            actor,
            at,
            "role.granted",
            email,
            json!({ "role": role_name }),
        )],
    )
    .await?;
    Ok(Applied::Created)
}

pub(crate) async fn roles_of(
    pool: &PgPool,
    user: UserId,
) -> Result<BTreeMap<TenantId, BTreeSet<Role>>> {
    let rows = sqlx::query!(
        "SELECT tenant_id, role FROM role_bindings WHERE user_id = $1",
        user.0
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    let mut out: BTreeMap<TenantId, BTreeSet<Role>> = BTreeMap::new();
    for r in rows {
        out.entry(TenantId(r.tenant_id))
            .or_default()
            .insert(parse("role", &r.role)?);
    }
    Ok(out)
}

pub(crate) async fn create_token(
    pool: &PgPool,
    user: UserId,
    name: &str,
    hash: &str,
    scope: &TokenScope,
    at: DateTime<Utc>,
) -> Result<ApiToken> {
    let (gate_tenant, agent_cluster) = scope.columns();
    let now = stamp(at);
    let id = sqlx::query_scalar!(
        "INSERT INTO api_tokens (user_id, name, token_hash, created_at, gate_tenant_id, agent_cluster) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        user.0,
        name,
        hash,
        now,
        gate_tenant,
        agent_cluster
    )
    .fetch_one(pool)
    .await
    .map_err(db)?;
    Ok(ApiToken {
        id,
        user,
        name: name.to_string(),
        scope: scope.clone(),
        created_at: now,
    })
}

/// A user row with the token's scope.
struct TokenUserRow {
    id: i64,
    email: String,
    name: String,
    kind: String,
    admin: bool,
    tenant_id: Option<i64>,
    password_hash: Option<String>,
    created_at: DateTime<Utc>,
    gate_tenant_id: Option<i64>,
    agent_cluster: Option<String>,
}

pub(crate) async fn user_by_token(pool: &PgPool, hash: &str) -> Result<(User, TokenScope)> {
    let row = found(
        "token",
        sqlx::query_as!(
            TokenUserRow,
            "SELECT u.id, u.email, u.name, u.kind, u.admin, u.tenant_id, u.password_hash, u.created_at,
                    t.gate_tenant_id, t.agent_cluster
             FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.disabled_at IS NULL",
            hash
        )
        .fetch_optional(pool)
        .await,
    )?;
    let scope = TokenScope::from_columns(row.gate_tenant_id, row.agent_cluster);
    let user = UserRow {
        id: row.id,
        email: row.email,
        name: row.name,
        kind: row.kind,
        admin: row.admin,
        tenant_id: row.tenant_id,
        password_hash: row.password_hash,
        created_at: row.created_at,
    }
    .into_user()?;
    Ok((user, scope))
}

pub(crate) async fn create_session(
    pool: &PgPool,
    user: UserId,
    id_hash: &str,
    expires_at: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<()> {
    let now = stamp(at);
    sqlx::query!(
        "INSERT INTO sessions (id_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        id_hash,
        user.0,
        now,
        expires_at
    )
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn user_by_session(
    pool: &PgPool,
    id_hash: &str,
    now: DateTime<Utc>,
) -> Result<User> {
    found(
        "session",
        sqlx::query_as!(
            UserRow,
            "SELECT u.id, u.email, u.name, u.kind, u.admin, u.tenant_id, u.password_hash, u.created_at
             FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id_hash = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL",
            id_hash,
            now
        )
        .fetch_optional(pool)
        .await,
    )?
    .into_user()
}

pub(crate) async fn delete_session(pool: &PgPool, id_hash: &str) -> Result<()> {
    sqlx::query!("DELETE FROM sessions WHERE id_hash = $1", id_hash)
        .execute(pool)
        .await
        .map_err(db)?;
    Ok(())
}

/// See `Store::sign_in_attempt`.
pub(crate) async fn sign_in_attempt(
    tx: &mut Transaction<'_, Postgres>,
    address_hash: &str,
    now: DateTime<Utc>,
    window: chrono::TimeDelta,
    max: usize,
) -> Result<Option<DateTime<Utc>>> {
    let forget = now - window;
    sqlx::query!("DELETE FROM sign_in_limits WHERE last_at <= $1", forget)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    // The row, created if new, locked by the upsert either way (another
    // attempt's purge cannot remove it between two statements).
    let failures = sqlx::query_scalar!(
        "INSERT INTO sign_in_limits (address_hash, failures, last_at) VALUES ($1, '[]', $2)
         ON CONFLICT (address_hash) DO UPDATE SET address_hash = EXCLUDED.address_hash
         RETURNING failures",
        address_hash,
        now
    )
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?;
    let failures: Vec<DateTime<Utc>> =
        serde_json::from_str(&failures).map_err(|e| StoreError::corrupt("sign-in failures", e))?;
    match changegate_store::sign_in::attempt(&failures, now, window, max) {
        Err(until) => Ok(Some(until)),
        Ok(kept) => {
            let kept = serde_json::to_string(&kept)
                .map_err(|e| StoreError::corrupt("sign-in failures", e))?;
            sqlx::query!(
                "UPDATE sign_in_limits SET failures = $1, last_at = $2 WHERE address_hash = $3",
                kept,
                now,
                address_hash
            )
            .execute(&mut **tx)
            .await
            .map_err(db)?;
            Ok(None)
        }
    }
}

pub(crate) async fn sign_in_succeeded(
    tx: &mut Transaction<'_, Postgres>,
    address_hash: &str,
) -> Result<()> {
    sqlx::query!(
        "DELETE FROM sign_in_limits WHERE address_hash = $1",
        address_hash
    )
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}
