//! Scenario tests for the workload admission decision: one admission rule
//! of the README's "What changegate does today" each, with an accepted and
//! a rejected case.

use super::*;
use crate::api::{ChangePolicySpec, ChangeRequest, MaintenanceWindowSpec, Release};
use crate::window::CompiledWindow;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::sync::Arc;

const NS: &str = "client-a-prod";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

/// Sunday, a week before the window.
fn sunday() -> DateTime<Utc> {
    at("2026-11-22T12:00:00Z")
}

/// Saturday 03:00 Berlin: inside client-a-weekly.
fn saturday_in_window() -> DateTime<Utc> {
    at("2026-11-28T02:00:00Z")
}

fn policy(extra: Value) -> ChangePolicySpec {
    let mut base = json!({
        "tenants": ["client-a"],
        "approvals": {"normal": [{"group": "client-a:approvers", "count": 1}]},
        "standardChanges": [{"name": "image-bump", "kinds": ["Deployment"], "allowedPaths": ["spec.template.spec.containers[*].image"]}]
    });
    merge(&mut base, extra);
    serde_json::from_value(base).expect("policy")
}

fn merge(base: &mut Value, extra: Value) {
    if let (Value::Object(b), Value::Object(e)) = (base, extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
}

fn window(name: &str, spec: Value) -> CompiledWindow {
    let spec: MaintenanceWindowSpec = serde_json::from_value(spec).expect("window spec");
    crate::window::compile(name, &spec).expect("compiles")
}

fn weekly() -> CompiledWindow {
    window(
        "client-a-weekly",
        json!({"tenants": ["client-a"], "timeZone": "Europe/Berlin", "schedule": {"cron": "0 2 * * SAT", "duration": "4h"}}),
    )
}

fn freeze() -> CompiledWindow {
    window(
        "year-end-freeze",
        json!({"type": "Blackout", "timeZone": "Europe/Berlin", "allowTypes": ["Emergency"],
               "schedule": {"ranges": [{"start": "2026-11-27T00:00:00Z", "end": "2026-11-29T00:00:00Z"}]}}),
    )
}

fn change(name: &str, spec: Value, status: Value) -> Arc<ChangeRequest> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "changegate.dev/v1alpha1", "kind": "ChangeRequest",
            "metadata": {"name": name, "namespace": NS, "creationTimestamp": "2026-11-20T09:00:00Z",
                         "annotations": {"changegate.dev/requested-by": "bob"}},
            "spec": spec, "status": status
        }))
        .expect("change"),
    )
}

fn normal(name: &str, status: Value) -> Arc<ChangeRequest> {
    change(
        name,
        json!({"type": "Normal", "title": "upgrade", "targets": [{"kind": "Deployment", "name": "payments-api"}]}),
        status,
    )
}

fn approved_by_alice() -> Value {
    json!({"approvals": [{"decision": "Approved", "approver": "alice", "groups": ["client-a:approvers"], "at": "2026-11-21T10:00:00Z"}]})
}

fn deployment(image: &str, annotations: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "payments-api", "namespace": NS, "labels": {"app": "payments"}, "annotations": annotations},
           "spec": {"replicas": 3, "template": {"metadata": {"labels": {"app": "payments"}},
                    "spec": {"containers": [{"name": "app", "image": image}]}}}})
}

struct Scenario {
    policy: Option<ChangePolicySpec>,
    windows: Vec<Arc<CompiledWindow>>,
    changes: Vec<Arc<ChangeRequest>>,
    releases: Vec<Arc<Release>>,
}

impl Scenario {
    fn new(changes: Vec<Arc<ChangeRequest>>) -> Self {
        Self {
            policy: Some(policy(json!({}))),
            windows: vec![Arc::new(weekly())],
            changes,
            releases: Vec::new(),
        }
    }

    fn update(&self, old: &Value, new: &Value, now: DateTime<Utc>) -> Decision {
        self.decide(Operation::Update, Some(old), Some(new), now)
    }

    fn decide(
        &self,
        operation: Operation,
        old: Option<&Value>,
        new: Option<&Value>,
        now: DateTime<Utc>,
    ) -> Decision {
        let req = WorkloadRequest {
            operation,
            kind: crate::api::WorkloadKind::Deployment,
            namespace: NS,
            name: "payments-api",
            old,
            new,
        };
        let view = TenantView {
            tenant: "client-a",
            policy: self.policy.as_ref(),
            windows: &self.windows,
            changes: &self.changes,
            releases: &self.releases,
        };
        decide(&req, &view, now)
    }
}

fn v1() -> Value {
    deployment("registry.example.com/payments-api:2.4.0", json!({}))
}

fn v2() -> Value {
    deployment("registry.example.com/payments-api:2.4.1", json!({}))
}

#[test]
fn an_update_is_denied_while_its_change_awaits_approval_and_says_what_is_needed() {
    let d = Scenario::new(vec![normal("chg-0142", json!({}))]).update(&v1(), &v2(), sunday());
    assert!(!d.allowed);
    assert_eq!(d.reason, Reason::ChangeNotApproved);
    assert_eq!(
        d.message,
        "changegate: Deployment client-a-prod/payments-api is not covered by an approved change. \
         chg-0142 is PendingApproval: 1 of 1 from group client-a:approvers still needed. \
         Next maintenance window client-a-weekly opens Sat 2026-11-28 02:00 Europe/Berlin."
    );
}

#[test]
fn an_approved_change_is_admitted_inside_its_window_and_denied_after_it_closes() {
    let s = Scenario::new(vec![normal("chg-0142", approved_by_alice())]);
    let inside = s.update(&v1(), &v2(), saturday_in_window());
    assert!(inside.allowed, "{}", inside.message);
    assert_eq!(inside.change.as_deref(), Some("chg-0142"));

    let after = s.update(&v1(), &v2(), at("2026-11-28T06:00:00Z"));
    assert!(!after.allowed);
    assert_eq!(after.reason, Reason::WindowClosed);
    assert!(
        after.message.contains(
            "Next maintenance window client-a-weekly opens Sat 2026-12-05 02:00 Europe/Berlin."
        ),
        "{}",
        after.message
    );
}

#[test]
fn approval_by_the_requester_does_not_count() {
    let status = json!({"approvals": [{"decision": "Approved", "approver": "bob", "groups": ["client-a:approvers"], "at": "2026-11-21T10:00:00Z"}]});
    let d =
        Scenario::new(vec![normal("chg-0142", status)]).update(&v1(), &v2(), saturday_in_window());
    assert_eq!(d.reason, Reason::ChangeNotApproved, "{}", d.message);
}

#[test]
fn only_spec_changes_count() {
    let s = Scenario::new(Vec::new());
    let mut scaled = v1();
    scaled["spec"]["replicas"] = json!(10);
    scaled["metadata"]["labels"]["team"] = json!("payments");
    let d = s.update(&v1(), &scaled, sunday());
    assert!(d.allowed);
    assert_eq!(d.reason, Reason::NoSpecChange);
    let d = s.update(&v1(), &v2(), sunday());
    assert_eq!(d.reason, Reason::NotCovered);
    assert!(
        d.message
            .contains("No ChangeRequest in this namespace targets it"),
        "{}",
        d.message
    );
}

#[test]
fn an_ungoverned_tenant_or_enforcement_off_admits_everything() {
    let mut s = Scenario::new(Vec::new());
    s.policy = None;
    assert_eq!(s.update(&v1(), &v2(), sunday()).reason, Reason::NotGoverned);
    s.policy = Some(policy(json!({"enforcement": "Off"})));
    assert!(s.update(&v1(), &v2(), sunday()).allowed);
}

#[test]
fn warn_mode_admits_with_the_denial_as_a_warning() {
    let mut s = Scenario::new(vec![normal("chg-0142", json!({}))]);
    s.policy = Some(policy(json!({"enforcement": "Warn"})));
    let d = s.update(&v1(), &v2(), sunday());
    assert!(d.allowed);
    assert_eq!(d.warnings.len(), 1);
    assert!(
        d.warnings[0].contains("chg-0142 is PendingApproval")
            && d.warnings[0].contains("Warn mode"),
        "{:?}",
        d.warnings
    );
}

#[test]
fn a_binding_annotation_selects_the_change_and_a_missing_one_is_named() {
    let s = Scenario::new(vec![normal("chg-0142", approved_by_alice())]);
    let bound = deployment(
        "registry.example.com/payments-api:2.4.1",
        json!({"changegate.dev/change": "chg-0142"}),
    );
    assert!(s.update(&v1(), &bound, saturday_in_window()).allowed);
    let wrong = deployment(
        "registry.example.com/payments-api:2.4.1",
        json!({"changegate.dev/change": "chg-9999"}),
    );
    let d = s.update(&v1(), &wrong, saturday_in_window());
    assert_eq!(d.reason, Reason::BindingNotFound);
    assert!(
        d.message.contains(
            "ChangeRequest chg-9999, named by its changegate.dev/change annotation, does not exist"
        ),
        "{}",
        d.message
    );
}

#[test]
fn a_change_covers_only_its_targets() {
    let other = change(
        "chg-1",
        json!({"type": "Normal", "title": "t", "targets": [{"kind": "Deployment", "name": "web"}]}),
        approved_by_alice(),
    );
    let s = Scenario::new(vec![other]);
    let bound = deployment(
        "registry.example.com/payments-api:2.4.1",
        json!({"changegate.dev/change": "chg-1"}),
    );
    let d = s.update(&v1(), &bound, saturday_in_window());
    assert_eq!(d.reason, Reason::NotInTargets, "{}", d.message);
}

#[test]
fn selector_targets_match_by_labels() {
    let by_label = change(
        "chg-2",
        json!({"type": "Normal", "title": "t", "targets": [{"kind": "Deployment", "selector": {"matchLabels": {"app": "payments"}}}]}),
        approved_by_alice(),
    );
    assert!(
        Scenario::new(vec![by_label])
            .update(&v1(), &v2(), saturday_in_window())
            .allowed
    );
}

#[test]
fn pinned_images_bind_the_approval_to_content() {
    let pinned = change(
        "chg-3",
        json!({"type": "Normal", "title": "t", "targets": [{"kind": "Deployment", "name": "payments-api", "images": ["registry.example.com/payments-api:2.4.1"]}]}),
        approved_by_alice(),
    );
    let s = Scenario::new(vec![pinned]);
    assert!(s.update(&v1(), &v2(), saturday_in_window()).allowed);
    let other = deployment("registry.example.com/payments-api:6.6.6", json!({}));
    let d = s.update(&v1(), &other, saturday_in_window());
    assert_eq!(d.reason, Reason::ImageNotPinned);
    assert!(
        d.message
            .contains("registry.example.com/payments-api:6.6.6 is not one of them"),
        "{}",
        d.message
    );
}

#[test]
fn the_change_schedule_bounds_implementation() {
    let later = change(
        "chg-4",
        json!({"type": "Normal", "title": "t", "targets": [{"kind": "Deployment", "name": "payments-api"}],
               "schedule": {"notBefore": "2026-12-01T00:00:00Z"}}),
        approved_by_alice(),
    );
    let d = Scenario::new(vec![later]).update(&v1(), &v2(), saturday_in_window());
    assert_eq!(d.reason, Reason::OutsideSchedule);
    assert!(
        d.message
            .contains("may not be implemented before 2026-12-01T00:00:00+00:00"),
        "{}",
        d.message
    );
}

#[test]
fn a_standard_change_may_touch_only_its_allowed_paths() {
    let standard = change(
        "chg-5",
        json!({"type": "Standard", "standardChange": "image-bump", "title": "t", "targets": [{"kind": "Deployment", "name": "payments-api"}]}),
        json!({}),
    );
    let s = Scenario::new(vec![standard]);
    assert!(
        s.update(&v1(), &v2(), saturday_in_window()).allowed,
        "a standard change needs no approval"
    );
    let mut more = v2();
    more["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "DEBUG", "value": "1"}]);
    let d = s.update(&v1(), &more, saturday_in_window());
    assert_eq!(d.reason, Reason::OutsideStandardChange);
    assert!(
        d.message
            .contains("this update also changes spec.template.spec.containers[0].env"),
        "{}",
        d.message
    );
}

#[test]
fn a_blackout_admits_only_the_types_it_allows() {
    let emergency = change(
        "chg-6",
        json!({"type": "Emergency", "title": "hotfix", "targets": [{"kind": "Deployment", "name": "payments-api"}]}),
        json!({}),
    );
    let mut s = Scenario::new(vec![emergency]);
    s.windows.push(Arc::new(freeze()));
    let d = s.update(&v1(), &v2(), saturday_in_window());
    assert!(
        d.allowed,
        "emergency in a freeze that allows it: {}",
        d.message
    );

    let mut s = Scenario::new(vec![normal("chg-0142", approved_by_alice())]);
    s.windows.push(Arc::new(freeze()));
    let d = s.update(&v1(), &v2(), saturday_in_window());
    assert_eq!(d.reason, Reason::Blackout);
    assert!(
        d.message
            .contains("blackout window year-end-freeze is in force until"),
        "{}",
        d.message
    );
}

#[test]
fn delete_is_a_change() {
    let s = Scenario::new(vec![normal("chg-0142", json!({}))]);
    let d = s.decide(Operation::Delete, Some(&v1()), None, saturday_in_window());
    assert_eq!(d.reason, Reason::ChangeNotApproved);
    let s = Scenario::new(vec![normal("chg-0142", approved_by_alice())]);
    assert!(
        s.decide(Operation::Delete, Some(&v1()), None, saturday_in_window())
            .allowed
    );
}

#[test]
fn a_rolled_back_change_cannot_be_re_applied() {
    let mut status = approved_by_alice();
    status["phase"] = json!("RolledBack");
    let d =
        Scenario::new(vec![normal("chg-0142", status)]).update(&v1(), &v2(), saturday_in_window());
    assert_eq!(d.reason, Reason::ChangeNotApproved);
    assert!(
        d.message
            .contains("may not be re-applied until a new change is approved"),
        "{}",
        d.message
    );
}

#[test]
fn a_release_binds_its_changes_and_its_window() {
    let mut s = Scenario::new(vec![normal("chg-0142", approved_by_alice())]);
    s.releases.push(Arc::new(
        serde_json::from_value(
            json!({"apiVersion": "changegate.dev/v1alpha1", "kind": "Release",
            "metadata": {"name": "rel-48", "namespace": NS},
            "spec": {"changes": [{"name": "chg-0142"}], "window": "client-a-weekly"}}),
        )
        .expect("release"),
    ));
    let bound = deployment(
        "registry.example.com/payments-api:2.4.1",
        json!({"changegate.dev/release": "rel-48"}),
    );
    assert!(s.update(&v1(), &bound, saturday_in_window()).allowed);
    let d = s.update(&v1(), &bound, sunday());
    assert!(!d.allowed);
    assert!(
        d.message
            .contains("Release window client-a-weekly is closed"),
        "{}",
        d.message
    );
}

#[test]
fn a_release_name_in_both_namespaces_resolves_to_the_workloads_own() {
    // The operations namespace's rel-48 has a closed window, the tenant's
    // has none; whichever order the store lists them in, the tenant's wins.
    let release = |ns: &str, spec: Value| -> Arc<Release> {
        Arc::new(
            serde_json::from_value(
                json!({"apiVersion": "changegate.dev/v1alpha1", "kind": "Release",
                "metadata": {"name": "rel-48", "namespace": ns}, "spec": spec}),
            )
            .expect("release"),
        )
    };
    let ops = release(
        "msp-operations",
        json!({"changes": [{"name": "chg-0142", "namespace": NS}], "window": "client-a-weekly"}),
    );
    let own = release(NS, json!({"changes": [{"name": "chg-0142"}]}));
    let bound = deployment(
        "registry.example.com/payments-api:2.4.1",
        json!({"changegate.dev/release": "rel-48"}),
    );
    for releases in [vec![ops.clone(), own.clone()], vec![own, ops]] {
        let mut s = Scenario::new(vec![normal("chg-0142", approved_by_alice())]);
        s.releases = releases;
        let d = s.update(&v1(), &bound, sunday());
        assert!(
            !d.message.contains("Release window"),
            "the tenant's own release, without a window, decides: {}",
            d.message
        );
    }
}

#[test]
fn an_expired_or_rejected_change_says_so() {
    let mut s = Scenario::new(vec![normal("chg-0142", json!({}))]);
    s.policy = Some(policy(json!({"approvalTimeout": "24h"})));
    let d = s.update(&v1(), &v2(), sunday());
    assert!(d.message.contains("chg-0142 expired"), "{}", d.message);
    let rejected = json!({"approvals": [{"decision": "Rejected", "approver": "alice", "groups": ["client-a:approvers"], "comment": "not this week", "at": "2026-11-21T10:00:00Z"}]});
    let d = Scenario::new(vec![normal("chg-0142", rejected)]).update(&v1(), &v2(), sunday());
    assert!(
        d.message
            .contains("chg-0142 was rejected by alice: not this week"),
        "{}",
        d.message
    );
}

#[test]
fn admission_agrees_with_the_lifecycle_on_late_approvals_and_cancels() {
    // Approved only after the 24h timeout (created 2026-11-20 09:00): the
    // lifecycle expires it, so admission must not treat it as approved.
    let late = json!({"approvals": [{"decision": "Approved", "approver": "alice", "groups": ["client-a:approvers"], "at": "2026-11-22T10:00:00Z"}]});
    let mut s = Scenario::new(vec![normal("chg-0142", late)]);
    s.policy = Some(policy(json!({"approvalTimeout": "24h"})));
    let d = s.update(&v1(), &v2(), saturday_in_window());
    assert_eq!(d.reason, Reason::ChangeNotApproved);
    assert!(
        d.message.contains("chg-0142 expired (not approved by"),
        "{}",
        d.message
    );

    // Approved within the timeout but never recorded Approved (no
    // controller has written the phase): deploying after the timeout is
    // still admitted.
    let in_time = json!({"approvals": [{"decision": "Approved", "approver": "alice", "groups": ["client-a:approvers"], "at": "2026-11-20T10:00:00Z"}]});
    let mut s = Scenario::new(vec![normal("chg-0142", in_time)]);
    s.policy = Some(policy(json!({"approvalTimeout": "24h"})));
    let d = s.update(&v1(), &v2(), saturday_in_window());
    assert!(d.allowed, "{}", d.message);

    // Recorded Approved by the controller, then cancelled by its requester.
    let mut status = approved_by_alice();
    status["phase"] = json!("Approved");
    let cancelled = change(
        "chg-7",
        json!({"type": "Normal", "title": "t", "cancel": true, "targets": [{"kind": "Deployment", "name": "payments-api"}]}),
        status,
    );
    let d = Scenario::new(vec![cancelled]).update(&v1(), &v2(), saturday_in_window());
    assert!(d.message.contains("chg-7 was cancelled"), "{}", d.message);
}

#[test]
fn a_tenant_without_any_window_is_told_what_to_do() {
    let mut s = Scenario::new(vec![normal("chg-0142", approved_by_alice())]);
    s.windows.clear();
    let d = s.update(&v1(), &v2(), sunday());
    assert!(!d.allowed);
    assert!(
        d.message.contains(
            "No maintenance window opens in the next 400 days: ask the platform team for a window"
        ),
        "{}",
        d.message
    );
}
