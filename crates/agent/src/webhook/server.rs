//! The HTTPS admission route and the plain-HTTP health and metrics routes.
//! The handler parses the AdmissionReview, reads the namespace store and
//! the bundle held in memory, calls the pure decision and answers; it
//! makes no API call.

use super::metrics::Metrics;
use super::review::{self, WorkloadObject};
use super::stores::{Stores, TENANT_LABEL};
use crate::bundle::BundleState;
use crate::enforce::{self, Operation};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use chrono::Utc;
use kube::Resource;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation as KubeOperation};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

const GARBAGE_COLLECTOR: &str = "system:serviceaccount:kube-system:generic-garbage-collector";

/// Shared by every handler.
pub struct App {
    pub stores: Stores,
    /// The agent's own namespace: never gated.
    pub operator_namespace: String,
    pub metrics: Arc<Metrics>,
    pub caches_synced: AtomicBool,
    pub certificate_loaded: AtomicBool,
    /// The server's bundle workload admission decides from.
    pub bundle: Arc<BundleState>,
    /// Past this age (since the server last confirmed it) the bundle no
    /// longer admits changes.
    pub max_staleness: chrono::Duration,
    /// The agent's own identity as the API server knows it (a
    /// SelfSubjectReview at start): its rollbacks pass admission.
    pub agent_user: std::sync::OnceLock<String>,
    /// Approval by kubectl: how to ask the API server and the changegate
    /// server (none without `--server`: such patches are refused).
    pub approvals: Option<super::approval::Approvals>,
}

pub fn admission_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/validate/workloads", post(validate_workloads))
        .route("/mutate/resources", post(mutate_resources))
        .route("/validate/resources", post(validate_resources))
        .route("/validate/approvals", post(validate_approvals))
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
    let bundle = app.bundle.current().is_some();
    if synced && cert && bundle {
        (StatusCode::OK, "ready").into_response()
    } else {
        let why = format!(
            "not ready: caches synced={synced}, certificate loaded={cert}, bundle held={bundle}"
        );
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

/// Stamps who created a custom resource and who edited its spec.
async fn mutate_resources(State(app): State<Arc<App>>, body: Bytes) -> Response {
    handle::<kube::core::DynamicObject>(&app, "mutate-resources", body, |_, req| {
        (super::stamp::respond(req), "Stamped")
    })
    .await
}

/// Judges a custom resource's spec at apply time from the bundle held.
async fn validate_resources(State(app): State<Arc<App>>, body: Bytes) -> Response {
    handle::<kube::core::DynamicObject>(&app, "validate-resources", body, |app, req| {
        let response = AdmissionResponse::from(req);
        let (Some(object), Some(namespace)) = (req.object.as_ref(), req.namespace.as_deref())
        else {
            return (response, "NotJudged");
        };
        let Some(tenant) = app.stores.tenant_of(namespace) else {
            return (response, "NotJudged");
        };
        let value = serde_json::to_value(object).unwrap_or_default();
        // The operator's own writes (the mirrors) are its to judge.
        let user = req.user_info.username.as_deref().unwrap_or_default();
        if app.agent_user.get().is_some_and(|me| me == user) {
            return (response, "Operator");
        }
        let old = req
            .old_object
            .as_ref()
            .map(|o| serde_json::to_value(o).unwrap_or_default());
        if let Some(e) = super::check::mirror_refusal(&req.kind.kind, &value, old.as_ref()) {
            return (response.deny(format!("changegate: {e}")), "Invalid");
        }
        // A mirror's other edits (labels, annotations) are not a spec.
        if old.as_ref().is_some_and(|o| {
            o["metadata"]["labels"][changegate_resources::ORIGIN_LABEL] == "server"
        }) {
            return (response, "Valid");
        }
        let snapshot = app.bundle.current().map(|(s, _)| s);
        // Who creates it must be someone the cluster maps to the tenant's
        // people (the mutating webhook stamped them; its own writes are
        // the operator's, which creates none).
        if req.operation == KubeOperation::Create
            && let Some(user) = req.user_info.username.as_deref()
            && let Some(e) = super::check::author_refusal(user, &tenant, snapshot.as_deref())
        {
            return (response.deny(format!("changegate: {e}")), "Invalid");
        }
        match super::check::refusal(
            &req.kind.kind,
            &value,
            namespace,
            &tenant,
            snapshot.as_deref(),
            Utc::now(),
        ) {
            None => (response, "Valid"),
            Some(e) => (response.deny(format!("changegate: {e}")), "Invalid"),
        }
    })
    .await
}

/// A person's decision patched into a ChangeRequest's `status.approvals`:
/// admitted only once the server recorded it (`super::approval`).
async fn validate_approvals(State(app): State<Arc<App>>, body: Bytes) -> Response {
    const WEBHOOK: &str = "validate-approvals";
    let started = Instant::now();
    let req = match review::parse::<kube::core::DynamicObject>(&body) {
        Ok(req) => req,
        Err(message) => {
            app.metrics
                .record(WEBHOOK, "MalformedReview", false, started.elapsed());
            return (StatusCode::BAD_REQUEST, message).into_response();
        }
    };
    let response = AdmissionResponse::from(&req);
    let user = req.user_info.username.as_deref().unwrap_or_default();
    let tenant = req
        .namespace
        .as_deref()
        .and_then(|ns| app.stores.tenant_of(ns));
    let (response, reason) = if app.agent_user.get().is_some_and(|me| me == user) {
        // The operator's own status writes (a match condition keeps them
        // from reaching here; this is the backstop).
        (response, "Operator")
    } else if let Some(approvals) = app.approvals.as_ref() {
        match tenant {
            None => (
                response.deny("changegate: this namespace is not labelled changegate.dev/tenant; nothing here is approved by kubectl"),
                "NoTenant",
            ),
            Some(tenant) => match super::approval::judge(approvals, &req, &tenant).await {
                Ok(recorded) => {
                    let mut response = response;
                    response.warnings = Some(vec![format!("changegate: {recorded}")]);
                    (response, "Recorded")
                }
                Err(why) => (response.deny(format!("changegate: {why}")), "Refused"),
            },
        }
    } else {
        (
            response.deny("changegate: this operator runs without a changegate server (--server); approve in the portal"),
            "NoServer",
        )
    };
    tracing::info!(webhook = WEBHOOK, user, allowed = response.allowed, reason, name = %req.name, "approval patch judged");
    app.metrics
        .record(WEBHOOK, reason, response.allowed, started.elapsed());
    respond(response)
}

async fn validate_workloads(State(app): State<Arc<App>>, body: Bytes) -> Response {
    handle::<WorkloadObject>(&app, "validate-workloads", body, decide_workload).await
}

fn decide_workload(
    app: &App,
    req: &AdmissionRequest<WorkloadObject>,
) -> (AdmissionResponse, &'static str) {
    let response = AdmissionResponse::from(req);
    let Some(kind) = enforce::GATED_KINDS
        .iter()
        .copied()
        .find(|k| *k == req.kind.kind)
    else {
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
    let Some(tenant) = app.stores.tenant_of(namespace) else {
        return (
            response.deny(format!(
                "changegate: the webhook's cache does not yet show namespace {namespace} with its {TENANT_LABEL} label; \
                 retry in a few seconds"
            )),
            "NamespaceNotCached",
        );
    };
    // The agent's own rollback of a failed rollout (`follow`): the update
    // that sets the mark naming the change it undoes, by the agent's own
    // identity. Later updates keep the mark but do not set it.
    let mark = |o: Option<&WorkloadObject>| {
        o.and_then(|o| {
            o.object.pointer(&format!(
                "/metadata/annotations/{}",
                crate::follow::ROLLBACK_ANNOTATION.replace('/', "~1")
            ))
        })
        .cloned()
    };
    let marked = mark(req.object.as_ref());
    if operation == Operation::Update
        && app.agent_user.get().map(String::as_str) == req.user_info.username.as_deref()
        && marked.is_some()
        && marked != mark(req.old_object.as_ref())
    {
        return (response, "AgentRollback");
    }
    let held = app.bundle.current();
    let request = enforce::Request {
        tenant: &tenant,
        operation,
        kind,
        namespace,
        name: &req.name,
        old: req.old_object.as_ref().map(|o| &o.object),
        new: req.object.as_ref().map(|o| &o.object),
    };
    let decision = enforce::decide(
        held.as_ref().map(|(snapshot, confirmed_at)| enforce::Held {
            snapshot,
            confirmed_at: *confirmed_at,
        }),
        app.max_staleness,
        &request,
        Utc::now(),
    );
    let mut response = if decision.allowed {
        response
    } else {
        response.deny(&decision.message)
    };
    if !decision.warnings.is_empty() {
        response.warnings = Some(decision.warnings);
    }
    (response, decision.reason)
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
            stores: Stores::from_namespaces(vec![ns]),
            operator_namespace: "changegate-system".into(),
            metrics: Arc::new(Metrics::default()),
            caches_synced: AtomicBool::new(synced),
            certificate_loaded: AtomicBool::new(true),
            bundle: Arc::default(),
            max_staleness: chrono::Duration::minutes(5),
            agent_user: std::sync::OnceLock::new(),
            approvals: None,
        }
    }

    #[test]
    fn a_workload_is_refused_until_the_caches_have_synced() {
        let (response, reason) = decide_workload(&app(false), &request("shop"));
        assert!(!response.allowed);
        assert_eq!(reason, "CachesNotSynced");
        assert!(response.result.message.contains("retry in a few seconds"));
        // Synced, but no bundle from the server yet: refused, saying so.
        let (response, reason) = decide_workload(&app(true), &request("shop"));
        assert!(!response.allowed);
        assert_eq!(reason, "NoBundle");
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
