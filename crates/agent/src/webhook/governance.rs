//! Checks on ChangePolicy that the CRD schema cannot express: every path
//! pattern (catalogue `allowedPaths`, `ignorePaths`) must parse. Window
//! checks are `crate::window::compile`'s.

use crate::admission::paths::PathPattern;
use crate::api::ChangePolicySpec;

pub fn check_policy(spec: &ChangePolicySpec) -> Result<(), String> {
    for (i, entry) in spec.standard_changes.iter().enumerate() {
        for (j, path) in entry.allowed_paths.iter().enumerate() {
            PathPattern::parse(path).map_err(|e| {
                format!("changegate: spec.standardChanges[{i}].allowedPaths[{j}]: {e}")
            })?;
        }
    }
    for (i, path) in spec.ignore_paths.iter().enumerate() {
        PathPattern::parse(path).map_err(|e| format!("changegate: spec.ignorePaths[{i}]: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_catalogue_path_is_named_with_its_value() {
        let spec: ChangePolicySpec = serde_json::from_value(serde_json::json!({
            "standardChanges": [{"name": "x", "kinds": ["Deployment"], "allowedPaths": ["spec.template", "spec.containers[x].image"]}]
        }))
        .expect("spec");
        let err = check_policy(&spec).expect_err("invalid");
        assert!(err.starts_with("changegate: spec.standardChanges[0].allowedPaths[1]: invalid path pattern \"spec.containers[x].image\""), "{err}");
    }
}
