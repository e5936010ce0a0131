//! Taking access back: tokens listed and revoked, roles unbound, users
//! disabled (sessions ended, tokens revoked), sessions ended.

use changegate_core::{Email, Role, TenantId, UserId};
use changegate_store::*;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::{audit, db};

pub(crate) async fn tokens(pool: &SqlitePool, f: &TokenFilter) -> Result<Vec<TokenInfo>> {
    let (user, tenant) = (f.user.map(|u| u.0), f.gate_tenant.map(|t| t.0));
    let rows = sqlx::query!(
        r#"SELECT t.id AS "id!", t.user_id, u.email, t.name, t.gate_tenant_id, t.agent_cluster,
                  t.created_at AS "created_at: DateTime<Utc>",
                  t.last_used_at AS "last_used_at: DateTime<Utc>",
                  t.revoked_at AS "revoked_at: DateTime<Utc>"
           FROM api_tokens t JOIN users u ON u.id = t.user_id
           WHERE (?1 IS NULL OR t.user_id = ?1) AND (?2 IS NULL OR t.gate_tenant_id = ?2)
             AND (?3 IS NULL OR t.id = ?3)
           ORDER BY t.id DESC"#,
        user,
        tenant,
        f.id
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.into_iter()
        .map(|r| {
            Ok(TokenInfo {
                id: r.id,
                user: UserId(r.user_id),
                user_email: Email::parse(&r.email)
                    .map_err(|e| StoreError::corrupt("user e-mail", e.message))?,
                name: r.name,
                scope: TokenScope::from_columns(r.gate_tenant_id, r.agent_cluster),
                created_at: r.created_at,
                last_used_at: r.last_used_at,
                revoked_at: r.revoked_at,
            })
        })
        .collect()
}

pub(crate) async fn revoke_token(
    tx: &mut Transaction<'_, Sqlite>,
    id: i64,
    at: DateTime<Utc>,
    events: &[(TenantId, NewEvent)],
) -> Result<()> {
    let done = sqlx::query!(
        "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        at,
        id
    )
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::not_found("token"));
    }
    append_each(tx, events).await
}

async fn append_each(
    tx: &mut Transaction<'_, Sqlite>,
    events: &[(TenantId, NewEvent)],
) -> Result<()> {
    let mut tenants: Vec<TenantId> = events.iter().map(|(t, _)| *t).collect();
    tenants.sort();
    tenants.dedup();
    for t in tenants {
        let mine: Vec<NewEvent> = events
            .iter()
            .filter(|(x, _)| *x == t)
            .map(|(_, e)| e.clone())
            .collect();
        audit::append(tx, t, &mine).await?;
    }
    Ok(())
}

pub(crate) async fn token_used(pool: &SqlitePool, hash: &str, at: DateTime<Utc>) -> Result<()> {
    let stale = at - TimeDelta::minutes(1);
    sqlx::query!(
        "UPDATE api_tokens SET last_used_at = ?1
         WHERE token_hash = ?2 AND (last_used_at IS NULL OR last_used_at <= ?3)",
        at,
        hash,
        stale
    )
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn unbind_role(
    tx: &mut Transaction<'_, Sqlite>,
    user: UserId,
    tenant: TenantId,
    role: Role,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    let role_name = role.as_str();
    let done = sqlx::query!(
        "DELETE FROM role_bindings WHERE user_id = ? AND tenant_id = ? AND role = ?",
        user.0,
        tenant.0,
        role_name
    )
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::not_found("role binding"));
    }
    let email = sqlx::query_scalar!("SELECT email FROM users WHERE id = ?", user.0)
        .fetch_one(&mut **tx)
        .await
        .map_err(db)?;
    audit::append(
        tx,
        tenant,
        &[NewEvent {
            actor: actor.into(),
            action: "role.revoked".into(),
            subject: email,
            detail: json!({ "role": role_name }),
            at,
        }],
    )
    .await
}

pub(crate) async fn disable_user(
    tx: &mut Transaction<'_, Sqlite>,
    user: UserId,
    at: DateTime<Utc>,
    events: &[(TenantId, NewEvent)],
) -> Result<()> {
    let done = sqlx::query!(
        "UPDATE users SET disabled_at = ? WHERE id = ? AND disabled_at IS NULL",
        at,
        user.0
    )
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::not_found("user"));
    }
    sqlx::query!("DELETE FROM sessions WHERE user_id = ?", user.0)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    sqlx::query!(
        "UPDATE api_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
        at,
        user.0
    )
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    // What they could still decide or read without signing in: their
    // approval links are void, their calendar feeds revoked.
    sqlx::query!(
        "UPDATE approval_links SET used_at = ? WHERE approver_id = ? AND used_at IS NULL",
        at,
        user.0
    )
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    sqlx::query!(
        "UPDATE calendar_feeds SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
        at,
        user.0
    )
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    append_each(tx, events).await
}

/// See `Store::change_password`.
pub(crate) async fn change_password(
    tx: &mut Transaction<'_, Sqlite>,
    user: UserId,
    password_hash: &str,
    keep: Option<&str>,
    events: &[(TenantId, NewEvent)],
) -> Result<u64> {
    let done = sqlx::query!(
        "UPDATE users SET password_hash = ? WHERE id = ? AND disabled_at IS NULL",
        password_hash,
        user.0
    )
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::not_found("user"));
    }
    let keep = keep.unwrap_or("");
    let ended = sqlx::query!(
        "DELETE FROM sessions WHERE user_id = ? AND id_hash <> ?",
        user.0,
        keep
    )
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    append_each(tx, events).await?;
    Ok(ended.rows_affected())
}
