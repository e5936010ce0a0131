//! Test helpers: windows written as YAML specs, and instants written as
//! RFC 3339, so scenarios read like the windows people configure.

use super::{CompiledWindow, Interval, WindowError, WindowSpec};
use chrono::{DateTime, Utc};

/// Compiles the spec in `yaml` as window `name`.
pub(crate) fn window(name: &str, yaml: &str) -> CompiledWindow {
    CompiledWindow::compile(name, &spec(yaml)).expect("the spec compiles")
}

/// The error compiling the spec in `yaml`, as the user would read it.
pub(crate) fn compile_error(yaml: &str) -> WindowError {
    CompiledWindow::compile("invalid", &spec(yaml)).expect_err("the spec is rejected")
}

pub(crate) fn spec(yaml: &str) -> WindowSpec {
    from_yaml(yaml).expect("the spec is well-formed YAML")
}

/// Reads YAML with enums written as one-key maps (`cron: {...}`), as JSON
/// writes them, rather than serde_yaml's `!cron` tags.
pub(crate) fn from_yaml(yaml: &str) -> Result<WindowSpec, serde_yaml_ng::Error> {
    serde_yaml_ng::with::singleton_map_recursive::deserialize(
        serde_yaml_ng::Deserializer::from_str(yaml),
    )
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
