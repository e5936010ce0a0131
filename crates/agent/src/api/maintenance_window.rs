//! MaintenanceWindow: when changes may (Maintenance) or may not (Blackout)
//! happen, for some or all tenants. Cluster-scoped, owned by the MSP.

use super::common::{ChangeType, Interval, conditions_schema};
use chrono::{DateTime, NaiveDate, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// When changes may happen (`Maintenance`) or are frozen (`Blackout`).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "changegate.dev",
    version = "v1alpha1",
    kind = "MaintenanceWindow",
    plural = "maintenancewindows",
    shortname = "mw",
    category = "changegate",
    status = "MaintenanceWindowStatus",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Time Zone","type":"string","jsonPath":".spec.timeZone"}"#,
    printcolumn = r#"{"name":"Open","type":"boolean","jsonPath":".status.open"}"#,
    printcolumn = r#"{"name":"Next","type":"string","jsonPath":".status.nextWindow.start"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("self.type == 'Blackout' || !has(self.allowTypes) || size(self.allowTypes) == 0")
        .message("spec.allowTypes is only meaningful for a Blackout window").field_path(".allowTypes")
)]
pub struct MaintenanceWindowSpec {
    /// Tenants this window applies to; empty means every tenant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub tenants: Vec<String>,
    /// `Maintenance` opens a period in which changes may deploy; `Blackout`
    /// freezes changes (except `allowTypes`) while it is open.
    #[serde(rename = "type", default)]
    pub window_type: WindowType,
    /// IANA time zone the schedule is computed in, e.g. `Europe/Berlin`.
    #[serde(default = "utc")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: String,
    /// When the window is open: one of `cron` + `duration`, `rrule` +
    /// `duration`, or explicit `ranges`.
    pub schedule: Schedule,
    /// Dates (whole days in `timeZone`) or ranges cut out of the schedule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 366))]
    pub exclusions: Vec<Exclusion>,
    /// Blackout only: change types still allowed while it is open, typically `[Emergency]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub allow_types: Vec<ChangeType>,
}

fn utc() -> String {
    "UTC".into()
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, schemars::JsonSchema,
)]
pub enum WindowType {
    #[default]
    Maintenance,
    Blackout,
}

/// A recurring or explicit schedule. Recurrences are evaluated in the
/// window's time zone on wall-clock time; see the README for daylight saving.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("(has(self.cron) ? 1 : 0) + (has(self.rrule) ? 1 : 0) + (has(self.ranges) ? 1 : 0) == 1")
        .message("set exactly one of schedule.cron, schedule.rrule or schedule.ranges"),
    validation = Rule::new("!(has(self.cron) || has(self.rrule)) || has(self.duration)")
        .message("schedule.duration is required with schedule.cron and schedule.rrule").field_path(".duration"),
    validation = Rule::new("!has(self.ranges) || !has(self.duration)")
        .message("schedule.duration does not apply to schedule.ranges").field_path(".duration")
)]
pub struct Schedule {
    /// Five-field cron expression for window starts, e.g. `0 2 * * SAT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub cron: Option<String>,
    /// RFC 5545 recurrence rule for window starts, e.g.
    /// `FREQ=MONTHLY;BYDAY=2TU;BYHOUR=22;BYMINUTE=0`; an optional
    /// `DTSTART:...` line before an `RRULE:` line anchors INTERVAL counting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub rrule: Option<String>,
    /// How long each window stays open (wall-clock), e.g. `4h` or `90m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("duration(self) > duration('0s')").message("schedule.duration must be greater than zero"))]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"))]
    pub duration: Option<kube::core::Duration>,
    /// Explicit windows, each `[start, end)` in RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub ranges: Option<Vec<TimeRange>>,
}

/// One explicit `[start, end)` range.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[x_kube(
    cel,
    validation = Rule::new("self.end > self.start").message("end must be after start").field_path(".end")
)]
pub struct TimeRange {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A whole local day (`date`) or an explicit range cut out of a schedule.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("has(self.date) != (has(self.start) || has(self.end))")
        .message("an exclusion is either a date or a start/end range"),
    validation = Rule::new("has(self.start) == has(self.end)").message("an exclusion range needs both start and end"),
    validation = Rule::new("!has(self.start) || !has(self.end) || self.end > self.start")
        .message("end must be after start").field_path(".end")
)]
pub struct Exclusion {
    /// A calendar date (`YYYY-MM-DD`) in the window's time zone, excluded as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTime<Utc>>,
}

/// Observed state of a window, refreshed by the controller at each boundary.
/// Admission never trusts it: it evaluates the schedule itself.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceWindowStatus {
    #[serde(default)]
    pub open: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_window: Option<Interval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_window: Option<Interval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}
