//! Router-tier tests of the admission webhook (STYLE §9): real
//! AdmissionReview JSON from `tests/fixtures/admission/` goes through
//! `server::admission_router` over in-memory stores and a bundle as the
//! server serves it, and each test reads the AdmissionReview that comes
//! back. No cluster. The `fuzz` module feeds the routes arbitrary JSON and
//! mutated fixtures; the fixtures are its seed corpus.

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use base64::Engine;
use changegate_agent::bundle::{Bundle, BundleState, Snapshot};
use changegate_agent::webhook::metrics::Metrics;
use changegate_agent::webhook::server::{App, admission_router};
use changegate_agent::webhook::stores::Stores;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Namespace;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, LazyLock};
use tower::ServiceExt;

const VALIDATE_WORKLOADS: &str = "/validate/workloads";
/// Every admission route.
const ROUTES: [&str; 1] = [VALIDATE_WORKLOADS];

const OPERATOR_NAMESPACE: &str = "changegate-system";
const OPERATIONS_NAMESPACE: &str = "msp-operations";
const APPROVED_IMAGE: &str = "registry.example.com/payments-api:2.4.1";
/// The agent's own identity (a SelfSubjectReview at start in a cluster).
const AGENT: &str = "system:serviceaccount:changegate-system:changegate";

// ---------------------------------------------------------------------------
// The cluster as the webhook's stores and bundle see it
// ---------------------------------------------------------------------------

/// Tenants client-a (Enforce; CHG-142 awaits approval; its window opens
/// tomorrow), client-b (Enforce; CHG-200 approved; its window is open now),
/// client-c (Warn) and msp (Enforce; items in the operator's and the
/// operations namespaces), plus an unlabelled `sandbox`. Windows are
/// ranges placed relative to now, so no answer depends on the weekday the
/// tests run.
struct World {
    app: Arc<App>,
}

static WORLD: LazyLock<World> = LazyLock::new(World::new);

impl World {
    fn new() -> Self {
        let now = Utc::now();
        let client_a_opens = (now + TimeDelta::days(1))
            .duration_trunc(TimeDelta::minutes(1))
            .expect("truncate to the minute");
        let window = |tenant: &str, start: DateTime<Utc>| {
            json!({"tenants": [tenant], "timeZone": "Europe/Berlin",
                   "schedule": {"ranges": [{"start": start, "end": start + TimeDelta::hours(4)}]}})
        };
        let item = |namespace: &str, name: Option<&str>| {
            let mut binding =
                json!({"cluster": "prod-eu", "namespace": namespace, "kind": "Deployment"});
            if let Some(name) = name {
                binding["name"] = json!(name);
            }
            json!({"kind": "kubernetes-workload", "enforcement": {"kubernetes": binding}})
        };
        let change = |n: u32, state: &str, item: &str, awaiting: &[&str]| {
            json!({"number": format!("CHG-{n}"), "kind": "normal", "state": state,
                   "configurationItems": [item], "artifacts": [APPROVED_IMAGE],
                   "fingerprint": format!("sha256:{n:064x}"), "plannedStart": null, "plannedEnd": null,
                   "awaiting": awaiting})
        };
        let tenant =
            |name: &str, enforcement: &str, items: Value, windows: Value, changes: Value| {
                json!({"tenant": name, "enforcement": enforcement, "window_required": ["normal"],
                   "configuration_items": items, "windows": windows, "changes": changes})
            };
        let bundle: Bundle = serde_json::from_value(json!({"cluster": "prod-eu", "tenants": [
            tenant("client-a", "Enforce",
                json!({"payments-api": item("client-a-prod", Some("payments-api"))}),
                json!({"client-a-weekly": window("client-a", client_a_opens)}),
                json!([change(142, "awaiting-approval", "payments-api", &["1 approval from client-a-approvers"])])),
            tenant("client-b", "Enforce",
                json!({"payments-api": item("client-b-prod", Some("payments-api"))}),
                json!({"client-b-now": window("client-b", now - TimeDelta::hours(1))}),
                json!([change(200, "approved", "payments-api", &[])])),
            tenant("client-c", "Warn",
                json!({"payments-api": item("client-c-staging", Some("payments-api"))}),
                json!({}), json!([])),
            tenant("msp", "Enforce",
                json!({"operations": item(OPERATIONS_NAMESPACE, None), "agent": item(OPERATOR_NAMESPACE, None)}),
                json!({}), json!([])),
        ]}))
        .expect("a bundle");
        let state = BundleState::default();
        state.replace(Arc::new(Snapshot::new("\"e1\"".into(), bundle, now)), now);

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
            // Labelled like any tenant namespace and bound by an item: only
            // the operator-namespace rule keeps the agent's own Deployment ungated.
            namespace(OPERATOR_NAMESPACE, Some("msp")),
            namespace(OPERATIONS_NAMESPACE, Some("msp")),
        ];
        let app = App {
            stores: Stores::from_namespaces(namespaces),
            operator_namespace: OPERATOR_NAMESPACE.into(),
            metrics: std::sync::Arc::new(Metrics::default()),
            caches_synced: AtomicBool::new(true),
            certificate_loaded: AtomicBool::new(true),
            bundle: Arc::new(state),
            max_staleness: TimeDelta::minutes(10),
            agent_user: std::sync::OnceLock::from(AGENT.to_string()),
            approvals: None,
        };
        Self { app: Arc::new(app) }
    }
}

fn object<K: DeserializeOwned>(value: Value) -> K {
    serde_json::from_value(value).expect("a valid object")
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
    assert!(names.len() >= 8, "the corpus lost fixtures: {names:?}");
    names
        .into_iter()
        .map(|n| {
            let v = fixture(&n);
            (n, v)
        })
        .collect()
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
    assert!(
        reply.message.starts_with(
            "changegate: CHG-142 awaits 1 approval from client-a-approvers; next window client-a-weekly opens "
        ),
        "{}",
        reply.message
    );
    assert!(reply.warnings.is_empty());
    assert_eq!(reply.patch, None);
}

#[test]
fn a_workload_update_covered_by_an_approved_change_in_an_open_window_is_admitted() {
    let review = fixture("deployment-update-covered-by-approved-change");
    let reply = admit(VALIDATE_WORKLOADS, &review);
    assert!(reply.allowed, "{}", reply.message);
    assert_eq!(reply.message, "");
    assert!(reply.warnings.is_empty());

    // Another image than the approved one is refused, naming both.
    let mut other = review;
    other["request"]["object"]["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!("registry.example.com/payments-api:2.4.2");
    let reply = admit(VALIDATE_WORKLOADS, &other);
    assert!(!reply.allowed);
    assert!(
        reply.message.contains(APPROVED_IMAGE)
            && reply.message.contains(":2.4.2 is not approved content"),
        "{}",
        reply.message
    );
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
        json!(APPROVED_IMAGE);
    assert!(!admit(VALIDATE_WORKLOADS, &image_bump).allowed);
}

#[test]
fn warn_mode_admits_with_the_denial_as_a_warning() {
    let reply = admit(VALIDATE_WORKLOADS, &fixture("deployment-update-warn-mode"));
    assert!(reply.allowed);
    assert_eq!(reply.message, "");
    assert_eq!(reply.warnings.len(), 1, "{:?}", reply.warnings);
    assert!(
        reply.warnings[0].starts_with("changegate (warn mode, would be denied): no change of client-c covers Deployment client-c-staging/payments-api"),
        "{:?}",
        reply.warnings
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
fn the_operator_namespace_is_never_gated_even_when_labelled_and_bound() {
    let review = fixture("deployment-update-operator-namespace");
    let reply = admit(VALIDATE_WORKLOADS, &review);
    assert!(reply.allowed, "{}", reply.message);

    // The same request in the operations namespace, same tenant, is gated.
    let mut elsewhere = review;
    elsewhere["request"]["namespace"] = json!(OPERATIONS_NAMESPACE);
    let reply = admit(VALIDATE_WORKLOADS, &elsewhere);
    assert!(!reply.allowed);
    assert!(
        reply
            .message
            .starts_with("changegate: no change of msp covers"),
        "{}",
        reply.message
    );
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

#[test]
fn only_the_agents_own_update_that_sets_the_rollback_mark_passes_as_a_rollback() {
    let mark = json!({"changegate.dev/rollback-of": "CHG-142"});
    let mut rollback = fixture("deployment-update-pending-change");
    rollback["request"]["object"]["metadata"]["annotations"] = mark.clone();
    rollback["request"]["userInfo"] = json!({"username": AGENT});
    let reply = admit(VALIDATE_WORKLOADS, &rollback);
    assert!(reply.allowed, "{}", reply.message);

    // Anyone else setting the mark is judged like any change.
    let mut forged = rollback.clone();
    forged["request"]["userInfo"] = json!({"username": "mallory"});
    assert!(!admit(VALIDATE_WORKLOADS, &forged).allowed);
    // A later update that keeps the mark is a change of its own.
    let mut later = rollback;
    later["request"]["oldObject"]["metadata"]["annotations"] = mark;
    assert!(!admit(VALIDATE_WORKLOADS, &later).allowed);
}

#[test]
fn a_review_that_is_not_one_is_answered_400_saying_why() {
    let (status, body) = post(VALIDATE_WORKLOADS, r#"{"apiVersion": "v1", "kind": "Pod"}"#);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        String::from_utf8_lossy(&body)
            .starts_with("changegate: expected an admission.k8s.io/v1 AdmissionReview"),
        "{}",
        String::from_utf8_lossy(&body)
    );
}

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
        "changegate.dev/change",
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
        #![proptest_config(config(512))]

        #[test]
        fn fixtures_with_random_subtrees_replaced_are_answered_with_200_or_400(
            (name, review) in mutated_fixture(),
            (own_route, pick) in (prop::bool::weighted(0.75), any::<Index>()),
        ) {
            // Mostly the workload route, so mutations reach the decision.
            let route = if own_route { VALIDATE_WORKLOADS } else { *pick.get(&ROUTES) };
            let body = serde_json::to_vec(&review).expect("serialize");
            check_answer(route, &body).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
        }
    }
}
