//! The gate decision (DESIGN §7): may this content ship to this target of
//! this tenant now? Pipelines ask it through the gate API; the agent asks
//! it in memory from its bundle. Pure: the caller passes the time.
//!
//! A target is governed when a configuration item of the tenant names it
//! (directly, or through its enforcement binding). A governed target ships
//! only under a change that names one of those items, is approved (or
//! being implemented; a change a release holds ships only once that
//! release deploys it), whose approved artifacts include every artifact
//! shipped, whose planned slot holds `now`, and whose type the tenant's
//! windows allow now. Every refusal says what to do next.
//!
//! [`TenantGate`] is built once from a tenant's catalogue, policy, windows
//! and changes (an index by configuration item), then answers
//! [`TenantGate::check`] without allocating per change.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::catalogue::{ConfigurationItem, Enforcement as Binding};
use crate::change::{ChangeState, ChangeType};
use crate::ids::ChangeNumber;
use crate::policy::{Enforcement, PolicySpec};
use crate::window::{self, CompiledWindow, WindowVerdict};

/// Where content is about to ship. In JSON: `{"configuration_item":
/// "edge-firewall"}`, `{"pipeline": {"environment": "production"}}` or
/// `{"workload": {"cluster", "namespace", "kind", "name", "labels"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// A configuration item named directly, e.g. `core-firewall`.
    ConfigurationItem(String),
    /// A Kubernetes workload, as an admission request or a watch sees it.
    Workload(Workload),
    /// A CI/CD pipeline's deployment environment, e.g. `production`.
    Pipeline { environment: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workload {
    pub cluster: String,
    pub namespace: String,
    /// Deployment, StatefulSet, DaemonSet or CronJob.
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::ConfigurationItem(name) => write!(f, "configuration item {name}"),
            Target::Workload(w) => write!(
                f,
                "{} {}/{} in cluster {}",
                w.kind, w.namespace, w.name, w.cluster
            ),
            Target::Pipeline { environment } => write!(f, "pipeline environment {environment}"),
        }
    }
}

impl Target {
    /// Does `item` (named `name`) stand for this target?
    pub fn is_bound_to(&self, name: &str, item: &ConfigurationItem) -> bool {
        match (self, &item.enforcement) {
            (Target::ConfigurationItem(wanted), _) => wanted == name,
            (Target::Pipeline { environment }, Some(Binding::Pipeline { environment: bound })) => {
                environment == bound
            }
            (Target::Workload(w), Some(Binding::Kubernetes(b))) => {
                w.cluster == b.cluster
                    && w.namespace == b.namespace
                    && w.kind == b.kind
                    && match &b.name {
                        Some(name) => *name == w.name,
                        None => b.selector.iter().all(|(k, v)| w.labels.get(k) == Some(v)),
                    }
            }
            _ => false,
        }
    }
}

/// What the gate knows of one change: its state, what it was approved for
/// and what its approval still waits on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateChange {
    pub number: ChangeNumber,
    pub kind: ChangeType,
    pub state: ChangeState,
    pub configuration_items: Vec<String>,
    /// The approved content: image digests, artifact hashes.
    pub artifacts: Vec<String>,
    /// The fingerprint approvals signed (set at submission).
    pub fingerprint: Option<String>,
    pub planned_start: Option<DateTime<Utc>>,
    pub planned_end: Option<DateTime<Utc>>,
    /// What approval waits on, e.g. `1 approval from client-business`.
    #[serde(default)]
    pub awaiting: Vec<String>,
    /// On a failed rollout the agent rolls back by itself (the backout plan says so).
    #[serde(default)]
    pub automatic_rollback: bool,
    /// When the approval stops covering anything, if the policy sets an
    /// expiry: checked at each decision, so a gate built earlier (a cached
    /// one, an agent's bundle) refuses from that instant on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_expires_at: Option<DateTime<Utc>>,
    /// Approved, it still waits for the client's acceptance of the tested
    /// change (the policy asks for it): the sentence that says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting_acceptance: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Allow,
    Deny,
    /// Would be denied, but the tenant's enforcement is `Warn`.
    Warn,
}

/// Why the gate decided as it did; a bounded set, fit for a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    NotGoverned,
    EnforcementOff,
    Covered,
    NoChange,
    NotApproved,
    /// Approved, and held by a release: it ships when the release deploys.
    HeldByRelease,
    Finished,
    ContentNotApproved,
    OutsidePlannedSlot,
    WindowClosed,
    Blackout,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotGoverned => "not-governed",
            Reason::EnforcementOff => "enforcement-off",
            Reason::Covered => "covered",
            Reason::NoChange => "no-change",
            Reason::NotApproved => "not-approved",
            Reason::HeldByRelease => "held-by-release",
            Reason::Finished => "finished",
            Reason::ContentNotApproved => "content-not-approved",
            Reason::OutsidePlannedSlot => "outside-planned-slot",
            Reason::WindowClosed => "window-closed",
            Reason::Blackout => "blackout",
        }
    }

    /// How close a refused change came to covering the request: the
    /// message names the closest one.
    fn progress(self) -> u8 {
        match self {
            Reason::Finished => 0,
            Reason::NotApproved => 1,
            Reason::HeldByRelease => 2,
            Reason::ContentNotApproved => 2,
            Reason::OutsidePlannedSlot => 3,
            Reason::WindowClosed | Reason::Blackout => 4,
            _ => 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateDecision {
    pub verdict: Verdict,
    pub reason: Reason,
    /// What to do next when denied or warned; what allowed it otherwise.
    pub message: String,
    /// The change that covers the request, or the one closest to it.
    pub change: Option<ChangeNumber>,
    /// The covering change's approved fingerprint.
    pub fingerprint: Option<String>,
    /// The configuration items that make the target governed.
    pub configuration_items: Vec<String>,
}

impl GateDecision {
    pub fn allowed(&self) -> bool {
        self.verdict != Verdict::Deny
    }
}

/// One tenant's gate, indexed for repeated checks.
#[derive(Debug, Clone)]
pub struct TenantGate {
    tenant: String,
    enforcement: Enforcement,
    window_required: Vec<ChangeType>,
    items: Vec<(String, ConfigurationItem)>,
    windows: Vec<Arc<CompiledWindow>>,
    changes: Vec<GateChange>,
    /// Configuration item name → indexes into `changes`.
    by_item: HashMap<String, Vec<usize>>,
}

impl TenantGate {
    /// `tenant` is the tenant's slug (windows are matched on it); `windows`
    /// are the tenant's maintenance windows and blackouts; `changes` need
    /// only be those not yet closed.
    pub fn new(
        tenant: impl Into<String>,
        policy: &PolicySpec,
        items: impl IntoIterator<Item = (String, ConfigurationItem)>,
        windows: Vec<Arc<CompiledWindow>>,
        changes: Vec<GateChange>,
    ) -> Self {
        let mut by_item: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, c) in changes.iter().enumerate() {
            for item in &c.configuration_items {
                let slot = by_item.entry(item.clone()).or_default();
                if slot.last() != Some(&i) {
                    slot.push(i);
                }
            }
        }
        TenantGate {
            tenant: tenant.into(),
            enforcement: policy.enforcement,
            window_required: policy.window_required.clone(),
            items: items.into_iter().collect(),
            windows,
            changes,
            by_item,
        }
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// May `artifacts` ship to `target` at `now`?
    pub fn check(&self, target: &Target, artifacts: &[String], now: DateTime<Utc>) -> GateDecision {
        let governed: Vec<&str> = self
            .items
            .iter()
            .filter(|(name, item)| target.is_bound_to(name, item))
            .map(|(name, _)| name.as_str())
            .collect();
        let decision = |verdict, reason, message: String| GateDecision {
            verdict,
            reason,
            message,
            change: None,
            fingerprint: None,
            configuration_items: governed.iter().map(|s| s.to_string()).collect(),
        };
        if governed.is_empty() {
            return decision(
                Verdict::Allow,
                Reason::NotGoverned,
                format!(
                    "no configuration item of {} is bound to {target}; it is not governed",
                    self.tenant
                ),
            );
        }
        if self.enforcement == Enforcement::Off {
            return decision(
                Verdict::Allow,
                Reason::EnforcementOff,
                format!("enforcement is off for {}", self.tenant),
            );
        }

        let mut candidates: Vec<usize> = governed
            .iter()
            .filter_map(|name| self.by_item.get(*name))
            .flatten()
            .copied()
            .collect();
        candidates.sort_unstable();
        candidates.dedup();

        let mut closest: Option<(Reason, &GateChange, String)> = None;
        for change in candidates.iter().map(|&i| &self.changes[i]) {
            match self.refusal(change, artifacts, now) {
                None => {
                    return GateDecision {
                        change: Some(change.number),
                        fingerprint: change.fingerprint.clone(),
                        ..decision(
                            Verdict::Allow,
                            Reason::Covered,
                            format!("{} covers {target}", change.number),
                        )
                    };
                }
                Some((reason, why)) => {
                    if closest
                        .as_ref()
                        .is_none_or(|(r, _, _)| reason.progress() > r.progress())
                    {
                        closest = Some((reason, change, why));
                    }
                }
            }
        }
        let refused = if self.enforcement == Enforcement::Warn {
            Verdict::Warn
        } else {
            Verdict::Deny
        };
        match closest {
            Some((reason, change, why)) => GateDecision {
                change: Some(change.number),
                ..decision(refused, reason, why)
            },
            None => decision(
                refused,
                Reason::NoChange,
                format!(
                    "no change of {} covers {target} (configuration item {}); raise one and have it approved",
                    self.tenant,
                    governed.join(", ")
                ),
            ),
        }
    }

    /// The state of change `number` as this gate holds it; `None` when
    /// the gate does not hold it (closed, rejected, another tenant's).
    pub fn state_of(&self, number: ChangeNumber) -> Option<ChangeState> {
        self.changes
            .iter()
            .find(|c| c.number == number)
            .map(|c| c.state)
    }

    /// Why change `number` may not ship its own approved content at
    /// `now`, if it may not (a closed window, a blackout, a release
    /// holding it, its approval expired, not approved yet); `None` when it
    /// may, or when this gate does not hold the change.
    pub fn holds_back(&self, number: ChangeNumber, now: DateTime<Utc>) -> Option<(Reason, String)> {
        let change = self.changes.iter().find(|c| c.number == number)?;
        self.refusal(change, &change.artifacts, now)
    }

    /// The next window a change of `kind` may deploy in, by name with the
    /// instant it opens, when none is open at `now`.
    pub fn next_window(
        &self,
        kind: ChangeType,
        now: DateTime<Utc>,
    ) -> Option<(String, DateTime<Utc>)> {
        match self.windows_for(kind, now) {
            WindowVerdict::Closed { next: Some(next) }
            | WindowVerdict::Blackout {
                next: Some(next), ..
            } => Some((next.window, next.at)),
            _ => None,
        }
    }

    /// Why `change` does not cover shipping `artifacts` now, if it does not.
    fn refusal(
        &self,
        change: &GateChange,
        artifacts: &[String],
        now: DateTime<Utc>,
    ) -> Option<(Reason, String)> {
        let n = change.number;
        if change.state.is_approved()
            && let Some(expired) = change.approval_expires_at.filter(|e| *e <= now)
        {
            return Some((
                Reason::Finished,
                format!(
                    "{n}'s approval expired at {}; raise a new change for this deployment",
                    expired.to_rfc3339_opts(SecondsFormat::Secs, true)
                ),
            ));
        }
        match change.state {
            ChangeState::Approved if change.awaiting_acceptance.is_some() => {
                let waits = change.awaiting_acceptance.clone().unwrap_or_default();
                return Some((Reason::NotApproved, waits));
            }
            ChangeState::Approved | ChangeState::Implementing => {}
            // A release planned it: it starts only through that release,
            // whose deploy phase moves it to implementing.
            ChangeState::Scheduled => {
                return Some((
                    Reason::HeldByRelease,
                    format!(
                        "{n} is scheduled in a release; it ships once the release manager authorizes the release's deploy phase"
                    ),
                ));
            }
            ChangeState::Draft => {
                return Some((
                    Reason::NotApproved,
                    format!("{n} is a draft; submit it for approval"),
                ));
            }
            ChangeState::Submitted | ChangeState::AwaitingApproval => {
                let waits = if change.awaiting.is_empty() {
                    "awaits approval".to_string()
                } else {
                    format!("awaits {}", change.awaiting.join(" and "))
                };
                let mut message = format!("{n} {waits}");
                if let Some(next) = self.next_window_note(change, now) {
                    message.push_str(&next);
                }
                return Some((Reason::NotApproved, message));
            }
            other => {
                return Some((
                    Reason::Finished,
                    format!(
                        "{n} is {}; raise a new change for this deployment",
                        other.as_str()
                    ),
                ));
            }
        }
        if let Some(unapproved) = artifacts
            .iter()
            .find(|a| !change.artifacts.iter().any(|ok| ok.trim() == a.trim()))
        {
            let approved = if change.artifacts.is_empty() {
                "no artifacts".to_string()
            } else {
                change.artifacts.join(", ")
            };
            return Some((
                Reason::ContentNotApproved,
                format!(
                    "{n} approved {approved}; {unapproved} is not approved content: edit the change to name it and have the new revision approved"
                ),
            ));
        }
        let before = change.planned_start.is_some_and(|s| now < s);
        let after = change.planned_end.is_some_and(|e| now >= e);
        if before || after {
            let at = |t: Option<DateTime<Utc>>| {
                t.map_or("open".to_string(), |t| {
                    t.to_rfc3339_opts(SecondsFormat::Secs, true)
                })
            };
            return Some((
                Reason::OutsidePlannedSlot,
                format!(
                    "{n} is planned for {} to {}; {}",
                    at(change.planned_start),
                    at(change.planned_end),
                    if before {
                        "wait for its slot"
                    } else {
                        "its slot has passed: reschedule it and have it approved again"
                    }
                ),
            ));
        }
        let verdict = self.windows_for(change.kind, now);
        if !verdict.permits() {
            let reason = match verdict {
                WindowVerdict::Blackout { .. } => Reason::Blackout,
                _ => Reason::WindowClosed,
            };
            return Some((reason, format!("{n} is approved but {}", verdict.explain())));
        }
        None
    }

    fn windows_for(&self, kind: ChangeType, now: DateTime<Utc>) -> WindowVerdict {
        window::evaluate(
            &self.windows,
            &self.tenant,
            kind,
            self.window_required.contains(&kind),
            now,
        )
    }

    /// `; next window W opens …` when a change still awaiting approval
    /// could not deploy now anyway.
    fn next_window_note(&self, change: &GateChange, now: DateTime<Utc>) -> Option<String> {
        match self.windows_for(change.kind, now) {
            WindowVerdict::Closed { next: Some(next) }
            | WindowVerdict::Blackout {
                next: Some(next), ..
            } => Some(format!(
                "; next window {} opens {}",
                next.window,
                window::format_instant(next.at, next.time_zone)
            )),
            _ => None,
        }
    }
}

pub mod diff;
pub mod paths;

#[cfg(test)]
mod tests;
