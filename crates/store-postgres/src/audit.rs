//! Appending to and reading a tenant's audit chain. The head (last
//! sequence number and hash) lives on the tenant's row, updated in the same
//! transaction as the events, under that row's lock.

use changegate_core::TenantId;
use changegate_core::audit::{self, Event, EventBody};
use changegate_store::{NewEvent, Result, StoreError};
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::BTreeMap;

use crate::db;

/// Take `tenant`'s row lock for the rest of the transaction (see the crate
/// comment for why `NO KEY UPDATE`). A tenant that does not exist is not
/// an error here: the write then fails as it does on SQLite (a foreign
/// key, or no row to update).
pub(crate) async fn lock_tenant(
    tx: &mut Transaction<'_, Postgres>,
    tenant: TenantId,
) -> Result<()> {
    sqlx::query_scalar!(
        "SELECT id FROM tenants WHERE id = $1 FOR NO KEY UPDATE",
        tenant.0
    )
    .fetch_optional(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn append(
    tx: &mut Transaction<'_, Postgres>,
    tenant: TenantId,
    events: &[NewEvent],
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    // Locking again is free when the write already holds the lock, and
    // keeps the chain linear should a caller ever forget to take it.
    let head = sqlx::query!(
        "SELECT audit_seq, audit_hash FROM tenants WHERE id = $1 FOR NO KEY UPDATE",
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
        "UPDATE tenants SET audit_seq = $1, audit_hash = $2 WHERE id = $3",
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
pub(crate) async fn head(pool: &PgPool, tenant: TenantId) -> Result<i64> {
    crate::found(
        "tenant",
        sqlx::query_scalar!("SELECT audit_seq FROM tenants WHERE id = $1", tenant.0)
            .fetch_optional(pool)
            .await,
    )
}

pub(crate) async fn heads(pool: &PgPool) -> Result<BTreeMap<TenantId, i64>> {
    let rows = sqlx::query!("SELECT id, audit_seq FROM tenants")
        .fetch_all(pool)
        .await
        .map_err(db)?;
    Ok(rows
        .into_iter()
        .map(|r| (TenantId(r.id), r.audit_seq))
        .collect())
}

/// Where the tenant's chain ends, as recorded with its last append.
pub(crate) async fn chain_head(pool: &PgPool, tenant: TenantId) -> Result<audit::Head> {
    let row = crate::found(
        "tenant",
        sqlx::query!(
            "SELECT audit_seq AS seq, audit_hash AS hash FROM tenants WHERE id = $1",
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

pub(crate) async fn events(pool: &PgPool, tenant: TenantId) -> Result<(Vec<Event>, audit::Head)> {
    let head = chain_head(pool, tenant).await?;
    let rows = sqlx::query!(
        "SELECT seq, at, actor, action, subject, detail, prev_hash, hash
         FROM audit_events WHERE tenant_id = $1 ORDER BY id",
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
    pool: &PgPool,
    tenant: TenantId,
    after: i64,
    limit: i64,
) -> Result<(Vec<Event>, i64)> {
    let rows = sqlx::query!(
        "SELECT id, seq, at, actor, action, subject, detail, prev_hash, hash
         FROM audit_events WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
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
pub(crate) async fn about(pool: &PgPool, tenant: TenantId, subject: &str) -> Result<Vec<Event>> {
    let rows = sqlx::query!(
        "SELECT seq, at, actor, action, subject, detail, prev_hash, hash
         FROM audit_events WHERE tenant_id = $1 AND subject = $2 ORDER BY id",
        tenant.0,
        subject
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    Ok(events_of!(rows, tenant))
}

pub(crate) async fn about_each(
    pool: &PgPool,
    tenant: TenantId,
    subjects: &[String],
) -> Result<Vec<Event>> {
    let rows = sqlx::query!(
        "SELECT seq, at, actor, action, subject, detail, prev_hash, hash
         FROM audit_events WHERE tenant_id = $1 AND subject = ANY($2) ORDER BY id",
        tenant.0,
        subjects
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    Ok(events_of!(rows, tenant))
}
