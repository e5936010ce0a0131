//! What the operator followed of a change's rollouts, as the server
//! recorded it (`deployment.recorded` events the operator's reports
//! wrote), folded into the `rollout[]` and `rollback` of a ChangeRequest's
//! status. Pure: the change's events in, the outcome out.

use crate::change_request::{Rollback, Rollout};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// One recorded deployment of a change: when, and the event's detail.
pub struct Recorded<'a> {
    pub at: DateTime<Utc>,
    pub detail: &'a Value,
}

/// The change's rollouts, one per workload in the order first seen, each
/// in its latest state, and its rollback if there was one.
pub fn fold<'a>(
    recorded: impl IntoIterator<Item = Recorded<'a>>,
) -> (Vec<Rollout>, Option<Rollback>) {
    let mut rollouts: Vec<Rollout> = Vec::new();
    let mut rollback = None;
    for r in recorded {
        let Some(event) = r.detail["event"].as_str() else {
            continue;
        };
        let w = &r.detail["target"]["workload"];
        let (Some(kind), Some(name)) = (w["kind"].as_str(), w["name"].as_str()) else {
            continue;
        };
        let workload = format!("{kind}/{name}");
        let revision = r.detail["revision"].as_str().map(str::to_string);
        let images: Vec<String> = r.detail["artifacts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if event == "rolled-back" {
            rollback = Some(Rollback {
                trigger: "rollout-failed".into(),
                restored_revision: revision,
                outcome: "succeeded".into(),
                at: r.at,
            });
            continue;
        }
        let state = match event {
            "started" => "progressing",
            "succeeded" => "succeeded",
            "failed" => "failed",
            _ => continue,
        };
        let at = r.at;
        match rollouts.iter_mut().find(|x| x.workload == workload) {
            Some(x) if event == "started" => {
                *x = Rollout {
                    workload,
                    revision,
                    images,
                    state: state.into(),
                    started_at: Some(at),
                    finished_at: None,
                };
            }
            Some(x) => {
                x.state = state.into();
                x.finished_at = Some(at);
                if revision.is_some() {
                    x.revision = revision;
                }
                if !images.is_empty() {
                    x.images = images;
                }
            }
            None => rollouts.push(Rollout {
                workload,
                revision,
                images,
                state: state.into(),
                started_at: (event == "started").then_some(at),
                finished_at: (event != "started").then_some(at),
            }),
        }
    }
    (rollouts, rollback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 5, 2, minute, 0).unwrap()
    }

    fn report(event: &str, revision: &str, image: &str) -> Value {
        json!({ "event": event, "revision": revision, "artifacts": [image],
                "target": { "workload": { "cluster": "local", "namespace": "shop", "kind": "Deployment", "name": "web", "labels": {} } } })
    }

    #[test]
    fn a_failed_rollout_and_its_rollback_fold_into_status() {
        let started = report("started", "2", "web:2-fail");
        let failed = report("failed", "2", "web:2-fail");
        let restored = report("rolled-back", "1", "web:1");
        let pipeline = json!({ "target": { "pipeline": { "environment": "prod" } }, "run": "42" });
        let (rollouts, rollback) = fold([
            Recorded {
                at: at(0),
                detail: &started,
            },
            Recorded {
                at: at(1),
                detail: &pipeline,
            },
            Recorded {
                at: at(5),
                detail: &failed,
            },
            Recorded {
                at: at(6),
                detail: &restored,
            },
        ]);
        assert_eq!(rollouts.len(), 1, "a pipeline's record is no rollout");
        let r = &rollouts[0];
        assert_eq!(r.workload, "Deployment/web");
        assert_eq!(r.state, "failed");
        assert_eq!((r.started_at, r.finished_at), (Some(at(0)), Some(at(5))));
        assert_eq!(r.images, ["web:2-fail"]);
        let rb = rollback.expect("a rollback");
        assert_eq!(rb.restored_revision.as_deref(), Some("1"));
        assert_eq!(rb.at, at(6));
    }

    #[test]
    fn a_succeeded_rollout_has_no_rollback() {
        let started = report("started", "3", "web:3");
        let done = report("succeeded", "3", "web:3");
        let (rollouts, rollback) = fold([
            Recorded {
                at: at(0),
                detail: &started,
            },
            Recorded {
                at: at(2),
                detail: &done,
            },
        ]);
        assert_eq!(rollouts[0].state, "succeeded");
        assert!(rollback.is_none());
    }
}
