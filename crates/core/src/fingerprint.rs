//! The content fingerprint approvals sign: a SHA-256 over the parts of a
//! change that define what may ship (scope, configuration items,
//! artifacts, planned window, backout plan) and what its risk was judged
//! on (the risk answers, the standard template). An edit that changes it
//! after submission is material: a new revision that re-opens approval,
//! assessed again from the new content.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// What the fingerprint covers. Field order and normalisation are part of
/// the format: lists are sorted and de-duplicated, text is trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Content<'a> {
    pub description: &'a str,
    pub implementation_plan: &'a str,
    pub backout_plan: &'a str,
    pub configuration_items: &'a [String],
    pub artifacts: &'a [String],
    pub planned_start: Option<DateTime<Utc>>,
    pub planned_end: Option<DateTime<Utc>>,
    /// The agent rolls the workload back by itself if the rollout fails.
    pub automatic_rollback: bool,
    /// The risk questionnaire's answers: the risk level and the boards
    /// routed follow from them, so approvers approve them too.
    pub risk_answers: Option<&'a BTreeMap<String, String>>,
    /// The pre-approved template of a standard change.
    pub template: Option<&'a str>,
}

#[derive(Serialize)]
struct Canonical<'a> {
    v: u8,
    description: &'a str,
    implementation_plan: &'a str,
    backout_plan: &'a str,
    configuration_items: Vec<&'a str>,
    artifacts: Vec<&'a str>,
    planned_start: Option<String>,
    planned_end: Option<String>,
    /// Left out when false, so fingerprints from before the field stay valid.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    automatic_rollback: bool,
    /// Left out when empty, likewise (answers with blank values count as none).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    risk_answers: BTreeMap<&'a str, &'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    template: Option<&'a str>,
}

fn sorted(items: &[String]) -> Vec<&str> {
    let mut v: Vec<&str> = items
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// `sha256:<hex>` of the canonical JSON of `content`.
pub fn fingerprint(content: &Content<'_>) -> String {
    let at = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
    let canonical = Canonical {
        v: 1,
        description: content.description.trim(),
        implementation_plan: content.implementation_plan.trim(),
        backout_plan: content.backout_plan.trim(),
        configuration_items: sorted(content.configuration_items),
        artifacts: sorted(content.artifacts),
        planned_start: at(content.planned_start),
        planned_end: at(content.planned_end),
        automatic_rollback: content.automatic_rollback,
        risk_answers: content
            .risk_answers
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.trim(), v.trim()))
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .collect(),
        template: content.template.map(str::trim).filter(|t| !t.is_empty()),
    };
    // Serialising a struct of strings cannot fail.
    let json = serde_json::to_vec(&canonical).unwrap_or_default();
    format!("sha256:{}", hex::encode(Sha256::digest(&json)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> (Vec<String>, Vec<String>) {
        (
            vec!["payments-api".into(), "db".into()],
            vec!["registry.example/payments@sha256:aa".into()],
        )
    }

    #[test]
    fn order_and_whitespace_do_not_matter() {
        let (cis, arts) = base();
        let mut reversed = cis.clone();
        reversed.reverse();
        let a = fingerprint(&Content {
            description: "x",
            configuration_items: &cis,
            artifacts: &arts,
            ..Default::default()
        });
        let b = fingerprint(&Content {
            description: " x ",
            configuration_items: &reversed,
            artifacts: &arts,
            ..Default::default()
        });
        assert_eq!(a, b);
        assert!(a.starts_with("sha256:") && a.len() == 7 + 64);
    }

    #[test]
    fn every_covered_field_changes_it() {
        let (cis, arts) = base();
        let other_arts = vec!["registry.example/payments@sha256:bb".to_string()];
        let c = Content {
            description: "x",
            configuration_items: &cis,
            artifacts: &arts,
            ..Default::default()
        };
        let f = fingerprint(&c);
        assert_ne!(
            f,
            fingerprint(&Content {
                artifacts: &other_arts,
                ..c.clone()
            })
        );
        assert_ne!(
            f,
            fingerprint(&Content {
                backout_plan: "roll back",
                ..c.clone()
            })
        );
        assert_ne!(
            f,
            fingerprint(&Content {
                implementation_plan: "helm upgrade",
                ..c.clone()
            })
        );
        assert_ne!(
            f,
            fingerprint(&Content {
                configuration_items: &arts,
                ..c.clone()
            })
        );
        assert_ne!(
            f,
            fingerprint(&Content {
                planned_start: Some(DateTime::UNIX_EPOCH),
                ..c.clone()
            })
        );
        assert_ne!(
            f,
            fingerprint(&Content {
                automatic_rollback: true,
                ..c.clone()
            })
        );
        let risky = BTreeMap::from([("production".to_string(), "yes".to_string())]);
        assert_ne!(
            f,
            fingerprint(&Content {
                risk_answers: Some(&risky),
                ..c.clone()
            }),
            "the risk answers are approved too"
        );
        assert_ne!(
            f,
            fingerprint(&Content {
                template: Some("add-mailbox"),
                ..c.clone()
            })
        );
    }

    #[test]
    fn fingerprints_without_answers_or_template_are_those_of_before() {
        // A change without risk answers or template keeps the fingerprint
        // it was approved under before they were covered.
        let (cis, arts) = base();
        let none = BTreeMap::new();
        let c = Content {
            description: "x",
            configuration_items: &cis,
            artifacts: &arts,
            ..Default::default()
        };
        assert_eq!(
            fingerprint(&c),
            fingerprint(&Content {
                risk_answers: Some(&none),
                template: Some(" "),
                ..c.clone()
            })
        );
        // The canonical JSON of before, hashed outside this code.
        assert_eq!(
            fingerprint(&c),
            "sha256:c2116d0e694e9243ba7fdf76b6e401deb216fe6c2df7e969feac95689e047fb1"
        );
    }
}
