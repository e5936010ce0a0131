//! Why a window spec cannot be compiled. Every message names the field and
//! the offending value, and says what to do about it, because it ends up
//! verbatim in an admission denial, a status condition or a form error.
//! Field paths are the MaintenanceWindow's (`spec.schedule.cron`), which
//! the agent reports as they are.

use super::duration::format_duration;
use chrono::TimeDelta;
use thiserror::Error;

/// A window spec that its schema accepted but the engine cannot use.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WindowError {
    #[error("spec.timeZone: unknown time zone {value:?} ({hint})")]
    UnknownTimeZone { value: String, hint: String },

    #[error(
        "spec.schedule: set exactly one of schedule.cron, schedule.rrule or schedule.ranges (found {found})"
    )]
    ScheduleShape { found: String },

    #[error(
        "spec.schedule.cron: invalid cron expression {value:?}: {reason} (five fields: minute hour day-of-month month day-of-week, e.g. \"0 2 * * SAT\")"
    )]
    InvalidCron { value: String, reason: String },

    #[error("spec.schedule.rrule: invalid recurrence rule {value:?}: {reason}")]
    InvalidRRule { value: String, reason: String },

    #[error("spec.schedule.duration: {reason}")]
    InvalidDuration { reason: String },

    #[error(
        "spec.schedule.duration: {} exceeds the shortest interval between window starts ({}); set it to at most {} or space the starts further apart",
        format_span(*.duration), format_span(*.gap), format_duration(*.gap)
    )]
    DurationExceedsInterval { duration: TimeDelta, gap: TimeDelta },

    #[error("spec.schedule.ranges: list at least one {{start, end}} range")]
    NoRanges,

    #[error(
        "spec.schedule.ranges[{index}]: end {end} is not after start {start}; swap them or fix the end"
    )]
    EmptyRange {
        index: usize,
        start: String,
        end: String,
    },

    #[error("spec.exclusions[{index}]: {reason}")]
    InvalidExclusion { index: usize, reason: String },

    #[error(
        "spec.allowTypes: only a Blackout window can allow change types; remove allowTypes or set type: Blackout"
    )]
    AllowTypesOnMaintenance,
}

impl WindowError {
    /// The field path the error is about, e.g. `spec.schedule.ranges[1]`, for
    /// admission responses that report causes per field.
    pub fn field(&self) -> String {
        match self {
            Self::UnknownTimeZone { .. } => "spec.timeZone".into(),
            Self::ScheduleShape { .. } => "spec.schedule".into(),
            Self::InvalidCron { .. } => "spec.schedule.cron".into(),
            Self::InvalidRRule { .. } => "spec.schedule.rrule".into(),
            Self::InvalidDuration { .. } | Self::DurationExceedsInterval { .. } => {
                "spec.schedule.duration".into()
            }
            Self::NoRanges => "spec.schedule.ranges".into(),
            Self::EmptyRange { index, .. } => format!("spec.schedule.ranges[{index}]"),
            Self::InvalidExclusion { index, .. } => format!("spec.exclusions[{index}]"),
            Self::AllowTypesOnMaintenance => "spec.allowTypes".into(),
        }
    }
}

/// A span for people: `8d`, `1d2h`, `4h30m`, `45s`.
pub(crate) fn format_span(span: TimeDelta) -> String {
    let total = span.num_seconds().max(0);
    let units = [
        (total / 86_400, "d"),
        (total % 86_400 / 3_600, "h"),
        (total % 3_600 / 60, "m"),
        (total % 60, "s"),
    ];
    let text: String = units
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if text.is_empty() { "0s".into() } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_in_days_hours_minutes_and_seconds() {
        assert_eq!(format_span(TimeDelta::days(8)), "8d");
        assert_eq!(format_span(TimeDelta::hours(26)), "1d2h");
        assert_eq!(format_span(TimeDelta::minutes(270)), "4h30m");
        assert_eq!(format_span(TimeDelta::seconds(45)), "45s");
        assert_eq!(format_span(TimeDelta::zero()), "0s");
    }

    #[test]
    fn suggested_durations_use_the_syntax_the_spec_accepts() {
        assert_eq!(format_duration(TimeDelta::days(1)), "24h");
        assert_eq!(format_duration(TimeDelta::minutes(90)), "1h30m");
        assert_eq!(format_duration(TimeDelta::seconds(45)), "45s");
    }

    #[test]
    fn a_duration_error_names_both_spans_and_the_fix() {
        let err = WindowError::DurationExceedsInterval {
            duration: TimeDelta::days(8),
            gap: TimeDelta::days(1),
        };
        assert_eq!(
            err.to_string(),
            "spec.schedule.duration: 8d exceeds the shortest interval between window starts (1d); \
             set it to at most 24h or space the starts further apart"
        );
        assert_eq!(err.field(), "spec.schedule.duration");
    }
}
