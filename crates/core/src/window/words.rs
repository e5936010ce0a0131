//! A window's schedule as a sentence people read ("every Saturday
//! 02:00–06:00 Europe/Berlin"), and the recurrence rules the portal's
//! schedule builder writes. Pure.

use chrono::TimeDelta;

use super::local_time::format_instant;
use super::spec::{Schedule, WindowSpec};

const DAYS: [(&str, &str); 7] = [
    ("MO", "Monday"),
    ("TU", "Tuesday"),
    ("WE", "Wednesday"),
    ("TH", "Thursday"),
    ("FR", "Friday"),
    ("SA", "Saturday"),
    ("SU", "Sunday"),
];

const ORDINALS: [(&str, &str); 5] = [
    ("1", "first"),
    ("2", "second"),
    ("3", "third"),
    ("4", "fourth"),
    ("-1", "last"),
];

fn day_name(code: &str) -> Option<&'static str> {
    DAYS.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// `HH:MM–HH:MM` from a start hour and minute and a length.
fn span(hour: u32, minute: u32, length: TimeDelta) -> String {
    let start = hour * 60 + minute;
    let end = (i64::from(start) + length.num_minutes()).rem_euclid(24 * 60) as u32;
    let days = (i64::from(start) + length.num_minutes()) / (24 * 60);
    let next = match days {
        0 => String::new(),
        1 => " the next day".to_string(),
        n => format!(" {n} days later"),
    };
    format!(
        "{:02}:{:02}–{:02}:{:02}{next}",
        start / 60,
        start % 60,
        end / 60,
        end % 60
    )
}

/// The days of a `BYDAY` value in words, when the rule is one a person
/// reads at once; `None` otherwise.
fn rrule_words(rule: &str, length: TimeDelta) -> Option<String> {
    let dtstart = rule.lines().any(|l| l.trim().starts_with("DTSTART"));
    let line = rule
        .lines()
        .map(str::trim)
        .find(|l| !l.starts_with("DTSTART"))?;
    let line = line.strip_prefix("RRULE:").unwrap_or(line);
    let mut freq = None;
    let mut byday = None;
    let (mut hour, mut minute) = (None, None);
    for part in line.split(';') {
        let (key, value) = part.split_once('=')?;
        match key {
            "FREQ" => freq = Some(value),
            "BYDAY" => byday = Some(value),
            "BYHOUR" => hour = Some(value.parse::<u32>().ok()?),
            "BYMINUTE" => minute = Some(value.parse::<u32>().ok()?),
            "BYSECOND" if value == "0" => {}
            _ => return None,
        }
    }
    // With a DTSTART, what the rule leaves out comes from its time of day:
    // shown as written rather than guessed.
    if dtstart && (hour.is_none() || minute.is_none()) {
        return None;
    }
    let (hour, minute) = (hour.unwrap_or(0), minute.unwrap_or(0));
    let time = span(hour, minute, length);
    match (freq?, byday) {
        ("DAILY", None) => Some(format!("every day {time}")),
        ("WEEKLY", Some(days)) => {
            let names: Option<Vec<String>> = days
                .split(',')
                .map(|d| day_name(d).map(str::to_string))
                .collect();
            Some(format!("every {} {time}", list(&names?)))
        }
        ("MONTHLY", Some(days)) => {
            let mut names = Vec::new();
            for d in days.split(',') {
                let at = d.len().checked_sub(2)?;
                let (n, code) = d.split_at(at);
                let ordinal = ORDINALS.iter().find(|(o, _)| *o == n)?.1;
                names.push(format!("{ordinal} {}", day_name(code)?));
            }
            Some(format!("the {} of every month {time}", list(&names)))
        }
        _ => None,
    }
}

/// A cron expression a person reads at once (`M H * * DAYS`), in words.
fn cron_words(expr: &str, length: TimeDelta) -> Option<String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let [minute, hour, "*", "*", days] = fields.as_slice() else {
        return None;
    };
    let time = span(hour.parse().ok()?, minute.parse().ok()?, length);
    if *days == "*" {
        return Some(format!("every day {time}"));
    }
    let names: Option<Vec<String>> = days
        .split(',')
        .map(|d| {
            let d = d.to_ascii_uppercase();
            let code = match d.as_str() {
                "0" | "7" | "SUN" => "SU",
                "1" | "MON" => "MO",
                "2" | "TUE" => "TU",
                "3" | "WED" => "WE",
                "4" | "THU" => "TH",
                "5" | "FRI" => "FR",
                "6" | "SAT" => "SA",
                _ => return None,
            };
            day_name(code).map(str::to_string)
        })
        .collect();
    Some(format!("every {} {time}", list(&names?)))
}

/// The schedule of `spec` as a sentence, its zone named; a rule too
/// intricate to put in words is shown as written.
pub fn describe(spec: &WindowSpec) -> String {
    let zone: chrono_tz::Tz = spec.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let said = match &spec.schedule {
        Schedule::Rrule { rule, duration } => rrule_words(rule, *duration)
            .map(|w| format!("{w} {}", spec.time_zone))
            .unwrap_or_else(|| {
                format!(
                    "{} for {} each time",
                    rule.trim(),
                    super::format_duration(*duration)
                )
            }),
        Schedule::Cron { expr, duration } => cron_words(expr, *duration)
            .map(|w| format!("{w} {}", spec.time_zone))
            .unwrap_or_else(|| {
                format!(
                    "cron {expr} for {} each time",
                    super::format_duration(*duration)
                )
            }),
        Schedule::Ranges(ranges) => list(
            &ranges
                .iter()
                .map(|r| {
                    format!(
                        "{} to {}",
                        format_instant(r.start, zone),
                        format_instant(r.end, zone)
                    )
                })
                .collect::<Vec<_>>(),
        ),
    };
    if spec.exclusions.is_empty() {
        said
    } else {
        let n = spec.exclusions.len();
        format!(
            "{said}, except {n} {}",
            if n == 1 { "exclusion" } else { "exclusions" }
        )
    }
}

/// The rule the schedule builder writes for weekly windows: `days` as
/// `MO`…`SU`, starting at `hour`:`minute`.
pub fn weekly_rule(days: &[String], hour: u32, minute: u32) -> Result<String, String> {
    if days.is_empty() {
        return Err("tick at least one day".into());
    }
    if let Some(bad) = days.iter().find(|d| day_name(d).is_none()) {
        return Err(format!(
            "{bad} is not a day (use MO, TU, WE, TH, FR, SA or SU)"
        ));
    }
    if hour > 23 || minute > 59 {
        return Err("write the start as HH:MM".into());
    }
    Ok(format!(
        "FREQ=WEEKLY;BYDAY={};BYHOUR={hour};BYMINUTE={minute};BYSECOND=0",
        days.join(",")
    ))
}

/// The rule for monthly windows: the `ordinal` (1–4, or -1 for the last)
/// `day` of every month.
pub fn monthly_rule(ordinal: &str, day: &str, hour: u32, minute: u32) -> Result<String, String> {
    if !ORDINALS.iter().any(|(o, _)| *o == ordinal) {
        return Err("choose first, second, third, fourth or last".into());
    }
    if day_name(day).is_none() {
        return Err(format!(
            "{day} is not a day (use MO, TU, WE, TH, FR, SA or SU)"
        ));
    }
    if hour > 23 || minute > 59 {
        return Err("write the start as HH:MM".into());
    }
    Ok(format!(
        "FREQ=MONTHLY;BYDAY={ordinal}{day};BYHOUR={hour};BYMINUTE={minute};BYSECOND=0"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::spec::WindowKind;

    fn spec(schedule: Schedule) -> WindowSpec {
        WindowSpec {
            tenants: vec![],
            kind: WindowKind::Maintenance,
            time_zone: "Europe/Berlin".into(),
            schedule,
            exclusions: vec![],
            allow_types: vec![],
        }
    }

    #[test]
    fn schedules_read_as_sentences() {
        let weekly = weekly_rule(&["SA".into()], 2, 0).expect("a rule");
        assert_eq!(
            describe(&spec(Schedule::Rrule {
                rule: weekly,
                duration: TimeDelta::hours(4)
            })),
            "every Saturday 02:00–06:00 Europe/Berlin"
        );
        let two = weekly_rule(&["SA".into(), "SU".into()], 23, 30).expect("a rule");
        assert_eq!(
            describe(&spec(Schedule::Rrule {
                rule: two,
                duration: TimeDelta::hours(3)
            })),
            "every Saturday and Sunday 23:30–02:30 the next day Europe/Berlin"
        );
        let monthly = monthly_rule("2", "TU", 22, 0).expect("a rule");
        assert_eq!(
            describe(&spec(Schedule::Rrule {
                rule: monthly,
                duration: TimeDelta::hours(2)
            })),
            "the second Tuesday of every month 22:00–00:00 the next day Europe/Berlin"
        );
        assert_eq!(
            describe(&spec(Schedule::Cron {
                expr: "0 2 * * SAT".into(),
                duration: TimeDelta::hours(4)
            })),
            "every Saturday 02:00–06:00 Europe/Berlin"
        );
        let odd = "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24";
        assert!(
            describe(&spec(Schedule::Rrule {
                rule: odd.into(),
                duration: TimeDelta::hours(24)
            }))
            .starts_with(odd)
        );
        // A DTSTART gives the time of day the rule leaves out: not 00:00.
        let dated = "DTSTART:20260103T220000\nRRULE:FREQ=WEEKLY;BYDAY=SA";
        let said = describe(&spec(Schedule::Rrule {
            rule: dated.into(),
            duration: TimeDelta::hours(4),
        }));
        assert!(!said.contains("00:00"), "{said}");
        assert!(weekly_rule(&[], 2, 0).is_err());
        assert!(weekly_rule(&["XX".into()], 2, 0).is_err());
        assert!(monthly_rule("5", "TU", 2, 0).is_err());
    }
}
