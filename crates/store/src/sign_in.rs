//! The sign-in limit's arithmetic, shared by both stores: the failures an
//! address keeps, and whether one more attempt is let through.

use chrono::{DateTime, TimeDelta, Utc};

/// With `failures` recorded for an address, may one more attempt be made
/// at `now`? `Ok(kept)`: yes, and the failures to keep with this attempt
/// counted as one (until it succeeds); `Err(until)`: `max` failures within
/// `window`, locked until the oldest of them is `window` old.
pub fn attempt(
    failures: &[DateTime<Utc>],
    now: DateTime<Utc>,
    window: TimeDelta,
    max: usize,
) -> Result<Vec<DateTime<Utc>>, DateTime<Utc>> {
    let mut recent: Vec<DateTime<Utc>> = failures
        .iter()
        .copied()
        .filter(|t| now - *t < window)
        .collect();
    recent.sort();
    if max > 0 && recent.len() >= max {
        return Err(recent[recent.len() - max] + window);
    }
    recent.push(now);
    let keep = recent.len().saturating_sub(max);
    Ok(recent.split_off(keep))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_the_address_until_the_oldest_ages_out() {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).expect("a time");
        let window = TimeDelta::minutes(15);
        let mut kept = Vec::new();
        for i in 0..5 {
            kept = attempt(&kept, t0 + TimeDelta::seconds(i), window, 5).expect("let through");
        }
        assert_eq!(kept.len(), 5);
        assert_eq!(
            attempt(&kept, t0 + TimeDelta::minutes(1), window, 5),
            Err(t0 + window)
        );
        assert!(
            attempt(&kept, t0 + window, window, 5).is_ok(),
            "the oldest aged out"
        );
        assert_eq!(
            attempt(&kept, t0 + TimeDelta::hours(1), window, 5).map(|k| k.len()),
            Ok(1)
        );
    }
}
