//! Resources standing for records (changes, releases, windows): one per
//! place, linked in the transaction that creates it.

use changegate_core::TenantId;
use changegate_store::*;
use chrono::{DateTime, Utc};
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::db;

pub(crate) async fn get(pool: &SqlitePool, key: &ResourceKey) -> Result<Option<ResourceLink>> {
    let row = sqlx::query!(
        r#"SELECT tenant_id, change_number, uid, generation, updated_at AS "updated_at: DateTime<Utc>"
           FROM resource_links WHERE cluster = ? AND namespace = ? AND kind = ? AND name = ?"#,
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
    tx: &mut Transaction<'_, Sqlite>,
    link: &ResourceLink,
    number: i64,
    replaces: Option<i64>,
    at: DateTime<Utc>,
) -> Result<()> {
    let k = &link.key;
    let done = match replaces {
        None => sqlx::query!(
            "INSERT INTO resource_links (cluster, namespace, kind, name, tenant_id, change_number, uid, generation, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
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
            "UPDATE resource_links SET tenant_id = ?, change_number = ?, uid = ?, generation = ?, updated_at = ?
             WHERE cluster = ? AND namespace = ? AND kind = ? AND name = ? AND change_number = ?",
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
    pool: &SqlitePool,
    key: &ResourceKey,
    uid: &str,
    generation: i64,
    at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query!(
        "UPDATE resource_links SET uid = ?, generation = ?, updated_at = ?
         WHERE cluster = ? AND namespace = ? AND kind = ? AND name = ? AND (generation < ? OR uid <> ?)",
        uid,
        generation,
        at,
        key.cluster,
        key.namespace,
        key.kind,
        key.name,
        generation,
        uid
    )
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn unlink(pool: &SqlitePool, key: &ResourceKey, number: i64) -> Result<()> {
    sqlx::query!(
        "DELETE FROM resource_links WHERE cluster = ? AND namespace = ? AND kind = ? AND name = ? AND change_number = ?",
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

pub(crate) async fn put(pool: &SqlitePool, link: &ResourceLink) -> Result<()> {
    let k = &link.key;
    sqlx::query!(
        "INSERT INTO resource_links (cluster, namespace, kind, name, tenant_id, change_number, uid, generation, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
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
    pool: &SqlitePool,
    cluster: &str,
    kind: &str,
) -> Result<Vec<ResourceLink>> {
    let rows = sqlx::query!(
        r#"SELECT namespace, name, tenant_id, change_number, uid, generation, updated_at AS "updated_at: DateTime<Utc>"
           FROM resource_links WHERE cluster = ? AND kind = ? ORDER BY namespace, name"#,
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
    tx: &mut Transaction<'_, Sqlite>,
    link: &ResourceLink,
    number: i64,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO change_origins (tenant_id, change_number, cluster, namespace) VALUES (?, ?, ?, ?)
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

pub(crate) async fn origins(pool: &SqlitePool, tenant: TenantId) -> Result<Vec<ChangeOrigin>> {
    let rows = sqlx::query!(
        "SELECT change_number, cluster, namespace FROM change_origins WHERE tenant_id = ? ORDER BY change_number",
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
