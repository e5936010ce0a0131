//! Change proposals (seed 001): a major change raised first as a
//! proposal (business case, description, risks, alternatives, budget,
//! schedule, affected services), authorized by every board the policy's
//! `proposals.boards` names, frozen when it is raised (its requester never
//! among the deciders). Decisions are events on the tenant's audit chain
//! (`proposal.decided`, then `proposal.authorized` or `proposal.rejected`),
//! the first of each person counting. Authorizing a proposal is not
//! approving an implementation: the changes raised under it (their
//! content's `proposal`) still go through their own approval.

use changegate_core::UserId;
use changegate_core::approval::Vote;
use changegate_core::audit::Event;
use changegate_core::board::Decision;
use changegate_core::proposal::{self, Proposal, Standing};
use changegate_store::{ChangeContent, NewEvent, Store, StoreError, StoredProposal};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::assess::{Authors, freeze};
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::tenant::InTenant;
use crate::workflow;

/// `PRP-<n>` as a number, written as [`label`] writes it (so `PRP-01` or
/// `PRP-+1` name nothing: a change's proposal is kept as written and read
/// back by that text); anything else is not found.
pub fn number(s: &str) -> ApiResult<i64> {
    s.strip_prefix("PRP-")
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n > 0 && label(*n) == s)
        .ok_or_else(|| ApiError::not_found("proposal"))
}

pub fn label(n: i64) -> String {
    format!("PRP-{n}")
}

/// A decision on a proposal, as the chain holds it.
#[derive(Debug, Clone)]
pub struct Decided {
    pub by: UserId,
    /// The address the chain names them by.
    pub actor: String,
    pub decision: Decision,
    pub comment: String,
    pub channel: String,
    pub at: DateTime<Utc>,
}

/// A proposal with what was decided on it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub number: i64,
    pub proposal: Proposal,
    pub created_at: DateTime<Utc>,
    pub decisions: Vec<Decided>,
    pub withdrawn_at: Option<DateTime<Utc>>,
    pub standing: Standing,
}

impl Loaded {
    pub fn label(&self) -> String {
        label(self.number)
    }
}

pub async fn load(
    store: &dyn Store,
    tenant: changegate_core::TenantId,
    n: &str,
) -> ApiResult<Loaded> {
    let number = number(n)?;
    let stored = match store.proposal(tenant, number).await {
        Ok(s) => s,
        Err(StoreError::NotFound { .. }) => return Err(ApiError::not_found("proposal")),
        Err(e) => return Err(e.into()),
    };
    let events = store.audit_events_about(tenant, &label(number)).await?;
    loaded(stored, &events)
}

/// Every proposal of the tenant with what was decided on it, newest
/// first: two reads, however many proposals there are.
pub async fn load_all(
    store: &dyn Store,
    tenant: changegate_core::TenantId,
) -> ApiResult<Vec<Loaded>> {
    let stored = store.proposals(tenant).await?;
    if stored.is_empty() {
        return Ok(Vec::new());
    }
    let labels: Vec<String> = stored.iter().map(|s| label(s.number)).collect();
    let events = store.audit_events_about_each(tenant, &labels).await?;
    stored
        .into_iter()
        .zip(labels)
        .map(|(s, me)| {
            let mine: Vec<Event> = events
                .iter()
                .filter(|e| e.body.subject == me)
                .cloned()
                .collect();
            loaded(s, &mine)
        })
        .collect()
}

/// The decisions as votes, each in its decider's own seat.
fn votes_of(decisions: &[Decided]) -> Vec<Vote> {
    decisions
        .iter()
        .map(|d| Vote {
            seat: d.by,
            by: d.by,
            decision: d.decision,
        })
        .collect()
}

/// A stored proposal and the events about it, read as where it stands.
fn loaded(stored: StoredProposal, events: &[Event]) -> ApiResult<Loaded> {
    let number = stored.number;
    let proposal: Proposal = serde_json::from_str(&stored.spec).map_err(|e| {
        tracing::error!(error = %e, "stored proposal does not parse");
        ApiError::internal()
    })?;
    let mut decisions: Vec<Decided> = Vec::new();
    let mut withdrawn_at = None;
    for e in events {
        let detail: serde_json::Value = serde_json::from_str(&e.body.detail).unwrap_or_default();
        match e.body.action.as_str() {
            "proposal.decided" => {
                let (Some(by), Some(decision)) = (
                    detail["by"].as_i64().map(UserId),
                    match detail["decision"].as_str() {
                        Some("approve") => Some(Decision::Approve),
                        Some("reject") => Some(Decision::Reject),
                        _ => None,
                    },
                ) else {
                    continue;
                };
                // A person's first decision is theirs; a second (a race)
                // does not count, nor one recorded after the proposal was
                // withdrawn or already decided (each decision is checked
                // against what was read before its write, so two may race).
                if withdrawn_at.is_some()
                    || decisions.iter().any(|d| d.by == by)
                    || !proposal::standing(&proposal, &votes_of(&decisions), false).open()
                {
                    continue;
                }
                decisions.push(Decided {
                    by,
                    actor: e.body.actor.clone(),
                    decision,
                    comment: detail["comment"].as_str().unwrap_or_default().to_string(),
                    channel: detail["channel"].as_str().unwrap_or_default().to_string(),
                    at: e.body.at,
                });
            }
            "proposal.withdrawn" => {
                withdrawn_at.get_or_insert(e.body.at);
            }
            _ => {}
        }
    }
    let standing = proposal::standing(&proposal, &votes_of(&decisions), withdrawn_at.is_some());
    Ok(Loaded {
        number,
        proposal,
        created_at: stored.created_at,
        decisions,
        withdrawn_at,
        standing,
    })
}

/// What a requester writes.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub title: String,
    pub business_case: String,
    pub description: String,
    pub risks: String,
    pub alternatives: String,
    pub budget: String,
    pub schedule_start: Option<DateTime<Utc>>,
    pub schedule_end: Option<DateTime<Utc>>,
    pub services: Vec<String>,
}

/// Raise a proposal: the boards the policy names frozen, then written
/// with its `proposal.raised` event. Its number.
pub async fn raise(state: &AppState, t: &InTenant, d: Draft) -> ApiResult<i64> {
    let store = state.store.as_ref();
    let (_, policy) = workflow::policy(store, t.tenant.id).await?;
    let Some(pp) = &policy.proposals else {
        return Err(ApiError::state(format!(
            "{} does not use change proposals: its policy names no board to authorize them (proposals.boards)",
            t.tenant.name
        )));
    };
    let items = workflow::configuration_items(store, t.tenant.id).await?;
    if let Some(unknown) = d
        .services
        .iter()
        .find(|s| !items.iter().any(|(name, _)| name == *s))
    {
        return Err(ApiError::invalid(
            "services",
            format!("{unknown} is not a configuration item of {}", t.tenant.slug),
        ));
    }
    let boards = workflow::boards(store, t.tenant.id).await?;
    let people = workflow::People::load(store, t.tenant.id).await?;
    let plan = freeze(
        Authors {
            requester: t.caller.user,
            editor: None,
            implementer: None,
        },
        &policy,
        &pp.boards,
        &boards,
        &people,
    )?;
    let p = Proposal {
        title: d.title.trim().to_string(),
        business_case: d.business_case,
        description: d.description,
        risks: d.risks,
        alternatives: d.alternatives,
        budget: d.budget,
        schedule_start: d.schedule_start,
        schedule_end: d.schedule_end,
        services: d.services,
        requester: t.caller.user,
        plan,
    };
    p.validate()
        .map_err(|e| ApiError::invalid(e.field.clone(), e.message))?;
    let spec = serde_json::to_string(&p).map_err(|_| ApiError::internal())?;
    let actor = t.actor();
    let now = state.now();
    let boards_named = pp.boards.clone();
    let title = p.title.clone();
    let stored = store
        .create_proposal(
            t.tenant.id,
            &spec,
            &|n| {
                vec![NewEvent {
                    actor: actor.clone(),
                    action: "proposal.raised".into(),
                    subject: label(n),
                    detail: json!({ "title": title, "boards": boards_named }),
                    at: now,
                }]
            },
            now,
        )
        .await?;
    Ok(stored.number)
}

/// Why `who` may not decide on `l` now, if not.
pub fn refusal(l: &Loaded, who: UserId) -> Option<ApiError> {
    let n = l.label();
    if !l.standing.open() {
        return Some(ApiError::state(format!(
            "{n} is {}; it takes no more decisions",
            l.standing.as_str().replace('-', " ")
        )));
    }
    if !proposal::may_decide(&l.proposal, who) {
        let boards: Vec<&str> = l
            .proposal
            .plan
            .boards
            .iter()
            .map(|b| b.name.as_str())
            .collect();
        return Some(ApiError::forbidden(format!(
            "only the members of {} frozen when {n} was raised decide on it",
            boards.join(" and ")
        )));
    }
    if let Some(d) = l.decisions.iter().find(|d| d.by == who) {
        return Some(ApiError::conflict(format!(
            "you decided on {n} already ({} on {})",
            d.decision.as_str(),
            d.at.format("%Y-%m-%d %H:%M UTC")
        )));
    }
    None
}

/// `t.caller` decides on proposal `n` through `channel`: the decision,
/// and the outcome it settles, on the chain in one write.
pub async fn decide(
    state: &AppState,
    t: &InTenant,
    n: &str,
    decision: Decision,
    comment: &str,
    channel: &str,
) -> ApiResult<Loaded> {
    let store = state.store.as_ref();
    let l = load(store, t.tenant.id, n).await?;
    if let Some(e) = refusal(&l, t.caller.user) {
        return Err(e);
    }
    let now = state.now();
    let actor = t.actor();
    let subject = l.label();
    let mut events = vec![NewEvent {
        actor: actor.clone(),
        action: "proposal.decided".into(),
        subject: subject.clone(),
        detail: json!({ "decision": decision.as_str(), "comment": comment, "channel": channel,
                        "by": t.caller.user.0 }),
        at: now,
    }];
    let mut votes: Vec<Vote> = l
        .decisions
        .iter()
        .map(|d| Vote {
            seat: d.by,
            by: d.by,
            decision: d.decision,
        })
        .collect();
    votes.push(Vote {
        seat: t.caller.user,
        by: t.caller.user,
        decision,
    });
    match proposal::standing(&l.proposal, &votes, false) {
        Standing::Authorized => events.push(NewEvent {
            actor: actor.clone(),
            action: "proposal.authorized".into(),
            subject: subject.clone(),
            detail: json!({}),
            at: now,
        }),
        Standing::Rejected { board } => events.push(NewEvent {
            actor,
            action: "proposal.rejected".into(),
            subject,
            detail: json!({ "board": board }),
            at: now,
        }),
        _ => {}
    }
    store.record_events(t.tenant.id, events).await?;
    load(store, t.tenant.id, n).await
}

/// The requester (or a change manager) withdraws a proposal still
/// awaiting authorization.
pub async fn withdraw(state: &AppState, t: &InTenant, n: &str) -> ApiResult<Loaded> {
    let store = state.store.as_ref();
    let l = load(store, t.tenant.id, n).await?;
    if l.proposal.requester != t.caller.user
        && !t
            .caller
            .has_role(t.tenant.id, changegate_core::Role::ChangeManager)
    {
        return Err(ApiError::forbidden(format!(
            "only the requester of {} or a change manager withdraws it",
            l.label()
        )));
    }
    if !l.standing.open() {
        return Err(ApiError::state(format!(
            "{} is {}; only a proposal awaiting authorization is withdrawn",
            l.label(),
            l.standing.as_str().replace('-', " ")
        )));
    }
    store
        .record_events(
            t.tenant.id,
            vec![NewEvent {
                actor: t.actor(),
                action: "proposal.withdrawn".into(),
                subject: l.label(),
                detail: json!({}),
                at: state.now(),
            }],
        )
        .await?;
    load(store, t.tenant.id, n).await
}

/// A change's content may name a proposal only when it is authorized: the
/// one check for raising and editing a change.
pub async fn check_link(
    store: &dyn Store,
    tenant: changegate_core::TenantId,
    content: &ChangeContent,
) -> ApiResult<()> {
    let Some(p) = content.proposal.as_deref().filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let l = load(store, tenant, p).await.map_err(|e| {
        if e.status == axum::http::StatusCode::NOT_FOUND {
            ApiError::invalid("proposal", format!("there is no proposal {p} here"))
        } else {
            e
        }
    })?;
    if l.standing != Standing::Authorized {
        return Err(ApiError::invalid(
            "proposal",
            format!(
                "{p} is {}; changes are raised under an authorized proposal",
                l.standing.as_str().replace('-', " ")
            ),
        ));
    }
    Ok(())
}

/// The changes raised under proposal `l`, oldest first.
pub async fn changes_under(
    store: &dyn Store,
    tenant: changegate_core::TenantId,
    l: &Loaded,
) -> ApiResult<Vec<changegate_store::Change>> {
    Ok(store.changes_under_proposal(tenant, &l.label()).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use changegate_core::approval::ApprovalPlan;
    use changegate_core::audit::EventBody;
    use changegate_core::board::{FrozenBoard, Rule};

    fn stored() -> StoredProposal {
        let p = Proposal {
            title: "Move the data centre".into(),
            business_case: "the lease ends".into(),
            description: "move every workload".into(),
            risks: String::new(),
            alternatives: String::new(),
            budget: String::new(),
            schedule_start: None,
            schedule_end: None,
            services: vec![],
            requester: UserId(1),
            plan: ApprovalPlan {
                boards: vec![FrozenBoard {
                    name: "cab".into(),
                    members: vec![UserId(2), UserId(3)],
                    rule: Rule::All,
                    mandatory: vec![],
                    chair: None,
                }],
            },
        };
        StoredProposal {
            tenant: changegate_core::TenantId(1),
            number: 1,
            spec: serde_json::to_string(&p).expect("serialises"),
            created_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    fn event(seq: i64, action: &str, detail: serde_json::Value) -> Event {
        Event {
            body: EventBody {
                tenant: changegate_core::TenantId(1),
                seq,
                at: DateTime::<Utc>::UNIX_EPOCH,
                actor: "someone@msp.example".into(),
                action: action.into(),
                subject: "PRP-1".into(),
                detail: detail.to_string(),
            },
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn decided(seq: i64, by: i64, decision: &str) -> Event {
        event(
            seq,
            "proposal.decided",
            json!({ "by": by, "decision": decision }),
        )
    }

    #[test]
    fn a_decision_after_a_withdrawal_or_after_the_outcome_does_not_count() {
        // Withdrawn, then both members authorize (their writes raced it).
        let l = loaded(
            stored(),
            &[
                decided(1, 2, "approve"),
                event(2, "proposal.withdrawn", json!({})),
                decided(3, 3, "approve"),
            ],
        )
        .expect("loads");
        assert_eq!(l.standing, Standing::Withdrawn);
        assert_eq!(l.decisions.len(), 1);
        // Rejected by one member; the other's approval after it is not counted.
        let l = loaded(
            stored(),
            &[decided(1, 2, "reject"), decided(2, 3, "approve")],
        )
        .expect("loads");
        assert_eq!(l.standing.as_str(), "rejected");
        assert_eq!(l.decisions.len(), 1);
        // Both approve: authorized.
        let l = loaded(
            stored(),
            &[decided(1, 2, "approve"), decided(2, 3, "approve")],
        )
        .expect("loads");
        assert_eq!(l.standing, Standing::Authorized);
    }

    #[test]
    fn a_proposal_is_named_only_as_its_label_writes_it() {
        assert_eq!(number("PRP-12").ok(), Some(12));
        for other in [
            "PRP-012", "PRP-+12", "PRP-0", "PRP--1", "prp-12", "CHG-12", "PRP-12 ",
        ] {
            assert!(number(other).is_err(), "{other}");
        }
    }
}
