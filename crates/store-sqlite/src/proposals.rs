//! Change proposals: written once as raised; decisions on them are
//! events on the tenant's audit chain.

use changegate_core::TenantId;
use changegate_store::*;
use chrono::{DateTime, Utc};
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::{db, found};

pub(crate) async fn create(
    tx: &mut Transaction<'_, Sqlite>,
    tenant: TenantId,
    spec: &str,
    at: DateTime<Utc>,
) -> Result<StoredProposal> {
    let number = sqlx::query_scalar!(
        "INSERT INTO proposals (tenant_id, spec, created_at) VALUES (?, ?, ?) RETURNING id AS \"id!\"",
        tenant.0,
        spec,
        at
    )
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?;
    Ok(StoredProposal {
        tenant,
        number,
        spec: spec.to_string(),
        created_at: at,
    })
}

pub(crate) async fn one(
    pool: &SqlitePool,
    tenant: TenantId,
    number: i64,
) -> Result<StoredProposal> {
    let r = found(
        "proposal",
        sqlx::query!(
            r#"SELECT id AS "id!", spec, created_at AS "created_at: DateTime<Utc>"
               FROM proposals WHERE tenant_id = ? AND id = ?"#,
            tenant.0,
            number
        )
        .fetch_optional(pool)
        .await,
    )?;
    Ok(StoredProposal {
        tenant,
        number: r.id,
        spec: r.spec,
        created_at: r.created_at,
    })
}

pub(crate) async fn all(pool: &SqlitePool, tenant: TenantId) -> Result<Vec<StoredProposal>> {
    let rows = sqlx::query!(
        r#"SELECT id AS "id!", spec, created_at AS "created_at: DateTime<Utc>"
           FROM proposals WHERE tenant_id = ? ORDER BY id DESC"#,
        tenant.0
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    Ok(rows
        .into_iter()
        .map(|r| StoredProposal {
            tenant,
            number: r.id,
            spec: r.spec,
            created_at: r.created_at,
        })
        .collect())
}
