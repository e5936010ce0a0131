//! Appending to and reading a tenant's audit chain. The head (last
//! sequence number and hash) lives on the tenant's row, updated in the same
//! transaction as the events.

use changegate_core::TenantId;
use changegate_core::audit::{self, Event, EventBody};
use changegate_store::{NewEvent, Result, StoreError};
use chrono::{DateTime, Utc};
use sqlx::{Sqlite, SqlitePool, Transaction};
use std::collections::BTreeMap;

use crate::db;

pub(crate) async fn append(
    tx: &mut Transaction<'_, Sqlite>,
    tenant: TenantId,
    events: &[NewEvent],
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let head = sqlx::query!(
        "SELECT audit_seq, audit_hash FROM tenants WHERE id = ?",
        tenant.0
    )
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?;
    let (mut seq, mut hash) = (head.audit_seq, head.audit_hash);
    for e in events {
        seq += 1;
        let detail =
            serde_json::to_string(&e.detail).map_err(|e| StoreError::corrupt("audit detail", e))?;
        let sealed = audit::seal(
            &hash,
            EventBody {
                tenant,
                seq,
                at: audit::normalise(e.at),
                actor: e.actor.clone(),
                action: e.action.clone(),
                subject: e.subject.clone(),
                detail,
            },
        );
        let b = &sealed.body;
        sqlx::query!(
            "INSERT INTO audit_events (tenant_id, seq, at, actor, action, subject, detail, prev_hash, hash)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            tenant.0,
            b.seq,
            b.at,
            b.actor,
            b.action,
            b.subject,
            b.detail,
            sealed.prev_hash,
            sealed.hash
        )
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        hash = sealed.hash;
    }
    sqlx::query!(
        "UPDATE tenants SET audit_seq = ?, audit_hash = ? WHERE id = ?",
        seq,
        hash,
        tenant.0
    )
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

/// The sequence number of the tenant's last event.
pub(crate) async fn head(pool: &SqlitePool, tenant: TenantId) -> Result<i64> {
    crate::found(
        "tenant",
        sqlx::query_scalar!("SELECT audit_seq FROM tenants WHERE id = ?", tenant.0)
            .fetch_optional(pool)
            .await,
    )
}

pub(crate) async fn heads(pool: &SqlitePool) -> Result<BTreeMap<TenantId, i64>> {
    let rows = sqlx::query!(r#"SELECT id AS "id!", audit_seq FROM tenants"#)
        .fetch_all(pool)
        .await
        .map_err(db)?;
    Ok(rows
        .into_iter()
        .map(|r| (TenantId(r.id), r.audit_seq))
        .collect())
}

/// Where the tenant's chain ends, as recorded with its last append.
pub(crate) async fn chain_head(pool: &SqlitePool, tenant: TenantId) -> Result<audit::Head> {
    let row = crate::found(
        "tenant",
        sqlx::query!(
            "SELECT audit_seq AS seq, audit_hash AS hash FROM tenants WHERE id = ?",
            tenant.0
        )
        .fetch_optional(pool)
        .await,
    )?;
    Ok(audit::Head {
        seq: row.seq,
        hash: row.hash,
    })
}

/// Rows of `audit_events` as events of `tenant`.
macro_rules! events_of {
    ($rows:expr, $tenant:expr) => {
        $rows
            .into_iter()
            .map(|r| Event {
                body: EventBody {
                    tenant: $tenant,
                    seq: r.seq,
                    at: r.at,
                    actor: r.actor,
                    action: r.action,
                    subject: r.subject,
                    detail: r.detail,
                },
                prev_hash: r.prev_hash,
                hash: r.hash,
            })
            .collect::<Vec<Event>>()
    };
}

pub(crate) async fn events(
    pool: &SqlitePool,
    tenant: TenantId,
) -> Result<(Vec<Event>, audit::Head)> {
    let head = chain_head(pool, tenant).await?;
    let rows = sqlx::query!(
        r#"SELECT seq, at AS "at: DateTime<Utc>", actor, action, subject, detail, prev_hash, hash
           FROM audit_events WHERE tenant_id = ? ORDER BY id"#,
        tenant.0
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    Ok((events_of!(rows, tenant), head))
}

/// Up to `limit` of the tenant's events stored after row `after`, and
/// the row of the last (`after` when there are none).
pub(crate) async fn page(
    pool: &SqlitePool,
    tenant: TenantId,
    after: i64,
    limit: i64,
) -> Result<(Vec<Event>, i64)> {
    let rows = sqlx::query!(
        r#"SELECT id AS "id!", seq, at AS "at: DateTime<Utc>", actor, action, subject, detail, prev_hash, hash
           FROM audit_events WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?"#,
        tenant.0,
        after,
        limit
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    let next = rows.last().map_or(after, |r| r.id);
    Ok((events_of!(rows, tenant), next))
}

/// The tenant's events about `subject` (e.g. a change number), in order.
pub(crate) async fn about(
    pool: &SqlitePool,
    tenant: TenantId,
    subject: &str,
) -> Result<Vec<Event>> {
    let rows = sqlx::query!(
        r#"SELECT seq, at AS "at: DateTime<Utc>", actor, action, subject, detail, prev_hash, hash
           FROM audit_events WHERE tenant_id = ? AND subject = ? ORDER BY id"#,
        tenant.0,
        subject
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    Ok(events_of!(rows, tenant))
}

pub(crate) async fn about_each(
    pool: &SqlitePool,
    tenant: TenantId,
    subjects: &[String],
) -> Result<Vec<Event>> {
    let subjects = crate::rows::to_json("subjects", &subjects)?;
    let rows = sqlx::query!(
        r#"SELECT seq, at AS "at: DateTime<Utc>", actor, action, subject, detail, prev_hash, hash
           FROM audit_events WHERE tenant_id = ? AND subject IN (SELECT value FROM json_each(?)) ORDER BY id"#,
        tenant.0,
        subjects
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    Ok(events_of!(rows, tenant))
}
