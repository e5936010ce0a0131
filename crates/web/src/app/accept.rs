//! Client acceptance, seed 003's user entity control: where the policy's
//! `acceptance` covers a change (by type, risk or item), a client user it
//! names accepts the tested change before the change may be scheduled in a
//! release or started by anyone or anything (a person, a release, a
//! pipeline, a cluster's agent). An acceptance is a decision on the record:
//! who (from their session, token or e-mail link, never a field), through
//! which channel, when, and the fingerprint of the revision accepted, as a
//! `change.accepted` event on the tenant's audit chain written with the
//! change under its version. A new revision needs a new acceptance.

use changegate_core::UserKind;
use changegate_core::audit::Event;
use changegate_core::change::ChangeState;
use changegate_core::policy::{Acceptance, PolicySpec};
use changegate_core::{Email, UserId};
use changegate_store::{Change, ChangeWrite, NewLink, NewMessage, Store, Tenant};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::change::{event, load, save};
use super::decide::LinkUse;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::workflow;

/// The policy's acceptance, when it covers `c`.
pub fn covering<'p>(policy: &'p PolicySpec, c: &Change) -> Option<&'p Acceptance> {
    policy
        .acceptance
        .as_ref()
        .filter(|a| a.covers(c.kind, c.risk_level, &c.content.configuration_items))
}

/// The client users `a` names in `tenant`: (id, address, name).
pub async fn acceptors(
    store: &dyn Store,
    tenant: changegate_core::TenantId,
    a: &Acceptance,
) -> ApiResult<Vec<(UserId, Email, String)>> {
    let mut out = Vec::new();
    for (user, roles) in store.users_in_tenant(tenant).await? {
        if user.kind != UserKind::Client {
            continue;
        }
        let named = a.by.iter().any(|who| match who.strip_prefix("role:") {
            Some(role) => roles.iter().any(|r| r.as_str() == role),
            None => who.eq_ignore_ascii_case(user.email.as_str()),
        });
        if named {
            let name = user.name_or_email().to_string();
            out.push((user.id, user.email, name));
        }
    }
    Ok(out)
}

/// An acceptance on the record.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The acceptor's address, as the chain names them.
    pub by: String,
    pub at: DateTime<Utc>,
    pub channel: String,
    pub comment: String,
}

/// The acceptance of `c`'s current content (its fingerprint), if given.
pub async fn accepted(store: &dyn Store, c: &Change) -> ApiResult<Option<Accepted>> {
    if c.fingerprint.is_none() {
        return Ok(None);
    }
    let events = store
        .audit_events_about(c.tenant, &c.number.to_string())
        .await?;
    Ok(accepted_in(&events, c))
}

/// The acceptance of `c`'s current revision among `events` (those about
/// it; others are passed over), if given: its revision and fingerprint,
/// and the test evidence it was shown, are the change's now (content
/// edited back to what was accepted is a new revision, accepted anew;
/// test evidence replaced after acceptance needs it again).
pub fn accepted_in(events: &[Event], c: &Change) -> Option<Accepted> {
    let fingerprint = c.fingerprint.as_deref()?;
    let me = c.number.to_string();
    events.iter().rev().find_map(|e| {
        if e.body.action != "change.accepted" || e.body.subject != me {
            return None;
        }
        let detail: serde_json::Value = serde_json::from_str(&e.body.detail).ok()?;
        let same = detail["fingerprint"].as_str() == Some(fingerprint)
            && detail["revision"].as_i64() == Some(c.revision)
            && detail["test_evidence"]
                .as_str()
                .is_none_or(|shown| shown == c.content.test_evidence);
        same.then(|| Accepted {
            by: e.body.actor.clone(),
            at: e.body.at,
            channel: detail["channel"].as_str().unwrap_or_default().to_string(),
            comment: detail["comment"].as_str().unwrap_or_default().to_string(),
        })
    })
}

/// Why `c` may not be scheduled or started yet for want of the client's
/// acceptance, if so: the sentence every entry point says.
pub async fn missing(
    store: &dyn Store,
    c: &Change,
    policy: &PolicySpec,
) -> ApiResult<Option<String>> {
    let Some(a) = covering(policy, c) else {
        return Ok(None);
    };
    if accepted(store, c).await?.is_some() {
        return Ok(None);
    }
    let names = acceptor_names(store, c.tenant, a).await?;
    Ok(Some(waiting_sentence(c, &names)))
}

/// The names of the client users `a` names, as the sentence gives them.
pub async fn acceptor_names(
    store: &dyn Store,
    tenant: changegate_core::TenantId,
    a: &Acceptance,
) -> ApiResult<Vec<String>> {
    Ok(acceptors(store, tenant, a)
        .await?
        .into_iter()
        .map(|(_, _, name)| name)
        .collect())
}

/// "CHG-7 awaits the client's acceptance of the tested change by carol or
/// dan", and what to do first when it has no test evidence yet.
pub fn waiting_sentence(c: &Change, names: &[String]) -> String {
    let who = if names.is_empty() {
        "a client user the policy names (it names nobody who can yet)".to_string()
    } else {
        names.join(" or ")
    };
    let first = if c.content.test_evidence.trim().is_empty() {
        "; record its test evidence first"
    } else {
        ""
    };
    format!(
        "{} awaits the client's acceptance of the tested change by {who}{first}",
        c.number
    )
}

/// How an acceptance reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Portal,
    Email,
    Api,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Portal => "portal",
            Channel::Email => "email",
            Channel::Api => "api",
        }
    }
}

/// Why `who` may not accept `c` now, if not: the policy covers it, it is
/// approved and not yet scheduled or started, it was tested, `who` is a
/// client user the policy names, and this revision is not accepted yet.
pub async fn refusal(
    store: &dyn Store,
    c: &Change,
    policy: &PolicySpec,
    who: UserId,
) -> ApiResult<Option<ApiError>> {
    let n = c.number;
    let Some(a) = covering(policy, c) else {
        return Ok(Some(ApiError::state(format!(
            "{n} needs no client acceptance: the policy does not ask for it"
        ))));
    };
    if c.state != ChangeState::Approved {
        return Ok(Some(ApiError::state(format!(
            "{n} is {}; the client accepts an approved change before it is scheduled or started",
            c.state
        ))));
    }
    if c.content.test_evidence.trim().is_empty() {
        return Ok(Some(ApiError::state(format!(
            "{n} has no test evidence yet: the client accepts the tested change, once its test evidence is recorded"
        ))));
    }
    if !acceptors(store, c.tenant, a)
        .await?
        .iter()
        .any(|(id, _, _)| *id == who)
    {
        return Ok(Some(ApiError::forbidden(format!(
            "only a client user the policy names accepts {n}: {}",
            a.by.join(", ")
        ))));
    }
    if let Some(done) = accepted(store, c).await? {
        return Ok(Some(ApiError::conflict(format!(
            "{n} was accepted by {} on {}",
            done.by,
            done.at.format("%Y-%m-%d %H:%M UTC")
        ))));
    }
    Ok(None)
}

/// Who accepts, as the channel authenticated them.
pub struct By<'a> {
    pub who: UserId,
    /// How the audit chain names them (their address).
    pub actor: &'a str,
    pub channel: Channel,
    /// The e-mail link used, when through one.
    pub link: Option<LinkUse>,
}

/// `by` accepts change `n`: the event on the chain, the e-mail link used
/// (when through one), in one write.
pub async fn accept(
    state: &AppState,
    tenant: &Tenant,
    n: &str,
    by: By<'_>,
    comment: &str,
) -> ApiResult<Change> {
    let By {
        who,
        actor,
        channel,
        link,
    } = by;
    let store = state.store.as_ref();
    let c = load(store, tenant.id, n).await?;
    let (_, policy) = workflow::policy(store, tenant.id).await?;
    if let Some(e) = refusal(store, &c, &policy, who).await? {
        return Err(e);
    }
    // A link accepts only the revision it was sent for, also when the
    // change moved on between its page and this write.
    if let Some(sent) = link.as_ref().and_then(|l| l.detail["revision"].as_i64())
        && sent != c.revision
    {
        return Err(ApiError::state(format!(
            "{} is at revision {} now, not the revision {sent} this link was sent for",
            c.number, c.revision
        )));
    }
    let now = state.now();
    let mut detail = json!({
        "revision": c.revision,
        "fingerprint": c.fingerprint,
        "channel": channel.as_str(),
        "comment": comment,
        "test_evidence": c.content.test_evidence,
    });
    if let (Some(l), Some(d)) = (&link, detail.as_object_mut()) {
        d.insert("link".into(), l.detail.clone());
    }
    let events = vec![event(actor, &c, "change.accepted", detail, now)];
    save(
        state,
        &c,
        c.version,
        ChangeWrite {
            events,
            use_link: link.map(|l| l.token_hash),
            ..Default::default()
        },
        now,
    )
    .await
}

/// Messages and links asking every acceptor of `c` to accept it, when it
/// is due: the policy covers it, it is approved and it carries test
/// evidence. Sent when a change becomes approved, and when an approved
/// change's test evidence is first recorded.
pub async fn requests(
    store: &dyn Store,
    public_url: &str,
    tenant: &Tenant,
    c: &Change,
    policy: &PolicySpec,
    now: DateTime<Utc>,
) -> ApiResult<(Vec<NewMessage>, Vec<NewLink>)> {
    let Some(a) = covering(policy, c) else {
        return Ok((Vec::new(), Vec::new()));
    };
    if c.state != ChangeState::Approved || c.content.test_evidence.trim().is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let people = acceptors(store, c.tenant, a).await?;
    Ok(crate::mail::acceptance_requests(
        public_url,
        &tenant.name,
        c,
        policy,
        &people,
        now,
    ))
}
