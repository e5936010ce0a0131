//! The tamper-evident audit trail: `status.history` entries chained with
//! SHA-256 so an edited, removed or reordered entry shows, and the
//! append-only check the webhook applies to approvals and history alike.

use crate::api::{ChangePhase, HistoryEntry};
use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

/// Versions the encoding, so a future change to it cannot collide with
/// hashes written under this one.
const DOMAIN: &[u8] = b"changegate.dev/history/v1";

/// The history entry that follows `prev` (`None` for the first entry).
///
/// `hash = hex(sha256(encode(DOMAIN, prev.hash, phase, at, by, reason)))`
/// where `encode` writes each field as an 8-byte big-endian length and its
/// UTF-8 bytes (so no two field lists encode alike), the first entry's
/// `prev.hash` is empty, `phase` is its name and `at` is RFC 3339 in UTC
/// with nanoseconds (`2026-11-28T02:00:00.000000000Z`), which depends only
/// on the instant and so survives a JSON round trip.
pub fn append(
    prev: Option<&HistoryEntry>,
    phase: ChangePhase,
    at: DateTime<Utc>,
    by: &str,
    reason: &str,
) -> HistoryEntry {
    HistoryEntry {
        phase,
        at,
        by: by.to_string(),
        reason: reason.to_string(),
        hash: digest(prev.map_or("", |p| p.hash.as_str()), phase, at, by, reason),
    }
}

/// An entry whose hash does not match its content and predecessor: it, or an
/// entry before it, was edited, removed or moved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "status.history is not intact at entry {index} ({phase}): expected hash {expected}, found {found}"
)]
pub struct ChainBroken {
    pub index: usize,
    pub phase: ChangePhase,
    pub expected: String,
    pub found: String,
}

/// Recomputes every hash from the start. This proves the entries were not
/// changed after the fact by someone who did not also rewrite every later
/// hash; that anyone could is why the webhook lets only the controller
/// append and keeps the list append-only.
pub fn verify(entries: &[HistoryEntry]) -> Result<(), ChainBroken> {
    let mut prev_hash = "";
    for (index, entry) in entries.iter().enumerate() {
        let expected = digest(prev_hash, entry.phase, entry.at, &entry.by, &entry.reason);
        if expected != entry.hash {
            return Err(ChainBroken {
                index,
                phase: entry.phase,
                expected,
                found: entry.hash.clone(),
            });
        }
        prev_hash = &entry.hash;
    }
    Ok(())
}

/// `new` keeps every element of `old`, unchanged and in order, and only adds
/// after them: the rule for `status.approvals` and `status.history`.
pub fn is_append_only<T: PartialEq>(old: &[T], new: &[T]) -> bool {
    new.starts_with(old)
}

fn digest(
    prev_hash: &str,
    phase: ChangePhase,
    at: DateTime<Utc>,
    by: &str,
    reason: &str,
) -> String {
    let phase = phase.to_string();
    let at = at.to_rfc3339_opts(SecondsFormat::Nanos, true);
    let mut hasher = Sha256::new();
    for field in [
        DOMAIN,
        prev_hash.as_bytes(),
        phase.as_bytes(),
        at.as_bytes(),
        by.as_bytes(),
        reason.as_bytes(),
    ] {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field);
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ApprovalRecord, Decision};
    use crate::change::lifecycle::tests::at;
    use ChangePhase::*;

    const CONTROLLER: &str = "system:serviceaccount:changegate-system:changegate";

    fn chain() -> Vec<HistoryEntry> {
        let mut entries: Vec<HistoryEntry> = Vec::new();
        for (hour, phase, reason) in [
            (1, Approved, "approvals complete (1/1)"),
            (2, Implementing, "a workload change was admitted"),
            (3, Implemented, "rollout succeeded"),
        ] {
            let next = append(entries.last(), phase, at(hour), CONTROLLER, reason);
            entries.push(next);
        }
        entries
    }

    #[test]
    fn an_untouched_chain_verifies() {
        assert_eq!(verify(&chain()), Ok(()));
        assert_eq!(verify(&[]), Ok(()));
    }

    #[test]
    fn the_encoding_is_pinned() {
        // Computed independently from the documented encoding; a change here
        // breaks every stored history, so it must be deliberate (bump DOMAIN).
        let first = append(None, Approved, DateTime::UNIX_EPOCH, "bob", "ok");
        assert_eq!(
            first.hash,
            "799d51a7361e80a630f7e650ad5d87d2b8478a9d8a16bc4682aaeac1d4dc00b2"
        );
    }

    #[test]
    fn tampered_history_is_detected() {
        let mut entries = chain();
        entries[1].reason = "approved by the CAB".into();
        let Err(broken) = verify(&entries) else {
            panic!("an edited reason must break the chain");
        };
        assert_eq!(broken.index, 1);

        let mut entries = chain();
        entries[0].by = "mallory".into();
        assert_eq!(verify(&entries).map_err(|b| b.index), Err(0));

        let mut entries = chain();
        entries[2].at = at(30);
        assert_eq!(verify(&entries).map_err(|b| b.index), Err(2));
    }

    #[test]
    fn removed_or_reordered_entries_are_detected() {
        let mut removed = chain();
        removed.remove(0);
        assert_eq!(verify(&removed).map_err(|b| b.index), Err(0));

        let mut reordered = chain();
        reordered.swap(1, 2);
        assert_eq!(verify(&reordered).map_err(|b| b.index), Err(1));
    }

    #[test]
    fn the_hash_survives_a_json_round_trip() {
        let entry = append(
            None,
            Approved,
            at(1) + chrono::TimeDelta::nanoseconds(7),
            "b",
            "r",
        );
        let json = serde_json::to_string(&entry).unwrap_or_default();
        let back: Result<HistoryEntry, _> = serde_json::from_str(&json);
        assert_eq!(back.ok().map(|e| verify(&[e])), Some(Ok(())));
    }

    fn decision(who: &str) -> ApprovalRecord {
        ApprovalRecord {
            decision: Decision::Approved,
            approver: Some(who.into()),
            groups: vec!["msp:cab".into()],
            comment: None,
            at: Some(at(1)),
        }
    }

    #[test]
    fn removing_an_approval_is_not_append_only() {
        let old = vec![decision("bob"), decision("carol")];
        assert!(!is_append_only(&old, &old[1..]));
        assert!(!is_append_only(&old, &[]));
    }

    #[test]
    fn editing_or_reordering_is_not_append_only() {
        let old = vec![decision("bob"), decision("carol")];
        let mut edited = old.clone();
        edited[0].decision = Decision::Rejected;
        assert!(!is_append_only(&old, &edited));
        let reordered = vec![decision("carol"), decision("bob")];
        assert!(!is_append_only(&old, &reordered));
    }

    #[test]
    fn adding_at_the_end_is_append_only() {
        let old = vec![decision("bob")];
        assert!(is_append_only(&old, &old));
        assert!(is_append_only(&old, &[decision("bob"), decision("carol")]));
        assert!(is_append_only(&[], &old));
        let history = chain();
        assert!(is_append_only(&history[..2], &history));
    }
}
