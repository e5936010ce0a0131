//! What the pages say instead of internals: a change's state as people
//! read it (with the outcome a closed change had, and a tone), and each
//! event of its timeline as a sentence ("Carol Becker approved revision
//! 2"). Pure: the page handler gives names and details.

use changegate_core::change::ChangeState;

/// How a state reads at a glance: its colour class on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Nothing is wrong: in progress, or waiting on people.
    Neutral,
    /// It went or may go ahead: approved, implemented, succeeded.
    Good,
    /// It did not go as planned but was undone: rolled back.
    Warning,
    /// Refused or broken: rejected, failed, expired.
    Bad,
}

impl Tone {
    pub fn class(self) -> &'static str {
        match self {
            Tone::Neutral => "tone-neutral",
            Tone::Good => "tone-good",
            Tone::Warning => "tone-warning",
            Tone::Bad => "tone-bad",
        }
    }
}

/// How an implemented change ended, from its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    RolledBack,
}

impl Outcome {
    /// From the names the API and the review use.
    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "succeeded" | "implemented" => Some(Outcome::Succeeded),
            "failed" => Some(Outcome::Failed),
            "rolled-back" => Some(Outcome::RolledBack),
            _ => None,
        }
    }

    fn words(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::RolledBack => "rolled back",
        }
    }

    fn tone(self) -> Tone {
        match self {
            Outcome::Succeeded => Tone::Good,
            Outcome::Failed => Tone::Bad,
            Outcome::RolledBack => Tone::Warning,
        }
    }
}

/// The outcome of a change from its events (oldest first): the review's,
/// else the last of implemented, failed and rolled back.
pub fn outcome_of<'a>(
    events: impl IntoIterator<Item = (&'a str, &'a serde_json::Value)>,
) -> Option<Outcome> {
    let mut outcome = None;
    let mut reviewed = None;
    for (action, detail) in events {
        match action {
            "change.implemented" => outcome = Some(Outcome::Succeeded),
            "change.failed" => outcome = Some(Outcome::Failed),
            "change.rolled-back" => outcome = Some(Outcome::RolledBack),
            "change.reviewed" => {
                reviewed = detail["outcome"]
                    .as_str()
                    .and_then(Outcome::parse)
                    .or(reviewed)
            }
            _ => {}
        }
    }
    reviewed.or(outcome)
}

/// When a change actually ran, from its events (oldest first, with their
/// times): its first start, and the last implemented, failed or rolled
/// back after it (`None` while it runs).
pub fn actual_of<'a, T: Copy>(
    events: impl IntoIterator<Item = (&'a str, T)>,
) -> Option<(T, Option<T>)> {
    let mut started = None;
    let mut ended = None;
    for (action, at) in events {
        match action {
            "change.started" if started.is_none() => started = Some(at),
            "change.implemented" | "change.failed" | "change.rolled-back" if started.is_some() => {
                ended = Some(at)
            }
            _ => {}
        }
    }
    started.map(|s| (s, ended))
}

/// The state as a heading says it, with its tone: `Closed — rolled back`
/// rather than `closed`.
pub fn state(state: ChangeState, outcome: Option<Outcome>) -> (String, Tone) {
    use ChangeState::*;
    let (words, tone) = match state {
        Draft => ("Draft", Tone::Neutral),
        Submitted => ("Submitted", Tone::Neutral),
        AwaitingApproval => ("Awaiting approval", Tone::Neutral),
        Approved => ("Approved", Tone::Good),
        Scheduled => ("Scheduled in a release", Tone::Good),
        Implementing => ("Being implemented", Tone::Neutral),
        Implemented => ("Implemented", Tone::Good),
        Failed => ("Failed", Tone::Bad),
        RolledBack => ("Rolled back", Tone::Warning),
        InReview => ("In review", Tone::Neutral),
        Rejected => ("Rejected", Tone::Bad),
        Cancelled => ("Cancelled", Tone::Neutral),
        Expired => ("Approval expired", Tone::Bad),
        Closed => {
            return match outcome {
                Some(o) => (format!("Closed — {}", o.words()), o.tone()),
                None => ("Closed".to_string(), Tone::Neutral),
            };
        }
    };
    (words.to_string(), tone)
}

/// One event of a change's timeline as a sentence; `who` is the actor's
/// name (or what the record calls it: a cluster's operator, the scheduler).
pub fn event(action: &str, who: &str, detail: &serde_json::Value) -> String {
    let revision = detail["revision"]
        .as_i64()
        .map(|r| format!(" revision {r}"))
        .unwrap_or_default();
    match action {
        "change.created" => format!("{who} raised it"),
        "change.submitted" => format!("{who} submitted{revision} for approval"),
        "change.revised" => format!("{who} revised it:{revision} goes for approval again"),
        "change.edited" => format!("{who} edited it"),
        "change.routed-as-normal" => {
            "It went beyond its template and goes for approval as a normal change".to_string()
        }
        "approval.recorded" => {
            let verb = match detail["decision"].as_str() {
                Some("reject") => "rejected",
                _ => "approved",
            };
            let channel = match detail["channel"].as_str() {
                Some("email") => " by e-mail",
                Some("kubernetes") => " with kubectl",
                Some("api") => " through the API",
                _ => "",
            };
            format!("{who} {verb}{revision}{channel}")
        }
        "change.approved" => "Approved by every board it needed".to_string(),
        "change.rejected" => "Rejected".to_string(),
        "change.scheduled" => match detail["release"].as_str() {
            Some(r) => format!("{who} scheduled it in {r}"),
            None => format!("{who} scheduled it in a release"),
        },
        "change.unscheduled" => format!("{who} took it out of its release"),
        "change.started" => format!("{who} started it"),
        "change.implemented" => "Implemented".to_string(),
        "change.failed" => "Failed".to_string(),
        "change.rolled-back" => "Rolled back".to_string(),
        "change.reviewed" => match detail["outcome"].as_str().and_then(Outcome::parse) {
            Some(o) => format!("{who} recorded the review: {}", o.words()),
            None => format!("{who} recorded the review"),
        },
        "change.closed" => "Closed".to_string(),
        "change.cancelled" => format!("{who} cancelled it"),
        "change.commented" => format!("{who} commented"),
        "change.detached" => "Its Kubernetes resource was deleted after it started".to_string(),
        // Opening a link decides nothing: mail scanners open them too.
        "approval-link.opened" => {
            format!("An e-mail approval link for{revision} was opened (nothing decided)")
        }
        "approval-link.used" => format!("{who} used their e-mail approval link"),
        "acceptance-link.opened" => {
            "An e-mail acceptance link was opened (nothing accepted)".to_string()
        }
        "change.accepted" => {
            let channel = match detail["channel"].as_str() {
                Some("email") => " by e-mail",
                Some("api") => " through the API",
                _ => "",
            };
            format!("{who} accepted the tested change{revision}{channel}")
        }
        "deployment.recorded" => format!("{who} recorded a deployment"),
        "deployment.unauthorized" => format!("{who} reported a deployment no approval covered"),
        other => {
            let words = other.replace(['.', '-', '_'], " ");
            format!("{who}: {words}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_closed_change_says_how_it_ended_in_its_colour() {
        assert_eq!(
            state(ChangeState::Closed, Some(Outcome::RolledBack)),
            ("Closed — rolled back".to_string(), Tone::Warning)
        );
        assert_eq!(
            state(ChangeState::Closed, Some(Outcome::Succeeded)),
            ("Closed — succeeded".to_string(), Tone::Good)
        );
        assert_eq!(state(ChangeState::Closed, None).0, "Closed");
        assert_eq!(state(ChangeState::Rejected, None).1, Tone::Bad);
        assert_eq!(
            state(ChangeState::AwaitingApproval, None).0,
            "Awaiting approval"
        );
    }

    #[test]
    fn the_outcome_is_the_reviews_else_the_last_result() {
        let none = json!({});
        let rolled = [
            ("change.started", &none),
            ("change.failed", &none),
            ("change.rolled-back", &none),
            ("change.closed", &none),
        ];
        assert_eq!(outcome_of(rolled), Some(Outcome::RolledBack));
        let review = json!({ "outcome": "failed" });
        let reviewed = [("change.implemented", &none), ("change.reviewed", &review)];
        assert_eq!(outcome_of(reviewed), Some(Outcome::Failed));
        assert_eq!(outcome_of([("change.created", &none)]), None);
        assert_eq!(
            actual_of([("change.created", 1), ("change.approved", 2)]),
            None
        );
        assert_eq!(
            actual_of([("change.started", 3), ("change.commented", 4)]),
            Some((3, None))
        );
        assert_eq!(
            actual_of([
                ("change.implemented", 1),
                ("change.started", 3),
                ("change.failed", 5),
                ("change.rolled-back", 7),
                ("change.closed", 9)
            ]),
            Some((3, Some(7)))
        );
    }

    #[test]
    fn events_read_as_sentences_with_names() {
        assert_eq!(
            event(
                "approval.recorded",
                "Carol Becker",
                &json!({ "decision": "approve", "revision": 2, "channel": "email" })
            ),
            "Carol Becker approved revision 2 by e-mail"
        );
        assert_eq!(
            event("approval.recorded", "Tom", &json!({ "decision": "reject" })),
            "Tom rejected"
        );
        assert_eq!(event("change.created", "Eve", &json!({})), "Eve raised it");
        assert_eq!(
            event(
                "approval-link.opened",
                "approval-link",
                &json!({ "revision": 1 })
            ),
            "An e-mail approval link for revision 1 was opened (nothing decided)"
        );
        assert_eq!(
            event("change.stage-started", "the scheduler", &json!({})),
            "the scheduler: change stage started"
        );
    }
}
