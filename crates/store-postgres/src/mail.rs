//! The outbox and approval links: written with the change they belong to,
//! read by the confirm page and the sender job.

use changegate_core::{ChangeNumber, TenantId, UserId};
use changegate_store::*;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};

use crate::{db, found, stamp};

/// The messages, links and link use of a change write, inside its transaction.
pub(crate) async fn write(
    tx: &mut Transaction<'_, Postgres>,
    c: &Change,
    w: &ChangeWrite,
    at: DateTime<Utc>,
) -> Result<()> {
    let now = stamp(at);
    for m in &w.messages {
        let recipient = m.recipient.as_str();
        sqlx::query!(
            "INSERT INTO outbox (tenant_id, recipient, subject, body, created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6)",
            c.tenant.0,
            recipient,
            m.subject,
            m.body,
            m.at,
            m.at
        )
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    }
    for l in &w.links {
        let purpose = l.purpose.as_str();
        sqlx::query!(
            "INSERT INTO approval_links (token_hash, tenant_id, change_id, revision, approver_id, code_hash, expires_at, purpose)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            l.token_hash,
            c.tenant.0,
            c.number.0,
            l.revision,
            l.approver.0,
            l.code_hash,
            l.expires_at,
            purpose
        )
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    }
    if let Some(hash) = &w.use_link {
        let done = sqlx::query!(
            "UPDATE approval_links SET used_at = $1 WHERE token_hash = $2 AND tenant_id = $3 AND used_at IS NULL",
            now,
            hash,
            c.tenant.0
        )
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict {
                constraint: "approval_links.used_at".into(),
            });
        }
    }
    Ok(())
}

pub(crate) async fn approval_link(pool: &PgPool, hash: &str) -> Result<ApprovalLink> {
    let r = found(
        "approval link",
        sqlx::query!(
            r#"SELECT tenant_id, change_id, revision, approver_id, code_hash, purpose,
                      expires_at , used_at 
               FROM approval_links WHERE token_hash = $1"#,
            hash
        )
        .fetch_optional(pool)
        .await,
    )?;
    Ok(ApprovalLink {
        purpose: LinkPurpose::parse(&r.purpose),
        tenant: TenantId(r.tenant_id),
        change: ChangeNumber(r.change_id),
        revision: r.revision,
        approver: UserId(r.approver_id),
        code_hash: r.code_hash,
        expires_at: r.expires_at,
        used_at: r.used_at,
    })
}

pub(crate) async fn due(pool: &PgPool, now: DateTime<Utc>, limit: i64) -> Result<Vec<Message>> {
    let rows = sqlx::query!(
        r#"SELECT id, tenant_id, recipient, subject, body, attempts
           FROM outbox WHERE sent_at IS NULL AND next_attempt_at <= $1 ORDER BY id LIMIT $2"#,
        now,
        limit
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    Ok(rows
        .into_iter()
        .map(|r| Message {
            id: r.id,
            tenant: TenantId(r.tenant_id),
            recipient: r.recipient,
            subject: r.subject,
            body: r.body,
            attempts: i64::from(r.attempts),
        })
        .collect())
}

/// Claim up to `limit` messages due at `now` until `lease_until`: none
/// another sender holds an unexpired claim on, oldest first.
pub(crate) async fn claim(
    tx: &mut Transaction<'_, Postgres>,
    now: DateTime<Utc>,
    limit: i64,
    lease_until: DateTime<Utc>,
) -> Result<Vec<Message>> {
    let rows = sqlx::query!(
        r#"UPDATE outbox SET claimed_until = $3
           WHERE id IN (SELECT id FROM outbox
                        WHERE sent_at IS NULL AND next_attempt_at <= $1
                          AND (claimed_until IS NULL OR claimed_until <= $1)
                        ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
           RETURNING id, tenant_id, recipient, subject, body, attempts"#,
        now,
        limit,
        lease_until
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(db)?;
    let mut claimed: Vec<Message> = rows
        .into_iter()
        .map(|r| Message {
            id: r.id,
            tenant: TenantId(r.tenant_id),
            recipient: r.recipient,
            subject: r.subject,
            body: r.body,
            attempts: i64::from(r.attempts),
        })
        .collect();
    claimed.sort_by_key(|m| m.id);
    Ok(claimed)
}

/// Mark `id` sent, if the claim until `lease_until` still holds it;
/// whether it did.
pub(crate) async fn sent(
    tx: &mut Transaction<'_, Postgres>,
    id: i64,
    lease_until: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<bool> {
    let done = sqlx::query!(
        "UPDATE outbox SET sent_at = $1, body = '', attempts = attempts + 1, last_error = NULL, claimed_until = NULL WHERE id = $2 AND sent_at IS NULL AND claimed_until = $3",
        at,
        id,
        lease_until
    )
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(done.rows_affected() == 1)
}

/// Mark `id` for a retry at `retry_at`, if the claim until `lease_until`
/// still holds it; whether it did.
pub(crate) async fn failed(
    tx: &mut Transaction<'_, Postgres>,
    id: i64,
    lease_until: DateTime<Utc>,
    error: &str,
    retry_at: DateTime<Utc>,
) -> Result<bool> {
    let done = sqlx::query!(
        "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2, claimed_until = NULL WHERE id = $3 AND sent_at IS NULL AND claimed_until = $4",
        error,
        retry_at,
        id,
        lease_until
    )
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(done.rows_affected() == 1)
}
