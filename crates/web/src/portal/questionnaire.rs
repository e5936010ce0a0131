//! The risk questionnaire on the settings page: said in words, and edited
//! as a form of question rows (what is asked, its weight, each answer's
//! score) and the thresholds, which become the policy's `questionnaire`
//! through `PUT …/policy` with the rest of the policy kept. A refused form
//! comes back with every row as typed.

use axum::extract::{Path, State};
use axum::response::Response;
use changegate_core::authz::Action;
use changegate_core::risk::{Choice, Question, Questionnaire, Thresholds};

use super::pages::tenant_form;
use super::settings::{Prefill, answered_as_typed};
use super::{Fields, PageResult, Viewer};
use crate::AppState;
use crate::api::{self, Body};
use crate::error::{ApiError, ApiResult};

/// Empty rows offered under the questions, for new ones.
const BLANK_ROWS: usize = 2;

/// The most question rows a form is read for.
const MAX_ROWS: usize = 200;

/// One question as the form shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuestionRow {
    pub key: String,
    pub text: String,
    pub weight: String,
    /// Its answers as `answer=score`, comma-separated: `no=0, yes=1`.
    pub answers: String,
}

/// The questionnaire form's values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuestionnaireFill {
    pub rows: Vec<QuestionRow>,
    /// An answer holds a comma or a line break, which `answer=score`
    /// cannot carry: the form would change it, so only the JSON edits it.
    pub json_only: bool,
    pub medium: String,
    pub high: String,
    pub critical: String,
}

impl QuestionnaireFill {
    /// The form filled from `q`, with blank rows for new questions.
    pub fn of(q: &Questionnaire) -> Self {
        let mut rows: Vec<QuestionRow> = q
            .questions
            .iter()
            .map(|q| QuestionRow {
                key: q.key.clone(),
                text: q.text.clone(),
                weight: q.weight.to_string(),
                answers: q
                    .options
                    .iter()
                    .map(|c| format!("{}={}", c.value, c.score))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
            .collect();
        rows.extend(std::iter::repeat_n(QuestionRow::default(), BLANK_ROWS));
        let json_only = q
            .questions
            .iter()
            .flat_map(|q| &q.options)
            .any(|c| c.value.contains([',', '\n']) || c.value.trim() != c.value);
        QuestionnaireFill {
            rows,
            json_only,
            medium: q.thresholds.medium.to_string(),
            high: q.thresholds.high.to_string(),
            critical: q.thresholds.critical.to_string(),
        }
    }

    /// The form as typed: rows `q.{i}.key|text|weight|answers` in the
    /// order of their index (at most [`MAX_ROWS`]; fields beyond are not
    /// read), those ticked `remove` left out. One pass over the fields.
    pub(crate) fn typed(fields: &Fields) -> Self {
        let removed: std::collections::BTreeSet<String> =
            fields.all("remove").into_iter().collect();
        let mut rows: std::collections::BTreeMap<usize, QuestionRow> = Default::default();
        for (name, value) in &fields.0 {
            let Some((i, what)) = name
                .strip_prefix("q.")
                .and_then(|rest| rest.split_once('.'))
                .and_then(|(i, what)| Some((i.parse::<usize>().ok()?, what)))
            else {
                continue;
            };
            if i >= MAX_ROWS || removed.contains(&i.to_string()) {
                continue;
            }
            let row = rows.entry(i).or_default();
            match what {
                "key" => row.key = value.clone(),
                "text" => row.text = value.clone(),
                "weight" => row.weight = value.clone(),
                "answers" => row.answers = value.clone(),
                _ => {}
            }
        }
        QuestionnaireFill {
            rows: rows.into_values().collect(),
            json_only: false,
            medium: fields.one("medium"),
            high: fields.one("high"),
            critical: fields.one("critical"),
        }
    }

    /// The questionnaire the form says; the first mistake names its
    /// question by number and says how to write it. Rows left wholly
    /// blank are no question.
    pub fn questionnaire(&self) -> Result<Questionnaire, ApiError> {
        let mut questions = Vec::new();
        for (i, row) in self.rows.iter().enumerate() {
            if [&row.key, &row.text, &row.weight, &row.answers]
                .iter()
                .all(|v| v.trim().is_empty())
            {
                continue;
            }
            let n = i + 1;
            let field = |what: &str| format!("questions[{i}].{what}");
            let key = row.key.trim();
            if key.is_empty() {
                return Err(ApiError::invalid(
                    field("key"),
                    format!(
                        "question {n}: give it a short key, e.g. tested-outside-production (the answers of changes are kept under it)"
                    ),
                ));
            }
            if row.text.trim().is_empty() {
                return Err(ApiError::invalid(
                    field("text"),
                    format!("question {n} ({key}): say what is asked"),
                ));
            }
            let weight = match row.weight.trim() {
                "" => 1,
                w => w.parse::<u32>().map_err(|_| {
                    ApiError::invalid(
                        field("weight"),
                        format!("question {n} ({key}): its weight is a whole number, e.g. 3"),
                    )
                })?,
            };
            let options = answers(&row.answers).ok_or_else(|| {
                ApiError::invalid(
                    field("options"),
                    format!(
                        "question {n} ({key}): write its answers as answer=score, separated by commas, e.g. yes=0, no=1"
                    ),
                )
            })?;
            questions.push(Question {
                key: key.to_string(),
                text: row.text.trim().to_string(),
                weight,
                options,
            });
        }
        let threshold = |name: &str, v: &str| {
            v.trim().parse::<u32>().map_err(|_| {
                ApiError::invalid(
                    format!("thresholds.{name}"),
                    format!("the score from which a change is {name} risk is a whole number"),
                )
            })
        };
        let q = Questionnaire {
            questions,
            thresholds: Thresholds {
                medium: threshold("medium", &self.medium)?,
                high: threshold("high", &self.high)?,
                critical: threshold("critical", &self.critical)?,
            },
        };
        if q.questions.is_empty() {
            return Err(ApiError::invalid(
                "questions",
                "keep at least one question: without one every change is low risk",
            ));
        }
        Ok(q)
    }
}

/// `yes=0, no=1` as choices; `None` when a part is not `answer=score`.
fn answers(text: &str) -> Option<Vec<Choice>> {
    let choices: Option<Vec<Choice>> = text
        .split([',', '\n'])
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (value, score) = p.rsplit_once('=')?;
            let value = value.trim();
            (!value.is_empty()).then_some(())?;
            Some(Choice {
                value: value.to_string(),
                score: score.trim().parse().ok()?,
            })
        })
        .collect();
    choices.filter(|c| !c.is_empty())
}

/// The questionnaire in words: how risk is reckoned, then each question.
pub fn words(q: &Questionnaire) -> Vec<String> {
    let t = q.thresholds;
    let mut said = vec![format!(
        "A change's risk is the sum of each answer's score times its question's weight: low below {}, medium from {}, high from {}, critical from {}.",
        t.medium, t.medium, t.high, t.critical
    )];
    for question in &q.questions {
        let scores: Vec<String> = question
            .options
            .iter()
            .map(|c| format!("{} scores {}", c.value, c.score))
            .collect();
        said.push(format!(
            "{} (weight {}): {}.",
            question.text,
            question.weight,
            scores.join(", ")
        ));
    }
    said
}

/// The questionnaire from its form, through `PUT …/policy`.
pub async fn put_questionnaire_form(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    body: axum::body::Bytes,
) -> PageResult<Response> {
    let (fields, t) = tenant_form(&state, &viewer, &slug, &body, Action::ManagePolicy).await?;
    let typed = QuestionnaireFill::typed(&fields);
    let outcome: ApiResult<String> = async {
        let questionnaire = typed.questionnaire()?;
        let (_, mut policy) = crate::workflow::policy(state.store.as_ref(), t.tenant.id).await?;
        let count = questionnaire.questions.len();
        policy.questionnaire = questionnaire;
        let body = serde_json::to_value(&policy).map_err(|_| ApiError::internal())?;
        let _saved = api::policy::replace(State(state.clone()), t.clone(), Body(body)).await?;
        Ok(format!(
            "Risk questionnaire saved: {count} question{}; it assesses the changes raised from now on.",
            if count == 1 { "" } else { "s" }
        ))
    }
    .await;
    let typed = Prefill {
        questionnaire: Some(typed),
        ..Prefill::default()
    };
    answered_as_typed(&state, &viewer, &t, outcome, typed).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, text: &str, weight: &str, answers: &str) -> QuestionRow {
        QuestionRow {
            key: key.into(),
            text: text.into(),
            weight: weight.into(),
            answers: answers.into(),
        }
    }

    fn fill(rows: Vec<QuestionRow>) -> QuestionnaireFill {
        QuestionnaireFill {
            rows,
            json_only: false,
            medium: "3".into(),
            high: "6".into(),
            critical: "9".into(),
        }
    }

    #[test]
    fn the_default_questionnaire_survives_its_own_form() {
        let q = Questionnaire::default_for_msp();
        let back = QuestionnaireFill::of(&q).questionnaire().expect("valid");
        assert_eq!(back, q);
    }

    #[test]
    fn a_positively_worded_question_scores_its_no() {
        let q = fill(vec![row(
            "tested",
            "Has it been tested outside production?",
            "3",
            "yes=0, no=1",
        )])
        .questionnaire()
        .expect("valid");
        assert_eq!(q.questions[0].weight, 3);
        assert_eq!(
            q.questions[0].options,
            vec![
                Choice {
                    value: "yes".into(),
                    score: 0
                },
                Choice {
                    value: "no".into(),
                    score: 1
                }
            ]
        );
        assert_eq!(q.thresholds.high, 6);
    }

    #[test]
    fn blank_rows_are_no_question_and_a_blank_weight_is_one() {
        let q = fill(vec![
            row("", "", "", ""),
            row(
                "backout",
                "Is there a tested backout plan?",
                "",
                "yes=0,no=2",
            ),
            row(" ", "", "", ""),
        ])
        .questionnaire()
        .expect("valid");
        assert_eq!(q.questions.len(), 1);
        assert_eq!(q.questions[0].weight, 1);
    }

    #[test]
    fn each_mistake_names_its_question_and_how_to_write_it() {
        for (r, field, says) in [
            (
                row(" ", "Tested?", "1", "yes=0"),
                "questions[0].key",
                "short key",
            ),
            (
                row("tested", "", "1", "yes=0"),
                "questions[0].text",
                "say what is asked",
            ),
            (
                row("tested", "Tested?", "three", "yes=0"),
                "questions[0].weight",
                "whole number",
            ),
            (
                row("tested", "Tested?", "1", "yes, no"),
                "questions[0].options",
                "answer=score",
            ),
            (
                row("tested", "Tested?", "1", "yes=maybe"),
                "questions[0].options",
                "answer=score",
            ),
        ] {
            let e = fill(vec![r]).questionnaire().expect_err("refused");
            assert_eq!(e.field.as_deref(), Some(field), "{}", e.message);
            assert!(e.message.contains(says), "{}", e.message);
            assert!(e.message.starts_with("question 1"), "{}", e.message);
        }
        let e = fill(vec![row("", "", "", "")])
            .questionnaire()
            .expect_err("no question");
        assert_eq!(e.field.as_deref(), Some("questions"));
        let mut bad = fill(vec![row("a", "A?", "1", "yes=1")]);
        bad.high = "".into();
        assert_eq!(
            bad.questionnaire().expect_err("refused").field.as_deref(),
            Some("thresholds.high")
        );
    }

    #[test]
    fn an_answer_with_a_comma_is_left_to_the_json() {
        let mut q = Questionnaire::default_for_msp();
        q.questions[0].options[0].value = "no, staging only".into();
        assert!(QuestionnaireFill::of(&q).json_only);
        assert!(!QuestionnaireFill::of(&Questionnaire::default_for_msp()).json_only);
    }

    #[test]
    fn an_answer_may_hold_an_equals_sign() {
        let q = fill(vec![row("a", "A?", "1", "x=1=2, no=0")])
            .questionnaire()
            .expect("valid");
        assert_eq!(q.questions[0].options[0].value, "x=1");
        assert_eq!(q.questions[0].options[0].score, 2);
    }

    #[test]
    fn the_words_say_how_risk_is_reckoned_and_each_question() {
        let said = words(&Questionnaire::default_for_msp());
        assert!(said[0].contains("high from"), "{said:?}");
        assert!(
            said.iter().any(|s| s.starts_with(
                "Does the change touch production? (weight 3): no scores 0, yes scores 1"
            )),
            "{said:?}"
        );
    }
}
