//! Per-tenant policy objects (boards, windows, templates, configuration
//! items) as JSON specs by name, versioned policies, and delegations.

use changegate_core::{TenantId, UserId};
use changegate_store::*;
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::{audit, db, found};

fn event(
    actor: &str,
    at: DateTime<Utc>,
    action: String,
    subject: String,
    detail: serde_json::Value,
) -> NewEvent {
    NewEvent {
        actor: actor.to_string(),
        action,
        subject,
        detail,
        at,
    }
}

pub(crate) async fn put(
    tx: &mut Transaction<'_, Sqlite>,
    tenant: TenantId,
    kind: ObjectKind,
    name: &str,
    spec: &str,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<Applied> {
    let kind_name = kind.as_str();
    let current = sqlx::query_scalar!(
        "SELECT spec FROM tenant_objects WHERE tenant_id = ? AND kind = ? AND name = ?",
        tenant.0,
        kind_name,
        name
    )
    .fetch_optional(&mut **tx)
    .await
    .map_err(db)?;
    let applied = match current {
        Some(s) if s == spec => return Ok(Applied::Unchanged),
        Some(_) => Applied::Updated,
        None => Applied::Created,
    };
    let now = at;
    sqlx::query!(
        "INSERT INTO tenant_objects (tenant_id, kind, name, spec, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (tenant_id, kind, name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
        tenant.0,
        kind_name,
        name,
        spec,
        now
    )
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    let verb = if applied == Applied::Created {
        "created"
    } else {
        "updated"
    };
    let spec_json: serde_json::Value =
        serde_json::from_str(spec).unwrap_or(serde_json::Value::String(spec.to_string()));
    audit::append(
        tx,
        tenant,
        &[event(
            actor,
            at,
            format!("{kind_name}.{verb}"),
            name.to_string(),
            json!({ "spec": spec_json }),
        )],
    )
    .await?;
    Ok(applied)
}

pub(crate) async fn list(
    pool: &SqlitePool,
    tenant: TenantId,
    kind: ObjectKind,
) -> Result<Vec<TenantObject>> {
    let kind_name = kind.as_str();
    let rows = sqlx::query!(
        r#"SELECT name, spec, updated_at AS "updated_at: DateTime<Utc>" FROM tenant_objects
           WHERE tenant_id = ? AND kind = ? ORDER BY name"#,
        tenant.0,
        kind_name
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    Ok(rows
        .into_iter()
        .map(|r| TenantObject {
            tenant,
            kind,
            name: r.name,
            spec: r.spec,
            updated_at: r.updated_at,
        })
        .collect())
}

pub(crate) async fn delete(
    tx: &mut Transaction<'_, Sqlite>,
    tenant: TenantId,
    kind: ObjectKind,
    name: &str,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    let kind_name = kind.as_str();
    let done = sqlx::query!(
        "DELETE FROM tenant_objects WHERE tenant_id = ? AND kind = ? AND name = ?",
        tenant.0,
        kind_name,
        name
    )
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::not_found("object"));
    }
    audit::append(
        tx,
        tenant,
        &[event(
            actor,
            at,
            format!("{kind_name}.deleted"),
            name.to_string(),
            json!({}),
        )],
    )
    .await
}

pub(crate) async fn put_policy(
    tx: &mut Transaction<'_, Sqlite>,
    tenant: TenantId,
    spec: &str,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<(i64, Applied)> {
    let current = sqlx::query!(
        "SELECT version, spec FROM policies WHERE tenant_id = ? ORDER BY version DESC LIMIT 1",
        tenant.0
    )
    .fetch_optional(&mut **tx)
    .await
    .map_err(db)?;
    let (version, applied) = match current {
        Some(c) if c.spec == spec => return Ok((c.version, Applied::Unchanged)),
        Some(c) => (c.version + 1, Applied::Updated),
        None => (1, Applied::Created),
    };
    let now = at;
    sqlx::query!(
        "INSERT INTO policies (tenant_id, version, spec, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
        tenant.0,
        version,
        spec,
        now,
        actor
    )
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    let spec_json: serde_json::Value =
        serde_json::from_str(spec).unwrap_or(serde_json::Value::Null);
    audit::append(
        tx,
        tenant,
        &[event(
            actor,
            at,
            "policy.versioned".into(),
            format!("v{version}"),
            json!({ "spec": spec_json }),
        )],
    )
    .await?;
    Ok((version, applied))
}

pub(crate) async fn policy(pool: &SqlitePool, tenant: TenantId) -> Result<(i64, String)> {
    let row = found(
        "policy",
        sqlx::query!(
            "SELECT version, spec FROM policies WHERE tenant_id = ? ORDER BY version DESC LIMIT 1",
            tenant.0
        )
        .fetch_optional(pool)
        .await,
    )?;
    Ok((row.version, row.spec))
}

pub(crate) async fn delegation_active(
    pool: &SqlitePool,
    tenant: TenantId,
    from: UserId,
    to: UserId,
    at: DateTime<Utc>,
) -> Result<bool> {
    let n = sqlx::query_scalar!(
        r#"SELECT COUNT(*) AS "n!: i64" FROM delegations
           WHERE tenant_id = ? AND from_user = ? AND to_user = ? AND starts_at <= ? AND ends_at > ?"#,
        tenant.0,
        from.0,
        to.0,
        at,
        at
    )
    .fetch_one(pool)
    .await
    .map_err(db)?;
    Ok(n > 0)
}

pub(crate) async fn delegations_of(
    pool: &SqlitePool,
    tenant: TenantId,
    user: UserId,
    at: DateTime<Utc>,
) -> Result<Vec<Delegation>> {
    let rows = sqlx::query!(
        r#"SELECT id AS "id!", from_user, to_user,
                  starts_at AS "starts_at: DateTime<Utc>", ends_at AS "ends_at: DateTime<Utc>"
           FROM delegations
           WHERE tenant_id = ? AND (from_user = ? OR to_user = ?) AND ends_at > ?
           ORDER BY starts_at, id"#,
        tenant.0,
        user.0,
        user.0,
        at
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    Ok(rows
        .into_iter()
        .map(|r| Delegation {
            id: r.id,
            tenant,
            from: UserId(r.from_user),
            to: UserId(r.to_user),
            starts_at: r.starts_at,
            ends_at: r.ends_at,
        })
        .collect())
}

pub(crate) async fn create_delegation(
    tx: &mut Transaction<'_, Sqlite>,
    d: &NewDelegation,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<Delegation> {
    let id = sqlx::query_scalar!(
        "INSERT INTO delegations (tenant_id, from_user, to_user, starts_at, ends_at) VALUES (?, ?, ?, ?, ?) RETURNING id AS \"id!\"",
        d.tenant.0,
        d.from.0,
        d.to.0,
        d.starts_at,
        d.ends_at
    )
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?;
    audit::append(
        tx,
        d.tenant,
        &[event(
            actor,
            at,
            "delegation.created".into(),
            format!("delegation-{id}"),
            json!({ "from": d.from, "to": d.to, "starts_at": d.starts_at, "ends_at": d.ends_at, "set_by_admin": d.reason }),
        )],
    )
    .await?;
    Ok(Delegation {
        id,
        tenant: d.tenant,
        from: d.from,
        to: d.to,
        starts_at: d.starts_at,
        ends_at: d.ends_at,
    })
}
