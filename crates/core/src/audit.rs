//! The audit chain: every decision and transition is an event, and each
//! event's hash covers the previous event's hash and the event itself,
//! per tenant. `verify` walks the events in stored order and reports the
//! first broken link, and compares where the chain ends with the head
//! (sequence and hash) recorded with the last append, so an edit, a
//! deletion or a reordering made behind the application's back is found,
//! the last events' included. Someone who rewrites the head too is found
//! only against a head kept elsewhere: a signed [`Checkpoint`].

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::TenantId;

/// The hash a tenant's first event links to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an event says. `detail` is the JSON text exactly as stored, so
/// the hash never depends on how a database orders JSON keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBody {
    pub tenant: TenantId,
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    #[serde(flatten)]
    pub body: EventBody,
    pub prev_hash: String,
    pub hash: String,
}

/// Timestamps are hashed at microsecond precision, what both databases keep.
pub fn normalise(at: DateTime<Utc>) -> DateTime<Utc> {
    let micros = at.timestamp_micros();
    DateTime::from_timestamp_micros(micros).unwrap_or(at)
}

/// sha256(prev_hash || 0x1f || each field separated by 0x1f), hex.
pub fn link_hash(prev_hash: &str, body: &EventBody) -> String {
    let mut h = Sha256::new();
    for part in [
        prev_hash,
        &body.tenant.0.to_string(),
        &body.seq.to_string(),
        &normalise(body.at).to_rfc3339_opts(SecondsFormat::Micros, true),
        &body.actor,
        &body.action,
        &body.subject,
        &body.detail,
    ] {
        h.update(part.as_bytes());
        h.update([0x1f]);
    }
    hex::encode(h.finalize())
}

/// Append `body` after the chain head `(seq, hash)`; the body's seq must be head + 1.
pub fn seal(prev_hash: &str, body: EventBody) -> Event {
    let hash = link_hash(prev_hash, &body);
    Event {
        body,
        prev_hash: prev_hash.to_string(),
        hash,
    }
}

/// A tenant's head as the server saw it at `at`, written (signed) to a
/// checkpoint log kept apart from the database: a chain read later must
/// hold that hash at that sequence number, so rewriting history, head
/// included, is found against it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The tenant's slug.
    pub tenant: String,
    pub seq: i64,
    pub hash: String,
    pub at: DateTime<Utc>,
}

impl Checkpoint {
    /// The bytes a checkpoint's signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "changegate-checkpoint-v1\x1f{}\x1f{}\x1f{}\x1f{}",
            self.tenant,
            self.seq,
            self.hash,
            normalise(self.at).to_rfc3339_opts(SecondsFormat::Micros, true)
        )
        .into_bytes()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Break {
    /// The event's content no longer matches its hash.
    Edited { seq: i64 },
    /// An event is missing before this one (sequence gap or dangling link).
    Missing { expected_seq: i64, found_seq: i64 },
    /// The event does not link to the one before it: that one was
    /// replaced (edited and re-hashed) or the chain was spliced.
    Unlinked { seq: i64 },
    /// Events are stored out of sequence.
    Reordered { seq: i64, after: i64 },
    /// The chain ends before the recorded head: trailing events were removed.
    Truncated { last_seq: i64, head_seq: i64 },
    /// The event at the recorded head's sequence does not hold the head's
    /// hash: the chain's last events were rewritten or removed and the
    /// head's sequence moved to hide it.
    HeadMismatch { last_seq: i64, head_seq: i64 },
}

impl std::fmt::Display for Break {
    /// For people: where the chain breaks and what that means.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Break::Edited { seq } => write!(
                f,
                "event {seq} was changed after it was written (it no longer matches its hash)"
            ),
            Break::Missing {
                expected_seq,
                found_seq,
            } => write!(
                f,
                "event {expected_seq} is missing (the next one found is event {found_seq})"
            ),
            Break::Unlinked { seq } => write!(
                f,
                "event {seq} does not follow the one stored before it: that one was replaced, or the chain was spliced"
            ),
            Break::Reordered { seq, after } => write!(
                f,
                "event {seq} is stored after event {after}: events were reordered"
            ),
            Break::Truncated { last_seq, head_seq } => write!(
                f,
                "the chain ends at event {last_seq}, but {head_seq} were recorded: the last events were removed"
            ),
            Break::HeadMismatch { head_seq, .. } => write!(
                f,
                "event {head_seq} is not the one recorded as the chain's head: the last events were rewritten or removed"
            ),
        }
    }
}

/// A break as stored in a report's JSON (`first_break`), for people;
/// the JSON itself when it is not one.
pub fn describe_break(value: &serde_json::Value) -> String {
    serde_json::from_value::<Break>(value.clone())
        .map_or_else(|_| value.to_string(), |b| b.to_string())
}

/// Where a tenant's chain ends, as recorded with its last append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

impl Head {
    /// The head of a chain with no event.
    pub fn genesis() -> Self {
        Head {
            seq: 0,
            hash: GENESIS.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub events: usize,
    pub intact: bool,
    pub first_break: Option<Break>,
    /// Where the linked chain read ends: the recorded head, or past it
    /// when events were appended while it was read.
    pub head_seq: i64,
    pub head_hash: String,
}

/// Verify a tenant's events in stored (insertion) order against the head
/// recorded when the last event was appended, read before the events.
pub fn verify(events: &[Event], head: &Head) -> Report {
    let mut v = Verifier::new(head.clone());
    for e in events {
        v.push(e);
    }
    v.finish()
}

/// [`verify`] one event at a time, for a chain read in pages: it holds
/// the last link only. Its report is the same as `verify` over the same
/// events.
#[derive(Debug, Clone)]
pub struct Verifier {
    prev_hash: String,
    prev_seq: i64,
    events: usize,
    /// The first break found, final.
    found: Option<Break>,
    /// A gap in the sequence, `(seq found, after)`: a reordering if the
    /// missing event comes later, else an event missing.
    gap: Option<(i64, i64)>,
    /// The head the chain must reach, `None` when the events read are the
    /// whole chain (a bundle's file, whose end is checked apart).
    head: Option<Head>,
    /// The hash of the linked event at the head's sequence, once read.
    at_head: Option<String>,
}

impl Verifier {
    /// Against `head`, read before the events: events appended since are
    /// read past it, and the one at its sequence must hold its hash.
    pub fn new(head: Head) -> Self {
        let at_head = (head.seq == 0).then(|| GENESIS.to_string());
        Verifier {
            head: Some(head),
            at_head,
            ..Self::links_only()
        }
    }

    /// The links only: where the chain ends is checked by the caller.
    pub fn links_only() -> Self {
        Verifier {
            prev_hash: GENESIS.to_string(),
            prev_seq: 0,
            events: 0,
            found: None,
            gap: None,
            head: None,
            at_head: None,
        }
    }

    /// The next event in stored order.
    pub fn push(&mut self, e: &Event) {
        self.events += 1;
        if self.found.is_some() {
            return;
        }
        let seq = e.body.seq;
        if let Some((found, after)) = self.gap {
            // The expected event stored later: the rows were reordered.
            if seq == after + 1 {
                self.found = Some(Break::Reordered { seq: found, after });
            }
            return;
        }
        let prev_seq = self.prev_seq;
        if seq <= prev_seq {
            self.found = Some(Break::Reordered {
                seq,
                after: prev_seq,
            });
        } else if link_hash(&e.prev_hash, &e.body) != e.hash {
            self.found = Some(Break::Edited { seq });
        } else if seq != prev_seq + 1 {
            self.gap = Some((seq, prev_seq));
        } else if e.prev_hash != self.prev_hash {
            self.found = Some(Break::Unlinked { seq });
        } else {
            self.prev_hash.clone_from(&e.hash);
            self.prev_seq = seq;
            if self.head.as_ref().is_some_and(|h| h.seq == seq) {
                self.at_head = Some(e.hash.clone());
            }
        }
    }

    /// The report: the links, and that the chain holds the head.
    pub fn finish(self) -> Report {
        let last_seq = self.prev_seq;
        let first_break = self
            .found
            .or_else(|| {
                self.gap.map(|(found_seq, after)| Break::Missing {
                    expected_seq: after + 1,
                    found_seq,
                })
            })
            .or_else(|| {
                let head = self.head.as_ref()?;
                if last_seq < head.seq {
                    Some(Break::Truncated {
                        last_seq,
                        head_seq: head.seq,
                    })
                } else {
                    (self.at_head.as_deref() != Some(head.hash.as_str())).then_some(
                        Break::HeadMismatch {
                            last_seq,
                            head_seq: head.seq,
                        },
                    )
                }
            });
        Report {
            events: self.events,
            intact: first_break.is_none(),
            first_break,
            head_seq: last_seq,
            head_hash: self.prev_hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<Event> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let e = seal(
                    &prev,
                    EventBody {
                        tenant: TenantId(1),
                        seq,
                        at: DateTime::from_timestamp(1_700_000_000 + seq, 123_456_789)
                            .expect("valid"),
                        actor: "alice@msp.example".into(),
                        action: "change.approved".into(),
                        subject: format!("CHG-{seq}"),
                        detail: r#"{"b":1,"a":2}"#.into(),
                    },
                );
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    /// The head the store recorded with the last of `n` events.
    fn recorded(n: i64) -> Head {
        let c = chain(n);
        Head {
            seq: n,
            hash: c.last().map_or(GENESIS.to_string(), |e| e.hash.clone()),
        }
    }

    #[test]
    fn the_last_events_rewritten_with_the_head_sequence_are_found_by_its_hash() {
        // The last event removed, and the head's sequence moved back to hide it.
        let mut c = chain(5);
        c.pop();
        let moved = Head {
            seq: 4,
            hash: recorded(5).hash,
        };
        assert_eq!(
            verify(&c, &moved).first_break,
            Some(Break::HeadMismatch {
                last_seq: 4,
                head_seq: 4
            })
        );
        // The last event edited and re-hashed: every link holds, the head does not.
        let mut c = chain(5);
        c[4].body.detail = r#"{"approved":"by nobody"}"#.into();
        c[4].hash = link_hash(&c[4].prev_hash, &c[4].body);
        assert_eq!(
            verify(&c, &recorded(5)).first_break,
            Some(Break::HeadMismatch {
                last_seq: 5,
                head_seq: 5
            })
        );
        // Someone who rewrites the head's hash too leaves an intact chain:
        // only a checkpoint kept elsewhere finds that.
        let rewritten = Head {
            seq: 5,
            hash: c[4].hash.clone(),
        };
        assert!(verify(&c, &rewritten).intact);
    }

    #[test]
    fn events_appended_after_the_head_was_read_are_read_past_it() {
        // The head read, then two more events appended before the events
        // were read: intact, ending where the events end.
        let r = verify(&chain(7), &recorded(5));
        assert!(r.intact, "{r:?}");
        assert_eq!((r.events, r.head_seq), (7, 7));
        assert_eq!(r.head_hash, recorded(7).hash);
        // Past the head still, but the event at its sequence rewritten.
        let mut c = chain(7);
        c[4].body.detail = r#"{"approved":"by nobody"}"#.into();
        c[4].hash = link_hash(&c[4].prev_hash, &c[4].body);
        c[5].prev_hash = c[4].hash.clone();
        c[5].hash = link_hash(&c[5].prev_hash, &c[5].body);
        c[6].prev_hash = c[5].hash.clone();
        c[6].hash = link_hash(&c[6].prev_hash, &c[6].body);
        assert_eq!(
            verify(&c, &recorded(5)).first_break,
            Some(Break::HeadMismatch {
                last_seq: 7,
                head_seq: 5
            })
        );
        // An empty chain against the genesis head.
        assert!(verify(&[], &Head::genesis()).intact);
    }

    #[test]
    fn a_break_reads_as_a_sentence_from_its_json_too() {
        let b = Break::Missing {
            expected_seq: 2,
            found_seq: 3,
        };
        let text = "event 2 is missing (the next one found is event 3)";
        assert_eq!(b.to_string(), text);
        let json = serde_json::to_value(&b).expect("json");
        assert_eq!(json["kind"], "missing");
        assert_eq!(describe_break(&json), text);
        assert_eq!(describe_break(&serde_json::json!("odd")), "\"odd\"");
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let r = verify(&chain(5), &recorded(5));
        assert!(r.intact, "{r:?}");
        assert_eq!(r.events, 5);
    }

    #[test]
    fn an_edit_is_found_at_the_edited_event() {
        let mut c = chain(5);
        c[2].body.detail = r#"{"b":1,"a":3}"#.into();
        assert_eq!(
            verify(&c, &recorded(5)).first_break,
            Some(Break::Edited { seq: 3 })
        );
    }

    #[test]
    fn a_deletion_is_found_where_the_gap_is() {
        let mut c = chain(5);
        c.remove(1);
        assert_eq!(
            verify(&c, &recorded(5)).first_break,
            Some(Break::Missing {
                expected_seq: 2,
                found_seq: 3
            })
        );
        let mut tail = chain(5);
        tail.pop();
        assert_eq!(
            verify(&tail, &recorded(5)).first_break,
            Some(Break::Truncated {
                last_seq: 4,
                head_seq: 5
            })
        );
    }

    #[test]
    fn a_reordering_is_found() {
        let mut c = chain(5);
        c.swap(1, 3);
        assert_eq!(
            verify(&c, &recorded(5)).first_break,
            Some(Break::Reordered { seq: 4, after: 1 })
        );
    }

    #[test]
    fn a_rehashed_edit_still_breaks_the_next_link() {
        let mut c = chain(4);
        c[1].body.actor = "mallory@example.com".into();
        c[1].hash = link_hash(&c[1].prev_hash, &c[1].body);
        assert_eq!(
            verify(&c, &recorded(4)).first_break,
            Some(Break::Unlinked { seq: 3 })
        );
    }

    #[test]
    fn sub_microsecond_time_does_not_change_the_hash() {
        let c = chain(1);
        let mut body = c[0].body.clone();
        body.at = normalise(body.at);
        assert_eq!(link_hash(GENESIS, &body), c[0].hash);
    }
}
