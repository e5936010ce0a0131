//! Conditions as kstatus reads them (what `kubectl wait`, Flux and Argo CD
//! act on): `Ready`, `Stalled` and `Synced`, each with the generation it
//! was computed for. A condition keeps its `lastTransitionTime` while its
//! status stays the same.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One condition of a resource's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Stalled` or `Synced`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// One word for why, e.g. `AwaitingApproval`.
    pub reason: String,
    /// What it means and what happens next, in a sentence.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed.
    pub last_transition_time: DateTime<Utc>,
    /// The `metadata.generation` this condition was computed for.
    #[serde(default)]
    pub observed_generation: i64,
}

/// A condition as computed, before its transition time is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Judged {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Judged {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

/// The conditions to write: `judged`, each keeping the transition time of
/// the same condition in `previous` while its status is unchanged.
pub fn merge(
    previous: &[Condition],
    judged: Vec<Judged>,
    generation: i64,
    now: DateTime<Utc>,
) -> Vec<Condition> {
    judged
        .into_iter()
        .map(|j| {
            let status = if j.status { "True" } else { "False" }.to_string();
            let since = previous
                .iter()
                .find(|p| p.type_ == j.type_ && p.status == status)
                .map_or(now, |p| p.last_transition_time);
            Condition {
                type_: j.type_.to_string(),
                status,
                reason: j.reason.to_string(),
                message: j.message,
                last_transition_time: since,
                observed_generation: generation,
            }
        })
        .collect()
}

/// The condition of `type_` in `conditions`, if any.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_condition_keeps_its_transition_time_while_its_status_stays() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let t1 = Utc.with_ymd_and_hms(2026, 1, 2, 0, 0, 0).unwrap();
        let first = merge(
            &[],
            vec![Judged::new("Ready", false, "AwaitingApproval", "a")],
            1,
            t0,
        );
        assert_eq!(first[0].last_transition_time, t0);
        let same = merge(
            &first,
            vec![Judged::new("Ready", false, "OutsideWindow", "b")],
            2,
            t1,
        );
        assert_eq!(same[0].last_transition_time, t0);
        assert_eq!(same[0].reason, "OutsideWindow");
        assert_eq!(same[0].observed_generation, 2);
        let flipped = merge(
            &same,
            vec![Judged::new("Ready", true, "Approved", "c")],
            2,
            t1,
        );
        assert_eq!(flipped[0].last_transition_time, t1);
        assert_eq!(flipped[0].status, "True");
    }
}
