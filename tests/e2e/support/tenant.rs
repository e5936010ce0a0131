//! A tenant for a webhook test: a governed namespace with requester and
//! approver RoleBindings, plus the cluster-scoped policy and windows the
//! test creates, all removed when the test ends.

use super::cluster::{ensure_operator, kubectl, kubectl_stdin};
use super::namespace::TestNamespace;
use super::wait::wait_until;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::sync::Mutex;

pub struct Tenant {
    pub name: String,
    pub ns: TestNamespace,
    cluster_objects: Mutex<Vec<String>>,
}

impl Tenant {
    /// A fresh tenant `t-<unique>` owning one namespace. No policy yet: the
    /// tenant is not governed until the test applies one.
    pub async fn new(prefix: &str) -> Self {
        ensure_operator();
        let probe = TestNamespace::new(prefix).await;
        let name = format!("t-{}", probe.name.rsplit('-').next().unwrap_or("x"));
        drop(probe);
        let ns = TestNamespace::for_tenant(prefix, &name).await;
        let tenant = Self {
            name,
            ns,
            cluster_objects: Mutex::new(Vec::new()),
        };
        tenant.bind("requester", &format!("{}:requesters", tenant.name));
        tenant.bind("approver", &format!("{}:approvers", tenant.name));
        tenant.bind("approver", "msp:cab");
        tenant.until_the_webhook_knows_the_namespace().await;
        tenant
    }

    /// The webhook refuses workloads in a labelled namespace its cache has
    /// not seen yet; a server-side dry run is admitted once it has.
    async fn until_the_webhook_knows_the_namespace(&self) {
        self.until_the_probe("the webhook to see namespace", |out| out.status.success())
            .await;
    }

    /// Server-side dry runs of a Deployment no change covers, until one
    /// satisfies `seen`.
    async fn until_the_probe(&self, what: &str, seen: impl Fn(&std::process::Output) -> bool) {
        let probe = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "cache-probe"},
            "spec": {"selector": {"matchLabels": {"app": "probe"}}, "template": {"metadata": {"labels": {"app": "probe"}},
                     "spec": {"containers": [{"name": "app", "image": "example.com/probe:1"}]}}}})
        .to_string();
        let ns = self.ns.name.clone();
        wait_until(
            &format!("{what} {ns}"),
            std::time::Duration::from_secs(30),
            || {
                let out =
                    kubectl_stdin(&["apply", "--dry-run=server", "-n", &ns, "-f", "-"], &probe);
                let result = if seen(&out) {
                    Ok(())
                } else {
                    Err(format!(
                        "exit {:?}: {}",
                        out.status.code(),
                        String::from_utf8_lossy(&out.stderr)
                    ))
                };
                async move { result }
            },
        )
        .await;
    }

    /// Lets `group` act as `role` (requester or approver) in this tenant's namespace.
    pub fn bind(&self, role: &str, group: &str) {
        let binding = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": format!("{role}-{}", group.replace(':', "-")), "namespace": self.ns.name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": format!("changegate-e2e-{role}")},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}]
        });
        let out = kubectl_stdin(&["apply", "-f", "-"], &binding.to_string());
        assert!(
            out.status.success(),
            "binding {group}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn requesters(&self) -> String {
        format!("{}:requesters", self.name)
    }

    pub fn approvers(&self) -> String {
        format!("{}:approvers", self.name)
    }

    /// Applies this tenant's ChangePolicy; `spec` is merged over a default
    /// asking one approval from `<tenant>:approvers` for normal changes.
    /// Returns once the webhook governs the namespace by it: a Deployment
    /// no change covers is refused (Enforce) or admitted with a warning
    /// (Warn). Call it once per tenant, before filing changes.
    pub async fn policy(&self, spec: Value) {
        let mut full = json!({"tenants": [self.name], "approvals": {"normal": [{"group": self.approvers(), "count": 1}]}});
        if let (Value::Object(base), Value::Object(extra)) = (&mut full, spec) {
            base.extend(extra);
        }
        let warn = full["enforcement"] == "Warn";
        assert!(
            full["enforcement"] != "Off",
            "an Off policy cannot be told apart from none; test ungoverned namespaces without one"
        );
        self.apply_cluster("ChangePolicy", &format!("policy-{}", self.name), full);
        self.until_the_probe("the webhook to govern namespace", |out| {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if warn {
                out.status.success() && stderr.contains("is not covered by an approved change")
            } else {
                !out.status.success() && stderr.contains("is not covered by an approved change")
            }
        })
        .await;
    }

    /// Applies a MaintenanceWindow for this tenant named `<tenant>-<suffix>`; returns its name.
    pub fn window(&self, suffix: &str, spec: Value) -> String {
        let name = format!("{}-{suffix}", self.name);
        let mut full = json!({"tenants": [self.name], "timeZone": "Europe/Berlin"});
        if let (Value::Object(base), Value::Object(extra)) = (&mut full, spec) {
            base.extend(extra);
        }
        self.apply_cluster("MaintenanceWindow", &name, full);
        name
    }

    fn apply_cluster(&self, kind: &str, name: &str, spec: Value) {
        let obj = json!({"apiVersion": "changegate.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec});
        let out = kubectl_stdin(&["apply", "-f", "-"], &obj.to_string());
        assert!(
            out.status.success(),
            "applying {kind} {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let key = format!("{}/{name}", kind.to_lowercase());
        let mut objects = self
            .cluster_objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !objects.contains(&key) {
            objects.push(key);
        }
    }
}

impl Drop for Tenant {
    fn drop(&mut self) {
        let objects = self
            .cluster_objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for object in objects.iter() {
            kubectl(&["delete", object, "--ignore-not-found", "--wait=false"]);
        }
    }
}

/// A window schedule that is open from an hour ago for `hours` more hours.
pub fn open_now(hours: i64) -> Value {
    ranges(
        Utc::now() - Duration::hours(1),
        Utc::now() + Duration::hours(hours),
    )
}

/// A window schedule that opens in two days.
pub fn opens_later() -> Value {
    ranges(
        Utc::now() + Duration::days(2),
        Utc::now() + Duration::days(2) + Duration::hours(4),
    )
}

/// A window schedule that closed an hour ago.
pub fn closed_already() -> Value {
    ranges(
        Utc::now() - Duration::hours(5),
        Utc::now() - Duration::hours(1),
    )
}

fn ranges(start: DateTime<Utc>, end: DateTime<Utc>) -> Value {
    let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    json!({"schedule": {"ranges": [{"start": fmt(start), "end": fmt(end)}]}})
}
