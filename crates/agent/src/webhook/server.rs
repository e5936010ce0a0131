//! The HTTPS admission routes and the plain-HTTP health and metrics routes.
//! Handlers parse the AdmissionReview, read the in-memory stores, call the
//! pure decision and answer; they make no API call.

use super::integrity;
use super::metrics::Metrics;
use super::review::{self, WorkloadObject};
use super::stamp::{self, Identity};
use super::stores::Stores;
use crate::admission::{self, Operation, TenantView, WorkloadRequest};
use crate::api::{
    ChangePolicy, ChangeRequest, MaintenanceWindow, REQUESTED_BY, Release, TENANT_LABEL,
    WorkloadKind,
};
use crate::window;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use chrono::Utc;
use kube::Resource;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation as KubeOperation};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

const GARBAGE_COLLECTOR: &str = "system:serviceaccount:kube-system:generic-garbage-collector";

/// Shared by every handler.
pub struct App {
    pub stores: Stores,
    pub operator_namespace: String,
    pub operations_namespace: String,
    /// The identity the controller writes status with; only it may append history.
    pub controller_user: String,
    pub metrics: Metrics,
    pub caches_synced: AtomicBool,
    pub certificate_loaded: AtomicBool,
}

pub fn admission_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/mutate/changerequests", post(mutate_changerequests))
        .route("/validate/changerequests", post(validate_changerequests))
        .route("/validate/releases", post(validate_releases))
        .route("/validate/governance", post(validate_governance))
        .route("/validate/workloads", post(validate_workloads))
        .with_state(app)
}

pub fn health_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(app)
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    let synced = app.caches_synced.load(Ordering::Relaxed);
    let cert = app.certificate_loaded.load(Ordering::Relaxed);
    if synced && cert {
        (StatusCode::OK, "ready").into_response()
    } else {
        let why = format!("not ready: caches synced={synced}, certificate loaded={cert}");
        (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    match app.metrics.encode() {
        Ok(text) => (
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn respond(response: AdmissionResponse) -> Response {
    Json(response.into_review()).into_response()
}

fn identity<T: Resource>(req: &AdmissionRequest<T>) -> Identity {
    Identity {
        username: req.user_info.username.clone().unwrap_or_default(),
        groups: req.user_info.groups.clone().unwrap_or_default(),
    }
}

fn typed<K: serde::de::DeserializeOwned>(
    obj: Option<&DynamicObject>,
    what: &str,
) -> Result<K, String> {
    let obj = obj.ok_or_else(|| format!("changegate: the request carries no {what}"))?;
    let value = serde_json::to_value(obj)
        .map_err(|e| format!("changegate: cannot read the {what}: {e}"))?;
    serde_json::from_value(value).map_err(|e| format!("changegate: cannot read the {what}: {e}"))
}

/// Accepted, or denied with the check's message and the `refused` reason.
fn answer(
    response: AdmissionResponse,
    verdict: Result<(), String>,
    refused: &'static str,
) -> (AdmissionResponse, &'static str) {
    match verdict {
        Ok(()) => (response, "Accepted"),
        Err(e) => (response.deny(e), refused),
    }
}

/// Runs a handler body with timing and the decision metric. A malformed
/// AdmissionReview is a client error: HTTP 400 with a message.
async fn handle<T: Resource + DeserializeOwned>(
    app: &App,
    webhook: &'static str,
    body: Bytes,
    decide: impl FnOnce(&App, &AdmissionRequest<T>) -> (AdmissionResponse, &'static str),
) -> Response {
    let started = Instant::now();
    let req = match review::parse::<T>(&body) {
        Ok(req) => req,
        Err(message) => {
            app.metrics
                .record(webhook, "MalformedReview", false, started.elapsed());
            return (StatusCode::BAD_REQUEST, message).into_response();
        }
    };
    let span = tracing::info_span!("admission", webhook, uid = %req.uid, op = ?req.operation, ns = ?req.namespace, name = %req.name);
    let _guard = span.enter();
    let (response, reason) = decide(app, &req);
    tracing::debug!(allowed = response.allowed, reason, "decided");
    app.metrics
        .record(webhook, reason, response.allowed, started.elapsed());
    respond(response)
}

fn policy_for_namespace(app: &App, namespace: Option<&str>) -> Option<Arc<ChangePolicy>> {
    app.stores.policy_for(&app.stores.tenant_of(namespace?)?)
}

async fn mutate_changerequests(State(app): State<Arc<App>>, body: Bytes) -> Response {
    handle::<DynamicObject>(&app, "mutate-changerequests", body, |_, req| {
        let response = AdmissionResponse::from(req);
        let who = identity(req);
        let patch = match (&req.operation, req.sub_resource.as_deref()) {
            // Without an object there is nothing to stamp: a patch computed
            // against `null` would not apply.
            (KubeOperation::Create, None) => {
                typed::<serde_json::Value>(req.object.as_ref(), "ChangeRequest")
                    .map(|value| stamp::on_create(&value, &who))
            }
            (KubeOperation::Update, Some("status")) => {
                match (
                    typed::<ChangeRequest>(req.old_object.as_ref(), "old ChangeRequest"),
                    typed::<ChangeRequest>(req.object.as_ref(), "ChangeRequest"),
                ) {
                    (Ok(old), Ok(new)) => Ok(stamp::on_status_update(&old, &new, &who, Utc::now())),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                }
            }
            _ => Ok(json_patch::Patch(Vec::new())),
        };
        match patch.and_then(|p| response.clone().with_patch(p).map_err(|e| e.to_string())) {
            Ok(r) => (r, "Stamped"),
            Err(e) => (response.deny(e), "Unreadable"),
        }
    })
    .await
}

async fn validate_changerequests(State(app): State<Arc<App>>, body: Bytes) -> Response {
    handle::<DynamicObject>(&app, "validate-changerequests", body, |app, req| {
        let response = AdmissionResponse::from(req);
        let who = identity(req);
        let new = match typed::<ChangeRequest>(req.object.as_ref(), "ChangeRequest") {
            Ok(c) => c,
            Err(e) => return (response.deny(e), "Unreadable"),
        };
        let verdict = match req.operation {
            KubeOperation::Create => match new.requested_by() {
                Some(by) if by == who.username => Ok(()),
                _ => Err(format!(
                    "changegate: the {REQUESTED_BY} annotation must name the creator ({}); is the changegate mutating webhook installed?",
                    who.username
                )),
            },
            KubeOperation::Update => match typed::<ChangeRequest>(req.old_object.as_ref(), "old ChangeRequest") {
                Ok(old) => {
                    let policy = policy_for_namespace(app, req.namespace.as_deref());
                    integrity::check_change_update(&old, &new, &who, policy.as_ref().map(|p| &p.spec), &app.controller_user)
                }
                Err(e) => Err(e),
            },
            _ => Ok(()),
        };
        answer(response, verdict, "Refused")
    })
    .await
}

async fn validate_releases(State(app): State<Arc<App>>, body: Bytes) -> Response {
    handle::<DynamicObject>(&app, "validate-releases", body, |app, req| {
        let response = AdmissionResponse::from(req);
        let release = match typed::<Release>(req.object.as_ref(), "Release") {
            Ok(r) => r,
            Err(e) => return (response.deny(e), "Unreadable"),
        };
        let namespace = req.namespace.as_deref().unwrap_or_default();
        let verdict = integrity::check_release(&release, namespace, &app.operations_namespace);
        answer(response, verdict, "CrossTenantReference")
    })
    .await
}

async fn validate_governance(State(app): State<Arc<App>>, body: Bytes) -> Response {
    handle::<DynamicObject>(&app, "validate-governance", body, |_, req| {
        let response = AdmissionResponse::from(req);
        let verdict = match req.kind.kind.as_str() {
            "MaintenanceWindow" => {
                typed::<MaintenanceWindow>(req.object.as_ref(), "MaintenanceWindow").and_then(|w| {
                    window::compile(&req.name, &w.spec)
                        .map(|_| ())
                        .map_err(|e| format!("changegate: {e}"))
                })
            }
            "ChangePolicy" => typed::<ChangePolicy>(req.object.as_ref(), "ChangePolicy")
                .and_then(|p| super::governance::check_policy(&p.spec)),
            _ => Ok(()),
        };
        answer(response, verdict, "Invalid")
    })
    .await
}

async fn validate_workloads(State(app): State<Arc<App>>, body: Bytes) -> Response {
    handle::<WorkloadObject>(&app, "validate-workloads", body, decide_workload).await
}

fn decide_workload(
    app: &App,
    req: &AdmissionRequest<WorkloadObject>,
) -> (AdmissionResponse, &'static str) {
    let response = AdmissionResponse::from(req);
    let Some(kind) = WorkloadKind::from_kind(&req.kind.kind) else {
        return (response, "NotGated");
    };
    let Some(namespace) = req.namespace.as_deref() else {
        return (response, "NotGated");
    };
    // Subresources (status, scale) are never changes; the configuration
    // does not send them, and this holds if it ever did.
    if req.sub_resource.is_some() || namespace == app.operator_namespace {
        return (response, "NotGated");
    }
    let operation = match req.operation {
        KubeOperation::Create => Operation::Create,
        KubeOperation::Update => Operation::Update,
        KubeOperation::Delete => Operation::Delete,
        KubeOperation::Connect => return (response, "NotGated"),
    };
    // Deleting a tenant's namespace removes its workloads; refusing those
    // deletions would leave the namespace Terminating forever. The same
    // holds for the garbage collector removing dependents of an owner
    // whose own deletion was already judged.
    if operation == Operation::Delete {
        if app.stores.namespace_terminating(namespace) {
            return (response, "NamespaceTerminating");
        }
        if req.user_info.username.as_deref() == Some(GARBAGE_COLLECTOR) {
            return (response, "GarbageCollection");
        }
    }
    // The API server sends only namespaces labelled for a tenant here.
    // Stores that have not caught up (start-up, a namespace created or
    // labelled a moment ago) must not let a change through as ungoverned:
    // refuse until they have.
    if !app.caches_synced.load(Ordering::Relaxed) {
        return (
            response.deny("changegate: the webhook is starting and has not read the cluster yet; retry in a few seconds"),
            "CachesNotSynced",
        );
    }
    if !app.stores.labelled_for_a_tenant(namespace) {
        return (
            response.deny(format!(
                "changegate: the webhook's cache does not yet show namespace {namespace} with its {TENANT_LABEL} label; \
                 retry in a few seconds"
            )),
            "NamespaceNotCached",
        );
    }
    let Some(tenant) = app.stores.tenant_of(namespace) else {
        return (response, "NotGoverned");
    };
    let now = Utc::now();
    let policy = app.stores.policy_for(&tenant);
    let windows = app.stores.compiled_windows(now);
    let changes = app.stores.changes_in(namespace);
    let releases = app
        .stores
        .releases_for(namespace, &app.operations_namespace);
    let view = TenantView {
        tenant: &tenant,
        policy: policy.as_ref().map(|p| &p.spec),
        windows: &windows,
        changes: &changes,
        releases: &releases,
    };
    let request = WorkloadRequest {
        operation,
        kind,
        namespace,
        name: &req.name,
        old: req.old_object.as_ref().map(|o| &o.object),
        new: req.object.as_ref().map(|o| &o.object),
    };
    let decision = admission::decide(&request, &view, now);
    let mut response = if decision.allowed {
        response
    } else {
        response.deny(&decision.message)
    };
    if !decision.warnings.is_empty() {
        response.warnings = Some(decision.warnings);
    }
    (response, decision.reason.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(namespace: &str) -> AdmissionRequest<WorkloadObject> {
        let deployment = |image: &str| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
                   "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}})
        };
        let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "u-1", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": "web", "namespace": namespace, "operation": "UPDATE",
            "userInfo": {"username": "carol"},
            "object": deployment("web:2"), "oldObject": deployment("web:1")}});
        review::parse(body.to_string().as_bytes()).expect("review")
    }

    fn app(synced: bool) -> App {
        let ns = serde_json::from_value(
            json!({"metadata": {"name": "shop", "labels": {"changegate.dev/tenant": "client-a"}}}),
        )
        .expect("namespace");
        App {
            stores: Stores::from_objects(vec![], vec![], vec![], vec![], vec![ns]),
            operator_namespace: "changegate-system".into(),
            operations_namespace: "changegate-system".into(),
            controller_user: "changegate".into(),
            metrics: Metrics::default(),
            caches_synced: AtomicBool::new(synced),
            certificate_loaded: AtomicBool::new(true),
        }
    }

    #[test]
    fn a_workload_is_refused_until_the_caches_have_synced() {
        let (response, reason) = decide_workload(&app(false), &request("shop"));
        assert!(!response.allowed);
        assert_eq!(reason, "CachesNotSynced");
        assert!(response.result.message.contains("retry in a few seconds"));
        // Synced, with no ChangePolicy for the tenant: not governed.
        let (response, reason) = decide_workload(&app(true), &request("shop"));
        assert!(response.allowed);
        assert_eq!(reason, "NotGoverned");
    }

    #[test]
    fn a_namespace_the_stores_have_not_seen_is_refused_not_waved_through() {
        let (response, reason) = decide_workload(&app(true), &request("created-a-moment-ago"));
        assert!(!response.allowed);
        assert_eq!(reason, "NamespaceNotCached");
        assert!(
            response
                .result
                .message
                .contains("does not yet show namespace created-a-moment-ago with its changegate.dev/tenant label"),
            "{}",
            response.result.message
        );
    }
}
