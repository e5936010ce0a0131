//! Maintenance and blackout windows: schedules (cron, RFC 5545 rrule,
//! explicit ranges) evaluated in IANA time zones, and the open/closed decision.
