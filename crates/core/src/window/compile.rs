//! Turning a [`WindowSpec`] into the engine's parts, checking all its
//! types cannot: the IANA zone, cron and rrule syntax, durations against
//! the recurrence, ranges and exclusions.

use super::cron_starts::CronStarts;
use super::error::WindowError;
use super::intervals::coalesce;
use super::local_time::local_day;
use super::recurrence::{DOMAIN_START, Recurrence};
use super::rrule_starts::RuleStarts;
use super::spec::{Exclusion, Interval, Schedule, WindowKind, WindowSpec};
use chrono::{SecondsFormat, TimeDelta};
use chrono_tz::Tz;

/// Longer windows are explicit ranges, not recurrences.
const MAX_DURATION: TimeDelta = TimeDelta::days(366);

/// Where a window's intervals come from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// Explicit ranges, sorted, overlapping ones merged.
    Ranges(Vec<Interval>),
    /// Wall-clock starts, each open for `duration` of wall-clock time.
    Recurring {
        starts: Box<Recurrence>,
        duration: TimeDelta,
    },
}

/// A spec's parts, validated.
#[derive(Debug, Clone)]
pub(crate) struct Parts {
    pub(crate) time_zone: Tz,
    pub(crate) source: Source,
    /// Excluded instants, coalesced.
    pub(crate) exclusions: Vec<Interval>,
}

pub(crate) fn compile(spec: &WindowSpec) -> Result<Parts, WindowError> {
    if spec.kind == WindowKind::Maintenance && !spec.allow_types.is_empty() {
        return Err(WindowError::AllowTypesOnMaintenance);
    }
    let time_zone = parse_time_zone(&spec.time_zone)?;
    let source = compile_schedule(&spec.schedule, time_zone)?;
    let exclusions = compile_exclusions(&spec.exclusions, time_zone)?;
    Ok(Parts {
        time_zone,
        source,
        exclusions,
    })
}

fn parse_time_zone(name: &str) -> Result<Tz, WindowError> {
    if let Ok(tz) = name.parse::<Tz>() {
        return Ok(tz);
    }
    let hint = match closest_zone(name) {
        Some(zone) => format!("did you mean {zone}?"),
        None => "use an IANA name such as Europe/Berlin".into(),
    };
    Err(WindowError::UnknownTimeZone {
        value: name.to_owned(),
        hint,
    })
}

/// The IANA name a typo most likely meant: same letters in another case, or
/// at most two edits away.
fn closest_zone(name: &str) -> Option<&'static str> {
    let wanted = name.trim().to_ascii_lowercase();
    chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| {
            (
                edit_distance(&wanted, &tz.name().to_ascii_lowercase()),
                tz.name(),
            )
        })
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, zone)| zone)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

fn compile_schedule(schedule: &Schedule, tz: Tz) -> Result<Source, WindowError> {
    let (starts, duration, text) = match schedule {
        Schedule::Cron { expr, duration } => {
            (Recurrence::Cron(CronStarts::parse(expr)?), duration, expr)
        }
        Schedule::Rrule { rule, duration } => (
            Recurrence::Rule(RuleStarts::parse(rule, tz)?),
            duration,
            rule,
        ),
        Schedule::Ranges(ranges) => return compile_ranges(ranges),
    };
    let duration = check_duration(*duration)?;
    if starts
        .first_from(starts.scan_start().max(DOMAIN_START))
        .is_none()
    {
        return Err(never_starts(&starts, text));
    }
    if let Some(gap) = starts.shortest_gap().filter(|gap| duration > *gap) {
        return Err(WindowError::DurationExceedsInterval { duration, gap });
    }
    Ok(Source::Recurring {
        starts: Box::new(starts),
        duration,
    })
}

fn never_starts(starts: &Recurrence, text: &str) -> WindowError {
    match starts {
        Recurrence::Cron(_) => WindowError::InvalidCron {
            value: text.to_owned(),
            reason: "it never matches a date; check the day of month against the month".into(),
        },
        Recurrence::Rule(_) => WindowError::InvalidRRule {
            value: text.to_owned(),
            reason: "it produces no window starts; check DTSTART, UNTIL, COUNT and the BY parts"
                .into(),
        },
    }
}

fn check_duration(span: TimeDelta) -> Result<TimeDelta, WindowError> {
    let invalid = |reason: &str| WindowError::InvalidDuration {
        reason: reason.into(),
    };
    if span <= TimeDelta::zero() {
        return Err(invalid("must be greater than zero"));
    }
    if span > MAX_DURATION {
        return Err(invalid(
            "is longer than 366 days; use schedule.ranges for periods over a year",
        ));
    }
    Ok(span)
}

fn compile_ranges(ranges: &[Interval]) -> Result<Source, WindowError> {
    if ranges.is_empty() {
        return Err(WindowError::NoRanges);
    }
    for (index, range) in ranges.iter().enumerate() {
        if range.end <= range.start {
            return Err(WindowError::EmptyRange {
                index,
                start: rfc3339(range.start),
                end: rfc3339(range.end),
            });
        }
    }
    Ok(Source::Ranges(coalesce(ranges.to_vec())))
}

fn compile_exclusions(exclusions: &[Exclusion], tz: Tz) -> Result<Vec<Interval>, WindowError> {
    let mut cuts = Vec::with_capacity(exclusions.len());
    for (index, exclusion) in exclusions.iter().enumerate() {
        let cut = match *exclusion {
            Exclusion::Date(date) => local_day(tz, date),
            Exclusion::Range(range) if range.end > range.start => range,
            Exclusion::Range(range) => {
                return Err(WindowError::InvalidExclusion {
                    index,
                    reason: format!(
                        "end {} is not after start {}; swap them or fix the end",
                        rfc3339(range.end),
                        rfc3339(range.start)
                    ),
                });
            }
        };
        cuts.push(cut);
    }
    Ok(coalesce(cuts))
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_zone_name_is_suggested() {
        assert_eq!(closest_zone("Europe/Berln"), Some("Europe/Berlin"));
        assert_eq!(closest_zone("europe/berlin"), Some("Europe/Berlin"));
        assert_eq!(closest_zone("Mars/Olympus_Mons"), None);
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
