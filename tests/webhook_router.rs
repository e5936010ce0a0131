//! Router-tier tests of the admission webhooks (STYLE §9): real
//! AdmissionReview JSON from `tests/fixtures/admission/` goes through
//! `server::admission_router` over in-memory stores, and each test reads the
//! AdmissionReview that comes back. No cluster. The `fuzz` module feeds the
//! same routes arbitrary JSON and mutated fixtures; the fixtures are its seed
//! corpus.

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use base64::Engine;
use changegate_agent::api::{ChangePolicy, ChangeRequest, REQUESTED_BY, Release};
use changegate_agent::webhook::metrics::Metrics;
use changegate_agent::webhook::server::{App, admission_router};
use changegate_agent::webhook::stores::Stores;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use chrono_tz::Europe::Berlin;
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Namespace;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, LazyLock};
use tower::ServiceExt;

const MUTATE_CHANGEREQUESTS: &str = "/mutate/changerequests";
const VALIDATE_CHANGEREQUESTS: &str = "/validate/changerequests";
const VALIDATE_RELEASES: &str = "/validate/releases";
const VALIDATE_GOVERNANCE: &str = "/validate/governance";
const VALIDATE_WORKLOADS: &str = "/validate/workloads";
const ROUTES: [&str; 5] = [
    MUTATE_CHANGEREQUESTS,
    VALIDATE_CHANGEREQUESTS,
    VALIDATE_RELEASES,
    VALIDATE_GOVERNANCE,
    VALIDATE_WORKLOADS,
];

const OPERATOR_NAMESPACE: &str = "changegate-system";
const OPERATIONS_NAMESPACE: &str = "msp-operations";
const CONTROLLER: &str = "system:serviceaccount:changegate-system:changegate";

// ---------------------------------------------------------------------------
// The cluster as the webhook's stores see it
// ---------------------------------------------------------------------------

/// Tenants client-a (Enforce; its window opens tomorrow), client-b (Enforce;
/// its window is open now), client-c (Warn) and msp (Enforce; owns the
/// operator's and the operations namespaces), plus an unlabelled `sandbox`.
/// Windows are ranges placed relative to now, so no answer depends on the
/// weekday the tests run.
struct World {
    app: Arc<App>,
    /// When client-a-weekly next opens.
    client_a_opens: DateTime<Utc>,
}

static WORLD: LazyLock<World> = LazyLock::new(World::new);

impl World {
    fn new() -> Self {
        let now = Utc::now();
        let client_a_opens = (now + TimeDelta::days(1))
            .duration_trunc(TimeDelta::minutes(1))
            .expect("truncate to the minute");
        let range = |start: DateTime<Utc>, hours: i64| json!([{"start": start, "end": start + TimeDelta::hours(hours)}]);
        let windows = vec![
            object(json!({
                "apiVersion": "changegate.dev/v1alpha1", "kind": "MaintenanceWindow",
                "metadata": {"name": "client-a-weekly", "resourceVersion": "1"},
                "spec": {"tenants": ["client-a"], "timeZone": "Europe/Berlin",
                         "schedule": {"ranges": range(client_a_opens, 4)}}
            })),
            object(json!({
                "apiVersion": "changegate.dev/v1alpha1", "kind": "MaintenanceWindow",
                "metadata": {"name": "client-b-now", "resourceVersion": "1"},
                "spec": {"tenants": ["client-b"], "timeZone": "Europe/Berlin",
                         "schedule": {"ranges": range(now - TimeDelta::hours(1), 4)}}
            })),
        ];
        let policy = |name: &str, extra: Value| {
            let mut spec = json!({"tenants": [name],
                "approvals": {"normal": [{"group": format!("{name}:approvers"), "count": 1}]}});
            merge(&mut spec, extra);
            object::<ChangePolicy>(json!({
                "apiVersion": "changegate.dev/v1alpha1", "kind": "ChangePolicy",
                "metadata": {"name": name}, "spec": spec
            }))
        };
        let policies = vec![
            policy("client-a", json!({})),
            policy("client-b", json!({})),
            policy("client-c", json!({"enforcement": "Warn"})),
            policy("msp", json!({})),
        ];
        let change = |namespace: &str, name: &str, requester: &str, status: Value| {
            object::<ChangeRequest>(json!({
                "apiVersion": "changegate.dev/v1alpha1", "kind": "ChangeRequest",
                "metadata": {"name": name, "namespace": namespace,
                             "creationTimestamp": "2026-11-20T09:00:00Z",
                             "annotations": {REQUESTED_BY: requester}},
                "spec": {"type": "Normal", "title": "Upgrade payments-api to 2.4.1",
                         "targets": [{"kind": "Deployment", "name": "payments-api"}]},
                "status": status
            }))
        };
        let changes = vec![
            change(
                "client-a-prod",
                "chg-0142",
                "bob",
                json!({"phase": "PendingApproval"}),
            ),
            change(
                "client-b-prod",
                "chg-0200",
                "carol",
                json!({"approvals": [{"decision": "Approved", "approver": "erin",
                    "groups": ["client-b:approvers"], "at": "2026-11-21T10:00:00Z"}]}),
            ),
        ];
        let namespace = |name: &str, tenant: Option<&str>| {
            let labels = match tenant {
                Some(t) => json!({"kubernetes.io/metadata.name": name, "changegate.dev/tenant": t}),
                None => json!({"kubernetes.io/metadata.name": name}),
            };
            object::<Namespace>(json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "labels": labels}
            }))
        };
        let namespaces = vec![
            namespace("client-a-prod", Some("client-a")),
            namespace("client-b-prod", Some("client-b")),
            namespace("client-c-staging", Some("client-c")),
            namespace("sandbox", None),
            // Labelled like any tenant namespace: only the operator-namespace
            // rule keeps the operator's own Deployment ungated.
            namespace(OPERATOR_NAMESPACE, Some("msp")),
            namespace(OPERATIONS_NAMESPACE, Some("msp")),
        ];
        let app = App {
            stores: Stores::from_objects(
                changes,
                Vec::<Release>::new(),
                windows,
                policies,
                namespaces,
            ),
            operator_namespace: OPERATOR_NAMESPACE.into(),
            operations_namespace: OPERATIONS_NAMESPACE.into(),
            controller_user: CONTROLLER.into(),
            metrics: Metrics::default(),
            caches_synced: AtomicBool::new(true),
            certificate_loaded: AtomicBool::new(true),
        };
        Self {
            app: Arc::new(app),
            client_a_opens,
        }
    }
}

fn object<K: DeserializeOwned>(value: Value) -> K {
    serde_json::from_value(value).expect("a valid object")
}

fn merge(base: &mut Value, extra: Value) {
    if let (Value::Object(b), Value::Object(e)) = (base, extra) {
        b.extend(e);
    }
}

// ---------------------------------------------------------------------------
// Fixtures and the wire
// ---------------------------------------------------------------------------

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/admission")
}

/// One AdmissionReview request from `tests/fixtures/admission/<name>.json`.
fn fixture(name: &str) -> Value {
    let path = fixture_dir().join(format!("{name}.json"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// Every fixture, by file stem, sorted.
fn all_fixtures() -> Vec<(String, Value)> {
    let mut names: Vec<String> = std::fs::read_dir(fixture_dir())
        .expect("list tests/fixtures/admission")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            p.file_stem()
                .expect("file stem")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    assert!(names.len() >= 18, "the corpus lost fixtures: {names:?}");
    names
        .into_iter()
        .map(|n| {
            let v = fixture(&n);
            (n, v)
        })
        .collect()
}

/// The routes the webhook configurations send a kind to.
fn routes_for(review: &Value) -> &'static [&'static str] {
    match review["request"]["kind"]["kind"].as_str() {
        Some("ChangeRequest") => &[MUTATE_CHANGEREQUESTS, VALIDATE_CHANGEREQUESTS],
        Some("Release") => &[VALIDATE_RELEASES],
        Some("MaintenanceWindow" | "ChangePolicy") => &[VALIDATE_GOVERNANCE],
        _ => &[VALIDATE_WORKLOADS],
    }
}

/// POSTs `body` to `route` as the API server does, and returns the raw answer.
fn post(route: &str, body: impl Into<Body>) -> (StatusCode, Bytes) {
    let request = Request::post(route)
        .header("content-type", "application/json")
        .body(body.into())
        .expect("request");
    let router = admission_router(WORLD.app.clone());
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(async move {
            let response = router.oneshot(request).await.expect("infallible");
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            (status, body)
        })
}

/// The response of an AdmissionReview, as the API server reads it.
#[derive(Debug, Clone, PartialEq)]
struct Reply {
    uid: String,
    allowed: bool,
    message: String,
    warnings: Vec<String>,
    /// The decoded JSON patch, when there is one.
    patch: Option<Value>,
}

/// Sends a review and reads the AdmissionReview that answers it, checking
/// what the API server requires of any answer.
fn admit(route: &str, review: &Value) -> Reply {
    let (status, body) = post(route, serde_json::to_vec(review).expect("serialize"));
    assert_eq!(
        status,
        StatusCode::OK,
        "{route}: {}",
        String::from_utf8_lossy(&body)
    );
    let reply = read_reply(&body).unwrap_or_else(|e| panic!("{route}: {e}"));
    assert_eq!(
        Some(reply.uid.as_str()),
        review["request"]["uid"].as_str(),
        "{route}: the response must carry the request's uid"
    );
    reply
}

fn read_reply(body: &[u8]) -> Result<Reply, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    if v["apiVersion"] != "admission.k8s.io/v1" || v["kind"] != "AdmissionReview" {
        return Err(format!("not an admission.k8s.io/v1 AdmissionReview: {v}"));
    }
    let r = &v["response"];
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let patch = match &r["patch"] {
        Value::Null => None,
        p => {
            if r["patchType"] != "JSONPatch" {
                return Err(format!("a patch without patchType JSONPatch: {r}"));
            }
            Some(decode_patch(p)?)
        }
    };
    Ok(Reply {
        uid: text(&r["uid"]).ok_or("response.uid is missing")?,
        allowed: r["allowed"]
            .as_bool()
            .ok_or("response.allowed is missing")?,
        message: text(&r["status"]["message"]).unwrap_or_default(),
        warnings: serde_json::from_value(r["warnings"].clone()).unwrap_or_default(),
        patch,
    })
}

/// `response.patch` is `[]byte` on the API server's side, which Go's JSON
/// decoder reads from a base64 string or from an array of byte values; kube
/// writes the array. Both decode to the JSON Patch document.
fn decode_patch(patch: &Value) -> Result<Value, String> {
    let bytes = match patch {
        Value::String(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("response.patch is not base64: {e}"))?,
        Value::Array(items) => items
            .iter()
            .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
            .collect::<Option<Vec<u8>>>()
            .ok_or("response.patch is not an array of bytes")?,
        other => {
            return Err(format!(
                "response.patch is neither base64 nor bytes: {other}"
            ));
        }
    };
    let doc: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("response.patch is not JSON: {e}"))?;
    serde_json::from_value::<json_patch::Patch>(doc.clone())
        .map_err(|e| format!("response.patch is not a JSON Patch: {e}"))?;
    Ok(doc)
}

/// The request's object with the reply's patch applied: what gets stored.
fn patched(review: &Value, reply: &Reply) -> Value {
    let patch: json_patch::Patch =
        serde_json::from_value(reply.patch.clone().expect("a patch")).expect("a JSON Patch");
    let mut object = review["request"]["object"].clone();
    json_patch::patch(&mut object, &patch).expect("the patch applies to the request's object");
    object
}

fn assert_within_seconds_of_now(at: &Value) {
    let at: DateTime<Utc> = serde_json::from_value(at.clone()).expect("an RFC 3339 time");
    let drift = (Utc::now() - at).abs();
    assert!(drift < TimeDelta::seconds(30), "{at} is not now");
}

// ---------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------

#[test]
fn a_workload_update_without_an_approved_change_is_denied_with_what_to_do_next() {
    let reply = admit(
        VALIDATE_WORKLOADS,
        &fixture("deployment-update-pending-change"),
    );
    assert!(!reply.allowed);
    assert_eq!(
        reply.message,
        format!(
            "changegate: Deployment client-a-prod/payments-api is not covered by an approved change. \
             chg-0142 is PendingApproval: 1 of 1 from group client-a:approvers still needed. \
             Next maintenance window client-a-weekly opens {}.",
            changegate_agent::window::format_instant(WORLD.client_a_opens, Berlin)
        )
    );
    assert!(reply.warnings.is_empty());
    assert_eq!(reply.patch, None);
}

#[test]
fn a_workload_update_covered_by_an_approved_change_in_an_open_window_is_admitted() {
    let reply = admit(
        VALIDATE_WORKLOADS,
        &fixture("deployment-update-covered-by-approved-change"),
    );
    assert!(reply.allowed, "{}", reply.message);
    assert_eq!(reply.message, "");
    assert!(reply.warnings.is_empty());
}

#[test]
fn an_update_that_changes_only_labels_and_replicas_is_admitted() {
    let review = fixture("deployment-update-labels-and-replicas-only");
    let reply = admit(VALIDATE_WORKLOADS, &review);
    assert!(reply.allowed, "{}", reply.message);

    // The same namespace denies a real spec change: the admission above is
    // the metadata rule's doing.
    let mut image_bump = review;
    image_bump["request"]["object"]["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!("registry.example.com/payments-api:2.4.1");
    assert!(!admit(VALIDATE_WORKLOADS, &image_bump).allowed);
}

#[test]
fn warn_mode_admits_with_the_denial_as_a_warning() {
    let reply = admit(VALIDATE_WORKLOADS, &fixture("deployment-update-warn-mode"));
    assert!(reply.allowed);
    assert_eq!(reply.message, "");
    assert_eq!(reply.warnings.len(), 1, "{:?}", reply.warnings);
    let warning = &reply.warnings[0];
    assert!(
        warning.starts_with(
            "changegate: Deployment client-c-staging/payments-api is not covered by an approved change."
        ) && warning.ends_with("(Warn mode: admitted)"),
        "{warning}"
    );
}

#[test]
fn a_namespace_the_cache_shows_without_a_tenant_label_is_refused_until_it_catches_up() {
    // The webhook configuration selects labelled namespaces only, so this
    // request means the cache has not seen the label yet: never wave a
    // change through as ungoverned on stale data.
    let reply = admit(
        VALIDATE_WORKLOADS,
        &fixture("deployment-update-ungoverned-namespace"),
    );
    assert!(!reply.allowed);
    assert!(
        reply.message.contains(
            "does not yet show namespace sandbox with its changegate.dev/tenant label; retry in a few seconds"
        ),
        "{}",
        reply.message
    );
}

#[test]
fn the_operator_namespace_is_never_gated_even_when_labelled_as_a_tenant() {
    let review = fixture("deployment-update-operator-namespace");
    let reply = admit(VALIDATE_WORKLOADS, &review);
    assert!(reply.allowed, "{}", reply.message);

    // The same request in the operations namespace, same tenant, is gated.
    let mut elsewhere = review;
    elsewhere["request"]["namespace"] = json!(OPERATIONS_NAMESPACE);
    assert!(!admit(VALIDATE_WORKLOADS, &elsewhere).allowed);
}

#[test]
fn a_status_subresource_request_is_passed_through_unjudged() {
    // The fixture's spec differs from oldObject's on purpose: a subresource
    // request is not judged, whatever it carries.
    let review = fixture("deployment-status-subresource");
    let reply = admit(VALIDATE_WORKLOADS, &review);
    assert!(reply.allowed, "{}", reply.message);
    assert!(reply.warnings.is_empty());

    let mut main_resource = review;
    let request = main_resource["request"].as_object_mut().expect("request");
    request.remove("subResource");
    request.remove("requestSubResource");
    assert!(!admit(VALIDATE_WORKLOADS, &main_resource).allowed);
}

// ---------------------------------------------------------------------------
// ChangeRequests: stamping and integrity
// ---------------------------------------------------------------------------

#[test]
fn creating_a_change_stamps_requested_by_over_a_forged_value() {
    let review = fixture("changerequest-create-forged-requested-by");
    assert_eq!(
        review["request"]["object"]["metadata"]["annotations"][REQUESTED_BY],
        "mallory"
    );
    let reply = admit(MUTATE_CHANGEREQUESTS, &review);
    assert!(reply.allowed, "{}", reply.message);
    let stamped = patched(&review, &reply);
    assert_eq!(stamped["metadata"]["annotations"][REQUESTED_BY], "bob");

    // The validating webhook accepts the stamped object and refuses the
    // forged one (as it would if the mutating webhook had not run).
    let mut after_mutation = review.clone();
    after_mutation["request"]["object"] = stamped;
    assert!(admit(VALIDATE_CHANGEREQUESTS, &after_mutation).allowed);
    let forged = admit(VALIDATE_CHANGEREQUESTS, &review);
    assert!(!forged.allowed);
    assert!(
        forged
            .message
            .contains("annotation must name the creator (bob)"),
        "{}",
        forged.message
    );
}

/// Found by the fuzz properties: the stamp used to be computed against
/// `null`, a patch the API server cannot apply.
#[test]
fn a_change_create_without_an_object_is_denied_rather_than_given_a_patch_that_cannot_apply() {
    let mut review = fixture("changerequest-create-forged-requested-by");
    review["request"]
        .as_object_mut()
        .expect("request")
        .remove("object");
    let reply = admit(MUTATE_CHANGEREQUESTS, &review);
    assert!(!reply.allowed);
    assert_eq!(
        reply.message,
        "changegate: the request carries no ChangeRequest"
    );
    assert_eq!(reply.patch, None);
}

#[test]
fn an_approval_sent_in_someone_elses_name_is_stamped_with_the_callers_identity() {
    let review = fixture("changerequest-status-approval-in-someone-elses-name");
    let reply = admit(MUTATE_CHANGEREQUESTS, &review);
    assert!(reply.allowed, "{}", reply.message);
    let stamped = patched(&review, &reply);
    let approval = &stamped["status"]["approvals"][0];
    assert_eq!(approval["approver"], "alice");
    assert_eq!(approval["groups"], review["request"]["userInfo"]["groups"]);
    assert_within_seconds_of_now(&approval["at"]);
    assert_eq!(
        approval["comment"], "looks good",
        "the rest is the caller's"
    );

    let mut after_mutation = review;
    after_mutation["request"]["object"] = stamped;
    let validated = admit(VALIDATE_CHANGEREQUESTS, &after_mutation);
    assert!(validated.allowed, "{}", validated.message);
}

#[test]
fn approving_your_own_change_is_denied() {
    let reply = admit(
        VALIDATE_CHANGEREQUESTS,
        &fixture("changerequest-status-self-approval"),
    );
    assert!(!reply.allowed);
    assert_eq!(
        reply.message,
        "changegate: bob requested this change and may not approve it (separation of duties); \
         ask a member of client-a:approvers to approve it"
    );
}

#[test]
fn editing_an_existing_approval_is_denied() {
    let reply = admit(
        VALIDATE_CHANGEREQUESTS,
        &fixture("changerequest-status-edit-existing-approval"),
    );
    assert!(!reply.allowed);
    assert!(
        reply
            .message
            .starts_with("changegate: status.approvals is append-only"),
        "{}",
        reply.message
    );
}

#[test]
fn history_appended_by_anyone_but_the_controller_is_denied() {
    let review = fixture("changerequest-status-history-by-non-controller");
    let reply = admit(VALIDATE_CHANGEREQUESTS, &review);
    assert!(!reply.allowed);
    assert_eq!(
        reply.message,
        "changegate: only the changegate controller appends to status.history, not mallory"
    );

    let mut by_controller = review;
    by_controller["request"]["userInfo"] = json!({"username": CONTROLLER,
        "groups": ["system:serviceaccounts", "system:serviceaccounts:changegate-system", "system:authenticated"]});
    let reply = admit(VALIDATE_CHANGEREQUESTS, &by_controller);
    assert!(reply.allowed, "{}", reply.message);
}

// ---------------------------------------------------------------------------
// Governance and releases
// ---------------------------------------------------------------------------

#[test]
fn a_maintenance_window_with_an_unknown_time_zone_is_denied_naming_the_field_and_value() {
    let reply = admit(
        VALIDATE_GOVERNANCE,
        &fixture("maintenancewindow-create-unknown-time-zone"),
    );
    assert!(!reply.allowed);
    assert_eq!(
        reply.message,
        "changegate: spec.timeZone: unknown time zone \"Europe/Berln\" (did you mean Europe/Berlin?)"
    );
}

#[test]
fn a_change_policy_with_a_bad_allowed_paths_pattern_is_denied_naming_the_pattern() {
    let reply = admit(
        VALIDATE_GOVERNANCE,
        &fixture("changepolicy-create-bad-allowed-path"),
    );
    assert!(!reply.allowed);
    assert!(
        reply.message.starts_with(
            "changegate: spec.standardChanges[0].allowedPaths[0]: invalid path pattern \"spec.template.spec.containers[app.image\""
        ),
        "{}",
        reply.message
    );
}

#[test]
fn a_release_outside_the_operations_namespace_may_not_reference_another_namespace() {
    let reply = admit(
        VALIDATE_RELEASES,
        &fixture("release-create-cross-namespace-reference"),
    );
    assert!(!reply.allowed);
    assert_eq!(
        reply.message,
        "changegate: spec.changes references ChangeRequest client-b-prod/chg-0200, but a Release outside \
         the operations namespace msp-operations may only reference changes in its own namespace client-a-prod"
    );
}

#[test]
fn a_release_in_the_operations_namespace_may_reference_any_namespace() {
    let reply = admit(
        VALIDATE_RELEASES,
        &fixture("release-create-from-the-operations-namespace"),
    );
    assert!(reply.allowed, "{}", reply.message);
}

// ---------------------------------------------------------------------------
// Dry run, bad input and the corpus
// ---------------------------------------------------------------------------

/// The reply without what legitimately differs between two sends: the uid
/// and the stamped times.
fn comparable(mut reply: Reply) -> Reply {
    reply.uid.clear();
    if let Some(Value::Array(ops)) = &mut reply.patch {
        for op in ops {
            if op["path"].as_str().is_some_and(|p| p.ends_with("/at")) {
                op["value"] = json!("<now>");
            }
        }
    }
    reply
}

#[test]
fn a_dry_run_request_gets_the_same_answer() {
    for (name, review) in all_fixtures() {
        let mut dry = review.clone();
        dry["request"]["dryRun"] = json!(true);
        dry["request"]["uid"] = json!("dry-run-uid");
        for route in routes_for(&review) {
            let wet = comparable(admit(route, &review));
            let dry = comparable(admit(route, &dry));
            assert_eq!(wet, dry, "{name} on {route}");
        }
    }
}

#[test]
fn malformed_bodies_get_400_with_a_message_on_every_route() {
    let bodies: [(&str, &[u8], &str); 6] = [
        ("empty", b"", "malformed AdmissionReview"),
        ("not JSON", b"apiVersion: admission.k8s.io/v1", "malformed AdmissionReview"),
        ("a JSON list", b"[]", "malformed AdmissionReview"),
        ("another object", br#"{"hello": "world"}"#, "malformed AdmissionReview"),
        (
            "a request without its uid",
            br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"operation": "CREATE"}}"#,
            "malformed AdmissionReview",
        ),
        (
            "a review without a request",
            br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}"#,
            "the AdmissionReview has no request",
        ),
    ];
    for route in ROUTES {
        for (what, body, says) in bodies {
            let (status, answer) = post(route, body);
            let answer = String::from_utf8_lossy(&answer);
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{what} on {route}: {answer}"
            );
            assert!(
                answer.starts_with("changegate: ") && answer.contains(says),
                "{what} on {route}: {answer}"
            );
        }
    }
}

/// Found by the fuzz properties: the answer echoes the request's apiVersion
/// and kind, so a body that is not a v1 AdmissionReview used to be answered
/// as whatever it claimed to be.
#[test]
fn a_review_of_another_version_or_kind_gets_400() {
    for (api_version, kind) in [
        ("admission.k8s.io/v1beta1", "AdmissionReview"),
        ("", "AdmissionReview"),
        ("v1", "Pod"),
    ] {
        let mut review = fixture("deployment-update-pending-change");
        review["apiVersion"] = json!(api_version);
        review["kind"] = json!(kind);
        let (status, answer) = post(
            VALIDATE_WORKLOADS,
            serde_json::to_vec(&review).expect("serialize"),
        );
        let answer = String::from_utf8_lossy(&answer);
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{api_version} {kind}: {answer}"
        );
        assert!(
            answer.starts_with("changegate: expected an admission.k8s.io/v1 AdmissionReview"),
            "{answer}"
        );
    }
}

#[test]
fn a_deployment_whose_spec_is_not_an_object_is_denied_with_a_message() {
    let reply = admit(
        VALIDATE_WORKLOADS,
        &fixture("deployment-create-spec-is-a-string"),
    );
    assert!(!reply.allowed);
    assert!(
        reply
            .message
            .starts_with("changegate: Deployment client-a-prod/payments-api "),
        "{}",
        reply.message
    );
}

#[test]
fn a_change_request_whose_spec_is_not_an_object_is_denied_with_a_message() {
    let review = fixture("changerequest-update-spec-is-a-string");
    let reply = admit(VALIDATE_CHANGEREQUESTS, &review);
    assert!(!reply.allowed);
    assert!(
        reply
            .message
            .starts_with("changegate: cannot read the ChangeRequest: "),
        "{}",
        reply.message
    );
}

/// The seed corpus of the fuzz properties below: every fixture on every
/// route, not only its own, gets an AdmissionReview back.
#[test]
fn every_fixture_gets_an_admission_review_on_every_route() {
    for (name, review) in all_fixtures() {
        for route in ROUTES {
            let reply = admit(route, &review);
            assert!(
                reply.allowed || !reply.message.is_empty(),
                "{name} on {route}: a denial without a message"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Fuzzing
// ---------------------------------------------------------------------------

mod fuzz {
    //! Whatever arrives, every route answers 200 with an AdmissionReview (a
    //! denial always says why, a patch always applies) or 400 with a
    //! message, and never panics. Failures are persisted under
    //! `proptest-regressions/` and replayed first on the next run.

    use super::*;
    use kube::core::DynamicObject;
    use proptest::prelude::*;
    use proptest::sample::{Index, select};
    use proptest::test_runner::FileFailurePersistence;

    fn config(cases: u32) -> ProptestConfig {
        ProptestConfig {
            cases,
            failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
                "proptest-regressions/webhook_router.txt",
            ))),
            ..ProptestConfig::default()
        }
    }

    static CORPUS: LazyLock<Vec<(String, Value)>> = LazyLock::new(all_fixtures);

    /// Field names the handlers look at, so generated objects reach past
    /// the first parse more often than random keys would.
    const KEYS: &[&str] = &[
        "apiVersion",
        "kind",
        "request",
        "uid",
        "group",
        "version",
        "resource",
        "subResource",
        "name",
        "namespace",
        "operation",
        "userInfo",
        "username",
        "groups",
        "object",
        "oldObject",
        "dryRun",
        "metadata",
        "annotations",
        "labels",
        "spec",
        "status",
        "approvals",
        "decision",
        "approver",
        "at",
        "history",
        "review",
        "targets",
        "template",
        "containers",
        "image",
        "tenants",
        "timeZone",
        "schedule",
        "cron",
        "duration",
        "ranges",
        "start",
        "end",
        "changes",
        "standardChanges",
        "allowedPaths",
        "type",
        "phase",
    ];

    const WORDS: &[&str] = &[
        "",
        "CREATE",
        "UPDATE",
        "DELETE",
        "CONNECT",
        "status",
        "scale",
        "Deployment",
        "CronJob",
        "ChangeRequest",
        "MaintenanceWindow",
        "ChangePolicy",
        "Release",
        "client-a-prod",
        "changegate-system",
        "msp-operations",
        "bob",
        "alice",
        REQUESTED_BY,
        "Approved",
        "Rejected",
        "Normal",
        "Standard",
        "Emergency",
        "Europe/Berlin",
        "0 2 * * SAT",
        "4h",
        "2026-11-28T02:00:00Z",
        "spec.template",
        "admission.k8s.io/v1",
        "AdmissionReview",
        "changegate.dev/v1alpha1",
    ];

    /// Any JSON value, biased towards the vocabulary of admission.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            select(WORDS).prop_map(Value::from),
            "\\PC{0,16}".prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 48, 6, |inner| {
            let key = prop_oneof![select(KEYS).prop_map(String::from), "[a-zA-Z/.~-]{0,10}"];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((key, inner), 0..6)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    /// A step into a JSON document.
    enum Step {
        Key(String),
        At(usize),
    }

    /// The path of every node below the root, in document order.
    fn node_paths(doc: &Value) -> Vec<Vec<Step>> {
        fn walk(v: &Value, prefix: &mut Vec<(bool, String, usize)>, out: &mut Vec<Vec<Step>>) {
            let children: Vec<((bool, String, usize), &Value)> = match v {
                Value::Object(m) => m.iter().map(|(k, c)| ((true, k.clone(), 0), c)).collect(),
                Value::Array(a) => a
                    .iter()
                    .enumerate()
                    .map(|(i, c)| ((false, String::new(), i), c))
                    .collect(),
                _ => Vec::new(),
            };
            for (step, child) in children {
                prefix.push(step);
                out.push(
                    prefix
                        .iter()
                        .map(|(is_key, k, i)| {
                            if *is_key {
                                Step::Key(k.clone())
                            } else {
                                Step::At(*i)
                            }
                        })
                        .collect(),
                );
                walk(child, prefix, out);
                prefix.pop();
            }
        }
        let mut out = Vec::new();
        walk(doc, &mut Vec::new(), &mut out);
        out
    }

    /// Replaces the node at `path` with `with`, or removes it.
    fn mutate(doc: &mut Value, path: &[Step], with: Option<Value>) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut parent = doc;
        for step in parents {
            parent = match (step, parent) {
                (Step::Key(k), Value::Object(m)) => m.get_mut(k).expect("a path of this document"),
                (Step::At(i), Value::Array(a)) => &mut a[*i],
                _ => unreachable!("a path of this document"),
            };
        }
        match (last, parent, with) {
            (Step::Key(k), Value::Object(m), Some(v)) => {
                m.insert(k.clone(), v);
            }
            (Step::Key(k), Value::Object(m), None) => {
                m.remove(k);
            }
            (Step::At(i), Value::Array(a), Some(v)) => a[*i] = v,
            (Step::At(i), Value::Array(a), None) => {
                a.remove(*i);
            }
            _ => unreachable!("a path of this document"),
        }
    }

    /// Whether `path` lies in the spec or status of the request's object or
    /// old object, where a mutation reaches the decisions rather than the
    /// envelope's parser.
    fn in_object_body(path: &[Step]) -> bool {
        matches!(
            path,
            [Step::Key(r), Step::Key(o), Step::Key(part), _, ..]
                if r == "request"
                    && (o == "object" || o == "oldObject")
                    && (part == "spec" || part == "status")
        )
    }

    /// A fixture with one to three random subtrees replaced or removed,
    /// anywhere or (half the time) only inside the objects' spec and status.
    fn mutated_fixture() -> impl Strategy<Value = (String, Value)> {
        let edits = prop::collection::vec(
            (
                any::<Index>(),
                any::<bool>(),
                prop::option::weighted(0.8, json_value()),
            ),
            1..4,
        );
        (any::<Index>(), edits).prop_map(|(which, edits)| {
            let (name, fixture) = which.get(&CORPUS);
            let mut doc = fixture.clone();
            for (at, deep, with) in edits {
                let mut paths = node_paths(&doc);
                if deep && paths.iter().any(|p| in_object_body(p)) {
                    paths.retain(|p| in_object_body(p));
                }
                if !paths.is_empty() {
                    mutate(&mut doc, at.get::<Vec<Step>>(&paths), with);
                }
            }
            (name.clone(), doc)
        })
    }

    /// What every answer must be, whatever the body; the reply, when 200.
    fn check_answer(route: &str, body: &[u8]) -> Result<Option<Reply>, TestCaseError> {
        let (status, answer) = post(route, body.to_vec());
        match status {
            StatusCode::OK => {
                let reply = read_reply(&answer).map_err(TestCaseError::fail)?;
                let sent: Value = serde_json::from_slice(body).expect("a 200 answers JSON");
                prop_assert_eq!(Some(reply.uid.as_str()), sent["request"]["uid"].as_str());
                prop_assert!(
                    reply.allowed || !reply.message.is_empty(),
                    "a denial without a message"
                );
                if let Some(patch) = &reply.patch {
                    let patch: json_patch::Patch =
                        serde_json::from_value(patch.clone()).expect("checked by read_reply");
                    // Judged against the object as the webhook reads it: kube
                    // fills in an empty `metadata`, which the API server
                    // always sends anyway.
                    let raw = &sent["request"]["object"];
                    let mut object = serde_json::from_value::<DynamicObject>(raw.clone())
                        .map_or_else(
                            |_| raw.clone(),
                            |o| serde_json::to_value(o).expect("serialize"),
                        );
                    json_patch::patch(&mut object, &patch).map_err(|e| {
                        TestCaseError::fail(format!("the patch does not apply to the object: {e}"))
                    })?;
                }
                Ok(Some(reply))
            }
            StatusCode::BAD_REQUEST => {
                let text = String::from_utf8_lossy(&answer);
                prop_assert!(text.starts_with("changegate: "), "{}", text);
                Ok(None)
            }
            other => Err(TestCaseError::fail(format!("{route} answered {other}"))),
        }
    }

    /// MaintenanceWindow specs from schedule fields that are mostly
    /// plausible and sometimes borderline or wrong, for the governance
    /// route's schedule compiler (cron, rrule, chrono arithmetic).
    fn window_spec() -> impl Strategy<Value = Value> {
        const ZONES: &[&str] = &[
            "UTC",
            "Europe/Berlin",
            "Asia/Kolkata",
            "Australia/Lord_Howe",
            "America/St_Johns",
            "Pacific/Chatham",
            "America/Sao_Paulo",
        ];
        const ODD_ZONES: &[&str] = &["Europe/Berln", "", "+01:00", "CET", "utc"];
        const DURATIONS: &[&str] = &[
            "4h",
            "0s",
            "-4h",
            "8784h",
            "8785h",
            "1ns",
            "2562047h",
            "9999999999h",
            "1h30m",
        ];
        const CRONS: &[&str] = &[
            "0 2 * * SAT",
            "*/20 * * * *",
            "0 0 31 2 *",
            "0 0 29 2 *",
            "30 1,2,3 * * *",
            "0 2 L * *",
            "0 2 * * 5#3",
            "0 2 * * 5L",
            "0 2 LW * *",
            "* * * * * *",
            "",
        ];
        const RRULES: &[&str] = &[
            "FREQ=MONTHLY;BYDAY=2TU;BYHOUR=22;BYMINUTE=0",
            "DTSTART:20250101T013000\nRRULE:FREQ=HOURLY;INTERVAL=5",
            "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
            "FREQ=SECONDLY",
            "",
        ];
        let zone = prop_oneof![
            8 => select(ZONES).prop_map(String::from),
            1 => select(ODD_ZONES).prop_map(String::from),
            1 => "[A-Za-z_/+-]{0,16}",
        ];
        let duration = prop_oneof![
            4 => "[1-9][0-9]{0,3}(h|m)",
            2 => select(DURATIONS).prop_map(String::from),
            1 => "\\PC{0,8}",
        ];
        let cron = prop_oneof![
            3 => select(CRONS).prop_map(String::from),
            2 => "([0-9]{1,2}|\\*)( ([0-9]{1,2}|\\*|[0-9]-[0-9]|\\*/[0-9]{1,2})){4}",
            1 => "[0-9*/,LW#?A-Z -]{0,24}",
        ];
        let rrule = prop_oneof![
            1 => select(RRULES).prop_map(String::from),
            3 => "(DTSTART(;TZID=Europe/Berlin)?:20[0-9]{2}0[1-9][0-2][0-9]T[0-2][0-9][0-5][0-9]00Z?\n)?(RRULE:)?FREQ=(YEARLY|MONTHLY|WEEKLY|DAILY|HOURLY|MINUTELY|SECONDLY)(;INTERVAL=[0-9]{1,5})?(;COUNT=[0-9]{1,5})?(;UNTIL=20[0-9]{2}0[1-9][0-2][0-9]T000000Z)?(;BYDAY=(MO|SU|-1FR|2TU|53MO))?(;BYMONTHDAY=-?[0-9]{1,2})?(;BYHOUR=[0-9]{1,2})?(;BYSETPOS=-?[0-9]{1,3})?",
        ];
        let year = prop_oneof![4 => 2020u32..2040, 1 => 1u32..=9999];
        let instant = (year.clone(), 1u32..=12, 1u32..=28, 0u32..=23)
            .prop_map(|(y, m, d, h)| json!(format!("{y:04}-{m:02}-{d:02}T{h:02}:00:00Z")));
        let range =
            (instant.clone(), instant).prop_map(|(start, end)| json!({"start": start, "end": end}));
        let schedule = prop_oneof![
            (cron, duration.clone()).prop_map(|(c, d)| json!({"cron": c, "duration": d})),
            (rrule, duration).prop_map(|(r, d)| json!({"rrule": r, "duration": d})),
            prop::collection::vec(range.clone(), 0..4).prop_map(|r| json!({"ranges": r})),
        ];
        let exclusion = prop_oneof![
            (year, 1u32..=12, 1u32..=31)
                .prop_map(|(y, m, d)| json!({"date": format!("{y:04}-{m:02}-{d:02}")})),
            range,
        ];
        let kind = prop_oneof![
            4 => Just(json!({"type": "Maintenance"})),
            2 => prop::collection::vec(select(&["Standard", "Normal", "Emergency"][..]), 0..3)
                .prop_map(|allow| json!({"type": "Blackout", "allowTypes": allow})),
            1 => Just(json!({"type": "Maintenance", "allowTypes": ["Emergency"]})),
        ];
        (zone, schedule, prop::collection::vec(exclusion, 0..3), kind).prop_map(
            |(zone, schedule, exclusions, kind)| {
                let mut spec = json!({"tenants": ["client-a"], "timeZone": zone,
                                      "schedule": schedule, "exclusions": exclusions});
                merge(&mut spec, kind);
                spec
            },
        )
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn arbitrary_json_is_answered_with_200_or_400(body in json_value(), route in select(&ROUTES[..])) {
            check_answer(route, &serde_json::to_vec(&body).expect("serialize"))?;
        }

        #[test]
        fn arbitrary_bytes_are_answered_with_400(body in prop::collection::vec(any::<u8>(), 0..64), route in select(&ROUTES[..])) {
            prop_assert!(check_answer(route, &body)?.is_none(), "random bytes answered as a review");
        }

    }

    proptest! {
        // Each case compiles a schedule, the slowest step (up to ~0.5 s in
        // debug for a rule that never matches).
        #![proptest_config(config(128))]

        #[test]
        fn maintenance_windows_with_odd_schedules_are_admitted_or_denied_naming_the_field(spec in window_spec()) {
            let mut review = fixture("maintenancewindow-create-unknown-time-zone");
            review["request"]["object"]["spec"] = spec;
            let body = serde_json::to_vec(&review).expect("serialize");
            let reply = check_answer(VALIDATE_GOVERNANCE, &body)?
                .ok_or_else(|| TestCaseError::fail("a well-formed review answered 400"))?;
            prop_assert!(
                reply.allowed
                    || reply.message.starts_with("changegate: spec.")
                    || reply.message.starts_with("changegate: cannot read the MaintenanceWindow: "),
                "{}", reply.message
            );
        }
    }

    proptest! {
        #![proptest_config(config(512))]

        #[test]
        fn fixtures_with_random_subtrees_replaced_are_answered_with_200_or_400(
            (name, review) in mutated_fixture(),
            (own_route, pick) in (prop::bool::weighted(0.75), any::<Index>()),
        ) {
            // Mostly the route the kind is registered for, so mutations get
            // past "cannot read the ChangeRequest" into the decisions.
            let route = if own_route { *pick.get(routes_for(&review)) } else { *pick.get(&ROUTES) };
            let body = serde_json::to_vec(&review).expect("serialize");
            check_answer(route, &body).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
        }
    }
}
