//! A tenant of the server for an enforcement test: its namespace in the
//! cluster (labelled for it) holding one Deployment `web`, and on the
//! server the tenant with a requester and a business approver, a board, a
//! policy and the configuration item `web` bound to that Deployment in
//! cluster `local`. The namespace is removed when the test ends; the
//! server's records stay (they are append-only, and each test's tenant is
//! its own).

use super::cluster::kubectl_stdin;
use super::namespace::TestNamespace;
use super::server::{Server, server};
use super::wait::wait_until;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

/// The cluster name `make up` registers this cluster under.
pub const CLUSTER: &str = "local";

pub struct Tenant {
    pub name: String,
    pub ns: TestNamespace,
    /// The kind of its workload `web`.
    pub kind: &'static str,
    server: Arc<Server>,
    requester: String,
    approver: String,
}

/// How a tenant's policy and windows are set up.
pub struct Setup {
    /// `Enforce` or `Warn`.
    pub enforcement: &'static str,
    /// When set, normal changes deploy only inside this one window.
    pub window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Where its item `web` is bound; its own namespace when `None`.
    pub bind_to: Option<String>,
    /// A server and cluster name other than `make up`'s.
    pub on: Option<(Arc<Server>, String)>,
    /// The kind of workload `web`: `Deployment` or `StatefulSet`.
    pub kind: &'static str,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            enforcement: "Enforce",
            window: None,
            bind_to: None,
            on: None,
            kind: "Deployment",
        }
    }
}

impl Tenant {
    /// A fresh tenant `t-<unique>` with its namespace and Deployment `web`
    /// (image `example.com/web:1`), governed once this returns: the agent's
    /// bundle has its item and refuses an update no change covers.
    pub async fn new(prefix: &str, setup: Setup) -> Self {
        let probe = TestNamespace::new(prefix).await;
        let name = format!("t-{}", probe.name.rsplit('-').next().unwrap_or("x"));
        drop(probe);
        let ns = TestNamespace::for_tenant(prefix, &name).await;
        let (s, cluster) = setup
            .on
            .clone()
            .unwrap_or_else(|| (server(), CLUSTER.to_string()));
        let tenant = Tenant {
            requester: String::new(),
            approver: String::new(),
            server: s.clone(),
            name,
            ns,
            kind: setup.kind,
        };
        // Before the server knows the tenant, the Deployment is not
        // governed: it is created once the webhook's cache has the namespace.
        wait_until(
            &format!("{} web created in {}", tenant.kind, tenant.ns.name),
            Duration::from_secs(30),
            || {
                let out = tenant.apply_web("example.com/web:1", false);
                async move { outcome(&out).map(|_| ()) }
            },
        )
        .await;
        let t = &tenant.name;
        let mut yaml = format!(
            "kind: Tenant\nslug: {t}\nname: Tenant {t}\ntimeZone: Europe/Berlin\n---\n\
             kind: User\ntenant: {t}\nemail: eve@{t}.example\nname: Eve\nroles: [requester]\n---\n\
             kind: User\ntenant: {t}\nemail: carol@{t}.example\nname: Carol\nroles: [business-approver]\n---\n\
             kind: Board\ntenant: {t}\nname: client\nspec: {{ members: [role:business-approver], rule: any }}\n---\n\
             kind: Policy\ntenant: {t}\nspec:\n  enforcement: {}\n  routing: {{ normal: [ {{ from: low, boards: [client] }} ] }}\n  windowRequired: [{}]\n---\n\
             kind: ConfigurationItem\ntenant: {t}\nname: web\nspec: {{ kind: kubernetes-workload, enforcement: {{ kubernetes: \
             {{ cluster: {cluster}, namespace: {}, kind: {}, name: web }} }} }}\n",
            setup.enforcement,
            if setup.window.is_some() { "normal" } else { "" },
            setup.bind_to.as_deref().unwrap_or(&tenant.ns.name),
            setup.kind,
        );
        if let Some((start, end)) = setup.window {
            let at = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
            yaml.push_str(&format!(
                "---\nkind: Window\ntenant: {t}\nname: {t}-window\nspec:\n  timeZone: Europe/Berlin\n  \
                 schedule: {{ ranges: [ {{ start: \"{}\", end: \"{}\" }} ] }}\n",
                at(start),
                at(end)
            ));
        }
        s.apply(&yaml);
        let tenant = Tenant {
            requester: s.token(&format!("eve@{t}.example")),
            approver: s.token(&format!("carol@{t}.example")),
            ..tenant
        };
        if setup.bind_to.is_none() && setup.on.is_none() && setup.enforcement == "Enforce" {
            tenant
                .refused_eventually(
                    "the agent's bundle to govern the namespace",
                    "example.com/web:probe",
                    "no change of",
                )
                .await;
        }
        tenant
    }

    /// Server-side applies workload `web` (a Deployment or StatefulSet)
    /// with `image` (`dry_run`: the API server's dry run, which admission
    /// judges the same way). Either fails a rollout after 15 s: the
    /// Deployment by its progress deadline, the StatefulSet by the agent's.
    pub fn apply_web(&self, image: &str, dry_run: bool) -> Output {
        let template = json!({"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": image}]}});
        let selector = json!({"matchLabels": {"app": "web"}});
        let deployment = match self.kind {
            "StatefulSet" => json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "web", "namespace": self.ns.name, "labels": {"app": "web"},
                             "annotations": {"changegate.dev/progress-deadline-seconds": "15"}},
                "spec": {"replicas": 1, "serviceName": "web", "selector": selector, "template": template}}),
            _ => json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": self.ns.name, "labels": {"app": "web"}},
                "spec": {"replicas": 1, "progressDeadlineSeconds": 15, "selector": selector,
                         "template": template}}),
        };
        let mut args = vec![
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=e2e",
            "-f",
            "-",
        ];
        if dry_run {
            args.push("--dry-run=server");
        }
        kubectl_stdin(&args, &deployment.to_string())
    }

    /// Raises a normal, low-risk change on `web` shipping `artifacts`, and
    /// submits it: its number (`CHG-n`), awaiting the business approver.
    pub fn raise(&self, artifacts: &[&str]) -> String {
        self.raise_with(artifacts, &[])
    }

    /// As [`Tenant::raise`], with more `change create` flags.
    pub fn raise_with(&self, artifacts: &[&str], extra: &[&str]) -> String {
        let mut args = vec![
            "change",
            "create",
            "--tenant",
            &self.name,
            "--title",
            "Ship web",
            "--ci",
            "web",
            "--risk",
            "production=no",
            "--risk",
            "outage=no",
            "--risk",
            "untested=no",
            "--risk",
            "no-backout=no",
        ];
        for a in artifacts {
            args.extend(["--artifact", a]);
        }
        args.extend_from_slice(extra);
        let created = self.server.ok(Some(&self.requester), &args);
        let number = created
            .split_whitespace()
            .next()
            .expect("the change's number")
            .to_string();
        self.server.ok(
            Some(&self.requester),
            &["change", "submit", &number, "--tenant", &self.name],
        );
        number
    }

    pub fn approve(&self, number: &str) {
        self.server.ok(
            Some(&self.approver),
            &["change", "approve", number, "--tenant", &self.name],
        );
    }

    /// Applies `image` until it is admitted; the time it took.
    pub async fn admitted_eventually(&self, what: &str, image: &str) -> Duration {
        let started = std::time::Instant::now();
        wait_until(what, Duration::from_secs(30), || {
            let out = self.apply_web(image, false);
            async move { outcome(&out).map(|_| ()) }
        })
        .await;
        started.elapsed()
    }

    /// Applies `image` (dry run) until the webhook refuses it with a
    /// message containing `needle`; the message.
    pub async fn refused_eventually(&self, what: &str, image: &str, needle: &str) -> String {
        wait_until(what, Duration::from_secs(90), || {
            let out = self.apply_web(image, true);
            let result = match outcome(&out) {
                Err(e) if e.contains(needle) => Ok(e),
                Err(e) => Err(format!("refused, but not for {needle:?}: {e}")),
                Ok(said) => Err(format!("admitted: {said}")),
            };
            async move { result }
        })
        .await
    }
}

/// kubectl's standard output when it succeeded, its error output otherwise.
pub fn outcome(out: &Output) -> Result<String, String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

impl Tenant {
    /// The deployments the server has on record for this tenant.
    pub fn deployments(&self) -> Vec<Value> {
        self.server
            .get(&format!("/api/v1/tenants/{}/deployments", self.name))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The state of change `number` on the server.
    pub fn state_of(&self, number: &str) -> String {
        let v = self
            .server
            .get(&format!("/api/v1/tenants/{}/changes/{number}", self.name));
        v["state"].as_str().unwrap_or_default().to_string()
    }

    /// Applies `image` until it is admitted with a warning containing
    /// `needle` (Warn mode, once the bundle has the tenant); kubectl's output.
    pub async fn admitted_and_warned_eventually(&self, image: &str, needle: &str) -> String {
        wait_until(
            "an admission with a warning",
            Duration::from_secs(30),
            || {
                let out = self.apply_web(image, true);
                let result = match outcome(&out) {
                    Ok(said) if said.contains(needle) => Ok(said),
                    Ok(said) => Err(format!("admitted without the warning: {said}")),
                    Err(e) => Err(format!("refused: {e}")),
                };
                async move { result }
            },
        )
        .await
    }
}
