//! Window starts from a five-field cron expression, evaluated on naive
//! wall-clock time so that croner never sees a daylight-saving change (the
//! schedule maps wall-clock starts to instants afterwards).

use super::error::WindowError;
use chrono::NaiveDateTime;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A parsed cron expression: minute hour day-of-month month day-of-week.
#[derive(Debug, Clone)]
pub(crate) struct CronStarts {
    cron: Cron,
}

impl CronStarts {
    /// Parses a standard five-field expression (croner's extensions `L`, `W`,
    /// `#` and `+` and the `@daily`-style nicknames included). Six- and
    /// seven-field forms are refused: windows are minute-granular, and a
    /// leading seconds field would silently shift every other field.
    pub(crate) fn parse(expr: &str) -> Result<Self, WindowError> {
        let invalid = |reason: String| WindowError::InvalidCron {
            value: expr.to_owned(),
            reason,
        };
        let fields = expr.split_whitespace().count();
        if !expr.trim_start().starts_with('@') && fields != 5 {
            return Err(invalid(format!(
                "expected 5 fields, found {fields}; seconds and years are not supported"
            )));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(expr)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Self { cron })
    }

    /// The first start at or after `from`, if the expression matches again
    /// before croner's search limit (year 5000).
    pub(crate) fn first_from(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        self.cron.find_next_occurrence(&from, true).ok()
    }

    /// Starts from `from` on, in order.
    pub(crate) fn starts_from(
        &self,
        from: NaiveDateTime,
    ) -> impl Iterator<Item = NaiveDateTime> + '_ {
        std::iter::successors(self.first_from(from), |prev| {
            self.cron.find_next_occurrence(prev, false).ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::fixtures::local;

    #[test]
    fn starts_are_wall_clock_matches_in_order() {
        let cron = CronStarts::parse("0 2 * * SAT").expect("valid");
        let starts: Vec<_> = cron
            .starts_from(local("2026-11-27 00:00"))
            .take(2)
            .collect();
        assert_eq!(
            starts,
            vec![local("2026-11-28 02:00"), local("2026-12-05 02:00")]
        );
    }

    #[test]
    fn the_first_start_may_be_the_given_time_itself() {
        let cron = CronStarts::parse("0 2 * * *").expect("valid");
        assert_eq!(
            cron.first_from(local("2026-01-01 02:00")),
            Some(local("2026-01-01 02:00"))
        );
    }

    #[test]
    fn nicknames_are_accepted() {
        let cron = CronStarts::parse("@daily").expect("valid");
        assert_eq!(
            cron.first_from(local("2026-01-01 00:01")),
            Some(local("2026-01-02 00:00"))
        );
    }

    #[test]
    fn six_fields_are_refused_with_the_reason() {
        let err = CronStarts::parse("0 0 2 * * SAT").expect_err("six fields");
        assert!(
            err.to_string().contains("expected 5 fields, found 6"),
            "{err}"
        );
    }

    #[test]
    fn an_hour_out_of_range_is_refused() {
        let err = CronStarts::parse("0 25 * * *").expect_err("hour 25");
        assert!(
            err.to_string()
                .starts_with("spec.schedule.cron: invalid cron expression \"0 25 * * *\": "),
            "{err}"
        );
    }
}
