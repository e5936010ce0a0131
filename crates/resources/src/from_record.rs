//! The server's record → what the operator writes into a ChangeRequest's
//! status, with its conditions as kstatus reads them (DESIGN §7):
//! `Ready` (approved and, where required, inside its window; True from
//! then on, implemented or closed), `Stalled` (rejected, expired, failed,
//! refused, cancelled) and `Synced` (the server holds the latest spec).

use crate::change_request::Observed;
use crate::condition::{self, Condition, Judged};
use crate::wire::ChangeRecord;
use chrono::{DateTime, Utc};

pub const READY: &str = "Ready";
pub const STALLED: &str = "Stalled";
pub const SYNCED: &str = "Synced";

/// The status to write after the server answered with `record` for
/// `generation`; `previous` conditions keep their transition times.
pub fn observed(
    record: &ChangeRecord,
    previous: &[Condition],
    generation: i64,
    now: DateTime<Utc>,
) -> Observed {
    let mut judged = judge(record);
    judged.push(Judged::new(
        SYNCED,
        true,
        "Synced",
        format!(
            "{} revision {} holds generation {}",
            record.number, record.revision, record.generation
        ),
    ));
    Observed {
        number: Some(record.number.clone()),
        phase: Some(record.phase.clone()),
        revision: Some(record.revision),
        fingerprint: record.fingerprint.clone(),
        approvals_given: Some(record.approvals_given),
        approvals_needed: Some(record.approvals_needed),
        awaiting: record.awaiting.clone(),
        decisions: record.decisions.clone(),
        next_window: record.next_window.clone(),
        url: Some(record.url.clone()),
        rollout: record.rollout.clone(),
        rollback: record.rollback.clone(),
        conditions: condition::merge(previous, judged, generation, now),
        observed_generation: Some(generation),
    }
}

/// The status to write when the latest spec did not reach the server:
/// what it last recorded stays, `Synced` turns False with why, and a
/// refusal (terminal until the spec changes) also sets `Stalled`.
pub fn unsynced(
    last: &Observed,
    why: &str,
    refused: bool,
    generation: i64,
    now: DateTime<Utc>,
) -> Observed {
    let mut judged: Vec<Judged> = Vec::new();
    let kept = |type_: &'static str| {
        condition::find(&last.conditions, type_).map(|c| Judged {
            type_,
            status: c.status == "True",
            reason: leak_reason(&c.reason),
            message: c.message.clone(),
        })
    };
    if refused {
        // A change the server holds stays as ready as it was: what is
        // refused is this spec, until it changes.
        match kept(READY).filter(|_| last.number.is_some()) {
            Some(ready) => judged.push(ready),
            None => judged.push(Judged::new(READY, false, "Refused", why.to_string())),
        }
        judged.push(Judged::new(STALLED, true, "Refused", why.to_string()));
    } else {
        judged.push(kept(READY).unwrap_or_else(|| {
            Judged::new(
                READY,
                false,
                "Unsynced",
                "the changegate server does not have this resource yet",
            )
        }));
        if let Some(stalled) = kept(STALLED) {
            judged.push(stalled);
        }
    }
    judged.push(Judged::new(
        SYNCED,
        false,
        if refused {
            "Refused"
        } else {
            "ServerUnavailable"
        },
        why.to_string(),
    ));
    Observed {
        conditions: condition::merge(&last.conditions, judged, generation, now),
        observed_generation: last.observed_generation,
        ..last.clone()
    }
}

/// The reasons a kept condition may carry, as static text.
fn leak_reason(reason: &str) -> &'static str {
    const KNOWN: [&str; 14] = [
        "Draft",
        "AwaitingApproval",
        "OutsideWindow",
        "AwaitingRelease",
        "Approved",
        "Implementing",
        "Implemented",
        "Closed",
        "Rejected",
        "Expired",
        "Failed",
        "Cancelled",
        "Refused",
        "Unsynced",
    ];
    KNOWN
        .iter()
        .copied()
        .find(|k| *k == reason)
        .unwrap_or("Unknown")
}

/// `Ready` and, when the change will not go on, `Stalled`, from the record.
fn judge(r: &ChangeRecord) -> Vec<Judged> {
    let n = &r.number;
    let ready = |reason, message: String| vec![Judged::new(READY, true, reason, message)];
    let waiting = |reason, message: String| {
        vec![
            Judged::new(READY, false, reason, message),
            Judged::new(
                STALLED,
                false,
                reason,
                "nothing stops it; Ready says what it waits for",
            ),
        ]
    };
    let stalled = |reason, message: String| {
        vec![
            Judged::new(READY, false, reason, message.clone()),
            Judged::new(STALLED, true, reason, message),
        ]
    };
    match r.phase.as_str() {
        "draft" => waiting(
            "Draft",
            format!("{n} is a draft; set spec.submit to true to ask for approval"),
        ),
        "submitted" | "awaiting-approval" => {
            let waits = if r.awaiting.is_empty() {
                "approval".to_string()
            } else {
                r.awaiting
                    .iter()
                    .map(|a| {
                        let from = if a.from.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", a.from.join(", "))
                        };
                        format!(
                            "{} approval{} from {}{from}",
                            a.needed,
                            if a.needed == 1 { "" } else { "s" },
                            a.board
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" and ")
            };
            waiting(
                "AwaitingApproval",
                format!("{n} revision {} awaits {waits}", r.revision),
            )
        }
        "approved" | "scheduled" => match &r.hold {
            None => ready("Approved", format!("{n} is approved and may deploy now")),
            Some(h) if h.reason == "finished" => stalled("Expired", h.message.clone()),
            Some(h) if h.reason == "held-by-release" => {
                waiting("AwaitingRelease", h.message.clone())
            }
            Some(h) => waiting("OutsideWindow", h.message.clone()),
        },
        "implementing" => ready("Implementing", format!("{n} is being implemented")),
        "implemented" | "in-review" => ready("Implemented", format!("{n} was implemented")),
        "closed" => ready("Closed", format!("{n} is closed")),
        "rejected" => stalled(
            "Rejected",
            format!(
                "{n} revision {} was rejected; edit the spec to submit a new revision",
                r.revision
            ),
        ),
        "expired" => stalled("Expired", format!("{n} expired; raise a new change")),
        "failed" | "rolled-back" => stalled(
            "Failed",
            format!(
                "{n} {}",
                if r.phase == "failed" {
                    "failed"
                } else {
                    "failed and was rolled back"
                }
            ),
        ),
        "cancelled" => stalled("Cancelled", format!("{n} was cancelled")),
        other => waiting("AwaitingApproval", format!("{n} is {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change_request::Awaiting;
    use crate::wire::Hold;
    use chrono::TimeZone;

    fn record(phase: &str) -> ChangeRecord {
        ChangeRecord {
            number: "CHG-7".into(),
            phase: phase.into(),
            revision: 2,
            fingerprint: Some("sha256:ab".into()),
            approvals_given: 0,
            approvals_needed: 1,
            awaiting: vec![Awaiting {
                board: "client".into(),
                needed: 1,
                from: vec!["carol@client.example".into()],
            }],
            decisions: vec![],
            next_window: None,
            url: "http://cg/t/a/changes/CHG-7".into(),
            hold: None,
            generation: 3,
            rollout: vec![],
            rollback: None,
        }
    }

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, 12, 0, 0).unwrap()
    }

    fn cond<'a>(o: &'a Observed, t: &str) -> &'a Condition {
        condition::find(&o.conditions, t).unwrap_or_else(|| panic!("no {t} in {o:?}"))
    }

    #[test]
    fn awaiting_approval_is_not_ready_and_says_from_whom() {
        let o = observed(&record("awaiting-approval"), &[], 3, at(1));
        let ready = cond(&o, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "AwaitingApproval")
        );
        assert!(
            ready
                .message
                .contains("1 approval from client (carol@client.example)"),
            "{}",
            ready.message
        );
        assert_eq!(cond(&o, STALLED).status, "False");
        assert_eq!(cond(&o, SYNCED).status, "True");
        assert_eq!(o.observed_generation, Some(3));
        assert_eq!(o.number.as_deref(), Some("CHG-7"));
    }

    #[test]
    fn approved_is_ready_unless_the_gate_holds_it() {
        let o = observed(&record("approved"), &[], 1, at(1));
        assert_eq!(cond(&o, READY).status, "True");
        let held = ChangeRecord {
            hold: Some(Hold {
                reason: "window-closed".into(),
                message: "CHG-7 is approved but no window is open".into(),
            }),
            ..record("approved")
        };
        let o = observed(&held, &[], 1, at(1));
        assert_eq!(cond(&o, READY).reason, "OutsideWindow");
        assert_eq!(cond(&o, READY).status, "False");
    }

    #[test]
    fn ready_stays_true_once_implemented_or_closed() {
        for phase in ["implementing", "implemented", "in-review", "closed"] {
            let o = observed(&record(phase), &[], 1, at(1));
            assert_eq!(cond(&o, READY).status, "True", "{phase}");
        }
    }

    #[test]
    fn rejected_expired_and_failed_stall() {
        for (phase, reason) in [
            ("rejected", "Rejected"),
            ("expired", "Expired"),
            ("failed", "Failed"),
            ("rolled-back", "Failed"),
            ("cancelled", "Cancelled"),
        ] {
            let o = observed(&record(phase), &[], 1, at(1));
            let stalled = cond(&o, STALLED);
            assert_eq!(
                (stalled.status.as_str(), stalled.reason.as_str()),
                ("True", reason),
                "{phase}"
            );
            assert_eq!(cond(&o, READY).status, "False", "{phase}");
        }
    }

    #[test]
    fn an_unreachable_server_keeps_the_record_and_says_why() {
        let before = observed(&record("approved"), &[], 1, at(1));
        let after = unsynced(&before, "cannot reach the server", false, 2, at(2));
        assert_eq!(after.number.as_deref(), Some("CHG-7"));
        assert_eq!(cond(&after, READY).status, "True");
        assert_eq!(cond(&after, READY).last_transition_time, at(1));
        let synced = cond(&after, SYNCED);
        assert_eq!(
            (synced.status.as_str(), synced.reason.as_str()),
            ("False", "ServerUnavailable")
        );
        assert_eq!(
            after.observed_generation,
            Some(1),
            "the server still has generation 1"
        );
        let refused = unsynced(
            &before,
            "CHG-7 is implemented; it can no longer be edited",
            true,
            2,
            at(2),
        );
        assert_eq!(cond(&refused, STALLED).reason, "Refused");
        assert_eq!(cond(&refused, SYNCED).status, "False");
        assert_eq!(
            cond(&refused, READY).status,
            "True",
            "the change itself is as ready as it was"
        );
        let never = unsynced(&Observed::default(), "no such template", true, 1, at(2));
        assert_eq!(cond(&never, READY).reason, "Refused");
        assert_eq!(cond(&never, READY).status, "False");
    }
}
