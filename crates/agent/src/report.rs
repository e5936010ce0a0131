//! Reports to the server (`POST /api/v1/agent/reports`): sent in order by
//! one task, retried with backoff while the server is unreachable or
//! failing, dropped with a log line when the server refuses one (a 4xx
//! will not succeed on retry).

use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc;

/// One report, as the server reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub tenant: String,
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub artifacts: Vec<String>,
    pub event: ReportEvent,
    pub change: Option<String>,
    pub revision: Option<String>,
    /// With `started`: the fingerprint the covering change carried in the
    /// bundle the rollout was admitted from. The server starts the change
    /// only if it still carries it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    pub note: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportEvent {
    Started,
    Succeeded,
    Failed,
    RolledBack,
    Unauthorized,
}

/// The sending end; cheap to clone.
#[derive(Clone)]
pub struct Reporter {
    queue: mpsc::UnboundedSender<Report>,
}

impl Reporter {
    /// Starts the sending task against `server` with the agent `token`.
    pub fn start(server: &str, token: &str) -> Reporter {
        let (queue, mut next) = mpsc::unbounded_channel::<Report>();
        let url = format!("{}/api/v1/agent/reports", server.trim_end_matches('/'));
        let token = token.to_string();
        tokio::spawn(async move {
            let http = match reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
            {
                Ok(http) => http,
                Err(e) => {
                    tracing::error!(error = %e, "cannot build the HTTP client; reports will not be sent");
                    return;
                }
            };
            while let Some(report) = next.recv().await {
                send(&http, &url, &token, &report).await;
            }
        });
        Reporter { queue }
    }

    pub fn send(&self, report: Report) {
        tracing::info!(tenant = %report.tenant, workload = %format!("{} {}/{}", report.kind, report.namespace, report.name),
            event = ?report.event, change = ?report.change, "reporting to the server");
        if self.queue.send(report).is_err() {
            tracing::error!("the report task has stopped; report dropped");
        }
    }
}

async fn send(http: &reqwest::Client, url: &str, token: &str, report: &Report) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let answer = http
            .post(url)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .json(report)
            .send()
            .await;
        match answer {
            Ok(r) if r.status().is_success() => return,
            Ok(r)
                if r.status().is_client_error() && r.status() != StatusCode::TOO_MANY_REQUESTS =>
            {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                tracing::error!(%status, %body, ?report, "the server refused a report; dropped");
                return;
            }
            Ok(r) => {
                tracing::warn!(status = %r.status(), retry_in = ?backoff, "report not accepted; retrying")
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "cannot reach the server to report; retrying")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}
