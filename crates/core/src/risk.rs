//! The risk questionnaire: weighted questions per tenant, answered with
//! one of each question's options, summed to a score that thresholds map
//! to a level (`low | medium | high | critical`); the level drives routing.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::change::RiskLevel;
use crate::ids::InvalidValue;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Questionnaire {
    pub questions: Vec<Question>,
    pub thresholds: Thresholds,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    pub key: String,
    pub text: String,
    #[serde(default = "one")]
    pub weight: u32,
    pub options: Vec<Choice>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    pub value: String,
    pub score: u32,
}

/// The lowest score of each level above `low`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub medium: u32,
    pub high: u32,
    pub critical: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    pub score: u32,
    pub level: RiskLevel,
}

impl Questionnaire {
    /// The questionnaire a tenant gets until its change manager writes one.
    pub fn default_for_msp() -> Self {
        let yes_no = |key: &str, text: &str, weight: u32| Question {
            key: key.into(),
            text: text.into(),
            weight,
            options: vec![
                Choice {
                    value: "no".into(),
                    score: 0,
                },
                Choice {
                    value: "yes".into(),
                    score: 1,
                },
            ],
        };
        Questionnaire {
            questions: vec![
                yes_no("production", "Does the change touch production?", 3),
                yes_no("outage", "Is a service outage expected?", 4),
                yes_no(
                    "untested",
                    "Is the change untested in a non-production environment?",
                    3,
                ),
                yes_no("no-backout", "Is there no tested backout plan?", 5),
            ],
            thresholds: Thresholds {
                medium: 3,
                high: 7,
                critical: 11,
            },
        }
    }

    pub fn validate(&self) -> Result<(), InvalidValue> {
        let t = self.thresholds;
        if !(t.medium <= t.high && t.high <= t.critical) {
            return Err(InvalidValue::new(
                "thresholds",
                "thresholds must rise: medium <= high <= critical",
            ));
        }
        let mut keys = std::collections::BTreeSet::new();
        for (i, q) in self.questions.iter().enumerate() {
            let field = format!("questions[{i}]");
            if q.key.trim().is_empty() || !keys.insert(q.key.as_str()) {
                return Err(InvalidValue::new(
                    format!("{field}.key"),
                    format!("question keys must be present and distinct ({:?})", q.key),
                ));
            }
            if q.options.is_empty() {
                return Err(InvalidValue::new(
                    format!("{field}.options"),
                    "a question needs at least one option",
                ));
            }
        }
        Ok(())
    }

    /// Score the answers (question key → option value). Every question
    /// must be answered with one of its options; unknown keys are refused.
    pub fn assess(&self, answers: &BTreeMap<String, String>) -> Result<Assessment, InvalidValue> {
        if let Some(unknown) = answers
            .keys()
            .find(|k| !self.questions.iter().any(|q| &q.key == *k))
        {
            return Err(InvalidValue::new(
                format!("risk_answers.{unknown}"),
                "no such question in this tenant's risk questionnaire",
            ));
        }
        let mut score = 0u32;
        for q in &self.questions {
            let field = format!("risk_answers.{}", q.key);
            let answer = answers
                .get(&q.key)
                .ok_or_else(|| InvalidValue::new(field.clone(), format!("answer {:?}", q.text)))?;
            let choice = q
                .options
                .iter()
                .find(|c| &c.value == answer)
                .ok_or_else(|| {
                    let values: Vec<&str> = q.options.iter().map(|c| c.value.as_str()).collect();
                    InvalidValue::new(
                        field.clone(),
                        format!(
                            "{answer:?} is not an option; choose one of {}",
                            values.join(", ")
                        ),
                    )
                })?;
            score = score.saturating_add(q.weight.saturating_mul(choice.score));
        }
        Ok(Assessment {
            score,
            level: self.level(score),
        })
    }

    pub fn level(&self, score: u32) -> RiskLevel {
        let t = self.thresholds;
        if score >= t.critical {
            RiskLevel::Critical
        } else if score >= t.high {
            RiskLevel::High
        } else if score >= t.medium {
            RiskLevel::Medium
        } else {
            RiskLevel::Low
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn weighted_answers_sum_to_a_level() {
        let q = Questionnaire::default_for_msp();
        let low = q.assess(&answers(&[
            ("production", "no"),
            ("outage", "no"),
            ("untested", "no"),
            ("no-backout", "no"),
        ]));
        assert_eq!(
            low,
            Ok(Assessment {
                score: 0,
                level: RiskLevel::Low
            })
        );
        let high = q.assess(&answers(&[
            ("production", "yes"),
            ("outage", "yes"),
            ("untested", "no"),
            ("no-backout", "no"),
        ]));
        assert_eq!(
            high,
            Ok(Assessment {
                score: 7,
                level: RiskLevel::High
            })
        );
        let crit = q.assess(&answers(&[
            ("production", "yes"),
            ("outage", "yes"),
            ("untested", "yes"),
            ("no-backout", "yes"),
        ]));
        assert_eq!(crit.map(|a| a.level), Ok(RiskLevel::Critical));
    }

    #[test]
    fn missing_unknown_and_invalid_answers_name_the_field() {
        let q = Questionnaire::default_for_msp();
        let missing = q.assess(&answers(&[("production", "no")])).unwrap_err();
        assert_eq!(missing.field, "risk_answers.outage");
        let unknown = q.assess(&answers(&[("colour", "red")])).unwrap_err();
        assert_eq!(unknown.field, "risk_answers.colour");
        let bad = q
            .assess(&answers(&[
                ("production", "maybe"),
                ("outage", "no"),
                ("untested", "no"),
                ("no-backout", "no"),
            ]))
            .unwrap_err();
        assert_eq!(bad.field, "risk_answers.production");
    }

    #[test]
    fn thresholds_must_rise() {
        let mut q = Questionnaire::default_for_msp();
        q.thresholds.high = 1;
        assert!(q.validate().is_err());
    }
}
