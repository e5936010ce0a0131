//! The webhook configuration the agent registers, with the CA bundle
//! injected: which workload requests reach it (tenant-labelled namespaces
//! only, so `failurePolicy: Fail` never reaches anything else), and which
//! namespaces are never gated (kube-system, kube-node-lease, the agent's own).

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations,
    ServiceReference, ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::{Api, Client};

pub const CONFIGURATION_NAME: &str = "changegate";
pub const FIELD_MANAGER: &str = "changegate";

/// Where the API server reaches the webhook.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// Local development: an `https://host:port` URL (loopback).
    Url(String),
    /// In-cluster: a Service.
    Service {
        namespace: String,
        name: String,
        port: i32,
    },
}

pub struct Registration<'a> {
    pub endpoint: &'a Endpoint,
    pub ca_pem: &'a str,
    pub operator_namespace: &'a str,
    pub timeout_seconds: i32,
    /// The operator's own user name: its status writes skip the approval
    /// webhook.
    pub operator_user: &'a str,
}

/// How long the API server waits on an approval: it asks the API server
/// (a SubjectAccessReview) and the changegate server before answering.
pub const APPROVAL_TIMEOUT_SECONDS: i32 = 20;

impl Registration<'_> {
    fn client_config(&self, path: &str) -> WebhookClientConfig {
        let ca_bundle = Some(ByteString(self.ca_pem.as_bytes().to_vec()));
        match self.endpoint {
            Endpoint::Url(base) => WebhookClientConfig {
                url: Some(format!("{}{path}", base.trim_end_matches('/'))),
                ca_bundle,
                service: None,
            },
            Endpoint::Service {
                namespace,
                name,
                port,
            } => WebhookClientConfig {
                service: Some(ServiceReference {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    path: Some(path.to_string()),
                    port: Some(*port),
                }),
                ca_bundle,
                url: None,
            },
        }
    }

    /// Namespaces whose requests never reach changegate: the control
    /// plane's own and the operator's, so a broken webhook cannot deadlock
    /// its own recovery.
    fn never_gated(&self, with_operator: bool) -> LabelSelectorRequirement {
        let mut names = vec!["kube-system".to_string(), "kube-node-lease".to_string()];
        if with_operator {
            names.push(self.operator_namespace.to_string());
        }
        LabelSelectorRequirement {
            key: "kubernetes.io/metadata.name".into(),
            operator: "NotIn".into(),
            values: Some(names),
        }
    }

    /// Tenant-labelled namespaces, never the system's or the operator's.
    fn governed(&self) -> LabelSelector {
        LabelSelector {
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: super::stores::TENANT_LABEL.into(),
                    operator: "Exists".into(),
                    values: None,
                },
                self.never_gated(true),
            ]),
            ..Default::default()
        }
    }

    /// The mutating configuration: who created a custom resource and who
    /// edited its spec, stamped from the admission request (`Fail`: a
    /// resource whose author is unknown would be refused by the server
    /// anyway).
    pub fn mutating(&self) -> MutatingWebhookConfiguration {
        MutatingWebhookConfiguration {
            metadata: meta(),
            webhooks: Some(vec![MutatingWebhook {
                name: "resources.mutate.changegate.dev".into(),
                client_config: self.client_config("/mutate/resources"),
                rules: Some(vec![rule(
                    &["CREATE", "UPDATE"],
                    "changegate.dev",
                    "v1",
                    &["changerequests", "releases", "maintenancewindows"],
                    "Namespaced",
                )]),
                // Every namespace but the system's: a resource written
                // before its namespace was labelled must carry its true
                // author too, or a hand-written one would stick.
                namespace_selector: Some(LabelSelector {
                    match_expressions: Some(vec![self.never_gated(true)]),
                    ..Default::default()
                }),
                failure_policy: Some("Fail".into()),
                side_effects: "None".into(),
                admission_review_versions: vec!["v1".into()],
                timeout_seconds: Some(self.timeout_seconds),
                match_policy: Some("Equivalent".into()),
                reinvocation_policy: Some("Never".into()),
                ..Default::default()
            }]),
        }
    }

    pub fn validating(&self) -> ValidatingWebhookConfiguration {
        let governed = LabelSelector {
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: super::stores::TENANT_LABEL.into(),
                    operator: "Exists".into(),
                    values: None,
                },
                self.never_gated(true),
            ]),
            ..Default::default()
        };
        let webhook = |name: &str,
                       path: &str,
                       rules: Vec<RuleWithOperations>,
                       selector: LabelSelector| ValidatingWebhook {
            name: name.into(),
            client_config: self.client_config(path),
            rules: Some(rules),
            namespace_selector: Some(selector),
            failure_policy: Some("Fail".into()),
            side_effects: "None".into(),
            admission_review_versions: vec!["v1".into()],
            timeout_seconds: Some(self.timeout_seconds),
            match_policy: Some("Equivalent".into()),
            ..Default::default()
        };
        let ops = &["CREATE", "UPDATE", "DELETE"];
        ValidatingWebhookConfiguration {
            metadata: meta(),
            webhooks: Some(vec![
                // Only the main resources: status and scale subresources of
                // workloads are never intercepted.
                webhook(
                    "workloads.validate.changegate.dev",
                    "/validate/workloads",
                    vec![
                        rule(
                            ops,
                            "apps",
                            "v1",
                            &["deployments", "statefulsets", "daemonsets"],
                            "Namespaced",
                        ),
                        rule(ops, "batch", "v1", &["cronjobs"], "Namespaced"),
                    ],
                    governed,
                ),
                // A person's decision patched into status.approvals: on
                // the record before it is admitted; a dry run records
                // nothing (NoneOnDryRun).
                ValidatingWebhook {
                    side_effects: "NoneOnDryRun".into(),
                    timeout_seconds: Some(APPROVAL_TIMEOUT_SECONDS),
                    match_conditions: Some(vec![MatchCondition {
                        name: "not-the-operator".into(),
                        expression: format!(
                            "request.userInfo.username != '{}'",
                            self.operator_user
                        ),
                    }]),
                    ..webhook(
                        "approvals.validate.changegate.dev",
                        "/validate/approvals",
                        vec![rule(
                            &["UPDATE"],
                            "changegate.dev",
                            "v1",
                            &["changerequests/status", "releases/status"],
                            "Namespaced",
                        )],
                        self.governed(),
                    )
                },
                // What the schema cannot know of a custom resource, judged
                // from the bundle; deletion is never judged.
                webhook(
                    "resources.validate.changegate.dev",
                    "/validate/resources",
                    vec![rule(
                        &["CREATE", "UPDATE"],
                        "changegate.dev",
                        "v1",
                        &["changerequests", "releases", "maintenancewindows"],
                        "Namespaced",
                    )],
                    self.governed(),
                ),
            ]),
        }
    }
}

fn meta() -> ObjectMeta {
    ObjectMeta {
        name: Some(CONFIGURATION_NAME.into()),
        labels: Some(
            [(
                "app.kubernetes.io/name".to_string(),
                "changegate".to_string(),
            )]
            .into(),
        ),
        ..ObjectMeta::default()
    }
}

fn rule(
    ops: &[&str],
    group: &str,
    version: &str,
    resources: &[&str],
    scope: &str,
) -> RuleWithOperations {
    RuleWithOperations {
        operations: Some(ops.iter().map(ToString::to_string).collect()),
        api_groups: Some(vec![group.into()]),
        api_versions: Some(vec![version.into()]),
        resources: Some(resources.iter().map(ToString::to_string).collect()),
        scope: Some(scope.into()),
    }
}

/// Applies the validating and mutating configurations (server-side
/// apply, one field manager).
pub async fn register(client: &Client, registration: &Registration<'_>) -> Result<(), kube::Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    // k8s-openapi serializes apiVersion and kind, as apply needs.
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    mutating
        .patch(
            CONFIGURATION_NAME,
            &params,
            &Patch::Apply(registration.mutating()),
        )
        .await?;
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    validating
        .patch(
            CONFIGURATION_NAME,
            &params,
            &Patch::Apply(registration.validating()),
        )
        .await?;
    Ok(())
}

/// The chart's webhook configurations for cert-manager mode, as a Helm
/// template: the same configurations `register` applies, pointing at the
/// chart's Service, with the CA bundle left to cert-manager's cainjector.
/// `charts/changegate/templates/webhooks.yaml` holds exactly this (tested).
pub fn chart_template() -> Result<String, serde_yaml_ng::Error> {
    const NAMESPACE: &str = "{{ .Release.Namespace }}";
    let endpoint = Endpoint::Service {
        namespace: NAMESPACE.into(),
        name: "changegate-webhook".into(),
        port: 443,
    };
    let registration = Registration {
        endpoint: &endpoint,
        ca_pem: "",
        operator_namespace: NAMESPACE,
        timeout_seconds: 5,
        operator_user: "system:serviceaccount:{{ .Release.Namespace }}:changegate",
    };
    let annotate = |mut meta: ObjectMeta| {
        meta.annotations = Some(
            [(
                "cert-manager.io/inject-ca-from".to_string(),
                format!("{NAMESPACE}/changegate-webhook"),
            )]
            .into(),
        );
        meta
    };
    let mut validating = registration.validating();
    validating.metadata = annotate(validating.metadata);
    for hook in validating.webhooks.iter_mut().flatten() {
        hook.client_config.ca_bundle = None;
    }
    let mut mutating = registration.mutating();
    mutating.metadata = annotate(mutating.metadata);
    for hook in mutating.webhooks.iter_mut().flatten() {
        hook.client_config.ca_bundle = None;
    }
    let body = format!(
        "---\n{}---\n{}",
        serde_yaml_ng::to_string(&validating)?,
        serde_yaml_ng::to_string(&mutating)?
    );
    let body = body.replace(
        "timeoutSeconds: 5\n",
        "timeoutSeconds: {{ .Values.webhook.timeoutSeconds }}\n",
    );
    Ok(format!(
        "# Generated by `changegate webhooks` from src/webhook/registration.rs: do not edit.\n\
         # In self-managed mode the operator registers these itself, with its own CA bundle.\n\
         {{{{- if .Values.certManager.enabled }}}}\n{body}{{{{- end }}}}\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(endpoint: &Endpoint) -> Registration<'_> {
        Registration {
            endpoint,
            ca_pem: "PEM",
            operator_namespace: "changegate-system",
            timeout_seconds: 5,
            operator_user: "system:serviceaccount:changegate-system:changegate",
        }
    }

    #[test]
    fn approvals_reach_the_webhook_on_the_status_subresource_but_never_the_operators_writes() {
        let endpoint = Endpoint::Url("https://127.0.0.1:9443".into());
        let webhooks = registration(&endpoint)
            .validating()
            .webhooks
            .expect("webhooks");
        let approvals = webhooks
            .iter()
            .find(|w| w.name == "approvals.validate.changegate.dev")
            .expect("the approval webhook");
        let rules = approvals.rules.as_ref().expect("rules");
        assert_eq!(
            rules[0].resources.as_deref(),
            Some(
                &[
                    "changerequests/status".to_string(),
                    "releases/status".into()
                ][..]
            )
        );
        assert_eq!(approvals.failure_policy.as_deref(), Some("Fail"));
        assert_eq!(approvals.side_effects, "NoneOnDryRun");
        assert_eq!(approvals.timeout_seconds, Some(APPROVAL_TIMEOUT_SECONDS));
        let condition = &approvals.match_conditions.as_ref().expect("conditions")[0];
        assert_eq!(
            condition.expression,
            "request.userInfo.username != 'system:serviceaccount:changegate-system:changegate'"
        );
    }

    #[test]
    fn workloads_are_gated_only_in_tenant_namespaces_and_never_in_system_ones() {
        let endpoint = Endpoint::Url("https://127.0.0.1:9443".into());
        let v = registration(&endpoint).validating();
        let webhooks = v.webhooks.expect("webhooks");
        let workloads = &webhooks[0];
        assert_eq!(workloads.failure_policy.as_deref(), Some("Fail"));
        assert_eq!(workloads.side_effects, "None");
        let exprs = workloads
            .namespace_selector
            .as_ref()
            .and_then(|s| s.match_expressions.clone())
            .expect("selector");
        assert_eq!(exprs[0].key, "changegate.dev/tenant");
        assert_eq!(
            exprs[1].values.as_deref(),
            Some(
                &[
                    "kube-system".to_string(),
                    "kube-node-lease".into(),
                    "changegate-system".into()
                ][..]
            )
        );
        let resources: Vec<String> = workloads
            .rules
            .iter()
            .flatten()
            .flat_map(|r| r.resources.clone().unwrap_or_default())
            .collect();
        assert!(
            resources.iter().all(|r| !r.contains('/')),
            "no subresources: {resources:?}"
        );
        assert_eq!(
            workloads.client_config.url.as_deref(),
            Some("https://127.0.0.1:9443/validate/workloads")
        );
        assert_eq!(
            workloads
                .client_config
                .ca_bundle
                .as_ref()
                .map(|b| b.0.clone()),
            Some(b"PEM".to_vec())
        );
    }

    #[test]
    fn in_cluster_mode_uses_the_service() {
        let endpoint = Endpoint::Service {
            namespace: "changegate-system".into(),
            name: "changegate-webhook".into(),
            port: 443,
        };
        let v = registration(&endpoint).validating();
        let service = v.webhooks.expect("webhooks")[0]
            .client_config
            .service
            .clone()
            .expect("service");
        assert_eq!(service.path.as_deref(), Some("/validate/workloads"));
    }
}
