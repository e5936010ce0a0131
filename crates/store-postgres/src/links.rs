//! Resources standing for records (changes, releases, windows): one per
//! place, linked in the transaction that creates it.

use changegate_core::TenantId;
use changegate_store::*;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};

use crate::db;

pub(crate) async fn get(pool: &PgPool, key: &ResourceKey) -> Result<Option<ResourceLink>> {
    let row = sqlx::query!(
        r#"SELECT tenant_id, change_number, uid, generation, updated_at AS "updated_at: DateTime<Utc>"
           FROM resource_links WHERE cluster = $1 AND namespace = $2 AND kind = $3 AND name = $4"#,
        key.cluster,
        key.namespace,
        key.kind,
        key.name
    )
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    Ok(row.map(|r| ResourceLink {
        key: key.clone(),
        tenant: TenantId(r.tenant_id),
        number: r.change_number,
        uid: r.uid,
        generation: r.generation,
        updated_at: r.updated_at,
    }))
}

/// Links `link.key` to `number`, replacing its link to `replaces` (or
/// none): `Conflict` when the key is linked to anything else.
pub(crate) async fn link(
    tx: &mut Transaction<'_, Postgres>,
    link: &ResourceLink,
    number: i64,
    replaces: Option<i64>,
    at: DateTime<Utc>,
) -> Result<()> {
    let k = &link.key;
    let done = match replaces {
        None => sqlx::query!(
            "INSERT INTO resource_links (cluster, namespace, kind, name, tenant_id, change_number, uid, generation, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
            k.cluster,
            k.namespace,
            k.kind,
            k.name,
            link.tenant.0,
            number,
            link.uid,
            link.generation,
            at
        )
        .execute(&mut **tx)
        .await
        .map_err(db)?,
        Some(old) => sqlx::query!(
            "UPDATE resource_links SET tenant_id = $1, change_number = $2, uid = $3, generation = $4, updated_at = $5
             WHERE cluster = $6 AND namespace = $7 AND kind = $8 AND name = $9 AND change_number = $10",
            link.tenant.0,
            number,
            link.uid,
            link.generation,
            at,
            k.cluster,
            k.namespace,
            k.kind,
            k.name,
            old
        )
        .execute(&mut **tx)
        .await
        .map_err(db)?,
    };
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict {
            constraint: "resource_links.change_number".into(),
        });
    }
    Ok(())
}

pub(crate) async fn touch(
    pool: &PgPool,
    key: &ResourceKey,
    uid: &str,
    generation: i64,
    at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query!(
        "UPDATE resource_links SET uid = $1, generation = $2, updated_at = $3
         WHERE cluster = $4 AND namespace = $5 AND kind = $6 AND name = $7 AND (generation < $2 OR uid <> $1)",
        uid,
        generation,
        at,
        key.cluster,
        key.namespace,
        key.kind,
        key.name
    )
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn unlink(pool: &PgPool, key: &ResourceKey, number: i64) -> Result<()> {
    sqlx::query!(
        "DELETE FROM resource_links WHERE cluster = $1 AND namespace = $2 AND kind = $3 AND name = $4 AND change_number = $5",
        key.cluster,
        key.namespace,
        key.kind,
        key.name,
        number
    )
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn put(pool: &PgPool, link: &ResourceLink) -> Result<()> {
    let k = &link.key;
    sqlx::query!(
        "INSERT INTO resource_links (cluster, namespace, kind, name, tenant_id, change_number, uid, generation, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (cluster, namespace, kind, name) DO UPDATE SET tenant_id = excluded.tenant_id,
           change_number = excluded.change_number, uid = excluded.uid, generation = excluded.generation,
           updated_at = excluded.updated_at",
        k.cluster,
        k.namespace,
        k.kind,
        k.name,
        link.tenant.0,
        link.number,
        link.uid,
        link.generation,
        link.updated_at
    )
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn of_cluster(
    pool: &PgPool,
    cluster: &str,
    kind: &str,
) -> Result<Vec<ResourceLink>> {
    let rows = sqlx::query!(
        r#"SELECT namespace, name, tenant_id, change_number, uid, generation, updated_at AS "updated_at: DateTime<Utc>"
           FROM resource_links WHERE cluster = $1 AND kind = $2 ORDER BY namespace, name"#,
        cluster,
        kind
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    Ok(rows
        .into_iter()
        .map(|r| ResourceLink {
            key: ResourceKey {
                cluster: cluster.to_string(),
                namespace: r.namespace,
                kind: kind.to_string(),
                name: r.name,
            },
            tenant: TenantId(r.tenant_id),
            number: r.change_number,
            uid: r.uid,
            generation: r.generation,
            updated_at: r.updated_at,
        })
        .collect())
}

/// Records where change `number` was raised (its ChangeRequest's place).
pub(crate) async fn originate(
    tx: &mut Transaction<'_, Postgres>,
    link: &ResourceLink,
    number: i64,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO change_origins (tenant_id, change_number, cluster, namespace) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
        link.tenant.0,
        number,
        link.key.cluster,
        link.key.namespace
    )
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn origins(pool: &PgPool, tenant: TenantId) -> Result<Vec<ChangeOrigin>> {
    let rows = sqlx::query!(
        "SELECT change_number, cluster, namespace FROM change_origins WHERE tenant_id = $1 ORDER BY change_number",
        tenant.0
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    Ok(rows
        .into_iter()
        .map(|r| ChangeOrigin {
            number: r.change_number,
            cluster: r.cluster,
            namespace: r.namespace,
        })
        .collect())
}
