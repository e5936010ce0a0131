//! Which boards a change needs, by type and risk level: standard changes
//! none (their template is pre-approved), normal changes by risk,
//! emergency changes their own boards.

use serde::{Deserialize, Serialize};

use crate::change::{ChangeType, RiskLevel};
use crate::ids::InvalidValue;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    /// For normal changes: the rule with the highest `from` at or below the
    /// change's level applies.
    #[serde(default)]
    pub normal: Vec<RiskRoute>,
    /// Boards for emergency changes (often a small ECAB).
    #[serde(default)]
    pub emergency: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskRoute {
    pub from: RiskLevel,
    pub boards: Vec<String>,
}

impl Routing {
    /// The boards (by name) a change of this type and level needs.
    pub fn boards_for(&self, kind: ChangeType, level: RiskLevel) -> Vec<String> {
        match kind {
            ChangeType::Standard => vec![],
            ChangeType::Emergency => self.emergency.clone(),
            ChangeType::Normal => self
                .normal
                .iter()
                .filter(|r| r.from <= level)
                .max_by_key(|r| r.from)
                .map(|r| r.boards.clone())
                .unwrap_or_default(),
        }
    }

    /// Every board name routing refers to must exist.
    pub fn validate(&self, board_exists: impl Fn(&str) -> bool) -> Result<(), InvalidValue> {
        for (i, r) in self.normal.iter().enumerate() {
            if self.normal[..i].iter().any(|o| o.from == r.from) {
                return Err(InvalidValue::new(
                    format!("routing.normal[{i}].from"),
                    format!("{} is routed twice", r.from),
                ));
            }
            if let Some(b) = r.boards.iter().find(|b| !board_exists(b)) {
                return Err(InvalidValue::new(
                    format!("routing.normal[{i}].boards"),
                    format!("no board named {b:?} in this tenant"),
                ));
            }
        }
        if let Some(b) = self.emergency.iter().find(|b| !board_exists(b)) {
            return Err(InvalidValue::new(
                "routing.emergency",
                format!("no board named {b:?} in this tenant"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing() -> Routing {
        Routing {
            normal: vec![
                RiskRoute {
                    from: RiskLevel::Low,
                    boards: vec!["tech".into()],
                },
                RiskRoute {
                    from: RiskLevel::High,
                    boards: vec!["tech".into(), "client".into()],
                },
            ],
            emergency: vec!["ecab".into()],
        }
    }

    #[test]
    fn normal_changes_route_by_the_highest_matching_level() {
        let r = routing();
        assert_eq!(r.boards_for(ChangeType::Normal, RiskLevel::Low), ["tech"]);
        assert_eq!(
            r.boards_for(ChangeType::Normal, RiskLevel::Medium),
            ["tech"]
        );
        assert_eq!(
            r.boards_for(ChangeType::Normal, RiskLevel::Critical),
            ["tech", "client"]
        );
    }

    #[test]
    fn standard_needs_none_and_emergency_its_own() {
        let r = routing();
        assert!(
            r.boards_for(ChangeType::Standard, RiskLevel::Critical)
                .is_empty()
        );
        assert_eq!(
            r.boards_for(ChangeType::Emergency, RiskLevel::Low),
            ["ecab"]
        );
    }

    #[test]
    fn unknown_boards_are_refused_with_the_field() {
        let err = routing().validate(|b| b == "tech").unwrap_err();
        assert_eq!(err.field, "routing.normal[1].boards");
    }
}
