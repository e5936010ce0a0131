//! Standard-change templates on the settings page: each said in words
//! with the scope it pre-approves, and edited as a form (title, plans,
//! steps, the configuration items, artifacts and spec paths it may touch,
//! who approved it and when it is due for review) that goes through
//! `PUT …/templates/{name}`. A refused form comes back as typed.

use axum::extract::{Path, State};
use axum::response::Response;
use changegate_core::authz::Action;
use changegate_core::catalogue::Template;
use chrono::NaiveDate;
use serde_json::json;

use super::pages::tenant_form;
use super::settings::{Prefill, answered_as_typed};
use super::{Fields, PageResult, Viewer};
use crate::AppState;
use crate::api::{self, Body, NamePath};
use crate::error::{ApiError, ApiResult};

/// The template form's values: empty for a new template, a template's to
/// edit it, or as typed when refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateFill {
    pub name: String,
    pub title: String,
    pub description: String,
    pub implementation_plan: String,
    pub test_plan: String,
    pub backout_plan: String,
    /// One per line.
    pub steps: String,
    /// The configuration items it may name (ticked on the form).
    pub items: Vec<String>,
    /// Kinds of items it may name, comma-separated.
    pub item_kinds: String,
    /// One pattern per line.
    pub artifacts: String,
    /// One spec path per line.
    pub paths: String,
    /// `name=default`, one per line.
    pub variables: String,
    pub approved_by: String,
    pub approved_on: String,
    pub review_due: String,
}

fn lines(v: &[String]) -> String {
    v.join("\n")
}

fn split_lines(v: &str) -> Vec<String> {
    v.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

impl TemplateFill {
    /// The form filled from template `name`.
    pub fn of(name: &str, t: &Template) -> Self {
        TemplateFill {
            name: name.to_string(),
            title: t.title.clone(),
            description: t.description.clone(),
            implementation_plan: t.implementation_plan.clone(),
            test_plan: t.test_plan.clone(),
            backout_plan: t.backout_plan.clone(),
            steps: lines(&t.steps),
            items: t.configuration_items.clone(),
            item_kinds: t.configuration_item_kinds.join(", "),
            artifacts: lines(&t.allowed_artifacts),
            paths: lines(&t.allowed_paths),
            variables: t
                .variables
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("\n"),
            approved_by: t.approved_by.to_string(),
            approved_on: t.approved_on.to_string(),
            review_due: t.review_due.to_string(),
        }
    }

    pub(crate) fn typed(fields: &Fields) -> Self {
        TemplateFill {
            name: fields.one("name").trim().to_string(),
            title: fields.one("title"),
            description: fields.one("description"),
            implementation_plan: fields.one("implementation_plan"),
            test_plan: fields.one("test_plan"),
            backout_plan: fields.one("backout_plan"),
            steps: fields.one("steps"),
            items: fields.all("item"),
            item_kinds: fields.one("item_kinds"),
            artifacts: fields.one("artifacts"),
            paths: fields.one("paths"),
            variables: fields.one("variables"),
            approved_by: fields.one("approved_by"),
            approved_on: fields.one("approved_on"),
            review_due: fields.one("review_due"),
        }
    }

    /// The template as the API takes it; a mistake of the form's own
    /// (a date, a variable line) names its field and how to write it.
    pub fn body(&self) -> Result<serde_json::Value, ApiError> {
        let date = |field: &str, label: &str, v: &str| {
            NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d")
                .map_err(|_| ApiError::invalid(field, format!("{label}: a date, e.g. 2027-01-31")))
        };
        let approved_on = date("approvedOn", "approved on", &self.approved_on)?;
        let review_due = date("reviewDue", "review due", &self.review_due)?;
        let mut variables = serde_json::Map::new();
        for line in split_lines(&self.variables) {
            let Some((name, default)) = line.split_once('=') else {
                return Err(ApiError::invalid(
                    "variables",
                    format!("variables: write each as name=default on its own line ({line:?})"),
                ));
            };
            variables.insert(name.trim().to_string(), json!(default.trim()));
        }
        Ok(json!({
            "title": self.title.trim(),
            "description": self.description.trim(),
            "implementationPlan": self.implementation_plan.trim(),
            "testPlan": self.test_plan.trim(),
            "backoutPlan": self.backout_plan.trim(),
            "steps": split_lines(&self.steps),
            "variables": variables,
            "configurationItems": self.items,
            "configurationItemKinds": self.item_kinds
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .collect::<Vec<_>>(),
            "allowedArtifacts": split_lines(&self.artifacts),
            "allowedPaths": split_lines(&self.paths),
            "approvedBy": self.approved_by.trim(),
            "approvedOn": approved_on,
            "reviewDue": review_due,
        }))
    }
}

/// A template in words: what it pre-approves, who approved it, when it is
/// reviewed (and whether it still pre-approves anything `today`).
pub fn words(t: &Template, label: &dyn Fn(&str) -> String, today: NaiveDate) -> String {
    let mut scope = Vec::new();
    let mut items: Vec<String> = t.configuration_items.clone();
    items.extend(
        t.configuration_item_kinds
            .iter()
            .map(|k| format!("any {k}")),
    );
    scope.push(if items.is_empty() {
        "no configuration item".to_string()
    } else {
        format!("configuration items {}", items.join(", "))
    });
    scope.push(if t.allowed_artifacts.is_empty() {
        "no artifact".to_string()
    } else {
        format!("artifacts {}", t.allowed_artifacts.join(", "))
    });
    if !t.allowed_paths.is_empty() {
        scope.push(format!("spec paths {}", t.allowed_paths.join(", ")));
    }
    let mut said = format!("{}; pre-approves {}", t.title, scope.join("; "));
    if !t.steps.is_empty() {
        said.push_str(&format!(
            "; {} step{}",
            t.steps.len(),
            if t.steps.len() == 1 { "" } else { "s" }
        ));
    }
    said.push_str(&format!(
        "; approved by {} on {}; ",
        label(t.approved_by.as_str()),
        t.approved_on
    ));
    if t.is_current(today) {
        said.push_str(&format!("review due {}", t.review_due));
    } else {
        said.push_str(&format!(
            "its review was due {}: it pre-approves nothing until reviewed",
            t.review_due
        ));
    }
    said
}

/// A template from its form, through `PUT …/templates/{name}`.
pub async fn put_template_form(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    body: axum::body::Bytes,
) -> PageResult<Response> {
    let (fields, t) = tenant_form(&state, &viewer, &slug, &body, Action::ManagePolicy).await?;
    let typed = TemplateFill::typed(&fields);
    let outcome: ApiResult<String> = async {
        let body = typed.body()?;
        let path = Path(NamePath {
            tenant: slug.clone(),
            name: typed.name.clone(),
        });
        let r =
            api::policy::put_template(State(state.clone()), t.clone(), path, Body(body)).await?;
        Ok(format!(
            "Template {} {}; standard changes raised from it now follow it.",
            typed.name, r.0.applied
        ))
    }
    .await;
    let typed = Prefill {
        typed_template: Some(typed),
        ..Prefill::default()
    };
    answered_as_typed(&state, &viewer, &t, outcome, typed).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox() -> Template {
        serde_json::from_value(json!({
            "title": "Grant mailbox permissions",
            "implementationPlan": "Add-MailboxPermission",
            "steps": ["check the request", "grant"],
            "configurationItems": ["exchange-online"],
            "configurationItemKinds": ["m365-tenant"],
            "allowedArtifacts": ["registry.example/mailbox-tool@sha256:*"],
            "variables": { "mailbox": "" },
            "approvedBy": "cm@msp.example",
            "approvedOn": "2026-01-10",
            "reviewDue": "2027-01-10"
        }))
        .expect("a template")
    }

    #[test]
    fn a_template_survives_its_own_form() {
        let t = mailbox();
        let body = TemplateFill::of("mailbox", &t).body().expect("valid");
        let back: Template = serde_json::from_value(body).expect("the API's shape");
        assert_eq!(back, t);
    }

    #[test]
    fn a_bad_date_or_variable_line_names_its_field() {
        let mut f = TemplateFill::of("mailbox", &mailbox());
        f.review_due = "next year".into();
        let e = f.body().expect_err("refused");
        assert_eq!(e.field.as_deref(), Some("reviewDue"));
        assert!(e.message.contains("2027-01-31"), "{}", e.message);
        let mut f = TemplateFill::of("mailbox", &mailbox());
        f.variables = "mailbox".into();
        assert_eq!(
            f.body().expect_err("refused").field.as_deref(),
            Some("variables")
        );
    }

    #[test]
    fn the_words_say_the_scope_and_the_review() {
        let label = |e: &str| format!("Carla ({e})");
        let today = NaiveDate::from_ymd_opt(2026, 12, 6).expect("a date");
        let said = words(&mailbox(), &label, today);
        assert!(
            said.starts_with("Grant mailbox permissions; pre-approves configuration items exchange-online, any m365-tenant; artifacts registry.example/mailbox-tool@sha256:*; 2 steps; approved by Carla (cm@msp.example) on 2026-01-10; review due 2027-01-10"),
            "{said}"
        );
        let later = NaiveDate::from_ymd_opt(2027, 2, 1).expect("a date");
        assert!(words(&mailbox(), &label, later).contains("pre-approves nothing until reviewed"));
    }
}
