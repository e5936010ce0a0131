//! Maintenance and blackout windows: schedules (cron, RFC 5545 rrule,
//! explicit ranges) evaluated in IANA time zones, and the open/closed decision.
//!
//! [`CompiledWindow::compile`] validates a MaintenanceWindow spec and answers
//! questions about one window ([`schedule`] documents the semantics, daylight
//! saving included); [`evaluate`] combines a tenant's windows into the
//! admission verdict. Everything here is pure: the caller passes the time.

mod calendar;
mod compile;
mod cron_starts;
mod error;
mod intervals;
mod local_time;
mod recurrence;
mod rrule_starts;
pub mod schedule;

pub use calendar::{NextOpening, SEARCH_HORIZON, WindowVerdict, evaluate};
pub use error::WindowError;
pub use local_time::format_instant;
pub use schedule::CompiledWindow;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod scenarios;
