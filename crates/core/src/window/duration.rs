//! Window durations in the syntax Kubernetes and Go use (`4h`, `90m`,
//! `1h30m`, `1.5h`), so a window's duration reads the same in a
//! MaintenanceWindow, the API and the portal. Parsed exactly, to the
//! nanosecond, without floating point.

use chrono::TimeDelta;
use thiserror::Error;

/// A duration that does not parse, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid duration {value:?}: {reason} (write it like 4h, 90m or 1h30m)")]
pub struct DurationError {
    value: String,
    reason: &'static str,
}

/// Nanoseconds per unit; the units Go's `time.ParseDuration` accepts.
fn unit_nanos(unit: &str) -> Option<i128> {
    Some(match unit {
        "ns" => 1,
        // U+00B5 is the micro sign, U+03BC the Greek letter mu: Go takes both.
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Parses a duration in Go syntax: an optional sign, then one or more
/// decimal numbers each followed by a unit (`ns`, `us`, `ms`, `s`, `m`,
/// `h`); `0` alone is zero. Like Go, the total is limited to about 292 years.
///
/// # Errors
///
/// When the text is empty, a number lacks its unit or a unit its number,
/// a unit is unknown, or the total is out of range.
pub fn parse_duration(text: &str) -> Result<TimeDelta, DurationError> {
    let invalid = |reason| DurationError {
        value: text.to_owned(),
        reason,
    };
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(TimeDelta::zero());
    }
    if rest.is_empty() {
        return Err(invalid("it is empty"));
    }
    let number_char = |c: char| c.is_ascii_digit() || c == '.';
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let (number, tail) = rest.split_at(rest.find(|c| !number_char(c)).unwrap_or(rest.len()));
        let (unit, tail) = tail.split_at(tail.find(number_char).unwrap_or(tail.len()));
        rest = tail;
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() {
            return Err(invalid("a unit lacks its number"));
        }
        if fraction.contains('.') {
            return Err(invalid("a number has two decimal points"));
        }
        let scale = unit_nanos(unit).ok_or_else(|| {
            invalid(if unit.is_empty() {
                "a number lacks its unit"
            } else {
                "the unit is not one of ns, us, ms, s, m, h"
            })
        })?;
        let too_long = || invalid("it is too long");
        let whole: i128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| too_long())?
        };
        // Digits beyond the nanosecond are dropped, as Go drops them.
        let (mut numerator, mut denominator) = (0i128, 1i128);
        for digit in fraction.bytes().take(18) {
            numerator = numerator * 10 + i128::from(digit - b'0');
            denominator *= 10;
        }
        total = whole
            .checked_mul(scale)
            .and_then(|n| n.checked_add(numerator * scale / denominator))
            .and_then(|n| n.checked_add(total))
            // One past i64::MAX still fits once negated.
            .filter(|n| *n <= i128::from(i64::MAX) + 1)
            .ok_or_else(too_long)?;
    }
    let nanos = i64::try_from(if negative { -total } else { total })
        .map_err(|_| invalid("it is too long"))?;
    Ok(TimeDelta::nanoseconds(nanos))
}

/// A duration the way [`parse_duration`] reads it back: `4h`, `1h30m`,
/// `45s`, `1.5s`, `-10m`; `0s` for zero. Hours are not folded into days,
/// because the syntax has none.
pub fn format_duration(span: TimeDelta) -> String {
    let magnitude = span.abs();
    let seconds = magnitude.num_seconds();
    let nanos = magnitude.subsec_nanos();
    let mut text = String::new();
    if span < TimeDelta::zero() {
        text.push('-');
    }
    for (n, unit) in [(seconds / 3_600, "h"), (seconds % 3_600 / 60, "m")] {
        if n > 0 {
            text.push_str(&format!("{n}{unit}"));
        }
    }
    if seconds % 60 > 0 || nanos > 0 {
        text.push_str(&(seconds % 60).to_string());
        if nanos > 0 {
            let fraction = format!("{nanos:09}");
            text.push('.');
            text.push_str(fraction.trim_end_matches('0'));
        }
        text.push('s');
    }
    if magnitude.is_zero() {
        "0s".into()
    } else {
        text
    }
}

/// `#[serde(with = ...)]` for a [`TimeDelta`] written as a duration string.
pub(crate) mod as_text {
    use chrono::TimeDelta;
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub(crate) fn serialize<S: Serializer>(span: &TimeDelta, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*span))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TimeDelta, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations_read_as_go_and_kubernetes_read_them() {
        for (text, expected) in [
            ("4h", TimeDelta::hours(4)),
            ("90m", TimeDelta::minutes(90)),
            ("1h30m", TimeDelta::minutes(90)),
            ("1.5h", TimeDelta::minutes(90)),
            (".5s", TimeDelta::milliseconds(500)),
            ("1h0m0s", TimeDelta::hours(1)),
            ("2h45m30s", TimeDelta::seconds(2 * 3600 + 45 * 60 + 30)),
            ("300ms", TimeDelta::milliseconds(300)),
            ("12µs", TimeDelta::microseconds(12)),
            ("12us", TimeDelta::microseconds(12)),
            ("7ns", TimeDelta::nanoseconds(7)),
            ("0", TimeDelta::zero()),
            ("0s", TimeDelta::zero()),
            ("+5m", TimeDelta::minutes(5)),
            ("-1h", TimeDelta::hours(-1)),
            (
                "0.3333333333333333333h",
                TimeDelta::nanoseconds(1_199_999_999_999),
            ),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn malformed_durations_are_refused_with_a_reason() {
        for (text, reason) in [
            ("", "it is empty"),
            ("-", "it is empty"),
            ("4", "a number lacks its unit"),
            ("h", "a unit lacks its number"),
            ("4d", "the unit is not one of ns, us, ms, s, m, h"),
            ("1.2.3h", "a number has two decimal points"),
            ("3000000h", "it is too long"),
            ("4 h", "the unit is not one of ns, us, ms, s, m, h"),
        ] {
            let err = parse_duration(text).expect_err(text);
            assert_eq!(err.reason, reason, "{text}");
        }
        assert_eq!(
            parse_duration("4d").expect_err("days").to_string(),
            "invalid duration \"4d\": the unit is not one of ns, us, ms, s, m, h \
             (write it like 4h, 90m or 1h30m)"
        );
    }

    #[test]
    fn durations_are_written_compactly() {
        assert_eq!(format_duration(TimeDelta::hours(4)), "4h");
        assert_eq!(format_duration(TimeDelta::days(1)), "24h");
        assert_eq!(format_duration(TimeDelta::minutes(90)), "1h30m");
        assert_eq!(format_duration(TimeDelta::seconds(45)), "45s");
        assert_eq!(format_duration(TimeDelta::milliseconds(1500)), "1.5s");
        assert_eq!(format_duration(TimeDelta::minutes(-10)), "-10m");
        assert_eq!(format_duration(TimeDelta::zero()), "0s");
    }

    proptest! {
        #[test]
        fn a_written_duration_reads_back_the_same(nanos in any::<i64>()) {
            let span = TimeDelta::nanoseconds(nanos);
            prop_assert_eq!(parse_duration(&format_duration(span)), Ok(span));
        }
    }
}
