//! Tenants, users, role bindings and API tokens.

use changegate_core::{Email, Role, Slug, TenantId, UserId, UserKind};
use changegate_store::*;
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{Sqlite, SqlitePool, Transaction};
use std::collections::{BTreeMap, BTreeSet};

use crate::rows::parse;
use crate::{audit, db, found};

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

pub(crate) async fn insert_tenant(
    tx: &mut Transaction<'_, Sqlite>,
    t: &NewTenant,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<Tenant> {
    let now = at;
    let slug = t.slug.as_str();
    let id = sqlx::query_scalar!(
        "INSERT INTO tenants (slug, name, time_zone, created_at) VALUES (?, ?, ?, ?) RETURNING id AS \"id!\"",
        slug,
        t.name,
        t.time_zone,
        now
    )
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?;
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
            at,
            "tenant.created",
            t.slug.to_string(),
            json!({ "name": t.name, "time_zone": t.time_zone }),
        )],
    )
    .await?;
    Ok(tenant)
}

pub(crate) async fn apply_tenant(
    tx: &mut Transaction<'_, Sqlite>,
    t: &NewTenant,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<(Tenant, Applied)> {
    let slug = t.slug.as_str();
    let existing = sqlx::query_as!(
        TenantRow,
        r#"SELECT id AS "id!", slug, name, time_zone, created_at AS "created_at: DateTime<Utc>" FROM tenants WHERE slug = ?"#,
        slug
    )
    .fetch_optional(&mut **tx)
    .await
    .map_err(db)?;
    match existing {
        None => Ok((insert_tenant(tx, t, actor, at).await?, Applied::Created)),
        Some(row) => {
            let current = row.into_tenant()?;
            if current.name == t.name && current.time_zone == t.time_zone {
                return Ok((current, Applied::Unchanged));
            }
            sqlx::query!(
                "UPDATE tenants SET name = ?, time_zone = ? WHERE id = ?",
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
    }
}

pub(crate) async fn tenant(pool: &SqlitePool, id: TenantId) -> Result<Tenant> {
    found(
        "tenant",
        sqlx::query_as!(
            TenantRow,
            r#"SELECT id AS "id!", slug, name, time_zone, created_at AS "created_at: DateTime<Utc>" FROM tenants WHERE id = ?"#,
            id.0
        )
        .fetch_optional(pool)
        .await,
    )?
    .into_tenant()
}

pub(crate) async fn tenant_by_slug(pool: &SqlitePool, slug: &str) -> Result<Tenant> {
    found(
        "tenant",
        sqlx::query_as!(
            TenantRow,
            r#"SELECT id AS "id!", slug, name, time_zone, created_at AS "created_at: DateTime<Utc>" FROM tenants WHERE slug = ?"#,
            slug
        )
        .fetch_optional(pool)
        .await,
    )?
    .into_tenant()
}

pub(crate) async fn tenants(pool: &SqlitePool) -> Result<Vec<Tenant>> {
    sqlx::query_as!(
        TenantRow,
        r#"SELECT id AS "id!", slug, name, time_zone, created_at AS "created_at: DateTime<Utc>" FROM tenants ORDER BY slug"#
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
    tx: &mut Transaction<'_, Sqlite>,
    u: &NewUser,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<User> {
    let now = at;
    let (email, kind) = (u.email.as_str(), u.kind.as_str());
    let tenant = u.tenant.map(|t| t.0);
    let id = sqlx::query_scalar!(
        "INSERT INTO users (email, name, kind, admin, tenant_id, password_hash, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id AS \"id!\"",
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

pub(crate) async fn user(pool: &SqlitePool, id: UserId) -> Result<User> {
    found(
        "user",
        sqlx::query_as!(
            UserRow,
            r#"SELECT id AS "id!", email, name, kind, admin AS "admin: bool", tenant_id, password_hash,
                      created_at AS "created_at: DateTime<Utc>" FROM users WHERE id = ?"#,
            id.0
        )
        .fetch_optional(pool)
        .await,
    )?
    .into_user()
}

pub(crate) async fn user_by_email(pool: &SqlitePool, email: &Email) -> Result<User> {
    let email = email.as_str();
    found(
        "user",
        sqlx::query_as!(
            UserRow,
            r#"SELECT id AS "id!", email, name, kind, admin AS "admin: bool", tenant_id, password_hash,
                      created_at AS "created_at: DateTime<Utc>" FROM users WHERE email = ? AND disabled_at IS NULL"#,
            email
        )
        .fetch_optional(pool)
        .await,
    )?
    .into_user()
}

pub(crate) async fn set_password(pool: &SqlitePool, user: UserId, hash: &str) -> Result<()> {
    let done = sqlx::query!(
        "UPDATE users SET password_hash = ? WHERE id = ?",
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
    pool: &SqlitePool,
    tenant: TenantId,
) -> Result<Vec<(User, BTreeSet<Role>)>> {
    let rows = sqlx::query!(
        r#"SELECT u.id AS "id!", u.email, u.name, u.kind, u.admin AS "admin: bool", u.tenant_id, u.password_hash,
                  u.created_at AS "created_at: DateTime<Utc>", b.role
           FROM users u JOIN role_bindings b ON b.user_id = u.id
           WHERE b.tenant_id = ? AND u.disabled_at IS NULL ORDER BY u.email, b.role"#,
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
    tx: &mut Transaction<'_, Sqlite>,
    user: UserId,
    tenant: TenantId,
    role: Role,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<Applied> {
    let role_name = role.as_str();
    let done = sqlx::query!(
        "INSERT INTO role_bindings (user_id, tenant_id, role) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
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
    let email = sqlx::query_scalar!("SELECT email FROM users WHERE id = ?", user.0)
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
    pool: &SqlitePool,
    user: UserId,
) -> Result<BTreeMap<TenantId, BTreeSet<Role>>> {
    let rows = sqlx::query!(
        "SELECT tenant_id, role FROM role_bindings WHERE user_id = ?",
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
    pool: &SqlitePool,
    user: UserId,
    name: &str,
    hash: &str,
    scope: &TokenScope,
    at: DateTime<Utc>,
) -> Result<ApiToken> {
    let (gate_tenant, agent_cluster) = scope.columns();
    let now = at;
    let id = sqlx::query_scalar!(
        "INSERT INTO api_tokens (user_id, name, token_hash, created_at, gate_tenant_id, agent_cluster) VALUES (?, ?, ?, ?, ?, ?) RETURNING id AS \"id!\"",
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

pub(crate) async fn user_by_token(pool: &SqlitePool, hash: &str) -> Result<(User, TokenScope)> {
    let row = found(
        "token",
        sqlx::query_as!(
            TokenUserRow,
            r#"SELECT u.id AS "id!", u.email, u.name, u.kind, u.admin AS "admin: bool", u.tenant_id, u.password_hash,
                      u.created_at AS "created_at: DateTime<Utc>", t.gate_tenant_id, t.agent_cluster
               FROM api_tokens t JOIN users u ON u.id = t.user_id
               WHERE t.token_hash = ? AND t.revoked_at IS NULL AND u.disabled_at IS NULL"#,
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
    pool: &SqlitePool,
    user: UserId,
    id_hash: &str,
    expires_at: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<()> {
    let now = at;
    sqlx::query!(
        "INSERT INTO sessions (id_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
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
    pool: &SqlitePool,
    id_hash: &str,
    now: DateTime<Utc>,
) -> Result<User> {
    found(
        "session",
        sqlx::query_as!(
            UserRow,
            r#"SELECT u.id AS "id!", u.email, u.name, u.kind, u.admin AS "admin: bool", u.tenant_id, u.password_hash,
                      u.created_at AS "created_at: DateTime<Utc>"
               FROM sessions s JOIN users u ON u.id = s.user_id
               WHERE s.id_hash = ? AND s.expires_at > ? AND u.disabled_at IS NULL"#,
            id_hash,
            now
        )
        .fetch_optional(pool)
        .await,
    )?
    .into_user()
}

pub(crate) async fn delete_session(pool: &SqlitePool, id_hash: &str) -> Result<()> {
    sqlx::query!("DELETE FROM sessions WHERE id_hash = ?", id_hash)
        .execute(pool)
        .await
        .map_err(db)?;
    Ok(())
}

/// See `Store::sign_in_attempt`.
pub(crate) async fn sign_in_attempt(
    tx: &mut Transaction<'_, Sqlite>,
    address_hash: &str,
    now: DateTime<Utc>,
    window: chrono::TimeDelta,
    max: usize,
) -> Result<Option<DateTime<Utc>>> {
    let forget = now - window;
    sqlx::query!("DELETE FROM sign_in_limits WHERE last_at <= ?", forget)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    sqlx::query!(
        "INSERT INTO sign_in_limits (address_hash, failures, last_at) VALUES (?, '[]', ?)
         ON CONFLICT (address_hash) DO NOTHING",
        address_hash,
        now
    )
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    let failures = sqlx::query_scalar!(
        "SELECT failures FROM sign_in_limits WHERE address_hash = ?",
        address_hash
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
                "UPDATE sign_in_limits SET failures = ?, last_at = ? WHERE address_hash = ?",
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
    tx: &mut Transaction<'_, Sqlite>,
    address_hash: &str,
) -> Result<()> {
    sqlx::query!(
        "DELETE FROM sign_in_limits WHERE address_hash = ?",
        address_hash
    )
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}
