//! Approval requests by e-mail: for each frozen approver, a link to the
//! confirm page (a random token, stored hashed, bound to the approver and
//! the revision, single use, expiring) and, at or above the policy's risk
//! level, a one-time code the page asks for. The messages go to the outbox
//! in the transaction that re-opens approval.

use changegate_core::change::RiskLevel;
use changegate_core::policy::PolicySpec;
use changegate_core::{Email, UserId};
use changegate_store::{Change, NewLink, NewMessage, Store};
use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;

use crate::auth::{new_token, token_hash};
use crate::error::ApiError;
use crate::workflow::Emails;

/// How long an approval link stays valid.
pub const LINK_LIFETIME: TimeDelta = TimeDelta::days(7);

/// Whether links of a change at `level` need the one-time code (or a session).
pub fn needs_code(policy: &PolicySpec, level: Option<RiskLevel>) -> bool {
    match (policy.email_code_from, level) {
        (Some(from), Some(level)) => level >= from,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The hash a one-time code is kept as: bound to its link's token hash.
pub fn code_hash(link_hash: &str, code: &str) -> String {
    token_hash(&format!(
        "{link_hash}\x1f{}",
        code.trim().to_ascii_uppercase()
    ))
}

fn one_time_code() -> String {
    // No 0/O or 1/I: read from an e-mail and typed by hand.
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Messages and links asking every frozen approver of `c` (its current
/// revision) to decide.
pub async fn approval_requests(
    store: &dyn Store,
    public_url: &str,
    tenant_name: &str,
    c: &Change,
    policy: &PolicySpec,
    now: DateTime<Utc>,
) -> Result<(Vec<NewMessage>, Vec<NewLink>), ApiError> {
    let seats: Vec<UserId> = c
        .plan
        .seats()
        .into_iter()
        .filter(|u| *u != c.requester)
        .collect();
    let emails = Emails::load(store, seats.iter().copied().chain([c.requester])).await?;
    let requester = emails.of(c.requester);
    let code = needs_code(policy, c.risk_level);
    let mut messages = Vec::new();
    let mut links = Vec::new();
    for seat in seats {
        let Ok(recipient) = Email::parse(&emails.of(seat)) else {
            continue;
        };
        let (token, hash) = new_token();
        let one_time = code.then(one_time_code);
        let expires_at = now + LINK_LIFETIME;
        let content = &c.content;
        let mut body = format!(
            "{number} for {tenant_name} waits for your decision.\n\n\
             Title: {title}\nType: {kind}, risk {risk}\nRequested by: {requester}\n\
             Configuration items: {items}\nPlanned: {planned}\n\n{description}\n\n\
             Review and decide (revision {revision}):\n{public_url}/approve/{token}\n\n",
            number = c.number,
            title = content.title,
            kind = c.kind.as_str(),
            risk = c.risk_level.map_or("not assessed", |l| l.as_str()),
            items = content.configuration_items.join(", "),
            planned = match (content.planned_start, content.planned_end) {
                (Some(s), Some(e)) => format!(
                    "{} to {}",
                    s.format("%Y-%m-%d %H:%M UTC"),
                    e.format("%Y-%m-%d %H:%M UTC")
                ),
                _ => "not planned yet".into(),
            },
            description = content.description,
            revision = c.revision,
        );
        if let Some(code) = &one_time {
            body.push_str(&format!(
                "The page will ask for this one-time code: {code}\n\n"
            ));
        }
        body.push_str(&format!(
            "Opening the link decides nothing: you confirm on the page. The link is yours alone, \
             works once, and expires on {}. If {number} changes, a new link replaces it.\n",
            expires_at.format("%Y-%m-%d %H:%M UTC"),
            number = c.number
        ));
        messages.push(NewMessage {
            recipient,
            subject: format!(
                "[changegate] {} awaits your approval: {}",
                c.number, content.title
            ),
            body,
            at: now,
        });
        links.push(NewLink {
            purpose: changegate_store::LinkPurpose::Approve,
            code_hash: one_time.as_deref().map(|code| code_hash(&hash, code)),
            token_hash: hash,
            approver: seat,
            revision: c.revision,
            expires_at,
        });
    }
    Ok((messages, links))
}

/// Messages and links asking each client user in `people` (id, address,
/// name) to accept the tested change `c`: its test evidence in the
/// message, a link to the acceptance page (single use, bound to the
/// person and the revision, expiring; with the one-time code at the
/// policy's risk level, as approval links).
pub fn acceptance_requests(
    public_url: &str,
    tenant_name: &str,
    c: &Change,
    policy: &PolicySpec,
    people: &[(UserId, Email, String)],
    now: DateTime<Utc>,
) -> (Vec<NewMessage>, Vec<NewLink>) {
    let code = needs_code(policy, c.risk_level);
    let mut messages = Vec::new();
    let mut links = Vec::new();
    for (id, email, name) in people {
        let (token, hash) = new_token();
        let one_time = code.then(one_time_code);
        let expires_at = now + LINK_LIFETIME;
        let content = &c.content;
        let mut body = format!(
            "{name}, {number} for {tenant_name} is approved and tested; it waits for your acceptance \
             before it may be scheduled or started.\n\n\
             Title: {title}\nConfiguration items: {items}\n\n{description}\n\n\
             Test plan: {test_plan}\nTest evidence: {evidence}\n\n\
             Review and accept (revision {revision}):\n{public_url}/accept/{token}\n\n",
            number = c.number,
            title = content.title,
            items = content.configuration_items.join(", "),
            description = content.description,
            test_plan = content.test_plan,
            evidence = content.test_evidence,
            revision = c.revision,
        );
        if let Some(code) = &one_time {
            body.push_str(&format!(
                "The page will ask for this one-time code: {code}\n\n"
            ));
        }
        body.push_str(&format!(
            "Opening the link accepts nothing: you confirm on the page. The link is yours alone, \
             works once, and expires on {}.\n",
            expires_at.format("%Y-%m-%d %H:%M UTC"),
        ));
        messages.push(NewMessage {
            recipient: email.clone(),
            subject: format!(
                "[changegate] {} awaits your acceptance: {}",
                c.number, content.title
            ),
            body,
            at: now,
        });
        links.push(NewLink {
            purpose: changegate_store::LinkPurpose::Accept,
            code_hash: one_time.as_deref().map(|code| code_hash(&hash, code)),
            token_hash: hash,
            approver: *id,
            revision: c.revision,
            expires_at,
        });
    }
    (messages, links)
}

/// The people of a tenant a comment mentions: `@` followed by an address,
/// the part of an address before its `@`, or a one-word name, matched
/// without regard to case; each once, in the order first mentioned.
/// Pure: `people` are the tenant's users (id, address, name).
pub fn mentioned<'p>(
    text: &str,
    people: &'p [(UserId, Email, String)],
) -> Vec<&'p (UserId, Email, String)> {
    let mut out: Vec<&(UserId, Email, String)> = Vec::new();
    for (at, _) in text.match_indices('@') {
        // An address's own `@` (a word character before it) starts nothing.
        if text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '.' || c == '_' || c == '-')
        {
            continue;
        }
        let word: String = text[at + 1..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+'))
            .collect();
        let word = word.trim_end_matches(['.', '-']).to_lowercase();
        if word.is_empty() {
            continue;
        }
        let found = people.iter().find(|(_, email, name)| {
            let address = email.as_str().to_lowercase();
            address == word
                || address.split('@').next() == Some(word.as_str())
                || (!name.contains(' ') && name.to_lowercase() == word)
        });
        if let Some(p) = found
            && !out.iter().any(|o| o.0 == p.0)
        {
            out.push(p);
        }
    }
    out
}

/// Who is told of a change's outcome: its requester and every e-mail
/// address written in its communication plan.
pub async fn told_of(store: &dyn Store, c: &Change) -> Result<Vec<Email>, ApiError> {
    let mut to: Vec<Email> = c
        .content
        .communication_plan
        .split(|ch: char| ch.is_whitespace() || matches!(ch, ',' | ';' | '<' | '>' | '(' | ')'))
        .map(|w| w.trim_matches(|ch: char| matches!(ch, '.' | ':' | '"' | '\'')))
        .filter(|w| w.contains('@'))
        .filter_map(|w| Email::parse(w).ok())
        .collect();
    if let Ok(requester) = Email::parse(&Emails::load(store, [c.requester]).await?.of(c.requester))
    {
        to.push(requester);
    }
    to.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    to.dedup();
    Ok(to)
}

/// A notice of `c`'s outcome (`approved`, `rejected`, `implemented`, ...)
/// to everyone the communication plan names, and the requester.
pub async fn outcome_notices(
    store: &dyn Store,
    public_url: &str,
    tenant: &changegate_store::Tenant,
    c: &Change,
    outcome: &str,
    now: DateTime<Utc>,
) -> Result<Vec<NewMessage>, ApiError> {
    let body = format!(
        "{number} for {name} ({title}) is {outcome}.\n\n{public_url}/t/{slug}/changes/{number}\n\n\
         You receive this notice because the change's communication plan names you, or you requested it.\n",
        number = c.number,
        name = tenant.name,
        title = c.content.title,
        slug = tenant.slug,
    );
    Ok(told_of(store, c)
        .await?
        .into_iter()
        .map(|recipient| NewMessage {
            recipient,
            subject: format!("[changegate] {} {outcome}: {}", c.number, c.content.title),
            body: body.clone(),
            at: now,
        })
        .collect())
}

#[cfg(test)]
mod mention_tests {
    use super::*;

    #[test]
    fn a_comment_mentions_people_of_the_tenant_by_address_or_name() {
        let people = vec![
            (
                UserId(1),
                Email::parse("carol@client-a.example").expect("address"),
                "Carol".to_string(),
            ),
            (
                UserId(2),
                Email::parse("tom@msp.example").expect("address"),
                "Tom Baker".to_string(),
            ),
        ];
        let ids =
            |text: &str| -> Vec<i64> { mentioned(text, &people).iter().map(|p| p.0.0).collect() };
        assert_eq!(ids("@carol please check, and @tom@msp.example too"), [1, 2]);
        assert_eq!(ids("@Carol, @CAROL again."), [1]);
        assert_eq!(
            ids("mail carol@client-a.example instead"),
            Vec::<i64>::new()
        );
        assert_eq!(ids("@nobody here"), Vec::<i64>::new());
        assert_eq!(ids("@tom."), [2]);
    }
}
