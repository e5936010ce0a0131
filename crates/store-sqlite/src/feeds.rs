//! Calendar feeds: a tenant's iCalendar feed behind a revocable token.

use changegate_core::{TenantId, UserId};
use changegate_store::*;
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::{audit, db, found};

struct FeedRow {
    id: i64,
    tenant_id: i64,
    user_id: i64,
    name: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<FeedRow> for CalendarFeed {
    fn from(r: FeedRow) -> Self {
        CalendarFeed {
            id: r.id,
            tenant: TenantId(r.tenant_id),
            user: UserId(r.user_id),
            name: r.name,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        }
    }
}

macro_rules! select_feed {
    ($tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            FeedRow,
            r#"SELECT id AS "id!", tenant_id, user_id, name, created_at AS "created_at: DateTime<Utc>",
                      revoked_at AS "revoked_at: DateTime<Utc>"
               FROM calendar_feeds "# + $tail
            $(, $arg)*
        )
    };
}

pub(crate) async fn create(
    tx: &mut Transaction<'_, Sqlite>,
    tenant: TenantId,
    user: UserId,
    name: &str,
    hash: &str,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<CalendarFeed> {
    let now = at;
    let id = sqlx::query_scalar!(
        "INSERT INTO calendar_feeds (tenant_id, user_id, name, token_hash, created_at)
         VALUES (?, ?, ?, ?, ?) RETURNING id AS \"id!\"",
        tenant.0,
        user.0,
        name,
        hash,
        now
    )
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?;
    audit::append(
        tx,
        tenant,
        &[NewEvent {
            actor: actor.to_string(),
            action: "calendar-feed.created".into(),
            subject: format!("feed-{id}"),
            detail: json!({ "name": name }),
            at: now,
        }],
    )
    .await?;
    Ok(select_feed!("WHERE id = ?", id)
        .fetch_one(&mut **tx)
        .await
        .map_err(db)?
        .into())
}

pub(crate) async fn by_token(pool: &SqlitePool, hash: &str) -> Result<CalendarFeed> {
    Ok(found(
        "calendar feed",
        select_feed!("WHERE token_hash = ? AND revoked_at IS NULL", hash)
            .fetch_optional(pool)
            .await,
    )?
    .into())
}

pub(crate) async fn list(pool: &SqlitePool, tenant: TenantId) -> Result<Vec<CalendarFeed>> {
    Ok(select_feed!("WHERE tenant_id = ? ORDER BY id", tenant.0)
        .fetch_all(pool)
        .await
        .map_err(db)?
        .into_iter()
        .map(Into::into)
        .collect())
}

pub(crate) async fn revoke(
    tx: &mut Transaction<'_, Sqlite>,
    tenant: TenantId,
    id: i64,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    let now = at;
    let done = sqlx::query!(
        "UPDATE calendar_feeds SET revoked_at = ? WHERE id = ? AND tenant_id = ? AND revoked_at IS NULL",
        now,
        id,
        tenant.0
    )
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::not_found("calendar feed"));
    }
    audit::append(
        tx,
        tenant,
        &[NewEvent {
            actor: actor.to_string(),
            action: "calendar-feed.revoked".into(),
            subject: format!("feed-{id}"),
            detail: json!({}),
            at: now,
        }],
    )
    .await
}
