//! Which ChangeRequests could cover a workload change: the one its
//! `changegate.dev/change` annotation names, the changes of the Release its
//! `changegate.dev/release` annotation names, or else every change whose
//! targets match it.

use super::selector;
use super::workload::Workload;
use crate::api::{ChangeRequest, Release, Target};
use kube::ResourceExt;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How the candidates were found; shapes the denial message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// Named by the workload's `changegate.dev/change` annotation.
    Change(String),
    /// The changes of the Release named by `changegate.dev/release`.
    Release(String),
    /// No annotation: changes whose targets match the workload.
    TargetMatch,
}

pub struct Candidates<'a> {
    pub binding: Binding,
    pub changes: Vec<&'a ChangeRequest>,
    /// The Release, when bound to one that exists.
    pub release: Option<&'a Release>,
    /// A named change or release that does not exist.
    pub missing: Option<String>,
}

/// The target of `change` that covers `workload`, if any.
pub fn covering_target<'c>(
    change: &'c ChangeRequest,
    workload: &Workload<'_>,
) -> Option<&'c Target> {
    covering_target_with(change, workload, &workload.labels())
}

/// [`covering_target`] with the workload's labels read once by the caller.
fn covering_target_with<'c>(
    change: &'c ChangeRequest,
    workload: &Workload<'_>,
    labels: &BTreeMap<String, String>,
) -> Option<&'c Target> {
    change.spec.targets.iter().find(|t| {
        t.kind == workload.kind
            && match (&t.name, &t.selector) {
                (Some(name), _) => name == workload.name,
                (None, Some(sel)) => selector::matches(sel, labels),
                (None, None) => false,
            }
    })
}

pub fn find<'a>(
    workload: &Workload<'_>,
    changes: &'a [Arc<ChangeRequest>],
    releases: &'a [Arc<Release>],
) -> Candidates<'a> {
    let by_name = |name: &str| {
        changes
            .iter()
            .map(Arc::as_ref)
            .find(|c| c.name_any() == name)
    };
    if let Some(name) = workload.bound_change() {
        let found = by_name(name);
        return Candidates {
            binding: Binding::Change(name.to_string()),
            missing: found.is_none().then(|| format!("ChangeRequest {name}")),
            changes: found.into_iter().collect(),
            release: None,
        };
    }
    if let Some(name) = workload.bound_release() {
        // The workload's own namespace first, then the operations one: the
        // same name in both always resolves the same way.
        let named = || {
            releases
                .iter()
                .map(Arc::as_ref)
                .filter(|r| r.name_any() == name)
        };
        let release = named()
            .find(|r| r.metadata.namespace.as_deref() == Some(workload.namespace))
            .or_else(|| named().next());
        let changes = release
            .map(|r| {
                let release_ns = r.namespace().unwrap_or_default();
                r.spec
                    .changes
                    .iter()
                    // A release covers this workload only through changes
                    // that live in the workload's own namespace.
                    .filter(|c| c.namespace.as_deref().unwrap_or(&release_ns) == workload.namespace)
                    .filter_map(|c| by_name(&c.name))
                    .collect()
            })
            .unwrap_or_default();
        return Candidates {
            binding: Binding::Release(name.to_string()),
            missing: release.is_none().then(|| format!("Release {name}")),
            changes,
            release,
        };
    }
    let labels = workload.labels();
    Candidates {
        binding: Binding::TargetMatch,
        changes: changes
            .iter()
            .map(Arc::as_ref)
            .filter(|c| covering_target_with(c, workload, &labels).is_some())
            .collect(),
        release: None,
        missing: None,
    }
}
