//! What an installation administrator says of a registered cluster.

use changegate_store::*;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::db;

pub(crate) async fn email_prefix(pool: &PgPool, cluster: &str) -> Result<Option<String>> {
    let row = sqlx::query!("SELECT email_prefix FROM clusters WHERE name = $1", cluster)
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    Ok(row.and_then(|r| r.email_prefix))
}

pub(crate) async fn set_email_prefix(
    pool: &PgPool,
    cluster: &str,
    prefix: Option<&str>,
    at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO clusters (name, email_prefix, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET email_prefix = excluded.email_prefix, updated_at = excluded.updated_at",
        cluster,
        prefix,
        at
    )
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}
