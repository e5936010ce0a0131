//! Releases and the changes they deliver. A release is saved under an
//! optimistic lock (`version`) together with the changes it moves and
//! the events of every tenant involved.

use changegate_core::release::{Record, ReleaseState};
use changegate_core::{ChangeNumber, ReleaseNumber, TenantId, UserId};
use changegate_store::*;
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{Sqlite, SqlitePool, Transaction};
use std::collections::BTreeSet;

use crate::rows::{json, parse, to_json};
use crate::{audit, changes, db, found};

struct ReleaseRow {
    id: i64,
    name: String,
    owner_id: i64,
    state: String,
    planned_start: Option<DateTime<Utc>>,
    planned_end: Option<DateTime<Utc>>,
    record: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
}

macro_rules! select_release {
    ($tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            ReleaseRow,
            r#"SELECT id AS "id!", name, owner_id, state,
                      planned_start AS "planned_start: DateTime<Utc>", planned_end AS "planned_end: DateTime<Utc>",
                      record, created_at AS "created_at: DateTime<Utc>", updated_at AS "updated_at: DateTime<Utc>", version
               FROM releases "# + $tail
            $(, $arg)*
        )
    };
}

/// Rows and the changes each delivers, as releases.
async fn complete<'e, E>(executor: E, rows: Vec<ReleaseRow>) -> Result<Vec<Release>>
where
    E: sqlx::SqliteExecutor<'e>,
{
    let ids = to_json(
        "release ids",
        &rows.iter().map(|r| r.id).collect::<Vec<_>>(),
    )?;
    let items = sqlx::query!(
        r#"SELECT release_id, tenant_id, change_id FROM release_changes
           WHERE release_id IN (SELECT value FROM json_each(?)) ORDER BY release_id, position"#,
        ids
    )
    .fetch_all(executor)
    .await
    .map_err(db)?;
    rows.into_iter()
        .map(|r| {
            let changes = items
                .iter()
                .filter(|i| i.release_id == r.id)
                .map(|i| ReleaseItem {
                    tenant: TenantId(i.tenant_id),
                    change: ChangeNumber(i.change_id),
                })
                .collect();
            Ok(Release {
                number: ReleaseNumber(r.id),
                name: r.name,
                owner: UserId(r.owner_id),
                state: parse::<ReleaseState>("release state", &r.state)?,
                planned_start: r.planned_start,
                planned_end: r.planned_end,
                changes,
                record: json::<Record>("release record", &r.record)?,
                created_at: r.created_at,
                updated_at: r.updated_at,
                version: r.version,
            })
        })
        .collect()
}

async fn one(tx: &mut Transaction<'_, Sqlite>, id: i64) -> Result<Release> {
    let row = select_release!("WHERE id = ?", id)
        .fetch_one(&mut **tx)
        .await
        .map_err(db)?;
    let mut all = complete(&mut **tx, vec![row]).await?;
    all.pop().ok_or(StoreError::not_found("release"))
}

/// Replace the list of changes `id` delivers.
async fn put_items(tx: &mut Transaction<'_, Sqlite>, id: i64, items: &[ReleaseItem]) -> Result<()> {
    sqlx::query!("DELETE FROM release_changes WHERE release_id = ?", id)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    for (position, item) in items.iter().enumerate() {
        let position = position as i64;
        // The change must belong to the tenant named with it.
        let done = sqlx::query!(
            "INSERT INTO release_changes (release_id, position, tenant_id, change_id)
             SELECT ?, ?, tenant_id, id FROM changes WHERE id = ? AND tenant_id = ?",
            id,
            position,
            item.change.0,
            item.tenant.0
        )
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("change"));
        }
    }
    Ok(())
}

pub(crate) async fn insert(
    tx: &mut Transaction<'_, Sqlite>,
    r: &NewRelease,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<Release> {
    let now = at;
    let state = ReleaseState::Planning.as_str();
    let record = to_json("release record", &r.record)?;
    let id = sqlx::query_scalar!(
        "INSERT INTO releases (name, owner_id, state, planned_start, planned_end, record, created_at, updated_at, version)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1) RETURNING id AS \"id!\"",
        r.name,
        r.owner.0,
        state,
        r.planned_start,
        r.planned_end,
        record,
        now,
        now
    )
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?;
    put_items(tx, id, &r.changes).await?;
    let number = ReleaseNumber(id);
    let tenants: BTreeSet<TenantId> = r.changes.iter().map(|i| i.tenant).collect();
    for tenant in tenants {
        let mine: Vec<String> = r
            .changes
            .iter()
            .filter(|i| i.tenant == tenant)
            .map(|i| i.change.to_string())
            .collect();
        audit::append(
            tx,
            tenant,
            &[NewEvent {
                actor: actor.to_string(),
                action: "release.created".into(),
                subject: number.to_string(),
                detail: json!({ "name": r.name, "changes": mine }),
                at: now,
            }],
        )
        .await?;
    }
    one(tx, id).await
}

pub(crate) async fn get(pool: &SqlitePool, number: ReleaseNumber) -> Result<Release> {
    let row = found(
        "release",
        select_release!("WHERE id = ?", number.0)
            .fetch_optional(pool)
            .await,
    )?;
    let mut all = complete(pool, vec![row]).await?;
    all.pop().ok_or(StoreError::not_found("release"))
}

pub(crate) async fn list(
    pool: &SqlitePool,
    tenants: Option<&BTreeSet<TenantId>>,
    limit: i64,
) -> Result<Vec<Release>> {
    let all = tenants.is_none();
    let only = to_json(
        "tenant filter",
        &tenants
            .into_iter()
            .flatten()
            .map(|t| t.0)
            .collect::<Vec<_>>(),
    )?;
    let rows = select_release!(
        "WHERE ? OR id IN (SELECT release_id FROM release_changes
                           WHERE tenant_id IN (SELECT value FROM json_each(?)))
         ORDER BY id DESC LIMIT ?",
        all,
        only,
        limit
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    complete(pool, rows).await
}

pub(crate) async fn active(
    pool: &SqlitePool,
    tenants: Option<&BTreeSet<TenantId>>,
) -> Result<Vec<Release>> {
    let all = tenants.is_none();
    let only = to_json(
        "tenant filter",
        &tenants
            .into_iter()
            .flatten()
            .map(|t| t.0)
            .collect::<Vec<_>>(),
    )?;
    let rows = select_release!(
        "WHERE state NOT IN ('finished', 'closed', 'cancelled')
           AND (? OR id IN (SELECT release_id FROM release_changes
                            WHERE tenant_id IN (SELECT value FROM json_each(?))))
         ORDER BY id",
        all,
        only
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    complete(pool, rows).await
}

pub(crate) async fn of_change(
    pool: &SqlitePool,
    tenant: TenantId,
    change: ChangeNumber,
) -> Result<Vec<Release>> {
    let rows = select_release!(
        "WHERE id IN (SELECT release_id FROM release_changes WHERE change_id = ? AND tenant_id = ?)
         ORDER BY id",
        change.0,
        tenant.0
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    complete(pool, rows).await
}

pub(crate) async fn save(
    tx: &mut Transaction<'_, Sqlite>,
    r: &Release,
    expected_version: i64,
    w: ReleaseWrite,
    at: DateTime<Utc>,
) -> Result<Release> {
    let now = at;
    let state = r.state.as_str();
    let record = to_json("release record", &r.record)?;
    let done = sqlx::query!(
        "UPDATE releases SET name = ?, owner_id = ?, state = ?, planned_start = ?, planned_end = ?, record = ?,
                updated_at = ?, version = version + 1
         WHERE id = ? AND version = ?",
        r.name,
        r.owner.0,
        state,
        r.planned_start,
        r.planned_end,
        record,
        now,
        r.number.0,
        expected_version
    )
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict {
            constraint: "releases.version".into(),
        });
    }
    put_items(tx, r.number.0, &r.changes).await?;
    for (change, expected, write) in w.changes {
        changes::save(tx, &change, expected, write, at).await?;
    }
    let tenants: BTreeSet<TenantId> = w.events.iter().map(|(t, _)| *t).collect();
    for tenant in tenants {
        let events: Vec<NewEvent> = w
            .events
            .iter()
            .filter(|(t, _)| *t == tenant)
            .map(|(_, e)| e.clone())
            .collect();
        audit::append(tx, tenant, &events).await?;
    }
    one(tx, r.number.0).await
}
