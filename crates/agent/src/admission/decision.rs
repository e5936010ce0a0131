//! The admission decision for a gated workload: a pure function
//! of the request, the tenant's policy, windows, changes and releases, and
//! the time. Denials say what to do next.

use super::candidates::{self, Binding, Candidates};
use super::change_state::{self, ChangeState};
use super::diff;
use super::paths::{FieldPath, PathPattern};
use super::workload::Workload;
use crate::api::{
    ChangePhase, ChangePolicySpec, ChangeRequest, ChangeType, Enforcement, Release, WorkloadKind,
};
use crate::window::{CompiledWindow, WindowVerdict, evaluate, format_instant};
use chrono::{DateTime, Utc};
use kube::ResourceExt;
use serde_json::Value;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

/// A CREATE, UPDATE or DELETE of a gated workload.
#[derive(Debug, Clone)]
pub struct WorkloadRequest<'a> {
    pub operation: Operation,
    pub kind: WorkloadKind,
    pub namespace: &'a str,
    pub name: &'a str,
    pub old: Option<&'a Value>,
    pub new: Option<&'a Value>,
}

/// What admission knows about the workload's tenant, from in-memory stores.
pub struct TenantView<'a> {
    pub tenant: &'a str,
    /// The tenant's policy (see `policy::select_policy`); `None`: not governed.
    pub policy: Option<&'a ChangePolicySpec>,
    /// Every window; those that do not apply to the tenant are skipped.
    pub windows: &'a [Arc<CompiledWindow>],
    /// ChangeRequests in the workload's namespace.
    pub changes: &'a [Arc<ChangeRequest>],
    /// Releases that may bind the workload: its namespace's and the operations namespace's.
    pub releases: &'a [Arc<Release>],
}

/// Why admission decided as it did; a bounded set, used as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    NotGoverned,
    EnforcementOff,
    NoSpecChange,
    Covered,
    NotCovered,
    BindingNotFound,
    ChangeNotApproved,
    NotInTargets,
    OutsideSchedule,
    OutsideStandardChange,
    ImageNotPinned,
    WindowClosed,
    Blackout,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotGoverned => "NotGoverned",
            Self::EnforcementOff => "EnforcementOff",
            Self::NoSpecChange => "NoSpecChange",
            Self::Covered => "Covered",
            Self::NotCovered => "NotCovered",
            Self::BindingNotFound => "BindingNotFound",
            Self::ChangeNotApproved => "ChangeNotApproved",
            Self::NotInTargets => "NotInTargets",
            Self::OutsideSchedule => "OutsideSchedule",
            Self::OutsideStandardChange => "OutsideStandardChange",
            Self::ImageNotPinned => "ImageNotPinned",
            Self::WindowClosed => "WindowClosed",
            Self::Blackout => "Blackout",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: Reason,
    /// The denial (or, in Warn mode, the warning) text; empty when allowed cleanly.
    pub message: String,
    pub warnings: Vec<String>,
    /// The change that covers the workload change, when one does.
    pub change: Option<String>,
}

impl Decision {
    fn allow(reason: Reason) -> Self {
        Self {
            allowed: true,
            reason,
            message: String::new(),
            warnings: Vec::new(),
            change: None,
        }
    }
}

/// One candidate change's verdict: why it does not cover the request.
struct Refusal {
    reason: Reason,
    detail: String,
    /// The change is otherwise fine but must wait for a window.
    change_type: ChangeType,
}

pub fn decide(req: &WorkloadRequest<'_>, view: &TenantView<'_>, now: DateTime<Utc>) -> Decision {
    let Some(policy) = view.policy else {
        return Decision::allow(Reason::NotGoverned);
    };
    if policy.enforcement == Enforcement::Off {
        return Decision::allow(Reason::EnforcementOff);
    }
    let Some(object) = (match req.operation {
        Operation::Delete => req.old,
        Operation::Create | Operation::Update => req.new,
    }) else {
        return deny(
            policy,
            Reason::NotCovered,
            format!(
                "changegate: the {:?} request carries no object to judge; retry it, and report it to the platform team if it persists.",
                req.operation
            ),
        );
    };
    let changed_paths = match req.operation {
        Operation::Update => {
            let paths = diff::spec_changes(
                req.old.unwrap_or(&Value::Null),
                object,
                &diff::ignore_list(&policy.ignore_paths),
            );
            if paths.is_empty() {
                return Decision::allow(Reason::NoSpecChange);
            }
            paths
        }
        Operation::Create => diff::spec_changes(&Value::Null, object, &[]),
        Operation::Delete => Vec::new(),
    };
    let workload = Workload {
        kind: req.kind,
        namespace: req.namespace,
        name: req.name,
        object,
    };
    let subject = format!("{} {}/{}", req.kind, req.namespace, req.name);
    let found = candidates::find(&workload, view.changes, view.releases);

    let mut refusals = Vec::new();
    for change in &found.changes {
        match covers(
            change,
            &found,
            req,
            &workload,
            &changed_paths,
            view,
            policy,
            now,
        ) {
            Ok(()) => {
                return Decision {
                    change: Some(change.name_any()),
                    ..Decision::allow(Reason::Covered)
                };
            }
            Err(r) => refusals.push((change.name_any(), r)),
        }
    }
    let (reason, message) = explain(req.namespace, &subject, &found, refusals, view, policy, now);
    deny(policy, reason, message)
}

/// Deny, or in Warn mode admit with the denial as a warning.
fn deny(policy: &ChangePolicySpec, reason: Reason, message: String) -> Decision {
    let warn = policy.enforcement == Enforcement::Warn;
    let warnings = if warn {
        vec![format!("{message} (Warn mode: admitted)")]
    } else {
        Vec::new()
    };
    Decision {
        allowed: warn,
        reason,
        message,
        warnings,
        change: None,
    }
}

#[allow(clippy::too_many_arguments)]
fn covers(
    change: &ChangeRequest,
    found: &Candidates<'_>,
    req: &WorkloadRequest<'_>,
    workload: &Workload<'_>,
    changed_paths: &[FieldPath],
    view: &TenantView<'_>,
    policy: &ChangePolicySpec,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    let name = change.name_any();
    let change_type = change.spec.change_type;
    let refuse = |reason, detail: String| Refusal {
        reason,
        detail,
        change_type,
    };

    let state = change_state::effective(change, policy, now);
    if !matches!(
        state.phase,
        ChangePhase::Approved | ChangePhase::Implementing
    ) {
        return Err(refuse(
            Reason::ChangeNotApproved,
            not_approved(&name, &state),
        ));
    }
    let Some(target) = candidates::covering_target(change, workload) else {
        return Err(refuse(
            Reason::NotInTargets,
            format!(
                "{name} does not list {} {} in spec.targets; a new ChangeRequest must cover it.",
                req.kind, req.name
            ),
        ));
    };
    if let Some(schedule) = &change.spec.schedule {
        if let Some(nb) = schedule.not_before.filter(|nb| now < *nb) {
            return Err(refuse(
                Reason::OutsideSchedule,
                format!(
                    "{name} may not be implemented before {} (spec.schedule.notBefore).",
                    nb.to_rfc3339()
                ),
            ));
        }
        if let Some(na) = schedule.not_after.filter(|na| now >= *na) {
            return Err(refuse(
                Reason::OutsideSchedule,
                format!(
                    "{name}'s schedule ended at {} (spec.schedule.notAfter); open a new ChangeRequest.",
                    na.to_rfc3339()
                ),
            ));
        }
    }
    if change_type == ChangeType::Standard {
        check_standard(change, req, changed_paths, policy)
            .map_err(|d| refuse(Reason::OutsideStandardChange, d))?;
    }
    if !target.images.is_empty() && req.operation != Operation::Delete {
        let old_images: Vec<&str> = req
            .old
            .map(|o| {
                Workload {
                    object: o,
                    ..workload.clone()
                }
                .images()
            })
            .unwrap_or_default();
        if let Some(image) = workload
            .images()
            .into_iter()
            .find(|i| !old_images.contains(i) && !target.images.iter().any(|p| p == i))
        {
            return Err(refuse(
                Reason::ImageNotPinned,
                format!(
                    "{name} pins the images it may roll out ({}); {image} is not one of them.",
                    target.images.join(", ")
                ),
            ));
        }
    }
    if let Some(window) = found.release.and_then(|r| r.spec.window.as_deref()) {
        match view.windows.iter().find(|w| w.name() == window) {
            Some(w) if w.open_at(now) => {}
            Some(w) => {
                let next = w.next_window(now).map_or_else(
                    || "It has no future opening: ask the platform team to reschedule it, or bind the workload to a change instead.".to_string(),
                    |i| format!("It opens {}.", format_instant(i.start, w.time_zone())),
                );
                return Err(refuse(
                    Reason::WindowClosed,
                    format!("Release window {window} is closed. {next}"),
                ));
            }
            None => {
                return Err(refuse(
                    Reason::WindowClosed,
                    format!(
                        "Release window {window} does not exist: fix the Release's spec.window, \
                         or ask the platform team to create the MaintenanceWindow."
                    ),
                ));
            }
        }
    }
    match evaluate(
        view.windows,
        view.tenant,
        change_type.into(),
        policy.requires_window(change_type),
        now,
    ) {
        WindowVerdict::NotRequired | WindowVerdict::Open { .. } => Ok(()),
        WindowVerdict::Closed { next } => Err(refuse(
            Reason::WindowClosed,
            format!(
                "{name} is approved, but no maintenance window for tenant {} is open. {}",
                view.tenant,
                next_opening(next.as_ref())
            ),
        )),
        WindowVerdict::Blackout {
            window,
            until,
            time_zone,
            next,
        } => {
            let until = format_instant(until, time_zone);
            Err(refuse(
                Reason::Blackout,
                format!(
                    "{name} is approved, but blackout window {window} is in force until {until} and does not allow {change_type} changes. {}",
                    next_opening(next.as_ref())
                ),
            ))
        }
    }
}

fn check_standard(
    change: &ChangeRequest,
    req: &WorkloadRequest<'_>,
    changed_paths: &[FieldPath],
    policy: &ChangePolicySpec,
) -> Result<(), String> {
    let name = change.name_any();
    let catalogue = change.spec.standard_change.as_deref().unwrap_or_default();
    let Some(entry) = policy.standard_change(catalogue) else {
        return Err(format!(
            "{name} names standard change {catalogue:?}, which the tenant's ChangePolicy does not list in spec.standardChanges."
        ));
    };
    if !entry.kinds.contains(&req.kind) {
        return Err(format!(
            "standard change {catalogue} does not cover kind {}.",
            req.kind
        ));
    }
    if req.operation != Operation::Update {
        return Err(format!(
            "standard change {catalogue} covers updates only; a {:?} needs a Normal change.",
            req.operation
        ));
    }
    let allowed: Vec<PathPattern> = entry
        .allowed_paths
        .iter()
        .filter_map(|p| PathPattern::parse(p).ok())
        .collect();
    let outside: Vec<String> = changed_paths
        .iter()
        .filter(|p| !allowed.iter().any(|a| a.covers(p)))
        .map(ToString::to_string)
        .collect();
    if outside.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "standard change {catalogue} allows changes to {} only; this update also changes {}. Use a Normal change.",
            entry.allowed_paths.join(", "),
            outside.join(", ")
        ))
    }
}

fn not_approved(name: &str, state: &ChangeState) -> String {
    match state.phase {
        ChangePhase::PendingApproval => match &state.outstanding {
            Some(outstanding) => format!("{name} is PendingApproval: {outstanding}."),
            None => format!("{name} is PendingApproval."),
        },
        ChangePhase::Rejected => format!(
            "{name} was {}; open a new ChangeRequest.",
            state.reason.as_deref().unwrap_or("rejected")
        ),
        ChangePhase::Expired => format!(
            "{name} expired ({}); open a new ChangeRequest.",
            state.reason.as_deref().unwrap_or("its deadline passed")
        ),
        ChangePhase::Cancelled => format!("{name} was cancelled; open a new ChangeRequest."),
        ChangePhase::RolledBack | ChangePhase::Failed => format!(
            "{name} is {}: its content was rolled back or failed, and may not be re-applied until a new change is approved.",
            state.phase
        ),
        phase => {
            format!("{name} is {phase} and admits no further changes; open a new ChangeRequest.")
        }
    }
}

fn next_opening(next: Option<&crate::window::NextOpening>) -> String {
    match next {
        Some(n) => format!(
            "Next maintenance window {} opens {}.",
            n.window,
            format_instant(n.at, n.time_zone)
        ),
        None => format!(
            "No maintenance window opens in the next {} days: ask the platform team for a window, \
             or file an Emergency change if the policy allows one.",
            crate::window::SEARCH_HORIZON.num_days()
        ),
    }
}

/// The denial message when no candidate covers the request.
#[allow(clippy::too_many_arguments)]
fn explain(
    namespace: &str,
    subject: &str,
    found: &Candidates<'_>,
    refusals: Vec<(String, Refusal)>,
    view: &TenantView<'_>,
    policy: &ChangePolicySpec,
    now: DateTime<Utc>,
) -> (Reason, String) {
    let head = format!("changegate: {subject} is not covered by an approved change.");
    if let Some(missing) = &found.missing {
        let how = match &found.binding {
            Binding::Change(_) => "its changegate.dev/change annotation",
            _ => "its changegate.dev/release annotation",
        };
        return (
            Reason::BindingNotFound,
            format!(
                "{head} {missing}, named by {how}, does not exist in namespace {}.",
                namespace
            ),
        );
    }
    // The most advanced candidate explains best: one waiting for a window
    // beats one waiting for approval.
    let best = refusals.into_iter().max_by_key(|(_, r)| rank(r.reason));
    match best {
        Some((_, r)) => {
            let mut msg = format!("{head} {}", r.detail);
            if r.reason == Reason::ChangeNotApproved
                && policy.requires_window(r.change_type)
                && let WindowVerdict::Closed { next } =
                    evaluate(view.windows, view.tenant, r.change_type.into(), true, now)
            {
                msg.push(' ');
                msg.push_str(&next_opening(next.as_ref()));
            }
            (r.reason, msg)
        }
        None => (
            Reason::NotCovered,
            format!(
                "{head} No ChangeRequest in this namespace targets it: create one whose spec.targets lists it and get it approved, or name one in the changegate.dev/change annotation."
            ),
        ),
    }
}

fn rank(reason: Reason) -> u8 {
    match reason {
        Reason::WindowClosed | Reason::Blackout => 5,
        Reason::OutsideStandardChange | Reason::ImageNotPinned => 4,
        Reason::OutsideSchedule => 3,
        Reason::NotInTargets => 2,
        Reason::ChangeNotApproved => 1,
        _ => 0,
    }
}
