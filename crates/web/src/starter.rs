//! Releases whose deployment was authorized ahead start at their planned
//! start: each pass (every second, `serve` runs it beside the other jobs)
//! authorizes the deploy phase of every ready release whose moment has
//! come, as the person who scheduled it and with every check the deploy
//! phase makes then. It fires once: on success the release is deploying;
//! on a refusal (a window closed, a change no longer approved) the
//! schedule is dropped and the refusal recorded in each tenant's chain, for
//! the release manager to decide again. The release's version guards the
//! write, so two replicas passing together start it once, and a restart
//! finds a due release still ready and starts it then.

use changegate_core::authz::Action;
use changegate_core::release::{Phase, ReleaseState};
use changegate_store::{NewEvent, ReleaseWrite, StoreError};
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::AppState;
use crate::app::release;
use crate::auth::principal_of;

/// What a pass did to one release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    Started(String),
    /// Refused, with the reason; the schedule is dropped.
    Refused(String, String),
}

const ACTOR: &str = "changegate-scheduler";

/// One pass at `now` (the state's clock decides the checks).
pub async fn run_due(state: &AppState, now: DateTime<Utc>) -> Result<Vec<Started>, StoreError> {
    let store = state.store.as_ref();
    let mut done = Vec::new();
    for r in store.active_releases(None).await? {
        let (Some(scheduled), Some(start)) = (&r.record.scheduled_start, r.planned_start) else {
            continue;
        };
        if r.state != ReleaseState::Ready || start > now {
            continue;
        }
        let who = store
            .user_by_email(
                &changegate_core::Email::parse(&scheduled.by)
                    .map_err(|e| StoreError::corrupt("scheduler", e))?,
            )
            .await?;
        let principal = match principal_of(store, who).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(release = %r.number, error = %e.message, "the scheduled starter's identity");
                continue;
            }
        };
        let number = r.number.to_string();
        let note = format!(
            "started at its planned start, as scheduled by {} at {}{}",
            scheduled.by,
            scheduled.at.format("%Y-%m-%d %H:%M UTC"),
            if scheduled.note.is_empty() {
                String::new()
            } else {
                format!(": {}", scheduled.note)
            }
        );
        // As the person who scheduled it, with every check they face now.
        let outcome = async {
            let loaded = release::load(state, &principal, &number).await?;
            release::authorize_all(&principal, loaded.tenants.keys().copied(), Action::Release)?;
            release::authorize_phase(state, &principal, &loaded, Phase::Deploy, &note, now).await
        }
        .await;
        match outcome {
            Ok(_) => done.push(Started::Started(number)),
            // Another replica (or a person) moved it first: nothing to do.
            Err(e) if e.code == "conflict" => {}
            Err(e) => {
                // Drop the schedule, once, under the version read above.
                let mut dropped = r.clone();
                dropped.record.scheduled_start = None;
                let events = r
                    .tenants()
                    .into_iter()
                    .map(|t| {
                        (
                            t,
                            NewEvent {
                                actor: ACTOR.into(),
                                action: "release.start-refused".into(),
                                subject: number.clone(),
                                detail: json!({ "reason": e.message }),
                                at: now,
                            },
                        )
                    })
                    .collect();
                match store
                    .save_release(
                        &dropped,
                        r.version,
                        ReleaseWrite {
                            events,
                            ..Default::default()
                        },
                        now,
                    )
                    .await
                {
                    Ok(_) => done.push(Started::Refused(number, e.message)),
                    Err(StoreError::Conflict { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(done)
}

/// Run a pass every second until `shutdown` resolves.
pub async fn run(state: AppState, shutdown: impl std::future::Future<Output = ()>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let mut outage = changegate_store::outage::Outage::default();
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tick.tick() => {
                if outage.waiting() {
                    continue;
                }
                match run_due(&state, state.now()).await {
                    Ok(done) => {
                        outage.succeeded("the release starter");
                        for s in done {
                            tracing::info!(outcome = ?s, "scheduled release start");
                        }
                    }
                    Err(e) => outage.failed("the release starter", &e),
                }
            }
        }
    }
}
