//! Apply-time checks of the custom resources (DESIGN §7): what the CRD's
//! schema cannot know is judged with the core's rules and the bundle the
//! operator holds, never a call to the server, and a refusal names the
//! field. A ChangeRequest's targets must be bound to configuration items
//! of the namespace's tenant (the refusal says which binding to add); a
//! MaintenanceWindow must compile (time zone, schedule, duration); a
//! Release's runbook must be about the changes it ships.
//! Without a bundle, or for a tenant the bundle does not hold, the spec
//! is admitted and the server judges it (status then says why).
//! Deletion is never judged here.

use crate::bundle::Snapshot;
use changegate_core::window::{CompiledWindow, WindowSpec};
use changegate_resources::change_request::ChangeRequestSpec;
use changegate_resources::maintenance_window::MaintenanceWindowSpec;
use changegate_resources::release::ReleaseSpec;
use changegate_resources::to_record::{self, Invalid, Known, Place};
use serde_json::Value;

/// Why `object` (a changegate resource of `kind` in `namespace` of
/// `tenant`) cannot be applied, if it cannot.
pub fn refusal(
    kind: &str,
    object: &Value,
    namespace: &str,
    tenant: &str,
    snapshot: Option<&Snapshot>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Invalid> {
    match kind {
        "ChangeRequest" => {
            // The schema refuses what does not read; it is not ours to say.
            let spec: ChangeRequestSpec = serde_json::from_value(object["spec"].clone()).ok()?;
            let snapshot = snapshot?;
            let known = snapshot
                .bundle
                .tenants
                .iter()
                .find(|t| t.tenant == tenant)?;
            let place = Place {
                cluster: &snapshot.cluster,
                namespace,
                tenant,
            };
            if let Some(template) = &spec.template
                && !known.templates.iter().any(|t| t == template)
            {
                let names = if known.templates.is_empty() {
                    "it has none".to_string()
                } else {
                    format!("its templates: {}", known.templates.join(", "))
                };
                return Some(Invalid {
                    field: "spec.template".into(),
                    message: format!(
                        "tenant {tenant} has no standard-change template {template:?}; {names}"
                    ),
                });
            }
            let known = Known {
                items: &known.configuration_items,
                windows: &known.windows,
            };
            // Only whether a slot exists is judged here; the reconciler
            // plans it from the resource's creation.
            let created = object["metadata"]["creationTimestamp"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map_or(now, |t| t.with_timezone(&chrono::Utc));
            to_record::requested(&spec, place, known, created).err()
        }
        "MaintenanceWindow" => {
            let spec: MaintenanceWindowSpec =
                serde_json::from_value(object["spec"].clone()).ok()?;
            let window: WindowSpec = match serde_json::from_value(spec.to_server()) {
                Ok(w) => w,
                Err(e) => {
                    return Some(Invalid {
                        field: "spec".into(),
                        message: e.to_string(),
                    });
                }
            };
            let name = object["metadata"]["name"].as_str().unwrap_or("window");
            CompiledWindow::compile(name, &window).err().map(|e| {
                let field = e.field();
                let message = e.to_string();
                let message = message
                    .strip_prefix(&format!("{field}: "))
                    .unwrap_or(&message)
                    .to_string();
                Invalid {
                    field: resource_field(&field),
                    message,
                }
            })
        }
        "Release" => {
            let spec: ReleaseSpec = serde_json::from_value(object["spec"].clone()).ok()?;
            spec.refusal()
        }
        _ => None,
    }
}

/// Why someone other than the operator may not write `object` (a
/// changegate resource of `kind`, `old` before an update) as a mirror
/// (DESIGN §7): the names `chg-<n>` (ChangeRequests) and `mw-<name>`
/// (MaintenanceWindows) are reserved for the mirrors of what the server
/// holds; a mirror's spec and its origin label are the operator's; nobody
/// else puts the origin label on a resource. Its other labels and
/// annotations stay anyone's (a GitOps tool's tracking label).
pub fn mirror_refusal(kind: &str, object: &Value, old: Option<&Value>) -> Option<Invalid> {
    use changegate_resources::{ORIGIN_LABEL, ORIGIN_SERVER, mirrored_number, mirrored_window};
    let reserved = |name: &str| match kind {
        "ChangeRequest" => {
            mirrored_number(name).map(|n| format!("{n}, a change raised on the server"))
        }
        "MaintenanceWindow" => {
            mirrored_window(name).map(|w| format!("the tenant's window {w} on the server"))
        }
        _ => None,
    };
    if !matches!(kind, "ChangeRequest" | "MaintenanceWindow") {
        return None;
    }
    let origin = |o: &Value| {
        o["metadata"]["labels"][ORIGIN_LABEL]
            .as_str()
            .map(str::to_string)
    };
    let label_field = format!("metadata.labels[{ORIGIN_LABEL}]");
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    match old {
        Some(old) if origin(old).as_deref() == Some(ORIGIN_SERVER) => {
            let what = reserved(name).unwrap_or_else(|| "what the server holds".to_string());
            let read_only = |field: String| Invalid {
                field,
                message: format!(
                    "{name} mirrors {what}: it is read-only here; change it on the server, or leave it: deleting it changes nothing there"
                ),
            };
            if origin(object) != origin(old) {
                return Some(read_only(label_field));
            }
            if object["spec"] != old["spec"] {
                return Some(read_only("spec".into()));
            }
            None
        }
        _ => {
            if origin(object).is_some() {
                return Some(Invalid {
                    field: label_field,
                    message: format!(
                        "{ORIGIN_LABEL} is written by the changegate operator on the mirrors of what the server holds; remove it"
                    ),
                });
            }
            if old.is_none()
                && let Some(what) = reserved(name)
            {
                return Some(Invalid {
                    field: "metadata.name".into(),
                    message: format!(
                        "{name} is reserved for the mirror of {what}; name your {kind} otherwise"
                    ),
                });
            }
            None
        }
    }
}

/// Why a resource created by `user` (as the API server authenticated
/// them, and the mutating webhook stamped) cannot be: a name the cluster
/// does not map to the tenant's people (explicitly, or as an e-mail
/// address under the cluster's OIDC prefix). Without a bundle, or for a
/// tenant it does not hold, the server judges it.
pub fn author_refusal(user: &str, tenant: &str, snapshot: Option<&Snapshot>) -> Option<Invalid> {
    let snapshot = snapshot?;
    let known = snapshot
        .bundle
        .tenants
        .iter()
        .find(|t| t.tenant == tenant)?;
    let mapped = known.identities.iter().any(|i| i == user)
        || snapshot
            .bundle
            .email_prefix
            .as_deref()
            .is_some_and(|p| user.strip_prefix(p).is_some_and(|a| a.contains('@')));
    if mapped {
        return None;
    }
    let field = format!(
        "metadata.annotations[{}]",
        changegate_resources::REQUESTED_BY_ANNOTATION
    );
    let message = if user.starts_with("system:") && !user.starts_with("system:serviceaccount:") {
        format!("{user} is a Kubernetes system identity; it never requests changes")
    } else {
        format!(
            "Kubernetes user {user} of cluster {} is not mapped to a user of tenant {tenant}: a tenant administrator maps it (the portal's settings, People → Kubernetes names, or PUT /api/v1/tenants/{tenant}/clusters/{}/identities/{user})",
            snapshot.cluster, snapshot.cluster
        )
    };
    Some(Invalid { field, message })
}

/// A window field as the server names it, as the resource names it.
fn resource_field(server: &str) -> String {
    let f = server.trim_start_matches("spec.");
    let f = f.replace("schedule.duration", "duration");
    format!("spec.{f}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{Bundle, TenantBundle};
    use changegate_core::catalogue::{ConfigurationItem, Enforcement, WorkloadBinding};
    use changegate_core::policy::Enforcement as Mode;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn snapshot() -> Snapshot {
        let web = ConfigurationItem {
            kind: "kubernetes-workload".into(),
            owner: None,
            criticality: Default::default(),
            environment: String::new(),
            enforcement: Some(Enforcement::Kubernetes(WorkloadBinding {
                cluster: "local".into(),
                namespace: "shop".into(),
                kind: "Deployment".into(),
                name: Some("web".into()),
                selector: BTreeMap::new(),
            })),
        };
        let bundle = Bundle {
            email_prefix: None,
            cluster: "local".into(),
            tenants: vec![TenantBundle {
                tenant: "client-a".into(),
                enforcement: Mode::Enforce,
                window_required: vec![],
                configuration_items: BTreeMap::from([("web".to_string(), web)]),
                windows: BTreeMap::new(),
                changes: vec![],
                templates: vec!["restart-web".into()],
                identities: vec!["changegate-admin".into()],
            }],
        };
        Snapshot::new("e".into(), bundle, chrono::Utc::now())
    }

    fn judge(
        kind: &str,
        object: &Value,
        namespace: &str,
        tenant: &str,
        snapshot: Option<&Snapshot>,
    ) -> Option<Invalid> {
        refusal(
            kind,
            object,
            namespace,
            tenant,
            snapshot,
            chrono::Utc::now(),
        )
    }

    fn chg(kind: &str, name: &str) -> Value {
        json!({"metadata": {"name": "x"}, "spec": {"title": "Ship", "targets": [{"kind": kind, "name": name}]}})
    }

    #[test]
    fn a_target_no_item_binds_is_refused_naming_the_field_and_the_binding() {
        let s = snapshot();
        assert_eq!(
            judge(
                "ChangeRequest",
                &chg("Deployment", "web"),
                "shop",
                "client-a",
                Some(&s)
            ),
            None
        );
        let e = judge(
            "ChangeRequest",
            &chg("Deployment", "api"),
            "shop",
            "client-a",
            Some(&s),
        )
        .expect("refused");
        assert_eq!(e.field, "spec.targets[0]");
        assert!(e.message.contains("name: api"), "{}", e.message);
        // A tenant the bundle does not hold, or no bundle: the server judges.
        assert_eq!(
            judge(
                "ChangeRequest",
                &chg("Deployment", "api"),
                "shop",
                "client-z",
                Some(&s)
            ),
            None
        );
        assert_eq!(
            judge(
                "ChangeRequest",
                &chg("Deployment", "api"),
                "shop",
                "client-a",
                None
            ),
            None
        );
    }

    #[test]
    fn a_window_that_does_not_compile_is_refused_naming_the_field() {
        let mw = |zone: &str, cron: &str| {
            json!({"metadata": {"name": "weekly"}, "spec": {"timeZone": zone,
                   "schedule": {"cron": cron}, "duration": "4h"}})
        };
        assert_eq!(
            judge(
                "MaintenanceWindow",
                &mw("Europe/Berlin", "0 2 * * SAT"),
                "shop",
                "client-a",
                None
            ),
            None
        );
        let e = judge(
            "MaintenanceWindow",
            &mw("Mars/Olympus", "0 2 * * SAT"),
            "shop",
            "client-a",
            None,
        )
        .expect("refused");
        assert_eq!(e.field, "spec.timeZone", "{e}");
        let e = judge(
            "MaintenanceWindow",
            &mw("UTC", "every saturday"),
            "shop",
            "client-a",
            None,
        )
        .expect("refused");
        assert_eq!(e.field, "spec.schedule.cron", "{e}");
    }

    #[test]
    fn a_release_whose_runbook_names_another_change_is_refused_naming_the_step() {
        let rel = |change: &str| {
            json!({"metadata": {"name": "nov"}, "spec": {"changes": ["web-2-4-1"],
                   "runbook": [{"kind": "deploy", "title": "Roll out", "change": change}]}})
        };
        assert_eq!(
            judge("Release", &rel("web-2-4-1"), "shop", "client-a", None),
            None
        );
        let e = judge("Release", &rel("api-3"), "shop", "client-a", None).expect("refused");
        assert_eq!(e.field, "spec.runbook[0].change", "{e}");
    }

    #[test]
    fn an_unknown_template_is_refused_naming_the_field_and_the_templates() {
        let chg = |template: &str| {
            json!({"metadata": {"name": "x"}, "spec": {"type": "standard", "title": "Restart", "template": template,
                   "configurationItems": ["web"]}})
        };
        let snapshot = snapshot();
        assert_eq!(
            judge(
                "ChangeRequest",
                &chg("restart-web"),
                "shop",
                "client-a",
                Some(&snapshot)
            ),
            None
        );
        let e = judge(
            "ChangeRequest",
            &chg("reboot"),
            "shop",
            "client-a",
            Some(&snapshot),
        )
        .expect("refused");
        assert_eq!(e.field, "spec.template");
        assert!(e.message.contains("its templates: restart-web"), "{e}");
    }

    #[test]
    fn a_resource_by_an_unmapped_kubernetes_user_is_refused_at_apply() {
        let snapshot = snapshot();
        assert_eq!(
            author_refusal("changegate-admin", "client-a", Some(&snapshot)),
            None
        );
        let e = author_refusal("mallory", "client-a", Some(&snapshot)).expect("refused");
        assert_eq!(e.field, "metadata.annotations[changegate.dev/requested-by]");
        assert!(
            e.message
                .contains("not mapped to a user of tenant client-a"),
            "{e}"
        );
        // Another tenant, or no bundle: the server judges.
        assert_eq!(author_refusal("mallory", "client-b", Some(&snapshot)), None);
        assert_eq!(author_refusal("mallory", "client-a", None), None);
        // Under the cluster's OIDC prefix, an address passes here.
        let mut bundle = snapshot.bundle.clone();
        bundle.email_prefix = Some("oidc:".into());
        let prefixed = Snapshot::new("f".into(), bundle, chrono::Utc::now());
        assert_eq!(
            author_refusal("oidc:carol@client-a.example", "client-a", Some(&prefixed)),
            None
        );
        assert!(author_refusal("oidc:carol", "client-a", Some(&prefixed)).is_some());
    }

    fn mirror(name: &str, spec: Value, labels: Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels,
                            "annotations": {"changegate.dev/change": "CHG-12"}},
               "spec": spec})
    }

    #[test]
    fn a_mirror_is_read_only_and_its_names_and_label_are_the_operators() {
        let spec = json!({"title": "Upgrade payments"});
        let origin = json!({"changegate.dev/origin": "server"});
        // Nobody creates a ChangeRequest named like a mirror, or labelled one.
        let named = mirror_refusal(
            "ChangeRequest",
            &mirror("chg-12", spec.clone(), json!({})),
            None,
        )
        .expect("refused");
        assert_eq!(named.field, "metadata.name");
        assert!(
            named.message.contains("reserved for the mirror of CHG-12"),
            "{named}"
        );
        let labelled = mirror_refusal(
            "ChangeRequest",
            &mirror("mine", spec.clone(), origin.clone()),
            None,
        )
        .expect("refused");
        assert_eq!(labelled.field, "metadata.labels[changegate.dev/origin]");
        // Names that only look alike are anyone's.
        for free in ["chg-", "chg-012", "chg-12a", "my-chg-12", "chg-web"] {
            assert_eq!(
                mirror_refusal(
                    "ChangeRequest",
                    &mirror(free, spec.clone(), json!({})),
                    None
                ),
                None,
                "{free}"
            );
        }
        // A mirror's spec and origin label stay; its other labels are anyone's.
        let old = mirror("chg-12", spec.clone(), origin.clone());
        let edited = mirror("chg-12", json!({"title": "Something else"}), origin.clone());
        let e = mirror_refusal("ChangeRequest", &edited, Some(&old)).expect("refused");
        assert_eq!(e.field, "spec");
        assert!(
            e.message.contains("mirrors CHG-12") && e.message.contains("read-only"),
            "{e}"
        );
        let unlabelled = mirror("chg-12", spec.clone(), json!({}));
        assert!(mirror_refusal("ChangeRequest", &unlabelled, Some(&old)).is_some());
        let tracked = mirror(
            "chg-12",
            spec.clone(),
            json!({"changegate.dev/origin": "server", "argocd.argoproj.io/instance": "shop"}),
        );
        assert_eq!(mirror_refusal("ChangeRequest", &tracked, Some(&old)), None);
        // Another kind's names are not reserved here.
        assert_eq!(
            mirror_refusal("Release", &mirror("chg-12", spec, json!({})), None),
            None
        );
    }
}
