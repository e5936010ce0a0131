//! Change requests, their revisions, approvals and comments. A change is
//! saved under an optimistic lock (`version`), together with what belongs
//! to the same step and its audit events.

use changegate_core::approval::ApprovalPlan;
use changegate_core::board::Decision;
use changegate_core::change::{ChangeState, ChangeType, RiskLevel};
use changegate_core::{ChangeNumber, Email, TenantId, UserId};
use changegate_store::*;
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::{BTreeMap, BTreeSet};

use crate::rows::{json, parse, to_json};
use crate::{audit, db, found, stamp};

struct ChangeRow {
    id: i64,
    tenant_id: i64,
    kind: String,
    state: String,
    requester_id: i64,
    implementer_id: Option<i64>,
    risk_level: Option<String>,
    risk_score: Option<i64>,
    revision: i64,
    fingerprint: Option<String>,
    policy_version: Option<i64>,
    plan: String,
    content: String,
    submitted_at: Option<DateTime<Utc>>,
    decided_at: Option<DateTime<Utc>>,
    approval_expires_at: Option<DateTime<Utc>>,
    retrospective_due_at: Option<DateTime<Utc>>,
    retrospective_overdue: bool,
    remind_at: Option<DateTime<Utc>>,
    escalate_at: Option<DateTime<Utc>>,
    escalated_to: Option<i64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
}

impl ChangeRow {
    fn into_change(self) -> Result<Change> {
        Ok(Change {
            number: ChangeNumber(self.id),
            tenant: TenantId(self.tenant_id),
            kind: parse::<ChangeType>("change type", &self.kind)?,
            state: parse::<ChangeState>("change state", &self.state)?,
            requester: UserId(self.requester_id),
            implementer: self.implementer_id.map(UserId),
            risk_level: self
                .risk_level
                .as_deref()
                .map(|l| parse::<RiskLevel>("risk level", l))
                .transpose()?,
            risk_score: self.risk_score,
            revision: self.revision,
            fingerprint: self.fingerprint,
            policy_version: self.policy_version,
            plan: json::<ApprovalPlan>("approval plan", &self.plan)?,
            content: json::<ChangeContent>("change content", &self.content)?,
            submitted_at: self.submitted_at,
            decided_at: self.decided_at,
            approval_expires_at: self.approval_expires_at,
            retrospective_due_at: self.retrospective_due_at,
            retrospective_overdue: self.retrospective_overdue,
            remind_at: self.remind_at,
            escalate_at: self.escalate_at,
            escalated_to: self.escalated_to.map(UserId),
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: self.version,
        })
    }
}

macro_rules! select_change {
    ($tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            ChangeRow,
            "SELECT id, tenant_id, kind, state, requester_id, implementer_id, risk_level, risk_score,
                    revision, fingerprint, policy_version, plan, content, submitted_at, decided_at,
                    approval_expires_at, retrospective_due_at, retrospective_overdue, remind_at, escalate_at, escalated_to,
                    created_at, updated_at, version
             FROM changes " + $tail
            $(, $arg)*
        )
    };
}

pub(crate) async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    c: &NewChange,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<Change> {
    let now = stamp(at);
    let (kind, state) = (c.kind.as_str(), ChangeState::Draft.as_str());
    let plan = to_json("approval plan", &ApprovalPlan::default())?;
    let content = to_json("change content", &c.content)?;
    let proposal = proposal_of(&c.content);
    let implementer = c.implementer.map(|u| u.0);
    let id = sqlx::query_scalar!(
        "INSERT INTO changes (tenant_id, kind, state, title, requester_id, implementer_id, revision, plan, content,
                              planned_start, planned_end, created_at, updated_at, version, proposal)
         VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9, $10, $11, $11, 1, $12) RETURNING id",
        c.tenant.0,
        kind,
        state,
        c.content.title,
        c.requester.0,
        implementer,
        plan,
        content,
        c.content.planned_start,
        c.content.planned_end,
        now,
        proposal
    )
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?;
    let number = ChangeNumber(id);
    audit::append(
        tx,
        c.tenant,
        &[NewEvent {
            actor: actor.to_string(),
            action: "change.created".into(),
            subject: number.to_string(),
            detail: json!({ "type": kind, "title": c.content.title }),
            at: now,
        }],
    )
    .await?;
    select_change!("WHERE id = $1", id)
        .fetch_one(&mut **tx)
        .await
        .map_err(db)?
        .into_change()
}

pub(crate) async fn get(pool: &PgPool, tenant: TenantId, number: ChangeNumber) -> Result<Change> {
    found(
        "change",
        select_change!("WHERE id = $1 AND tenant_id = $2", number.0, tenant.0)
            .fetch_optional(pool)
            .await,
    )?
    .into_change()
}

/// The tenant of a filter that names exactly one.
fn single(f: &ChangeFilter) -> Option<i64> {
    match &f.tenants {
        Some(ts) if ts.len() == 1 => ts.iter().next().map(|t| t.0),
        _ => None,
    }
}

pub(crate) async fn list(pool: &PgPool, f: &ChangeFilter) -> Result<Vec<Change>> {
    // `None` (every tenant) is a NULL array; an empty set matches nothing.
    let tenants: Option<Vec<i64>> = f
        .tenants
        .as_ref()
        .map(|ts| ts.iter().map(|t| t.0).collect());
    let state = f.state.map(|s| s.as_str());
    let kind = f.kind.map(|k| k.as_str());
    let requester = f.requester.map(|u| u.0);
    let before = f.before.map(|n| n.0);
    let limit = i64::from(f.limit.clamp(1, 500));
    // One tenant (every tenant-scoped list): `tenant_id = $1` lets the
    // planner walk the (tenant_id, id DESC) index; `= ANY` cannot.
    if let Some(only) = single(f) {
        return select_change!(
            "WHERE tenant_id = $1
               AND ($2::TEXT IS NULL OR state = $2) AND ($3::TEXT IS NULL OR kind = $3)
               AND ($4::BIGINT IS NULL OR requester_id = $4)
               AND ($5::TIMESTAMPTZ IS NULL OR created_at >= $5) AND ($6::TIMESTAMPTZ IS NULL OR created_at < $6)
               AND ($7::BIGINT IS NULL OR id < $7)
             ORDER BY id DESC LIMIT $8",
            only,
            state,
            kind,
            requester,
            f.created_from,
            f.created_to,
            before,
            limit
        )
        .fetch_all(pool)
        .await
        .map_err(db)?
        .into_iter()
        .map(ChangeRow::into_change)
        .collect();
    }
    select_change!(
        "WHERE ($1::BIGINT[] IS NULL OR tenant_id = ANY($1))
           AND ($2::TEXT IS NULL OR state = $2) AND ($3::TEXT IS NULL OR kind = $3)
           AND ($4::BIGINT IS NULL OR requester_id = $4)
           AND ($5::TIMESTAMPTZ IS NULL OR created_at >= $5) AND ($6::TIMESTAMPTZ IS NULL OR created_at < $6)
           AND ($7::BIGINT IS NULL OR id < $7)
         ORDER BY id DESC LIMIT $8",
        tenants.as_deref(),
        state,
        kind,
        requester,
        f.created_from,
        f.created_to,
        before,
        limit
    )
    .fetch_all(pool)
    .await
    .map_err(db)?
    .into_iter()
    .map(ChangeRow::into_change)
    .collect()
}

/// The tenant's changes whose planned slot overlaps `[from, to)`.
pub(crate) async fn created_page(
    pool: &PgPool,
    tenant: TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    after: ChangeNumber,
    limit: i64,
) -> Result<Vec<Change>> {
    select_change!(
        "WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3 AND id > $4
         ORDER BY id LIMIT $5",
        tenant.0,
        from,
        to,
        after.0,
        limit
    )
    .fetch_all(pool)
    .await
    .map_err(db)?
    .into_iter()
    .map(ChangeRow::into_change)
    .collect()
}

pub(crate) async fn planned_between(
    pool: &PgPool,
    tenant: TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Change>> {
    select_change!(
        "WHERE tenant_id = $1 AND planned_start IS NOT NULL AND planned_start < $2
           AND COALESCE(planned_end, planned_start) >= $3
         ORDER BY planned_start, id",
        tenant.0,
        to,
        from
    )
    .fetch_all(pool)
    .await
    .map_err(db)?
    .into_iter()
    .map(ChangeRow::into_change)
    .collect()
}

/// The proposal a change names, kept in its own column (none when blank).
fn proposal_of(content: &ChangeContent) -> Option<&str> {
    content
        .proposal
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
}

pub(crate) async fn under_proposal(
    pool: &PgPool,
    tenant: TenantId,
    proposal: &str,
) -> Result<Vec<Change>> {
    select_change!(
        "WHERE tenant_id = $1 AND proposal = $2 ORDER BY id",
        tenant.0,
        proposal
    )
    .fetch_all(pool)
    .await
    .map_err(db)?
    .into_iter()
    .map(ChangeRow::into_change)
    .collect()
}

pub(crate) async fn proposal_counts(
    pool: &PgPool,
    tenant: TenantId,
) -> Result<BTreeMap<String, i64>> {
    Ok(sqlx::query!(
        r#"SELECT proposal AS "proposal!", COUNT(*) AS "n!" FROM changes
           WHERE tenant_id = $1 AND proposal IS NOT NULL GROUP BY proposal"#,
        tenant.0
    )
    .fetch_all(pool)
    .await
    .map_err(db)?
    .into_iter()
    .map(|r| (r.proposal, r.n))
    .collect())
}

pub(crate) async fn starting_between(
    pool: &PgPool,
    tenants: Option<&BTreeSet<TenantId>>,
    states: &[ChangeState],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Change>> {
    let states: Vec<String> = states.iter().map(|s| s.as_str().to_string()).collect();
    let limit = limit.clamp(1, 500);
    // One tenant walks the (tenant_id, planned_start) index; `= ANY`
    // cannot, so several or all walk the (planned_start) one.
    if let Some(only) = tenants.filter(|ts| ts.len() == 1).and_then(|ts| ts.first()) {
        return select_change!(
            "WHERE tenant_id = $1 AND planned_start IS NOT NULL AND planned_start >= $2 AND planned_start < $3
               AND state = ANY($4)
             ORDER BY planned_start, id LIMIT $5",
            only.0,
            from,
            to,
            &states,
            limit
        )
        .fetch_all(pool)
        .await
        .map_err(db)?
        .into_iter()
        .map(ChangeRow::into_change)
        .collect();
    }
    let tenants: Option<Vec<i64>> = tenants.map(|ts| ts.iter().map(|t| t.0).collect());
    select_change!(
        "WHERE planned_start IS NOT NULL AND planned_start >= $1 AND planned_start < $2
           AND ($3::BIGINT[] IS NULL OR tenant_id = ANY($3))
           AND state = ANY($4)
         ORDER BY planned_start, id LIMIT $5",
        from,
        to,
        tenants.as_deref(),
        &states,
        limit
    )
    .fetch_all(pool)
    .await
    .map_err(db)?
    .into_iter()
    .map(ChangeRow::into_change)
    .collect()
}

pub(crate) async fn implemented_between(
    pool: &PgPool,
    user: UserId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Change>> {
    select_change!(
        "WHERE implementer_id = $1 AND planned_start IS NOT NULL AND planned_start < $2
           AND COALESCE(planned_end, planned_start) >= $3
         ORDER BY planned_start, id",
        user.0,
        to,
        from
    )
    .fetch_all(pool)
    .await
    .map_err(db)?
    .into_iter()
    .map(ChangeRow::into_change)
    .collect()
}

pub(crate) async fn save(
    tx: &mut Transaction<'_, Postgres>,
    c: &Change,
    expected_version: i64,
    w: ChangeWrite,
    at: DateTime<Utc>,
) -> Result<Change> {
    let now = stamp(at);
    let (kind, state) = (c.kind.as_str(), c.state.as_str());
    let implementer = c.implementer.map(|u| u.0);
    let risk_level = c.risk_level.map(|l| l.as_str());
    let plan = to_json("approval plan", &c.plan)?;
    let content = to_json("change content", &c.content)?;
    let escalated_to = c.escalated_to.map(|u| u.0);
    let proposal = proposal_of(&c.content);
    let done = sqlx::query!(
        "UPDATE changes SET kind = $1, state = $2, title = $3, implementer_id = $4, risk_level = $5, risk_score = $6,
                revision = $7, fingerprint = $8, policy_version = $9, plan = $10, content = $11, planned_start = $12,
                planned_end = $13, submitted_at = $14, decided_at = $15, approval_expires_at = $16,
                retrospective_due_at = $17, retrospective_overdue = $18, remind_at = $19, escalate_at = $20,
                escalated_to = $21, updated_at = $22, proposal = $26, version = version + 1
         WHERE id = $23 AND tenant_id = $24 AND version = $25",
        kind,
        state,
        c.content.title,
        implementer,
        risk_level,
        c.risk_score,
        c.revision,
        c.fingerprint,
        c.policy_version,
        plan,
        content,
        c.content.planned_start,
        c.content.planned_end,
        c.submitted_at,
        c.decided_at,
        c.approval_expires_at,
        c.retrospective_due_at,
        c.retrospective_overdue,
        c.remind_at,
        c.escalate_at,
        escalated_to,
        now,
        c.number.0,
        c.tenant.0,
        expected_version,
        proposal
    )
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict {
            constraint: "changes.version".into(),
        });
    }
    if let Some(by) = w.record_revision {
        let fingerprint = c
            .fingerprint
            .clone()
            .unwrap_or_else(|| c.content.fingerprint());
        sqlx::query!(
            "INSERT INTO change_revisions (change_id, revision, fingerprint, content, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            c.number.0,
            c.revision,
            fingerprint,
            content,
            by.0,
            now
        )
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    }
    if let Some(a) = &w.approval {
        let (decision, channel) = (a.decision.as_str(), a.channel.as_str());
        let on_behalf = a.on_behalf_of.map(|u| u.0);
        let fingerprint = c.fingerprint.clone().unwrap_or_default();
        let policy_version = c.policy_version.unwrap_or(0);
        sqlx::query!(
            "INSERT INTO approvals (tenant_id, change_id, revision, approver_id, on_behalf_of, decision, comment, channel,
                                    fingerprint, policy_version, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            c.tenant.0,
            c.number.0,
            c.revision,
            a.approver.0,
            on_behalf,
            decision,
            a.comment,
            channel,
            fingerprint,
            policy_version,
            a.at
        )
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    }
    if let Some((author, body, at)) = &w.comment {
        sqlx::query!(
            "INSERT INTO comments (tenant_id, change_id, author_id, body, at) VALUES ($1, $2, $3, $4, $5)",
            c.tenant.0,
            c.number.0,
            author.0,
            body,
            at
        )
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    }
    crate::mail::write(tx, c, &w, at).await?;
    audit::append(tx, c.tenant, &w.events).await?;
    select_change!("WHERE id = $1", c.number.0)
        .fetch_one(&mut **tx)
        .await
        .map_err(db)?
        .into_change()
}

pub(crate) async fn approvals(
    pool: &PgPool,
    tenant: TenantId,
    number: ChangeNumber,
) -> Result<Vec<Approval>> {
    let rows = sqlx::query!(
        "SELECT a.id, a.revision, a.approver_id, u.email, a.on_behalf_of, a.decision, a.comment, a.channel,
                a.fingerprint, a.policy_version, a.at
         FROM approvals a JOIN users u ON u.id = a.approver_id
         WHERE a.change_id = $1 AND a.tenant_id = $2 ORDER BY a.id",
        number.0,
        tenant.0
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.into_iter()
        .map(|r| {
            Ok(Approval {
                id: r.id,
                change: number,
                revision: r.revision,
                approver: UserId(r.approver_id),
                approver_email: Email::parse(&r.email)
                    .map_err(|e| StoreError::corrupt("approver email", e))?,
                on_behalf_of: r.on_behalf_of.map(UserId),
                decision: parse::<Decision>("decision", &r.decision)?,
                comment: r.comment,
                channel: Channel::parse(&r.channel)
                    .ok_or_else(|| StoreError::corrupt("channel", &r.channel))?,
                fingerprint: r.fingerprint,
                policy_version: r.policy_version,
                at: r.at,
            })
        })
        .collect()
}

/// The approvals of the tenant's changes created in `[from, to)`, in order.
pub(crate) async fn approvals_of_changes(
    pool: &PgPool,
    tenant: TenantId,
    first: ChangeNumber,
    last: ChangeNumber,
) -> Result<Vec<Approval>> {
    let rows = sqlx::query!(
        "SELECT a.id, a.change_id, a.revision, a.approver_id, u.email, a.on_behalf_of, a.decision, a.comment, a.channel,
                a.fingerprint, a.policy_version, a.at
         FROM approvals a JOIN users u ON u.id = a.approver_id
         WHERE a.tenant_id = $1 AND a.change_id >= $2 AND a.change_id <= $3
         ORDER BY a.change_id, a.id",
        tenant.0,
        first.0,
        last.0
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.into_iter()
        .map(|r| {
            Ok(Approval {
                id: r.id,
                change: ChangeNumber(r.change_id),
                revision: r.revision,
                approver: UserId(r.approver_id),
                approver_email: Email::parse(&r.email)
                    .map_err(|e| StoreError::corrupt("approver email", e))?,
                on_behalf_of: r.on_behalf_of.map(UserId),
                decision: parse::<Decision>("decision", &r.decision)?,
                comment: r.comment,
                channel: Channel::parse(&r.channel)
                    .ok_or_else(|| StoreError::corrupt("channel", &r.channel))?,
                fingerprint: r.fingerprint,
                policy_version: r.policy_version,
                at: r.at,
            })
        })
        .collect()
}

pub(crate) async fn revisions(
    pool: &PgPool,
    tenant: TenantId,
    number: ChangeNumber,
) -> Result<Vec<Revision>> {
    let rows = sqlx::query!(
        "SELECT r.revision, r.fingerprint, r.content, r.created_by, r.created_at
         FROM change_revisions r JOIN changes c ON c.id = r.change_id
         WHERE r.change_id = $1 AND c.tenant_id = $2 ORDER BY r.revision",
        number.0,
        tenant.0
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.into_iter()
        .map(|r| {
            Ok(Revision {
                change: number,
                revision: r.revision,
                fingerprint: r.fingerprint,
                content: json("revision content", &r.content)?,
                created_by: UserId(r.created_by),
                created_at: r.created_at,
            })
        })
        .collect()
}

pub(crate) async fn comments(
    pool: &PgPool,
    tenant: TenantId,
    number: ChangeNumber,
) -> Result<Vec<Comment>> {
    let rows = sqlx::query!(
        "SELECT c.id, c.author_id, u.email, c.body, c.at
         FROM comments c JOIN users u ON u.id = c.author_id
         WHERE c.change_id = $1 AND c.tenant_id = $2 ORDER BY c.id",
        number.0,
        tenant.0
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.into_iter()
        .map(|r| {
            Ok(Comment {
                id: r.id,
                change: number,
                author: UserId(r.author_id),
                author_email: Email::parse(&r.email)
                    .map_err(|e| StoreError::corrupt("author email", e))?,
                body: r.body,
                at: r.at,
            })
        })
        .collect()
}

pub(crate) async fn due(pool: &PgPool, now: DateTime<Utc>) -> Result<Vec<Change>> {
    select_change!(
        // One branch per index, as on SQLite.
        "WHERE id IN (
            SELECT id FROM changes WHERE state IN ('approved', 'scheduled') AND approval_expires_at IS NOT NULL
                AND approval_expires_at <= $1
            UNION ALL SELECT id FROM changes WHERE NOT retrospective_overdue AND decided_at IS NULL
                AND retrospective_due_at IS NOT NULL AND retrospective_due_at <= $1 AND state NOT IN ('closed', 'cancelled')
            UNION ALL SELECT id FROM changes WHERE remind_at IS NOT NULL AND remind_at <= $1
            UNION ALL SELECT id FROM changes WHERE escalate_at IS NOT NULL AND escalate_at <= $1)
         ORDER BY id",
        now
    )
    .fetch_all(pool)
    .await
    .map_err(db)?
    .into_iter()
    .map(ChangeRow::into_change)
    .collect()
}
