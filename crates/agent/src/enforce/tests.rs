use super::*;
use crate::bundle::{Bundle, Snapshot};
use changegate_core::change::{ChangeState, ChangeType};
use changegate_core::gate::GateChange;
use serde_json::json;

const APPROVED: &str = "registry.example/web@sha256:aaaa";
const OTHER: &str = "registry.example/web@sha256:bbbb";

fn now() -> DateTime<Utc> {
    "2026-11-27T11:00:00Z".parse().expect("time")
}

fn change(n: i64, state: ChangeState) -> GateChange {
    GateChange {
        number: ChangeNumber(n),
        kind: ChangeType::Normal,
        state,
        configuration_items: vec!["shop-web".into()],
        artifacts: vec![APPROVED.into()],
        fingerprint: Some(format!("sha256:{n:064x}")),
        planned_start: None,
        planned_end: None,
        awaiting: vec!["1 approval from client-business".into()],
        automatic_rollback: false,
        approval_expires_at: None,
        awaiting_acceptance: None,
    }
}

fn snapshot(enforcement: &str, changes: Vec<GateChange>) -> Snapshot {
    let bundle: Bundle = serde_json::from_value(json!({
        "cluster": "prod-eu",
        "tenants": [{
            "tenant": "client-a",
            "enforcement": enforcement,
            "window_required": [],
            "configuration_items": {"shop-web": {"kind": "kubernetes-workload", "enforcement": {"kubernetes":
                {"cluster": "prod-eu", "namespace": "shop", "kind": "Deployment", "name": "web"}}}},
            "windows": {},
            "changes": changes,
        }]
    }))
    .expect("bundle");
    Snapshot::new("\"e1\"".into(), bundle, now())
}

fn deployment(image: &str, replicas: u32) -> Value {
    json!({"metadata": {"name": "web", "labels": {"app": "web"}},
           "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}}})
}

fn update<'a>(tenant: &'a str, old: &'a Value, new: &'a Value) -> Request<'a> {
    Request {
        tenant,
        operation: Operation::Update,
        kind: "Deployment",
        namespace: "shop",
        name: "web",
        old: Some(old),
        new: Some(new),
    }
}

fn fresh(snapshot: &Snapshot) -> Option<Held<'_>> {
    Some(Held {
        snapshot,
        confirmed_at: now() - Duration::seconds(20),
    })
}

const STALENESS: Duration = Duration::minutes(5);

#[test]
fn an_update_waits_for_approval_and_then_only_the_approved_image_ships() {
    let (old, new, wrong) = (
        deployment("registry.example/web@sha256:0000", 2),
        deployment(APPROVED, 2),
        deployment(OTHER, 2),
    );
    let waiting = snapshot("Enforce", vec![change(7, ChangeState::AwaitingApproval)]);
    let d = decide(
        fresh(&waiting),
        STALENESS,
        &update("client-a", &old, &new),
        now(),
    );
    assert!(!d.allowed);
    assert_eq!(d.reason, "not-approved");
    assert_eq!(
        d.message,
        "changegate: CHG-7 awaits 1 approval from client-business"
    );

    let approved = snapshot("Enforce", vec![change(7, ChangeState::Approved)]);
    let d = decide(
        fresh(&approved),
        STALENESS,
        &update("client-a", &old, &new),
        now(),
    );
    assert!(d.allowed, "{d:?}");
    assert_eq!((d.reason, d.change), ("covered", Some(ChangeNumber(7))));

    let d = decide(
        fresh(&approved),
        STALENESS,
        &update("client-a", &old, &wrong),
        now(),
    );
    assert!(!d.allowed);
    assert_eq!(d.reason, "content-not-approved");
    assert!(d.message.contains(OTHER), "{}", d.message);
}

#[test]
fn only_real_spec_changes_are_judged_even_with_no_bundle() {
    let (old, scaled) = (deployment(APPROVED, 2), deployment(APPROVED, 5));
    let d = decide(None, STALENESS, &update("client-a", &old, &scaled), now());
    assert!(d.allowed);
    assert_eq!(d.reason, "NoSpecChange");
}

#[test]
fn without_a_bundle_or_with_a_stale_one_a_change_is_refused_saying_why() {
    let (old, new) = (deployment(OTHER, 2), deployment(APPROVED, 2));
    let approved = snapshot("Enforce", vec![change(7, ChangeState::Approved)]);
    let d = decide(None, STALENESS, &update("client-a", &old, &new), now());
    assert_eq!((d.allowed, d.reason), (false, "NoBundle"));

    let old_bundle = Some(Held {
        snapshot: &approved,
        confirmed_at: now() - Duration::minutes(6),
    });
    let d = decide(
        old_bundle,
        STALENESS,
        &update("client-a", &old, &new),
        now(),
    );
    assert_eq!((d.allowed, d.reason), (false, "BundleStale"));
    assert!(
        d.message.contains("the server last confirmed it 6m00s ago")
            && d.message.contains("--max-staleness 5m00s"),
        "{}",
        d.message
    );
    // Just inside the limit, the held bundle decides.
    let recent = Some(Held {
        snapshot: &approved,
        confirmed_at: now() - Duration::minutes(5),
    });
    assert!(decide(recent, STALENESS, &update("client-a", &old, &new), now()).allowed);
}

#[test]
fn one_tenants_approval_does_not_admit_another_tenants_workload() {
    let (old, new) = (deployment(OTHER, 2), deployment(APPROVED, 2));
    let approved = snapshot("Enforce", vec![change(7, ChangeState::Approved)]);
    // client-b has nothing bound here: not governed by client-a's items.
    let d = decide(
        fresh(&approved),
        STALENESS,
        &update("client-b", &old, &new),
        now(),
    );
    assert_eq!((d.allowed, d.reason), (true, "NotGoverned"));
    assert_eq!(d.change, None);
}

#[test]
fn warn_mode_admits_with_a_warning() {
    let (old, new) = (deployment(OTHER, 2), deployment(APPROVED, 2));
    let waiting = snapshot("Warn", vec![change(7, ChangeState::AwaitingApproval)]);
    let d = decide(
        fresh(&waiting),
        STALENESS,
        &update("client-a", &old, &new),
        now(),
    );
    assert!(d.allowed);
    assert_eq!(d.warnings.len(), 1);
    assert!(d.warnings[0].contains("CHG-7 awaits"), "{:?}", d.warnings);
}

#[test]
fn a_delete_needs_a_covering_change_but_no_content() {
    let old = deployment(APPROVED, 2);
    let delete = Request {
        operation: Operation::Delete,
        new: None,
        ..update("client-a", &old, &old)
    };
    let none = snapshot("Enforce", vec![]);
    let d = decide(fresh(&none), STALENESS, &delete, now());
    assert_eq!((d.allowed, d.reason), (false, "no-change"));
    let mut c = change(9, ChangeState::Approved);
    c.artifacts.clear();
    let approved = snapshot("Enforce", vec![c]);
    assert!(decide(fresh(&approved), STALENESS, &delete, now()).allowed);
}

#[test]
fn images_come_from_the_pod_template_of_each_kind() {
    let cron = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "a", "image": "x:1"}], "initContainers": [{"name": "i", "image": "y:1"}]}}}}}});
    assert_eq!(images("CronJob", &cron), ["x:1", "y:1"]);
    assert_eq!(images("StatefulSet", &deployment("z:2", 1)), ["z:2"]);
}
