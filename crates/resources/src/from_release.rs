//! The server's release → what the operator writes into a Release's
//! status, with conditions as kstatus reads them: `Ready` once the
//! release may deploy (or is deploying, or succeeded), False while it is
//! planned, built and tested, held by a conflict, or waits for its
//! changes' approval; `Stalled` when it failed, was rolled back or
//! cancelled, or its spec is refused; `Synced` whether the server holds
//! the latest spec.

use crate::condition::{self, Condition, Judged};
use crate::from_record::{READY, STALLED, SYNCED};
use crate::release::ReleaseObserved;
use crate::wire::ReleaseRecord;
use chrono::{DateTime, Utc};

/// The status to write after the server answered with `record` for
/// `generation`; `previous` conditions keep their transition times.
pub fn release_status(
    record: &ReleaseRecord,
    previous: &[Condition],
    generation: i64,
    now: DateTime<Utc>,
) -> ReleaseObserved {
    let mut judged = judge(record);
    judged.push(match &record.number {
        Some(n) => Judged::new(
            SYNCED,
            true,
            "Synced",
            format!("{n} holds generation {}", record.generation),
        ),
        None => Judged::new(
            SYNCED,
            false,
            "AwaitingChanges",
            "the server creates the release once every change it names is approved",
        ),
    });
    ReleaseObserved {
        number: record.number.clone(),
        phase: Some(record.phase.clone()),
        steps: record.steps.clone(),
        conflicts: record.conflicts.clone(),
        outcome: record.outcome.clone(),
        url: record.url.clone(),
        rollout: record.rollout.clone(),
        rollback: record.rollback.clone(),
        conditions: condition::merge(previous, judged, generation, now),
        observed_generation: Some(generation),
    }
}

/// The status to write when the latest spec did not reach the server:
/// what it last recorded stays; `Synced` turns False with why, and a
/// refusal also sets `Stalled` (until the spec changes).
pub fn release_unsynced(
    last: &ReleaseObserved,
    why: &str,
    refused: bool,
    generation: i64,
    now: DateTime<Utc>,
) -> ReleaseObserved {
    let reason = if refused {
        "Refused"
    } else {
        "ServerUnavailable"
    };
    let mut judged = vec![Judged::new(SYNCED, false, reason, why.to_string())];
    if refused {
        judged.push(Judged::new(STALLED, true, reason, why.to_string()));
        if last.number.is_none() {
            judged.push(Judged::new(READY, false, reason, why.to_string()));
        }
    } else if condition::find(&last.conditions, READY).is_none() {
        judged.push(Judged::new(
            READY,
            false,
            "Unsynced",
            "the changegate server does not have this resource yet",
        ));
    }
    // What the server holds stays as it was computed; only what this
    // spec did is new.
    let fresh = condition::merge(&last.conditions, judged, generation, now);
    let mut conditions: Vec<Condition> = last
        .conditions
        .iter()
        .filter(|c| !fresh.iter().any(|f| f.type_ == c.type_))
        .cloned()
        .collect();
    conditions.extend(fresh);
    conditions.sort_by_key(|c| [READY, STALLED, SYNCED].iter().position(|t| *t == c.type_));
    ReleaseObserved {
        conditions,
        ..last.clone()
    }
}

/// What happened between two statuses, as events on the resource.
pub fn release_happened(
    before: &ReleaseObserved,
    after: &ReleaseObserved,
) -> Vec<crate::from_record::Happened> {
    use crate::from_record::Happened;
    let mut out = Vec::new();
    let Some(n) = after.number.clone() else {
        return out;
    };
    if before.number.is_none() {
        out.push(Happened {
            warning: false,
            reason: "Created",
            note: format!("{n} created on the changegate server"),
        });
        return out;
    }
    if before.phase != after.phase
        && let Some(phase) = after.phase.as_deref()
    {
        let warning = matches!(phase, "rolling-back" | "cancelled")
            || matches!(after.outcome.as_deref(), Some("failed" | "rolled-back"));
        out.push(Happened {
            warning,
            reason: "PhaseChanged",
            note: match &after.outcome {
                Some(o) if phase == "finished" => format!("{n} finished: {o}"),
                _ => format!("{n} is {phase}"),
            },
        });
    }
    out
}

fn judge(r: &ReleaseRecord) -> Vec<Judged> {
    let n = r.number.as_deref().unwrap_or("the release");
    let ready = |reason, message: String| {
        vec![
            Judged::new(READY, true, reason, message),
            Judged::new(STALLED, false, reason, "nothing stops it"),
        ]
    };
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
        "waiting" => waiting(
            "AwaitingApproval",
            r.waiting
                .clone()
                .unwrap_or_else(|| "its changes are not approved yet".into()),
        ),
        "planning" => waiting(
            "Planning",
            format!(
                "{n} is being planned: a release manager authorizes the plan (changegate release authorize {n} --phase plan)"
            ),
        ),
        "build-and-test" => waiting(
            "BuildAndTest",
            format!(
                "{n} is being built and tested: a release manager authorizes build-and-test once every change has test evidence"
            ),
        ),
        "ready" if !r.conflicts.is_empty() => waiting("Conflict", r.conflicts.join("; ")),
        "ready" => ready(
            "Ready",
            format!("{n} is ready: a release manager authorizes the deploy phase in its slot"),
        ),
        "deploying" => ready("Deploying", format!("{n} is deploying: its runbook runs")),
        "rolling-back" => stalled("Failed", format!("{n} is being rolled back")),
        "finished" | "closed" => match r.outcome.as_deref() {
            Some("succeeded") | None => ready("Succeeded", format!("{n} succeeded ({})", r.phase)),
            Some(o) => stalled("Failed", format!("{n} finished {o}")),
        },
        "cancelled" => stalled("Cancelled", format!("{n} was cancelled")),
        other => waiting("Planning", format!("{n} is {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn record(phase: &str) -> ReleaseRecord {
        ReleaseRecord {
            number: Some("REL-4".into()),
            phase: phase.into(),
            waiting: None,
            steps: vec![],
            conflicts: vec![],
            outcome: None,
            url: Some("http://cg/releases/REL-4".into()),
            generation: 2,
            rollout: vec![],
            rollback: None,
        }
    }

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, 12, 0, 0).unwrap()
    }

    fn cond<'a>(o: &'a ReleaseObserved, t: &str) -> (&'a str, &'a str, &'a str) {
        let c = condition::find(&o.conditions, t).unwrap_or_else(|| panic!("no {t} in {o:?}"));
        (c.status.as_str(), c.reason.as_str(), c.message.as_str())
    }

    #[test]
    fn a_release_waiting_for_its_changes_says_which_and_is_not_synced() {
        let r = ReleaseRecord {
            number: None,
            phase: "waiting".into(),
            waiting: Some("CHG-2 is awaiting-approval".into()),
            url: None,
            ..record("waiting")
        };
        let o = release_status(&r, &[], 1, at(1));
        assert_eq!(
            cond(&o, READY),
            ("False", "AwaitingApproval", "CHG-2 is awaiting-approval")
        );
        assert_eq!(cond(&o, STALLED).0, "False");
        assert_eq!(cond(&o, SYNCED).0, "False");
        assert_eq!(o.number, None);
        assert_eq!(o.phase.as_deref(), Some("waiting"));
    }

    #[test]
    fn each_phase_reads_as_kstatus_expects() {
        let ready = |phase: &str, outcome: Option<&str>, conflicts: &[&str]| {
            let r = ReleaseRecord {
                outcome: outcome.map(str::to_string),
                conflicts: conflicts.iter().map(|c| c.to_string()).collect(),
                ..record(phase)
            };
            let o = release_status(&r, &[], 2, at(1));
            (
                cond(&o, READY).0.to_string(),
                cond(&o, READY).1.to_string(),
                cond(&o, STALLED).0.to_string(),
            )
        };
        let t = |r: &str, reason: &str, s: &str| (r.to_string(), reason.to_string(), s.to_string());
        assert_eq!(
            ready("planning", None, &[]),
            t("False", "Planning", "False")
        );
        assert_eq!(
            ready("build-and-test", None, &[]),
            t("False", "BuildAndTest", "False")
        );
        assert_eq!(
            ready("ready", None, &["blackout year-end"]),
            t("False", "Conflict", "False")
        );
        assert_eq!(ready("ready", None, &[]), t("True", "Ready", "False"));
        assert_eq!(
            ready("deploying", None, &[]),
            t("True", "Deploying", "False")
        );
        assert_eq!(
            ready("finished", Some("succeeded"), &[]),
            t("True", "Succeeded", "False")
        );
        assert_eq!(
            ready("finished", Some("rolled-back"), &[]),
            t("False", "Failed", "True")
        );
        assert_eq!(
            ready("cancelled", None, &[]),
            t("False", "Cancelled", "True")
        );
    }

    #[test]
    fn a_refused_spec_stalls_but_keeps_what_the_server_holds() {
        let held = release_status(&record("ready"), &[], 2, at(1));
        let o = release_unsynced(&held, "runbook[0].owner: not an e-mail", true, 3, at(2));
        assert_eq!(o.number.as_deref(), Some("REL-4"));
        assert_eq!(cond(&o, READY).0, "True", "what the server holds stays");
        assert_eq!(
            cond(&o, STALLED),
            ("True", "Refused", "runbook[0].owner: not an e-mail")
        );
        assert_eq!(cond(&o, SYNCED).0, "False");
        let unreachable = release_unsynced(&held, "cannot reach", false, 3, at(2));
        assert_eq!(cond(&unreachable, STALLED).0, "False");
        assert_eq!(cond(&unreachable, SYNCED).1, "ServerUnavailable");
    }

    #[test]
    fn events_say_when_it_was_created_and_how_it_moved() {
        let none = ReleaseObserved::default();
        let planning = release_status(&record("planning"), &[], 2, at(1));
        let created = release_happened(&none, &planning);
        assert_eq!(created.len(), 1);
        assert_eq!(created[0].reason, "Created");
        let failed = release_status(
            &ReleaseRecord {
                outcome: Some("rolled-back".into()),
                ..record("finished")
            },
            &[],
            2,
            at(2),
        );
        let moved = release_happened(&planning, &failed);
        assert_eq!(moved.len(), 1);
        assert!(moved[0].warning);
        assert_eq!(moved[0].note, "REL-4 finished: rolled-back");
    }
}
