//! Maintenance and blackout windows: schedules (cron, RFC 5545 rrule,
//! explicit ranges) evaluated in IANA time zones, and the open/closed decision.
//!
//! [`WindowSpec`] states a window; [`CompiledWindow::compile`] validates it
//! and answers questions about one window ([`schedule`] documents the
//! semantics, daylight saving included); [`evaluate`] combines a tenant's
//! windows into the verdict on a change. Pure: the caller passes the time.

mod calendar;
mod compile;
mod cron_starts;
mod duration;
mod error;
mod intervals;
mod local_time;
mod recurrence;
mod rrule_starts;
pub mod schedule;
mod spec;
mod words;

pub use calendar::{NextOpening, SEARCH_HORIZON, WindowVerdict, evaluate};
pub use duration::{DurationError, format_duration, parse_duration};
pub use error::WindowError;
pub use local_time::format_instant;
pub use schedule::CompiledWindow;
pub use spec::{Exclusion, Interval, Schedule, WindowKind, WindowSpec};
pub use words::{describe, monthly_rule, weekly_rule};

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod scenarios;
