use super::*;
use crate::window::WindowSpec;
use proptest::prelude::*;
use serde_json::json;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test instant")
        .to_utc()
}

/// Friday noon in Berlin: client-a-weekly (Sat 02:00–06:00) is closed.
fn friday() -> DateTime<Utc> {
    at("2026-11-27T11:00:00Z")
}

/// Saturday 03:00 in Berlin: client-a-weekly is open.
fn saturday() -> DateTime<Utc> {
    at("2026-11-28T02:00:00Z")
}

fn window(name: &str, spec: serde_json::Value) -> Arc<CompiledWindow> {
    let spec: WindowSpec = serde_json::from_value(spec).expect("window spec");
    Arc::new(CompiledWindow::compile(name, &spec).expect("compiles"))
}

fn weekly() -> Arc<CompiledWindow> {
    window(
        "client-a-weekly",
        json!({"timeZone": "Europe/Berlin", "schedule": {"cron": {"expr": "0 2 * * SAT", "duration": "4h"}}}),
    )
}

fn item(spec: serde_json::Value) -> ConfigurationItem {
    serde_json::from_value(spec).expect("configuration item")
}

fn items() -> Vec<(String, ConfigurationItem)> {
    vec![
        (
            "payments-api".into(),
            item(
                json!({"kind": "kubernetes-workload", "enforcement": {"kubernetes":
                {"cluster": "prod", "namespace": "pay", "kind": "Deployment", "name": "payments"}}}),
            ),
        ),
        (
            "workers".into(),
            item(
                json!({"kind": "kubernetes-workload", "enforcement": {"kubernetes":
                {"cluster": "prod", "namespace": "pay", "kind": "StatefulSet", "selector": {"tier": "worker"}}}}),
            ),
        ),
        (
            "web-shop".into(),
            item(
                json!({"kind": "application", "enforcement": {"pipeline": {"environment": "production"}}}),
            ),
        ),
        ("edge-firewall".into(), item(json!({"kind": "firewall"}))),
    ]
}

const DIGEST: &str = "registry.example/payments@sha256:aaaa";
const OTHER: &str = "registry.example/payments@sha256:bbbb";

fn change(n: i64, state: ChangeState, item: &str) -> GateChange {
    GateChange {
        number: ChangeNumber(n),
        kind: ChangeType::Normal,
        state,
        configuration_items: vec![item.to_string()],
        artifacts: vec![DIGEST.to_string()],
        fingerprint: Some(format!("sha256:{n:064x}")),
        planned_start: None,
        planned_end: None,
        awaiting: Vec::new(),
        automatic_rollback: false,
        approval_expires_at: None,
        awaiting_acceptance: None,
    }
}

fn gate_with(policy: PolicySpec, changes: Vec<GateChange>) -> TenantGate {
    TenantGate::new("client-a", &policy, items(), vec![weekly()], changes)
}

fn gate(changes: Vec<GateChange>) -> TenantGate {
    gate_with(PolicySpec::default(), changes)
}

fn payments() -> Target {
    Target::Workload(Workload {
        cluster: "prod".into(),
        namespace: "pay".into(),
        kind: "Deployment".into(),
        name: "payments".into(),
        labels: BTreeMap::new(),
    })
}

fn digest() -> Vec<String> {
    vec![DIGEST.to_string()]
}

#[test]
fn a_target_no_item_is_bound_to_is_not_governed() {
    let g = gate(vec![]);
    for target in [
        Target::Pipeline {
            environment: "staging".into(),
        },
        Target::ConfigurationItem("unknown".into()),
        Target::Workload(Workload {
            cluster: "other".into(),
            ..match payments() {
                Target::Workload(w) => w,
                _ => unreachable!(),
            }
        }),
    ] {
        let d = g.check(&target, &digest(), saturday());
        assert_eq!((d.verdict, d.reason), (Verdict::Allow, Reason::NotGoverned));
    }
}

#[test]
fn a_governed_target_without_a_change_is_denied_with_the_item_named() {
    let d = gate(vec![]).check(&payments(), &digest(), saturday());
    assert_eq!((d.verdict, d.reason), (Verdict::Deny, Reason::NoChange));
    assert!(d.message.contains("payments-api"), "{}", d.message);
    assert!(d.message.contains("raise one"), "{}", d.message);
    assert_eq!(d.configuration_items, ["payments-api"]);
}

#[test]
fn an_approved_change_with_the_approved_digest_in_an_open_window_is_allowed() {
    let d = gate(vec![change(142, ChangeState::Approved, "payments-api")]).check(
        &payments(),
        &digest(),
        saturday(),
    );
    assert_eq!((d.verdict, d.reason), (Verdict::Allow, Reason::Covered));
    assert_eq!(d.change, Some(ChangeNumber(142)));
    assert_eq!(d.fingerprint, Some(format!("sha256:{:064x}", 142)));
    assert!(d.allowed());
}

#[test]
fn a_change_awaiting_approval_is_denied_saying_whom_it_awaits_and_the_next_window() {
    let mut c = change(142, ChangeState::AwaitingApproval, "payments-api");
    c.awaiting = vec!["1 approval from Client A business approvers".into()];
    let d = gate(vec![c]).check(&payments(), &digest(), friday());
    assert_eq!((d.verdict, d.reason), (Verdict::Deny, Reason::NotApproved));
    assert_eq!(
        d.message,
        "CHG-142 awaits 1 approval from Client A business approvers; \
         next window client-a-weekly opens Sat 2026-11-28 02:00 Europe/Berlin"
    );
}

#[test]
fn content_other_than_the_approved_is_denied() {
    let d = gate(vec![change(142, ChangeState::Approved, "payments-api")]).check(
        &payments(),
        &[OTHER.to_string()],
        saturday(),
    );
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Deny, Reason::ContentNotApproved)
    );
    assert!(d.message.contains(OTHER) && d.message.contains(DIGEST));
    // Shipping the approved digest and another one is still not covered.
    let d = gate(vec![change(142, ChangeState::Approved, "payments-api")]).check(
        &payments(),
        &[DIGEST.to_string(), OTHER.to_string()],
        saturday(),
    );
    assert_eq!(d.reason, Reason::ContentNotApproved);
}

#[test]
fn an_approved_normal_change_waits_for_the_window_and_a_standard_one_does_not() {
    let g = gate(vec![change(142, ChangeState::Approved, "payments-api")]);
    let d = g.check(&payments(), &digest(), friday());
    assert_eq!((d.verdict, d.reason), (Verdict::Deny, Reason::WindowClosed));
    assert!(
        d.message
            .ends_with("next window client-a-weekly opens Sat 2026-11-28 02:00 Europe/Berlin"),
        "{}",
        d.message
    );
    let mut standard = change(143, ChangeState::Approved, "payments-api");
    standard.kind = ChangeType::Standard;
    let d = gate(vec![standard]).check(&payments(), &digest(), friday());
    assert_eq!((d.verdict, d.reason), (Verdict::Allow, Reason::Covered));
}

#[test]
fn a_blackout_stops_even_a_standard_change_unless_it_allows_the_type() {
    let freeze = |allow: serde_json::Value| {
        window(
            "year-end-freeze",
            json!({"kind": "blackout", "timeZone": "Europe/Berlin", "allowTypes": allow,
                   "schedule": {"ranges": [{"start": "2026-11-27T00:00:00Z", "end": "2026-11-30T00:00:00Z"}]}}),
        )
    };
    let mut standard = change(143, ChangeState::Approved, "payments-api");
    standard.kind = ChangeType::Standard;
    let g = TenantGate::new(
        "client-a",
        &PolicySpec::default(),
        items(),
        vec![weekly(), freeze(json!([]))],
        vec![standard.clone()],
    );
    let d = g.check(&payments(), &digest(), friday());
    assert_eq!((d.verdict, d.reason), (Verdict::Deny, Reason::Blackout));
    assert!(
        d.message.contains("blackout year-end-freeze"),
        "{}",
        d.message
    );
    let g = TenantGate::new(
        "client-a",
        &PolicySpec::default(),
        items(),
        vec![weekly(), freeze(json!(["standard"]))],
        vec![standard],
    );
    assert!(g.check(&payments(), &digest(), friday()).allowed());
}

#[test]
fn a_change_held_by_a_release_ships_only_once_the_release_deploys_it() {
    let held = change(142, ChangeState::Scheduled, "payments-api");
    let d = gate(vec![held.clone()]).check(&payments(), &digest(), saturday());
    assert!(!d.allowed(), "{}", d.message);
    assert_eq!(d.reason, Reason::HeldByRelease);
    assert!(d.message.contains("deploy phase"), "{}", d.message);
    let deploying = GateChange {
        state: ChangeState::Implementing,
        ..held
    };
    assert!(
        gate(vec![deploying])
            .check(&payments(), &digest(), saturday())
            .allowed()
    );
}

#[test]
fn outside_the_planned_slot_is_denied_before_and_after() {
    let mut c = change(142, ChangeState::Approved, "payments-api");
    c.planned_start = Some(at("2026-11-28T01:30:00Z"));
    c.planned_end = Some(at("2026-11-28T03:00:00Z"));
    let g = gate(vec![c]);
    for (when, allowed) in [
        ("2026-11-28T01:00:00Z", false),
        ("2026-11-28T01:30:00Z", true),
        ("2026-11-28T02:59:59Z", true),
        ("2026-11-28T03:00:00Z", false),
    ] {
        let d = g.check(&payments(), &digest(), at(when));
        assert_eq!(d.allowed(), allowed, "{when}: {}", d.message);
        if !allowed {
            assert_eq!(d.reason, Reason::OutsidePlannedSlot);
        }
    }
}

#[test]
fn finished_and_draft_changes_cover_nothing() {
    for (state, reason, hint) in [
        (
            ChangeState::Implemented,
            Reason::Finished,
            "raise a new change",
        ),
        (
            ChangeState::Rejected,
            Reason::Finished,
            "raise a new change",
        ),
        (ChangeState::Draft, Reason::NotApproved, "submit it"),
    ] {
        let d =
            gate(vec![change(7, state, "payments-api")]).check(&payments(), &digest(), saturday());
        assert_eq!((d.verdict, d.reason), (Verdict::Deny, reason));
        assert!(d.message.contains(hint), "{}", d.message);
    }
}

#[test]
fn an_approved_change_awaiting_the_clients_acceptance_covers_nothing_yet() {
    let waits = "CHG-9 awaits the client's acceptance of the tested change by Carol";
    let g = gate(vec![GateChange {
        awaiting_acceptance: Some(waits.into()),
        ..change(9, ChangeState::Approved, "payments-api")
    }]);
    let d = g.check(&payments(), &digest(), saturday());
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(d.message, waits);
    let accepted = gate(vec![change(9, ChangeState::Approved, "payments-api")]);
    assert_eq!(
        accepted.check(&payments(), &digest(), saturday()).verdict,
        Verdict::Allow
    );
}

#[test]
fn an_approval_past_its_expiry_covers_nothing_from_that_instant() {
    let g = gate(vec![GateChange {
        approval_expires_at: Some(at("2026-11-28T02:30:00Z")),
        ..change(9, ChangeState::Approved, "payments-api")
    }]);
    let before = g.check(&payments(), &digest(), saturday());
    assert_eq!(before.reason, Reason::Covered, "{}", before.message);
    let after = g.check(&payments(), &digest(), at("2026-11-28T02:30:00Z"));
    assert_eq!(
        (after.verdict, after.reason),
        (Verdict::Deny, Reason::Finished)
    );
    assert!(
        after
            .message
            .contains("approval expired at 2026-11-28T02:30:00Z"),
        "{}",
        after.message
    );
}

#[test]
fn the_message_names_the_change_closest_to_covering_the_request() {
    let g = gate(vec![
        change(1, ChangeState::AwaitingApproval, "payments-api"),
        change(2, ChangeState::Approved, "payments-api"),
        change(3, ChangeState::Closed, "payments-api"),
    ]);
    let d = g.check(&payments(), &[OTHER.to_string()], saturday());
    assert_eq!(
        (d.reason, d.change),
        (Reason::ContentNotApproved, Some(ChangeNumber(2)))
    );
}

#[test]
fn warn_mode_lets_a_refused_request_through_with_the_warning_and_off_skips_the_gate() {
    let warn = PolicySpec {
        enforcement: Enforcement::Warn,
        ..PolicySpec::default()
    };
    let d = gate_with(warn, vec![]).check(&payments(), &digest(), saturday());
    assert_eq!((d.verdict, d.reason), (Verdict::Warn, Reason::NoChange));
    assert!(d.allowed() && !d.message.is_empty());
    let off = PolicySpec {
        enforcement: Enforcement::Off,
        ..PolicySpec::default()
    };
    let d = gate_with(off, vec![]).check(&payments(), &digest(), saturday());
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Allow, Reason::EnforcementOff)
    );
}

#[test]
fn bindings_match_by_selector_pipeline_environment_and_item_name() {
    let g = gate(vec![
        change(10, ChangeState::Approved, "workers"),
        change(11, ChangeState::Approved, "web-shop"),
        change(12, ChangeState::Approved, "edge-firewall"),
    ]);
    let worker = |labels: &[(&str, &str)]| {
        Target::Workload(Workload {
            cluster: "prod".into(),
            namespace: "pay".into(),
            kind: "StatefulSet".into(),
            name: "anything".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    };
    let d = g.check(
        &worker(&[("tier", "worker"), ("app", "x")]),
        &digest(),
        saturday(),
    );
    assert_eq!(d.change, Some(ChangeNumber(10)));
    let d = g.check(&worker(&[("tier", "web")]), &digest(), saturday());
    assert_eq!(d.reason, Reason::NotGoverned);
    let d = g.check(
        &Target::Pipeline {
            environment: "production".into(),
        },
        &digest(),
        saturday(),
    );
    assert_eq!(d.change, Some(ChangeNumber(11)));
    let d = g.check(
        &Target::ConfigurationItem("edge-firewall".into()),
        &[],
        saturday(),
    );
    assert_eq!(d.change, Some(ChangeNumber(12)));
}

fn any_state() -> impl Strategy<Value = ChangeState> {
    prop::sample::select(vec![
        ChangeState::Draft,
        ChangeState::AwaitingApproval,
        ChangeState::Approved,
        ChangeState::Scheduled,
        ChangeState::Implementing,
        ChangeState::Implemented,
        ChangeState::Rejected,
        ChangeState::Closed,
    ])
}

const ITEMS: [&str; 4] = ["payments-api", "workers", "web-shop", "edge-firewall"];
const ARTIFACTS: [&str; 3] = ["a@sha256:1", "b@sha256:2", "c@sha256:3"];

proptest! {
    /// The gate against a model: with no window duty, a governed item is
    /// allowed exactly when some change naming it is approved (or being
    /// implemented) and approved every artifact shipped; the covering
    /// change is always such a change.
    #[test]
    fn allowed_exactly_when_an_approved_change_covers_the_content(
        changes in prop::collection::vec(
            (any_state(), prop::sample::subsequence(ITEMS.to_vec(), 1..=2),
             prop::sample::subsequence(ARTIFACTS.to_vec(), 0..=3)),
            0..8),
        shipped in prop::sample::subsequence(ARTIFACTS.to_vec(), 0..=3),
        target in prop::sample::select(ITEMS.to_vec()),
    ) {
        let changes: Vec<GateChange> = changes
            .into_iter()
            .enumerate()
            .map(|(i, (state, items, artifacts))| GateChange {
                configuration_items: items.iter().map(|s| s.to_string()).collect(),
                artifacts: artifacts.iter().map(|s| s.to_string()).collect(),
                ..change(i as i64 + 1, state, "")
            })
            .collect();
        let policy = PolicySpec { window_required: vec![], ..PolicySpec::default() };
        let g = TenantGate::new("client-a", &policy, items(), vec![], changes.clone());
        let shipped: Vec<String> = shipped.iter().map(|s| s.to_string()).collect();
        let covers = |c: &GateChange| {
            c.configuration_items.iter().any(|i| i == target)
                && matches!(c.state, ChangeState::Approved | ChangeState::Implementing)
                && shipped.iter().all(|a| c.artifacts.contains(a))
        };
        let d = g.check(&Target::ConfigurationItem(target.to_string()), &shipped, friday());
        prop_assert_eq!(d.allowed(), changes.iter().any(covers), "{}", d.message);
        if d.allowed() {
            let by = changes.iter().find(|c| Some(c.number) == d.change).expect("names its change");
            prop_assert!(covers(by));
        } else {
            prop_assert!(d.reason != Reason::Covered);
        }
    }
}
