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
    // What is kept stays computed for the generation the server holds;
    // only what this spec did is of this generation.
    let held = last.observed_generation.unwrap_or(0);
    let mut conditions = condition::merge(&last.conditions, judged, held, now);
    for c in &mut conditions {
        if c.type_ == SYNCED || c.reason == "Refused" {
            c.observed_generation = generation;
        }
    }
    Observed {
        conditions,
        observed_generation: last.observed_generation,
        ..last.clone()
    }
}

/// A MaintenanceWindow's status from the server's window: `Ready` once
/// the server holds the latest spec, with whether it is open now.
pub fn window_status(
    record: &crate::wire::WindowRecord,
    previous: &[Condition],
    generation: i64,
    now: DateTime<Utc>,
) -> crate::maintenance_window::MaintenanceWindowStatus {
    let open = if record.open {
        match record.open_until {
            Some(until) => format!("open until {}", until.to_rfc3339()),
            None => "open".into(),
        }
    } else {
        match record.next_open {
            Some(next) => format!("closed; opens {}", next.to_rfc3339()),
            None => "closed; no opening ahead".into(),
        }
    };
    let judged = vec![
        Judged::new(
            READY,
            true,
            "Synced",
            format!(
                "{} window {} is on the server, {open}",
                record.kind, record.name
            ),
        ),
        Judged::new(STALLED, false, "Synced", "nothing stops it"),
        Judged::new(SYNCED, true, "Synced", "the server holds this generation"),
    ];
    crate::maintenance_window::MaintenanceWindowStatus {
        open: Some(record.open),
        open_until: record.open_until,
        next_open: record.next_open,
        conditions: condition::merge(previous, judged, generation, now),
        observed_generation: Some(generation),
    }
}

/// A MaintenanceWindow's status when its spec did not reach the server.
pub fn window_unsynced(
    last: &crate::maintenance_window::MaintenanceWindowStatus,
    why: &str,
    refused: bool,
    generation: i64,
    now: DateTime<Utc>,
) -> crate::maintenance_window::MaintenanceWindowStatus {
    let reason = if refused {
        "Refused"
    } else {
        "ServerUnavailable"
    };
    let judged = vec![
        Judged::new(READY, false, reason, why.to_string()),
        Judged::new(STALLED, refused, reason, why.to_string()),
        Judged::new(SYNCED, false, reason, why.to_string()),
    ];
    crate::maintenance_window::MaintenanceWindowStatus {
        conditions: condition::merge(&last.conditions, judged, generation, now),
        ..last.clone()
    }
}

/// An event to record on the resource (`kubectl describe` lists them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Happened {
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}

/// What happened between the status `before` and the status `after`:
/// the change raised, revised, moving to another phase, or the spec no
/// longer reaching the server.
pub fn happened(before: &Observed, after: &Observed) -> Vec<Happened> {
    let mut out = Vec::new();
    let n = after.number.clone().unwrap_or_default();
    let event = |warning, reason, note: String| Happened {
        warning,
        reason,
        note,
    };
    if before.number.is_none() && after.number.is_some() {
        out.push(event(
            false,
            "Raised",
            format!("{n} raised on the changegate server"),
        ));
    }
    if let (Some(b), Some(a)) = (before.revision, after.revision)
        && a > b
    {
        out.push(event(
            false,
            "Revised",
            format!("{n} revision {a}: approval starts over"),
        ));
    }
    if before.phase != after.phase
        && before.number.is_some()
        && let Some(phase) = after.phase.as_deref()
    {
        let (warning, reason) = match phase {
            "approved" => (false, "Approved"),
            "scheduled" => (false, "Scheduled"),
            "implementing" => (false, "Implementing"),
            "implemented" => (false, "Implemented"),
            "closed" => (false, "Closed"),
            "awaiting-approval" => (false, "AwaitingApproval"),
            "rejected" => (true, "Rejected"),
            "expired" => (true, "Expired"),
            "failed" => (true, "Failed"),
            "rolled-back" => (true, "RolledBack"),
            "cancelled" => (true, "Cancelled"),
            _ => (false, "PhaseChanged"),
        };
        out.push(event(warning, reason, format!("{n} is {phase}")));
    }
    let synced = |o: &Observed| condition::find(&o.conditions, SYNCED).map(|c| c.status == "True");
    if synced(after) == Some(false)
        && synced(before) != Some(false)
        && let Some(c) = condition::find(&after.conditions, SYNCED)
    {
        let reason = if c.reason == "Refused" {
            "Refused"
        } else {
            "ServerUnavailable"
        };
        out.push(event(true, reason, c.message.clone()));
    }
    out
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
            changed_at: None,
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
    fn events_say_what_happened_between_two_statuses() {
        let first = observed(&record("awaiting-approval"), &[], 1, at(1));
        let raised = happened(&Observed::default(), &first);
        assert_eq!(raised.len(), 1);
        assert_eq!((raised[0].reason, raised[0].warning), ("Raised", false));
        assert!(happened(&first, &first).is_empty(), "nothing new, no event");
        let approved = observed(&record("approved"), &first.conditions, 1, at(2));
        assert_eq!(happened(&first, &approved)[0].reason, "Approved");
        let revised = observed(
            &ChangeRecord {
                revision: 3,
                ..record("awaiting-approval")
            },
            &approved.conditions,
            2,
            at(3),
        );
        let what: Vec<&str> = happened(&approved, &revised)
            .iter()
            .map(|h| h.reason)
            .collect();
        assert_eq!(what, ["Revised", "AwaitingApproval"]);
        let refused = unsynced(&revised, "spec.targets[0]: no item", true, 3, at(4));
        let r = happened(&revised, &refused);
        assert_eq!((r[0].reason, r[0].warning), ("Refused", true));
        assert!(happened(&refused, &unsynced(&refused, "again", true, 3, at(5))).is_empty());
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
