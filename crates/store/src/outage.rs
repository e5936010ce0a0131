//! A loop's memory of a database outage: it says so once, waits longer
//! between attempts while the database stays away (up to 30 s), and says
//! when it is back. The scheduler and the release starter use it.

use std::time::{Duration, Instant};

use crate::StoreError;

#[derive(Debug, Default)]
pub struct Outage {
    since: Option<Instant>,
    next_try: Option<Instant>,
    delay: Duration,
}

const LONGEST: Duration = Duration::from_secs(30);

impl Outage {
    /// Whether to skip this pass: the database was away at the last try.
    pub fn waiting(&self) -> bool {
        self.next_try.is_some_and(|t| Instant::now() < t)
    }

    /// A pass of `what` failed with `e`. Unavailability is logged once per
    /// outage and spaces the next tries; any other error is logged as such.
    pub fn failed(&mut self, what: &str, e: &StoreError) {
        if !matches!(e, StoreError::Unavailable(_)) {
            tracing::warn!(error = %e, "{what} failed; retrying next second");
            return;
        }
        if self.since.is_none() {
            tracing::warn!(error = %e, "{what}: the database is unreachable; trying again with growing pauses, quietly until it is back");
            self.since = Some(Instant::now());
        }
        self.delay = (self.delay * 2).clamp(Duration::from_secs(1), LONGEST);
        self.next_try = Some(Instant::now() + self.delay);
    }

    /// A pass went through: the outage, if any, is over.
    pub fn succeeded(&mut self, what: &str) {
        if let Some(since) = self.since.take() {
            tracing::info!(after = ?since.elapsed(), "{what}: the database is reachable again");
        }
        self.next_try = None;
        self.delay = Duration::ZERO;
    }

    pub fn ongoing(&self) -> bool {
        self.since.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_spaces_the_tries_and_ends_with_a_success() {
        let mut o = Outage::default();
        assert!(!o.waiting());
        let away = StoreError::Unavailable("connection refused".into());
        o.failed("scheduler", &away);
        assert!(o.ongoing() && o.waiting());
        assert_eq!(o.delay, Duration::from_secs(1));
        o.failed("scheduler", &away);
        o.failed("scheduler", &away);
        assert_eq!(o.delay, Duration::from_secs(4));
        for _ in 0..10 {
            o.failed("scheduler", &away);
        }
        assert_eq!(o.delay, LONGEST);
        o.succeeded("scheduler");
        assert!(!o.ongoing() && !o.waiting());
        // Another error is no outage.
        o.failed("scheduler", &StoreError::Database("syntax".into()));
        assert!(!o.ongoing() && !o.waiting());
    }
}
