//! The CRDs' CEL rules, evaluated client-side with kube's CEL
//! implementation: every single-object rule accepts a good value and
//! refuses a bad one with its message.

use super::*;
use serde_json::{Value, json};

fn refused(result: Result<(), kube::core::cel::ValidationErrors>, message: &str) {
    let errors = result.expect_err("must be refused");
    let text = format!("{errors:?}");
    assert!(text.contains(message), "expected {message:?} in {text}");
}

fn accepted(result: Result<(), kube::core::cel::ValidationErrors>) {
    if let Err(e) = result {
        panic!("must be accepted: {e:?}");
    }
}

#[test]
fn a_schedule_sets_exactly_one_kind_and_a_duration_with_recurrences() {
    accepted(Schedule::validate_cel(
        &json!({"cron": "0 2 * * SAT", "duration": "4h"}),
        None,
    ));
    accepted(Schedule::validate_cel(
        &json!({"ranges": [{"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z"}]}),
        None,
    ));
    refused(
        Schedule::validate_cel(
            &json!({"cron": "0 2 * * SAT", "rrule": "FREQ=DAILY", "duration": "4h"}),
            None,
        ),
        "set exactly one of schedule.cron, schedule.rrule or schedule.ranges",
    );
    refused(
        Schedule::validate_cel(&json!({"rrule": "FREQ=DAILY"}), None),
        "schedule.duration is required",
    );
    refused(
        Schedule::validate_cel(
            &json!({"ranges": [{"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z"}], "duration": "1h"}),
            None,
        ),
        "schedule.duration does not apply to schedule.ranges",
    );
}

#[test]
fn ranges_and_exclusions_end_after_they_start() {
    accepted(TimeRange::validate_cel(
        &json!({"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z"}),
        None,
    ));
    refused(
        TimeRange::validate_cel(
            &json!({"start": "2026-12-02T00:00:00Z", "end": "2026-12-01T00:00:00Z"}),
            None,
        ),
        "end must be after start",
    );
    accepted(Exclusion::validate_cel(
        &json!({"date": "2026-12-26"}),
        None,
    ));
    refused(
        Exclusion::validate_cel(
            &json!({"date": "2026-12-26", "start": "2026-12-01T00:00:00Z"}),
            None,
        ),
        "either a date or a start/end range",
    );
    refused(
        Exclusion::validate_cel(&json!({"start": "2026-12-01T00:00:00Z"}), None),
        "needs both start and end",
    );
}

#[test]
fn allow_types_belong_to_blackouts() {
    let spec = |t: &str| json!({"type": t, "timeZone": "UTC", "schedule": {"cron": "0 2 * * SAT", "duration": "1h"}, "allowTypes": ["Emergency"]});
    accepted(MaintenanceWindowSpec::validate_cel(&spec("Blackout"), None));
    refused(
        MaintenanceWindowSpec::validate_cel(&spec("Maintenance"), None),
        "only meaningful for a Blackout window",
    );
}

#[test]
fn a_standard_change_names_its_catalogue_entry_and_only_it_does() {
    let spec = |t: &str, catalogue: Option<&str>| {
        let mut v =
            json!({"type": t, "title": "t", "targets": [{"kind": "Deployment", "name": "web"}]});
        if let Some(c) = catalogue {
            v["standardChange"] = Value::from(c);
        }
        v
    };
    accepted(ChangeRequestSpec::validate_cel(
        &spec("Standard", Some("image-bump")),
        None,
    ));
    accepted(ChangeRequestSpec::validate_cel(&spec("Normal", None), None));
    refused(
        ChangeRequestSpec::validate_cel(&spec("Standard", None), None),
        "spec.standardChange is required when spec.type is Standard",
    );
    refused(
        ChangeRequestSpec::validate_cel(&spec("Normal", Some("image-bump")), None),
        "only allowed when spec.type is Standard",
    );
}

#[test]
fn a_target_names_a_workload_or_selects_some() {
    accepted(Target::validate_cel(
        &json!({"kind": "Deployment", "name": "web"}),
        None,
    ));
    accepted(Target::validate_cel(
        &json!({"kind": "Deployment", "selector": {"matchLabels": {"app": "web"}}}),
        None,
    ));
    refused(
        Target::validate_cel(
            &json!({"kind": "Deployment", "name": "web", "selector": {"matchLabels": {"app": "web"}}}),
            None,
        ),
        "exactly one of name or selector",
    );
    refused(
        Target::validate_cel(&json!({"kind": "Deployment"}), None),
        "exactly one of name or selector",
    );
}

#[test]
fn a_change_schedule_ends_after_it_starts() {
    accepted(ChangeSchedule::validate_cel(
        &json!({"notBefore": "2026-12-01T00:00:00Z", "notAfter": "2026-12-02T00:00:00Z"}),
        None,
    ));
    accepted(ChangeSchedule::validate_cel(
        &json!({"notBefore": "2026-12-01T00:00:00Z"}),
        None,
    ));
    refused(
        ChangeSchedule::validate_cel(
            &json!({"notBefore": "2026-12-02T00:00:00Z", "notAfter": "2026-12-01T00:00:00Z"}),
            None,
        ),
        "schedule.notAfter must be after schedule.notBefore",
    );
}

#[test]
fn an_apply_step_sets_an_image_or_a_patch() {
    let target = json!({"kind": "Deployment", "name": "web"});
    accepted(ApplyStep::validate_cel(
        &json!({"target": target, "image": {"container": "app", "image": "x:2"}}),
        None,
    ));
    accepted(ApplyStep::validate_cel(
        &json!({"target": target, "patch": {"spec": {"replicas": 2}}}),
        None,
    ));
    refused(
        ApplyStep::validate_cel(&json!({"target": target}), None),
        "exactly one of image or patch",
    );
}
