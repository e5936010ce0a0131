//! The admission webhooks on the local control plane, identities through
//! impersonation: an accepted and a refused case for each admission rule
//! the README lists.

use crate::support::tenant::{closed_already, open_now, opens_later};
use crate::support::{Tenant, kubectl, kubectl_as, kubectl_stdin, wait_until};
use serde_json::{Value, json};
use std::process::Output;
use std::time::Duration;

const SETTLE: Duration = Duration::from_secs(20);

fn ok(out: &Output) -> bool {
    out.status.success()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn deployment(name: &str, image: &str) -> String {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": name, "labels": {"app": name}},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"containers": [{"name": "app", "image": image}]}}}})
    .to_string()
}

/// Creates a workload before the tenant has a policy (not yet governed).
fn seed_deployment(t: &Tenant, name: &str, image: &str) {
    let out = kubectl_stdin(
        &["apply", "-n", &t.ns.name, "-f", "-"],
        &deployment(name, image),
    );
    assert!(ok(&out), "seeding {name}: {}", stderr(&out));
}

fn set_image(t: &Tenant, name: &str, image: &str) -> Output {
    kubectl(&[
        "set",
        "image",
        "-n",
        &t.ns.name,
        &format!("deployment/{name}"),
        &format!("app={image}"),
    ])
}

/// bob (a requester) files a change; returns its name.
fn file_change(t: &Tenant, name: &str, spec: Value) -> String {
    let change = json!({"apiVersion": "changegate.dev/v1alpha1", "kind": "ChangeRequest",
                        "metadata": {"name": name}, "spec": spec});
    let out = kubectl_as(
        "bob",
        &[&t.requesters()],
        &["create", "-n", &t.ns.name, "-f", "-"],
        Some(&change.to_string()),
    );
    assert!(ok(&out), "bob files {name}: {}", stderr(&out));
    name.to_string()
}

fn normal_change(target: &str) -> Value {
    json!({"type": "Normal", "title": format!("upgrade {target}"), "risk": "Medium",
           "targets": [{"kind": "Deployment", "name": target}]})
}

fn change_json(t: &Tenant, name: &str) -> Value {
    let out = kubectl(&["get", "chg", name, "-n", &t.ns.name, "-o", "json"]);
    assert!(ok(&out), "get {name}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("ChangeRequest JSON")
}

/// Appends a decision through the status subresource, as `user` in `groups`,
/// sending `extra` fields too (which the webhook must overwrite).
fn decide(
    t: &Tenant,
    change: &str,
    user: &str,
    groups: &[&str],
    decision: &str,
    extra: Value,
) -> Output {
    let current = change_json(t, change);
    let mut approvals = current["status"]["approvals"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut entry = json!({"decision": decision, "comment": format!("{decision} by {user}")});
    if let (Value::Object(e), Value::Object(x)) = (&mut entry, extra) {
        e.extend(x);
    }
    approvals.push(entry);
    let patch = json!({"status": {"approvals": approvals}}).to_string();
    patch_status(t, change, Some((user, groups)), "merge", &patch)
}

/// `kubectl patch chg <change> --subresource=status --type=<kind>`, as
/// `user` in `groups`, or as the cluster admin for `None`.
fn patch_status(
    t: &Tenant,
    change: &str,
    who: Option<(&str, &[&str])>,
    kind: &str,
    patch: &str,
) -> Output {
    let kind = format!("--type={kind}");
    let args = [
        "patch",
        "chg",
        change,
        "-n",
        &t.ns.name,
        "--subresource=status",
        &kind,
        "-p",
        patch,
    ];
    match who {
        Some((user, groups)) => kubectl_as(user, groups, &args, None),
        None => kubectl(&args),
    }
}

fn approve(t: &Tenant, change: &str, user: &str, groups: &[&str]) -> Output {
    decide(t, change, user, groups, "Approved", json!({}))
}

/// Retries `action` until it succeeds: the webhook's stores follow the API
/// server by a few milliseconds. Fails with the last refusal.
async fn eventually_admitted(what: &str, action: impl Fn() -> Output) -> Output {
    wait_until(what, SETTLE, || {
        let out = action();
        async move { if ok(&out) { Ok(out) } else { Err(stderr(&out)) } }
    })
    .await
}

/// Retries `action` until it is refused with a message containing `needle`.
async fn eventually_refused(what: &str, needle: &str, action: impl Fn() -> Output) -> String {
    wait_until(what, SETTLE, || {
        let out = action();
        let needle = needle.to_string();
        async move {
            let err = stderr(&out);
            if !ok(&out) && err.contains(&needle) {
                Ok(err)
            } else {
                Err(format!(
                    "exit {:?}: {err}{}",
                    out.status.code(),
                    stdout(&out)
                ))
            }
        }
    })
    .await
}

#[tokio::test]
async fn an_update_waits_for_approval_and_an_open_window_and_stops_when_it_closes() {
    let t = Tenant::new("wh-flow").await;
    seed_deployment(&t, "payments-api", "example.com/payments:1.0");
    t.policy(json!({})).await;
    let window = t.window("weekly", opens_later());
    let chg = file_change(&t, "chg-0142", normal_change("payments-api"));

    let denied = eventually_refused("a denial while pending", "PendingApproval", || {
        set_image(&t, "payments-api", "example.com/payments:1.1")
    })
    .await;
    assert!(
        denied.contains(&format!(
            "Deployment {}/payments-api is not covered by an approved change. chg-0142 is PendingApproval: 1 of 1 from group {} still needed. Next maintenance window {window} opens",
            t.ns.name,
            t.approvers()
        )),
        "{denied}"
    );

    let out = approve(&t, &chg, "alice", &[&t.approvers()]);
    assert!(ok(&out), "alice approves: {}", stderr(&out));
    let closed = eventually_refused(
        "a denial outside the window",
        "is approved, but no maintenance window",
        || set_image(&t, "payments-api", "example.com/payments:1.1"),
    )
    .await;
    assert!(
        closed.contains(&format!("Next maintenance window {window} opens")),
        "{closed}"
    );

    t.window("weekly", open_now(2));
    eventually_admitted("the update inside the open window", || {
        set_image(&t, "payments-api", "example.com/payments:1.1")
    })
    .await;

    t.window("weekly", closed_already());
    eventually_refused(
        "a denial after the window closed",
        "no maintenance window",
        || set_image(&t, "payments-api", "example.com/payments:1.2"),
    )
    .await;
}

#[tokio::test]
async fn identities_come_from_the_api_server_not_from_the_request() {
    let t = Tenant::new("wh-identity").await;
    t.policy(json!({})).await;
    // bob claims the change was requested by mallory.
    let forged = json!({"apiVersion": "changegate.dev/v1alpha1", "kind": "ChangeRequest",
                        "metadata": {"name": "chg-1", "annotations": {"changegate.dev/requested-by": "mallory"}},
                        "spec": normal_change("web")});
    let out = kubectl_as(
        "bob",
        &[&t.requesters(), &t.approvers()],
        &["create", "-n", &t.ns.name, "-f", "-"],
        Some(&forged.to_string()),
    );
    assert!(ok(&out), "{}", stderr(&out));
    assert_eq!(
        change_json(&t, "chg-1")["metadata"]["annotations"]["changegate.dev/requested-by"],
        "bob"
    );

    // bob is also an approver, but may not approve his own change.
    let out = approve(&t, "chg-1", "bob", &[&t.approvers()]);
    assert!(!ok(&out));
    assert!(
        stderr(&out)
            .contains("bob requested this change and may not approve it (separation of duties)"),
        "{}",
        stderr(&out)
    );

    // alice approves in carol's name: the record says alice.
    let out = decide(
        &t,
        "chg-1",
        "alice",
        &[&t.approvers()],
        "Approved",
        json!({"approver": "carol", "groups": ["msp:cab"], "at": "2001-01-01T00:00:00Z"}),
    );
    assert!(ok(&out), "{}", stderr(&out));
    let record = change_json(&t, "chg-1")["status"]["approvals"][0].clone();
    assert_eq!(record["approver"], "alice");
    let groups: Vec<&str> = record["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        groups.contains(&t.approvers().as_str()) && !groups.contains(&"msp:cab"),
        "{groups:?}"
    );
    assert_ne!(record["at"], "2001-01-01T00:00:00Z");

    // The annotation can never be changed afterwards.
    let out = kubectl(&[
        "annotate",
        "chg",
        "chg-1",
        "-n",
        &t.ns.name,
        "--overwrite",
        "changegate.dev/requested-by=mallory",
    ]);
    assert!(
        !ok(&out) && stderr(&out).contains("is immutable"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn one_tenants_approver_cannot_approve_another_tenants_change() {
    let a = Tenant::new("wh-tenant-a").await;
    let b = Tenant::new("wh-tenant-b").await;
    a.policy(json!({})).await;
    b.policy(json!({})).await;
    file_change(&b, "chg-b", normal_change("web"));
    // Even with RBAC wrongly letting tenant A's approvers into B's namespace:
    b.bind("approver", &a.approvers());
    let out = approve(&b, "chg-b", "alice", &[&a.approvers()]);
    assert!(!ok(&out));
    assert!(stderr(&out).contains(&format!("alice is not a member of any group that decides on this change; it needs decisions from {}", b.approvers())), "{}", stderr(&out));
    let out = approve(&b, "chg-b", "beth", &[&b.approvers()]);
    assert!(ok(&out), "B's own approver may: {}", stderr(&out));
}

#[tokio::test]
async fn approvals_are_append_only() {
    let t = Tenant::new("wh-append").await;
    t.policy(json!({})).await;
    file_change(&t, "chg-1", normal_change("web"));
    assert!(ok(&approve(&t, "chg-1", "alice", &[&t.approvers()])));
    // A later decision appends with a JSON patch, as the README shows.
    let append = r#"[{"op":"add","path":"/status/approvals/-","value":{"decision":"Approved","comment":"second look"}}]"#;
    let out = patch_status(
        &t,
        "chg-1",
        Some(("carol", &[&t.approvers()])),
        "json",
        append,
    );
    assert!(ok(&out), "{}", stderr(&out));
    assert_eq!(
        change_json(&t, "chg-1")["status"]["approvals"][1]["approver"],
        "carol"
    );

    let removed = patch_status(&t, "chg-1", None, "merge", r#"{"status":{"approvals":[]}}"#);
    assert!(
        !ok(&removed) && stderr(&removed).contains("status.approvals is append-only"),
        "{}",
        stderr(&removed)
    );

    let mut approvals = change_json(&t, "chg-1")["status"]["approvals"].clone();
    approvals[0]["comment"] = json!("edited later");
    let patch = json!({"status": {"approvals": approvals}}).to_string();
    let edited = patch_status(&t, "chg-1", None, "merge", &patch);
    assert!(
        !ok(&edited) && stderr(&edited).contains("append-only"),
        "{}",
        stderr(&edited)
    );

    // Nobody but the controller extends the hash-chained history.
    let history = json!({"status": {"history": [{"phase": "Closed", "at": "2026-01-01T00:00:00Z", "by": "mallory", "reason": "forged", "hash": "00"}]}});
    let out = patch_status(
        &t,
        "chg-1",
        Some(("alice", &[&t.approvers()])),
        "merge",
        &history.to_string(),
    );
    assert!(
        !ok(&out)
            && stderr(&out).contains("only the changegate controller appends to status.history"),
        "{}",
        stderr(&out)
    );

    // Nor writes the phase: admission starts from it.
    let out = patch_status(
        &t,
        "chg-1",
        Some(("alice", &[&t.approvers()])),
        "merge",
        r#"{"status": {"phase": "Approved"}}"#,
    );
    assert!(
        !ok(&out) && stderr(&out).contains("written by the changegate controller only"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn the_spec_freezes_after_the_first_decision_except_cancel() {
    let t = Tenant::new("wh-freeze").await;
    t.policy(json!({})).await;
    file_change(&t, "chg-1", normal_change("web"));
    let retitle = |title: &str| {
        kubectl_as(
            "bob",
            &[&t.requesters()],
            &[
                "patch",
                "chg",
                "chg-1",
                "-n",
                &t.ns.name,
                "--type=merge",
                "-p",
                &json!({"spec": {"title": title}}).to_string(),
            ],
            None,
        )
    };
    assert!(
        ok(&retitle("before any decision")),
        "editable while undecided"
    );
    assert!(ok(&approve(&t, "chg-1", "alice", &[&t.approvers()])));
    let out = retitle("after approval");
    assert!(
        !ok(&out) && stderr(&out).contains("frozen after its first decision"),
        "{}",
        stderr(&out)
    );
    let cancel = kubectl_as(
        "bob",
        &[&t.requesters()],
        &[
            "patch",
            "chg",
            "chg-1",
            "-n",
            &t.ns.name,
            "--type=merge",
            "-p",
            r#"{"spec":{"cancel":true}}"#,
        ],
        None,
    );
    assert!(ok(&cancel), "cancel stays possible: {}", stderr(&cancel));
}

#[tokio::test]
async fn a_standard_change_may_touch_only_its_allowed_paths() {
    let t = Tenant::new("wh-standard").await;
    seed_deployment(&t, "web", "example.com/web:1.0");
    t.policy(json!({"standardChanges": [{"name": "image-bump", "kinds": ["Deployment"], "allowedPaths": ["spec.template.spec.containers[*].image"]}]})).await;
    t.window("open", open_now(2));
    file_change(
        &t,
        "chg-std",
        json!({"type": "Standard", "standardChange": "image-bump", "title": "patch release",
                                       "targets": [{"kind": "Deployment", "name": "web"}]}),
    );
    eventually_admitted("an image bump under the standard change", || {
        set_image(&t, "web", "example.com/web:1.0.1")
    })
    .await;
    let out = kubectl(&["set", "env", "-n", &t.ns.name, "deployment/web", "DEBUG=1"]);
    assert!(!ok(&out));
    assert!(stderr(&out).contains("standard change image-bump allows changes to spec.template.spec.containers[*].image only; this update also changes spec.template.spec.containers[0].env"), "{}", stderr(&out));
}

#[tokio::test]
async fn an_emergency_change_passes_a_blackout_that_allows_emergencies() {
    let t = Tenant::new("wh-blackout").await;
    seed_deployment(&t, "checkout", "example.com/checkout:1.0");
    seed_deployment(&t, "search", "example.com/search:1.0");
    t.policy(json!({})).await;
    t.window("maintenance", open_now(2));
    let mut freeze = open_now(2);
    freeze["type"] = json!("Blackout");
    freeze["allowTypes"] = json!(["Emergency"]);
    let freeze_name = t.window("freeze", freeze);

    file_change(&t, "chg-normal", normal_change("search"));
    assert!(ok(&approve(&t, "chg-normal", "alice", &[&t.approvers()])));
    eventually_refused(
        "a normal change during the freeze",
        &format!("blackout window {freeze_name} is in force"),
        || set_image(&t, "search", "example.com/search:1.1"),
    )
    .await;

    file_change(
        &t,
        "chg-emergency",
        json!({"type": "Emergency", "title": "hotfix", "risk": "High",
                                             "targets": [{"kind": "Deployment", "name": "checkout"}]}),
    );
    eventually_admitted("the emergency change during the freeze", || {
        set_image(&t, "checkout", "example.com/checkout:1.0.1-hotfix")
    })
    .await;
}

#[tokio::test]
async fn only_real_spec_changes_are_gated() {
    let t = Tenant::new("wh-spec").await;
    seed_deployment(&t, "web", "example.com/web:1.0");
    t.policy(json!({})).await;
    eventually_refused(
        "an image change without a change",
        "No ChangeRequest in this namespace targets it",
        || set_image(&t, "web", "example.com/web:2.0"),
    )
    .await;
    let out = kubectl(&["label", "-n", &t.ns.name, "deployment/web", "team=payments"]);
    assert!(ok(&out), "metadata-only update: {}", stderr(&out));
    let out = kubectl(&["scale", "-n", &t.ns.name, "deployment/web", "--replicas=4"]);
    assert!(
        ok(&out),
        "scaling goes through the scale subresource: {}",
        stderr(&out)
    );
    let out = kubectl(&[
        "patch",
        "-n",
        &t.ns.name,
        "deployment/web",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":5}}"#,
    ]);
    assert!(ok(&out), "spec.replicas is ignored: {}", stderr(&out));
    let out = kubectl(&["delete", "-n", &t.ns.name, "deployment/web", "--wait=false"]);
    assert!(
        !ok(&out) && stderr(&out).contains("is not covered by an approved change"),
        "DELETE is a change: {}",
        stderr(&out)
    );
}

#[tokio::test]
async fn warn_mode_admits_with_a_warning_kubectl_prints() {
    let t = Tenant::new("wh-warn").await;
    seed_deployment(&t, "web", "example.com/web:1.0");
    t.policy(json!({"enforcement": "Warn"})).await;
    // Until the webhook's stores see the policy it admits silently; wait
    // for the admission that carries the warning.
    // Each attempt sets a new tag, so every one is a real spec change.
    let attempt = std::sync::atomic::AtomicU32::new(0);
    let out = wait_until(
        "an update admitted with a Warn-mode warning",
        SETTLE,
        || {
            let n = attempt.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let out = set_image(&t, "web", &format!("example.com/web:2.{n}"));
            async move {
                if ok(&out) && stderr(&out).contains("Warning: changegate:") {
                    Ok(out)
                } else {
                    Err(stderr(&out))
                }
            }
        },
    )
    .await;
    assert!(
        stderr(&out).contains("is not covered by an approved change")
            && stderr(&out).contains("(Warn mode: admitted)"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn kube_system_is_never_gated_even_when_labelled_as_a_tenant() {
    let t = Tenant::new("wh-system").await;
    t.policy(json!({})).await;
    let name = format!("probe-{}", t.name);
    // The control: the same Deployment in the tenant's own namespace is
    // refused once the webhook sees the policy.
    let ns = t.ns.name.clone();
    wait_until(
        "the tenant's own namespace to be gated",
        Duration::from_secs(30),
        || {
            let out = kubectl_stdin(
                &["apply", "--dry-run=server", "-n", &ns, "-f", "-"],
                &deployment(&name, "example.com/probe:1.0"),
            );
            async move {
                if !ok(&out) && stderr(&out).contains("changegate") {
                    Ok(())
                } else {
                    Err(format!("admitted: {}", stderr(&out)))
                }
            }
        },
    )
    .await;
    let label = format!("changegate.dev/tenant={}", t.name);
    assert!(ok(&kubectl(&[
        "label",
        "namespace",
        "kube-system",
        &label,
        "--overwrite"
    ])));
    let out = kubectl_stdin(
        &["apply", "-n", "kube-system", "-f", "-"],
        &deployment(&name, "example.com/probe:1.0"),
    );
    let cleanup = kubectl(&[
        "delete",
        "-n",
        "kube-system",
        "deployment",
        &name,
        "--ignore-not-found",
        "--wait=false",
    ]);
    let unlabel = kubectl(&[
        "label",
        "namespace",
        "kube-system",
        "changegate.dev/tenant-",
    ]);
    assert!(
        ok(&out),
        "kube-system must never be gated: {}",
        stderr(&out)
    );
    assert!(ok(&cleanup), "{}", stderr(&cleanup));
    assert!(ok(&unlabel), "{}", stderr(&unlabel));
}

#[tokio::test]
async fn a_release_may_not_ship_another_tenants_change() {
    let t = Tenant::new("wh-release").await;
    let release = |ns: &str| {
        json!({"apiVersion": "changegate.dev/v1alpha1", "kind": "Release", "metadata": {"name": format!("rel-{}", t.name), "namespace": ns},
               "spec": {"changes": [{"name": "chg-9", "namespace": "client-b-prod"}]}})
        .to_string()
    };
    let out = kubectl_stdin(
        &["create", "--dry-run=server", "-f", "-"],
        &release(&t.ns.name),
    );
    assert!(!ok(&out));
    assert!(stderr(&out).contains("references ChangeRequest client-b-prod/chg-9, but a Release outside the operations namespace changegate-system"), "{}", stderr(&out));
    let out = kubectl_stdin(
        &["create", "--dry-run=server", "-f", "-"],
        &release("changegate-system"),
    );
    assert!(ok(&out), "the operations namespace may: {}", stderr(&out));
}

#[tokio::test]
async fn windows_and_policies_are_checked_by_the_engines() {
    let window = |spec: Value| {
        json!({"apiVersion": "changegate.dev/v1alpha1", "kind": "MaintenanceWindow", "metadata": {"name": "wh-invalid-window"}, "spec": spec}).to_string()
    };
    let out = kubectl_stdin(
        &["create", "--dry-run=server", "-f", "-"],
        &window(
            json!({"timeZone": "Europe/Berln", "schedule": {"cron": "0 2 * * SAT", "duration": "4h"}}),
        ),
    );
    assert!(
        !ok(&out) && stderr(&out).contains(r#"spec.timeZone: unknown time zone "Europe/Berln""#),
        "{}",
        stderr(&out)
    );
    let out = kubectl_stdin(
        &["create", "--dry-run=server", "-f", "-"],
        &window(json!({"timeZone": "UTC", "schedule": {"cron": "0 25 * * *", "duration": "1h"}})),
    );
    assert!(
        !ok(&out)
            && stderr(&out).contains(r#"spec.schedule.cron: invalid cron expression "0 25 * * *""#),
        "{}",
        stderr(&out)
    );
    let out = kubectl_stdin(
        &["create", "--dry-run=server", "-f", "-"],
        &window(json!({"timeZone": "UTC", "schedule": {"cron": "0 2 * * *", "duration": "48h"}})),
    );
    assert!(
        !ok(&out) && stderr(&out).contains("spec.schedule.duration"),
        "{}",
        stderr(&out)
    );
    let out = kubectl_stdin(
        &["create", "--dry-run=server", "-f", "-"],
        &window(
            json!({"timeZone": "UTC", "schedule": {"rrule": "FREQ=FORTNIGHTLY", "duration": "1h"}}),
        ),
    );
    assert!(
        !ok(&out) && stderr(&out).contains("spec.schedule.rrule"),
        "{}",
        stderr(&out)
    );

    let policy = json!({"apiVersion": "changegate.dev/v1alpha1", "kind": "ChangePolicy", "metadata": {"name": "wh-invalid-policy"},
                        "spec": {"standardChanges": [{"name": "x", "kinds": ["Deployment"], "allowedPaths": ["spec.containers[x].image"]}]}});
    let out = kubectl_stdin(
        &["create", "--dry-run=server", "-f", "-"],
        &policy.to_string(),
    );
    assert!(!ok(&out) && stderr(&out).contains(r#"spec.standardChanges[0].allowedPaths[0]: invalid path pattern "spec.containers[x].image""#), "{}", stderr(&out));
}

#[tokio::test]
async fn server_dry_run_gets_the_same_answer_and_changes_nothing() {
    let t = Tenant::new("wh-dryrun").await;
    seed_deployment(&t, "web", "example.com/web:1.0");
    t.policy(json!({})).await;
    let dry = || {
        kubectl(&[
            "set",
            "image",
            "--dry-run=server",
            "-n",
            &t.ns.name,
            "deployment/web",
            "app=example.com/web:2.0",
        ])
    };
    eventually_refused(
        "a dry-run denial",
        "is not covered by an approved change",
        dry,
    )
    .await;
    let out = kubectl(&[
        "get",
        "deployment",
        "web",
        "-n",
        &t.ns.name,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(stdout(&out), "example.com/web:1.0");
}

#[tokio::test]
async fn deleting_a_governed_namespace_is_never_blocked() {
    let t = Tenant::new("wh-nsdelete").await;
    seed_deployment(&t, "web", "example.com/web:1.0");
    t.policy(json!({})).await;
    eventually_refused(
        "a governed delete",
        "is not covered by an approved change",
        || kubectl(&["delete", "-n", &t.ns.name, "deployment/web", "--wait=false"]),
    )
    .await;
    let out = kubectl(&["delete", "namespace", &t.ns.name, "--wait=false"]);
    assert!(ok(&out), "{}", stderr(&out));
    wait_until(
        "the namespace and its workloads to be gone",
        Duration::from_secs(90),
        || {
            let out = kubectl(&[
                "get",
                "namespace",
                &t.ns.name,
                "-o",
                "jsonpath={.status.conditions}",
            ]);
            async move {
                if stderr(&out).contains("NotFound") {
                    Ok(())
                } else {
                    Err(stdout(&out))
                }
            }
        },
    )
    .await;
}
