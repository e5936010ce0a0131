//! Releases (DESIGN §6): approved changes of one or several tenants
//! delivered together in one slot. A release passes three phase gates,
//! each authorized by a named person (plan → build and test → deploy),
//! runs its runbook (deploy steps, then validation checks) in order, may
//! be rolled back on a rollback authorization, and ends with an outcome
//! written to the release and to every change it delivers.
//!
//! Pure: the server loads the release and its changes, asks these
//! functions what may happen, and stores the result in one transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::InvalidValue;

kebab_enum!(
    /// Where a release stands.
    ReleaseState {
        /// Changes are added, the slot and the runbook planned.
        Planning = "planning",
        /// The plan was authorized: the changes are built and tested.
        BuildAndTest = "build-and-test",
        /// Build and test were authorized: waiting for the slot.
        Ready = "ready",
        /// Deployment was authorized and started: the runbook runs.
        Deploying = "deploying",
        /// A rollback was authorized: the rollback steps run.
        RollingBack = "rolling-back",
        /// Finished with an outcome; post-implementation reviews follow.
        Finished = "finished",
        Closed = "closed",
        Cancelled = "cancelled",
    }
);

kebab_enum!(
    /// The three phase gates, each authorized by a named person.
    Phase { Plan = "plan", BuildAndTest = "build-and-test", Deploy = "deploy" }
);

kebab_enum!(
    /// How a release ended, written to each of its changes too.
    Outcome { Succeeded = "succeeded", Failed = "failed", RolledBack = "rolled-back" }
);

kebab_enum!(
    /// What a runbook step is for.
    StepKind { Deploy = "deploy", Validate = "validate", Rollback = "rollback" }
);

kebab_enum!(
    /// How a runbook step went.
    StepStatus { Pending = "pending", Done = "done", Failed = "failed", Skipped = "skipped" }
);

impl ReleaseState {
    /// Changes, the slot and the runbook may still be edited.
    pub fn plannable(self) -> bool {
        matches!(
            self,
            ReleaseState::Planning | ReleaseState::BuildAndTest | ReleaseState::Ready
        )
    }
}

/// One step of the runbook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub kind: StepKind,
    pub title: String,
    /// Who carries it out (an e-mail address).
    #[serde(default)]
    pub owner: String,
    /// The change it delivers or checks, e.g. `CHG-12`.
    #[serde(default)]
    pub change: Option<String>,
    pub status: StepStatus,
    #[serde(default)]
    pub evidence: String,
    /// Who recorded its status, and when.
    #[serde(default)]
    pub recorded_by: Option<String>,
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
}

/// Who authorized a phase, when, with what note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorization {
    pub phase: Phase,
    pub by: String,
    pub at: DateTime<Utc>,
    #[serde(default)]
    pub note: String,
}

/// A conflict a change manager let stand, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    /// The conflict's key (see [`Conflict::key`]).
    pub conflict: String,
    pub by: String,
    pub at: DateTime<Utc>,
    pub reason: String,
}

/// The authorization and execution record of a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollback {
    pub authorized_by: String,
    pub at: DateTime<Utc>,
    pub reason: String,
    pub finished_at: Option<DateTime<Utc>>,
    /// What was restored: the evidence of the rollback steps.
    #[serde(default)]
    pub restored: String,
}

/// Everything a release records besides its identity, owner, state and
/// slot: kept together and written with the release under one version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub authorizations: Vec<Authorization>,
    #[serde(default)]
    pub runbook: Vec<Step>,
    #[serde(default)]
    pub overrides: Vec<Override>,
    #[serde(default)]
    pub rollback: Option<Rollback>,
    #[serde(default)]
    pub outcome: Option<Outcome>,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Deployment authorized ahead, to start at the planned start: who and
    /// when. The scheduler starts the release then, once, as that person.
    #[serde(default)]
    pub scheduled_start: Option<Authorization>,
}

/// Why a release may not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the release is {state}; {what}")]
    State { state: ReleaseState, what: String },
    #[error("{0}")]
    Runbook(String),
}

fn refuse(state: ReleaseState, what: impl Into<String>) -> Refusal {
    Refusal::State {
        state,
        what: what.into(),
    }
}

/// The state a phase authorization moves a release from, and to.
pub fn phase_move(phase: Phase) -> (ReleaseState, ReleaseState) {
    match phase {
        Phase::Plan => (ReleaseState::Planning, ReleaseState::BuildAndTest),
        Phase::BuildAndTest => (ReleaseState::BuildAndTest, ReleaseState::Ready),
        Phase::Deploy => (ReleaseState::Ready, ReleaseState::Deploying),
    }
}

/// Authorize `phase`: the release must be in the state that phase
/// leaves. Returns the new state; the authorization is recorded.
pub fn authorize(
    state: ReleaseState,
    record: &mut Record,
    phase: Phase,
    by: &str,
    note: &str,
    now: DateTime<Utc>,
) -> Result<ReleaseState, Refusal> {
    let (from, to) = phase_move(phase);
    if state != from {
        return Err(refuse(
            state,
            format!("the {phase} phase is authorized from {from}"),
        ));
    }
    if phase == Phase::Deploy {
        if !record.runbook.iter().any(|s| s.kind == StepKind::Deploy) {
            return Err(Refusal::Runbook(
                "the runbook has no deploy step; add the steps before deploying".into(),
            ));
        }
        record.started_at = Some(now);
    }
    record.authorizations.push(Authorization {
        phase,
        by: by.into(),
        at: now,
        note: note.into(),
    });
    Ok(to)
}

/// Check a runbook someone wants to plan: titles present, deploy steps
/// first in spirit (any order of kinds is kept as written), statuses
/// pending.
pub fn plan_runbook(steps: &[Step]) -> Result<(), InvalidValue> {
    for (i, s) in steps.iter().enumerate() {
        if s.title.trim().is_empty() {
            return Err(InvalidValue::new(
                format!("runbook[{i}].title"),
                "say what the step does",
            ));
        }
        if s.status != StepStatus::Pending {
            return Err(InvalidValue::new(
                format!("runbook[{i}].status"),
                "a planned step is pending; its status is recorded while the release runs",
            ));
        }
    }
    Ok(())
}

/// The kinds of step a release in `state` runs.
fn runs(state: ReleaseState) -> &'static [StepKind] {
    match state {
        ReleaseState::Deploying => &[StepKind::Deploy, StepKind::Validate],
        ReleaseState::RollingBack => &[StepKind::Rollback],
        _ => &[],
    }
}

/// Record how step `index` went. Steps of the running kind are taken in
/// order: a step waits for every earlier one to be done or skipped, and
/// after a failure nothing more runs until a rollback is authorized.
pub fn record_step(
    state: ReleaseState,
    record: &mut Record,
    index: usize,
    status: StepStatus,
    evidence: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    let kinds = runs(state);
    let step = record
        .runbook
        .get(index)
        .ok_or_else(|| Refusal::Runbook(format!("the runbook has no step {}", index + 1)))?;
    if !kinds.contains(&step.kind) {
        return Err(refuse(
            state,
            format!("its {} steps cannot be recorded now", step.kind),
        ));
    }
    if step.status != StepStatus::Pending {
        return Err(Refusal::Runbook(format!(
            "step {} is already {}",
            index + 1,
            step.status
        )));
    }
    if status == StepStatus::Pending {
        return Err(Refusal::Runbook("record done, failed or skipped".into()));
    }
    if status == StepStatus::Done && evidence.trim().is_empty() {
        return Err(Refusal::Runbook(format!(
            "say what shows step {} was done (evidence)",
            index + 1
        )));
    }
    for (i, earlier) in record.runbook[..index].iter().enumerate() {
        if !kinds.contains(&earlier.kind) {
            continue;
        }
        match earlier.status {
            StepStatus::Done | StepStatus::Skipped => {}
            StepStatus::Pending => {
                return Err(Refusal::Runbook(format!("step {} comes first", i + 1)));
            }
            StepStatus::Failed => {
                return Err(Refusal::Runbook(format!(
                    "step {} failed; authorize a rollback or finish the release as failed",
                    i + 1
                )));
            }
        }
    }
    let step = &mut record.runbook[index];
    step.status = status;
    step.evidence = evidence.into();
    step.recorded_by = Some(by.into());
    step.at = Some(now);
    Ok(())
}

/// Authorize a rollback of a deploying release: who, when, why.
pub fn authorize_rollback(
    state: ReleaseState,
    record: &mut Record,
    by: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<ReleaseState, Refusal> {
    if state != ReleaseState::Deploying {
        return Err(refuse(state, "only a deploying release is rolled back"));
    }
    if reason.trim().is_empty() {
        return Err(Refusal::Runbook(
            "say why the release is rolled back".into(),
        ));
    }
    if !record.runbook.iter().any(|s| s.kind == StepKind::Rollback) {
        return Err(Refusal::Runbook(
            "the runbook has no rollback step to run".into(),
        ));
    }
    record.rollback = Some(Rollback {
        authorized_by: by.into(),
        at: now,
        reason: reason.into(),
        finished_at: None,
        restored: String::new(),
    });
    Ok(ReleaseState::RollingBack)
}

/// Validation checks among `steps` that failed (a KPI: release
/// validation failures). Each client counts the steps it sees: those
/// about its changes and those about none in particular.
pub fn validation_failures<'a>(steps: impl IntoIterator<Item = &'a Step>) -> usize {
    steps
        .into_iter()
        .filter(|s| s.kind == StepKind::Validate && s.status == StepStatus::Failed)
        .count()
}

/// What editing a planned release's slot or runbook undid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replanned {
    /// The plan had been authorized: it is to be authorized again.
    pub reopened: bool,
    /// Overrides given for the conflicts of the slot before it moved.
    pub overrides_dropped: usize,
    /// A start scheduled ahead was dropped.
    pub start_unscheduled: bool,
}

/// The slot or runbook of a planned release changed: what was authorized
/// for the old plan no longer holds. An authorized plan (build and test,
/// ready) goes back to planning, a start scheduled ahead is dropped, and
/// when the slot moved, the overrides given for the old slot's conflicts
/// are dropped. Returns the new state.
pub fn replan(
    state: ReleaseState,
    record: &mut Record,
    slot_moved: bool,
) -> Result<(ReleaseState, Replanned), Refusal> {
    if !state.plannable() {
        return Err(refuse(state, "only a planned release is edited"));
    }
    let mut done = Replanned {
        reopened: state != ReleaseState::Planning,
        start_unscheduled: record.scheduled_start.take().is_some(),
        ..Replanned::default()
    };
    if slot_moved {
        done.overrides_dropped = record.overrides.len();
        record.overrides.clear();
    }
    Ok((ReleaseState::Planning, done))
}

/// Finish a release: succeeded when every deploy and validation step is
/// done (or skipped), rolled back when every rollback step ran after an
/// authorized rollback, failed when a step failed and no rollback ran.
pub fn finish(
    state: ReleaseState,
    record: &mut Record,
    now: DateTime<Utc>,
) -> Result<Outcome, Refusal> {
    let settled = |kinds: &[StepKind]| {
        record
            .runbook
            .iter()
            .filter(|s| kinds.contains(&s.kind))
            .all(|s| matches!(s.status, StepStatus::Done | StepStatus::Skipped))
    };
    let outcome = match state {
        ReleaseState::Deploying => {
            if record
                .runbook
                .iter()
                .any(|s| s.kind != StepKind::Rollback && s.status == StepStatus::Failed)
            {
                Outcome::Failed
            } else if settled(&[StepKind::Deploy, StepKind::Validate]) {
                Outcome::Succeeded
            } else {
                return Err(Refusal::Runbook(
                    "steps are still pending; record them first".into(),
                ));
            }
        }
        ReleaseState::RollingBack => {
            // A rollback step that failed ends the rollback: nothing after
            // it runs, and the release finishes as failed with what the
            // steps before it restored.
            let rollback_failed = record
                .runbook
                .iter()
                .any(|s| s.kind == StepKind::Rollback && s.status == StepStatus::Failed);
            if !rollback_failed && !settled(&[StepKind::Rollback]) {
                return Err(Refusal::Runbook(
                    "rollback steps are still pending; record them first".into(),
                ));
            }
            let restored: Vec<String> = record
                .runbook
                .iter()
                .filter(|s| s.kind == StepKind::Rollback && s.status == StepStatus::Done)
                .map(|s| s.evidence.clone())
                .collect();
            if let Some(r) = record.rollback.as_mut() {
                r.finished_at = Some(now);
                r.restored = restored.join("; ");
            }
            if rollback_failed {
                Outcome::Failed
            } else {
                Outcome::RolledBack
            }
        }
        other => return Err(refuse(other, "only a running release finishes")),
    };
    record.outcome = Some(outcome);
    record.finished_at = Some(now);
    Ok(outcome)
}

/// Finish a running release with nothing left to do: every change it
/// delivers moved on during it (its implementer, a pipeline or an agent
/// recorded how it went), so the steps still pending are skipped, saying
/// why, and the release ends with `outcome`, what its changes came to.
pub fn finish_moved_on(
    state: ReleaseState,
    record: &mut Record,
    outcome: Outcome,
    now: DateTime<Utc>,
) -> Result<Outcome, Refusal> {
    if !matches!(state, ReleaseState::Deploying | ReleaseState::RollingBack) {
        return Err(refuse(state, "only a running release finishes"));
    }
    for step in record
        .runbook
        .iter_mut()
        .filter(|s| s.status == StepStatus::Pending)
    {
        step.status = StepStatus::Skipped;
        step.evidence = "nothing left to do: every change moved on during the release".into();
        step.at = Some(now);
    }
    if let Some(r) = record.rollback.as_mut()
        && r.finished_at.is_none()
    {
        r.finished_at = Some(now);
    }
    record.outcome = Some(outcome);
    record.finished_at = Some(now);
    Ok(outcome)
}

/// Something standing in the way of a release's slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// Stable, to name it in an override: e.g. `clash:client-a:CHG-7:payments-api`.
    pub key: String,
    /// The tenant it concerns (slug).
    pub tenant: String,
    pub message: String,
    /// Blackouts, clashes and double-booked implementers may be overridden
    /// by a change manager with a reason; a closed window may not.
    pub overridable: bool,
}

/// The conflicts not overridden: what stops a release from starting.
pub fn standing<'a>(conflicts: &'a [Conflict], record: &Record) -> Vec<&'a Conflict> {
    conflicts
        .iter()
        .filter(|c| !(c.overridable && record.overrides.iter().any(|o| o.conflict == c.key)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, h, 0, 0)
            .single()
            .expect("a valid time")
    }

    fn step(kind: StepKind, title: &str) -> Step {
        Step {
            kind,
            title: title.into(),
            owner: String::new(),
            change: None,
            status: StepStatus::Pending,
            evidence: String::new(),
            recorded_by: None,
            at: None,
        }
    }

    fn planned() -> Record {
        Record {
            runbook: vec![
                step(StepKind::Deploy, "deploy payments-api"),
                step(StepKind::Deploy, "deploy vpn config"),
                step(StepKind::Validate, "smoke test"),
                step(StepKind::Rollback, "restore payments-api 1.4.2"),
            ],
            ..Record::default()
        }
    }

    fn deploying() -> (ReleaseState, Record) {
        let mut r = planned();
        let mut s = ReleaseState::Planning;
        for p in Phase::ALL {
            s = authorize(s, &mut r, *p, "rm@msp.example", "", at(1)).expect("as set up");
        }
        (s, r)
    }

    #[test]
    fn phases_are_authorized_in_order_and_each_is_recorded() {
        let mut r = planned();
        let err = authorize(
            ReleaseState::Planning,
            &mut r,
            Phase::Deploy,
            "x",
            "",
            at(1),
        );
        assert!(matches!(err, Err(Refusal::State { .. })));
        let (s, r) = deploying();
        assert_eq!(s, ReleaseState::Deploying);
        let phases: Vec<Phase> = r.authorizations.iter().map(|a| a.phase).collect();
        assert_eq!(phases, Phase::ALL);
        assert_eq!(r.started_at, Some(at(1)));
    }

    #[test]
    fn a_release_without_deploy_steps_does_not_deploy() {
        let mut r = Record::default();
        let err = authorize(ReleaseState::Ready, &mut r, Phase::Deploy, "x", "", at(1));
        assert!(matches!(err, Err(Refusal::Runbook(_))));
        assert!(r.authorizations.is_empty());
    }

    #[test]
    fn steps_run_in_order_and_need_evidence() {
        let (s, mut r) = deploying();
        assert!(record_step(s, &mut r, 1, StepStatus::Done, "ok", "e", at(2)).is_err());
        assert!(record_step(s, &mut r, 0, StepStatus::Done, " ", "e", at(2)).is_err());
        assert!(record_step(s, &mut r, 3, StepStatus::Done, "ok", "e", at(2)).is_err());
        record_step(
            s,
            &mut r,
            0,
            StepStatus::Done,
            "rolled out 1.5.0",
            "e",
            at(2),
        )
        .expect("as set up");
        assert!(record_step(s, &mut r, 0, StepStatus::Done, "again", "e", at(2)).is_err());
        record_step(s, &mut r, 1, StepStatus::Skipped, "", "e", at(2)).expect("as set up");
        assert!(
            finish(s, &mut r.clone(), at(3)).is_err(),
            "validation pending"
        );
        record_step(s, &mut r, 2, StepStatus::Done, "200 OK", "e", at(3)).expect("as set up");
        assert_eq!(finish(s, &mut r, at(3)), Ok(Outcome::Succeeded));
        assert_eq!(r.finished_at, Some(at(3)));
    }

    #[test]
    fn a_failed_step_stops_the_runbook_until_a_rollback_is_authorized() {
        let (s, mut r) = deploying();
        record_step(s, &mut r, 0, StepStatus::Failed, "pods crash", "e", at(2)).expect("as set up");
        let err = record_step(s, &mut r, 1, StepStatus::Done, "ok", "e", at(2));
        assert!(matches!(err, Err(Refusal::Runbook(m)) if m.contains("rollback")));
        assert!(authorize_rollback(s, &mut r, "rm", "  ", at(2)).is_err());
        let s = authorize_rollback(s, &mut r, "rm", "step 1 failed", at(2)).expect("as set up");
        assert_eq!(s, ReleaseState::RollingBack);
        assert!(record_step(s, &mut r, 1, StepStatus::Done, "ok", "e", at(2)).is_err());
        assert!(
            finish(s, &mut r.clone(), at(3)).is_err(),
            "rollback pending"
        );
        record_step(s, &mut r, 3, StepStatus::Done, "1.4.2 restored", "e", at(3))
            .expect("as set up");
        assert_eq!(finish(s, &mut r, at(4)), Ok(Outcome::RolledBack));
        let rb = r.rollback.expect("as set up");
        assert_eq!(
            (
                rb.authorized_by.as_str(),
                rb.finished_at,
                rb.restored.as_str()
            ),
            ("rm", Some(at(4)), "1.4.2 restored")
        );
    }

    #[test]
    fn a_failed_rollback_step_finishes_the_release_as_failed() {
        let (s, mut r) = deploying();
        record_step(s, &mut r, 0, StepStatus::Failed, "pods crash", "e", at(2)).expect("recorded");
        let s = authorize_rollback(s, &mut r, "rm", "step 1 failed", at(2)).expect("authorized");
        record_step(
            s,
            &mut r,
            3,
            StepStatus::Failed,
            "helm rollback failed",
            "e",
            at(3),
        )
        .expect("recorded");
        assert_eq!(finish(s, &mut r, at(4)), Ok(Outcome::Failed));
        assert_eq!(r.rollback.expect("rollback").finished_at, Some(at(4)));
    }

    #[test]
    fn a_failure_without_rollback_finishes_as_failed_and_counts_validation_failures() {
        let (s, mut r) = deploying();
        record_step(s, &mut r, 0, StepStatus::Done, "ok", "e", at(2)).expect("as set up");
        record_step(s, &mut r, 1, StepStatus::Done, "ok", "e", at(2)).expect("as set up");
        record_step(s, &mut r, 2, StepStatus::Failed, "500s", "e", at(2)).expect("as set up");
        assert_eq!(validation_failures(&r.runbook), 1);
        assert_eq!(finish(s, &mut r, at(3)), Ok(Outcome::Failed));
    }

    #[test]
    fn only_overridable_conflicts_are_overridden() {
        let conflicts = vec![
            Conflict {
                key: "clash:a:CHG-1:db".into(),
                tenant: "a".into(),
                message: "m".into(),
                overridable: true,
            },
            Conflict {
                key: "window:a".into(),
                tenant: "a".into(),
                message: "m".into(),
                overridable: false,
            },
        ];
        let mut r = Record::default();
        assert_eq!(standing(&conflicts, &r).len(), 2);
        for key in ["clash:a:CHG-1:db", "window:a"] {
            r.overrides.push(Override {
                conflict: key.into(),
                by: "cm".into(),
                at: at(1),
                reason: "agreed".into(),
            });
        }
        let left: Vec<&str> = standing(&conflicts, &r)
            .iter()
            .map(|c| c.key.as_str())
            .collect();
        assert_eq!(left, ["window:a"]);
    }

    #[test]
    fn planned_steps_are_pending_and_titled() {
        assert!(plan_runbook(&planned().runbook).is_ok());
        let mut bad = planned().runbook;
        bad[1].title = " ".into();
        assert_eq!(
            plan_runbook(&bad).expect_err("refused").field,
            "runbook[1].title"
        );
        let mut done = planned().runbook;
        done[0].status = StepStatus::Done;
        assert!(plan_runbook(&done).is_err());
    }

    #[test]
    fn a_replanned_release_is_authorized_again_and_loses_the_old_slots_overrides() {
        let mut r = planned();
        let mut s = ReleaseState::Planning;
        for p in [Phase::Plan, Phase::BuildAndTest] {
            s = authorize(s, &mut r, p, "rm@msp.example", "", at(1)).expect("as set up");
        }
        r.overrides.push(Override {
            conflict: "blackout:a:year-end".into(),
            by: "cm@msp.example".into(),
            at: at(1),
            reason: "agreed".into(),
        });
        r.scheduled_start = Some(r.authorizations[0].clone());
        // The runbook changed, the slot did not: overrides kept.
        let mut kept = r.clone();
        let (state, done) = replan(s, &mut kept, false).expect("replanned");
        assert_eq!(state, ReleaseState::Planning);
        assert!(done.reopened && done.start_unscheduled);
        assert_eq!((done.overrides_dropped, kept.overrides.len()), (0, 1));
        assert_eq!(kept.authorizations.len(), 2, "history kept");
        // The slot moved: the overrides go too.
        let (_, done) = replan(s, &mut r, true).expect("replanned");
        assert_eq!((done.overrides_dropped, r.overrides.len()), (1, 0));
        // Still planning: nothing reopened.
        let (_, done) = replan(ReleaseState::Planning, &mut planned(), true).expect("replanned");
        assert!(!done.reopened && !done.start_unscheduled);
        // Deploying: not edited.
        let (d, mut rec) = deploying();
        assert!(replan(d, &mut rec, false).is_err());
    }
}
