//! Sign-in rate limiting: after `MAX_FAILURES` wrong passwords for one
//! address within `WINDOW`, that address cannot sign in until the oldest
//! of them is `WINDOW` old, whatever password comes next. Kept in memory
//! per server process; the clock is the caller's.

use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashMap;
use std::sync::Mutex;

pub const MAX_FAILURES: usize = 5;
pub const WINDOW: TimeDelta = TimeDelta::minutes(15);
const MAX_ADDRESSES: usize = 10_000;

#[derive(Default)]
pub struct SignInLimiter {
    failures: Mutex<HashMap<String, Vec<DateTime<Utc>>>>,
}

impl SignInLimiter {
    fn recent(list: &mut Vec<DateTime<Utc>>, now: DateTime<Utc>) {
        list.retain(|t| now - *t < WINDOW);
    }

    /// `Err(until)` while `address` is locked out.
    pub fn check(&self, address: &str, now: DateTime<Utc>) -> Result<(), DateTime<Utc>> {
        let mut all = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let Some(list) = all.get_mut(address) else {
            return Ok(());
        };
        Self::recent(list, now);
        if list.len() >= MAX_FAILURES {
            return Err(list[list.len() - MAX_FAILURES] + WINDOW);
        }
        Ok(())
    }

    pub fn failed(&self, address: &str, now: DateTime<Utc>) {
        let mut all = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded memory: addresses without a recent failure are dropped
        // once many are kept (e.g. under a spray of made-up addresses).
        if all.len() >= MAX_ADDRESSES {
            all.retain(|_, l| l.last().is_some_and(|t| now - *t < WINDOW));
        }
        let list = all.entry(address.to_string()).or_default();
        Self::recent(list, now);
        list.push(now);
    }

    pub fn succeeded(&self, address: &str) {
        let mut all = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        all.remove(address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_the_address_for_the_window_and_others_stay_free() {
        let l = SignInLimiter::default();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        for i in 0..MAX_FAILURES {
            assert!(l.check("a@x", t0).is_ok(), "attempt {i}");
            l.failed("a@x", t0 + TimeDelta::seconds(i as i64));
        }
        assert_eq!(l.check("a@x", t0 + TimeDelta::minutes(1)), Err(t0 + WINDOW));
        assert!(l.check("b@x", t0).is_ok());
        assert!(
            l.check("a@x", t0 + WINDOW).is_ok(),
            "the oldest failure aged out"
        );
        l.succeeded("a@x");
        assert!(l.check("a@x", t0 + TimeDelta::minutes(1)).is_ok());
    }
}
