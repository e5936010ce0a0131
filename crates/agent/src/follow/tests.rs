use super::*;
use crate::bundle::{Bundle, Snapshot};
use serde_json::json;

const V1: &str = "registry.example/web@sha256:1111";
const V2: &str = "registry.example/web@sha256:2222";
const V3: &str = "registry.example/web@sha256:3333";

fn now() -> DateTime<Utc> {
    "2026-11-27T11:00:00Z".parse().expect("time")
}

fn snapshot(enforcement: &str) -> Snapshot {
    snapshot_with(enforcement, false)
}

fn snapshot_with(enforcement: &str, automatic_rollback: bool) -> Snapshot {
    snapshot_of("Deployment", enforcement, automatic_rollback)
}

/// Item `web` binds `kind` `shop/web`; CHG-7 approved V2 for it.
fn snapshot_of(kind: &str, enforcement: &str, automatic_rollback: bool) -> Snapshot {
    let bundle: Bundle = serde_json::from_value(json!({
        "cluster": "prod-eu",
        "tenants": [{
            "tenant": "client-a", "enforcement": enforcement, "window_required": [],
            "configuration_items": {"web": {"kind": "kubernetes-workload", "enforcement": {"kubernetes":
                {"cluster": "prod-eu", "namespace": "shop", "kind": kind, "name": "web"}}}},
            "windows": {},
            "changes": [{"number": "CHG-7", "kind": "normal", "state": "approved",
                "configurationItems": ["web"], "artifacts": [V2], "fingerprint": "sha256:07",
                "plannedStart": null, "plannedEnd": null, "awaiting": [],
                "automaticRollback": automatic_rollback}],
        }]
    }))
    .expect("bundle");
    Snapshot::new("\"e\"".into(), bundle, now())
}

fn deployment(image: &str, replicas: i64, generation: i64, status: Value) -> Value {
    json!({"metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "generation": generation},
           "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}},
           "status": status})
}

fn rolled_out(generation: i64, replicas: i64) -> Value {
    json!({"observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
           "availableReplicas": replicas, "readyReplicas": replicas})
}

fn observe(
    t: &mut Tracker,
    s: &Snapshot,
    tenant: &str,
    object: &Value,
    initial: bool,
) -> Vec<Action> {
    let seen = Seen {
        tenant,
        kind: "Deployment",
        object,
        initial,
    };
    t.observe(&seen, Some(s), now())
}

fn reports(actions: &[Action]) -> Vec<&Report> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Report(r) => Some(r),
            Action::RollBack { .. } => None,
        })
        .collect()
}

fn events(actions: &[Action]) -> Vec<(ReportEvent, Option<&str>)> {
    reports(actions)
        .iter()
        .map(|r| (r.event, r.change.as_deref()))
        .collect()
}

#[test]
fn a_covered_rollout_is_reported_started_then_succeeded_once() {
    let (s, mut t) = (snapshot("Enforce"), Tracker::default());
    let seen = |o: &Value, t: &mut Tracker| observe(t, &s, "client-a", o, false);
    assert!(
        observe(
            &mut t,
            &s,
            "client-a",
            &deployment(V1, 2, 1, rolled_out(1, 2)),
            true
        )
        .is_empty(),
        "history is not reported"
    );
    let started = seen(&deployment(V2, 2, 2, rolled_out(1, 2)), &mut t);
    assert_eq!(events(&started), [(ReportEvent::Started, Some("CHG-7"))]);
    assert_eq!(reports(&started)[0].artifacts, [V2]);
    assert_eq!(
        reports(&started)[0].revision.as_deref(),
        Some("generation 2")
    );
    // Observed but not yet available: nothing.
    let halfway = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2});
    assert!(seen(&deployment(V2, 2, 2, halfway), &mut t).is_empty());
    let done = seen(&deployment(V2, 2, 2, rolled_out(2, 2)), &mut t);
    assert_eq!(events(&done), [(ReportEvent::Succeeded, Some("CHG-7"))]);
    assert!(
        seen(&deployment(V2, 2, 2, rolled_out(2, 2)), &mut t).is_empty(),
        "reported once"
    );
    // Scaling afterwards is not a change.
    assert!(seen(&deployment(V2, 5, 3, rolled_out(3, 5)), &mut t).is_empty());
}

#[test]
fn a_stalled_rollout_is_reported_failed() {
    let (s, mut t) = (snapshot("Enforce"), Tracker::default());
    observe(
        &mut t,
        &s,
        "client-a",
        &deployment(V1, 1, 1, rolled_out(1, 1)),
        true,
    );
    observe(
        &mut t,
        &s,
        "client-a",
        &deployment(V2, 1, 2, rolled_out(1, 1)),
        false,
    );
    let stalled = json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1,
        "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]});
    let failed = observe(
        &mut t,
        &s,
        "client-a",
        &deployment(V2, 1, 2, stalled),
        false,
    );
    assert_eq!(events(&failed), [(ReportEvent::Failed, Some("CHG-7"))]);
}

#[test]
fn a_change_no_approved_change_covers_is_reported_unauthorized_even_with_enforcement_off() {
    for mode in ["Enforce", "Warn", "Off"] {
        let (s, mut t) = (snapshot(mode), Tracker::default());
        observe(
            &mut t,
            &s,
            "client-a",
            &deployment(V1, 1, 1, rolled_out(1, 1)),
            true,
        );
        let r = observe(
            &mut t,
            &s,
            "client-a",
            &deployment(V3, 1, 2, rolled_out(1, 1)),
            false,
        );
        assert_eq!(events(&r), [(ReportEvent::Unauthorized, None)], "{mode}");
        assert!(
            reports(&r)[0].note.contains("is not approved content"),
            "{:?}",
            reports(&r)
        );
        // And it is not followed: no outcome report after.
        assert!(
            observe(
                &mut t,
                &s,
                "client-a",
                &deployment(V3, 1, 2, rolled_out(2, 1)),
                false
            )
            .is_empty()
        );
    }
}

#[test]
fn a_new_deployment_is_judged_and_other_tenants_workloads_are_not_governed_here() {
    let (s, mut t) = (snapshot("Enforce"), Tracker::default());
    let created = observe(
        &mut t,
        &s,
        "client-a",
        &deployment(V3, 1, 1, json!({})),
        false,
    );
    assert_eq!(events(&created), [(ReportEvent::Unauthorized, None)]);
    let mut other = Tracker::default();
    assert!(
        observe(
            &mut other,
            &s,
            "client-b",
            &deployment(V3, 1, 1, json!({})),
            false
        )
        .is_empty()
    );
}

fn stalled(generation: i64) -> Value {
    json!({"observedGeneration": generation, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1,
        "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]})
}

#[test]
fn a_failed_rollout_with_an_automatic_backout_is_rolled_back_and_reported_once_healthy() {
    let (s, mut t) = (snapshot_with("Enforce", true), Tracker::default());
    observe(
        &mut t,
        &s,
        "client-a",
        &deployment(V1, 1, 1, rolled_out(1, 1)),
        true,
    );
    observe(
        &mut t,
        &s,
        "client-a",
        &deployment(V2, 1, 2, rolled_out(1, 1)),
        false,
    );
    let failed = observe(
        &mut t,
        &s,
        "client-a",
        &deployment(V2, 1, 2, stalled(2)),
        false,
    );
    assert_eq!(events(&failed), [(ReportEvent::Failed, Some("CHG-7"))]);
    assert!(
        failed.contains(&Action::RollBack {
            kind: "Deployment".into(),
            namespace: "shop".into(),
            name: "web".into(),
            change: ChangeNumber(7)
        }),
        "{failed:?}"
    );
    // The agent's own rollback (V1 again, marked) is not judged as a change.
    let mut undone = deployment(V1, 1, 3, stalled(2));
    undone["metadata"]["annotations"] =
        json!({ROLLBACK_ANNOTATION: "CHG-7", "deployment.kubernetes.io/revision": "3"});
    assert!(observe(&mut t, &s, "client-a", &undone, false).is_empty());
    undone["status"] = rolled_out(3, 1);
    let back = observe(&mut t, &s, "client-a", &undone, false);
    assert_eq!(events(&back), [(ReportEvent::RolledBack, Some("CHG-7"))]);
    let note = &reports(&back)[0].note;
    assert!(
        note.contains("revision 3 runs registry.example/web@sha256:1111 again"),
        "{note}"
    );
    assert!(
        observe(&mut t, &s, "client-a", &undone, false).is_empty(),
        "reported once"
    );
}

#[test]
fn without_an_automatic_backout_a_failed_rollout_is_only_reported() {
    let (s, mut t) = (snapshot("Enforce"), Tracker::default());
    observe(
        &mut t,
        &s,
        "client-a",
        &deployment(V1, 1, 1, rolled_out(1, 1)),
        true,
    );
    observe(
        &mut t,
        &s,
        "client-a",
        &deployment(V2, 1, 2, rolled_out(1, 1)),
        false,
    );
    let failed = observe(
        &mut t,
        &s,
        "client-a",
        &deployment(V2, 1, 2, stalled(2)),
        false,
    );
    assert_eq!(failed.len(), 1, "{failed:?}");
    // Someone else marking a rollback is judged like any change.
    let mut forged = deployment(V3, 1, 3, rolled_out(2, 1));
    forged["metadata"]["annotations"] = json!({ROLLBACK_ANNOTATION: "CHG-7"});
    let judged = observe(&mut t, &s, "client-a", &forged, false);
    assert_eq!(events(&judged), [(ReportEvent::Unauthorized, None)]);
}

// ---- StatefulSets, DaemonSets and CronJobs ------------------------------

fn observe_kind(
    t: &mut Tracker,
    s: &Snapshot,
    kind: &str,
    object: &Value,
    at: DateTime<Utc>,
) -> Vec<Action> {
    let seen = Seen {
        tenant: "client-a",
        kind,
        object,
        initial: false,
    };
    t.observe(&seen, Some(s), at)
}

/// StatefulSet `shop/web` at `generation` running `image`, with `status`.
fn stateful_set(image: &str, generation: i64, status: Value) -> Value {
    json!({"metadata": {"name": "web", "namespace": "shop", "uid": "s-1", "generation": generation,
                        "annotations": {rollout::DEADLINE_ANNOTATION: "30"}},
           "spec": {"replicas": 1, "serviceName": "web",
                    "template": {"spec": {"containers": [{"name": "app", "image": image}]}}},
           "status": status})
}

fn sts_status(generation: i64, current: &str, update: &str, ready: i64) -> Value {
    json!({"observedGeneration": generation, "replicas": 1, "readyReplicas": ready,
           "updatedReplicas": i64::from(current == update), "currentRevision": current, "updateRevision": update})
}

fn later(seconds: i64) -> DateTime<Utc> {
    now() + chrono::TimeDelta::seconds(seconds)
}

#[test]
fn a_stateful_set_rollout_succeeds_when_its_update_revision_is_current_and_ready() {
    let (s, mut t) = (
        snapshot_of("StatefulSet", "Enforce", false),
        Tracker::default(),
    );
    let seen = Seen {
        tenant: "client-a",
        kind: "StatefulSet",
        object: &stateful_set(V1, 1, sts_status(1, "web-1", "web-1", 1)),
        initial: true,
    };
    assert!(t.observe(&seen, Some(&s), now()).is_empty());
    let started = observe_kind(
        &mut t,
        &s,
        "StatefulSet",
        &stateful_set(V2, 2, sts_status(1, "web-1", "web-1", 1)),
        now(),
    );
    assert_eq!(events(&started), [(ReportEvent::Started, Some("CHG-7"))]);
    // Observed, the old pod still ready: not yet.
    let midway = stateful_set(V2, 2, sts_status(2, "web-1", "web-2", 1));
    assert!(observe_kind(&mut t, &s, "StatefulSet", &midway, later(5)).is_empty());
    let done = observe_kind(
        &mut t,
        &s,
        "StatefulSet",
        &stateful_set(V2, 2, sts_status(2, "web-2", "web-2", 1)),
        later(9),
    );
    assert_eq!(events(&done), [(ReportEvent::Succeeded, Some("CHG-7"))]);
    assert!(
        reports(&done)[0].note.contains("revision web-2 rolled out"),
        "{:?}",
        done
    );
}

#[test]
fn a_stateful_set_unready_past_the_agents_deadline_fails_and_is_rolled_back_to_its_previous_revision()
 {
    let (s, mut t) = (
        snapshot_of("StatefulSet", "Enforce", true),
        Tracker::default(),
    );
    let seen = Seen {
        tenant: "client-a",
        kind: "StatefulSet",
        object: &stateful_set(V1, 1, sts_status(1, "web-1", "web-1", 1)),
        initial: true,
    };
    t.observe(&seen, Some(&s), now());
    observe_kind(
        &mut t,
        &s,
        "StatefulSet",
        &stateful_set(V2, 2, sts_status(1, "web-1", "web-1", 1)),
        now(),
    );
    let stuck = stateful_set(V2, 2, sts_status(2, "web-1", "web-2", 0));
    assert!(observe_kind(&mut t, &s, "StatefulSet", &stuck, later(10)).is_empty());
    // No event comes when the deadline (30 s, from the annotation) passes:
    // the periodic recheck finds it.
    assert!(t.recheck(Some(&s), later(29)).is_empty());
    let failed = t.recheck(Some(&s), later(30));
    assert_eq!(events(&failed), [(ReportEvent::Failed, Some("CHG-7"))]);
    assert!(
        reports(&failed)[0]
            .note
            .contains("not ready 30 s after it started"),
        "{failed:?}"
    );
    assert!(
        failed.contains(&Action::RollBack {
            kind: "StatefulSet".into(),
            namespace: "shop".into(),
            name: "web".into(),
            change: ChangeNumber(7)
        }),
        "{failed:?}"
    );
    assert!(
        t.recheck(Some(&s), later(60)).is_empty(),
        "failed once, the rollback not yet healthy"
    );
    let mut undone = stateful_set(V1, 3, sts_status(3, "web-1", "web-1", 1));
    undone["metadata"]["annotations"][ROLLBACK_ANNOTATION] = json!("CHG-7");
    let back = observe_kind(&mut t, &s, "StatefulSet", &undone, later(70));
    assert_eq!(events(&back), [(ReportEvent::RolledBack, Some("CHG-7"))]);
    assert!(
        reports(&back)[0]
            .note
            .contains("revision web-1 runs registry.example/web@sha256:1111 again"),
        "{back:?}"
    );
}

#[test]
fn a_daemon_set_succeeds_once_every_scheduled_pod_is_updated_and_available() {
    let (s, mut t) = (
        snapshot_of("DaemonSet", "Enforce", false),
        Tracker::default(),
    );
    let ds = |image: &str, generation: i64, observed: i64, updated: i64| {
        json!({"metadata": {"name": "web", "namespace": "shop", "uid": "d-1", "generation": generation},
               "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}},
               "status": {"observedGeneration": observed, "desiredNumberScheduled": 3,
                          "updatedNumberScheduled": updated, "numberAvailable": 3}})
    };
    let seen = Seen {
        tenant: "client-a",
        kind: "DaemonSet",
        object: &ds(V1, 1, 1, 3),
        initial: true,
    };
    t.observe(&seen, Some(&s), now());
    let started = observe_kind(&mut t, &s, "DaemonSet", &ds(V2, 2, 1, 3), now());
    assert_eq!(events(&started), [(ReportEvent::Started, Some("CHG-7"))]);
    assert!(observe_kind(&mut t, &s, "DaemonSet", &ds(V2, 2, 2, 1), later(3)).is_empty());
    let done = observe_kind(&mut t, &s, "DaemonSet", &ds(V2, 2, 2, 3), later(6));
    assert_eq!(events(&done), [(ReportEvent::Succeeded, Some("CHG-7"))]);
    // Another image no change approved: unauthorized.
    let rogue = observe_kind(&mut t, &s, "DaemonSet", &ds(V3, 3, 2, 3), later(9));
    assert_eq!(events(&rogue), [(ReportEvent::Unauthorized, None)]);
}

#[test]
fn a_cron_job_change_is_in_effect_at_once_and_an_unapproved_one_is_unauthorized() {
    let (s, mut t) = (snapshot_of("CronJob", "Off", false), Tracker::default());
    let cron = |image: &str, generation: i64| {
        json!({"metadata": {"name": "web", "namespace": "shop", "uid": "c-1", "generation": generation},
               "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec":
                   {"containers": [{"name": "app", "image": image}]}}}}}})
    };
    let seen = Seen {
        tenant: "client-a",
        kind: "CronJob",
        object: &cron(V1, 1),
        initial: true,
    };
    t.observe(&seen, Some(&s), now());
    let covered = observe_kind(&mut t, &s, "CronJob", &cron(V2, 2), now());
    assert_eq!(
        events(&covered),
        [
            (ReportEvent::Started, Some("CHG-7")),
            (ReportEvent::Succeeded, Some("CHG-7"))
        ]
    );
    let rogue = observe_kind(&mut t, &s, "CronJob", &cron(V3, 3), later(1));
    assert_eq!(
        events(&rogue),
        [(ReportEvent::Unauthorized, None)],
        "whatever the enforcement mode"
    );
}

#[test]
fn another_spec_change_under_the_change_being_followed_is_the_same_rollout() {
    let (s, mut t) = (snapshot("Enforce"), Tracker::default());
    observe(
        &mut t,
        &s,
        "client-a",
        &deployment(V1, 1, 1, rolled_out(1, 1)),
        true,
    );
    let started = observe(
        &mut t,
        &s,
        "client-a",
        &deployment(V2, 1, 2, rolled_out(1, 1)),
        false,
    );
    assert_eq!(events(&started), [(ReportEvent::Started, Some("CHG-7"))]);
    let mut again = deployment(V2, 1, 3, rolled_out(1, 1));
    again["spec"]["revisionHistoryLimit"] = json!(3);
    assert!(
        observe(&mut t, &s, "client-a", &again, false).is_empty(),
        "no second start while the first rollout is followed"
    );
    again["status"] = rolled_out(3, 1);
    let done = observe(&mut t, &s, "client-a", &again, false);
    assert_eq!(events(&done), [(ReportEvent::Succeeded, Some("CHG-7"))]);
}
