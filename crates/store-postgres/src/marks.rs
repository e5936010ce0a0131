//! Scheduler marks: how far each job has got, moved in the same
//! transaction as what the job writes.

use changegate_core::TenantId;
use changegate_store::*;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};

use crate::{audit, db};

pub(crate) async fn get(pool: &PgPool, key: &str) -> Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!("SELECT at FROM job_marks WHERE key = $1", key)
        .fetch_optional(pool)
        .await
        .map_err(db)
}

pub(crate) async fn advance(
    tx: &mut Transaction<'_, Postgres>,
    key: &str,
    from: Option<DateTime<Utc>>,
    to: DateTime<Utc>,
    tenant: TenantId,
    events: &[NewEvent],
) -> Result<bool> {
    let moved = match from {
        None => sqlx::query!(
            "INSERT INTO job_marks (key, at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            key,
            to
        )
        .execute(&mut **tx)
        .await
        .map_err(db)?,
        Some(from) => sqlx::query!(
            "UPDATE job_marks SET at = $1 WHERE key = $2 AND at = $3",
            to,
            key,
            from
        )
        .execute(&mut **tx)
        .await
        .map_err(db)?,
    };
    if moved.rows_affected() == 0 {
        return Ok(false);
    }
    audit::append(tx, tenant, events).await?;
    Ok(true)
}
