//! Test helpers: windows written as the YAML a platform team applies, and
//! instants written as RFC 3339, so scenarios read like the resources.

use super::{CompiledWindow, WindowError};
use crate::api::{Interval, MaintenanceWindowSpec};
use chrono::{DateTime, Utc};

/// Compiles the spec in `yaml` as window `name`.
pub(crate) fn window(name: &str, yaml: &str) -> CompiledWindow {
    CompiledWindow::compile(name, &spec(yaml)).expect("the spec compiles")
}

/// The error compiling the spec in `yaml`, as the user would read it.
pub(crate) fn compile_error(yaml: &str) -> WindowError {
    CompiledWindow::compile("invalid", &spec(yaml)).expect_err("the spec is rejected")
}

fn spec(yaml: &str) -> MaintenanceWindowSpec {
    serde_yaml_ng::from_str(yaml).expect("the spec is well-formed YAML")
}

/// A naive local date-time written `YYYY-MM-DD HH:MM`.
pub(crate) fn local(s: &str) -> chrono::NaiveDateTime {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").expect("test literal")
}

pub(crate) fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("an RFC 3339 test instant")
        .to_utc()
}

pub(crate) fn interval(start: &str, end: &str) -> Interval {
    Interval {
        start: at(start),
        end: at(end),
    }
}
