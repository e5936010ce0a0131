//! Webhook metrics with bounded labels: decisions by webhook, reason and
//! outcome, and decision latency by webhook.

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

pub struct Metrics {
    registry: Mutex<Registry>,
    decisions: Family<DecisionLabels, Counter>,
    latency: Family<WebhookLabel, Histogram>,
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
        Self {
            registry: Mutex::new(registry),
            decisions,
            latency,
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
