//! The one place where Kubernetes time (k8s-openapi's `Time`, which wraps
//! `jiff::Timestamp`, and kube's `Duration`) meets the chrono types the
//! domain uses.

use chrono::{DateTime, TimeDelta, Utc};

/// A Kubernetes timestamp as chrono; out-of-range values clamp to the epoch.
pub fn to_chrono(t: &jiff::Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().try_into().unwrap_or(0))
        .unwrap_or_default()
}

/// A Kubernetes duration as chrono; `None` when negative or beyond
/// chrono's range.
pub fn to_time_delta(d: kube::core::Duration) -> Option<TimeDelta> {
    if d.is_negative() {
        return None;
    }
    TimeDelta::from_std(d.into()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_convert_unless_negative() {
        let d = |s: &str| s.parse::<kube::core::Duration>().expect("valid");
        assert_eq!(to_time_delta(d("1h30m")), Some(TimeDelta::minutes(90)));
        assert_eq!(to_time_delta(d("-5m")), None);
    }

    #[test]
    fn converts_to_the_nanosecond() {
        let kube: jiff::Timestamp = "2026-11-28T01:00:00.123456789Z".parse().expect("valid");
        let chrono = DateTime::parse_from_rfc3339("2026-11-28T01:00:00.123456789Z")
            .expect("valid")
            .with_timezone(&Utc);
        assert_eq!(to_chrono(&kube), chrono);
    }
}
