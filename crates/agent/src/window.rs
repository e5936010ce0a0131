//! The window engine is changegate-core's ([`changegate_core::window`]);
//! this module reads a MaintenanceWindow's spec into the core's
//! [`WindowSpec`], refusing the shapes the CRD schema also refuses.

pub use changegate_core::window::*;

use crate::api::{self, MaintenanceWindowSpec};
use chrono::TimeDelta;

/// Compiles the MaintenanceWindow `name`: its spec read into the core's
/// terms, then checked by the engine.
///
/// # Errors
///
/// A [`WindowError`] naming the field: the spec's shape (one schedule,
/// a duration only with a recurrence, an exclusion that is a date or a
/// range), or anything [`CompiledWindow::compile`] refuses.
pub fn compile(name: &str, spec: &MaintenanceWindowSpec) -> Result<CompiledWindow, WindowError> {
    CompiledWindow::compile(name, &WindowSpec::try_from(spec)?)
}

impl TryFrom<&MaintenanceWindowSpec> for WindowSpec {
    type Error = WindowError;

    fn try_from(spec: &MaintenanceWindowSpec) -> Result<Self, WindowError> {
        Ok(WindowSpec {
            tenants: spec.tenants.clone(),
            kind: spec.window_type.into(),
            time_zone: spec.time_zone.clone(),
            schedule: Schedule::try_from(&spec.schedule)?,
            exclusions: spec
                .exclusions
                .iter()
                .enumerate()
                .map(|(index, exclusion)| read_exclusion(index, exclusion))
                .collect::<Result<_, _>>()?,
            allow_types: spec.allow_types.iter().map(|&t| t.into()).collect(),
        })
    }
}

impl From<api::WindowType> for WindowKind {
    fn from(window_type: api::WindowType) -> Self {
        match window_type {
            api::WindowType::Maintenance => WindowKind::Maintenance,
            api::WindowType::Blackout => WindowKind::Blackout,
        }
    }
}

impl TryFrom<&api::Schedule> for Schedule {
    type Error = WindowError;

    fn try_from(schedule: &api::Schedule) -> Result<Self, WindowError> {
        let invalid_duration = |reason: &str| WindowError::InvalidDuration {
            reason: reason.into(),
        };
        let duration = || {
            schedule.duration.map(signed_span).ok_or_else(|| {
                invalid_duration("is required with schedule.cron and schedule.rrule, e.g. 4h")
            })
        };
        match (&schedule.cron, &schedule.rrule, &schedule.ranges) {
            (Some(expr), None, None) => Ok(Schedule::Cron {
                expr: expr.clone(),
                duration: duration()?,
            }),
            (None, Some(rule), None) => Ok(Schedule::Rrule {
                rule: rule.clone(),
                duration: duration()?,
            }),
            (None, None, Some(_)) if schedule.duration.is_some() => Err(invalid_duration(
                "does not apply to schedule.ranges; remove it",
            )),
            (None, None, Some(ranges)) => Ok(Schedule::Ranges(
                ranges
                    .iter()
                    .map(|r| Interval {
                        start: r.start,
                        end: r.end,
                    })
                    .collect(),
            )),
            _ => {
                let found: Vec<&str> = [
                    ("cron", schedule.cron.is_some()),
                    ("rrule", schedule.rrule.is_some()),
                    ("ranges", schedule.ranges.is_some()),
                ]
                .into_iter()
                .filter_map(|(name, set)| set.then_some(name))
                .collect();
                Err(WindowError::ScheduleShape {
                    found: if found.is_empty() {
                        "none".into()
                    } else {
                        found.join(" and ")
                    },
                })
            }
        }
    }
}

/// A Kubernetes duration, sign kept so that the engine refuses a negative
/// one in its own words; one beyond chrono's range (millions of years)
/// saturates, and the engine refuses it as longer than a year.
fn signed_span(duration: kube::core::Duration) -> TimeDelta {
    let span = TimeDelta::from_std(duration.into()).unwrap_or(TimeDelta::MAX);
    if duration.is_negative() { -span } else { span }
}

fn read_exclusion(index: usize, exclusion: &api::Exclusion) -> Result<Exclusion, WindowError> {
    let invalid = |reason: &str| WindowError::InvalidExclusion {
        index,
        reason: reason.into(),
    };
    match (exclusion.date, exclusion.start, exclusion.end) {
        (Some(date), None, None) => Ok(Exclusion::Date(date)),
        (None, Some(start), Some(end)) => Ok(Exclusion::Range(Interval { start, end })),
        (None, Some(_), None) | (None, None, Some(_)) => {
            Err(invalid("an exclusion range needs both start and end"))
        }
        (None, None, None) => Err(invalid(
            "is empty; set date (a whole local day) or start and end",
        )),
        (Some(_), _, _) => Err(invalid(
            "set either date (a whole local day) or start and end, not both",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use changegate_core::change::ChangeType;
    use chrono::{DateTime, NaiveDate, Utc};

    fn spec(yaml: &str) -> MaintenanceWindowSpec {
        serde_yaml_ng::from_str(yaml).expect("a MaintenanceWindow spec")
    }

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("an RFC 3339 test instant")
            .to_utc()
    }

    fn compile_error(yaml: &str) -> String {
        compile("invalid", &spec(yaml))
            .expect_err("the spec is rejected")
            .to_string()
    }

    #[test]
    fn a_maintenance_window_reads_as_the_same_core_window() {
        let read = WindowSpec::try_from(&spec(
            r#"
tenants: [client-a]
timeZone: Europe/Berlin
schedule: {cron: "0 2 * * SAT", duration: 1h30m}
exclusions:
- date: "2026-12-26"
- {start: "2026-12-31T00:00:00Z", end: "2027-01-01T00:00:00Z"}
"#,
        ))
        .expect("converts");
        assert_eq!(
            read,
            WindowSpec {
                tenants: vec!["client-a".into()],
                kind: WindowKind::Maintenance,
                time_zone: "Europe/Berlin".into(),
                schedule: Schedule::Cron {
                    expr: "0 2 * * SAT".into(),
                    duration: TimeDelta::minutes(90),
                },
                exclusions: vec![
                    Exclusion::Date(NaiveDate::from_ymd_opt(2026, 12, 26).expect("a date")),
                    Exclusion::Range(Interval {
                        start: at("2026-12-31T00:00:00Z"),
                        end: at("2027-01-01T00:00:00Z"),
                    }),
                ],
                allow_types: vec![],
            }
        );
    }

    #[test]
    fn a_blackout_keeps_its_ranges_and_allowed_types() {
        let read = WindowSpec::try_from(&spec(
            r#"
type: Blackout
schedule:
  ranges: [{start: "2026-12-20T00:00:00+01:00", end: "2027-01-04T00:00:00+01:00"}]
allowTypes: [Emergency, Standard]
"#,
        ))
        .expect("converts");
        assert_eq!(read.kind, WindowKind::Blackout);
        assert_eq!(read.time_zone, "UTC");
        assert_eq!(
            read.allow_types,
            vec![ChangeType::Emergency, ChangeType::Standard]
        );
        assert_eq!(
            read.schedule,
            Schedule::Ranges(vec![Interval {
                start: at("2026-12-19T23:00:00Z"),
                end: at("2027-01-03T23:00:00Z"),
            }])
        );
        let rule = WindowSpec::try_from(&spec(
            r#"{schedule: {rrule: "FREQ=MONTHLY;BYDAY=2TU;BYHOUR=22", duration: 4h}}"#,
        ))
        .expect("converts");
        assert_eq!(
            rule.schedule,
            Schedule::Rrule {
                rule: "FREQ=MONTHLY;BYDAY=2TU;BYHOUR=22".into(),
                duration: TimeDelta::hours(4),
            }
        );
    }

    #[test]
    fn durations_read_as_kubernetes_reads_them() {
        for text in [
            "4h",
            "90m",
            "1h30m",
            "1.5h",
            "45s",
            "2h0m30.25s",
            "300ms",
            "12us",
        ] {
            let kube: kube::core::Duration = text.parse().expect("a Kubernetes duration");
            assert_eq!(Ok(signed_span(kube)), parse_duration(text), "{text}");
        }
        let negative: kube::core::Duration = "-5m".parse().expect("a Kubernetes duration");
        assert_eq!(signed_span(negative), TimeDelta::minutes(-5));
    }

    #[test]
    fn two_schedules_are_an_error() {
        assert_eq!(
            compile_error(
                r#"{timeZone: UTC, schedule: {cron: "0 2 * * SAT", rrule: "FREQ=DAILY", duration: 1h}}"#
            ),
            "spec.schedule: set exactly one of schedule.cron, schedule.rrule or schedule.ranges \
             (found cron and rrule)"
        );
        assert!(
            compile_error(r#"{timeZone: UTC, schedule: {}}"#).ends_with("(found none)"),
            "no schedule at all"
        );
    }

    #[test]
    fn missing_duration_is_an_error() {
        let err = compile_error(r#"{timeZone: UTC, schedule: {cron: "0 2 * * SAT"}}"#);
        assert!(
            err.starts_with("spec.schedule.duration: is required with schedule.cron"),
            "{err}"
        );
    }

    #[test]
    fn negative_duration_is_an_error() {
        assert_eq!(
            compile_error(r#"{timeZone: UTC, schedule: {cron: "0 2 * * SAT", duration: -1h}}"#),
            "spec.schedule.duration: must be greater than zero"
        );
    }

    #[test]
    fn a_duration_with_ranges_is_an_error() {
        let err = compile_error(
            r#"
timeZone: UTC
schedule:
  ranges: [{start: "2026-01-01T00:00:00Z", end: "2026-01-02T00:00:00Z"}]
  duration: 1h
"#,
        );
        assert_eq!(
            err,
            "spec.schedule.duration: does not apply to schedule.ranges; remove it"
        );
    }

    #[test]
    fn a_bad_exclusion_is_an_error_naming_its_index() {
        let err = compile_error(
            r#"
timeZone: UTC
schedule: {cron: "0 2 * * SAT", duration: 1h}
exclusions:
- {start: "2026-01-02T00:00:00Z", end: "2026-01-01T00:00:00Z"}
"#,
        );
        assert!(
            err.starts_with("spec.exclusions[0]: end 2026-01-01T00:00:00Z is not after start"),
            "{err}"
        );
        for (exclusion, reason) in [
            (
                r#"{date: "2026-01-02", start: "2026-01-02T00:00:00Z", end: "2026-01-03T00:00:00Z"}"#,
                "set either date (a whole local day) or start and end, not both",
            ),
            (
                r#"{start: "2026-01-02T00:00:00Z"}"#,
                "an exclusion range needs both start and end",
            ),
            (
                "{}",
                "is empty; set date (a whole local day) or start and end",
            ),
        ] {
            let yaml = format!(
                "{{timeZone: UTC, schedule: {{cron: \"0 2 * * SAT\", duration: 1h}}, \
                 exclusions: [{{date: \"2026-01-01\"}}, {exclusion}]}}"
            );
            assert_eq!(
                compile_error(&yaml),
                format!("spec.exclusions[1]: {reason}")
            );
        }
    }

    #[test]
    fn allow_types_on_a_maintenance_window_is_an_error() {
        let err = compile(
            "invalid",
            &spec(r#"{schedule: {cron: "0 2 * * SAT", duration: 1h}, allowTypes: [Emergency]}"#),
        )
        .expect_err("refused");
        assert_eq!(err.field(), "spec.allowTypes");
    }
}
