//! `MaintenanceWindow` (`mw`): a window of the namespace's tenant, as the
//! server holds it: a maintenance window opens a period in which changes
//! may deploy, a blackout freezes them.

use crate::condition::Condition;
use changegate_core::change::ChangeType;
use changegate_core::window::WindowKind;
use chrono::{DateTime, Utc};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A maintenance window or blackout of the namespace's tenant.
// Each printer column repeats `type_`: not a duplicate, though clippy reads it so.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "changegate.dev",
    version = "v1",
    kind = "MaintenanceWindow",
    namespaced,
    shortname = "mw",
    category = "changegate",
    status = "MaintenanceWindowStatus",
    doc = "A maintenance window or blackout of changegate for the namespace's tenant; status says whether it is open and when it next opens.",
    printcolumn(
        name = "Kind",
        type_ = "string",
        json_path = ".spec.kind",
        description = "maintenance or blackout"
    ),
    printcolumn(
        name = "Open",
        type_ = "boolean",
        json_path = ".status.open",
        description = "Open now"
    ),
    printcolumn(
        name = "Next opening",
        type_ = "string",
        json_path = ".status.nextOpen",
        description = "When it next opens"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("(has(self.schedule.cron) || has(self.schedule.rrule)) == has(self.duration)").message("a cron or rrule schedule needs a duration (e.g. 4h); ranges need none").field_path(".duration"))]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceWindowSpec {
    /// `maintenance` (changes may deploy while it is open) or `blackout`
    /// (changes are frozen while it is open, except `allowTypes`).
    #[serde(default)]
    pub kind: WindowKind,
    /// The IANA time zone the schedule is read in, e.g. `Europe/Berlin`.
    #[serde(default = "utc")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: String,
    /// When it opens: one of `cron`, `rrule` or `ranges`.
    pub schedule: Schedule,
    /// How long each opening lasts (with `cron` or `rrule`), e.g. `4h`, `90m`, `2d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 16))]
    pub duration: Option<String>,
    /// Blackout only: change types still allowed while it is open, e.g. `[emergency]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3))]
    pub allow_types: Vec<ChangeType>,
    /// Cut out of the schedule: whole local days (`date`) or ranges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub exclusions: Vec<Exclusion>,
}

/// A whole local day (in the window's time zone) or a range cut out of
/// the schedule: exactly one of the two.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.date) != has(self.range)").message("give a date or a range"))]
#[serde(rename_all = "camelCase")]
pub struct Exclusion {
    /// e.g. `2026-12-24`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<chrono::NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<Range>,
}

fn utc() -> String {
    "UTC".into()
}

/// When a window opens: exactly one of the three.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("[has(self.cron), has(self.rrule), has(self.ranges)].filter(x, x).size() == 1").message("give exactly one of cron, rrule or ranges"))]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// A five-field cron expression of the openings, e.g. `0 2 * * SAT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 200))]
    pub cron: Option<String>,
    /// An RFC 5545 recurrence rule, e.g. `FREQ=MONTHLY;BYDAY=2TU;BYHOUR=22`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 500))]
    pub rrule: Option<String>,
    /// Explicit openings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    pub ranges: Option<Vec<Range>>,
}

/// One explicit opening.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Range {
    /// Inclusive (RFC 3339).
    pub start: DateTime<Utc>,
    /// Exclusive (RFC 3339).
    pub end: DateTime<Utc>,
}

/// The status of a MaintenanceWindow.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceWindowStatus {
    /// Open now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<bool>,
    /// While open: when it closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_until: Option<DateTime<Utc>>,
    /// When it next opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_open: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl MaintenanceWindowSpec {
    /// The window as the server's API takes it (`PUT
    /// /api/v1/tenants/{tenant}/windows/{name}`); the server checks it
    /// with the core's rules (zone, schedule, duration).
    pub fn to_server(&self) -> serde_json::Value {
        let duration = self.duration.clone().unwrap_or_default();
        let schedule = match (
            &self.schedule.cron,
            &self.schedule.rrule,
            &self.schedule.ranges,
        ) {
            (Some(expr), _, _) => {
                serde_json::json!({ "cron": { "expr": expr, "duration": duration } })
            }
            (None, Some(rule), _) => {
                serde_json::json!({ "rrule": { "rule": rule, "duration": duration } })
            }
            (None, None, ranges) => {
                serde_json::json!({ "ranges": ranges.clone().unwrap_or_default() })
            }
        };
        let mut spec = serde_json::json!({
            "kind": self.kind,
            "timeZone": self.time_zone,
            "schedule": schedule,
        });
        if !self.allow_types.is_empty() {
            spec["allowTypes"] = serde_json::json!(self.allow_types);
        }
        if !self.exclusions.is_empty() {
            spec["exclusions"] = serde_json::json!(self.exclusions);
        }
        spec
    }

    /// The server's window as a MaintenanceWindow says it (a mirror's
    /// spec): what [`Self::to_server`] maps back to the same window.
    pub fn from_server(window: &changegate_core::window::WindowSpec) -> Self {
        use changegate_core::window::{Exclusion as Cut, Schedule as Server, format_duration};
        let (schedule, duration) = match &window.schedule {
            Server::Cron { expr, duration } => (
                Schedule {
                    cron: Some(expr.clone()),
                    ..Schedule::default()
                },
                Some(format_duration(*duration)),
            ),
            Server::Rrule { rule, duration } => (
                Schedule {
                    rrule: Some(rule.clone()),
                    ..Schedule::default()
                },
                Some(format_duration(*duration)),
            ),
            Server::Ranges(ranges) => (
                Schedule {
                    ranges: Some(
                        ranges
                            .iter()
                            .map(|i| Range {
                                start: i.start,
                                end: i.end,
                            })
                            .collect(),
                    ),
                    ..Schedule::default()
                },
                None,
            ),
        };
        MaintenanceWindowSpec {
            kind: window.kind,
            time_zone: window.time_zone.clone(),
            schedule,
            duration,
            allow_types: window.allow_types.clone(),
            exclusions: window
                .exclusions
                .iter()
                .map(|e| match e {
                    Cut::Date(d) => Exclusion {
                        date: Some(*d),
                        range: None,
                    },
                    Cut::Range(i) => Exclusion {
                        date: None,
                        range: Some(Range {
                            start: i.start,
                            end: i.end,
                        }),
                    },
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use changegate_core::window::WindowSpec;

    fn spec(yaml: &str) -> MaintenanceWindowSpec {
        serde_yaml_ng::from_str(yaml).expect("a spec")
    }

    #[test]
    fn each_schedule_maps_onto_the_servers_window() {
        let weekly =
            spec("timeZone: Europe/Berlin\nschedule: {cron: '0 2 * * SAT'}\nduration: 4h\n");
        let w: WindowSpec = serde_json::from_value(weekly.to_server()).expect("the server's shape");
        assert_eq!(w.time_zone, "Europe/Berlin");
        let freeze = spec(
            "kind: blackout\nschedule: {ranges: [{start: '2026-12-17T23:00:00Z', end: '2027-01-03T23:00:00Z'}]}\nallowTypes: [emergency]\n",
        );
        let w: WindowSpec = serde_json::from_value(freeze.to_server()).expect("the server's shape");
        assert_eq!(w.kind, WindowKind::Blackout);
        assert_eq!(w.allow_types, [ChangeType::Emergency]);
        let monthly = spec("schedule: {rrule: 'FREQ=MONTHLY;BYDAY=2TU;BYHOUR=22'}\nduration: 3h\n");
        let w: WindowSpec =
            serde_json::from_value(monthly.to_server()).expect("the server's shape");
        assert_eq!(w.time_zone, "UTC");
    }

    #[test]
    fn a_servers_window_reads_back_as_the_same_window() {
        for written in [
            serde_json::json!({"kind": "blackout", "timeZone": "Europe/Berlin",
                "schedule": {"cron": {"expr": "0 2 * * SAT", "duration": "1h30m"}},
                "exclusions": [{"date": "2026-12-26"},
                               {"range": {"start": "2026-12-31T00:00:00Z", "end": "2027-01-01T00:00:00Z"}}],
                "allowTypes": ["emergency"]}),
            serde_json::json!({"schedule": {"rrule": {"rule": "FREQ=MONTHLY;BYDAY=2TU;BYHOUR=22", "duration": "3h"}}}),
            serde_json::json!({"schedule": {"ranges": [{"start": "2026-12-17T23:00:00Z", "end": "2027-01-03T23:00:00Z"}]}}),
        ] {
            let window: WindowSpec = serde_json::from_value(written.clone()).expect("a window");
            let mirrored = MaintenanceWindowSpec::from_server(&window);
            let back: WindowSpec =
                serde_json::from_value(mirrored.to_server()).expect("the server's shape");
            assert_eq!(back, window, "{written}");
        }
    }
}
