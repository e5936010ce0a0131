//! The operator's metrics with bounded labels: admission decisions by
//! webhook, reason and outcome, and decision latency by webhook;
//! reconciles of the custom resources by kind and result, and how long
//! each took (the server's answer included: the record → status lag).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    webhook: &'static str,
    reason: &'static str,
    allowed: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabel {
    webhook: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    kind: &'static str,
    /// `synced`, `refused` or `unavailable`.
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    decisions: Family<DecisionLabels, Counter>,
    latency: Family<WebhookLabel, Histogram>,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_time: Family<KindLabel, Histogram>,
    record_lag: Family<KindLabel, Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("changegate");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "webhook_decisions",
            "Admission decisions by webhook, reason and outcome",
            decisions.clone(),
        );
        let latency = Family::<WebhookLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
            ])
        });
        registry.register(
            "webhook_decision_seconds",
            "Time to decide an admission request",
            latency.clone(),
        );
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles of custom resources with the server, by kind and result",
            reconciles.clone(),
        );
        let reconcile_time = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0])
        });
        registry.register(
            "reconcile_seconds",
            "Time from a reconcile's start to its status written (the server's answer included)",
            reconcile_time.clone(),
        );
        let record_lag = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0])
        });
        registry.register(
            "record_status_lag_seconds",
            "Time from the server's write of a record to the operator's status showing it",
            record_lag.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            decisions,
            latency,
            reconciles,
            reconcile_time,
            record_lag,
        }
    }
}

impl Metrics {
    pub fn record(
        &self,
        webhook: &'static str,
        reason: &'static str,
        allowed: bool,
        elapsed: Duration,
    ) {
        self.decisions
            .get_or_create(&DecisionLabels {
                webhook,
                reason,
                allowed,
            })
            .inc();
        self.latency
            .get_or_create(&WebhookLabel { webhook })
            .observe(elapsed.as_secs_f64());
    }

    pub fn reconciled(&self, kind: &'static str, result: &'static str, elapsed: Duration) {
        self.reconciles
            .get_or_create(&ReconcileLabels { kind, result })
            .inc();
        self.reconcile_time
            .get_or_create(&KindLabel { kind })
            .observe(elapsed.as_secs_f64());
    }

    /// A record written at the server `lag` before its status was written.
    pub fn status_lag(&self, kind: &'static str, lag: Duration) {
        self.record_lag
            .get_or_create(&KindLabel { kind })
            .observe(lag.as_secs_f64());
    }

    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        prometheus_client::encoding::text::encode(&mut out, &registry)?;
        Ok(out)
    }
}
