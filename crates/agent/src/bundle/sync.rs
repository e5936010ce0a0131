//! Keeps the agent's bundle current: long-polls the server with the
//! bundle's ETag (`If-None-Match`, `?wait=`), so an approval reaches the
//! agent as soon as it is written; every answer is written to the cache.
//! When the server cannot be reached the agent keeps its bundle and
//! retries with backoff; admission judges how stale that bundle is.

use super::cache;
use super::{Bundle, BundleState, Snapshot};
use chrono::Utc;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, ETAG, IF_NONE_MATCH};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct SyncSettings {
    /// The server's base URL, e.g. `https://changegate.example.com`.
    pub server: String,
    /// The cluster's agent token (`POST /api/v1/clusters`).
    pub token: String,
    /// Where the bundle is cached; `None` keeps it in memory only.
    pub cache_dir: Option<PathBuf>,
    /// How long one long-poll waits on the server for a newer bundle.
    pub wait: Duration,
}

/// Loads the cached bundle into `state`, if there is one.
pub fn restore(settings: &SyncSettings, state: &BundleState) {
    let Some(dir) = &settings.cache_dir else {
        return;
    };
    if let Some(cached) = cache::load(dir) {
        tracing::info!(etag = %cached.etag, confirmed_at = %cached.confirmed_at, "deciding from the cached bundle until the server answers");
        let confirmed = cached.confirmed_at;
        state.replace(
            Arc::new(Snapshot::new(cached.etag, cached.bundle, Utc::now())),
            confirmed,
        );
    }
}

/// Why one poll failed.
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error("cannot reach the server: {0}")]
    Unreachable(#[from] reqwest::Error),
    #[error("the server refused the agent token ({0}); mint a new one with POST /api/v1/clusters")]
    Refused(StatusCode),
    #[error("the server answered {0}")]
    Status(StatusCode),
    #[error("the bundle does not parse: {0}")]
    Unreadable(#[from] serde_json::Error),
}

/// Polls until the process ends.
pub async fn run(settings: SyncSettings, state: Arc<BundleState>) {
    let http = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(settings.wait + Duration::from_secs(15))
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client; the agent will not receive bundles");
            return;
        }
    };
    let url = format!(
        "{}/api/v1/agent/bundle",
        settings.server.trim_end_matches('/')
    );
    let mut backoff = Duration::from_millis(500);
    loop {
        match poll(&http, &url, &settings, &state).await {
            Ok(()) => backoff = Duration::from_millis(500),
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "bundle poll failed; deciding from the bundle held");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn poll(
    http: &reqwest::Client,
    url: &str,
    settings: &SyncSettings,
    state: &BundleState,
) -> Result<(), PollError> {
    let held = state.current();
    let mut request = http
        .get(url)
        .header(AUTHORIZATION, format!("Bearer {}", settings.token));
    if let Some((snapshot, _)) = &held {
        request = request
            .header(IF_NONE_MATCH, &snapshot.etag)
            .query(&[("wait", settings.wait.as_secs())]);
    }
    let response = request.send().await?;
    let now = Utc::now();
    match response.status() {
        StatusCode::NOT_MODIFIED => {
            state.confirm(now);
            if let Some((snapshot, _)) = held {
                write_cache(settings, &snapshot.etag, &snapshot.bundle, now);
            }
            Ok(())
        }
        StatusCode::OK => {
            let etag = response
                .headers()
                .get(ETAG)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let body = response.bytes().await?;
            let bundle: Bundle = serde_json::from_slice(&body)?;
            tracing::info!(%etag, tenants = bundle.tenants.len(), changes = bundle.tenants.iter().map(|t| t.changes.len()).sum::<usize>(), "new bundle");
            write_cache(settings, &etag, &bundle, now);
            state.replace(Arc::new(Snapshot::new(etag, bundle, now)), now);
            Ok(())
        }
        s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => Err(PollError::Refused(s)),
        s => Err(PollError::Status(s)),
    }
}

fn write_cache(settings: &SyncSettings, etag: &str, bundle: &Bundle, at: chrono::DateTime<Utc>) {
    let Some(dir) = &settings.cache_dir else {
        return;
    };
    if let Err(e) = cache::store(dir, etag, at, bundle) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot write the bundle cache; a restart while the server is down would start without a bundle");
    }
}
