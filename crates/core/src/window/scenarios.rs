//! Scenarios for single windows, written as the window specs a
//! platform team configures: recurrences, daylight saving, exclusions, ranges,
//! preparation, and the errors a bad spec gets.

use super::WindowError;
use super::fixtures::{at, compile_error, interval, window};
use chrono::TimeDelta;

const CLIENT_A_WEEKLY: &str = r#"
tenants: [client-a]
timeZone: Europe/Berlin
schedule: {cron: {expr: "0 2 * * SAT", duration: 4h}}
exclusions:
- date: "2026-12-26"
"#;

#[test]
fn a_weekly_cron_window_is_open_inside_and_closed_outside() {
    let w = window("client-a-weekly", CLIENT_A_WEEKLY);
    // Sat 2026-11-28 02:00-06:00 CET is 01:00-05:00 UTC.
    let saturday = interval("2026-11-28T01:00:00Z", "2026-11-28T05:00:00Z");
    assert!(!w.open_at(at("2026-11-28T00:59:59Z")));
    assert!(w.open_at(at("2026-11-28T01:00:00Z")));
    assert!(w.open_at(at("2026-11-28T04:59:59Z")));
    assert!(!w.open_at(at("2026-11-28T05:00:00Z")));
    assert_eq!(w.current(at("2026-11-28T03:00:00Z")), Some(saturday));
    assert_eq!(w.next_window(at("2026-11-25T12:00:00Z")), Some(saturday));
    assert_eq!(
        w.next_close(at("2026-11-28T03:00:00Z")),
        Some(at("2026-11-28T05:00:00Z"))
    );
    assert_eq!(
        w.next_close(at("2026-11-25T12:00:00Z")),
        Some(at("2026-11-28T05:00:00Z"))
    );
}

#[test]
fn spring_forward_night_in_berlin_opens_at_three() {
    let w = window(
        "nightly",
        r#"{timeZone: Europe/Berlin, schedule: {cron: {expr: "0 2 * * *", duration: 4h}}}"#,
    );
    // 02:00 does not exist on 2026-03-29: read with CET it is 03:00 CEST.
    let night = w.current(at("2026-03-29T02:00:00Z")).expect("open");
    assert_eq!(
        night,
        interval("2026-03-29T03:00:00+02:00", "2026-03-29T06:00:00+02:00")
    );
    assert_eq!(night.end - night.start, TimeDelta::hours(3));
}

#[test]
fn fall_back_night_in_berlin_lasts_five_hours() {
    let w = window(
        "nightly",
        r#"{timeZone: Europe/Berlin, schedule: {cron: {expr: "0 2 * * *", duration: 4h}}}"#,
    );
    // 02:00 happens twice on 2026-10-25; the window starts at the first.
    let night = w.current(at("2026-10-25T02:00:00Z")).expect("open");
    assert_eq!(
        night,
        interval("2026-10-25T02:00:00+02:00", "2026-10-25T06:00:00+01:00")
    );
    assert_eq!(night.end - night.start, TimeDelta::hours(5));
}

#[test]
fn patch_tuesday_rrule_opens_on_the_second_tuesday() {
    let w = window(
        "patch-tuesday",
        r#"
timeZone: America/New_York
schedule:
  rrule:
    rule: "FREQ=MONTHLY;BYDAY=2TU;BYHOUR=22;BYMINUTE=0;BYSECOND=0"
    duration: 4h
"#,
    );
    // Tue 2026-01-13 22:00 EST until 02:00 the next morning.
    assert_eq!(
        w.next_window(at("2026-01-01T00:00:00Z")),
        Some(interval(
            "2026-01-13T22:00:00-05:00",
            "2026-01-14T02:00:00-05:00"
        ))
    );
    // In March New York is on EDT: 22:00 is 02:00 UTC.
    assert_eq!(
        w.next_window(at("2026-02-20T00:00:00Z")),
        Some(interval("2026-03-11T02:00:00Z", "2026-03-11T06:00:00Z"))
    );
}

#[test]
fn a_new_york_window_wholly_inside_the_spring_forward_gap_is_dropped() {
    let w = window(
        "nightly",
        r#"{timeZone: America/New_York, schedule: {cron: {expr: "0 2 * * *", duration: 1h}}}"#,
    );
    // On 2026-03-08 02:00-03:00 never happens in New York.
    assert_eq!(
        w.windows_between(at("2026-03-07T00:00:00Z"), at("2026-03-10T00:00:00Z")),
        vec![
            interval("2026-03-07T02:00:00-05:00", "2026-03-07T03:00:00-05:00"),
            interval("2026-03-09T02:00:00-04:00", "2026-03-09T03:00:00-04:00"),
        ]
    );
}

#[test]
fn a_new_york_fall_back_window_gains_the_repeated_hour() {
    let w = window(
        "nightly",
        r#"{timeZone: America/New_York, schedule: {cron: {expr: "0 1 * * *", duration: 2h}}}"#,
    );
    let night = w.current(at("2026-11-01T06:30:00Z")).expect("open");
    assert_eq!(
        night,
        interval("2026-11-01T01:00:00-04:00", "2026-11-01T03:00:00-05:00")
    );
    assert_eq!(night.end - night.start, TimeDelta::hours(3));
}

#[test]
fn an_excluded_date_cuts_the_window() {
    let w = window(
        "friday-night",
        r#"
timeZone: Europe/Berlin
schedule: {cron: {expr: "0 22 * * FRI", duration: 6h}}
exclusions: [{date: "2026-12-26"}]
"#,
    );
    // Fri 22:00 to Sat 04:00, but Saturday 2026-12-26 is excluded as a whole.
    assert_eq!(
        w.windows_between(at("2026-12-24T00:00:00Z"), at("2026-12-27T00:00:00Z")),
        vec![interval(
            "2026-12-25T22:00:00+01:00",
            "2026-12-26T00:00:00+01:00"
        )]
    );
}

#[test]
fn an_excluded_date_removes_that_days_window_entirely() {
    let w = window("client-a-weekly", CLIENT_A_WEEKLY);
    assert_eq!(
        w.next_window(at("2026-12-20T00:00:00Z")),
        Some(interval(
            "2027-01-02T02:00:00+01:00",
            "2027-01-02T06:00:00+01:00"
        ))
    );
}

#[test]
fn an_excluded_range_splits_a_window_in_two() {
    let w = window(
        "weekly",
        r#"
timeZone: UTC
schedule: {cron: {expr: "0 2 * * SAT", duration: 4h}}
exclusions: [{range: {start: "2026-11-28T03:00:00Z", end: "2026-11-28T04:00:00Z"}}]
"#,
    );
    assert_eq!(
        w.windows_between(at("2026-11-28T00:00:00Z"), at("2026-11-29T00:00:00Z")),
        vec![
            interval("2026-11-28T02:00:00Z", "2026-11-28T03:00:00Z"),
            interval("2026-11-28T04:00:00Z", "2026-11-28T06:00:00Z"),
        ]
    );
    assert!(!w.open_at(at("2026-11-28T03:30:00Z")));
}

#[test]
fn explicit_ranges_are_sorted_and_overlapping_ones_merged() {
    let w = window(
        "releases",
        r#"
timeZone: Europe/Berlin
schedule:
  ranges:
  - {start: "2026-06-10T00:00:00Z", end: "2026-06-11T00:00:00Z"}
  - {start: "2026-06-01T00:00:00Z", end: "2026-06-02T12:00:00Z"}
  - {start: "2026-06-02T00:00:00Z", end: "2026-06-03T00:00:00Z"}
"#,
    );
    assert_eq!(
        w.windows_between(at("2026-01-01T00:00:00Z"), at("2027-01-01T00:00:00Z")),
        vec![
            interval("2026-06-01T00:00:00Z", "2026-06-03T00:00:00Z"),
            interval("2026-06-10T00:00:00Z", "2026-06-11T00:00:00Z"),
        ]
    );
    assert_eq!(w.next_window(at("2026-06-11T00:00:00Z")), None);
    assert_eq!(w.next_close(at("2026-06-11T00:00:00Z")), None);
}

#[test]
fn a_range_freeze_with_offsets_is_read_as_instants() {
    let w = window(
        "year-end-freeze",
        r#"
kind: blackout
timeZone: Europe/Berlin
schedule:
  ranges:
  - {start: "2026-12-20T00:00:00+01:00", end: "2027-01-04T00:00:00+01:00"}
allowTypes: [emergency]
"#,
    );
    assert!(w.open_at(at("2026-12-19T23:00:00Z")));
    assert!(!w.open_at(at("2027-01-03T23:00:00Z")));
}

#[test]
fn an_rrule_interval_counts_from_its_dtstart() {
    let w = window(
        "fortnightly",
        r#"
timeZone: Europe/Berlin
schedule:
  rrule:
    rule: "DTSTART:20260103T020000\nRRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=SA"
    duration: 4h
"#,
    );
    assert!(w.open_at(at("2026-01-17T02:00:00Z")));
    assert!(!w.open_at(at("2026-01-24T02:00:00Z")));
    assert!(w.open_at(at("2026-01-31T02:00:00Z")));
}

#[test]
fn next_window_skips_the_window_holding_t() {
    let w = window("client-a-weekly", CLIENT_A_WEEKLY);
    assert_eq!(
        w.next_window(at("2026-11-28T01:00:00Z")),
        Some(interval(
            "2026-12-05T02:00:00+01:00",
            "2026-12-05T06:00:00+01:00"
        ))
    );
}

#[test]
fn windows_between_reports_whole_windows_not_clipped_ones() {
    let w = window("client-a-weekly", CLIENT_A_WEEKLY);
    assert_eq!(
        w.windows_between(at("2026-11-28T02:00:00Z"), at("2026-11-28T03:00:00Z")),
        vec![interval("2026-11-28T01:00:00Z", "2026-11-28T05:00:00Z")]
    );
    assert!(
        w.windows_between(at("2026-11-28T05:00:00Z"), at("2026-12-05T01:00:00Z"))
            .is_empty()
    );
}

#[test]
fn next_close_follows_windows_that_touch() {
    let w = window(
        "weekdays",
        r#"{timeZone: UTC, schedule: {cron: {expr: "0 8 * * MON-FRI", duration: 24h}}}"#,
    );
    // Monday 08:00 to Saturday 08:00 without a break.
    assert_eq!(
        w.next_close(at("2026-11-23T09:00:00Z")),
        Some(at("2026-11-28T08:00:00Z"))
    );
    assert_eq!(
        w.current(at("2026-11-24T09:00:00Z")),
        Some(interval("2026-11-24T08:00:00Z", "2026-11-25T08:00:00Z"))
    );
}

#[test]
fn a_window_that_never_closes_has_no_next_close() {
    let w = window(
        "always",
        r#"{timeZone: Europe/Berlin, schedule: {cron: {expr: "0 0 * * *", duration: 24h}}}"#,
    );
    assert!(w.open_at(at("2026-03-29T00:30:00Z")));
    assert!(w.open_at(at("2026-10-25T00:30:00Z")));
    assert_eq!(w.next_close(at("2026-01-01T00:00:00Z")), None);
}

#[test]
fn an_empty_tenant_list_applies_to_every_tenant() {
    let everyone = window(
        "everyone",
        r#"{timeZone: UTC, schedule: {cron: {expr: "0 2 * * SAT", duration: 1h}}}"#,
    );
    assert!(everyone.applies_to("client-a"));
    assert!(everyone.applies_to("client-b"));
    let client_a = window("client-a-weekly", CLIENT_A_WEEKLY);
    assert!(client_a.applies_to("client-a"));
    assert!(!client_a.applies_to("client-b"));
    assert_eq!(client_a.name(), "client-a-weekly");
    assert_eq!(client_a.time_zone(), chrono_tz::Europe::Berlin);
}

#[test]
fn prepared_queries_answer_like_computed_ones() {
    let plain = window("client-a-weekly", CLIENT_A_WEEKLY);
    let prepared = plain
        .clone()
        .prepared(at("2026-11-01T00:00:00Z"), at("2027-02-01T00:00:00Z"));
    assert_eq!(
        prepared.prepared_horizon(),
        Some(interval("2026-11-01T00:00:00Z", "2027-02-01T00:00:00Z"))
    );
    for t in [
        "2026-11-01T00:00:00Z",
        "2026-11-28T01:00:00Z",
        "2026-12-20T00:00:00Z",
        "2027-01-31T23:00:00Z",
        "2027-03-01T00:00:00Z",
    ] {
        let t = at(t);
        assert_eq!(prepared.current(t), plain.current(t));
        assert_eq!(prepared.next_window(t), plain.next_window(t));
        assert_eq!(prepared.next_close(t), plain.next_close(t));
    }
}

#[test]
fn compiled_windows_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<super::CompiledWindow>();
}

// Errors a bad spec gets: each names the field and the value.

#[test]
fn unknown_time_zone_is_an_error_naming_the_field() {
    let typo = r#"{timeZone: Europe/Berln, schedule: {cron: {expr: "0 2 * * SAT", duration: 4h}}}"#;
    assert_eq!(
        compile_error(typo).to_string(),
        r#"spec.timeZone: unknown time zone "Europe/Berln" (did you mean Europe/Berlin?)"#
    );
    let unknown =
        r#"{timeZone: Middle/Earth, schedule: {cron: {expr: "0 2 * * SAT", duration: 4h}}}"#;
    assert_eq!(
        compile_error(unknown).to_string(),
        r#"spec.timeZone: unknown time zone "Middle/Earth" (use an IANA name such as Europe/Berlin)"#
    );
    assert_eq!(compile_error(unknown).field(), "spec.timeZone");
}

#[test]
fn zero_duration_is_an_error() {
    let err =
        compile_error(r#"{timeZone: UTC, schedule: {cron: {expr: "0 2 * * SAT", duration: 0s}}}"#);
    assert_eq!(
        err.to_string(),
        "spec.schedule.duration: must be greater than zero"
    );
}

#[test]
fn negative_duration_is_an_error() {
    let err =
        compile_error(r#"{timeZone: UTC, schedule: {cron: {expr: "0 2 * * SAT", duration: -1h}}}"#);
    assert_eq!(
        err.to_string(),
        "spec.schedule.duration: must be greater than zero"
    );
}

#[test]
fn a_duration_longer_than_the_period_is_an_error() {
    let err =
        compile_error(r#"{timeZone: UTC, schedule: {cron: {expr: "0 2 * * *", duration: 192h}}}"#);
    assert_eq!(
        err.to_string(),
        "spec.schedule.duration: 8d exceeds the shortest interval between window starts (1d); \
         set it to at most 24h or space the starts further apart"
    );
    let err = compile_error(
        r#"{timeZone: UTC, schedule: {rrule: {rule: "FREQ=WEEKLY;BYDAY=SA,SU;BYHOUR=2", duration: 25h}}}"#,
    );
    assert!(err.to_string().contains("(1d)"), "{err}");
}

#[test]
fn a_range_that_ends_before_it_starts_is_an_error_naming_its_index() {
    let err = compile_error(
        r#"
timeZone: UTC
schedule:
  ranges:
  - {start: "2026-01-01T00:00:00Z", end: "2026-01-02T00:00:00Z"}
  - {start: "2026-01-02T00:00:00Z", end: "2026-01-01T00:00:00Z"}
"#,
    );
    assert_eq!(
        err.to_string(),
        "spec.schedule.ranges[1]: end 2026-01-01T00:00:00Z is not after start 2026-01-02T00:00:00Z; \
         swap them or fix the end"
    );
    assert_eq!(err.field(), "spec.schedule.ranges[1]");
}

#[test]
fn invalid_cron_is_an_error() {
    let err =
        compile_error(r#"{timeZone: UTC, schedule: {cron: {expr: "0 25 * * *", duration: 1h}}}"#);
    assert!(
        err.to_string()
            .starts_with(r#"spec.schedule.cron: invalid cron expression "0 25 * * *": "#),
        "{err}"
    );
}

#[test]
fn a_cron_that_never_matches_is_an_error() {
    let err =
        compile_error(r#"{timeZone: UTC, schedule: {cron: {expr: "0 0 30 2 *", duration: 1h}}}"#);
    assert!(err.to_string().contains("never matches a date"), "{err}");
}

#[test]
fn invalid_rrule_is_an_error() {
    let err = compile_error(
        r#"{timeZone: UTC, schedule: {rrule: {rule: "FREQ=FORTNIGHTLY;BYDAY=SA", duration: 1h}}}"#,
    );
    assert!(
        err.to_string().starts_with(
            r#"spec.schedule.rrule: invalid recurrence rule "FREQ=FORTNIGHTLY;BYDAY=SA": "#
        ),
        "{err}"
    );
}

#[test]
fn an_rrule_without_starts_is_an_error() {
    let err = compile_error(
        r#"{timeZone: UTC, schedule: {rrule: {rule: "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", duration: 1h}}}"#,
    );
    assert!(
        err.to_string().contains("produces no window starts"),
        "{err}"
    );
}

#[test]
fn a_bad_exclusion_is_an_error_naming_its_index() {
    let err = compile_error(
        r#"
timeZone: UTC
schedule: {cron: {expr: "0 2 * * SAT", duration: 1h}}
exclusions:
- {date: "2026-01-01"}
- {range: {start: "2026-01-02T00:00:00Z", end: "2026-01-01T00:00:00Z"}}
"#,
    );
    assert_eq!(
        err.to_string(),
        "spec.exclusions[1]: end 2026-01-01T00:00:00Z is not after start 2026-01-02T00:00:00Z; \
         swap them or fix the end"
    );
    assert_eq!(err.field(), "spec.exclusions[1]");
}

#[test]
fn an_empty_list_of_ranges_is_an_error() {
    let err = compile_error(r#"{timeZone: UTC, schedule: {ranges: []}}"#);
    assert_eq!(err, WindowError::NoRanges);
}

#[test]
fn allow_types_on_a_maintenance_window_is_an_error() {
    let err = compile_error(
        r#"{timeZone: UTC, schedule: {cron: {expr: "0 2 * * SAT", duration: 1h}}, allowTypes: [emergency]}"#,
    );
    assert_eq!(err.field(), "spec.allowTypes");
}
