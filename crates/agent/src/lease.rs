//! Leader election on a `coordination.k8s.io/v1` Lease, for the part of
//! the agent that acts and reports (`follow`): with two replicas, one
//! follows rollouts, rolls back and reports; both admit. The holder renews
//! every few seconds; a Lease not renewed within its duration may be taken
//! over. Writes use the Lease's resourceVersion, so two candidates cannot
//! both win one round.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long a Lease holds without renewal.
const LEASE_SECONDS: i32 = 15;
/// How often the holder renews and the others look.
const RETRY: Duration = Duration::from_secs(4);

/// Whether this process holds the Lease.
#[derive(Debug, Default)]
pub struct Leadership(AtomicBool);

impl Leadership {
    pub fn is_leader(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// May `me` take a Lease held by `holder`, last renewed at `renewed` for
/// `seconds`, at `now`?
pub fn may_take(
    me: &str,
    holder: Option<&str>,
    renewed: Option<Timestamp>,
    seconds: i32,
    now: Timestamp,
) -> bool {
    match (holder, renewed) {
        (None | Some(""), _) => true,
        (Some(h), _) if h == me => true,
        (Some(_), None) => true,
        (Some(_), Some(at)) => now > at + SignedDuration::from_secs(i64::from(seconds)),
    }
}

/// Campaigns for Lease `name` in `namespace` as `me` until the process ends.
pub async fn run(
    client: Client,
    namespace: String,
    name: String,
    me: String,
    leadership: Arc<Leadership>,
) {
    let leases: Api<Lease> = Api::namespaced(client, &namespace);
    loop {
        let won = round(&leases, &name, &me).await;
        let was = leadership.0.swap(won, Ordering::Relaxed);
        if won != was {
            tracing::info!(lease = %name, %me, leader = won, "leadership changed");
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Gives the Lease up if `me` holds it (on shutdown), so another replica
/// or the next process takes over at once rather than after it expires.
pub async fn release(client: Client, namespace: &str, name: &str, me: &str) {
    let leases: Api<Lease> = Api::namespaced(client, namespace);
    if let Ok(Some(mut lease)) = leases.get_opt(name).await
        && let Some(spec) = lease.spec.as_mut()
        && spec.holder_identity.as_deref() == Some(me)
    {
        spec.holder_identity = None;
        spec.renew_time = None;
        if let Err(e) = leases.replace(name, &PostParams::default(), &lease).await {
            tracing::warn!(error = %e, "cannot release the leader Lease; it expires by itself");
        }
    }
}

async fn round(leases: &Api<Lease>, name: &str, me: &str) -> bool {
    let now = Timestamp::now();
    let spec = |acquired: Option<MicroTime>, transitions: i32| LeaseSpec {
        holder_identity: Some(me.to_string()),
        lease_duration_seconds: Some(LEASE_SECONDS),
        acquire_time: acquired.or(Some(MicroTime(now))),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    };
    match leases.get_opt(name).await {
        Ok(None) => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec(None, 0)),
            };
            leases.create(&PostParams::default(), &lease).await.is_ok()
        }
        Ok(Some(mut lease)) => {
            let current = lease.spec.clone().unwrap_or_default();
            let holder = current.holder_identity.as_deref();
            let renewed = current.renew_time.as_ref().map(|t| t.0);
            let seconds = current.lease_duration_seconds.unwrap_or(LEASE_SECONDS);
            if !may_take(me, holder, renewed, seconds, now) {
                return false;
            }
            let ours = holder == Some(me);
            let transitions = current.lease_transitions.unwrap_or(0) + i32::from(!ours);
            lease.spec = Some(spec(
                if ours { current.acquire_time } else { None },
                transitions,
            ));
            // The resourceVersion read above makes this a compare-and-swap.
            leases
                .replace(name, &PostParams::default(), &lease)
                .await
                .is_ok()
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the leader Lease; standing down until it can");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_taken_only_when_free_ours_or_expired() {
        let at: Timestamp = "2026-11-27T10:00:00Z".parse().expect("time");
        let later = |s: i64| at + SignedDuration::from_secs(s);
        assert!(may_take("a", None, None, 15, at));
        assert!(may_take("a", Some("a"), Some(at), 15, later(1)));
        assert!(!may_take("a", Some("b"), Some(at), 15, later(15)));
        assert!(may_take("a", Some("b"), Some(at), 15, later(16)));
    }
}
