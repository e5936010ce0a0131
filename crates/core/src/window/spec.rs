//! A window as the domain states it: the tenants it covers, whether it opens
//! a period for changes or freezes them, its zone, schedule and exclusions.
//! Plain serde data; [`super::CompiledWindow::compile`] checks the rest.

use super::duration;
use crate::change::ChangeType;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// When changes may happen (`maintenance`) or are frozen (`blackout`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WindowSpec {
    /// Tenants the window applies to; empty means every tenant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
    #[serde(default)]
    pub kind: WindowKind,
    /// IANA zone the schedule and exclusion dates are read in, e.g. `Europe/Berlin`.
    #[serde(default = "utc")]
    pub time_zone: String,
    pub schedule: Schedule,
    /// Whole local days or ranges cut out of the schedule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclusions: Vec<Exclusion>,
    /// Blackout only: change types still allowed while it is open.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_types: Vec<ChangeType>,
}

fn utc() -> String {
    "UTC".into()
}

/// A maintenance window opens a period in which changes may deploy; a
/// blackout freezes changes (except its `allowTypes`) while it is open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum WindowKind {
    #[default]
    Maintenance,
    Blackout,
}

/// When a window is open. Recurrences are evaluated on wall-clock time in
/// the window's zone; [`super::schedule`] documents daylight saving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub enum Schedule {
    /// Starts from a five-field cron expression, e.g. `0 2 * * SAT`.
    Cron {
        expr: String,
        /// How long each window stays open (wall-clock), e.g. `4h`.
        #[serde(with = "duration::as_text")]
        duration: TimeDelta,
    },
    /// Starts from an RFC 5545 recurrence rule, e.g.
    /// `FREQ=MONTHLY;BYDAY=2TU;BYHOUR=22;BYMINUTE=0`; an optional
    /// `DTSTART:...` line before an `RRULE:` line anchors INTERVAL counting.
    Rrule {
        rule: String,
        #[serde(with = "duration::as_text")]
        duration: TimeDelta,
    },
    /// Explicit windows.
    Ranges(Vec<Interval>),
}

/// What an exclusion cuts out of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Exclusion {
    /// A calendar date in the window's zone, excluded as a whole.
    Date(NaiveDate),
    Range(Interval),
}

/// A half-open time interval `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interval {
    /// Inclusive.
    pub start: DateTime<Utc>,
    /// Exclusive.
    pub end: DateTime<Utc>,
}

impl Interval {
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::fixtures::{at, from_yaml as parse, interval};

    #[test]
    fn a_spec_reads_from_its_documented_form() {
        let spec = parse(
            r#"
tenants: [client-a]
kind: blackout
timeZone: Europe/Berlin
schedule: {cron: {expr: "0 2 * * SAT", duration: 1h30m}}
exclusions:
- date: "2026-12-26"
- range: {start: "2026-12-31T00:00:00Z", end: "2027-01-01T00:00:00Z"}
allowTypes: [emergency]
"#,
        )
        .expect("parses");
        assert_eq!(
            spec,
            WindowSpec {
                tenants: vec!["client-a".into()],
                kind: WindowKind::Blackout,
                time_zone: "Europe/Berlin".into(),
                schedule: Schedule::Cron {
                    expr: "0 2 * * SAT".into(),
                    duration: TimeDelta::minutes(90),
                },
                exclusions: vec![
                    Exclusion::Date(NaiveDate::from_ymd_opt(2026, 12, 26).expect("a date")),
                    Exclusion::Range(interval("2026-12-31T00:00:00Z", "2027-01-01T00:00:00Z")),
                ],
                allow_types: vec![ChangeType::Emergency],
            }
        );
        let written = serde_json::to_value(&spec).expect("serializes");
        assert_eq!(written["schedule"]["cron"]["duration"], "1h30m");
        assert_eq!(
            serde_json::from_value::<WindowSpec>(written).expect("reads back"),
            spec
        );
    }

    #[test]
    fn an_omitted_kind_and_zone_mean_a_maintenance_window_in_utc() {
        let spec = parse(r#"{schedule: {ranges: [{start: "2026-01-01T00:00:00Z", end: "2026-01-02T00:00:00Z"}]}}"#)
            .expect("parses");
        assert_eq!(spec.kind, WindowKind::Maintenance);
        assert_eq!(spec.time_zone, "UTC");
        assert_eq!(
            spec.schedule,
            Schedule::Ranges(vec![Interval {
                start: at("2026-01-01T00:00:00Z"),
                end: at("2026-01-02T00:00:00Z"),
            }])
        );
    }

    #[test]
    fn a_spec_holds_exactly_one_schedule() {
        let two = r#"{schedule: {cron: {expr: "0 2 * * SAT", duration: 1h}, ranges: []}}"#;
        assert!(parse(two).is_err());
        let none = r#"{schedule: {}}"#;
        assert!(parse(none).is_err());
    }

    #[test]
    fn misspelt_fields_and_bad_durations_are_refused() {
        assert!(parse(r#"{timezone: UTC, schedule: {ranges: []}}"#).is_err());
        assert!(
            parse(r#"{schedule: {cron: {expr: "0 2 * * SAT", duration: 1h, extra: 1}}}"#).is_err()
        );
        let err = parse(r#"{schedule: {cron: {expr: "0 2 * * SAT", duration: 4d}}}"#)
            .expect_err("days are not a unit");
        assert!(err.to_string().contains("invalid duration \"4d\""), "{err}");
    }
}
