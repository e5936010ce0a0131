//! A ChangeRequest's spec → the change the server is asked to hold: its
//! targets resolved to the tenant's configuration items bound to them (from
//! the bundle), their images as the approved content. Pure: what it cannot
//! map is an [`Invalid`] naming the field, in words that say what to do.

use crate::change_request::{ChangeRequestSpec, Target};
use changegate_core::catalogue::ConfigurationItem;
use changegate_core::change::ChangeType;
use changegate_core::gate::{self, Workload};
use changegate_core::window::{CompiledWindow, Interval, WindowKind, WindowSpec};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A spec field the mapping refuses, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The field's path, e.g. `spec.targets[0]`.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Where a resource lives: its cluster, namespace and tenant.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub cluster: &'a str,
    pub namespace: &'a str,
    pub tenant: &'a str,
}

/// The change a spec asks for, in the server's terms (the content fields
/// are those of `POST /api/v1/tenants/{tenant}/changes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Requested {
    #[serde(rename = "type")]
    pub kind: ChangeType,
    pub implementer: Option<String>,
    pub content: Content,
    pub submit: bool,
}

/// A change's content as the server's API names its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Content {
    pub title: String,
    pub description: String,
    pub justification: String,
    pub risk_answers: BTreeMap<String, String>,
    pub configuration_items: Vec<String>,
    pub artifacts: Vec<String>,
    pub planned_start: Option<chrono::DateTime<chrono::Utc>>,
    pub planned_end: Option<chrono::DateTime<chrono::Utc>>,
    pub implementation_plan: String,
    pub test_plan: String,
    pub test_evidence: String,
    pub backout_plan: String,
    pub automatic_rollback: bool,
    pub communication_plan: String,
    pub template: Option<String>,
}

/// What the bundle knows of the tenant: its configuration items bound to
/// this cluster, and its windows.
#[derive(Debug, Clone, Copy)]
pub struct Known<'a> {
    pub items: &'a BTreeMap<String, ConfigurationItem>,
    pub windows: &'a BTreeMap<String, WindowSpec>,
}

/// Maps `spec` of a ChangeRequest at `place` onto the change to request,
/// resolving each target to the configuration items of the tenant bound
/// to it, and a named window to its slot: the opening that holds, or
/// else follows, `created` (the resource's creation, so the slot stays
/// the same on every reconcile).
pub fn requested(
    spec: &ChangeRequestSpec,
    place: Place<'_>,
    known: Known<'_>,
    created: DateTime<Utc>,
) -> Result<Requested, Invalid> {
    let items = known.items;
    let (planned_start, planned_end) = match &spec.window {
        None => (spec.planned_start, spec.planned_end),
        Some(name) => {
            let slot = window_slot(name, place, known.windows, created)?;
            (Some(slot.start), Some(slot.end))
        }
    };
    // Items named outright may be bound elsewhere (a firewall, a
    // pipeline): the bundle has only this cluster's, so the server judges them.
    let mut configuration_items = spec.configuration_items.clone();
    let mut artifacts: Vec<String> = Vec::new();
    for (i, target) in spec.targets.iter().enumerate() {
        let bound = bound_items(target, place, items);
        if bound.is_empty() {
            return Err(Invalid {
                field: format!("spec.targets[{i}]"),
                message: unbound(target, place),
            });
        }
        for name in bound {
            if !configuration_items.contains(&name) {
                configuration_items.push(name);
            }
        }
        for image in &target.images {
            let image = image.trim().to_string();
            if !artifacts.contains(&image) {
                artifacts.push(image);
            }
        }
    }
    Ok(Requested {
        kind: spec.type_,
        implementer: spec.implementer.clone(),
        submit: spec.submit,
        content: Content {
            title: spec.title.clone(),
            description: spec.description.clone(),
            justification: spec.justification.clone(),
            risk_answers: spec.risk_answers.clone(),
            configuration_items,
            artifacts,
            planned_start,
            planned_end,
            implementation_plan: spec.implementation_plan.clone(),
            test_plan: spec.test_plan.clone(),
            test_evidence: spec.test_evidence.clone(),
            backout_plan: spec.backout.plan.clone(),
            automatic_rollback: spec.backout.automatic,
            communication_plan: spec.communication_plan.clone(),
            template: spec.template.clone(),
        },
    })
}

/// The opening of window `name` holding or following `at`.
fn window_slot(
    name: &str,
    place: Place<'_>,
    windows: &BTreeMap<String, WindowSpec>,
    at: DateTime<Utc>,
) -> Result<Interval, Invalid> {
    let invalid = |message: String| Invalid {
        field: "spec.window".into(),
        message,
    };
    let Some(spec) = windows.get(name) else {
        let known: Vec<&str> = windows
            .iter()
            .filter(|(_, w)| w.kind == WindowKind::Maintenance)
            .map(|(n, _)| n.as_str())
            .collect();
        return Err(invalid(format!(
            "tenant {} has no window {name:?}; apply its MaintenanceWindow, or name one of: {}",
            place.tenant,
            if known.is_empty() {
                "(none)".to_string()
            } else {
                known.join(", ")
            }
        )));
    };
    if spec.kind == WindowKind::Blackout {
        return Err(invalid(format!(
            "{name} is a blackout; name a maintenance window to deploy in"
        )));
    }
    let window = CompiledWindow::compile(name, spec).map_err(|e| invalid(e.to_string()))?;
    window
        .current(at)
        .or_else(|| window.next_window(at))
        .ok_or_else(|| invalid(format!("{name} does not open again")))
}

/// The names of the items bound to `target`, by the gate's own rule
/// ([`gate::Target::is_bound_to`]). A selector target stands for any
/// workload carrying its labels.
fn bound_items(
    target: &Target,
    place: Place<'_>,
    items: &BTreeMap<String, ConfigurationItem>,
) -> Vec<String> {
    let workload = gate::Target::Workload(Workload {
        cluster: place.cluster.to_string(),
        namespace: place.namespace.to_string(),
        kind: target.kind.as_str().to_string(),
        name: target.name.clone().unwrap_or_default(),
        labels: target
            .selector
            .as_ref()
            .map(|s| s.match_labels.clone())
            .unwrap_or_default(),
    });
    items
        .iter()
        .filter(|(name, item)| workload.is_bound_to(name, item))
        .map(|(name, _)| name.clone())
        .collect()
}

/// What to do about a target no item binds.
fn unbound(target: &Target, place: Place<'_>) -> String {
    let kind = target.kind.as_str();
    let Place {
        cluster,
        namespace,
        tenant,
    } = place;
    let what = match (&target.name, &target.selector) {
        (Some(name), _) => format!("name: {name}"),
        (None, Some(s)) => format!(
            "selector: {{{}}}",
            s.match_labels
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (None, None) => String::new(),
    };
    format!(
        "no configuration item of tenant {tenant} is bound to this {kind} in namespace {namespace} of cluster {cluster}; \
         add one (changegate apply -f) with enforcement: {{kubernetes: {{cluster: {cluster}, namespace: {namespace}, kind: {kind}, {what}}}}}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change_request::{Backout, Selector, WorkloadKind};
    use changegate_core::catalogue::{Enforcement, WorkloadBinding};

    fn item(name: Option<&str>, selector: &[(&str, &str)]) -> ConfigurationItem {
        ConfigurationItem {
            kind: "kubernetes-workload".into(),
            owner: None,
            criticality: Default::default(),
            environment: String::new(),
            enforcement: Some(Enforcement::Kubernetes(WorkloadBinding {
                cluster: "prod".into(),
                namespace: "shop".into(),
                kind: "Deployment".into(),
                name: name.map(Into::into),
                selector: selector
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            })),
        }
    }

    fn spec(targets: Vec<Target>) -> ChangeRequestSpec {
        serde_json::from_value::<ChangeRequestSpec>(serde_json::json!({"title": "Ship web"}))
            .map(|s| ChangeRequestSpec { targets, ..s })
            .unwrap()
    }

    static NONE: BTreeMap<String, WindowSpec> = BTreeMap::new();

    fn known<'a>(
        items: &'a BTreeMap<String, ConfigurationItem>,
        windows: &'a BTreeMap<String, WindowSpec>,
    ) -> Known<'a> {
        Known { items, windows }
    }

    fn created() -> DateTime<Utc> {
        // Wednesday 2026-11-25, 10:00 UTC.
        chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 25, 10, 0, 0).unwrap()
    }

    #[test]
    fn a_named_window_plans_the_change_into_its_opening_after_creation() {
        let windows: BTreeMap<String, WindowSpec> = serde_json::from_value(serde_json::json!({
            "weekly": { "timeZone": "Europe/Berlin", "schedule": { "cron": { "expr": "0 2 * * SAT", "duration": "4h" } } },
            "freeze": { "kind": "blackout", "schedule": { "ranges": [ { "start": "2026-12-18T00:00:00Z", "end": "2027-01-04T00:00:00Z" } ] } }
        }))
        .unwrap();
        let items = BTreeMap::new();
        let with = |w: &str| ChangeRequestSpec {
            window: Some(w.into()),
            ..spec(vec![])
        };
        let r = requested(&with("weekly"), PLACE, known(&items, &windows), created()).unwrap();
        assert_eq!(
            r.content.planned_start.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-11-28T01:00:00+00:00"),
            "Saturday 02:00 Berlin"
        );
        assert_eq!(
            r.content.planned_end.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-11-28T05:00:00+00:00")
        );
        let e = requested(&with("monthly"), PLACE, known(&items, &windows), created()).unwrap_err();
        assert_eq!(e.field, "spec.window");
        assert!(e.message.contains("name one of: weekly"), "{e}");
        let e = requested(&with("freeze"), PLACE, known(&items, &windows), created()).unwrap_err();
        assert!(e.message.contains("blackout"), "{e}");
    }

    const PLACE: Place<'static> = Place {
        cluster: "prod",
        namespace: "shop",
        tenant: "client-a",
    };

    #[test]
    fn targets_become_the_items_bound_to_them_and_their_images_the_content() {
        let items = BTreeMap::from([
            ("web".to_string(), item(Some("web"), &[])),
            ("api".to_string(), item(None, &[("tier", "api")])),
            ("db".to_string(), item(Some("db"), &[])),
        ]);
        let mut s = spec(vec![
            Target {
                kind: WorkloadKind::Deployment,
                name: Some("web".into()),
                selector: None,
                images: vec!["r.example/web@sha256:1".into()],
            },
            Target {
                kind: WorkloadKind::Deployment,
                name: None,
                selector: Some(Selector {
                    match_labels: BTreeMap::from([
                        ("tier".into(), "api".into()),
                        ("team".into(), "x".into()),
                    ]),
                }),
                images: vec!["r.example/api:2".into(), "r.example/web@sha256:1".into()],
            },
        ]);
        s.backout = Backout {
            plan: "roll back".into(),
            automatic: true,
        };
        let r = requested(&s, PLACE, known(&items, &NONE), created()).unwrap();
        assert_eq!(r.kind, ChangeType::Normal);
        assert!(r.submit, "a ChangeRequest is submitted unless it says not");
        assert_eq!(r.content.configuration_items, ["web", "api"]);
        assert_eq!(
            r.content.artifacts,
            ["r.example/web@sha256:1", "r.example/api:2"]
        );
        assert_eq!(r.content.backout_plan, "roll back");
        assert!(r.content.automatic_rollback);
    }

    #[test]
    fn a_target_no_item_binds_is_refused_naming_it_and_the_binding_to_add() {
        let items = BTreeMap::from([("web".to_string(), item(Some("web"), &[]))]);
        let s = spec(vec![Target {
            kind: WorkloadKind::StatefulSet,
            name: Some("web".into()),
            selector: None,
            images: vec![],
        }]);
        let e = requested(&s, PLACE, known(&items, &NONE), created()).unwrap_err();
        assert_eq!(e.field, "spec.targets[0]");
        assert!(e.message.contains("kind: StatefulSet, name: web"), "{e}");
        assert!(e.message.contains("tenant client-a"), "{e}");
    }
}
