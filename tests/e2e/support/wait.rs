//! Waiting on conditions, never on fixed sleeps: watch-based waits on one
//! object, and a polling wait for anything else. Both fail with what they
//! last saw.

use kube::runtime::wait::await_condition;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

/// Waits until `condition` holds for the object `name`, watching it; on
/// time-out panics with `what` and the object as last seen.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    condition: impl Fn(&K) -> bool,
) -> K
where
    K: Resource + Clone + Debug + DeserializeOwned + serde::Serialize + Send + 'static,
{
    let cond = move |obj: Option<&K>| obj.is_some_and(&condition);
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(Some(obj))) => obj,
        Ok(Ok(None)) => panic!("waiting for {what}: {name} was deleted"),
        Ok(Err(e)) => panic!("waiting for {what}: watch failed: {e}"),
        Err(_) => {
            let seen = api.get_opt(name).await.ok().flatten().map_or_else(
                || "<absent>".to_string(),
                |o| serde_json::to_string_pretty(&o).unwrap_or_default(),
            );
            panic!("timed out after {timeout:?} waiting for {what}; last seen {name}: {seen}")
        }
    }
}

/// Polls `probe` until it returns `Ok(value)`; `Err(seen)` describes the
/// current state and ends up in the failure message on time-out.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut interval = tokio::time::interval(Duration::from_millis(250));
    loop {
        interval.tick().await;
        match probe().await {
            Ok(v) => return v,
            Err(seen) if tokio::time::Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {seen}")
            }
            Err(_) => {}
        }
    }
}
